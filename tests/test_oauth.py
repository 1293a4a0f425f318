"""OAuth mode (issue #23): "Add to Slack" through the real endpoints, two workspaces with the same
channel and user ids served side by side, token rotation, uninstalling.

Slack is `FakeSlackOrg`: one Web API host in front of a fake per workspace; the token says which.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from urllib.parse import urlsplit

import aiohttp
import pytest
from pydantic import SecretStr

from lumabot.app import LumaBot
from lumabot.config import load_settings
from lumabot.testing.fake_slack.oauth import FakeSlackOrg
from lumabot.slack.workspaces import NotInstalled
from lumabot.testing.store import job_ids

from .conftest import FAST

pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

REDIRECT = "https://lumabot.example.com/slack/oauth_redirect"


@pytest.fixture
async def org():
    slack = FakeSlackOrg()
    slack.add_workspace("T1", name="Acme")
    slack.add_workspace("T2", name="Globex")
    await slack.start()
    yield slack
    await slack.stop()


class OAuthBot:
    def __init__(self, bot: LumaBot, port: int, org: FakeSlackOrg):
        self.bot, self.port, self.org = bot, port, org
        self.base = f"http://127.0.0.1:{port}"
        self.events = f"{self.base}/slack/events"

    async def get(self, path: str, cookie: str | None = None) -> tuple[int, str, dict[str, str]]:
        headers = {"Cookie": cookie} if cookie else {}
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.get(self.base + path, headers=headers, allow_redirects=False) as resp:
                return resp.status, await resp.text(), {k: v for k, v in resp.headers.items()}

    async def install(self, team_id: str, *, user_id: str = "U1", org_wide: bool = False) -> str:
        """A person clicks "Add to Slack", approves in `team_id`, and Slack sends them back:
        the success page's text."""
        status, page, headers = await self.get("/slack/install")
        assert status == 200, page
        authorize = _authorize_link(page)
        cookie = headers["Set-Cookie"].split(";")[0]      # the browser keeps the state cookie
        back = await self.org.approve(authorize, team_id, user_id=user_id, org_wide=org_wide)
        assert back.startswith(REDIRECT)
        status, page, _ = await self.get("/slack/oauth_redirect?" + urlsplit(back).query, cookie)
        assert status == 200, page
        return page

    async def jobs(self):
        store = self.bot.store
        return [job for i in await job_ids(store) if (job := await store.jobs.get(i))]

    async def wait(self, predicate, timeout: float = 10.0):
        until = time.monotonic() + timeout
        while True:
            found = [job for job in await self.jobs() if predicate(job)]
            if found:
                return found[0]
            assert time.monotonic() < until, f"no job matched: {await self.jobs()}"
            await asyncio.sleep(0.01)


def _authorize_link(page: str) -> str:
    """The "Add to Slack" button's link on the install page."""
    import html
    import re

    links = [html.unescape(m) for m in re.findall(r'<a href="([^"]+)"', page)]
    assert len(links) == 1, page
    return links[0]


@pytest.fixture
async def oauth_bot(org, luma, tmp_path, request):
    started: list[LumaBot] = []

    database = {"LUMABOT_DATABASE_URL": f"sqlite:///{tmp_path / 'lumabot.db'}"}
    if os.environ.get("LUMABOT_TEST_STORE") == "postgresql":
        database["LUMABOT_DATABASE_URL"] = await request.getfixturevalue("pg_cluster").new_database()

    async def start(slack: FakeSlackOrg | None = None, **extra: str) -> OAuthBot:
        """lumabot in OAuth mode (the same database at every start of one test)."""
        slack = slack or org
        env = {
            "SLACK_CLIENT_ID": slack.client_id, "SLACK_CLIENT_SECRET": slack.client_secret,
            "SLACK_SIGNING_SECRET": slack.signing_secret, "SLACK_API_URL": slack.api_url,
            "SLACK_AUTHORIZE_URL": slack.authorize_url, "SLACK_REDIRECT_URI": REDIRECT,
            "LUMA_AGENTS_API_KEY": luma.api_key, "LUMA_BASE_URL": luma.base_url,
            "LUMABOT_HOST": "127.0.0.1", **FAST, **database, **extra,
        }
        bot = LumaBot(load_settings(_env_file=None, **env))
        port = await bot.serve_http(host="127.0.0.1", port=0)
        await bot.start()
        started.append(bot)
        return OAuthBot(bot, port, slack)

    yield start
    for bot in started:
        await bot.stop()


