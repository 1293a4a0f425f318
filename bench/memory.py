"""Memory with large input images: 20 edits of 7000x7000 PNGs (RGBA, ~190 KB each as
uploaded, 196 MB each once decoded) mentioned at once, the bot's peak RSS against 500 MB.

lumabot runs as a subprocess; its RSS is sampled every 50 ms from the first mention until
every edit is delivered, and its kernel high-water mark (VmHWM) is read at the end. Images are
downloaded and decoded only when their job is submitted, one decode at a time, reduced a band
of rows at a time, and released once the create has been sent.

    python -m bench.memory
"""

from __future__ import annotations

import asyncio
import io
import time

from PIL import Image

from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.fake_slack import app_mention_event

from .common import proc_rig, table

EDITS, SIDE = 20, 7000
TARGET_MB = 500


def big_png() -> bytes:
    im = Image.new("RGBA", (SIDE, SIDE), (30, 90, 200, 255))
    im.paste((240, 200, 20, 255), (0, 0, SIDE // 2, SIDE // 2))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


async def run(edits: int = EDITS) -> dict:
    raw = big_png()
    luma = FakeLuma(latency=0.05, image_long_side=16)
    async with proc_rig(luma, LUMABOT_LUMA_CONCURRENCY=str(edits), LUMABOT_FIRST_POLL_DELAY="0",
                        LUMABOT_POLL_INTERVAL="0.2", LUMABOT_MAX_QUEUED_PER_USER=str(edits)) as r:
        bot = r.proc
        base = bot.rss_bytes()
        files = [r.slack.add_user_file(raw, name=f"big-{i}.png", mimetype="image/png") for i in range(edits)]
        t0 = time.monotonic()
        await asyncio.gather(*(r.slack.post_event(bot.url, app_mention_event(
            f"make edit {i} warmer", user=f"U{i:02d}", files=[f])) for i, f in enumerate(files)))
        peak = 0
        while sum(1 for f in r.slack.files if f.shared) < edits:
            peak = max(peak, bot.rss_bytes())
            if time.monotonic() - t0 > 600:
                raise RuntimeError("edits not delivered after 600 s")
            await asyncio.sleep(0.05)
        wall = time.monotonic() - t0
        peak = max(peak, bot.rss_bytes())
        hwm = bot.peak_rss_bytes()
        sources = [c for c in luma.creates if c.get("source")]
    return {"edits": edits, "upload_kb": len(raw) / 1024, "base_mb": base / 2**20,
            "peak_mb": peak / 2**20, "hwm_mb": hwm / 2**20, "wall": wall, "sent": len(sources)}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    return [
        (f"bot RSS peak, {f['edits']} parallel edits of {SIDE}x{SIDE} PNGs "
         f"({f['upload_kb']:.0f} KB each)", f"{f['hwm_mb']:.0f} MB", f"<= {TARGET_MB} MB",
         f["hwm_mb"] <= TARGET_MB),
        ("  sampled every 50 ms (peak)", f"{f['peak_mb']:.0f} MB", "", None),
        ("  bot RSS before the edits", f"{f['base_mb']:.0f} MB", "", None),
        ("  edits sent to Luma / time to deliver all", f"{f['sent']} / {f['wall']:.1f} s", "", None),
    ]


def main() -> None:
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
