"""Policy and usage: each workspace's admin policy and its log, what it has used (images and
estimated spend, with the daily totals of swept jobs), the reports and export, and retention
(the daily sweep, forgetting a person)."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import sqlalchemy as sa

from ..jobs.admission import Usage, Window
from ..jobs.forgetting import forget_plan
from ..jobs.policy import Policy, PolicyChange
from ..jobs.usage import JobRecord, Removed, UsageLine
from . import schema
from .dialects import utc_day
from .schema import (dedupe_keys, images, jobs, luma_keys, pending_requests, policies, policy_log, preset_refs, presets,
                     sessions, studio_threads, tenants, thumbnails, usage_days, votes)
from .rows import SHARE
from .sql import Database, Tx, one_of, param

_TEXT = sa.Text()
ALL = 2**62  # a LIMIT that limits nothing (SQLite refuses LIMIT NULL)
POLICY_OF = sa.select(policies.c.data).where(policies.c.team_id == param("team"))
# The policy of the workspace's Enterprise Grid organisation (kept under its enterprise id).
ORG_POLICY_OF = sa.select(policies.c.data).where(policies.c.team_id == sa.select(tenants.c.enterprise_id).where(
    tenants.c.team_id == param("team")).scalar_subquery())
# Both in one read: a workspace's own policy, and its organisation's.
POLICIES_OF = sa.select(POLICY_OF.scalar_subquery(), ORG_POLICY_OF.scalar_subquery())


def parse_policy(data: str | None) -> Policy:
    """A stored policy (absent: every default)."""
    return Policy.model_validate_json(data) if data else Policy()


def parse_policies(own: str | None, organisation: str | None) -> tuple[Policy, Policy | None]:
    """(the workspace's policy; its organisation's, if it has one) from what POLICIES_OF read."""
    return parse_policy(own), parse_policy(organisation) if organisation else None


_LOG = sa.select(policy_log.c.team_id, policy_log.c.user_id, policy_log.c.at, policy_log.c.change).where(
    policy_log.c.team_id == param("team")).order_by(policy_log.c.id.desc()).limit(param("limit"))
_LOGGED = sa.insert(policy_log).values(team_id=param("team"), user_id=param("by"), at=param("at"),
                                       change=param("change"))

# A share posts an image already made (and counted): no image of its own.
_DONE = sa.case((sa.and_(jobs.c.state == "done", jobs.c.type != SHARE), 1), else_=0)
_SPENT = sa.case((jobs.c.charged, jobs.c.cost_usd), else_=0.0)
# Admitted, not sent to Luma yet, not given up: its cost is committed.
_PENDING = sa.case((sa.and_(schema.UNSETTLED, jobs.c.attempts == 0, ~one_of(jobs.c.state, ("failed", "cancelled")),
                            jobs.c.cancelled_by.is_(None)), jobs.c.cost_usd), else_=0.0)
_REQUESTED = sa.case((sa.and_(~one_of(jobs.c.state, ("failed", "cancelled")), jobs.c.type != SHARE), 1), else_=0)
_OUTCOME = sa.case((sa.or_(jobs.c.settled, one_of(jobs.c.state, ("done", "failed", "cancelled"))), jobs.c.state),
                   else_="in progress")


def _usage_query(user: bool, channel: bool) -> sa.Select[Any]:
    """Images and spend of a workspace since a time (for one person or channel): its jobs still
    stored, plus the daily totals of swept ones."""
    where = [jobs.c.team_id == param("team"), jobs.c.created_at >= param("since", sa.Float())]
    totals = [usage_days.c.team_id == param("team"), usage_days.c.day >= param("since", sa.Float())]
    for wanted, column, total in ((user, jobs.c.user_id, usage_days.c.user_id),
                                  (channel, jobs.c.channel_id, usage_days.c.channel_id)):
        if wanted:
            where.append(column == param(column.name))
            totals.append(total == param(column.name))
    swept_images = sa.select(sa.func.coalesce(sa.func.sum(usage_days.c.images), 0)).where(*totals).scalar_subquery()
    swept_spend = sa.select(sa.func.coalesce(sa.func.sum(usage_days.c.spend), 0.0)).where(*totals).scalar_subquery()
    return sa.select(sa.func.coalesce(sa.func.sum(_DONE), 0), sa.func.coalesce(sa.func.sum(_REQUESTED), 0),
                     sa.func.coalesce(sa.func.sum(_SPENT), 0.0), sa.func.coalesce(sa.func.sum(_PENDING), 0.0),
                     swept_images, swept_spend).select_from(jobs).where(*where)


_USAGE = {(user, channel): _usage_query(user, channel) for user in (False, True) for channel in (False, True)}


async def usage_in(tx: Tx, team_id: str, window: Window) -> Usage:
    params: dict[str, Any] = {"team": team_id, "since": window.since}
    if window.user_id is not None:
        params["user_id"] = window.user_id
    if window.channel_id is not None:
        params["channel_id"] = window.channel_id
    row = await tx.row(_USAGE[(window.user_id is not None, window.channel_id is not None)], **params)
    assert row is not None
    images_, requested, spend, pending, swept_images, swept_spend = row
    return Usage(images=int(images_) + int(swept_images), requested=int(requested) + int(swept_images),
                 spend=float(spend) + float(swept_spend), pending=float(pending))


@functools.cache
def _roll_up_old(insert: Any) -> Any:
    return roll_up(insert, _OLD)


def roll_up(insert_: Any, where: sa.ColumnElement[bool], *, user: sa.ColumnElement[Any] | None = None) -> Any:
    """Add the jobs matching `where` to the daily usage totals (per day, person, channel, model
    and type); the person is `user` when given (an anonymous id), else each job's own."""
    person = (user if user is not None else jobs.c.user_id).label("user_id")
    day = utc_day(jobs.c.created_at).label("day")
    select = (sa.select(jobs.c.team_id, day, person, jobs.c.channel_id, jobs.c.model, jobs.c.type,
                        sa.func.sum(_DONE), sa.func.count(), sa.func.coalesce(sa.func.sum(_SPENT), 0.0))
              .where(where).group_by(jobs.c.team_id, day, person, jobs.c.channel_id, jobs.c.model, jobs.c.type))
    insert = insert_(usage_days).from_select(
        ["team_id", "day", "user_id", "channel_id", "model", "type", "images", "jobs", "spend"], select)
    return insert.on_conflict_do_update(
        index_elements=[usage_days.c.team_id, usage_days.c.day, usage_days.c.user_id, usage_days.c.channel_id,
                        usage_days.c.model, usage_days.c.type],
        set_={"images": usage_days.c.images + insert.excluded.images, "jobs": usage_days.c.jobs + insert.excluded.jobs,
              "spend": usage_days.c.spend + insert.excluded.spend})


