"""The runner: jobs from the store to Luma and back to Slack (see runner.py)."""

from .record import RunnerConfig
from .runner import Runner

__all__ = ["Runner", "RunnerConfig"]
