"""`lumabot demo`: the scripted conversation against the built-in fakes, in-process and as a
command run in a hostile environment (real-looking tokens, unroutable URLs, a dead proxy, a
bogus .env): it must stay offline and use none of them."""

from __future__ import annotations

import itertools
import re
import os
import subprocess
import sys
import tempfile
import time
from html import escape
from pathlib import Path

from PIL import Image, ImageStat

from lumabot import demo
from lumabot.demo import DemoError, play

REPO = Path(__file__).resolve().parent.parent
STEPS = ("/imagine a lighthouse at dusk --ar 16:9", "make it night --max", "/edit add a full moon")
NAMES = ["1-a-lighthouse-at-dusk.png", "2-make-it-night.png", "3-add-a-full-moon.png"]
UNROUTABLE = "http://10.255.255.1"
DEAD_PROXY = "http://127.0.0.1:9"


def _private_tempdir(monkeypatch, tmp_path) -> Path:
    """Point tempfile at a folder of this test's own, to see what the demo leaves behind."""
    tmp = tmp_path / "tempdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _check_images(out: Path) -> list[Image.Image]:
    assert sorted(p.name for p in out.iterdir()) == sorted([*NAMES, "index.html"])
    images = []
    for name in NAMES:
        with Image.open(out / name) as img:
            img.load()
            assert img.format == "PNG"
            assert max(img.size) >= 256  # worth looking at
            images.append(img.convert("RGB"))
    contents = [(out / name).read_bytes() for name in NAMES]
    for a, b in itertools.combinations(range(3), 2):
        assert contents[a] != contents[b], (NAMES[a], NAMES[b])
        assert images[a].getpixel((0, 0)) != images[b].getpixel((0, 0)), (NAMES[a], NAMES[b])
    # Pictures that show what happened (issue #26): not flat rectangles, and each edit is its
    # source changed: the night one darker than the lighthouse, the moon added to the night one.
    lighthouse, night, moon = images
    assert all(len(img.getcolors(1 << 20) or []) > 50 for img in images)
    sky = (0, lighthouse.height // 3, lighthouse.width, lighthouse.height // 2)
    brightness = [sum(ImageStat.Stat(img.crop(sky)).mean) for img in images]
    assert brightness[1] < 0.7 * brightness[0]
    moon_at = (lighthouse.width // 5, lighthouse.height // 3)
    assert sum(moon.getpixel(moon_at)) > 600 and sum(night.getpixel(moon_at)) < 300
    return images


def _check_page(out: Path) -> None:
    """`index.html`: the conversation as Slack shows it, in order, the images in their thread."""
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "<script" not in html
    at = [html.index(escape(typed)) for typed in STEPS]
    assert at == sorted(at)
    top, _, thread = html.partition('<div class="thread">')
    assert escape(STEPS[0]) in top and "<blockquote>a lighthouse at dusk</blockquote>" in top
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images == NAMES and all((out / name).is_file() for name in images)
    assert all(f'src="{name}"' in thread for name in NAMES)  # all three land in the thread
    assert "Done in" in thread and "@alice" in thread and "✅" in html
    # each image's buttons are on its message, just above it
    assert all(re.search(r"\[Vary\][^<]*</div><img", part) for part in html.split('<div class="msg')
               if "<img" in part)


async def test_play_runs_the_three_steps_and_writes_three_different_images(tmp_path, monkeypatch):
    # Settings and proxies of the surrounding process must not leak in, and are left as they were.
    monkeypatch.setenv("HTTPS_PROXY", DEAD_PROXY)
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-real-looking-token")
    monkeypatch.setenv("LUMA_BASE_URL", UNROUTABLE)
    monkeypatch.setenv("LUMABOT_FIRST_POLL_DELAY", "20")
    tmp = _private_tempdir(monkeypatch, tmp_path)
    out = tmp_path / "out" / "nested"  # created if missing

    t0 = time.monotonic()
    transcript = await play(out)
    assert time.monotonic() - t0 < 15

    text = transcript.render()
    for typed in STEPS:
        assert typed in text, text
    assert text.count("Done in") == 3, text
    assert "✅" in text and "@alice" in text
    assert "<@" not in text and ":white_check_mark:" not in text  # mrkdwn rendered for a terminal
    assert "[image: a-lighthouse-at-dusk.png 512×288]" in text
    assert text.count("[Vary]") == 3  # each image's buttons, on its message
    # Thread replies are indented under their thread.
    lines = text.splitlines()
    assert any(line.startswith("alice ") and "/imagine a lighthouse" in line for line in lines)
    assert any(line.startswith("alice ") and "/edit add a full moon" in line for line in lines)
    assert any(line.startswith("      ") and "make it night --max" in line for line in lines)
    assert any(line.startswith("      ") and "[image: add-a-full-moon.png" in line for line in lines)

    # The three steps, each done, and where their images went.
    first, second, third = transcript.steps
    assert [s.typed for s in transcript.steps] == list(STEPS)
    assert all(s.state == "done" and s.image is not None for s in transcript.steps)
    root = first.status_ts
    assert root and first.thread_ts is None
    assert first.image.thread_ts == root  # the image lands in the status message's thread
    assert second.thread_ts == root and second.image.thread_ts == root  # the reply edits in its thread
    # /edit is typed at the top level and edits the latest image (the night one), in its thread.
    assert third.thread_ts is None and third.image.thread_ts == root
    assert second.status_ts != root and third.status_ts not in (root, second.status_ts)

    _check_images(out)
    _check_page(out)
    assert [i.path for i in transcript.images] == [out / n for n in NAMES]
    assert str(out.resolve()) in text

    # Nothing left behind, the environment restored.
    assert list(tmp.iterdir()) == []  # the temporary database is gone
    assert os.environ["HTTPS_PROXY"] == DEAD_PROXY and os.environ["LUMA_BASE_URL"] == UNROUTABLE


async def test_a_step_that_times_out_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "LUMA_LATENCY", 30.0)
    monkeypatch.setattr(demo, "STEP_TIMEOUT", 1.0)
    tmp = _private_tempdir(monkeypatch, tmp_path)
    out = tmp_path / "out"
    try:
        await play(out)
    except DemoError as exc:
        assert "timed out" in str(exc) and "/imagine a lighthouse at dusk" in str(exc)
        assert exc.transcript is not None
        assert "/imagine a lighthouse at dusk --ar 16:9" in exc.transcript.conversation()
    else:
        raise AssertionError("the demo should have failed")
    assert list(out.iterdir()) == []
    assert list(tmp.iterdir()) == []


def test_main_reports_a_failure_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "LUMA_LATENCY", 30.0)
    monkeypatch.setattr(demo, "STEP_TIMEOUT", 0.5)
    monkeypatch.setattr("lumabot.logs.setup_logging", lambda *a, **k: None)  # keep pytest's handlers
    assert demo.main(str(tmp_path / "out")) == 1
    captured = capsys.readouterr()
    assert "lumabot demo failed: timed out" in captured.err
    assert "offline" in captured.out


