"""files.*: the upload v2 flow (upload URLs, completion, asynchronous shares), files.info, files.delete and url_private downloads."""

from __future__ import annotations

import asyncio
import time

from aiohttp import BodyPartReader, web

from .records import (
    _Ctx,
    Download,
    iter_pattern,
    _json_param,
    _LOGIN_PAGE,
    _new_id,
    _s,
    _SlackError,
    _sniff,
    UploadedFile,
)


class FileMethods:
    """files.* methods and the file URLs of the fake."""

    def _files_delete(self, p: dict, ctx: "_Ctx") -> dict:
        f = self._files_by_id.get(_s(p, "file") or "")
        if f is None or f.deleted:
            raise _SlackError("file_not_found")
        if f.user not in (None, self.bot_user_id):
            raise _SlackError("cant_delete_file")
        f.deleted, f.shared = True, False
        return {}

    def _files_get_upload_url(self, p: dict, ctx: "_Ctx") -> dict:
        if self.upload_restriction:
            raise _SlackError(self.upload_restriction)
        filename = _s(p, "filename")
        if not filename:
            raise _SlackError("invalid_arguments", detail="filename is required")
        try:
            length = int(p.get("length"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _SlackError("invalid_arguments", detail="length must be an integer") from None
        if length <= 0:
            raise _SlackError("invalid_arguments", detail="length must be positive")
        fid = _new_id("F")
        f = UploadedFile(
            id=fid,
            filename=filename,
            title=None,
            alt_txt=_s(p, "alt_txt"),
            length=length,
            snippet_type=_s(p, "snippet_type"),
            user=self.bot_user_id,
            created=int(time.time()),
        )
        f.mimetype, f.filetype = _sniff(b"", filename)
        self.files.append(f)
        self._files_by_id[fid] = f
        return {"upload_url": f"{self.base_url}/upload/{fid}", "file_id": fid}

    def _files_complete_upload(self, p: dict, ctx: "_Ctx") -> dict:
        items = _json_param(p, "files")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("id") for i in items):
            raise _SlackError("invalid_arguments", detail="files must be a JSON array of {id, title}")
        batch: list[UploadedFile] = []
        for it in items:
            f = self._files_by_id.get(str(it["id"]))
            if f is None:
                raise _SlackError("file_not_found", detail=f"unknown file id {it['id']}")
            if not f.uploaded:
                raise _SlackError("file_not_found", detail=f"no bytes were uploaded for {f.id}")
            if f.completed:
                raise _SlackError("already_completed", detail=f"{f.id} was already completed")
            batch.append(f)
        targets: list[str] = []
        if _s(p, "channel_id"):
            targets = [str(_s(p, "channel_id"))]
        elif _s(p, "channels"):
            targets = [c.strip() for c in str(_s(p, "channels")).split(",") if c.strip()]
        thread_ts = _s(p, "thread_ts")
        if thread_ts and len(targets) != 1:
            raise _SlackError("invalid_arguments", detail="thread_ts needs exactly one channel")
        chans = [self._channel(c) for c in targets]
        if thread_ts and not self._is_thread_parent(chans[0].id, thread_ts):
            raise _SlackError("invalid_thread_ts")
        initial_comment = _s(p, "initial_comment")
        # Slack ignores `blocks` when an initial comment is given.
        blocks = None if initial_comment else self._blocks_param(p)
        self._check_blocks(blocks)
        for it, f in zip(items, batch):
            f.completed = True
            f.title = it.get("title") or f.title or f.filename
            f.initial_comment = initial_comment
            f.blocks = blocks
        if chans:
            if self.share_delay > 0:

                async def later() -> None:
                    await asyncio.sleep(self.share_delay)
                    self._share(batch, chans, thread_ts)

                self._spawn(later())
            else:
                self._share(batch, chans, thread_ts)
        return {"files": [{"id": f.id, "title": f.title} for f in batch]}

    def _files_info(self, p: dict, ctx: "_Ctx") -> dict:
        fid = _s(p, "file")
        if not fid:
            raise _SlackError("file_not_found")
        uf = self._user_files.get(fid)
        if uf is not None:
            obj = self._user_file_obj(uf)
        else:
            f = self._files_by_id.get(fid)
            if f is None or not f.completed:
                raise _SlackError("file_not_found")
            obj = self._uploaded_file_obj(f)
        return {"file": obj, "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["file_id"]
        h = self._holds.get("upload")
        if h is not None and not h.after_effect:
            await self._wait_hold("upload", h)
        fault = self._take_fault(self._upload_faults)
        if fault is not None:
            await request.read()
            self.upload_posts.append((fid, fault.status))
            return web.Response(status=fault.status, text=f"upload failed ({fault.status})", content_type="text/plain")
        f = self._files_by_id.get(fid)
        if f is None:
            self.upload_posts.append((fid, 404))
            return web.Response(status=404, text="unknown upload url", content_type="text/plain")
        if request.content_type == "multipart/form-data":
            data = b""
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name in ("file", "filename") or part.filename:
                    data = await part.read()
                    break
                await part.read()
        else:
            data = await request.read()
        if f.completed:
            self.upload_posts.append((fid, 400))
            return web.Response(status=400, text="upload already completed", content_type="text/plain")
        if len(data) != f.length:
            self.upload_posts.append((fid, 400))
            return web.Response(
                status=400,
                text=f"length mismatch: declared {f.length}, received {len(data)}",
                content_type="text/plain",
            )
        f.content = data
        f.uploaded = True
        f.mimetype, f.filetype = _sniff(data, f.filename)
        self.upload_posts.append((fid, 200))
        if h is not None and h.after_effect:
            await self._wait_hold("upload", h)
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_private(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        parts = key.split("-")
        fid = parts[1] if len(parts) > 1 else key
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        authorized = bool(token) and token in self._bot_tokens and token not in self.revoked_tokens
        self.downloads.append(Download(fid, request.path, authorized))
        if not authorized:
            return web.Response(text=_LOGIN_PAGE, content_type="text/html")
        fault = self._take_fault(self._download_faults)
        if fault is not None:
            return web.Response(status=fault.status, text=_LOGIN_PAGE, content_type="text/html")
        content: bytes | None
        uf = self._user_files.get(fid)
        if uf is not None:
            content, size, mimetype, name = uf.content, uf.size, uf.mimetype, uf.name
        else:
            f = self._files_by_id.get(fid)
            if f is None or not f.completed:
                return web.Response(status=404, text=_LOGIN_PAGE, content_type="text/html")
            content, size, mimetype, name = f.content, f.size, f.mimetype, f.filename
        headers = {}
        if "/download/" in request.path:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        if content is not None:
            return web.Response(body=content, content_type=mimetype, headers=headers)
        resp = web.StreamResponse(headers={**headers, "Content-Type": mimetype})
        if uf is not None and uf.hide_size:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = size
        await resp.prepare(request)
        for chunk in iter_pattern(size):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
