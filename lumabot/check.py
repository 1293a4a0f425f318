"""`lumabot check`: is this configuration going to work?

Validates the configuration, asks Slack who the bot token belongs to (and which scopes it was
granted, compared with the bot scopes of manifest.yml), checks the app-level token in Socket
Mode, and checks the Luma key with a GET of a generation that cannot exist (404 = the key works).
Prints a short report and returns the exit code: 0 all good, 1 a check failed, 2 the
configuration is incomplete or invalid (then nothing is sent over the network).

Nothing here prints a token, key or secret: every line of the report goes through `_redact`
with the configured secrets, whatever a server or an exception put in it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from .config import INSTALL_PATH, OAUTH_REDIRECT_PATH, SLACK_API_URL_DEFAULT, ConfigError, Settings, load_settings
from .secrets import PREFIX as SEALED_PREFIX
from .secrets import SecretsLocked
from .store import Store, StoreUnavailable, open_store, schema_status
from .store.migrate import known_revisions
from .luma.client import PROBE_GENERATION_ID

from .scopes import READ_CHANNEL_SCOPES, REQUIRED_BOT_SCOPES, STUDIO_SCOPES  # noqa: F401 (tests import them)

# auth.test errors that mean "this token is not (or no longer) valid".
_REFUSED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
            "not_allowed_token_type"}

OK, FAIL, INFO = "✓", "✗", "•"


@dataclass
class Check:
    """One line of the report. ok=None is informational (skipped, nothing to judge)."""

    ok: bool | None
    text: str
    details: list[str] = field(default_factory=list)

    @property
    def marker(self) -> str:
        return INFO if self.ok is None else (OK if self.ok else FAIL)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    config_error: bool = False

    def add(self, ok: bool | None, text: str, details: list[str] | None = None) -> Check:
        c = Check(ok, text, list(details or []))
        self.checks.append(c)
        return c

    @property
    def problems(self) -> int:
        return sum(1 for c in self.checks if c.ok is False)

    @property
    def ok(self) -> bool:
        return self.problems == 0

    @property
    def exit_code(self) -> int:
        if self.config_error:
            return 2
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        out = ["lumabot check"]
        for c in self.checks:
            out.append(f"{c.marker} {c.text}")
            out.extend(f"    {d}" for d in c.details)
        if self.config_error:
            out.append("Fix the configuration (environment variables or .env) and run lumabot check again.")
        elif self.problems:
            n = self.problems
            out.append(f"{n} problem{'s' if n != 1 else ''} found.")
        else:
            out.append("All checks passed.")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())

    def redact(self, secrets: list[str]) -> None:
        for c in self.checks:
            c.text = _redact(c.text, secrets)
            c.details = [_redact(d, secrets) for d in c.details]


# Shorter "secrets" (a one-letter test value) cannot be hidden without mangling every word.
_MIN_REDACT = 6


def _redact(text: str, secrets: list[str]) -> str:
    for s in sorted((s for s in secrets if s and len(s) >= _MIN_REDACT), key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    return text


def _secrets(settings: Settings) -> list[str]:
    return [settings.bot_token(), settings.app_token(), settings.signing_secret(), settings.luma_key(),
            settings.user_hash_salt.get_secret_value()]


def _safe_url(url: str) -> str:
    """The URL without user info, query or fragment (where a credential could hide)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "(unparseable URL)"


def _describe(exc: BaseException) -> str:
    return type(exc).__name__


def config_error_report(exc: ConfigError) -> Report:
    n = len(exc.problems)
    report = Report(config_error=True)
    report.add(False, f"configuration: {n} problem{'s' if n != 1 else ''}", exc.problems)
    return report


# -- the checks ---------------------------------------------------------------------------------

def _config_check(settings: Settings, report: Report) -> None:
    mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.port}"
    if settings.oauth_mode:
        mode = f"OAuth mode (any number of workspaces), {mode}"
    report.add(True, f"configuration ({mode}, database {_safe_database_url(settings.database_url)})")


def _safe_database_url(url: str) -> str:
    """The database URL as it may be printed: a SQLite path, or PostgreSQL without password."""
    return url if url.startswith("sqlite:") else _safe_url(url)


async def _database_check(settings: Settings) -> Check:
    where = _safe_database_url(settings.database_url)
    try:
        version, latest = await schema_status(settings.database_url)
    except StoreUnavailable as exc:
        return Check(False, f"database: cannot reach {where} ({_describe(exc.__cause__ or exc)})")
    if version == latest:
        return Check(True, f"database: schema revision {version} (up to date)")
    if version is None or version.startswith("legacy:") or version in known_revisions():
        shown = "none yet" if version is None else version
        return Check(True, f"database: schema revision {shown}; the next start migrates it to {latest}")
    return Check(False, f"database: schema revision {version} is newer than this lumabot ({latest}): upgrade lumabot")