_USAGE_LINES: Any = sa.select(
    sa.literal_column("user_id"), sa.literal_column("channel_id"), sa.literal_column("model"),
    sa.literal_column("type"), sa.func.sum(sa.literal_column("images")), sa.func.sum(sa.literal_column("spend")),
).select_from(sa.union_all(
    sa.select(jobs.c.user_id, jobs.c.channel_id, jobs.c.model, jobs.c.type, _DONE.label("images"),
              _SPENT.label("spend")).where(jobs.c.team_id == param("team"), jobs.c.created_at >= param("since"),
                                           jobs.c.created_at < param("until")),
    sa.select(usage_days.c.user_id, usage_days.c.channel_id, usage_days.c.model, usage_days.c.type,
              usage_days.c.images, usage_days.c.spend).where(
        usage_days.c.team_id == param("team"), usage_days.c.day >= param("since"), usage_days.c.day < param("until")),
).subquery("u")).group_by(sa.literal_column("user_id"), sa.literal_column("channel_id"),
                          sa.literal_column("model"), sa.literal_column("type"))

_RECORDS = (sa.select(jobs.c.id, jobs.c.created_at, jobs.c.user_id, jobs.c.channel_id, jobs.c.model, jobs.c.type,
                      _OUTCOME, jobs.c.failure_code, _SPENT, jobs.c.params)
            .where(jobs.c.team_id == param("team"), jobs.c.created_at < param("until", sa.Float()),
                   sa.tuple_(jobs.c.created_at, jobs.c.id) > sa.tuple_(param("since", sa.Float()), param("last", _TEXT)),
                   jobs.c.created_at >= param("start", sa.Float()))
            .order_by(jobs.c.created_at, jobs.c.id).limit(param("limit")))

# A sweep is per workspace: each keeps its history as long as its own policy says.
_OLD = sa.and_(jobs.c.team_id == param("team"), jobs.c.settled, jobs.c.created_at < param("cutoff", sa.Float()))
_OLD_IDS = sa.select(jobs.c.id).where(_OLD)
_ENDED = sa.and_(sessions.c.team_id == param("team"), sessions.c.ended_at.is_not(None),
                 sessions.c.ended_at < param("cutoff", sa.Float()), sessions.c.recap_posted)
