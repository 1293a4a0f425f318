"""Luma's limits, held in the database for several replicas together (runner/shared_scheduler.py):
the line of jobs waiting for a slot, the slots held, the requests-per-minute window, pauses after
a 429, the learned concurrency ceiling and whose turn it is (round-robin between workspaces, then
between the people of each). The rule is jobs/slots.py's, as for one process (runner/scheduler.py
keeps the same state in memory): this store loads the state, asks the rule, and saves what it
decided. Times are on the database's clock."""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple, Sequence

import sqlalchemy as sa

from ..jobs import slots
from ..jobs.models import DEFAULT_ACCOUNT
from ..jobs.slots import Ceiling
from .dialects import now
from .errors import JobLost
from .schema import (IN_OWN_LINE, jobs, luma_account, luma_slots, luma_submissions, luma_team_turns, luma_turns,
                     luma_waiting)
from .sql import SLOTS_CHANGED, Database, Tx, param

# Every statement is about one Luma account's limits and line: the store's (`SlotStore.account`).
ACCOUNT = param("account")

# A list of the caller's job ids (`IN (...)`, expanded at each use; see `_padded`).
_JOBS: sa.BindParameter[Any] = sa.bindparam("jobs", expanding=True)
_OWNERS = sa.select(jobs.c.id, jobs.c.owner).where(jobs.c.id.in_(_JOBS)).with_for_update(read=True)
# The account's turn counter moved on by `n` (a grant: 1; a batch of jobs joining the line: one each).
_TURN = sa.update(luma_account).where(luma_account.c.id == ACCOUNT).values(
    turn=luma_account.c.turn + param("n", sa.BigInteger())).returning(luma_account.c.turn)
_UNSLOT = sa.delete(luma_slots).where(luma_slots.c.job_id.in_(_JOBS))


def _still_waiting(turns: sa.Table, key: sa.Column[Any]) -> sa.Select[tuple[str]]:
    """Of the workspaces (people) in `keys` that are in the turn order, those with a job waiting
    besides the given ones (`jobs`: each one's first job of this batch). One index probe each
    (EXISTS stops at the first). Those not returned join the turn order: a workspace (person)
    left in it with nothing waiting is also found here, so it cannot keep the line from them."""
    waiting = sa.select(sa.literal(1)).where(luma_waiting.c.account == ACCOUNT, key == turns.c[key.name],
                                             luma_waiting.c.job_id.not_in(_JOBS))
    return sa.select(turns.c[key.name]).where(turns.c.account == ACCOUNT,
                                              turns.c[key.name].in_(sa.bindparam("keys", expanding=True)),
                                              waiting.exists())


_TEAMS_WAITING = _still_waiting(luma_team_turns, luma_waiting.c.team)
_PEOPLE_WAITING = _still_waiting(luma_turns, luma_waiting.c.user_key)
_ACCOUNT = sa.select(luma_account.c.estimate, luma_account.c.estimate_until, luma_account.c.rate_limit,
                     luma_account.c.paused_until, now()).where(luma_account.c.id == ACCOUNT).with_for_update()
_CEILING = sa.select(luma_account.c.estimate, luma_account.c.estimate_until, now()).where(
    luma_account.c.id == ACCOUNT).with_for_update()
_ESTIMATE = sa.update(luma_account).where(luma_account.c.id == ACCOUNT).values(
    estimate=param("estimate", sa.Integer()), estimate_until=param("until", sa.Float()))
# The account's slots of jobs that ended without freeing them (a replica died): one probe per
# slot held, not a read of every settled job.
_SETTLED_SLOTS = sa.delete(luma_slots).where(luma_slots.c.account == ACCOUNT, sa.exists().where(
    jobs.c.id == luma_slots.c.job_id, jobs.c.settled))
_OLD_SUBMISSIONS = sa.delete(luma_submissions).where(luma_submissions.c.account == ACCOUNT,
                                                     luma_submissions.c.at <= param("before", sa.Float()))
_IN_FLIGHT = sa.select(sa.func.count()).select_from(luma_slots).where(luma_slots.c.account == ACCOUNT)
_RECENT = sa.select(luma_submissions.c.at).where(luma_submissions.c.account == ACCOUNT).order_by(luma_submissions.c.at)
_NEXT_TEAM = sa.select(luma_team_turns.c.team).where(luma_team_turns.c.account == ACCOUNT).order_by(
    luma_team_turns.c.served).limit(1)
_NEXT_PERSON = sa.select(luma_turns.c.user_key).where(luma_turns.c.account == ACCOUNT,
                                                      luma_turns.c.team == param("team")).order_by(
    luma_turns.c.served).limit(1)