async def test_add_to_slack_asks_for_the_manifest_scopes_and_stores_the_workspace(org, oauth_bot):
    from lumabot.scopes import REQUIRED_BOT_SCOPES

    app = await oauth_bot()
    page = await app.install("T1")
    assert "lumabot is installed in <b>Acme</b>" in page and "https://app.slack.com/client/T1" in page
    approval = org.approvals[-1]
    assert approval.scopes == REQUIRED_BOT_SCOPES and approval.redirect_uri == REDIRECT
    # The code was exchanged once, with the app's credentials and the same redirect URI.
    assert len(org.exchanges) == 1 and org.exchanges[0]["redirect_uri"] == REDIRECT
    bot = await app.bot.installations.bot("T1")
    assert bot is not None and bot.bot_token == org.tokens("T1")[0] and bot.bot_user_id == "UBOTT1"
    assert await app.bot.installations.bot("T2") is None


async def test_a_reused_forged_or_cancelled_install_gets_an_error_page_and_stores_nothing(org, oauth_bot):
    app = await oauth_bot()
    status, page, headers = await app.get("/slack/install")
    authorize = _authorize_link(page)
    cookie = headers["Set-Cookie"].split(";")[0]
    # Someone else's state (no cookie: a link sent to the installer).
    back = await org.approve(authorize, "T1")
    status, page, _ = await app.get("/slack/oauth_redirect?" + urlsplit(back).query)
    assert status == 400 and "another browser" in page and "Nothing was installed" in page
    assert await app.bot.installations.bot("T1") is None
    # The browser that started it: installed (the refusal above did not use the state up)...
    status, page, _ = await app.get("/slack/oauth_redirect?" + urlsplit(back).query, cookie)
    assert status == 200, page
    # ...once: the state is single use.
    status, page, _ = await app.get("/slack/oauth_redirect?" + urlsplit(back).query, cookie)
    assert status == 401 and "expired or was used already" in page
    # A forged state.
    status, page, _ = await app.get("/slack/oauth_redirect?code=x&state=forged", "slack-app-oauth-state=forged")
    assert status == 401 and "expired or was used already" in page
    # The person cancels on Slack's page.
    status, page, headers = await app.get("/slack/install")
    back = await org.approve(_authorize_link(page), "T2", cancel=True)
    status, page, _ = await app.get("/slack/oauth_redirect?" + urlsplit(back).query,
                                    headers["Set-Cookie"].split(";")[0])
    assert "cancelled on Slack" in page and "Nothing was installed" in page
    assert await app.bot.installations.bot("T2") is None
    assert len(org.tokens("T1")) == 1   # one exchange only


async def imagine(app: OAuthBot, team_id: str, prompt: str, **kw):
    """A person in workspace `team_id` types /imagine (user U1 in C1, in every workspace)."""
    response = await app.org.workspace(team_id).post_command(app.events, "/imagine", prompt,
                                                             user_id="U1", channel_id="C1", **kw)
    assert response.status == 200, response.body
    return response


def delivered(ws, job) -> list[bytes]:
    """The image bytes in the job's thread of workspace `ws`."""
    return [f.content for f in ws.files_in_thread("C1", job.root_ts)]


