#!/usr/bin/env bash
# The whole test suite: lint, every .nix file parsed, then pytest (unit, property,
# multi-process, real Taskwarrior and the emulator over loopback, Nix module evaluation
# when a nixpkgs lib checkout is given in NIXPKGS_LIB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

.venv/bin/ruff check pkgs tests bench
bash tests/nix/parse-all.sh
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
