"""`lumabot run` refuses bad configuration at once, one line per problem, never a secret."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _without_settings() -> dict[str, str]:
    """This process's environment without any lumabot setting."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "LUMA_", "LUMABOT_")) and k != "PORT"}


def _run(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lumabot", "run"], env={**_without_settings(), **env},
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)


def test_missing_settings_are_listed_one_per_line(tmp_path):
    r = _run({}, tmp_path)
    assert r.returncode != 0
    lines = [line.strip() for line in r.stderr.splitlines() if line.startswith("  ")]
    assert [line.split()[0] for line in lines] == ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
                                                   "LUMA_AGENTS_API_KEY"]


def test_invalid_settings_name_the_variable_and_hide_values(tmp_path):
    secret = "xoxp-this-is-a-user-token-1234"
    r = _run({"SLACK_BOT_TOKEN": secret, "SLACK_APP_TOKEN": "xoxb-wrong-kind-9876",
              "LUMA_AGENTS_API_KEY": "luma-api-secret-5555", "LUMABOT_POLL_INTERVAL": "fast",
              "LUMABOT_GENERATION_TIMEOUT": "-3", "PORT": "99999",
              "LUMABOT_DATABASE_URL": "mysql://db/lumabot"}, tmp_path)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    for var in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "LUMABOT_POLL_INTERVAL",
                "LUMABOT_GENERATION_TIMEOUT", "PORT", "LUMABOT_DATABASE_URL"):
        assert any(line.strip().startswith(var) for line in out.splitlines()), (var, out)
    for value in (secret, "xoxb-wrong-kind-9876", "luma-api-secret-5555"):
        assert value not in out


def test_socket_mode_does_not_need_the_signing_secret(tmp_path):
    r = _run({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1",
              "LUMA_AGENTS_API_KEY": "luma-api-1", "SLACK_API_URL": "http://127.0.0.1:9/api/",
              "LUMABOT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "PORT": "0"}, tmp_path)
    # The configuration is accepted; starting then fails because Slack is unreachable.
    assert "SLACK_SIGNING_SECRET" not in r.stderr
    assert r.returncode != 0


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-dotenv\nLUMA_AGENTS_API_KEY=luma-api-x\n")
    r = _run({}, tmp_path)
    lines = [line.strip().split()[0] for line in r.stderr.splitlines() if line.startswith("  ")]
    assert lines == ["SLACK_SIGNING_SECRET"]


@pytest.mark.parametrize("argv", [["--version"]])
def test_console_entry_point(argv, tmp_path):
    r = subprocess.run([sys.executable, "-m", "lumabot", *argv], capture_output=True, text=True)
    assert r.returncode == 0 and "lumabot" in r.stdout


def test_every_setting_is_an_environment_variable_documented_in_docs_install():
    from pathlib import Path

    from lumabot.config import _ENV_NAMES

    install = (Path(__file__).parent.parent / "docs" / "install.md").read_text()
    missing = [env for env in _ENV_NAMES.values() if f"`{env}`" not in install]
    assert missing == []


def test_every_setting_is_in_the_env_example_with_its_readme_default():
    """`.env.example` (issue #26): every setting, grouped and commented, its default as README says."""
    import re
    from pathlib import Path

    from lumabot.config import _ENV_NAMES

    root = Path(__file__).parent.parent
    example = (root / ".env.example").read_text()
    names = re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", example, re.M)
    assert sorted(names) == sorted(_ENV_NAMES.values())
    install = (root / "docs" / "install.md").read_text()
    for name, value in re.findall(r"^# ([A-Z][A-Z0-9_]+)=(\S+)$", example, re.M):
        assert f"| `{name}` | `{value}` |" in install or f"| `{name}` | {value} |" in install, name


def test_run_help_lists_the_main_settings_and_points_to_check(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lumabot", "run", "--help"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert r.returncode == 0
    for text in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "LUMA_AGENTS_API_KEY", "LUMABOT_DATABASE_URL",
                 ".env.example", "lumabot check", "docs/install.md"):
        assert text in r.stdout, text


@pytest.mark.parametrize("argv, settings, code", [
    (["healthcheck"], {"SLACK_SIGNING_SECRET": "s", "PORT": "9"}, 1),   # (nothing listens on port 9)
    (["run"], {"LUMABOT_POLL_INTERVAL": "fast"}, 2),
], ids=["healthcheck", "run with a bad setting"])
def test_reading_the_settings_does_not_load_the_bot(argv, settings, code, tmp_path):
    """`lumabot healthcheck` runs every 30 s in a container, and `lumabot run` with a bad setting
    should say so at once: each reads the settings (and the check GETs /healthz) without
    importing the store, the runner or Slack's libraries (which cost most of a second of CPU)."""
    probe = ("import sys\nfrom lumabot.cli import main\nsys.argv = ['lumabot']\n"
             f"code = main({argv!r})\n"
             "heavy = sorted(m for m in ('sqlalchemy', 'slack_bolt', 'slack_sdk', 'lumabot.runner', "
             "'lumabot.store') if m in sys.modules)\n"
             "print(code, heavy)\n")
    env = {**_without_settings(), "SLACK_BOT_TOKEN": "xoxb-1", "LUMA_AGENTS_API_KEY": "k", **settings}
    r = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=30)
    assert r.stdout.strip() == f"{code} []", r.stderr