async def test_two_workspaces_with_the_same_ids_each_get_their_own_images(org, luma, oauth_bot):
    app = await oauth_bot()
    await app.install("T1")
    await app.install("T2")
    acme, globex = org.workspace("T1"), org.workspace("T2")
    await imagine(app, "T1", "a red kite")
    await imagine(app, "T2", "a blue kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
    blue = await app.wait(lambda j: j.params.prompt == "a blue kite" and j.settled)
    assert (red.team_id, blue.team_id) == ("T1", "T2")
    by_prompt = {b["prompt"]: luma.output_bytes(g.id) for g in luma.generations.values()
                 for b in [g.body]}
    # Each image went to its own workspace's C1 thread, with that workspace's token.
    assert delivered(acme, red) == [by_prompt["a red kite"]]
    assert delivered(globex, blue) == [by_prompt["a blue kite"]]
    assert all(f.content != by_prompt["a blue kite"] for f in acme.files)
    assert all(f.content != by_prompt["a red kite"] for f in globex.files)
    assert "a red kite" in acme.message("C1", red.status_ts).text
    assert globex.message("C1", red.status_ts) is None or "a red kite" not in globex.message("C1", red.status_ts).text
    # Usage and the App Home name the workspace they are about (the person may be in both).
    response = await globex.post_command(app.events, "/luma", "usage", user_id="U1", channel_id="C1")
    assert response.body and "In *Globex*" in response.json()["text"]
    from lumabot.testing.fake_slack import app_home_opened_event

    await acme.post_event(app.events, app_home_opened_event("U1"))
    home = await acme.wait_for(lambda: next((v for v in acme.views if v.method == "views.publish"), None))
    headers = [b["text"]["text"] for b in home.view["blocks"] if b["type"] == "header"]
    assert "Usage and limits in Acme" in headers


async def test_uninstalling_one_workspace_cancels_its_waiting_jobs_and_leaves_the_other_alone(org, luma, oauth_bot):
    from lumabot.testing.fake_luma import Outcome
    from lumabot.testing.fake_slack import app_uninstalled_event

    app = await oauth_bot(LUMABOT_LUMA_CONCURRENCY="1")
    await app.install("T1")
    await app.install("T2")
    acme, globex = org.workspace("T1"), org.workspace("T2")
    # Globex's image holds Luma's one slot; Acme's waits in line behind it.
    luma.script(Outcome(hold=True))
    await imagine(app, "T2", "a blue kite")
    blue = await app.wait(lambda j: j.params.prompt == "a blue kite" and j.generation_id is not None)
    await imagine(app, "T1", "a red kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.status_ts is not None)
    assert not red.generation_id

    # Acme removes lumabot: Slack revokes its tokens, then tells the app.
    org.uninstall("T1")
    response = await acme.post_event(app.events, app_uninstalled_event())
    assert response.status == 200
    cancelled = await app.wait(lambda j: j.id == red.id and j.settled)
    assert cancelled.cancelled_by == "uninstalled" and cancelled.generation_id is None
    assert await app.bot.installations.bot("T1") is None

    # Globex is untouched: its image lands when Luma finishes it.
    luma.release(blue.generation_id)
    blue = await app.wait(lambda j: j.id == blue.id and j.settled)
    assert delivered(globex, blue) == [luma.output_bytes(blue.generation_id)]
    assert [b["prompt"] for b in luma.creates] == ["a blue kite"]   # nothing of Acme's went to Luma

    # Acme's later requests are refused without a crash, and nothing is recorded or sent.
    before = len(await app.jobs())
    response = await acme.post_command(app.events, "/imagine", "a green kite", user_id="U1", channel_id="C1")
    assert response.status in (200, 401)
    await imagine(app, "T2", "a yellow kite")   # the bot still answers Globex
    await app.wait(lambda j: j.params.prompt == "a yellow kite" and j.settled)
    assert len(await app.jobs()) == before + 1
    assert "a green kite" not in [b["prompt"] for b in luma.creates]


async def test_a_rotating_token_is_refreshed_before_it_expires(org, luma, oauth_bot):
    org.token_rotation = True
    org.token_lifetime = 30           # the installation's token expires within the rotation window
    app = await oauth_bot()
    await app.install("T1")
    (first,) = org.tokens("T1")
    org.token_lifetime = 43200        # refreshed tokens live 12 hours, as Slack's do
    org.advance(31)                   # the first token has expired: using it is "token_expired"
    await imagine(app, "T1", "a red kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
    assert red.state.value == "done"
    acme = org.workspace("T1")
    assert delivered(acme, red) == [luma.output_bytes(red.generation_id)]
    tokens = org.tokens("T1")
    assert len(tokens) == 2 and tokens[0] == first
    assert [e.get("grant_type") for e in org.exchanges] == [None, "refresh_token"]   # refreshed once
    bot = await app.bot.installations.bot("T1")
    assert bot is not None and bot.bot_token == tokens[1]


async def test_a_delivery_refreshes_a_token_about_to_expire(org, oauth_bot):
    org.token_rotation = True
    org.token_lifetime = 30
    app = await oauth_bot()
    await app.install("T1")
    org.token_lifetime = 43200
    workspace = await app.bot.workspaces.get("T1")   # what the runner asks before it posts
    assert workspace.token == org.tokens("T1")[1]
    assert (await workspace.client.auth_test())["team_id"] == "T1"


def test_oauth_mode_says_what_is_missing():
    from lumabot.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, SLACK_CLIENT_ID="1111.2222", SLACK_SIGNING_SECRET="s",
                      LUMA_AGENTS_API_KEY="luma-api-x", SLACK_APP_TOKEN="xapp-1")
    text = str(refused.value)
    assert "SLACK_CLIENT_SECRET is missing" in text and "SLACK_REDIRECT_URI is missing" in text
    assert "unset SLACK_APP_TOKEN" in text and "SLACK_BOT_TOKEN is missing" not in text
    settings = load_settings(_env_file=None, SLACK_CLIENT_ID="1111.2222", SLACK_CLIENT_SECRET="shh-client-secret",
                             SLACK_SIGNING_SECRET="s", LUMA_AGENTS_API_KEY="luma-api-x",
                             LUMABOT_PUBLIC_URL="https://lumabot.example.com/")
    assert settings.oauth_mode and settings.redirect_uri() == "https://lumabot.example.com/slack/oauth_redirect"
    assert "shh-client-secret" not in repr(settings)


async def test_check_reports_oauth_mode_and_the_install_link(tmp_path, luma):
    from lumabot.check import run_checks

    settings = load_settings(_env_file=None, SLACK_CLIENT_ID="1111.2222", SLACK_CLIENT_SECRET="c",
                             SLACK_SIGNING_SECRET="s", LUMA_AGENTS_API_KEY=luma.api_key,
                             LUMA_BASE_URL=luma.base_url, LUMABOT_PUBLIC_URL="https://lumabot.example.com",
                             LUMABOT_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    text = (await run_checks(settings)).render()
    assert "OAuth mode" in text
    assert "https://lumabot.example.com/slack/install" in text and "Redirect URL" in text
    assert "installations: none yet" in text


async def test_check_counts_the_installations_and_tries_the_encryption_key(org, oauth_bot):
    from cryptography.fernet import Fernet

    from lumabot.check import run_checks

    key = Fernet.generate_key().decode()
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=key)
    await app.install("T1")
    await app.install("T2")
    text = (await run_checks(app.bot.settings)).render()
    assert "installations: 2 workspaces or organisations installed (tokens encrypted)" in text
    other = app.bot.settings.model_copy(update={"encryption_key": SecretStr(Fernet.generate_key().decode())})
    report = await run_checks(other)
    assert report.problems == 1 and "none of the keys in LUMABOT_ENCRYPTION_KEY opens the stored tokens" in report.render()
    assert key not in report.render()


async def _answer(ws) -> str:
    """The private answer the person got through the request's response_url."""
    await ws.wait_for(lambda: ws.responses, message="no answer")
    return ws.responses[-1].text or ""


async def test_nothing_crosses_between_workspaces_with_the_same_ids(org, luma, oauth_bot):
    from lumabot.testing.fake_slack import block_actions_payload

    app = await oauth_bot()
    await app.install("T1")
    await app.install("T2")
    acme, globex = org.workspace("T1"), org.workspace("T2")
    await imagine(app, "T1", "a red kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
    # /edit in Globex's C1 does not find Acme's image in Acme's C1.
    response = await globex.post_command(app.events, "/edit", "make it night", user_id="U1", channel_id="C1")
    assert "no image" in response.body.lower() or "couldn't find" in response.body.lower(), response.body
    # A button carrying Acme's job id, clicked in Globex: as if the image did not exist.
    for action in ("reroll", "max", "delete"):
        globex.responses.clear()
        payload = block_actions_payload(action, value=red.id, team_id="T2", user_id="U1", channel_id="C1",
                                        message_ts=red.actions_ts, thread_ts=red.root_ts,
                                        response_url=globex.new_response_url())
        assert (await globex.post_interaction(app.events, payload)).status == 200
        if action != "delete":
            assert "no longer known" in await _answer(globex)
    # A reply in Globex that names Acme's thread is not an edit of Acme's image.
    await globex.user_posts(app.events, "make it night", channel="C1", user="U1", thread_ts=red.root_ts)
    # A session in Acme's C1 makes no prompt of Globex's C1 messages.
    response = await acme.post_command(app.events, "/luma", "session start", user_id="U1", channel_id="C1")
    assert response.status == 200
    await app.wait(lambda j: True)
    await globex.user_posts(app.events, "a lighthouse", channel="C1", user="U1")
    # Then a request Globex may make: the requests above were handled before it.
    await imagine(app, "T2", "a blue kite")
    await app.wait(lambda j: j.params.prompt == "a blue kite" and j.settled)
    assert [b["prompt"] for b in luma.creates] == ["a red kite", "a blue kite"]
    assert (await app.bot.store.jobs.get(red.id)).deleted is False
    assert [f.deleted for f in acme.files] == [False]


async def test_tokens_are_encrypted_at_rest_with_the_encryption_key(org, luma, oauth_bot, tmp_path):
    import sqlite3

    from cryptography.fernet import Fernet

    if os.environ.get("LUMABOT_TEST_STORE") == "postgresql":
        pytest.skip("reads the SQLite file")
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=old)
    await app.install("T1")
    (token,) = org.tokens("T1")
    with sqlite3.connect(tmp_path / "lumabot.db") as db:
        stored = db.execute("SELECT bot_token FROM slack_bots UNION ALL SELECT bot_token FROM slack_installations").fetchall()
    assert len(stored) == 2 and all(s[0].startswith("fernet:") and token not in s[0] for s in stored)
    await app.bot.stop()
    # A new key first, the old one kept: the stored tokens still open, lumabot works.
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=f"{new},{old}")
    await imagine(app, "T1", "a red kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
    assert delivered(org.workspace("T1"), red) == [luma.output_bytes(red.generation_id)]


def test_a_bad_encryption_key_is_a_configuration_error():
    from lumabot.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s",
                      LUMA_AGENTS_API_KEY="luma-api-x", LUMABOT_ENCRYPTION_KEY="not-a-key")
    assert "LUMABOT_ENCRYPTION_KEY is invalid" in str(refused.value)
    assert "Fernet.generate_key()" in str(refused.value) and "not-a-key" not in str(refused.value)


async def test_a_key_that_opens_no_token_refuses_the_workspace_without_crashing(org, luma, oauth_bot):
    from cryptography.fernet import Fernet

    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=Fernet.generate_key().decode())
    await app.install("T1")
    await app.install("T2")
    await app.bot.stop()
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=Fernet.generate_key().decode())   # the old key lost
    response = await org.workspace("T1").post_command(app.events, "/imagine", "a red kite",
                                                      user_id="U1", channel_id="C1")
    assert response.status in (200, 401) and "a red kite" not in response.body
    with pytest.raises(NotInstalled):
        await app.bot.workspaces.get("T2")
    assert await app.jobs() == [] and luma.creates == []


