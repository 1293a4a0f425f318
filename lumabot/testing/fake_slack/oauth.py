"""Slack for an app installed in several workspaces (OAuth mode), on 127.0.0.1.

Real Slack has one Web API host for every workspace: the token says which workspace a call is
for. `FakeSlackOrg` plays that front door over several `FakeSlack` workspaces (each with its own
records and ids, which may overlap between workspaces: `C1` and `U1` in both):

- ``GET /oauth/v2/authorize``: the page a person approves lumabot on. The person is played by
  `approve(url, team_id)`: Slack redirects to the app's redirect URI with a one-time ``code`` and
  the app's ``state`` (or ``error=access_denied`` when they cancel).
- ``POST /api/oauth.v2.access``: the app's client id and secret (HTTP Basic, or form fields)
  and a code (once, within `code_ttl`, with the same redirect_uri) give the workspace's bot
  token, as Slack answers it (`team`, `enterprise`, `authed_user`, `scope`, `bot_user_id`,
  `is_enterprise_install`). With `token_rotation`, the token is an ``xoxe.xoxb-`` one that expires
  after `token_lifetime` seconds, with a ``refresh_token``; ``grant_type=refresh_token`` gives
  a new pair (the refresh token is single use: Slack's documented behaviour after a refresh).
  Errors: ``invalid_client_id``, ``bad_client_secret``, ``invalid_code``, ``code_already_used``,
  ``bad_redirect_uri``, ``invalid_refresh_token``, ``invalid_grant_type``.
- ``/api/<method>`` with a token: answered by the workspace the token belongs to (the request
  handed to its fake as it came); an expired token answers ``token_expired``, an unknown one
  ``invalid_auth``.
- `uninstall(team_id)` revokes the workspace's tokens, as Slack does before it sends
  ``app_uninstalled``.
- Enterprise Grid: a workspace added with `enterprise_id` is one of that organisation's; its
  payloads carry ``enterprise_id``. `approve(..., org_wide=True)` installs lumabot for the whole
  organisation: ``oauth.v2.access`` answers ``team: null`` and ``is_enterprise_install: true``,
  and the one token works for every workspace of it. The organisation's Slack is played by the
  fake of the workspace that approved (channels are the organisation's, as on Grid): requests
  from its other workspaces are sent through it with their `team_id`.

`advance(seconds)` moves the fake's clock (token expiry) forward.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
from aiohttp import web

from .server import FakeSlack


@dataclass
class _Code:
    team_id: str
    user_id: str
    redirect_uri: str | None
    scopes: list[str]
    issued: float
    used: bool = False
    org_wide: bool = False


@dataclass
class Approval:
    """What a person approved on the authorize page (as Slack records it)."""

    team_id: str
    user_id: str
    scopes: list[str]
    state: str | None
    redirect_uri: str | None


@dataclass
class _Grant:
    """One workspace's tokens, as the fake issued them."""

    team_id: str
    tokens: dict[str, float | None] = field(default_factory=dict)   # bot token -> expires at
    refresh_tokens: set[str] = field(default_factory=set)


