"""`lumabot check` against the fake Slack and fake Luma: the report, the exit code, no secrets."""

from __future__ import annotations

import asyncio
import secrets
import socket
from pathlib import Path

import pytest

from lumabot.check import PROBE_GENERATION_ID, REQUIRED_BOT_SCOPES, main, run_checks
from lumabot.config import load_settings
from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.fake_slack import FakeSlack

from .conftest import bot_env

MANIFEST_PATH = Path(__file__).resolve().parents[1] / "manifest.yml"
SECRET_VARS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "LUMA_AGENTS_API_KEY")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_env(monkeypatch, tmp_path, env: dict[str, str]) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _assert_no_secret(out: str, env: dict[str, str]) -> None:
    for var in SECRET_VARS:
        value = env.get(var)
        if not value:
            continue
        assert value not in out, f"{var} leaked"
        body = value.removeprefix("xoxb-").removeprefix("xapp-").removeprefix("luma-api-")
        assert body not in out, f"part of {var} leaked"


async def _check(monkeypatch, capsys, tmp_path, env: dict[str, str]) -> tuple[int, str]:
    """Run `lumabot check` in-process (main() runs its own event loop: in a thread)."""
    _set_env(monkeypatch, tmp_path, env)
    code = await asyncio.to_thread(main)
    captured = capsys.readouterr()
    out = captured.out + captured.err
    _assert_no_secret(out, env)
    return code, out


async def test_all_good_http_mode(monkeypatch, capsys, tmp_path, slack, luma):
    env = bot_env(tmp_path, slack, luma, PORT="3456")
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "lumabot check"
    assert lines[1].startswith("✓ configuration (HTTP mode on port 3456, database sqlite:///")
    assert f"✓ Slack: team Fake Team ({slack.team_id}) as @lumabot ({slack.bot_user_id})" in out
    assert "✓ Slack scopes: all 13 bot scopes of manifest.yml granted" in out
    assert f"✓ Luma: the API key works ({luma.base_url})" in out
    assert lines[-1] == "All checks passed."
    assert "✗" not in out
    assert slack.count_calls("auth.test") == 1
    assert slack.count_calls("apps.connections.open") == 0  # HTTP mode: no app token to check
    assert [r.generation_id for r in luma.requests] == [PROBE_GENERATION_ID]
    assert not luma.creates  # nothing paid for


async def test_run_checks_returns_report(tmp_path, slack, luma):
    settings = load_settings(_env_file=None, **bot_env(tmp_path, slack, luma))
    report = await run_checks(settings)
    assert report.exit_code == 0 and report.problems == 0
    assert [c.ok for c in report.checks] == [True, True, True, True, True]
    assert report.render().startswith("lumabot check\n✓ configuration (HTTP mode on port 3000")
    assert "✓ database: schema revision none yet; the next start migrates it to" in report.render()


async def test_check_reports_the_postgresql_schema_without_its_password(tmp_path, slack, luma, pg_cluster):
    from lumabot.store import open_store

    url = await pg_cluster.new_database()
    base, _, query = url.partition("?")
    with_password = base.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@") + "?" + query
    settings = load_settings(_env_file=None, **{**bot_env(tmp_path, slack, luma),
                                                 "LUMABOT_DATABASE_URL": with_password})
    text = (await run_checks(settings)).render()
    from lumabot.store import migrate, schema_status

    assert f"✓ database: schema revision {migrate.head()} (up to date)" in text
    assert "s3cret-pw" not in text and "database postgresql:" in text
    store = open_store(settings.database_url)
    await store.open()  # the same database serves lumabot
    await store.close()
    assert await schema_status(settings.database_url) == (migrate.head(), migrate.head())


async def test_missing_scopes_are_named(monkeypatch, capsys, tmp_path, luma):
    granted = [s for s in REQUIRED_BOT_SCOPES if s not in ("reactions:read", "users:read")]
    async with FakeSlack(scopes=granted) as slack:
        code, out = await _check(monkeypatch, capsys, tmp_path, bot_env(tmp_path, slack, luma))
    assert code == 1, out
    assert "✓ Slack: team Fake Team" in out
    assert ("✗ Slack scopes: missing reactions:read, users:read — reinstall the app from manifest.yml"
            in out)
    assert "✓ Luma: the API key works" in out
    assert out.splitlines()[-1] == "1 problem found."


async def test_extra_scopes_are_fine(monkeypatch, capsys, tmp_path, luma):
    async with FakeSlack(scopes=[*REQUIRED_BOT_SCOPES, "channels:read"]) as slack:
        code, out = await _check(monkeypatch, capsys, tmp_path, bot_env(tmp_path, slack, luma))
    assert code == 0, out


