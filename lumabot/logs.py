"""Logging: one line per event, with job/generation/channel context; secrets are masked."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LUMABOT_LOG_FORMAT=json), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = redact(str(value))
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries log request URLs and headers at INFO/DEBUG: keep them quiet.
    for name in ("httpx", "httpcore", "slack_sdk", "slack_bolt", "luma_agents", "aiohttp.access", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
