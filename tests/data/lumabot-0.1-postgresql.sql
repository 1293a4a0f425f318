--
-- PostgreSQL database dump
--

\restrict bLV9Kaz9HZkJ82fd2ygJyhfOyvDpaN5goE7SHstQjc3H2gKxyAVj80ReBD67Ew4

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: dedupe_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dedupe_keys (
    key text NOT NULL,
    created_at double precision NOT NULL
);


--
-- Name: images; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.images (
    id bigint NOT NULL,
    channel_id text NOT NULL,
    thread_ts text NOT NULL,
    message_ts text,
    origin text NOT NULL,
    job_id text,
    generation_id text,
    slack_file_id text,
    file text,
    user_id text,
    created_at double precision NOT NULL
);


--
-- Name: images_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.images_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: images_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.images_id_seq OWNED BY public.images.id;


--
-- Name: jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.jobs (
    seq bigint NOT NULL,
    id text NOT NULL,
    team_id text NOT NULL,
    user_id text NOT NULL,
    channel_id text NOT NULL,
    thread_ts text,
    response_url text,
    params text NOT NULL,
    state text NOT NULL,
    status_ts text,
    generation_id text,
    attempts integer DEFAULT 0 NOT NULL,
    submit_tries integer DEFAULT 0 NOT NULL,
    waiting_reason text,
    failure_code text,
    failure_detail text,
    slack_file_id text,
    created_at double precision NOT NULL,
    submitted_at double precision,
    completed_at double precision,
    finished_at double precision,
    deadline double precision,
    settled boolean DEFAULT false NOT NULL,
    cost_usd double precision DEFAULT 0 NOT NULL,
    actions_ts text,
    deleted boolean DEFAULT false NOT NULL,
    session_id text,
    blind_resends integer DEFAULT 0 NOT NULL,
    owner text,
    epoch integer DEFAULT 0 NOT NULL,
    cancelled_by text
);


--
-- Name: jobs_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.jobs_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: jobs_seq_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.jobs_seq_seq OWNED BY public.jobs.seq;


--
-- Name: luma_account; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.luma_account (
    id text NOT NULL,
    paused_until timestamp with time zone DEFAULT '1970-01-01 00:00:00+00'::timestamp with time zone NOT NULL,
    estimate integer,
    estimate_until timestamp with time zone,
    rate_limit integer,
    turn bigint DEFAULT 0 NOT NULL
);


--
-- Name: luma_slots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.luma_slots (
    job_id text NOT NULL,
    account text NOT NULL,
    granted_at timestamp with time zone DEFAULT now() NOT NULL,
    untold text
);


--
-- Name: luma_submissions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.luma_submissions (
    account text NOT NULL,
    at timestamp with time zone NOT NULL
);


--
-- Name: luma_turns; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.luma_turns (
    account text NOT NULL,
    user_key text NOT NULL,
    served bigint NOT NULL
);


--
-- Name: luma_waiting; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.luma_waiting (
    job_id text NOT NULL,
    account text NOT NULL,
    user_key text NOT NULL,
    front boolean NOT NULL,
    seq bigint NOT NULL,
    replica text
);


--
-- Name: luma_waiting_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.luma_waiting_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: luma_waiting_seq_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.luma_waiting_seq_seq OWNED BY public.luma_waiting.seq;


--
-- Name: policies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.policies (
    team_id text NOT NULL,
    data text NOT NULL,
    updated_at double precision NOT NULL
);


--
-- Name: policy_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.policy_log (
    id bigint NOT NULL,
    team_id text NOT NULL,
    user_id text NOT NULL,
    at double precision NOT NULL,
    change text NOT NULL
);


--
-- Name: policy_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.policy_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: policy_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.policy_log_id_seq OWNED BY public.policy_log.id;