async def test_an_org_wide_install_serves_every_workspace_of_the_organisation(luma, oauth_bot):
    """Enterprise Grid: installed once for organisation E1, lumabot serves its workspaces T1 and
    T2 (requests carry both enterprise_id and team_id); after a restart too; an org-wide
    uninstall removes it from both."""
    from lumabot.testing.fake_slack import app_uninstalled_event

    org = FakeSlackOrg()
    grid = org.add_workspace("T1", name="Acme Sales", enterprise_id="E1")
    await org.start()
    try:
        app = await oauth_bot(slack=org)
        page = await app.install("T1", org_wide=True)
        assert "lumabot is installed in <b>Org E1</b>" in page
        bot = await app.bot.installations.bot("T2", "E1")
        assert bot is not None and bot.is_enterprise_install and bot.team_id is None
        await grid.post_command(app.events, "/imagine", "a red kite", user_id="U1", channel_id="C1")
        await grid.post_command(app.events, "/imagine", "a blue kite", user_id="U7", channel_id="C2", team_id="T2")
        red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
        blue = await app.wait(lambda j: j.params.prompt == "a blue kite" and j.settled)
        assert (red.team_id, blue.team_id) == ("T1", "T2")
        assert [f.content for f in grid.files_in_thread("C2", blue.root_ts)] == [luma.output_bytes(blue.generation_id)]
        assert await app.bot.store.tenants.in_enterprise("E1") == ["T1", "T2"]
        await app.bot.stop()

        # After a restart the organisation of each workspace is known: T2's client is found
        # before T2 sends anything.
        app = await oauth_bot(slack=org)
        workspace = await app.bot.workspaces.get("T2")
        assert workspace.installation.enterprise_install and workspace.installation.enterprise_id == "E1"

        org.uninstall("T1")
        response = await grid.post_event(app.events, app_uninstalled_event())
        assert response.status == 200
        await app.wait(lambda j: True)
        for team in ("T1", "T2"):
            with pytest.raises(NotInstalled):
                await app.bot.workspaces.get(team)
        assert await app.bot.installations.bot("T2", "E1") is None
    finally:
        await org.stop()