class FakeSlackOrg:
    """``async with FakeSlackOrg() as slack: ws = slack.add_workspace("T1"); ...``"""

    def __init__(self, *, client_id: str = "1111.2222", client_secret: str = "fake-client-secret",
                 signing_secret: str = "test-signing-secret", token_rotation: bool = False,
                 token_lifetime: float = 43200.0, code_ttl: float = 600.0, app_id: str = "A0TEST",
                 host: str = "127.0.0.1"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.signing_secret = signing_secret
        self.token_rotation = token_rotation
        self.token_lifetime = token_lifetime
        self.code_ttl = code_ttl
        self.app_id = app_id
        self.host = host
        self.workspaces: dict[str, FakeSlack] = {}
        self.enterprises: dict[str, str | None] = {}      # team id -> its Grid organisation
        self.approvals: list[Approval] = []
        self.exchanges: list[dict[str, Any]] = []          # every oauth.v2.access call's parameters
        self.base_url = ""
        self.api_url = ""
        self._offset = 0.0
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._token_team: dict[str, str] = {}   # every bot token issued -> its workspace
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- workspaces ----------------------------------------------------------------------------
    def add_workspace(self, team_id: str, *, name: str | None = None, enterprise_id: str | None = None,
                      bot_user_id: str | None = None, **kw: Any) -> FakeSlack:
        """A workspace lumabot can be installed in (started with the org, or at once if the org
        runs). Its bot has no token until someone installs lumabot there."""
        ws = FakeSlack(team_id=team_id, team_name=name or f"Workspace {team_id}",
                       team_domain=(name or team_id).lower().replace(" ", "-"),
                       bot_user_id=bot_user_id or f"UBOT{team_id}", bot_id=f"B{team_id}",
                       signing_secret=self.signing_secret, app_id=self.app_id,
                       bot_token=f"xoxb-unissued-{secrets.token_hex(8)}", **kw)
        ws._bot_tokens.clear()   # tokens come from oauth.v2.access only
        ws.enterprise_id = enterprise_id
        self.workspaces[team_id] = ws
        self.enterprises[team_id] = enterprise_id
        return ws

    def workspace(self, team_id: str) -> FakeSlack:
        return self.workspaces[team_id]

    def uninstall(self, team_id: str) -> None:
        """lumabot is removed from the workspace: its tokens stop working at once."""
        grant = self._grants.pop(team_id, None)
        if grant is not None:
            ws = self.workspaces[team_id]
            for token in grant.tokens:
                ws.revoke_token(token)
                self._token_team.pop(token, None)

    def tokens(self, team_id: str) -> list[str]:
        """The bot tokens issued for the workspace, oldest first."""
        grant = self._grants.get(team_id)
        return list(grant.tokens) if grant else []

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens expire by it)."""
        self._offset += seconds

    def now(self) -> float:
        return time.time() + self._offset

    # -- the person on the authorize page -------------------------------------------------------
    async def approve(self, authorize_url: str, team_id: str, *, user_id: str = "U1",
                      cancel: bool = False, org_wide: bool = False) -> str:
        """A person opens the app's authorize link and approves (or cancels) in workspace
        `team_id`; returns where Slack sends their browser (the app's redirect URI with
        ``code`` and ``state``)."""
        assert self._session is not None, "start the fake first"
        url = authorize_url + ("&" if "?" in authorize_url else "?") + urlencode(
            {"fake_team": team_id, "fake_user": user_id, "fake_cancel": "1" if cancel else "",
             "fake_org": "1" if org_wide else ""})
        async with self._session.get(url, allow_redirects=False) as resp:
            if resp.status != 302:
                raise AssertionError(f"authorize page answered {resp.status}: {await resp.text()}")
            return resp.headers["Location"]

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="Invalid client_id parameter")
        team_id, user_id = q.get("fake_team", ""), q.get("fake_user", "U1")
        if team_id not in self.workspaces:
            return web.Response(status=400, text="unknown workspace")
        redirect = q.get("redirect_uri")
        if not redirect:
            return web.Response(status=400, text="redirect_uri did not match any configured URIs")
        scopes = [s for s in q.get("scope", "").split(",") if s]
        self.approvals.append(Approval(team_id, user_id, scopes, q.get("state"), redirect))
        if q.get("fake_cancel"):
            target = {"error": "access_denied", "state": q.get("state", "")}
        else:
            code = f"{int(self.now())}.{secrets.token_hex(12)}"
            self._codes[code] = _Code(team_id, user_id, redirect, scopes, self.now(),
                                      org_wide=bool(q.get("fake_org")) and bool(self.enterprises.get(team_id)))
            target = {"code": code, "state": q.get("state", "")}
        raise web.HTTPFound(redirect + ("&" if "?" in redirect else "?") + urlencode(target))

    # -- oauth.v2.access -----------------------------------------------------------------------
    def _client_auth(self, request: web.Request, params: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            return client_id, secret
        return params.get("client_id", ""), params.get("client_secret", "")

    def _oauth_access(self, request: web.Request, params: dict[str, str]) -> dict[str, Any]:
        self.exchanges.append({k: v for k, v in params.items() if k != "client_secret"})
        client_id, secret = self._client_auth(request, params)
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant_type = params.get("grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            return self._refresh(params.get("refresh_token", ""))
        if grant_type != "authorization_code":
            return {"ok": False, "error": "invalid_grant_type"}
        code = self._codes.get(params.get("code", ""))
        if code is None or self.now() - code.issued > self.code_ttl:
            return {"ok": False, "error": "invalid_code"}
        if code.used:
            return {"ok": False, "error": "code_already_used"}
        if params.get("redirect_uri") and params["redirect_uri"] != code.redirect_uri:
            return {"ok": False, "error": "bad_redirect_uri"}
        code.used = True
        ws = self.workspaces[code.team_id]
        ws.scopes = list(code.scopes)
        enterprise = self.enterprises.get(code.team_id)
        ws.enterprise_install = code.org_wide
        return {
            "ok": True, "app_id": self.app_id,
            "authed_user": {"id": code.user_id},
            "scope": ",".join(code.scopes), "token_type": "bot",
            **self._issue(code.team_id),
            "bot_user_id": ws.bot_user_id,
            "team": None if code.org_wide else {"id": ws.team_id, "name": ws.team_name},
            "enterprise": {"id": enterprise, "name": f"Org {enterprise}"} if enterprise else None,
            "is_enterprise_install": code.org_wide,
        }

    def _issue(self, team_id: str) -> dict[str, Any]:
        grant = self._grants.setdefault(team_id, _Grant(team_id))
        ws = self.workspaces[team_id]
        if not self.token_rotation:
            token = f"xoxb-{team_id}-{secrets.token_hex(12)}"
            grant.tokens[token] = None
            ws._bot_tokens.add(token)
            self._token_team[token] = team_id
            return {"access_token": token}
        token = f"xoxe.xoxb-1-{team_id}-{secrets.token_hex(12)}"
        refresh = f"xoxe-1-{team_id}-{secrets.token_hex(12)}"
        grant.tokens[token] = self.now() + self.token_lifetime
        self._token_team[token] = team_id
        grant.refresh_tokens.add(refresh)
        ws._bot_tokens.add(token)
        return {"access_token": token, "refresh_token": refresh, "expires_in": int(self.token_lifetime)}

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        for grant in self._grants.values():
            if refresh_token in grant.refresh_tokens:
                grant.refresh_tokens.discard(refresh_token)
                ws = self.workspaces[grant.team_id]
                return {"ok": True, "app_id": self.app_id, "token_type": "bot", "scope": ",".join(ws.scopes),
                        "bot_user_id": ws.bot_user_id, "team": {"id": ws.team_id, "name": ws.team_name},
                        "enterprise": None, "is_enterprise_install": False, **self._issue(grant.team_id)}
        return {"ok": False, "error": "invalid_refresh_token"}

    # -- every other method: to the token's workspace ------------------------------------------
    def _owner(self, token: str) -> tuple[FakeSlack | None, str | None]:
        """The workspace a token belongs to, and the error to answer instead (if any)."""
        team = self._token_team.get(token)
        grant = self._grants.get(team) if team is not None else None
        if grant is not None and token in grant.tokens:
            expires = grant.tokens[token]
            if expires is not None and self.now() >= expires:
                return None, "token_expired"
            return self.workspaces[grant.team_id], None
        for ws in self.workspaces.values():
            if token in ws.revoked_tokens:
                return None, "token_revoked"
        return None, "invalid_auth"

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        params = _params(request, raw)
        if method == "oauth.v2.access":
            return web.json_response(self._oauth_access(request, params))
        token = params.get("token")
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        ws, error = self._owner(token)
        if ws is None:
            return web.json_response({"ok": False, "error": error})
        return await ws._handle_api(request)   # the workspace answers (the body is read once, kept)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(trust_env=False)
        for ws in self.workspaces.values():
            if not ws.base_url:
                await ws.start()
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"
        self.api_url = f"{self.base_url}/api/"
        self.authorize_url = f"{self.base_url}/oauth/v2/authorize"

    async def start_workspace(self, team_id: str, **kw: Any) -> FakeSlack:
        """Add a workspace while the org runs."""
        ws = self.add_workspace(team_id, **kw)
        await ws.start()
        return ws

    async def stop(self) -> None:
        for ws in self.workspaces.values():
            await ws.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "FakeSlackOrg":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _params(request: web.Request, raw: bytes) -> dict[str, str]:
    params = {k: v for k, v in request.query.items()}
    if raw and request.content_type == "application/x-www-form-urlencoded":
        params.update({k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()})
    elif raw and request.content_type == "application/json":
        import json

        data = json.loads(raw)
        if isinstance(data, dict):
            params.update({k: str(v) for k, v in data.items() if isinstance(v, (str, int, float))})
    return params