--
-- Name: replicas; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.replicas (
    id text NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_version (
    version integer NOT NULL
);


--
-- Name: sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sessions (
    id text NOT NULL,
    team_id text NOT NULL,
    channel_id text NOT NULL,
    started_by text NOT NULL,
    started_at double precision NOT NULL,
    flags text NOT NULL,
    theme text,
    banner_ts text,
    last_prompt_at double precision NOT NULL,
    ended_at double precision,
    end_reason text,
    recap_file_id text,
    recap_posted boolean DEFAULT false NOT NULL
);


--
-- Name: thumbnails; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.thumbnails (
    job_id text NOT NULL,
    data bytea NOT NULL
);


--
-- Name: usage_days; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.usage_days (
    team_id text NOT NULL,
    day double precision NOT NULL,
    user_id text NOT NULL,
    channel_id text NOT NULL,
    model text NOT NULL,
    type text NOT NULL,
    images integer NOT NULL,
    jobs integer NOT NULL,
    spend double precision NOT NULL
);


--
-- Name: votes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.votes (
    job_id text NOT NULL,
    user_id text NOT NULL,
    session_id text NOT NULL,
    created_at double precision NOT NULL
);


--
-- Name: images id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.images ALTER COLUMN id SET DEFAULT nextval('public.images_id_seq'::regclass);


--
-- Name: jobs seq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs ALTER COLUMN seq SET DEFAULT nextval('public.jobs_seq_seq'::regclass);


--
-- Name: luma_waiting seq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.luma_waiting ALTER COLUMN seq SET DEFAULT nextval('public.luma_waiting_seq_seq'::regclass);


--
-- Name: policy_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policy_log ALTER COLUMN id SET DEFAULT nextval('public.policy_log_id_seq'::regclass);


--
-- Data for Name: dedupe_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.dedupe_keys VALUES ('msg:C1:job-done', 1796525128.1144598);
INSERT INTO public.dedupe_keys VALUES ('msg:C1:job-edit', 1796525128.1159604);
INSERT INTO public.dedupe_keys VALUES ('msg:C2:job-queued', 1796525128.1166825);
INSERT INTO public.dedupe_keys VALUES ('msg:C1:job-failed', 1796525128.1172698);
INSERT INTO public.dedupe_keys VALUES ('msg:D9:job-cancelled', 1796525128.1187272);
INSERT INTO public.dedupe_keys VALUES ('period:sweep:2026-09-21', 1796525128.119183);


--
-- Data for Name: images; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.images VALUES (1, 'C1', '100.1', '100.2', 'lumabot', 'job-done', 'gen-1', 'F1', NULL, 'U1', 1790000032);
INSERT INTO public.images VALUES (2, 'C1', '100.1', '100.5', 'user', NULL, NULL, 'F9', '{"id":"F9","name":"ref.png","mimetype":"image/png","url":"https://files.slack.com/f/F9","size":1234,"stub":false}', 'U2', 1790000050);


--
-- Data for Name: jobs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.jobs VALUES (1, 'job-done', 'T1', 'U1', 'C1', NULL, NULL, '{"prompt":"a lighthouse at dusk","type":"image","model":"uni-1-max","aspect_ratio":"16:9","output_format":"png","image_refs":[]}', 'done', '100.1', 'gen-1', 1, 1, NULL, NULL, NULL, 'F1', 1790000000, 1790000001, 1790000031, 1790000032, 1790000301, true, 0.1, '100.3', false, NULL, 0, NULL, 2, NULL);
INSERT INTO public.jobs VALUES (2, 'job-edit', 'T1', 'U2', 'C1', '100.1', 'https://hooks.slack.com/x', '{"prompt":"make it night","type":"image_edit","model":"uni-1","source":{"generation_id":"gen-1"},"image_refs":[{"slack_file":{"id":"F9","name":"ref.png","mimetype":"image/png","url":"https://files.slack.com/f/F9","stub":false}}]}', 'generating', NULL, 'gen-2', 1, 1, NULL, NULL, NULL, NULL, 1790000060, 1790000061, NULL, NULL, 1790000361, false, 0.0464, NULL, false, 'sess-1', 0, 'replica-a', 1, NULL);
INSERT INTO public.jobs VALUES (3, 'job-queued', 'T1', 'U3', 'C2', NULL, NULL, '{"prompt":"a red kite --not-a-flag ünïcödé ✨","type":"image","model":"uni-1","aspect_ratio":"2:3","style":"manga","image_refs":[]}', 'queued', '200.1', NULL, 0, 0, 'capacity', NULL, NULL, NULL, 1790000120, NULL, NULL, NULL, NULL, false, 0.0404, NULL, false, NULL, 0, 'replica-a', 0, NULL);
INSERT INTO public.jobs VALUES (4, 'job-failed', 'T1', 'U1', 'C1', NULL, NULL, '{"prompt":"=flagged","type":"image","model":"uni-1","image_refs":[]}', 'failed', '300.1', NULL, 1, 2, NULL, 'content_moderated', 'moderated', NULL, 1790000180, NULL, NULL, 1790000200, NULL, true, 0.0404, NULL, true, NULL, 1, NULL, 0, NULL);
INSERT INTO public.jobs VALUES (5, 'job-cancelled', 'T2', 'U9', 'D9', NULL, NULL, '{"prompt":"cancel me","type":"image","model":"uni-1","image_refs":[]}', 'cancelled', '400.1', NULL, 0, 0, NULL, NULL, NULL, NULL, 1790000240, NULL, NULL, 1790000250, NULL, true, 0.0404, NULL, false, NULL, 0, NULL, 0, 'U9');


--
-- Data for Name: luma_account; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.luma_account VALUES ('default', '1970-01-01 00:00:00+00', NULL, NULL, 30, 1);


--
-- Data for Name: luma_slots; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.luma_slots VALUES ('job-edit', 'default', '2026-12-06 02:45:28.12762+00', NULL);


--
-- Data for Name: luma_submissions; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: luma_turns; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.luma_turns VALUES ('default', 'U3', -1);


--
-- Data for Name: luma_waiting; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.luma_waiting VALUES ('job-queued', 'default', 'U3', true, 1, 'replica-a');


--
-- Data for Name: policies; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.policies VALUES ('T1', '{"channels":["C1","C2"],"dms":false,"max_model":"admins","month_budget":200.0,"day_budget":null,"channel_budgets":{"C2":50.0},"user_limits":{"U3":7},"retention_days":30}', 1796525128.1235332);


--
-- Data for Name: policy_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.policy_log VALUES (1, 'T1', 'UADMIN', 1796525128.1235332, 'several things');


--
-- Data for Name: replicas; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.replicas VALUES ('replica-a', '2026-12-06 02:45:28.124606+00');


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_version VALUES (1);
INSERT INTO public.schema_version VALUES (2);
INSERT INTO public.schema_version VALUES (3);
INSERT INTO public.schema_version VALUES (4);
INSERT INTO public.schema_version VALUES (5);
INSERT INTO public.schema_version VALUES (6);


--
-- Data for Name: sessions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.sessions VALUES ('sess-1', 'T1', 'C3', 'U1', 1790000000, '{"aspect_ratio": "2:3"}', 'noir city', '500.1', 1790000060, NULL, NULL, NULL, false);
INSERT INTO public.sessions VALUES ('sess-0', 'T1', 'C4', 'U2', 1789999000, '{}', NULL, NULL, 1789999500, 1789999990, 'idle', 'F7', true);


--
-- Data for Name: thumbnails; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.thumbnails VALUES ('job-done', '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');


--
-- Data for Name: usage_days; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.usage_days VALUES ('T1', 1772668800, 'U4', 'C1', 'uni-1', 'image', 1, 1, 0.0404);


--
-- Data for Name: votes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.votes VALUES ('job-edit', 'U5', 'sess-1', 1796525128.121645);


--
-- Name: images_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.images_id_seq', 2, true);


--
-- Name: jobs_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.jobs_seq_seq', 6, true);


--
-- Name: luma_waiting_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.luma_waiting_seq_seq', 1, true);


--
-- Name: policy_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.policy_log_id_seq', 1, true);


--
-- Name: dedupe_keys dedupe_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dedupe_keys
    ADD CONSTRAINT dedupe_keys_pkey PRIMARY KEY (key);


--
-- Name: images images_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.images
    ADD CONSTRAINT images_pkey PRIMARY KEY (id);


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);


