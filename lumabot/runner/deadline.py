"""The ack deadline: Slack wants an answer within 3 seconds, and a person who gets no answer
(or "please try again") types the request again. So the work done before an ack is bounded,
and a job is either recorded in time, or not at all.

`before_ack(work)` runs `work` as its own task and waits for it until the deadline. A job is
admitted only if `Deadline.accept()` is called in time (the runner calls it when the store has
recorded the job); once the deadline has been given up (`give_up()`), a job the database records
late is withdrawn by the runner instead of started. Exactly one of the two wins: there is no
await between the check and the mark. A store call that hangs keeps running in the background
(its connection may be stuck); the person is told to try again at the deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Awaitable, Callable, TypeVar

from ..store import StoreUnavailable, mark_for_an_ack

log = logging.getLogger("lumabot.runner")
T = TypeVar("T")

ACK_BUDGET = 2.5  # seconds of work before an ack (Slack allows 3 s, the network takes some)


class Deadline:
    def __init__(self, at: float):
        self.at = at           # on the event loop's clock
        self.accepted = False  # a job was recorded in time: the request stands
        self.abandoned = False  # the person was told to try again: nothing may start

    def accept(self) -> bool:
        """A job has been recorded: True if the request still stands (it must start), False if
        the person was already told to try again (it must be withdrawn)."""
        if self.abandoned:
            return False
        self.accepted = True
        return True

    def give_up(self) -> bool:
        """The deadline passed: True if nothing was accepted (tell the person to try again)."""
        if self.accepted:
            return False
        self.abandoned = True
        return True


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("ack_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the request being handled, if any."""
    return _current.get()


async def before_ack(work: Callable[[], Awaitable[T]], budget: float = ACK_BUDGET) -> T:
    """`work()`, done before the deadline or given up (StoreUnavailable: nothing was started)."""
    loop = asyncio.get_running_loop()
    deadline = Deadline(loop.time() + budget)

    async def bounded() -> T:
        _current.set(deadline)  # in this task's own copy of the context
        mark_for_an_ack()       # (the database serves it first: store/sql.py)
        return await work()

    task = asyncio.ensure_future(bounded())
    done, _ = await asyncio.wait({task}, timeout=budget)
    if not done and deadline.give_up():
        task.add_done_callback(_late)
        log.error("the database did not answer within %.1f s: the person was asked to try again", budget)
        raise StoreUnavailable("the database did not answer in time")
    return await task  # done, or a job was accepted in time: only its answer is left


def _late(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("work given up at the deadline ended: %s", type(task.exception()).__name__)
