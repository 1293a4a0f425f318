"""Jobs and their life: a new job admitted and recorded in one transaction, the runner's
fenced writes, cancelling while waiting, and which replica runs which job (heartbeats,
takeovers, handing jobs back)."""

from __future__ import annotations

import functools
import time
from typing import Any, Sequence

import sqlalchemy as sa

from ..jobs.admission import Admission, AdmissionCounts, AdmissionRules, admission_counts
from ..jobs.forgetting import settle_action
from ..jobs.models import GenerationParams, Job, KnownImage
from . import schema
from .dialects import now
from .errors import JobCancelled, JobLost
from .images import ImageStore
from .keys import new_key
from .rows import DERIVED, JOB_COLUMNS, JOB_SELECT, WrittenRows, job_from_row, job_row
from .schema import dedupe_keys, images, jobs, replicas, thumbnails, votes
from .sql import JOBS_RELEASED, Database, Tx, one_of, param
from .policy import POLICIES_OF, parse_policies, roll_up, usage_in

_TEXT = sa.Text()

_GET = sa.select(*JOB_SELECT).where(jobs.c.id == param("id"))
_OWNER = sa.select(jobs.c.cancelled_by, jobs.c.owner, jobs.c.epoch).where(jobs.c.id == param("id"))
_WAITING = sa.select(sa.func.count()).select_from(jobs).where(
    jobs.c.team_id == param("team"), jobs.c.user_id == param("user"), schema.UNSETTLED,
    one_of(jobs.c.state, ("queued", "submitting")), jobs.c.cancelled_by.is_(None))
# What an admission reads once it is the workspace's turn, in one statement: the policies, and
# how many of the person's images wait in line.
_ADMISSION_READ = POLICIES_OF.add_columns(_WAITING.scalar_subquery())
_DROP_KEY = sa.delete(dedupe_keys).where(dedupe_keys.c.key == param("key"))
_WITHDRAW = sa.delete(jobs).where(jobs.c.id == param("id"), jobs.c.state == "queued", jobs.c.status_ts.is_(None),
                                  schema.UNSETTLED)
_CANCEL = sa.update(jobs).where(jobs.c.id == param("id"), jobs.c.state == "queued", schema.UNSETTLED,
                                jobs.c.cancelled_by.is_(None)).values(cancelled_by=param("by"))
_WAITING_IN_TEAM = sa.select(jobs.c.id).where(jobs.c.team_id == param("team"), jobs.c.state == "queued",
                                              schema.UNSETTLED, jobs.c.cancelled_by.is_(None))
_CANCELLED = sa.select(jobs.c.id, jobs.c.cancelled_by).where(
    jobs.c.owner == param("replica"), schema.UNSETTLED, jobs.c.state == "queued", jobs.c.cancelled_by.is_not(None))
_DELETED = sa.update(jobs).where(jobs.c.id == param("id")).values(deleted=True)
_RECENT = sa.select(*JOB_SELECT).where(jobs.c.team_id == param("team"), jobs.c.user_id == param("user")).order_by(
    jobs.c.created_at.desc(), jobs.c.id.desc()).limit(param("limit"))
_LATENCIES = sa.select(jobs.c.params, jobs.c.running_seen, jobs.c.completed_at - jobs.c.submitted_at,
                       jobs.c.polled_densely, jobs.c.completed_at).where(
    jobs.c.state == "done", jobs.c.completed_at.is_not(None), jobs.c.submitted_at.is_not(None)).order_by(
    jobs.c.completed_at.desc()).limit(param("limit"))
_DENSE_LATENCIES = _LATENCIES.where(jobs.c.polled_densely == sa.true(), jobs.c.completed_at < param("before"))
_FOR_MESSAGE = sa.select(*JOB_SELECT).where(
    jobs.c.team_id == param("team"), jobs.c.channel_id == param("channel"),
    sa.or_(jobs.c.actions_ts == param("ts"), jobs.c.status_ts == param("ts"), jobs.c.id.in_(
        sa.select(images.c.job_id).where(images.c.team_id == param("team"), images.c.channel_id == param("channel"),
                                         images.c.message_ts == param("ts"),
                                         images.c.origin == "lumabot")))).limit(1)
