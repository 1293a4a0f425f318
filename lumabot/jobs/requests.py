"""Turning what a user typed into a job. Raises PromptError for bad input."""

from __future__ import annotations

import re

from .flags import Flags, imagine_params
from .models import Job

_MENTION_RE = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


def strip_mentions(text: str) -> str:
    return _MENTION_RE.sub(" ", text or "").strip()


def imagine_job(*, team_id: str, user_id: str, channel_id: str, text: str,
                response_url: str | None = None, thread_ts: str | None = None,
                defaults: Flags | None = None) -> Job:
    """A text-to-image job from `/imagine` text (or a mention's text)."""
    params = imagine_params(text, defaults=defaults)
    return Job(team_id=team_id, user_id=user_id, channel_id=channel_id, thread_ts=thread_ts,
               response_url=response_url, params=params)