async def test_a_workspace_install_on_enterprise_grid_is_found_by_its_organisation(luma, oauth_bot):
    org = FakeSlackOrg()
    ws = org.add_workspace("T3", name="Initech", enterprise_id="E2")
    await org.start()
    try:
        app = await oauth_bot(slack=org)
        await app.install("T3")
        await ws.post_command(app.events, "/imagine", "a green kite", user_id="U1", channel_id="C1")
        job = await app.wait(lambda j: j.params.prompt == "a green kite" and j.settled)
        assert [f.content for f in ws.files_in_thread("C1", job.root_ts)] == [luma.output_bytes(job.generation_id)]
        assert await app.bot.store.tenants.enterprise_of("T3") == "E2"
    finally:
        await org.stop()


async def test_each_workspace_keeps_its_own_history_and_can_forget_all_of_it(org, luma, oauth_bot):
    """Retention and forgetting per workspace: Acme's admin keeps history 1 day and then deletes
    everything of Acme; Globex's history (same ids) stays."""
    app = await oauth_bot()
    await app.install("T1")
    await app.install("T2")
    acme, globex = org.workspace("T1"), org.workspace("T2")
    acme.set_user("U9", is_admin=True)
    for team in ("T1", "T2"):
        await imagine(app, team, f"a kite in {team}")
    for team in ("T1", "T2"):
        await app.wait(lambda j: j.params.prompt == f"a kite in {team}" and j.settled)
    store = app.bot.store
    # Both images were made "10 days ago" (as far as the sweep can tell).
    for job in await app.jobs():
        job.created_at -= 10 * 86400
        await store.jobs.save(job)

    async def admin(ws, text: str) -> str:
        ws.responses.clear()
        response = await ws.post_command(app.events, "/luma", f"admin {text}", user_id="U9", channel_id="C1")
        assert response.status == 200
        return response.body

    assert "Done: history kept 1 day" in await admin(acme, "retention 1")
    assert "Retention sweep done" in await _answer(acme)
    assert [j.team_id for j in await app.jobs()] == ["T2"]   # Globex keeps its 90 days
    # Not an admin in Globex: the same user id there is somebody else.
    assert "admin" in (await admin(globex, "forget-workspace confirm")).lower()
    assert [j.team_id for j in await app.jobs()] == ["T2"]

    await imagine(app, "T1", "another kite")
    await app.wait(lambda j: j.params.prompt == "another kite" and j.settled)
    assert "cannot be undone" in await admin(acme, "forget-workspace")
    assert len(await app.jobs()) == 2   # asked, not done
    await admin(acme, "forget-workspace confirm")
    assert "Deleted everything lumabot kept about this workspace" in await _answer(acme)
    assert [j.team_id for j in await app.jobs()] == ["T2"]
    assert (await store.policy.usage("T1", 0)).images == 0 and (await store.policy.usage("T2", 0)).images == 1