@pytest.mark.parametrize("how", ["invalid_auth", "wrong_token", "revoked"])
async def test_refused_bot_token(monkeypatch, capsys, tmp_path, slack, luma, how):
    env = bot_env(tmp_path, slack, luma)
    expected = {"invalid_auth": "invalid_auth", "wrong_token": "invalid_auth", "revoked": "token_revoked"}[how]
    if how == "invalid_auth":
        slack.fail_next("auth.test", error="invalid_auth")
    elif how == "wrong_token":
        env["SLACK_BOT_TOKEN"] = "xoxb-not-the-right-one-42"
    else:
        slack.revoke_token(slack.bot_token)
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1, out
    assert f"✗ Slack: SLACK_BOT_TOKEN was refused by Slack ({expected})" in out
    assert "Slack scopes" not in out  # nothing to compare without a working token
    assert "✓ Luma: the API key works" in out  # the other checks still ran
    assert out.splitlines()[-1] == "1 problem found."


async def test_other_slack_error(monkeypatch, capsys, tmp_path, slack, luma):
    slack.fail_next("auth.test", error="team_access_not_granted")
    code, out = await _check(monkeypatch, capsys, tmp_path, bot_env(tmp_path, slack, luma))
    assert code == 1
    assert "✗ Slack: auth.test failed (team_access_not_granted)" in out


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_luma_key(monkeypatch, capsys, tmp_path, slack, luma, status):
    env = bot_env(tmp_path, slack, luma)
    if status == 401:
        env["LUMA_AGENTS_API_KEY"] = "luma-api-wrong-key-123"
    else:
        luma.fail_next("GET", 403, "Account suspended")
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1, out
    assert f"✗ Luma: LUMA_AGENTS_API_KEY was refused by Luma ({status} " in out
    assert "✓ Slack: team Fake Team" in out
    assert out.splitlines()[-1] == "1 problem found."


async def test_luma_unreachable(monkeypatch, capsys, tmp_path, slack, luma):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    env = bot_env(tmp_path, slack, luma, LUMA_BASE_URL=url)
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1, out
    assert f"✗ Luma: could not reach {url} (ConnectError)" in out


async def test_luma_wrong_base_url(monkeypatch, capsys, tmp_path, slack, luma):
    # A 404 that is not "Generation not found" means the URL, not the key, is wrong.
    env = bot_env(tmp_path, slack, luma, LUMA_BASE_URL=luma.root_url + "/v1/oops")
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1, out
    assert "is LUMA_BASE_URL right?" in out


async def test_luma_server_error(monkeypatch, capsys, tmp_path, slack, luma):
    luma.fail_next("GET", 502, "Bad Gateway")
    code, out = await _check(monkeypatch, capsys, tmp_path, bot_env(tmp_path, slack, luma))
    assert code == 1
    assert "✗ Luma: " in out and "502" in out


async def test_config_errors_exit_2_without_network(monkeypatch, capsys, tmp_path, slack, luma):
    env = {"LUMABOT_DATABASE_URL": "mysql://db", "SLACK_API_URL": slack.api_url,
           "LUMA_BASE_URL": luma.base_url, "SLACK_BOT_TOKEN": "xapp-oops-wrong-kind-77"}
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 2, out
    lines = out.splitlines()
    assert lines[0] == "lumabot check"
    assert lines[1] == "✗ configuration: 4 problems"
    problems = [line.strip() for line in lines[2:6]]
    for var in ("LUMABOT_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LUMA_AGENTS_API_KEY"):
        assert sum(p.startswith(var) for p in problems) == 1, (var, problems)
    assert "Fix the configuration" in lines[-1]
    assert "postgres://db" not in out  # values are never echoed
    assert slack.calls == [] and luma.requests == []


async def test_socket_mode_checks_app_token(monkeypatch, capsys, tmp_path, slack, luma):
    env = bot_env(tmp_path, slack, luma, SLACK_APP_TOKEN=slack.app_token)
    env.pop("SLACK_SIGNING_SECRET")
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 0, out
    assert "✓ configuration (Socket Mode, database " in out
    assert "✓ Slack app token: Socket Mode connections can be opened" in out
    assert slack.count_calls("apps.connections.open") == 1
    assert slack.socket_connections_total == 0  # the websocket is never opened
    assert "ws://" not in out  # nor its ticket URL printed