--
-- Name: jobs jobs_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_seq_key UNIQUE (seq);


--
-- Name: luma_account luma_account_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.luma_account
    ADD CONSTRAINT luma_account_pkey PRIMARY KEY (id);


--
-- Name: luma_slots luma_slots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.luma_slots
    ADD CONSTRAINT luma_slots_pkey PRIMARY KEY (job_id);


--
-- Name: luma_turns luma_turns_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.luma_turns
    ADD CONSTRAINT luma_turns_pkey PRIMARY KEY (account, user_key);


--
-- Name: luma_waiting luma_waiting_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.luma_waiting
    ADD CONSTRAINT luma_waiting_pkey PRIMARY KEY (job_id);


--
-- Name: policies policies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_pkey PRIMARY KEY (team_id);


--
-- Name: policy_log policy_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policy_log
    ADD CONSTRAINT policy_log_pkey PRIMARY KEY (id);


--
-- Name: replicas replicas_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.replicas
    ADD CONSTRAINT replicas_pkey PRIMARY KEY (id);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);


--
-- Name: thumbnails thumbnails_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thumbnails
    ADD CONSTRAINT thumbnails_pkey PRIMARY KEY (job_id);


--
-- Name: usage_days usage_days_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.usage_days
    ADD CONSTRAINT usage_days_pkey PRIMARY KEY (team_id, day, user_id, channel_id, model, type);


