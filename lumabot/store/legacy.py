"""The numbered migrations of lumabot 0.1 (before Alembic), kept as released: they bring a
database that release created (SQLite's `PRAGMA user_version`, PostgreSQL's `schema_version`
table) up to the schema Alembic's first revision stands for (store/migrations/versions/0001).
Never edit them; new migrations are Alembic revisions."""

from __future__ import annotations

# SQLite: index + 1 is the version in PRAGMA user_version.
SQLITE: list[str] = [
    # 1: jobs and dedupe keys
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        thread_ts TEXT,
        response_url TEXT,
        params TEXT NOT NULL,
        state TEXT NOT NULL,
        status_ts TEXT,
        generation_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        submit_tries INTEGER NOT NULL DEFAULT 0,
        waiting_reason TEXT,
        failure_code TEXT,
        failure_detail TEXT,
        slack_file_id TEXT,
        created_at REAL NOT NULL,
        submitted_at REAL,
        completed_at REAL,
        finished_at REAL,
        deadline REAL,
        settled INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_unsettled ON jobs(settled, created_at);
    CREATE INDEX jobs_user_created ON jobs(team_id, user_id, created_at);
    CREATE INDEX jobs_channel_status ON jobs(channel_id, status_ts);
    CREATE TABLE dedupe_keys (
        key TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    """,
    # 2: images lumabot has seen (its own outputs and images people shared), for edits
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel_id TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        message_ts TEXT,
        origin TEXT NOT NULL,
        job_id TEXT,
        generation_id TEXT,
        slack_file_id TEXT,
        file TEXT,
        user_id TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX images_thread ON images(channel_id, thread_ts, id);
    CREATE INDEX images_channel ON images(channel_id, id);
    CREATE UNIQUE INDEX images_file ON images(channel_id, slack_file_id);
    CREATE INDEX images_by_file ON images(slack_file_id);
    """,
    # 3: estimated cost of each job, for quotas and usage
    """
    ALTER TABLE jobs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
    CREATE INDEX jobs_team_created ON jobs(team_id, created_at);
    """,
    # 4: the buttons under a delivered image, and deleted results
    """
    ALTER TABLE jobs ADD COLUMN actions_ts TEXT;
    ALTER TABLE jobs ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: creative sessions, their votes, and thumbnails of their images for the contact sheet
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        started_by TEXT NOT NULL,
        started_at REAL NOT NULL,
        flags TEXT NOT NULL,
        theme TEXT,
        banner_ts TEXT,
        last_prompt_at REAL NOT NULL,
        ended_at REAL,
        end_reason TEXT,
        recap_file_id TEXT,
        recap_posted INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX sessions_running ON sessions(channel_id) WHERE ended_at IS NULL;
    CREATE TABLE votes (
        job_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (job_id, user_id)
    );
    CREATE TABLE thumbnails (
        job_id TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN session_id TEXT;
    CREATE INDEX jobs_session ON jobs(session_id);
    """,
    # 6: how many times a create whose outcome was lost (a crash mid-request) was sent again
    """
    ALTER TABLE jobs ADD COLUMN blind_resends INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: which replica runs a job, with a fencing epoch; replicas' heartbeats
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        heartbeat_at REAL NOT NULL
    );
    """,
    # 8: jobs cancelled while they waited
    """
    ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
    """,
    # 9: admin policy and its log; daily usage totals of jobs the retention sweep removed
    """
    CREATE TABLE policies (
        team_id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE policy_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        at REAL NOT NULL,
        change TEXT NOT NULL
    );
    CREATE INDEX policy_log_team ON policy_log(team_id, id);
    CREATE TABLE usage_days (
        team_id TEXT NOT NULL,
        day REAL NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        model TEXT NOT NULL,
        type TEXT NOT NULL,
        images INTEGER NOT NULL,
        jobs INTEGER NOT NULL,
        spend REAL NOT NULL,
        PRIMARY KEY (team_id, day, user_id, channel_id, model, type)
    );
    """,
    # 10: lighter writes per job (issue #14: each page a commit touches goes to the WAL whole).
    # Jobs outside a session are not indexed by session; images lose AUTOINCREMENT (one page of
    # sqlite_sequence per image) and one of their two indexes by file.
    """
    DROP INDEX jobs_session;
    CREATE INDEX jobs_session ON jobs(session_id) WHERE session_id IS NOT NULL;
    CREATE TABLE images_v10 (
        id INTEGER PRIMARY KEY,
        channel_id TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        message_ts TEXT,
        origin TEXT NOT NULL,
        job_id TEXT,
        generation_id TEXT,
        slack_file_id TEXT,
        file TEXT,
        user_id TEXT,
        created_at REAL NOT NULL
    );
    INSERT INTO images_v10 (id, channel_id, thread_ts, message_ts, origin, job_id, generation_id,
        slack_file_id, file, user_id, created_at)
        SELECT id, channel_id, thread_ts, message_ts, origin, job_id, generation_id, slack_file_id,
        file, user_id, created_at FROM images;
    DROP TABLE images;
    ALTER TABLE images_v10 RENAME TO images;
    CREATE INDEX images_thread ON images(channel_id, thread_ts, id);
    CREATE INDEX images_channel ON images(channel_id, id);
    CREATE UNIQUE INDEX images_file ON images(slack_file_id, channel_id);
    """,
    # 11: what a forget left for a job still under way, applied as it settles (jobs/forgetting.py)
    """
    ALTER TABLE jobs ADD COLUMN on_settle TEXT;
    """,
]


# PostgreSQL: index + 1 is the version in the schema_version table.
POSTGRESQL: list[str] = [
    # 1: the schema of SQLite's version 6
    """
    CREATE TABLE jobs (
        seq BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        thread_ts TEXT,
        response_url TEXT,
        params TEXT NOT NULL,
        state TEXT NOT NULL,
        status_ts TEXT,
        generation_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        submit_tries INTEGER NOT NULL DEFAULT 0,
        waiting_reason TEXT,
        failure_code TEXT,
        failure_detail TEXT,
        slack_file_id TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        submitted_at DOUBLE PRECISION,
        completed_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        deadline DOUBLE PRECISION,
        settled BOOLEAN NOT NULL DEFAULT FALSE,
        cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        actions_ts TEXT,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        session_id TEXT,
        blind_resends INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_unsettled ON jobs(created_at) WHERE NOT settled;
    CREATE INDEX jobs_user_created ON jobs(team_id, user_id, created_at);
    CREATE INDEX jobs_team_created ON jobs(team_id, created_at);
    CREATE INDEX jobs_channel_status ON jobs(channel_id, status_ts);
    CREATE INDEX jobs_session ON jobs(session_id);
    CREATE TABLE dedupe_keys (
        key TEXT PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE images (
        id BIGSERIAL PRIMARY KEY,
        channel_id TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        message_ts TEXT,
        origin TEXT NOT NULL,
        job_id TEXT,
        generation_id TEXT,
        slack_file_id TEXT,
        file TEXT,
        user_id TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX images_thread ON images(channel_id, thread_ts, id);
    CREATE INDEX images_channel ON images(channel_id, id);
    CREATE UNIQUE INDEX images_file ON images(channel_id, slack_file_id);
    CREATE INDEX images_by_file ON images(slack_file_id);
    CREATE INDEX images_job ON images(job_id);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        started_by TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        flags TEXT NOT NULL,
        theme TEXT,
        banner_ts TEXT,
        last_prompt_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        end_reason TEXT,
        recap_file_id TEXT,
        recap_posted BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE UNIQUE INDEX sessions_running ON sessions(channel_id) WHERE ended_at IS NULL;
    CREATE TABLE votes (
        job_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, user_id)
    );
    CREATE INDEX votes_session ON votes(session_id);
    CREATE TABLE thumbnails (
        job_id TEXT PRIMARY KEY,
        data BYTEA NOT NULL
    );
    """,
    # 2: which replica runs a job, with a fencing epoch; replicas' heartbeats (database clock)
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_owner ON jobs(owner) WHERE NOT settled;
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
    # 3: Luma's limits, held for all replicas together: the account's state, the jobs waiting
    # for a slot, the slots held, recent submissions (the requests-per-minute window) and whose
    # turn it is (round-robin between people)
    """
    CREATE TABLE luma_account (
        id TEXT PRIMARY KEY,
        paused_until TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01T00:00:00Z',
        estimate INTEGER,
        estimate_until TIMESTAMPTZ,
        rate_limit INTEGER,
        turn BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO luma_account (id) VALUES ('default');
    CREATE TABLE luma_waiting (
        job_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        user_key TEXT NOT NULL,
        front BOOLEAN NOT NULL,
        seq BIGSERIAL
    );
    CREATE INDEX luma_waiting_user ON luma_waiting(account, user_key);
    CREATE TABLE luma_turns (
        account TEXT NOT NULL,
        user_key TEXT NOT NULL,
        served BIGINT NOT NULL,
        PRIMARY KEY (account, user_key)
    );
    CREATE TABLE luma_slots (
        job_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        granted_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE luma_submissions (
        account TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX luma_submissions_at ON luma_submissions(account, at);
    """,
    # 4: jobs cancelled while they waited
    """
    ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
    """,
    # 5: admin policy and its log; daily usage totals of jobs the retention sweep removed
    """
    CREATE TABLE policies (
        team_id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE policy_log (
        id BIGSERIAL PRIMARY KEY,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        change TEXT NOT NULL
    );
    CREATE INDEX policy_log_team ON policy_log(team_id, id);
    CREATE TABLE usage_days (
        team_id TEXT NOT NULL,
        day DOUBLE PRECISION NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        model TEXT NOT NULL,
        type TEXT NOT NULL,
        images INTEGER NOT NULL,
        jobs INTEGER NOT NULL,
        spend DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (team_id, day, user_id, channel_id, model, type)
    );
    """,
    # 6: a grant names the replica to tell (its job waits without a task there); the line is
    # read front first, by each person's place in their own line
    """
    ALTER TABLE luma_waiting ADD COLUMN replica TEXT;
    ALTER TABLE luma_slots ADD COLUMN untold TEXT;
    CREATE INDEX luma_slots_untold ON luma_slots(untold) WHERE untold IS NOT NULL;
    DROP INDEX luma_waiting_user;
    CREATE INDEX luma_waiting_line ON luma_waiting(account, user_key, front DESC, (CASE WHEN front THEN -seq ELSE seq END));
    DELETE FROM luma_turns t WHERE NOT EXISTS (SELECT 1 FROM luma_waiting w WHERE w.account = t.account AND w.user_key = t.user_key);
    """,
    # 7: what a forget left for a job still under way, applied as it settles (jobs/forgetting.py)
    """
    ALTER TABLE jobs ADD COLUMN on_settle TEXT;
    """,
]