@pytest.mark.parametrize("error,expected", [
    ("invalid_auth", "SLACK_APP_TOKEN was refused by Slack (invalid_auth)"),
    ("missing_scope", "SLACK_APP_TOKEN lacks the connections:write scope"),
])
async def test_socket_mode_bad_app_token(monkeypatch, capsys, tmp_path, slack, luma, error, expected):
    env = bot_env(tmp_path, slack, luma, SLACK_APP_TOKEN=slack.app_token)
    slack.fail_next("apps.connections.open", error=error)
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1, out
    assert f"✗ Slack app token: {expected}" in out
    assert "✓ Slack: team Fake Team" in out


async def test_socket_mode_wrong_app_token(monkeypatch, capsys, tmp_path, slack, luma):
    env = bot_env(tmp_path, slack, luma, SLACK_APP_TOKEN="xapp-1-A0-wrong-token")
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1, out
    assert "✗ Slack app token: SLACK_APP_TOKEN was refused by Slack (invalid_auth)" in out


async def test_no_secret_ever_printed(monkeypatch, capsys, tmp_path):
    bot, app = f"xoxb-{secrets.token_hex(12)}", f"xapp-{secrets.token_hex(12)}"
    key, signing = f"luma-api-{secrets.token_hex(12)}", secrets.token_hex(16)
    async with FakeSlack(bot_token=bot, app_token=app, signing_secret=signing,
                         scopes=["commands"]) as slack, FakeLuma(api_key=key) as luma:
        env = bot_env(tmp_path, slack, luma, SLACK_APP_TOKEN=app)
        # Servers that echo the secrets back in their errors: still never printed.
        slack.fail_next("apps.connections.open", error=f"bad_{app}")
        luma.fail_next("GET", 401, f"Invalid API key {key} (bot {bot}, secret {signing})")
        code, out = await _check(monkeypatch, capsys, tmp_path, env)
        # And with every check passing.
        code_ok, out_ok = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 1 and code_ok == 1  # scopes are missing in both runs
    assert "[redacted]" in out
    for text in (out, out_ok):
        for secret in (bot, app, key, signing):
            body = secret.split("-", 2)[-1] if secret.startswith("luma-api-") else secret.split("-", 1)[-1]
            for i in range(len(body) - 5):  # not even partially: no 6 characters in a row
                assert body[i:i + 6] not in text, "a secret leaked"


async def test_config_error_never_prints_values(monkeypatch, capsys, tmp_path):
    env = {"SLACK_BOT_TOKEN": "xapp-abcdef123456", "LUMA_AGENTS_API_KEY": "luma-api-zyxwvu987654",
           "SLACK_SIGNING_SECRET": "s3cr3t-signing-value", "PORT": "not-a-port"}
    code, out = await _check(monkeypatch, capsys, tmp_path, env)
    assert code == 2
    assert "PORT is invalid" in out
    assert "not-a-port" not in out
    assert "abcdef" not in out and "zyxwvu" not in out and "s3cr3t" not in out


def test_main_runs_outside_an_event_loop(monkeypatch, capsys, tmp_path):
    # The `lumabot check` entry point as the CLI calls it (config errors: no servers needed).
    monkeypatch.chdir(tmp_path)
    from lumabot.cli import main as cli_main

    assert cli_main(["check"]) == 2
    out = capsys.readouterr().out
    assert "SLACK_BOT_TOKEN is missing" in out and "LUMA_AGENTS_API_KEY is missing" in out


def test_required_scopes_match_manifest():
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(MANIFEST_PATH.read_text())
    assert REQUIRED_BOT_SCOPES == manifest["oauth_config"]["scopes"]["bot"]


def test_short_values_do_not_mangle_the_report():
    from lumabot.check import _redact

    assert _redact("Slack: team Acme", ["k", "", "xoxb-123456789"]) == "Slack: team Acme"
    assert _redact("echo xoxb-123456789!", ["xoxb-123456789"]) == "echo [redacted]!"


def test_the_minimal_scopes_pass_with_what_they_turn_off():
    from lumabot.check import READ_CHANNEL_SCOPES, REQUIRED_BOT_SCOPES, _scopes_check

    minimal = ",".join(s for s in REQUIRED_BOT_SCOPES if s not in READ_CHANNEL_SCOPES)
    check = _scopes_check(minimal)
    assert check.ok and "manifest.minimal.yml" in check.text and "creative sessions" in check.text
    assert not _scopes_check(minimal.replace("users:read", "")).ok  # anything else missing still fails


def test_an_install_from_before_the_studio_passes_with_the_studio_off():
    from lumabot.check import REQUIRED_BOT_SCOPES, _scopes_check

    before = ",".join(s for s in REQUIRED_BOT_SCOPES if s != "assistant:write")
    check = _scopes_check(before)
    assert check.ok and "private studio" in check.text and "creative sessions" not in check.text