async def test_an_install_waits_for_a_long_write_instead_of_failing(org, oauth_bot):
    """slack_sdk's stores share the database with lumabot's own writes: on SQLite an install that
    meets a write held longer than SQLite's busy timeout (1 s) waits for it, as lumabot's own
    units of work do, rather than answering 500 ("database is locked")."""
    app = await oauth_bot()
    if app.bot.store.db.name != "sqlite":
        pytest.skip("SQLite's single writer")
    held = asyncio.Event()

    async def long_write() -> None:
        async with app.bot.store.db.write():
            held.set()
            await asyncio.sleep(1.3)   # the situation under test: a lock held past the busy timeout

    writer = asyncio.create_task(long_write())
    await held.wait()
    page = await app.install("T1")
    await writer
    assert "lumabot is installed" in page


async def test_another_replica_forgets_an_uninstalled_workspace_at_once(org, oauth_bot, pg_cluster):
    """Several replicas (PostgreSQL): the installation one replica deleted is dropped from the
    others' caches by its NOTIFY, not when their cache would have expired."""
    from lumabot.testing.fake_slack import app_uninstalled_event

    url = await pg_cluster.new_database()
    a = await oauth_bot(LUMABOT_DATABASE_URL=url, LUMABOT_REPLICA_ID="a")
    b = await oauth_bot(LUMABOT_DATABASE_URL=url, LUMABOT_REPLICA_ID="b")
    await a.install("T1")
    assert (await b.bot.workspaces.get("T1")).token == org.tokens("T1")[0]   # b has it cached now
    org.uninstall("T1")
    assert (await org.workspace("T1").post_event(a.events, app_uninstalled_event())).status == 200
    async def forgotten_by_b() -> bool:
        try:
            await b.bot.workspaces.get("T1")
        except NotInstalled:
            return True
        return False

    # (the cache itself would keep it for a minute)
    await org.workspace("T1").wait_for(forgotten_by_b, timeout=10,
                                       message="replica b still serves the uninstalled workspace")