_BATCH = sa.select(*JOB_SELECT).where(jobs.c.batch_id == param("batch")).order_by(jobs.c.batch_index)
_RELEASE = sa.update(jobs).where(jobs.c.owner == param("replica"), schema.UNSETTLED).values(owner=None)
_GONE = sa.delete(replicas).where(replicas.c.id == param("replica"))


def _taken_from() -> sa.Select[tuple[str]]:
    """The owners whose unsettled jobs a claim takes: a replica whose heartbeat is older than
    `stale` seconds on the database's clock, or gone (no row); with `own`, this replica itself
    (its jobs from before a restart). The owners of unsettled jobs are few (the replicas): they
    are walked from the owners index, one probe each (a recursive "next owner after this one"),
    without reading the jobs."""
    o = jobs.alias("o")
    first = sa.select(sa.func.min(o.c.owner).label("owner")).where(o.c.settled == sa.false())
    owners = first.cte("owners", recursive=True)
    after = sa.select(sa.func.min(o.c.owner)).where(o.c.settled == sa.false(), o.c.owner > owners.c.owner)
    owners = owners.union_all(sa.select(after.scalar_subquery()).where(owners.c.owner.is_not(None)))
    fresh = sa.select(replicas.c.id).where(replicas.c.id == owners.c.owner,
                                           replicas.c.heartbeat_at >= now() - param("stale", sa.Float()))
    return sa.select(owners.c.owner).where(
        owners.c.owner.is_not(None),
        sa.or_(sa.and_(owners.c.owner == param("replica"), param("own", sa.Boolean())),
               sa.and_(owners.c.owner != param("replica"), ~fresh.exists())))


def _claimable() -> sa.Update:
    """Unsettled jobs nobody runs (unowned, or of an owner `_taken_from` names), oldest first,
    after (`since`, `last`), at most `limit`: each one's epoch bumped. Replicas claiming at once
    skip each other's rows (FOR UPDATE SKIP LOCKED; SQLite's one writer claims alone)."""
    j = jobs.alias("j")
    ids = (sa.select(j.c.id)
           .where(j.c.settled == sa.false(), sa.or_(j.c.owner.is_(None), j.c.owner.in_(_taken_from())),
                  sa.tuple_(j.c.created_at, j.c.id) > sa.tuple_(param("since", sa.Float()), param("last", _TEXT)))
           .order_by(j.c.created_at, j.c.id).limit(param("limit"))
           .with_for_update(of=j, skip_locked=True))
    return (sa.update(jobs).where(jobs.c.id.in_(ids))
            .values(owner=param("replica"), epoch=jobs.c.epoch + 1).returning(*JOB_SELECT))


_CLAIM = _claimable()


def _anything_claimable() -> sa.Select[tuple[bool]]:
    """Whether `_claimable` would find a row, from the owners index alone: an unowned unsettled
    job, or an owner to take from. Replicas ask every second, with tens of thousands of jobs
    waiting, where the claim itself reads every unsettled job."""
    unowned = sa.select(jobs.c.id).where(jobs.c.settled == sa.false(), jobs.c.owner.is_(None))
    return sa.select(sa.or_(unowned.exists(), _taken_from().exists()))


_ANY_CLAIMABLE = _anything_claimable()


_INSERT = sa.insert(jobs).values({c: param(c) for c in JOB_COLUMNS + DERIVED})
_UPDATES: dict[tuple[tuple[str, ...], bool], sa.Update] = {}


@functools.cache
def _upserts(insert: Any) -> tuple[Any, Any]:
    """(a new dedupe key, a heartbeat), in the dialect's INSERT (built once)."""
    beat = insert(replicas).values(id=param("replica"), heartbeat_at=now())
    return (new_key(insert),
            beat.on_conflict_do_update(index_elements=[replicas.c.id],
                                       set_={"heartbeat_at": beat.excluded.heartbeat_at}))