def _header(headers, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        value = None
    if value is None:
        for k, v in dict(headers).items():
            if str(k).lower() == name:
                return v
    return value


async def _slack_checks(settings: Settings) -> list[Check]:
    from .app import slack_web_client

    checks: list[Check] = []
    if settings.oauth_mode:
        # No bot token to test: each workspace brings its own when it installs lumabot.
        redirect = settings.redirect_uri() or ""
        install = redirect.removesuffix(OAUTH_REDIRECT_PATH) + INSTALL_PATH
        return [Check(True, f"Slack: OAuth mode; people add lumabot to a workspace at {install} "
                            f"(Slack sends them back to {redirect}: it must be a Redirect URL in the app's "
                            "OAuth & Permissions)"), await _installations_check(settings)]
    where = "" if settings.slack_api_url == SLACK_API_URL_DEFAULT else f" via {_safe_url(settings.slack_api_url)}"
    async with aiohttp.ClientSession() as session:
        client = slack_web_client(settings, session)
        try:
            resp = await client.auth_test()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "unknown_error")
            if error in _REFUSED:
                checks.append(Check(False, f"Slack: SLACK_BOT_TOKEN was refused by Slack ({error}){where}"))
            else:
                checks.append(Check(False, f"Slack: auth.test failed ({error}){where}"))
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            checks.append(Check(False, f"Slack: could not reach {_safe_url(settings.slack_api_url)} "
                                       f"({_describe(exc)})"))
        else:
            team = f"team {resp.get('team') or '?'} ({resp.get('team_id') or '?'})"
            bot = f"@{resp.get('user') or '?'} ({resp.get('user_id') or '?'})"
            checks.append(Check(True, f"Slack: {team} as {bot}{where}"))
            checks.append(_scopes_check(_header(resp.headers, "x-oauth-scopes")))

        if settings.socket_mode:
            checks.append(await _app_token_check(client, settings))
    return checks


T = TypeVar("T")
_UNREACHABLE, _NOT_SET_UP = "unreachable", "not set up"


async def _read_store(settings: Settings, read: Callable[[Store], Awaitable[T]]) -> T | str:
    """`read(store)`, without changing anything: only a database already at this lumabot's
    schema is opened (_UNREACHABLE or _NOT_SET_UP otherwise)."""
    try:
        version, latest = await schema_status(settings.database_url)
    except StoreUnavailable:
        return _UNREACHABLE
    if version != latest:
        return _NOT_SET_UP
    store = open_store(settings.database_url)
    try:
        await store.open()
        return await read(store)
    finally:
        await store.close()


async def _installations_check(settings: Settings) -> Check:
    """OAuth mode: how many workspaces installed lumabot, and whether LUMABOT_ENCRYPTION_KEY
    opens their stored tokens."""
    found = await _read_store(settings, lambda store: store.tenants.installations())
    if found == _UNREACHABLE:
        return Check(None, "installations: not checked (the database cannot be reached)")
    if found == _NOT_SET_UP:
        return Check(None, "installations: none yet (the database is set up at the first start)")
    assert not isinstance(found, str)
    count, sample = found
    try:
        settings.sealer().open(sample)
    except SecretsLocked as exc:
        return Check(False, f"installations: {count} installed, but {exc}")
    sealed = " (tokens encrypted)" if sample and sample.startswith(SEALED_PREFIX) else ""
    plural = "s" if count != 1 else ""
    return Check(True, f"installations: {count} workspace{plural} or organisation{plural} installed{sealed}")


def _scopes_check(header: str | None) -> Check:
    if header is None:
        return Check(None, "Slack scopes: not checked (Slack did not list the granted scopes)")
    granted = {s.strip() for s in header.split(",") if s.strip()}
    missing = [s for s in REQUIRED_BOT_SCOPES if s not in granted]
    if missing and set(missing) <= set(READ_CHANNEL_SCOPES + STUDIO_SCOPES):
        off = (["creative sessions and plain replies in threads"] if set(missing) & set(READ_CHANNEL_SCOPES)
               else []) + (["the private studio in Slack's AI split view (lumabot's DM still works)"]
                           if set(missing) & set(STUDIO_SCOPES) else [])
        return Check(True, f"Slack scopes: no {', '.join(missing)} (as manifest.minimal.yml or an install from "
                           f"before the studio): {' and '.join(off)} off")
    if missing:
        return Check(False, f"Slack scopes: missing {', '.join(missing)} — reinstall the app from manifest.yml")
    return Check(True, f"Slack scopes: all {len(REQUIRED_BOT_SCOPES)} bot scopes of manifest.yml granted")