_NEXT_OF = sa.select(luma_waiting.c.job_id, luma_waiting.c.replica).where(
    luma_waiting.c.account == ACCOUNT, luma_waiting.c.user_key == param("user")).order_by(*IN_OWN_LINE).limit(1)
_LEAVE_LINE = sa.delete(luma_waiting).where(luma_waiting.c.job_id == param("job"))
_SUBMITTED = sa.insert(luma_submissions).values(account=ACCOUNT, at=now())
_SERVED = sa.update(luma_turns).where(luma_turns.c.account == ACCOUNT, luma_turns.c.user_key == param("user")).values(
    served=param("turn"))
_TEAM_SERVED = sa.update(luma_team_turns).where(luma_team_turns.c.account == ACCOUNT,
                                                luma_team_turns.c.team == param("team")).values(served=param("turn"))
# A person whose line is empty leaves the turn order (coming back, they join at the back): the
# next pick looks only at people with jobs waiting.
_DONE_WAITING = sa.delete(luma_turns).where(
    luma_turns.c.account == ACCOUNT, luma_turns.c.user_key == param("user"),
    ~sa.exists().where(luma_waiting.c.account == ACCOUNT, luma_waiting.c.user_key == param("user")))
_TEAM_DONE_WAITING = sa.delete(luma_team_turns).where(
    luma_team_turns.c.account == ACCOUNT, luma_team_turns.c.team == param("team"),
    ~sa.exists().where(luma_waiting.c.account == ACCOUNT, luma_waiting.c.team == param("team")))
# (each account's scheduler hears of its own grants: one replica has one scheduler per account)
_UNTOLD = sa.update(luma_slots).where(luma_slots.c.untold == param("replica"), luma_slots.c.account == ACCOUNT
                                      ).values(untold=None).returning(
    luma_slots.c.job_id)
_OWNED = sa.exists().where(jobs.c.id == param("job"), jobs.c.owner == param("replica"))
_FREE = sa.delete(luma_slots).where(luma_slots.c.job_id == param("job"), _OWNED)
_OUT_OF_LINE = sa.delete(luma_waiting).where(luma_waiting.c.job_id == param("job"), _OWNED).returning(
    luma_waiting.c.user_key, luma_waiting.c.team)
_PAUSE = sa.update(luma_account).where(luma_account.c.id == ACCOUNT).values(paused_until=sa.case(
    (luma_account.c.paused_until > now() + param("seconds", sa.Float()), luma_account.c.paused_until),
    else_=now() + param("seconds", sa.Float())))
_OTHERS_IN_FLIGHT = sa.select(sa.func.count()).select_from(luma_slots).where(
    luma_slots.c.account == ACCOUNT, luma_slots.c.job_id != param("job"))
_RATE = sa.update(luma_account).where(luma_account.c.id == ACCOUNT).values(rate_limit=param("limit", sa.Integer()))
_COUNTS = sa.select(sa.select(sa.func.count()).select_from(luma_waiting).where(
    luma_waiting.c.account == ACCOUNT).scalar_subquery(), _IN_FLIGHT.scalar_subquery())


def _front() -> sa.Select[tuple[str]]:
    """The first `limit` jobs in line, in the order they will be let through: each workspace's
    own order (the first of each person's line, people in turn order, then the second of each,
    and so on), and those interleaved, workspaces in turn order.

    Read from the front only, index by index: the first `limit` workspaces in turn order (a
    later one's first job is already past `limit`), in each the first `limit` people, of each
    the first `limit` jobs. The one-statement version (window functions over the whole line,
    then joins) read every waiting job, and while the line's statistics were stale (a line
    that grew by thousands within the minute) PostgreSQL joined it by nested loops: 0.5-0.8 s
    a look, every 5 s on each replica, with 20,000 waiting."""
    limit = param("limit")
    teams = (sa.select(luma_team_turns.c.team, luma_team_turns.c.served)
             .where(luma_team_turns.c.account == ACCOUNT)
             .order_by(luma_team_turns.c.served, luma_team_turns.c.team).limit(limit).subquery("t"))
    people = (sa.select(luma_turns.c.user_key, luma_turns.c.served)
              .where(luma_turns.c.account == ACCOUNT, luma_turns.c.team == teams.c.team)
              .order_by(luma_turns.c.served, luma_turns.c.user_key).limit(limit).lateral("p"))
    place = sa.func.row_number().over(order_by=IN_OWN_LINE).label("n")
    own = (sa.select(luma_waiting.c.job_id, place)
           .where(luma_waiting.c.account == ACCOUNT, luma_waiting.c.user_key == people.c.user_key)
           .order_by(*IN_OWN_LINE).limit(limit).lateral("w"))
    in_team = sa.func.row_number().over(partition_by=teams.c.team, order_by=(
        own.c.n, people.c.served, people.c.user_key)).label("m")
    ranked = (sa.select(own.c.job_id, teams.c.team, teams.c.served, in_team)
              .select_from(teams.join(people, sa.true()).join(own, sa.true())).subquery("r"))
    return (sa.select(ranked.c.job_id).where(ranked.c.m <= limit)
            .order_by(ranked.c.m, ranked.c.served, ranked.c.team).limit(limit))


