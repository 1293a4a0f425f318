"""Logging: one line per event, with job/generation/channel context; secrets are masked."""

from __future__ import annotations

import logging
import re
import sys

_SECRET_RE = re.compile(r"\b(xox[abposr]-|xapp-|luma-api-)[A-Za-z0-9-]+")
CONTEXT_FIELDS = ("job_id", "generation_id", "channel", "luma_request_id", "dedupe_key")


def redact(text: str) -> str:
    return _SECRET_RE.sub(lambda m: m.group(1) + "[redacted]", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS
                       if getattr(record, k, None) is not None)
        return redact(f"{line} {ctx}" if ctx else line)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries log request URLs and headers at INFO/DEBUG: keep them quiet.
    for name in ("httpx", "httpcore", "slack_sdk", "slack_bolt", "luma_agents", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
