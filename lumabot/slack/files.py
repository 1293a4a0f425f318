"""Input images: people's Slack files turned into something Luma can take (`ports.InputFiles`).

Slack-hosted files are private: they are downloaded with the bot token, and only from the URLs
Slack gave in a signed payload or an API answer (a URL a user typed never gets the token).
Downloads stream with a hard cap, an HTML answer means "no access", and the bytes are decoded
and normalised with Pillow (`jobs/images.py`) before they are sent as `source.data`.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
from slack_sdk.errors import SlackApiError

from ..jobs.images import ImageRejected, prepare_image
from ..jobs.models import GenerationParams, ImageSource, SlackFile
from ..ports import InputError
from .payloads import slack_file
from .workspaces import NotInstalled, Workspace, Workspaces

log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 50 * 1024 * 1024
# Slack's own domains: the only hosts (over https) that ever receive the bot token.
SLACK_DOMAINS = ("slack.com", "slack-gov.com")
# Images decoded at once: decoding a large image costs up to ~270 MB, so they take turns.
MAX_CONCURRENT_DECODES = 1
MAX_REDIRECTS = 3


class TokenHosts:
    """Where the bot token may go: https to Slack's domains, plus the origin of a configured
    SLACK_API_URL (the fakes in tests). Never a host a person could choose."""

    def __init__(self, slack_api_url: str | None = None):
        self.extra: set[tuple[str, str, int | None]] = set()
        if slack_api_url:
            api = urlsplit(slack_api_url)
            if not _is_slack_host(api.hostname or "") or api.scheme != "https":
                self.extra.add((api.scheme, api.hostname or "", api.port))

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        host = parts.hostname or ""
        if parts.scheme == "https" and _is_slack_host(host):
            return True
        return (parts.scheme, host, port) in self.extra


def _is_slack_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in SLACK_DOMAINS)


class SlackFiles:
    def __init__(self, workspaces: Workspaces, http: httpx.AsyncClient,
                 max_bytes: int = MAX_INPUT_BYTES, *, token_hosts: TokenHosts | None = None):
        self.workspaces = workspaces   # whose bot token reads a job's files: its workspace's
        self.http = http
        self.max_bytes = max_bytes
        self.token_hosts = token_hosts or TokenHosts()
        # Decodes take turns on their own threads: the same few threads (so the same malloc
        # arenas) serve every decode, instead of each default-executor thread keeping the
        # hundreds of MB a decode used.
        self._decoder = ThreadPoolExecutor(MAX_CONCURRENT_DECODES, thread_name_prefix="decode")

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)

    async def resolve(self, f: SlackFile, workspace: Workspace) -> SlackFile:
        """Fill in a Slack Connect stub (`file_access: check_file_info`) with files.info."""
        if not f.stub and f.url:
            return f
        try:
            info = await workspace.client.files_info(file=f.id)
        except SlackApiError as exc:
            error = exc.response.get("error")
            transient = exc.response.status_code == 429 or exc.response.status_code >= 500
            if transient:
                raise InputError("image_download_failed", transient=True) from None
            log.info("files.info refused %s: %s", f.id, error)
            raise InputError("image_no_access") from None
        return slack_file(info["file"])

    async def fetch(self, f: SlackFile, workspace: Workspace) -> bytes:
        """Download a Slack-hosted file with the workspace's bot token, at most `max_bytes`."""
        f = await self.resolve(f, workspace)
        if f.size is not None and f.size > self.max_bytes:
            raise InputError("image_too_big")
        if not f.url:
            raise InputError("image_no_access")
        url = f.url
        for _ in range(MAX_REDIRECTS + 1):
            if not self.token_hosts.allows(url):
                log.warning("refused to send the bot token to %s (not a Slack file host)",
                            urlsplit(url).hostname)
                raise InputError("image_untrusted_host")
            body, url = await self._download(url, workspace.token)
            if body is not None:
                return body
        raise InputError("image_download_failed")

    async def _download(self, url: str, token: str) -> tuple[bytes | None, str]:
        """(the bytes, url), or (None, where a redirect points): redirects are followed by
        `fetch`, which checks each target before it gets the token."""
        try:
            async with self.http.stream("GET", url, headers={"Authorization": f"Bearer {token}"},
                                        follow_redirects=False) as r:
                if r.is_redirect and r.headers.get("location"):
                    return None, str(r.url.join(r.headers["location"]))
                if r.status_code in (401, 403, 404):
                    raise InputError("image_no_access")
                if r.status_code != 200:
                    raise InputError("image_download_failed", transient=r.status_code >= 500 or r.status_code == 429)
                if "text/html" in r.headers.get("content-type", ""):
                    # Slack answers a login page instead of the file when the bot has no access.
                    raise InputError("image_no_access")
                declared = r.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise InputError("image_too_big")
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise InputError("image_too_big")
                return bytes(body), url
        except httpx.TransportError as exc:
            raise InputError("image_download_failed", transient=True) from exc

    async def prepare(self, src: ImageSource, workspace: Workspace) -> ImageSource:
        """The source as Luma takes it: Slack files become base64 data + media type."""
        if src.slack_file is None or src.data is not None:
            return src
        raw = await self.fetch(src.slack_file, workspace)
        try:
            prepared = await asyncio.get_running_loop().run_in_executor(self._decoder, prepare_image, raw)
        except ImageRejected as exc:
            raise InputError(exc.code, str(exc)) from None
        finally:
            del raw
        return ImageSource(data=prepared.base64(), media_type=prepared.media_type)

    async def materialize(self, params: GenerationParams, *, team_id: str) -> GenerationParams:
        """Parameters ready to send: every Slack file downloaded (with the bot token of the
        workspace `team_id`) and normalised."""
        if params.source is None and not params.image_refs:
            return params
        try:
            workspace = await self.workspaces.get(team_id)
        except NotInstalled:
            raise InputError("image_no_access") from None
        source = await self.prepare(params.source, workspace) if params.source else None
        refs = [await self.prepare(r, workspace) for r in params.image_refs]
        return params.model_copy(update={"source": source, "image_refs": refs})
