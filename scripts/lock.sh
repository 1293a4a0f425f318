#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml: every dependency pinned with its hashes.
#   requirements.txt       what lumabot runs with (the container image installs exactly this)
#   requirements-test.txt  plus the test and check tools (CI installs exactly this)
# Needs pip-tools (pip install pip-tools). Run it after changing a dependency in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links)
pip-compile "${common[@]}" -o requirements.txt pyproject.toml
pip-compile "${common[@]}" --extra test -o requirements-test.txt pyproject.toml