async def _app_token_check(client, settings: Settings) -> Check:
    """apps.connections.open with the app token: proves it works for Socket Mode. The websocket
    URL it returns is not used (and not printed: it carries a ticket)."""
    try:
        await client.apps_connections_open(app_token=settings.app_token())
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "unknown_error")
        if error == "missing_scope":
            return Check(False, "Slack app token: SLACK_APP_TOKEN lacks the connections:write scope "
                                "(missing_scope) — regenerate it under Basic Information → App-Level Tokens")
        if error in _REFUSED:
            return Check(False, f"Slack app token: SLACK_APP_TOKEN was refused by Slack ({error})")
        return Check(False, f"Slack app token: apps.connections.open failed ({error})")
    except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return Check(False, f"Slack app token: could not reach {_safe_url(settings.slack_api_url)} "
                            f"({_describe(exc)})")
    return Check(True, "Slack app token: Socket Mode connections can be opened")


async def _luma_check(settings: Settings) -> Check:
    from .luma.client import LumaClient, LumaNotFound, LumaRateLimited, LumaRejected, LumaUnavailable

    url = _safe_url(settings.luma_base_url)
    luma = LumaClient(api_key=settings.luma_key(), base_url=settings.luma_base_url,
                      timeout=settings.luma_request_timeout)
    try:
        await luma.get(PROBE_GENERATION_ID)
    except LumaNotFound as exc:
        if "generation" in str(exc).lower():
            return Check(True, f"Luma: the API key works ({url})")
        return Check(False, f"Luma: {url} answered 404 ({exc}) — is LUMA_BASE_URL right? "
                            f"(it should end in /v1)")
    except LumaRateLimited:
        return Check(True, f"Luma: the API key was accepted (rate limited right now) ({url})")
    except LumaRejected as exc:
        if exc.code == "misconfigured":
            return Check(False, f"Luma: LUMA_AGENTS_API_KEY was refused by Luma ({exc.status} {exc}) ({url})")
        return Check(False, f"Luma: unexpected answer {exc.status} ({exc}) from {url}")
    except LumaUnavailable as exc:
        if exc.status is not None:
            return Check(False, f"Luma: {url} is not answering properly ({exc})")
        reason = str(exc).removeprefix("Luma could not be reached").strip(" ()") or _describe(exc)
        return Check(False, f"Luma: could not reach {url} ({reason})")
    finally:
        await luma.close()
    # An all-zero id that exists: the key was accepted all the same.
    return Check(True, f"Luma: the API key works ({url})")


async def _own_luma_keys_check(settings: Settings) -> list[Check]:
    """Workspaces' own Luma keys (`/luma admin luma-key`): how many, and whether
    LUMABOT_ENCRYPTION_KEY opens them (nothing said when there are none)."""
    found = await _read_store(settings, lambda store: store.luma_keys.all())
    if isinstance(found, str) or not found:
        return []
    stored = [key for _, key, _, _ in found]
    plural = "s use their" if len(stored) != 1 else " uses its"
    sealer = settings.sealer()
    try:
        for key in stored:
            sealer.open(key)
    except SecretsLocked as exc:
        return [Check(False, f"Luma: {len(stored)} workspace{plural} own key, but {exc}")]
    sealed = " (encrypted)" if all(k.startswith(SEALED_PREFIX) for k in stored) else ""
    return [Check(True, f"Luma: {len(stored)} workspace{plural} own key{sealed}")]


async def _guarded(name: str, coro) -> list[Check]:
    try:
        result = await coro
    except Exception as exc:  # a check must report, never crash the command
        return [Check(False, f"{name}: unexpected error ({_describe(exc)})")]
    return result if isinstance(result, list) else [result]


async def run_checks(settings: Settings) -> Report:
    """Run every check against valid settings and return the (redacted) report."""
    report = Report()
    _config_check(settings, report)
    database, slack, luma, own_keys = await asyncio.gather(
        _guarded("database", _database_check(settings)), _guarded("Slack", _slack_checks(settings)),
        _guarded("Luma", _luma_check(settings)), _guarded("Luma", _own_luma_keys_check(settings)))
    report.checks.extend(database)
    report.checks.extend(slack)
    report.checks.extend(luma)
    report.checks.extend(own_keys)
    report.redact(_secrets(settings))
    return report


# -- the command --------------------------------------------------------------------------------

_ASCII = {OK: "[ok]", FAIL: "[!!]", INFO: "[--]", "—": "-", "→": "->"}


def _print(text: str) -> None:
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        for k, v in _ASCII.items():
            text = text.replace(k, v)
        text = text.encode("ascii", "replace").decode("ascii")
    print(text, flush=True)


def main() -> int:
    """`lumabot check`: print the report; 0 all good, 1 a check failed, 2 configuration errors."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        report = config_error_report(exc)
    else:
        report = asyncio.run(run_checks(settings))
    _print(report.render())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