def test_lumabot_demo_command_ignores_a_hostile_environment(tmp_path):
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-from-dotenv-bogus\n"
        "SLACK_SIGNING_SECRET=bogus\n"
        f"SLACK_API_URL={UNROUTABLE}/api/\n"
        "LUMA_AGENTS_API_KEY=luma-api-from-dotenv\n"
        f"LUMA_BASE_URL={UNROUTABLE}/v1\n"
        "LUMABOT_DATABASE_URL=sqlite:///dotenv.db\n"
        "LUMABOT_POLL_INTERVAL=banana\n"
        "LUMABOT_FIRST_POLL_DELAY=600\n"
    )
    hostile = {
        "SLACK_BOT_TOKEN": "xoxb-real-1234567890-abcdefghijkl",
        "SLACK_SIGNING_SECRET": "real-signing-secret",
        "SLACK_APP_TOKEN": "xapp-1-real-app-token",  # would mean Socket Mode
        "SLACK_API_URL": f"{UNROUTABLE}/api/",
        "LUMA_AGENTS_API_KEY": "luma-api-real-key",
        "LUMA_BASE_URL": UNROUTABLE,
        "LUMA_CUSTOM_HEADERS": "X-Bogus: 1",
        "LUMABOT_DATABASE_URL": f"sqlite:///{tmp_path / 'hostile.db'}",
        "LUMABOT_FIRST_POLL_DELAY": "600",
        "LUMABOT_LUMA_CONCURRENCY": "zero",
        "LUMABOT_USER_DAILY_IMAGES": "1",  # limits of the real deployment do not apply
        "LUMABOT_DAILY_BUDGET_USD": "0.01",
        "LUMABOT_LOG_LEVEL": "LOUD",
        "LUMABOT_HOST": "10.255.255.1",
        "PORT": "1",
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
        "ALL_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
    }
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "LUMA_", "LUMABOT_")) and k.upper() not in ("PORT", "PYTHONPATH")}
    env.update(hostile, PYTHONPATH=str(REPO))  # this checkout, whatever is installed
    out = tmp_path / "images"

    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "lumabot", "demo", "--out", str(out)], env=env,
                       cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert elapsed < 30

    _check_images(out)
    for typed in STEPS:
        assert typed in r.stdout
    assert r.stdout.count("Done in") == 3
    assert "offline" in r.stdout.splitlines()[0]
    assert "docs/install.md" in r.stdout.strip().splitlines()[-1]
    assert str(out) in r.stdout
    # None of the hostile settings was used, nor any secret printed.
    assert not (tmp_path / "hostile.db").exists() and not (tmp_path / "dotenv.db").exists()
    assert not (tmp_path / "lumabot.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "images"]
    for secret in ("xoxb-real", "xapp-1-real", "luma-api-real", "dotenv"):
        assert secret not in r.stdout + r.stderr