async def test_an_organisation_policy_holds_every_workspace_which_can_only_tighten_it(luma, oauth_bot):
    """Enterprise Grid (issue #23): the organisation's admins set a policy for all its workspaces
    (`/luma admin org …`); a workspace's own setting applies only where it is tighter."""
    org = FakeSlackOrg()
    grid = org.add_workspace("T1", name="Acme Sales", enterprise_id="E1")
    grid.set_user("UORG", enterprise_id="E1", org_admin=True)
    grid.set_user("U1")
    await org.start()
    try:
        app = await oauth_bot(slack=org)
        await app.install("T1", org_wide=True)

        async def luma_admin(text: str, *, user: str = "UORG", team: str = "T1") -> str:
            response = await grid.post_command(app.events, "/luma", f"admin {text}", user_id=user, channel_id="C1",
                                               team_id=team)
            assert response.status == 200, response.body
            return json.loads(response.body)["text"] if response.body else await _answer(grid)

        assert "Nothing was changed" in await luma_admin("org budget day 0.12", user="U1")
        assert "Done for every workspace of the organisation" in await luma_admin("org budget day 0.12")
        assert "Done" in await luma_admin("budget day 5", team="T2")      # looser: the organisation's holds
        assert "Done" in await luma_admin("max nobody", team="T1")        # tighter: T1's holds in T1
        response = await grid.post_command(app.events, "/imagine", "pricey --n 4", user_id="U1", channel_id="C2",
                                           team_id="T2")
        assert "daily Luma budget of $0.12" in json.loads(response.body)["text"]
        response = await grid.post_command(app.events, "/imagine", "best --max", user_id="U1", channel_id="C1")
        assert "uni-1-max is for nobody" in json.loads(response.body)["text"]
        response = await grid.post_command(app.events, "/imagine", "best --max", user_id="U1", channel_id="C2",
                                           team_id="T2")
        assert response.status == 200 and not response.body          # T2 did not tighten that
        await app.wait(lambda j: j.team_id == "T2" and j.settled)
        assert "$0.12 a day" in await luma_admin("", team="T2")        # the overview shows what is in force
        assert luma.creates and all(c["prompt"] == "best" for c in luma.creates)
    finally:
        await org.stop()