_FRONT = _front()


class Waits(NamedTuple):
    """A job that is to wait for a slot in `user_key`'s line (at its front: a retry)."""
    job_id: str
    user_key: str
    front: bool


def _padded(values: list[str]) -> list[str]:
    """`values` with its last repeated up to a power of two: an `IN (...)` of the caller's
    values is a different statement for each length (PostgreSQL prepares each one, per
    connection); lists of a few lengths keep them few. Repeats change nothing in an IN."""
    size = 1 << max(0, len(values) - 1).bit_length()
    return values + values[-1:] * (size - len(values))


@functools.cache
def _upserts(insert: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(a person joins the turn order, a workspace joins it, wait in line, a grant, a slot held),
    in the dialect's INSERT."""
    turn = insert(luma_turns).values(account=ACCOUNT, user_key=param("user"), served=param("served"),
                                     team=param("team"))
    team_turn = insert(luma_team_turns).values(account=ACCOUNT, team=param("team"), served=param("served"))
    waiting = insert(luma_waiting).values(job_id=param("job"), account=ACCOUNT, user_key=param("user"),
                                          team=param("team"), front=param("front"), seq=param("seq"),
                                          replica=param("replica"))
    return (turn.on_conflict_do_update(index_elements=[luma_turns.c.account, luma_turns.c.user_key],
                                       set_={"served": turn.excluded.served}),
            team_turn.on_conflict_do_update(index_elements=[luma_team_turns.c.account, luma_team_turns.c.team],
                                            set_={"served": team_turn.excluded.served}),
            waiting.on_conflict_do_update(index_elements=[luma_waiting.c.job_id], set_={
                "front": waiting.excluded.front, "user_key": waiting.excluded.user_key,
                "team": waiting.excluded.team, "replica": waiting.excluded.replica}),
            insert(luma_slots).values(job_id=param("job"), account=ACCOUNT, granted_at=now(),
                                      untold=param("replica")).on_conflict_do_nothing(),
            insert(luma_slots).values(job_id=param("job"), account=ACCOUNT, granted_at=now()).on_conflict_do_nothing())


@functools.cache
def _open_account(insert: Any) -> Any:
    return insert(luma_account).values(id=ACCOUNT).on_conflict_do_nothing()


class SlotStore:
    """One Luma account's line and limits (`account`: DEFAULT_ACCOUNT, the operator's key, or a
    workspace with its own key: `for_account`)."""

    def __init__(self, db: Database, account: str = DEFAULT_ACCOUNT):
        self.db = db
        self.account = account
        self._join_turns, self._team_joins, self._wait, self._grant, self._hold = _upserts(db.insert)
        self._open_account = _open_account(db.insert)

    def for_account(self, account: str) -> "SlotStore":
        return SlotStore(self.db, account)

    async def _open(self, tx: Tx) -> None:
        """The account's row (its limits, whose turn it is) exists before it is locked or read
        (the default account's is made by the migrations; another's costs one statement)."""
        if self.account != DEFAULT_ACCOUNT:
            await tx.execute(self._open_account, account=self.account)

    async def enqueue(self, job_id: str, user_key: str, *, front: bool, replica_id: str) -> None:
        """`job_id` waits for a Luma slot, in `user_key`'s line (at its front for a retry). JobLost
        if `replica_id` no longer owns the job (fencing: a stale replica must not touch the
        slots of a job taken from it)."""
        if await self.enqueue_many([Waits(job_id, user_key, front)], replica_id=replica_id):
            raise JobLost(job_id)

    async def enqueue_many(self, batch: Sequence["Waits"], *, replica_id: str) -> set[str]:
        """Each job of `batch` (distinct jobs) waits for a Luma slot, in this order, in one
        transaction: as many statements for a hundred jobs as for one. A workspace (a person)
        with nothing waiting goes to the back of the line of workspaces (of its people; the
        front, for a retry), as the in-process scheduler does. The jobs `replica_id` no longer
        owns are left out (fencing): returned."""
        ids = [w.job_id for w in batch]
        async with self.db.write() as tx:
            owners = {r[0]: r[1] for r in await tx.rows(_OWNERS, jobs=_padded(ids))}
            lost = {job_id for job_id in ids if owners.get(job_id) != replica_id}
            mine = [w for w in batch if w.job_id not in lost]
            if not mine:
                return lost
            await self._open(tx)
            last = int(await tx.scalar(_TURN, n=len(mine), account=self.account))
            turns = range(last - len(mine) + 1, last + 1)   # one each, in order
            await tx.execute(_UNSLOT, jobs=_padded([w.job_id for w in mine]))
            # The first job of each workspace (person) in the batch decides whether it joins the
            # turn order: it does unless something else of it waits already.
            first_of_team: dict[str, tuple[str, int]] = {}
            first_of_person: dict[str, tuple[str, int]] = {}
            for w, turn in zip(mine, turns):
                served = slots.joins(turn, front=w.front)
                first_of_team.setdefault(slots.team_of(w.user_key), (w.job_id, served))
                first_of_person.setdefault(w.user_key, (w.job_id, served))
            teams = await tx.rows(_TEAMS_WAITING, keys=_padded(list(first_of_team)),
                                  jobs=_padded([j for j, _ in first_of_team.values()]), account=self.account)
            people = await tx.rows(_PEOPLE_WAITING, keys=_padded(list(first_of_person)),
                                   jobs=_padded([j for j, _ in first_of_person.values()]), account=self.account)
            for team in {r[0] for r in teams}:
                del first_of_team[team]
            for person in {r[0] for r in people}:
                del first_of_person[person]
            await tx.executemany(self._team_joins, [dict(team=team, served=served, account=self.account)
                                                    for team, (_, served) in first_of_team.items()])
            await tx.executemany(self._join_turns, [dict(user=person, team=slots.team_of(person), served=served,
                                                         account=self.account)
                                                    for person, (_, served) in first_of_person.items()])
            await tx.executemany(self._wait, [dict(job=w.job_id, user=w.user_key, team=slots.team_of(w.user_key),
                                                   front=w.front, seq=turn, replica=replica_id, account=self.account)
                                              for w, turn in zip(mine, turns)])
        return lost

    async def dispatch(self, *, concurrency: int, rate_window: float, probe_period: float) -> tuple[list[str], float]:
        """Grant slots to the jobs whose turn it is, under every limit, for all replicas at
        once: (the jobs granted, seconds until a pause or the rate window lets one more go; 0
        when nothing waits for time). The account row is locked first and everything is
        counted in later statements, which see what other replicas committed meanwhile."""
        async with self.db.write() as tx:
            await self._open(tx)
            account = await tx.row(_ACCOUNT, account=self.account)
            assert account is not None
            estimate, estimate_until, rate_limit, paused_until, clock = account
            stored = Ceiling(estimate, estimate_until)
            ceiling = stored.now(concurrency, clock, probe_period)
            if ceiling != stored:
                await tx.execute(_ESTIMATE, estimate=ceiling.estimate, until=ceiling.until, account=self.account)
            await tx.execute(_SETTLED_SLOTS, account=self.account)
            await tx.execute(_OLD_SUBMISSIONS, before=clock - rate_window, account=self.account)
            decision = slots.grant(in_flight=int(await tx.scalar(_IN_FLIGHT, account=self.account)), limit=ceiling.limit(concurrency),
                                   recent=[float(r[0]) for r in await tx.rows(_RECENT, account=self.account)], rate_limit=rate_limit,
                                   paused_until=paused_until, now=clock, rate_window=rate_window)
            granted: list[str] = []
            while len(granted) < decision.count:
                team = await tx.scalar(_NEXT_TEAM, account=self.account)
                if team is None:
                    break
                person = await tx.scalar(_NEXT_PERSON, team=team, account=self.account)
                nxt = await tx.row(_NEXT_OF, user=person, account=self.account) if person is not None else None
                if nxt is None:  # (a turn left behind: cannot happen, but must not stop the line)
                    if person is not None:
                        await tx.execute(_DONE_WAITING, user=person, account=self.account)
                    await tx.execute(_TEAM_DONE_WAITING, team=team, account=self.account)
                    continue
                job_id, replica = nxt
                await self._grant_one(tx, job_id, team, person, replica)
                granted.append(job_id)
            if granted:
                await self.db.wake_replicas(tx, SLOTS_CHANGED, self.account)
            return granted, decision.wait if len(granted) == decision.count else 0.0

    async def _grant_one(self, tx: Tx, job_id: str, team: str, user_key: str, replica: str | None) -> None:
        turn = int(await tx.scalar(_TURN, n=1, account=self.account))
        await tx.execute(_LEAVE_LINE, job=job_id, account=self.account)
        await tx.execute(self._grant, job=job_id, replica=replica, account=self.account)
        await tx.execute(_SUBMITTED, account=self.account)
        await tx.execute(_SERVED, user=user_key, turn=turn, account=self.account)
        await tx.execute(_TEAM_SERVED, team=team, turn=turn, account=self.account)
        await tx.execute(_DONE_WAITING, user=user_key, account=self.account)
        await tx.execute(_TEAM_DONE_WAITING, team=team, account=self.account)

    async def granted_to(self, replica_id: str) -> list[str]:
        """The jobs of `replica_id` granted a slot since it last asked (each told once)."""
        async with self.db.write() as tx:
            return [r[0] for r in await tx.rows(_UNTOLD, replica=replica_id, account=self.account)]

    async def release(self, job_id: str, replica_id: str) -> None:
        """Free the job's slot (or its place in line), if `replica_id` still owns the job."""
        async with self.db.write() as tx:
            freed = await tx.execute(_FREE, job=job_id, replica=replica_id, account=self.account)
            for user_key, team in await tx.rows(_OUT_OF_LINE, job=job_id, replica=replica_id, account=self.account):
                await tx.execute(_DONE_WAITING, user=user_key, account=self.account)
                await tx.execute(_TEAM_DONE_WAITING, team=team, account=self.account)
            if freed:
                await self.db.wake_replicas(tx, SLOTS_CHANGED, self.account)

    async def hold(self, job_id: str) -> None:
        """A generation already at Luma (a job taken over while generating) holds a slot."""
        async with self.db.write() as tx:
            await tx.execute(self._hold, job=job_id, account=self.account)

    async def pause(self, seconds: float) -> None:
        """Luma said "Rate limit exceeded": nobody submits for `seconds` (the later of this and
        a pause already in force, as slots.paused says, in one statement)."""
        async with self.db.write() as tx:
            await self._open(tx)
            await tx.execute(_PAUSE, seconds=max(0.0, seconds), account=self.account)

    async def too_many(self, job_id: str, retry_after: float, probe_period: float) -> None:
        """Luma said "Too many concurrent jobs" to `job_id` (whose slot is freed): slots.py
        decides the ceiling, or a pause when nothing else is in flight."""
        async with self.db.write() as tx:
            await self._open(tx)
            row = await tx.row(_CEILING, account=self.account)
            assert row is not None
            estimate, until, clock = row
            ceiling, pause = slots.too_many_concurrent(
                Ceiling(estimate, until), others_in_flight=int(await tx.scalar(_OTHERS_IN_FLIGHT, job=job_id, account=self.account)),
                now=clock, retry_after=retry_after, probe=probe_period)
            if pause is not None:
                await tx.execute(_PAUSE, seconds=max(0.0, pause), account=self.account)
            else:
                await tx.execute(_ESTIMATE, estimate=ceiling.estimate, until=ceiling.until, account=self.account)

    async def observe_rate(self, limit: int | None, remaining: int | None, reset_at_unix: float | None,
                           rate_window: float) -> None:
        """From a create's X-RateLimit-* headers: the allowance; none left: wait for the reset."""
        learned, wait = slots.rate_headers(limit, remaining, reset_at_unix, time.time(), rate_window)
        if learned is not None:
            async with self.db.write() as tx:
                await self._open(tx)
                await tx.execute(_RATE, limit=learned, account=self.account)
        if wait is not None:
            await self.pause(wait)

    async def counts(self) -> tuple[int, int]:
        """(how many jobs wait for a slot, how many slots are held)."""
        row = await self.db.row(_COUNTS, account=self.account)
        assert row is not None
        return int(row[0]), int(row[1])

    async def front(self, limit: int) -> list[str]:
        """The first `limit` jobs in line, in the order they will be let through."""
        return [r[0] for r in await self.db.rows(_FRONT, limit=limit, account=self.account)]

    async def wait(self, timeout: float) -> None:
        """Return when slots are granted or freed by any replica, or after `timeout`."""
        await self.db.wait_for_notice(SLOTS_CHANGED, timeout, self.account)
