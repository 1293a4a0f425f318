"""Every table lumabot keeps, declared once for both databases (SQLAlchemy Core).

Times are seconds since the epoch (floats) everywhere, including the ones the database's own
clock writes (heartbeats, Luma's slot tables: `dialects.now()`). Text is TEXT; `params` and
`flags` hold JSON as text. Migrations (store/migrations) bring every database to exactly this;
tests/store/test_upgrade.py compares a migrated database with it, on both databases.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

# A surrogate key that counts up: INTEGER PRIMARY KEY on SQLite (its rowid), BIGSERIAL-like on
# PostgreSQL.
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TEXT, _FLOAT, _INT, _BOOL = sa.Text(), sa.Float(precision=53), sa.Integer(), sa.Boolean(create_constraint=False)


jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", _TEXT, primary_key=True),
    sa.Column("team_id", _TEXT, nullable=False),
    sa.Column("user_id", _TEXT, nullable=False),
    sa.Column("channel_id", _TEXT, nullable=False),
    sa.Column("thread_ts", _TEXT),
    sa.Column("response_url", _TEXT),
    sa.Column("params", _TEXT, nullable=False),
    sa.Column("state", _TEXT, nullable=False),
    sa.Column("status_ts", _TEXT),
    sa.Column("generation_id", _TEXT),
    sa.Column("attempts", _INT, nullable=False, server_default="0"),
    sa.Column("submit_tries", _INT, nullable=False, server_default="0"),
    sa.Column("waiting_reason", _TEXT),
    sa.Column("failure_code", _TEXT),
    sa.Column("failure_detail", _TEXT),
    sa.Column("slack_file_id", _TEXT),
    sa.Column("created_at", _FLOAT, nullable=False),
    sa.Column("submitted_at", _FLOAT),
    sa.Column("completed_at", _FLOAT),
    sa.Column("running_seen", _FLOAT),
    sa.Column("polled_densely", _BOOL, nullable=False, server_default=sa.false()),
    sa.Column("finished_at", _FLOAT),
    sa.Column("deadline", _FLOAT),
    sa.Column("settled", _BOOL, nullable=False, server_default=sa.false()),
    sa.Column("cost_usd", _FLOAT, nullable=False, server_default="0"),
    sa.Column("actions_ts", _TEXT),
    sa.Column("deleted", _BOOL, nullable=False, server_default=sa.false()),
    sa.Column("session_id", _TEXT),
    sa.Column("blind_resends", _INT, nullable=False, server_default="0"),
    sa.Column("owner", _TEXT),
    sa.Column("epoch", _INT, nullable=False, server_default="0"),
    sa.Column("cancelled_by", _TEXT),
    sa.Column("on_settle", _TEXT),  # what a forget left for a job still under way (jobs/forgetting.py)
    # Written from the job itself, for the usage queries (store/rows.py): its model, its type
    # (image or image_edit), and whether Luma charges for it (`Job.charged`).
    sa.Column("model", _TEXT, nullable=False, server_default="uni-1"),
    sa.Column("type", _TEXT, nullable=False, server_default="image"),
    sa.Column("charged", _BOOL, nullable=False, server_default=sa.false()),
    # Several images from one request (jobs/models.py): the first job's id, the image's place.
    sa.Column("batch_id", _TEXT),
    sa.Column("batch_index", _INT, nullable=False, server_default="0"),
    sa.Column("batch_size", _INT, nullable=False, server_default="1"),
    sa.Column("origin", _TEXT),  # where it came from, for its Info (jobs/models.py Origin, JSON)
    # The Luma account its generation goes to: "default" (the operator's key) or the workspace
    # whose own key it uses (`luma_keys`).
    sa.Column("account", _TEXT, nullable=False, server_default="default"),
)
UNSETTLED = jobs.c.settled == sa.false()
sa.Index("jobs_unsettled", jobs.c.created_at, sqlite_where=UNSETTLED, postgresql_where=UNSETTLED)
# Indexes only several replicas need (who owns which job): every index page a job's write
# touches goes to SQLite's WAL whole, so one process keeps them out of its way.
sa.Index("jobs_owner", jobs.c.owner, postgresql_where=UNSETTLED).ddl_if(dialect="postgresql")
sa.Index("jobs_user_created", jobs.c.team_id, jobs.c.user_id, jobs.c.created_at)
sa.Index("jobs_team_created", jobs.c.team_id, jobs.c.created_at)
sa.Index("jobs_channel_status", jobs.c.team_id, jobs.c.channel_id, jobs.c.status_ts)
_IN_A_SESSION = jobs.c.session_id.is_not(None)
sa.Index("jobs_session", jobs.c.session_id, sqlite_where=_IN_A_SESSION, postgresql_where=_IN_A_SESSION)
_IN_A_BATCH = jobs.c.batch_id.is_not(None)
sa.Index("jobs_batch", jobs.c.batch_id, sqlite_where=_IN_A_BATCH, postgresql_where=_IN_A_BATCH)

# Presets (jobs/presets.py): a person's own (owner_id) or the workspace's (owner_id ''), each
# name once per owner; their reference images, normalised, kept with them.
presets = sa.Table(
    "presets", metadata,
    sa.Column("id", _TEXT, primary_key=True),
    sa.Column("team_id", _TEXT, nullable=False),
    sa.Column("owner_id", _TEXT, nullable=False),
    sa.Column("name", _TEXT, nullable=False),
    sa.Column("flags", _TEXT, nullable=False),
    sa.Column("style", _TEXT),
    sa.Column("refs", _INT, nullable=False, server_default="0"),
    sa.Column("created_by", _TEXT, nullable=False),
    sa.Column("created_at", _FLOAT, nullable=False),
)
sa.Index("presets_name", presets.c.team_id, presets.c.owner_id, presets.c.name, unique=True)
# A workspace's own Luma key (`/luma admin luma-key`): its jobs go to that account. Sealed with
# LUMABOT_ENCRYPTION_KEY when it is set (secrets.py).
luma_keys = sa.Table(
    "luma_keys", metadata,
    sa.Column("team_id", _TEXT, primary_key=True),
    sa.Column("api_key", _TEXT, nullable=False),
    sa.Column("set_by", _TEXT, nullable=False),
    sa.Column("set_at", _FLOAT, nullable=False),
)
preset_refs = sa.Table(
    "preset_refs", metadata,
    sa.Column("preset_id", _TEXT, primary_key=True),
    sa.Column("position", _INT, primary_key=True),
    sa.Column("media_type", _TEXT, nullable=False),
    sa.Column("data", _TEXT, nullable=False),   # base64
)

# Threads of lumabot's private studio in Slack's AI split view: who opened each, the channel they
# are looking at (Bolt's thread context, kept here rather than in message metadata), whether its
# title is set.
studio_threads = sa.Table(
    "studio_threads", metadata,
    sa.Column("channel_id", _TEXT, primary_key=True),
    sa.Column("thread_ts", _TEXT, primary_key=True),
    sa.Column("team_id", _TEXT, nullable=False),
    sa.Column("user_id", _TEXT, nullable=False),
    sa.Column("context", _TEXT, nullable=False),     # JSON: channel_id, team_id, enterprise_id
    sa.Column("titled", _BOOL, nullable=False, server_default=sa.false()),
    sa.Column("created_at", _FLOAT, nullable=False),
)

# Requests over the confirmation threshold, held until their person confirms or cancels
# (jobs/admission.py; nothing of them is counted or sent before).
pending_requests = sa.Table(
    "pending_requests", metadata,
    sa.Column("id", _TEXT, primary_key=True),
    sa.Column("team_id", _TEXT, nullable=False),
    sa.Column("user_id", _TEXT, nullable=False),
    sa.Column("created_at", _FLOAT, nullable=False),
    sa.Column("jobs", _TEXT, nullable=False),   # the request's jobs, as JSON
)
sa.Index("pending_requests_person", pending_requests.c.team_id, pending_requests.c.user_id)

dedupe_keys = sa.Table(
    "dedupe_keys", metadata,
    sa.Column("key", _TEXT, primary_key=True),
    sa.Column("created_at", _FLOAT, nullable=False),
)

images = sa.Table(
    "images", metadata,
    sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
    sa.Column("team_id", _TEXT, nullable=False, server_default=""),   # the installing workspace
    sa.Column("channel_id", _TEXT, nullable=False),
    sa.Column("thread_ts", _TEXT, nullable=False),
    sa.Column("message_ts", _TEXT),
    sa.Column("origin", _TEXT, nullable=False),
    sa.Column("job_id", _TEXT),
    sa.Column("generation_id", _TEXT),
    sa.Column("slack_file_id", _TEXT),
    sa.Column("file", _TEXT),
    sa.Column("user_id", _TEXT),
    sa.Column("created_at", _FLOAT, nullable=False),
)
# Every lookup names the workspace: the same channel id in two workspaces is two channels.
sa.Index("images_thread", images.c.team_id, images.c.channel_id, images.c.thread_ts, images.c.id)
sa.Index("images_channel", images.c.team_id, images.c.channel_id, images.c.id)
sa.Index("images_file", images.c.team_id, images.c.slack_file_id, images.c.channel_id, unique=True)
sa.Index("images_job", images.c.job_id).ddl_if(dialect="postgresql")

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", _TEXT, primary_key=True),
    sa.Column("team_id", _TEXT, nullable=False),
    sa.Column("channel_id", _TEXT, nullable=False),
    sa.Column("started_by", _TEXT, nullable=False),
    sa.Column("started_at", _FLOAT, nullable=False),
    sa.Column("flags", _TEXT, nullable=False),
    sa.Column("theme", _TEXT),
    sa.Column("banner_ts", _TEXT),
    sa.Column("last_prompt_at", _FLOAT, nullable=False),
    sa.Column("ended_at", _FLOAT),
    sa.Column("end_reason", _TEXT),
    sa.Column("recap_file_id", _TEXT),
    sa.Column("recap_posted", _BOOL, nullable=False, server_default=sa.false()),
)
_RUNNING = sessions.c.ended_at.is_(None)
sa.Index("sessions_running", sessions.c.team_id, sessions.c.channel_id, unique=True, sqlite_where=_RUNNING,
         postgresql_where=_RUNNING)

votes = sa.Table(
    "votes", metadata,
    sa.Column("job_id", _TEXT, primary_key=True),
    sa.Column("user_id", _TEXT, primary_key=True),
    sa.Column("session_id", _TEXT, nullable=False),
    sa.Column("created_at", _FLOAT, nullable=False),
)
sa.Index("votes_session", votes.c.session_id).ddl_if(dialect="postgresql")

thumbnails = sa.Table(
    "thumbnails", metadata,
    sa.Column("job_id", _TEXT, primary_key=True),
    sa.Column("data", sa.LargeBinary(), nullable=False),
)

replicas = sa.Table(
    "replicas", metadata,
    sa.Column("id", _TEXT, primary_key=True),
    sa.Column("heartbeat_at", _FLOAT, nullable=False),  # on the database's clock
)

policies = sa.Table(
    "policies", metadata,
    sa.Column("team_id", _TEXT, primary_key=True),
    sa.Column("data", _TEXT, nullable=False),
    sa.Column("updated_at", _FLOAT, nullable=False),
)

policy_log = sa.Table(
    "policy_log", metadata,
    sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
    sa.Column("team_id", _TEXT, nullable=False),
    sa.Column("user_id", _TEXT, nullable=False),
    sa.Column("at", _FLOAT, nullable=False),
    sa.Column("change", _TEXT, nullable=False),
)
sa.Index("policy_log_team", policy_log.c.team_id, policy_log.c.id)

usage_days = sa.Table(
    "usage_days", metadata,
    sa.Column("team_id", _TEXT, primary_key=True),
    sa.Column("day", _FLOAT, primary_key=True),
    sa.Column("user_id", _TEXT, primary_key=True),
    sa.Column("channel_id", _TEXT, primary_key=True),
    sa.Column("model", _TEXT, primary_key=True),
    sa.Column("type", _TEXT, primary_key=True),
    sa.Column("images", _INT, nullable=False),
    sa.Column("jobs", _INT, nullable=False),
    sa.Column("spend", _FLOAT, nullable=False),
)

# The workspaces lumabot has served, and the Enterprise Grid organisation of each (OAuth mode:
# a workspace's bot is found by its organisation's installation when lumabot was installed
# org-wide, or in a Grid workspace).
tenants = sa.Table(
    "tenants", metadata,
    sa.Column("team_id", _TEXT, primary_key=True),
    sa.Column("enterprise_id", _TEXT),
    sa.Column("seen_at", _FLOAT, nullable=False),
)
sa.Index("tenants_enterprise", tenants.c.enterprise_id)

# -- Luma's limits, shared by every replica (runner/shared_scheduler.py) ----------------------
luma_account = sa.Table(
    "luma_account", metadata,
    sa.Column("id", _TEXT, primary_key=True),
    sa.Column("paused_until", _FLOAT, nullable=False, server_default="0"),
    sa.Column("estimate", _INT),
    sa.Column("estimate_until", _FLOAT),
    sa.Column("rate_limit", _INT),
    sa.Column("turn", sa.BigInteger(), nullable=False, server_default="0"),
)

luma_waiting = sa.Table(
    "luma_waiting", metadata,
    sa.Column("job_id", _TEXT, primary_key=True),
    sa.Column("account", _TEXT, nullable=False),
    sa.Column("user_key", _TEXT, nullable=False),
    sa.Column("team", _TEXT, nullable=False, server_default=""),   # the workspace of user_key
    sa.Column("front", _BOOL, nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),  # the account's turn counter when it joined
    sa.Column("replica", _TEXT),
)
# A person's own line: retries first (the latest first), then the rest in the order they came.
IN_OWN_LINE = (luma_waiting.c.front.desc(),
               sa.case((luma_waiting.c.front, -luma_waiting.c.seq), else_=luma_waiting.c.seq))
sa.Index("luma_waiting_line", luma_waiting.c.account, luma_waiting.c.user_key, luma_waiting.c.front.desc(),
         sa.text("(CASE WHEN front THEN -seq ELSE seq END)"))
sa.Index("luma_waiting_team", luma_waiting.c.account, luma_waiting.c.team)

# Whose turn it is: the workspace served longest ago, then its person served longest ago.
luma_turns = sa.Table(
    "luma_turns", metadata,
    sa.Column("account", _TEXT, primary_key=True),
    sa.Column("user_key", _TEXT, primary_key=True),
    sa.Column("served", sa.BigInteger(), nullable=False),
    sa.Column("team", _TEXT, nullable=False, server_default=""),
)
sa.Index("luma_turns_team", luma_turns.c.account, luma_turns.c.team, luma_turns.c.served)

luma_team_turns = sa.Table(
    "luma_team_turns", metadata,
    sa.Column("account", _TEXT, primary_key=True),
    sa.Column("team", _TEXT, primary_key=True),
    sa.Column("served", sa.BigInteger(), nullable=False),
)

luma_slots = sa.Table(
    "luma_slots", metadata,
    sa.Column("job_id", _TEXT, primary_key=True),
    sa.Column("account", _TEXT, nullable=False),
    sa.Column("granted_at", _FLOAT, nullable=False),
    sa.Column("untold", _TEXT),  # the replica to tell of the grant
)
_UNTOLD = luma_slots.c.untold.is_not(None)
sa.Index("luma_slots_untold", luma_slots.c.untold, sqlite_where=_UNTOLD, postgresql_where=_UNTOLD)

luma_submissions = sa.Table(
    "luma_submissions", metadata,
    sa.Column("account", _TEXT, nullable=False),
    sa.Column("at", _FLOAT, nullable=False),
)
sa.Index("luma_submissions_at", luma_submissions.c.account, luma_submissions.c.at)

# -- Slack installations (OAuth mode) -----------------------------------------------------------
# slack_sdk's SQLAlchemy installation and OAuth state stores read and write these (the Slack
# side, slack/installations.py, runs them on this database). The columns are theirs
# (`SQLAlchemyInstallationStore.build_*_table`, `SQLAlchemyOAuthStateStore.build_oauth_states_table`),
# declared here so that they join this metadata and this migration chain without the store
# importing Slack's SDK; tests/store/test_slack_tables.py checks that they still match (the
# token columns aside: wider here).
_ID, _S32, _S200, _S1000, _TIME = sa.Integer(), sa.String(32), sa.String(200), sa.String(1000), sa.DateTime()
# Tokens are TEXT rather than slack_sdk's VARCHAR(200): sealed (LUMABOT_ENCRYPTION_KEY), a
# rotating token is longer than 200 characters.
_SEALED = sa.Text()


def _slack_columns(*middle: "sa.Column[Any]", tail: "tuple[sa.Column[Any], ...]" = (),
                   flagged: "tuple[sa.Column[Any], ...]" = ()) -> "list[sa.Column[Any]]":
    """An installation's or a bot's columns in slack_sdk's order: what both start with, `middle`,
    the bot token's, `tail`, whether it is an org-wide install, `flagged`, and when it was made."""
    return [
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("client_id", _S32, nullable=False),
        sa.Column("app_id", _S32, nullable=False),
        sa.Column("enterprise_id", _S32),
        sa.Column("enterprise_name", _S200),
        *middle,
        sa.Column("team_id", _S32),
        sa.Column("team_name", _S200),
        sa.Column("bot_token", _SEALED),
        sa.Column("bot_id", _S32),
        sa.Column("bot_user_id", _S32),
        sa.Column("bot_scopes", _S1000),
        sa.Column("bot_refresh_token", _SEALED),
        sa.Column("bot_token_expires_at", _TIME),
        *tail,
        sa.Column("is_enterprise_install", sa.Boolean(), default=False, nullable=False),
        *flagged,
        sa.Column("installed_at", _TIME, nullable=False, default=sa.func.now()),
    ]


slack_installations = sa.Table(
    "slack_installations", metadata,
    *_slack_columns(
        sa.Column("enterprise_url", _S200),
        tail=(sa.Column("user_id", _S32, nullable=False),
              sa.Column("user_token", _SEALED),
              sa.Column("user_scopes", _S1000),
              sa.Column("user_refresh_token", _SEALED),
              sa.Column("user_token_expires_at", _TIME),
              sa.Column("incoming_webhook_url", _S200),
              sa.Column("incoming_webhook_channel", _S200),
              sa.Column("incoming_webhook_channel_id", _S200),
              sa.Column("incoming_webhook_configuration_url", _S200)),
        flagged=(sa.Column("token_type", _S32),)),
    sa.Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)

slack_bots = sa.Table(
    "slack_bots", metadata,
    *_slack_columns(),
    sa.Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = sa.Table(
    "slack_oauth_states", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("state", _S200, nullable=False),
    sa.Column("expire_at", _TIME, nullable=False),
)
