"""What the store raises when the database cannot be used right now."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database is locked, full or failing: nothing was written. Worth trying again later."""


class JobCancelled(Exception):
    """The job was cancelled while it waited: it must not be sent to Luma. Nothing was written."""


class JobLost(Exception):
    """The job was taken over by another replica (or another incarnation of this one): this
    copy must stop acting on it. Nothing was written."""
