"""Delivering: a finished image is downloaded from Luma and uploaded into the job's thread
exactly once, its buttons on its message (the Slack file id is recorded before the upload is
completed), then the after-delivery hooks (sessions) run."""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from typing import Awaitable, Callable

from ..jobs.models import Job, JobState, KnownImage
from ..luma.accounts import LumaAccounts
from ..luma.client import LumaError, LumaRateLimited, LumaUnavailable
from ..ports import DeliveryError, Output, OutputExpired, OutputSource
from .messages import Messages
from .record import JobFailed, Recorder, Shutdown, log_context, luma_of
from .retry import Backoff

log = logging.getLogger("lumabot.runner")

Hook = Callable[[Job, Output], Awaitable[None]]


class Deliverer:
    def __init__(self, record: Recorder, messages: Messages, outputs: OutputSource, accounts: LumaAccounts,
                 shutdown: Shutdown):
        self.record = record
        self.config = record.config
        self.notifier = record.notifier
        self.messages = messages
        self.outputs = outputs
        self.accounts = accounts
        self.shutdown = shutdown
        # Called with (job, output) once the image is in Slack, before the job is recorded done
        # (a session's thumbnail: a recap that sees the job done sees its thumbnail too).
        self.on_uploaded: list[Hook] = []
        # Called with (job, output) after an image is delivered (sessions use it).
        self.on_delivered: list[Hook] = []

    async def __call__(self, job: Job, url: str | None, resumed: bool = False) -> None:
        """From DELIVERING to DONE, or JobFailed. `url`: the output URL the poll saw, if any."""
        async with AsyncExitStack() as critical:  # from the upload to the write that records it
            output = await self._upload(job, url, critical)
            await self._run_hooks(self.on_uploaded, job, output)
            await self._record_delivery(job, resumed)
        await self._run_hooks(self.on_delivered, job, output)
        log.info("delivered", extra=log_context(job))

    @staticmethod
    async def _run_hooks(hooks: list[Hook], job: Job, output: Output) -> None:
        for hook in hooks:
            try:
                await hook(job, output)
            except Exception:
                log.exception("after-delivery hook failed", extra=log_context(job))

    async def _record_delivery(self, job: Job, resumed: bool) -> None:
        if job.completed_at:
            self.record.metrics.delivery_latency.observe(time.time() - job.completed_at)
        finished_at = time.time()
        # The image's message, its buttons on it (Slack shares it asynchronously): reactions on
        # it are votes, a reply or a shortcut on it edits this image.
        share_ts = await self._share_ts(job)
        self.record.later(job, actions_ts=job.actions_ts or share_ts)
        image = KnownImage(
            team_id=job.team_id,
            channel_id=job.channel_id, thread_ts=job.root_ts or "", message_ts=share_ts, origin="lumabot",
            job_id=job.id, generation_id=job.generation_id, slack_file_id=job.slack_file_id,
            user_id=job.user_id)
        self.record.later(job, state=JobState.DONE, finished_at=finished_at)
        # The status says done, then one write records it all: done, told, the image (for edits).
        await self.messages.settle(job, resumed, image=image)

    async def _upload(self, job: Job, url: str | None, critical: AsyncExitStack) -> Output:
        give_up = (job.completed_at or time.time()) + self.config.delivery_timeout
        backoff = Backoff(self.config.retry_backoff)
        expired = 0
        uploading = False
        while True:
            try:
                url = url or await self._fresh_output_url(job)
                output = await self.outputs.download(url)
                if not uploading:  # a shutdown lets an upload in progress finish
                    await critical.enter_async_context(self.shutdown.critical(job.id))
                    uploading = True
                await self._upload_once(job, output, give_up)
                return output
            except OutputExpired:
                # Presigned URLs expire after an hour; every GET of the generation mints a new one.
                log.info("output URL expired; asking Luma for a fresh one", extra=log_context(job))
                url = None
                expired += 1
                if expired == 1:
                    continue
                if time.time() >= give_up:
                    raise JobFailed("download_failed") from None
                await backoff.sleep()
            except (DeliveryError, LumaError) as err:
                transient = (err.transient if isinstance(err, DeliveryError)
                             else isinstance(err, (LumaUnavailable, LumaRateLimited)))
                log.warning("delivery failed (%s): %s", "will retry" if transient else "final", err,
                            extra=log_context(job))
                if not transient or time.time() >= give_up:
                    if not isinstance(err, DeliveryError):
                        raise JobFailed("download_failed") from None
                    raise self.messages.failure(job, err, "the image") from None
                await backoff.sleep()

    async def _share_ts(self, job: Job) -> str | None:
        if not job.slack_file_id:
            return None
        try:
            return await self.notifier.share_ts(job.team_id, job.slack_file_id, job.channel_id, wait=5.0)
        except Exception as exc:
            log.warning("files.info failed: %s", exc, extra=log_context(job))
            return None

    async def _fresh_output_url(self, job: Job) -> str:
        assert job.generation_id
        gen = await (await luma_of(self.accounts, job)).get(job.generation_id)
        if gen.state != "completed" or not gen.output_url:
            raise LumaUnavailable(f"generation is {gen.state} without output")
        return gen.output_url

    async def _upload_once(self, job: Job, output: Output, deadline: float) -> None:
        """The image into the thread exactly once: a file recorded by an earlier try (or before
        a crash) that reached the thread is not uploaded again; a new file's id is recorded
        durably before its bytes go."""
        if job.slack_file_id and await self.notifier.image_uploaded(job, deadline=deadline):
            return
        await self.record.change(job, slack_file_id=await self.notifier.reserve_upload(job, output))
        await self.notifier.send_upload(job, output, deadline=deadline)
