"""Slack calling the bot in HTTP mode: signed requests (`SlackPeer`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

from .payloads import (
    event_callback,
    _from_external_team,
    slash_command_payload,
    url_verification_payload,
)

if TYPE_CHECKING:
    from .server import FakeSlack


# ----------------------------------------------------------------------------------------------
# signed requests: Slack -> bot
# ----------------------------------------------------------------------------------------------


def sign_request(body: bytes | str, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body` (v0 HMAC-SHA256 of "v0:{ts}:{body}")."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(ts)}


class PeerResponse(tuple):
    """The bot's answer: unpacks as ``(status, body_text)``; also ``.elapsed``, ``.headers``, ``.json()``."""

    status: int
    body: str
    elapsed: float
    headers: dict

    def __new__(cls, status: int, body: str, *, elapsed: float, headers: dict) -> "PeerResponse":
        self = super().__new__(cls, (status, body))
        self.status = status
        self.body = body
        self.elapsed = elapsed
        self.headers = headers
        return self

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SlackPeer:
    """Plays Slack sending signed HTTP requests to the bot (HTTP mode)."""

    def __init__(
        self,
        fake: FakeSlack | None = None,
        *,
        signing_secret: str | None = None,
        timeout: float = 10.0,
    ):
        self.fake = fake
        self._signing_secret = signing_secret
        self.timeout = timeout

    @property
    def signing_secret(self) -> str:
        if self._signing_secret is not None:
            return self._signing_secret
        if self.fake is not None:
            return self.fake.signing_secret
        raise ValueError("no signing secret")

    async def post_raw(
        self,
        app_url: str,
        body: bytes,
        *,
        content_type: str,
        headers: dict[str, str] | None = None,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
    ) -> PeerResponse:
        h = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        if sign:
            h.update(sign_request(body, signing_secret or self.signing_secret, timestamp))
        h.update(headers or {})
        t0 = time.monotonic()
        async with aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as session:
            async with session.post(app_url, data=body, headers=h) as resp:
                text = await resp.text()
                return PeerResponse(resp.status, text, elapsed=time.monotonic() - t0, headers=dict(resp.headers))

    def _team(self) -> dict[str, Any]:
        if self.fake is None:
            return {}
        team: dict[str, Any] = {"team_id": self.fake.team_id}
        if self.fake.enterprise_id:   # a workspace of an Enterprise Grid organisation
            team.update(enterprise_id=self.fake.enterprise_id, enterprise_install=self.fake.enterprise_install)
        return team

    async def post_command(
        self,
        app_url: str,
        command: str,
        text: str = "",
        *,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        external_team: str | None = None,
        **kw: Any,
    ) -> PeerResponse:
        """POST a slash command (form-encoded). kw go to `slash_command_payload`. With
        `external_team`, the person is from that organisation (a Slack Connect channel): the
        payload's team_id is theirs."""
        kw = {**self._team(), **kw}
        if external_team:
            kw["team_id"] = external_team
        if self.fake is not None:
            kw.setdefault("api_app_id", self.fake.app_id)
        payload = slash_command_payload(command, text, **kw)
        if self.fake is not None:
            payload = self.fake.prepare_outgoing("slash_commands", payload)
        body = urlencode(payload).encode()
        return await self.post_raw(
            app_url,
            body,
            content_type="application/x-www-form-urlencoded",
            sign=sign,
            timestamp=timestamp,
            signing_secret=signing_secret,
        )

    async def post_event(
        self,
        app_url: str,
        event: dict,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        external_team: str | None = None,
    ) -> PeerResponse:
        """POST an Events API request (JSON). A bare event is wrapped with `event_callback`.
        With `external_team`, the event comes from a person of that organisation in a Slack
        Connect channel: envelope and event name their team; only `authorizations` names the
        installing workspace."""
        if event.get("type") in ("event_callback", "url_verification", "app_rate_limited"):
            payload = dict(event)
            if event_id and payload.get("type") == "event_callback":
                payload["event_id"] = event_id
        else:
            kw: dict[str, Any] = {**self._team()}
            if self.fake is not None:
                kw.update(api_app_id=self.fake.app_id, bot_user_id=self.fake.bot_user_id)
            if external_team:
                event = {**event, "team": external_team, "user_team": external_team}
                kw.update(installed_team_id=kw.get("team_id"), team_id=external_team,
                          is_ext_shared_channel=True)
            payload = event_callback(event, event_id=event_id, **kw)
        if self.fake is not None:
            payload = self.fake.prepare_outgoing("events_api", payload)
        headers: dict[str, str] = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        elif retry_reason:
            headers["X-Slack-Retry-Reason"] = retry_reason
        return await self.post_raw(
            app_url,
            json.dumps(payload).encode(),
            content_type="application/json",
            headers=headers,
            sign=sign,
            timestamp=timestamp,
            signing_secret=signing_secret,
        )

    async def post_interaction(
        self,
        app_url: str,
        payload: dict,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        external_team: str | None = None,
    ) -> PeerResponse:
        """POST an interactivity payload (form field ``payload=<json>``). With `external_team`
        the person is from that organisation (Slack Connect): `team.id` and `user.team_id` are
        theirs, and a view's `app_installed_team_id` names the installing workspace."""
        if external_team:
            payload = _from_external_team(payload, external_team)
        if self.fake is not None:
            payload = self.fake.prepare_outgoing("interactive", payload)
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post_raw(
            app_url,
            body,
            content_type="application/x-www-form-urlencoded",
            sign=sign,
            timestamp=timestamp,
            signing_secret=signing_secret,
        )

    async def post_url_verification(self, app_url: str, challenge: str | None = None, **kw: Any) -> PeerResponse:
        return await self.post_event(app_url, url_verification_payload(challenge), **kw)
