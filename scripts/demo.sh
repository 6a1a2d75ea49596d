#!/usr/bin/env bash
# The main job: set up, then the self-contained end-to-end demo against the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/vikunja-direct demo "$@"