class JobStore:
    def __init__(self, db: Database, images: ImageStore):
        self.db = db
        self.images = images
        self._written = WrittenRows()
        self._new_key, self._heartbeat = _upserts(db.insert)

    # -- a new job ------------------------------------------------------------------------------
    async def create(self, jobs: Job | Sequence[Job], *, dedupe_key: str | None = None,
                     rules: AdmissionRules | None = None) -> Admission:
        """Insert a request's new jobs (one, or the images of a batch), deciding admission in
        the same transaction, for all of them or none: a duplicate dedupe key (a Slack event
        id, an action id), or a refusal of `rules` under the workspace's policy, creates
        nothing; parallel requests cannot overshoot a limit."""
        jobs = [jobs] if isinstance(jobs, Job) else list(jobs)
        rows = [job_row(job) for job in jobs]
        async with self.db.write() as tx:
            if rules is not None:   # one admission at a time per workspace (first: it begins the unit)
                await self.db.one_at_a_time(tx, f"admit:{jobs[0].team_id}")
            if dedupe_key is not None and not await tx.execute(self._new_key, key=dedupe_key, now=time.time()):
                return Admission.duplicate()
            admission = Admission.created()
            if rules is not None:
                admission = await self._admit(tx, jobs, rules)
                if admission.status == "refused":
                    if dedupe_key is not None:
                        await tx.execute(_DROP_KEY, key=dedupe_key)
                    return admission
            await tx.executemany(_INSERT, rows)
        for row in rows:
            self._written.remember(row)
        return admission

    async def _admit(self, tx: Tx, jobs: list[Job], rules: AdmissionRules) -> Admission:
        """The decision (jobs/admission.py), from the policy and the counts read here (one
        admission at a time per workspace: each counts what the ones before it recorded)."""
        job = jobs[0]
        row = await tx.row(_ADMISSION_READ, team=job.team_id, user=job.user_id)
        assert row is not None
        own, organisation = parse_policies(row[0], row[1])
        in_force = own.resolve(rules.limits, organisation)
        early = rules.early(in_force, jobs)
        if early is not None:
            return Admission.refused(early, AdmissionCounts(), in_force, asked=len(jobs))  # nothing counted
        needed = rules.needed(in_force, job)
        windows = [w for w in (needed.mine_today, needed.today, needed.month, needed.channel_month) if w is not None]
        usage = {w: await usage_in(tx, job.team_id, w) for w in windows}
        return rules.decide(in_force, jobs, admission_counts(int(row[2]), needed, usage))

    async def withdraw(self, job_ids: Sequence[str], dedupe_key: str | None) -> None:
        """Delete the jobs of a request that was recorded but never started (its person was
        told to try again), and its dedupe key; nothing of a job that has started."""
        async with self.db.write() as tx:
            for job_id in job_ids:
                await tx.execute(_WITHDRAW, id=job_id)
            if dedupe_key is not None:
                await tx.execute(_DROP_KEY, key=dedupe_key)
        for job_id in job_ids:
            self._written.forget(job_id)

    async def batch(self, batch_id: str) -> list[Job]:
        """The jobs of one request's batch, in order."""
        return [job_from_row(r) for r in await self.db.rows(_BATCH, batch=batch_id)]

    # -- the runner's writes --------------------------------------------------------------------
    def _update(self, columns: tuple[str, ...], settling: bool) -> sa.Update:
        """The fenced UPDATE of these columns (built once per set of columns)."""
        stmt = _UPDATES.get((columns, settling))
        if stmt is None:
            stmt = (sa.update(jobs)
                    .where(jobs.c.id == param("id_"), jobs.c.owner.is_not_distinct_from(param("owner_", _TEXT)),
                           jobs.c.epoch == param("epoch_"),
                           sa.or_(jobs.c.cancelled_by.is_(None), param("state_", _TEXT) != "submitting"))
                    .values({c: param(c) for c in columns}))
            if settling:  # then a forget may have left an instruction
                stmt = stmt.returning(jobs.c.on_settle)
            _UPDATES[(columns, settling)] = stmt
        return stmt

    def unsaved(self, job: Job) -> bool:
        """Whether the job has changes `save` would write (all of it, if not remembered here)."""
        return bool(self._written.changes(job)[0])

    async def save(self, job: Job, *, image: KnownImage | None = None) -> None:
        """Write the fields the job's runner owns that changed (not `deleted`: see
        mark_deleted), if this copy of the job still owns it (same owner and epoch); JobLost
        otherwise (fencing), JobCancelled if it was cancelled before its create. With `image`
        (a delivered image), record it in the same transaction."""
        changes, row = self._written.changes(job)
        if not changes and image is None:  # nothing to write: only check the job is still ours
            found = await self.db.row(_OWNER, id=job.id)
            if found is None or (found[1], found[2]) != (job.owner, job.epoch):
                raise JobLost(job.id)
            return
        changes = changes or {"state": row["state"]}  # the image needs the fenced statement
        settling = bool(changes.get("settled"))
        update = self._update(tuple(changes), settling)
        fence = {"id_": job.id, "owner_": job.owner, "epoch_": job.epoch, "state_": job.state.value}
        instruction = None
        if not settling and image is None:  # the runner's usual write: one statement
            changed = await self.db.execute(update, **changes, **fence)
        else:
            async with self.db.write() as tx:
                if settling:
                    returned = await tx.rows(update, **changes, **fence)
                    changed, instruction = len(returned), returned[0][0] if returned else None
                else:
                    changed = await tx.execute(update, **changes, **fence)
                if changed and image is not None:
                    await self.images.record_in(tx, image)
                if instruction is not None:
                    await self._settle_forgotten(tx, job.id, instruction, row["params"])
        if instruction is not None:
            await self.db.forgotten()
        if not changed:
            found = await self.db.row(_OWNER, id=job.id)
            if found is not None and found[0] and (found[1], found[2]) == (job.owner, job.epoch):
                raise JobCancelled(found[0])
            raise JobLost(job.id)
        self._written.remember(row)

    async def _settle_forgotten(self, tx: Tx, job_id: str, instruction: str, params: str) -> None:
        """Apply what a forget left on a job, as it settles (in the settling transaction)."""
        action, value = settle_action(instruction, params)
        if action == "rewrite":
            await tx.execute(_REWRITE, id=job_id, params=value)
            return
        await self.db.one_at_a_time(tx, "roll-up")
        await tx.execute(roll_up(self.db.insert, jobs.c.id == param("id"), user=param("anonymous", _TEXT)),
                         id=job_id, anonymous=value)
        for table, column in ((thumbnails, thumbnails.c.job_id), (votes, votes.c.job_id),
                              (images, images.c.job_id), (jobs, jobs.c.id)):
            await tx.execute(sa.delete(table).where(column == param("id")), id=job_id)

    async def request_cancel(self, job_id: str, user_id: str) -> bool:
        """Cancel a job that still waits for Luma (state queued); False once it was sent or is
        finished. Its runner's next move to `submitting` then fails with JobCancelled."""
        async with self.db.write() as tx:
            return await tx.execute(_CANCEL, id=job_id, by=user_id) == 1

    async def cancel_waiting(self, team_id: str, by: str) -> list[str]:
        """Cancel every job of the workspace that still waits for Luma (lumabot was
        uninstalled there); the ids of those cancelled."""
        async with self.db.write() as tx:
            waiting = [r[0] for r in await tx.rows(_WAITING_IN_TEAM, team=team_id)]
            return [job_id for job_id in waiting if await tx.execute(_CANCEL, id=job_id, by=by) == 1]

    async def cancel_requests(self, replica_id: str) -> list[tuple[str, str]]:
        """(job id, who cancelled) of this replica's waiting jobs that were cancelled."""
        return [(r[0], r[1]) for r in await self.db.rows(_CANCELLED, replica=replica_id)]

    async def mark_deleted(self, job_id: str) -> None:
        """The requester (or an admin) deleted the result; touches nothing else of the row."""
        async with self.db.write() as tx:
            await tx.execute(_DELETED, id=job_id)

    # -- reads ----------------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job | None:
        row = await self.db.row(_GET, id=job_id)
        return job_from_row(row) if row else None

    async def recent(self, team_id: str, user_id: str, limit: int = 20) -> list[Job]:
        """A person's latest jobs, newest first."""
        return [job_from_row(r) for r in await self.db.rows(_RECENT, team=team_id, user=user_id, limit=limit)]

    async def recent_latencies(self, limit: int, kept: int = 0) -> list[tuple[tuple[str, str], float, float, bool]]:
        """(latency class, last seen running, seen completed, polled densely), in seconds after
        it was sent, of the latest `limit` delivered jobs and then, before those, the latest
        `kept` polled densely from their first poll; newest first: what the poll planner
        learned, for a restart. A job recorded before the first was kept is taken as seen
        running until completed."""
        rows = list(await self.db.rows(_LATENCIES, limit=limit))
        if kept and len(rows) == limit:
            rows += await self.db.rows(_DENSE_LATENCIES, limit=kept, before=rows[-1][4])
        return [(GenerationParams.model_validate_json(r[0]).latency_class,
                 float(r[2]) if r[1] is None else float(r[1]), float(r[2]), bool(r[3])) for r in rows]

    async def for_message(self, team_id: str, channel_id: str, ts: str) -> Job | None:
        """The job whose image, buttons or status message is the message at `ts`."""
        row = await self.db.row(_FOR_MESSAGE, team=team_id, channel=channel_id, ts=ts)
        return job_from_row(row) if row else None

    # -- replicas: ownership, heartbeats, takeover ----------------------------------------------
    async def heartbeat(self, replica_id: str) -> None:
        """This replica is alive (on the database's clock)."""
        async with self.db.write() as tx:
            await tx.execute(self._heartbeat, replica=replica_id)

    async def claim(self, replica_id: str, *, stale_after: float, include_own: bool = False,
                    limit: int = 500, after: tuple[float, str] | None = None) -> list[Job]:
        """Take over the unsettled jobs nobody runs (see `_claimable`), bumping each one's epoch
        so that its previous owner can no longer write it; at most `limit`, oldest first (by
        created_at, then id), only those after `after` (the last one's (created_at, id))."""
        since, last = after if after is not None else (float("-inf"), "")
        if not await self.db.scalar(_ANY_CLAIMABLE, replica=replica_id, own=include_own, stale=float(stale_after)):
            return []  # (the common case on a replica: every job has a live owner)
        async with self.db.write() as tx:
            rows = await tx.rows(_CLAIM, replica=replica_id, own=include_own, stale=float(stale_after),
                                 since=since, last=last, limit=limit)
        claimed = sorted((job_from_row(r) for r in rows), key=lambda j: (j.created_at, j.id))
        self._written.remember_jobs(claimed)
        return claimed

    async def release(self, replica_id: str) -> int:
        """Hand this replica's unsettled jobs back (a graceful stop) and wake the others; how many."""
        async with self.db.write() as tx:
            released = await tx.execute(_RELEASE, replica=replica_id)
            await tx.execute(_GONE, replica=replica_id)
            await self.db.wake_replicas(tx, JOBS_RELEASED)
        return released

    async def wait_for_released(self, timeout: float) -> None:
        """Return when another replica hands jobs back, or after `timeout` seconds."""
        await self.db.wait_for_notice(JOBS_RELEASED, timeout)


_REWRITE = sa.update(jobs).where(jobs.c.id == param("id")).values(params=param("params"), on_settle=None)