--
-- Name: votes votes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.votes
    ADD CONSTRAINT votes_pkey PRIMARY KEY (job_id, user_id);


--
-- Name: images_by_file; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_by_file ON public.images USING btree (slack_file_id);


--
-- Name: images_channel; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_channel ON public.images USING btree (channel_id, id);


--
-- Name: images_file; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX images_file ON public.images USING btree (channel_id, slack_file_id);


--
-- Name: images_job; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_job ON public.images USING btree (job_id);


--
-- Name: images_thread; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_thread ON public.images USING btree (channel_id, thread_ts, id);


--
-- Name: jobs_channel_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_channel_status ON public.jobs USING btree (channel_id, status_ts);


--
-- Name: jobs_owner; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_owner ON public.jobs USING btree (owner) WHERE (NOT settled);


--
-- Name: jobs_session; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_session ON public.jobs USING btree (session_id);


--
-- Name: jobs_team_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_team_created ON public.jobs USING btree (team_id, created_at);


--
-- Name: jobs_unsettled; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_unsettled ON public.jobs USING btree (created_at) WHERE (NOT settled);


--
-- Name: jobs_user_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_user_created ON public.jobs USING btree (team_id, user_id, created_at);


--
-- Name: luma_slots_untold; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX luma_slots_untold ON public.luma_slots USING btree (untold) WHERE (untold IS NOT NULL);


--
-- Name: luma_submissions_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX luma_submissions_at ON public.luma_submissions USING btree (account, at);


--
-- Name: luma_waiting_line; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX luma_waiting_line ON public.luma_waiting USING btree (account, user_key, front DESC, (
CASE
    WHEN front THEN (- seq)
    ELSE seq
END));


--
-- Name: policy_log_team; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX policy_log_team ON public.policy_log USING btree (team_id, id);


--
-- Name: sessions_running; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX sessions_running ON public.sessions USING btree (channel_id) WHERE (ended_at IS NULL);


--
-- Name: votes_session; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX votes_session ON public.votes USING btree (session_id);


--
-- PostgreSQL database dump complete
--

\unrestrict bLV9Kaz9HZkJ82fd2ygJyhfOyvDpaN5goE7SHstQjc3H2gKxyAVj80ReBD67Ew4