_SWEEP = (
    sa.delete(thumbnails).where(thumbnails.c.job_id.in_(_OLD_IDS)),
    sa.delete(votes).where(sa.or_(votes.c.job_id.in_(_OLD_IDS), votes.c.session_id.in_(sa.select(sessions.c.id).where(_ENDED)))),
    sa.delete(jobs).where(_OLD),
    sa.delete(images).where(images.c.team_id == param("team"), images.c.created_at < param("cutoff", sa.Float())),
    sa.delete(sessions).where(_ENDED),
)
_SWEEP_MORE = (
    sa.delete(pending_requests).where(pending_requests.c.team_id == param("team"),
                                      pending_requests.c.created_at < param("cutoff", sa.Float())),
    sa.delete(studio_threads).where(studio_threads.c.team_id == param("team"),
                                    studio_threads.c.created_at < param("cutoff", sa.Float())),
)
_SWEEP_KEYS = sa.delete(dedupe_keys).where(dedupe_keys.c.created_at < param("cutoff", sa.Float()), sa.or_(
    dedupe_keys.c.key.not_like("period:%"), dedupe_keys.c.created_at < param("period", sa.Float())))
_TEAMS = sa.union(sa.select(jobs.c.team_id), sa.select(images.c.team_id), sa.select(sessions.c.team_id))
# Everything of one workspace (forget-workspace): its rows, its policy, its usage totals.
_OF_TEAM_JOBS = sa.select(jobs.c.id).where(jobs.c.team_id == param("team"))
_FORGET_WORKSPACE = (
    sa.delete(thumbnails).where(thumbnails.c.job_id.in_(_OF_TEAM_JOBS)),
    sa.delete(votes).where(sa.or_(votes.c.job_id.in_(_OF_TEAM_JOBS), votes.c.session_id.in_(
        sa.select(sessions.c.id).where(sessions.c.team_id == param("team"))))),
    sa.delete(jobs).where(jobs.c.team_id == param("team")),
    sa.delete(images).where(images.c.team_id == param("team")),
    sa.delete(sessions).where(sessions.c.team_id == param("team")),
    sa.delete(dedupe_keys).where(dedupe_keys.c.key.like(sa.literal("%:") + param("team", _TEXT) + sa.literal(":%"))),
    sa.delete(usage_days).where(usage_days.c.team_id == param("team")),
    sa.delete(policies).where(policies.c.team_id == param("team")),
    sa.delete(policy_log).where(policy_log.c.team_id == param("team")),
    sa.delete(tenants).where(tenants.c.team_id == param("team")),
    sa.delete(pending_requests).where(pending_requests.c.team_id == param("team")),
    sa.delete(preset_refs).where(preset_refs.c.preset_id.in_(sa.select(presets.c.id).where(presets.c.team_id == param("team")))),
    sa.delete(presets).where(presets.c.team_id == param("team")),
    sa.delete(studio_threads).where(studio_threads.c.team_id == param("team")),
    sa.delete(luma_keys).where(luma_keys.c.team_id == param("team")),
)
_UNSETTLED_IN_TEAM = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.team_id == param("team"),
                                                                      jobs.c.settled == sa.false())


@functools.cache
def _save(insert: Any) -> Any:
    save = insert(policies).values(team_id=param("team"), data=param("data"), updated_at=param("at"))
    return save.on_conflict_do_update(index_elements=[policies.c.team_id], set_={
        "data": save.excluded.data, "updated_at": save.excluded.updated_at})


