"""Polls per job and detection delay: lumabot's poll planning against the naive loop.

The naive loop is the one in Luma's quickstart: wait 20 s after creating, then GET every 2 s
until the generation is terminal. lumabot polls every LUMABOT_POLL_INTERVAL (2 s), its first
poll after LUMABOT_FIRST_POLL_DELAY (20 s) until it has seen 20 latencies of the model, then at
their 5 % quantile. Both run in the same run, on the same schedule and the same latencies:
uni-1's 30-60 s spread, uniform. Each has its own fake Luma (so its GETs are counted apart); a
generation's latency is fixed by its prompt, so job i takes exactly as long for both.

Scaled 10x: latencies 3-6 s, the naive loop waits 2 s then polls every 0.2 s, lumabot polls
every 0.2 s with a first poll after 2 s, LUMABOT_MAX_POLLS_PER_SECOND=500 (the default 50,
scaled). 100 jobs, one every 0.25 s; LUMABOT_LUMA_CONCURRENCY=100 so none waits for a slot (the
4x backlog speed-up never applies). lumabot runs as a subprocess; the naive loop (official SDK,
AsyncLuma) and both fakes in this process.

Detection delay of a job: the first GET at or after the moment its generation turned completed,
minus that moment (from the fakes' request records). "Warm" jobs are those submitted after
lumabot had seen 20 completions, when the adaptive first poll applies.

Target: fewer GETs per job than the naive loop, at the same (within 10 ms, i.e. 0.1 s unscaled)
or lower mean detection delay.

    python -m bench.polls
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import httpx
from luma_agents import AsyncLuma

from lumabot.testing.fake_luma import FakeLuma, Outcome

from .common import fmt_seconds, proc_rig, table

JOBS, USERS, SPACING = 100, 10, 0.25
NAIVE_WAIT, POLL_INTERVAL, FIRST_POLL = 2.0, 0.2, 2.0
LATENCY = (3.0, 6.0)
SAME = 0.010  # detection delays within 10 ms count as the same


class PromptTimedLuma(FakeLuma):
    """A fake Luma whose generation latency is set by its prompt (the same job takes as long
    whoever creates it, whatever the order of creates)."""

    def __init__(self, latencies: dict[str, float], **kw):
        super().__init__(**kw)
        self.latencies = latencies

    def _new_generation(self, body, spec, now):
        self._script.appendleft(Outcome(latency=self.latencies[spec["prompt"]]))
        return super()._new_generation(body, spec, now)


async def naive_job(client: AsyncLuma, prompt: str) -> None:
    gen = await client.generations.create(prompt=prompt, model="uni-1", type="image")
    await asyncio.sleep(NAIVE_WAIT)
    while True:
        gen = await client.generations.get(gen.id)
        if gen.state in ("completed", "failed"):
            return
        await asyncio.sleep(POLL_INTERVAL)


def observe(luma: FakeLuma) -> dict[str, dict]:
    """Per prompt: GETs made and detection delay, from the fake's records."""
    out = {}
    gets: dict[str, list[float]] = {}
    for rec in luma.requests:
        if rec.method == "GET" and rec.path.startswith("/v1/generations/") and rec.generation_id:
            gets.setdefault(rec.generation_id, []).append(rec.at)
    for g in luma.generations.values():
        times = gets.get(g.id, [])
        seen = min((t for t in times if t >= g.completes_at), default=float("nan"))
        out[g.prompt] = {"gets": len(times), "detect": seen - g.completes_at, "created": g.created_at,
                         "seen": seen}
    return out


def summary(obs: dict[str, dict], prompts: list[str]) -> tuple[float, float]:
    return (statistics.mean(obs[p]["gets"] for p in prompts),
            statistics.mean(obs[p]["detect"] for p in prompts))


async def run(seed: int = 5) -> dict:
    rnd = random.Random(seed)
    prompts = [f"poll picture {i}" for i in range(JOBS)]
    latencies = {p: rnd.uniform(*LATENCY) for p in prompts}
    bot_luma = PromptTimedLuma(latencies, image_long_side=32)
    naive_luma = PromptTimedLuma(latencies, image_long_side=32)
    await naive_luma.start()
    client = AsyncLuma(auth_token=naive_luma.api_key, base_url=naive_luma.base_url, max_retries=0,
                       http_client=httpx.AsyncClient(trust_env=False))
    try:
        async with proc_rig(bot_luma, LUMABOT_LUMA_CONCURRENCY=str(JOBS), LUMABOT_POLL_INTERVAL=str(POLL_INTERVAL),
                            LUMABOT_FIRST_POLL_DELAY=str(FIRST_POLL), LUMABOT_MAX_POLLS_PER_SECOND="500",
                            LUMABOT_MAX_QUEUED_PER_USER=str(JOBS), LUMABOT_GENERATION_TIMEOUT="60",
                            LUMABOT_QUEUE_UPDATE_INTERVAL="0.5") as r:
            naive: list[asyncio.Task] = []
            t0 = time.monotonic()
            for i, prompt in enumerate(prompts):
                await asyncio.sleep(max(0.0, t0 + i * SPACING - time.monotonic()))
                naive.append(asyncio.create_task(naive_job(client, prompt)))
                status, body, _ = await r.command(prompt, user_id=f"U{i % USERS:02d}")
                assert status == 200 and not body, (status, body)
            await asyncio.gather(*naive)
            while sum(1 for f in r.slack.files if f.shared) < JOBS:
                if time.monotonic() - t0 > 120:
                    raise RuntimeError("lumabot did not deliver every image within 120 s")
                await asyncio.sleep(0.1)
    finally:
        await client.close()
        await naive_luma.stop()
    bot, nv = observe(bot_luma), observe(naive_luma)
    # Warm: submitted after lumabot had seen 20 completions (the adaptive first poll applies).
    twentieth = sorted(o["seen"] for o in bot.values())[19]
    warm = [p for p in prompts if bot[p]["created"] > twentieth]
    b_gets, b_det = summary(bot, prompts)
    n_gets, n_det = summary(nv, prompts)
    bw_gets, bw_det = summary(bot, warm)
    nw_gets, nw_det = summary(nv, warm)
    return {"bot_gets": b_gets, "bot_detect": b_det, "naive_gets": n_gets, "naive_detect": n_det,
            "warm": len(warm), "bot_warm_gets": bw_gets, "bot_warm_detect": bw_det,
            "naive_warm_gets": nw_gets, "naive_warm_detect": nw_det,
            "latency_mean": statistics.mean(latencies.values())}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    fewer = f["bot_gets"] < f["naive_gets"]
    as_fast = f["bot_detect"] <= f["naive_detect"] + SAME
    return [
        ("GETs per job, lumabot / naive", f"{f['bot_gets']:.1f} / {f['naive_gets']:.1f}", "lumabot fewer", fewer),
        ("mean detection delay, lumabot / naive",
         f"{fmt_seconds(f['bot_detect'])} / {fmt_seconds(f['naive_detect'])}", "lumabot same or lower", as_fast),
        (f"  warm jobs ({f['warm']}): GETs per job, lumabot / naive",
         f"{f['bot_warm_gets']:.1f} / {f['naive_warm_gets']:.1f}", "", None),
        ("  warm jobs: mean detection delay, lumabot / naive",
         f"{fmt_seconds(f['bot_warm_detect'])} / {fmt_seconds(f['naive_warm_detect'])}", "", None),
    ]


def main() -> None:
    print(f"polls: {JOBS} jobs, latency {LATENCY[0]:.0f}-{LATENCY[1]:.0f} s uniform (10x scaled), lumabot "
          f"(subprocess) and the naive loop side by side")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