class PolicyStore:
    def __init__(self, db: Database):
        self.db = db
        self._save = _save(db.insert)

    # -- the policy -----------------------------------------------------------------------------
    async def get(self, team_id: str) -> Policy:
        """The workspace's policy (absent: every default). An Enterprise Grid organisation's
        policy is kept the same way, under its enterprise id."""
        return parse_policy(await self.db.scalar(POLICY_OF, team=team_id))

    async def with_organisation(self, team_id: str) -> tuple[Policy, Policy | None]:
        """The workspace's policy, and its Grid organisation's if it has one (one read)."""
        row = await self.db.row(POLICIES_OF, team=team_id)
        assert row is not None
        return parse_policies(row[0], row[1])

    async def update(self, team_id: str, edit: Callable[[Policy], Policy], *, by: str, change: str) -> Policy:
        """Read, edit and write the workspace's policy in one transaction, and log the change;
        the new policy. One edit at a time per workspace (the row may not exist yet to lock)."""
        async with self.db.write() as tx:
            await self.db.one_at_a_time(tx, f"policy:{team_id}")
            data = await tx.scalar(POLICY_OF, team=team_id)
            policy = edit(parse_policy(data))
            now = time.time()
            await tx.execute(self._save, team=team_id, data=policy.model_dump_json(exclude_unset=True), at=now)
            await tx.execute(_LOGGED, team=team_id, by=by, at=now, change=change)
        return policy

    async def log(self, team_id: str, limit: int = 20) -> list[PolicyChange]:
        """The latest policy changes, newest first."""
        return [PolicyChange(*r) for r in await self.db.rows(_LOG, team=team_id, limit=limit)]

    # -- usage ----------------------------------------------------------------------------------
    async def usage(self, team_id: str, since: float, *, user_id: str | None = None,
                    channel_id: str | None = None) -> Usage:
        """Images and estimated spend since a time (a day's start), for a workspace or one
        person or channel in it, swept jobs' daily totals included."""
        async with self.db.read() as tx:
            return await usage_in(tx, team_id, Window(since, user_id=user_id, channel_id=channel_id))

    async def usage_lines(self, team_id: str, since: float, until: float) -> list[UsageLine]:
        """Images and spend per person, channel, model and type in [since, until), swept jobs'
        daily totals included."""
        rows = await self.db.rows(_USAGE_LINES, team=team_id, since=since, until=until)
        return [UsageLine(r[0], r[1], r[2], r[3], int(r[4]), float(r[5])) for r in rows]

    async def job_records(self, team_id: str, since: float, until: float, *,
                          after: tuple[float, str] | None = None, limit: int | None = None) -> list[JobRecord]:
        """The stored jobs created in [since, until), oldest first (by created_at, then id): at
        most `limit`, those after `after` (the last one's (created_at, id): the next page)."""
        start, last = after if after is not None else (since, "")
        rows = await self.db.rows(_RECORDS, team=team_id, since=start, last=last, until=until,
                                  limit=ALL if limit is None else limit,
                                  start=since)
        return [JobRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], float(r[8]), _prompt(r[9]))
                for r in rows]

    # -- retention ------------------------------------------------------------------------------
    async def teams(self) -> list[str]:
        """The workspaces that have history to sweep."""
        return sorted(str(r[0]) for r in await self.db.rows(_TEAMS))

    async def sweep(self, team_id: str, cutoff: float) -> Removed:
        """Delete the workspace's history older than `cutoff`: settled jobs (their usage kept as
        daily totals), their thumbnails and votes, images, ended sessions. What went, per table.
        One sweep or forget at a time (each sees what the one before it deleted: no job is
        counted twice)."""
        async with self.db.write() as tx:
            await self.db.one_at_a_time(tx, "roll-up")
            await tx.execute(_roll_up_old(self.db.insert), cutoff=cutoff, team=team_id)
            thumbnails_, votes_, jobs_, images_, sessions_ = [
                await tx.execute(stmt, cutoff=cutoff, team=team_id) for stmt in _SWEEP]
            for stmt in _SWEEP_MORE:  # requests held for a preview (prompts), studio threads
                await tx.execute(stmt, cutoff=cutoff, team=team_id)
        return Removed(jobs=jobs_, images=images_, thumbnails=thumbnails_, sessions=sessions_, votes=votes_)

    async def sweep_keys(self, cutoff: float, *, period_cutoff: float) -> int:
        """Delete dedupe keys older than `cutoff` (those starting with `period:` live until
        `period_cutoff`)."""
        async with self.db.write() as tx:
            return await tx.execute(_SWEEP_KEYS, cutoff=cutoff, period=period_cutoff)

    async def unsettled(self, team_id: str) -> int:
        """The workspace's jobs still waiting or being made."""
        return int(await self.db.scalar(_UNSETTLED_IN_TEAM, team=team_id) or 0)

    async def forget_workspace(self, team_id: str) -> Removed:
        """Delete everything lumabot keeps about a workspace: its jobs, images, sessions, votes,
        thumbnails, dedupe keys, usage totals, policy and its log. Then the database makes sure
        the text is gone from its files."""
        async with self.db.write() as tx:
            await self.db.one_at_a_time(tx, "roll-up")
            counts = [await tx.execute(stmt, team=team_id) for stmt in _FORGET_WORKSPACE]
        await self.db.forgotten()
        thumbnails_, votes_, jobs_, images_, sessions_, keys = counts[:6]
        return Removed(jobs=jobs_, images=images_, thumbnails=thumbnails_, sessions=sessions_, votes=votes_,
                       dedupe_keys=keys)

    async def forget(self, team_id: str, user_id: str, anonymous_id: str) -> Removed:
        """Delete a person's prompts, history and thumbnails now (their finished jobs' spend stays
        in the daily totals under `anonymous_id`), remove copies of their text from other
        people's jobs, and leave an instruction on their jobs still under way (forgotten as they
        settle: JobStore.save). Then the database makes sure the text is gone from its files."""
        theirs = sa.and_(jobs.c.team_id == param("team"), jobs.c.user_id == param("user"), jobs.c.settled)
        their_ids = sa.select(jobs.c.id).where(theirs)
        who = {"team": team_id, "user": user_id}
        async with self.db.write() as tx:
            await self.db.one_at_a_time(tx, "roll-up")
            mine = [(r[0], r[1], bool(r[2])) for r in await tx.rows(
                sa.select(jobs.c.id, jobs.c.params, jobs.c.settled).where(
                    jobs.c.team_id == param("team"), jobs.c.user_id == param("user")), **who)]
            themes = [r[0] for r in await tx.rows(sa.select(sessions.c.theme).where(
                sessions.c.team_id == param("team"), sessions.c.started_by == param("user")), **who)]
            others = [(r[0], r[1], bool(r[2])) for r in await tx.rows(
                sa.select(jobs.c.id, jobs.c.params, jobs.c.settled).where(
                    jobs.c.team_id == param("team"), jobs.c.user_id != param("user")), **who)]
            plan = forget_plan(anonymous_id, mine, themes, others)
            await tx.executemany(sa.update(jobs).where(jobs.c.id == param("id_")).values(params=param("params")),
                                 [{"id_": i, "params": p} for i, p in plan.rewrite])
            await tx.executemany(sa.update(jobs).where(jobs.c.id == param("id_")).values(on_settle=param("on_settle")),
                                 [{"id_": i, "on_settle": o} for i, o in plan.on_settle])
            await tx.execute(roll_up(self.db.insert, theirs, user=param("anonymous", _TEXT)), anonymous=anonymous_id,
                             **who)
            thumbnails_ = await tx.execute(sa.delete(thumbnails).where(thumbnails.c.job_id.in_(their_ids)), **who)
            images_ = await tx.execute(sa.delete(images).where(sa.or_(
                images.c.user_id == param("user"), images.c.job_id.in_(their_ids))), **who)
            votes_ = await tx.execute(sa.delete(votes).where(sa.or_(
                votes.c.user_id == param("user"), votes.c.job_id.in_(their_ids))), **who)
            jobs_ = await tx.execute(sa.delete(jobs).where(theirs), **who)
            sessions_ = await tx.execute(sa.update(sessions).where(
                sessions.c.team_id == param("team"), sessions.c.started_by == param("user")).values(
                started_by=param("anonymous", _TEXT), theme=None), anonymous=anonymous_id, **who)
            await tx.execute(sa.delete(pending_requests).where(
                pending_requests.c.team_id == param("team"), pending_requests.c.user_id == param("user")), **who)
            mine_presets = sa.select(presets.c.id).where(presets.c.team_id == param("team"),
                                                         presets.c.owner_id == param("user"))
            await tx.execute(sa.delete(preset_refs).where(preset_refs.c.preset_id.in_(mine_presets)), **who)
            await tx.execute(sa.delete(presets).where(presets.c.team_id == param("team"),
                                                      presets.c.owner_id == param("user")), **who)
            await tx.execute(sa.delete(studio_threads).where(studio_threads.c.team_id == param("team"),
                                                             studio_threads.c.user_id == param("user")), **who)
            keys = await tx.execute(sa.delete(dedupe_keys).where(sa.or_(
                dedupe_keys.c.key.like(sa.literal("%:") + param("user", _TEXT)),
                dedupe_keys.c.key.like(sa.literal("%:") + param("user", _TEXT) + sa.literal(":%")))), **who)
        await self.db.forgotten()
        return Removed(jobs=jobs_, images=images_, thumbnails=thumbnails_, sessions=sessions_, votes=votes_,
                       dedupe_keys=keys, copies=plan.copies, running=plan.running)


def _prompt(params: str) -> str | None:
    from ..jobs.models import GenerationParams

    return GenerationParams.model_validate_json(params).prompt
