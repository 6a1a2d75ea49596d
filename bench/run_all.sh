#!/usr/bin/env bash
# Run every benchmark once with --quick (a smoke run of all figures, ~1-2 minutes on 2 cores).
# Extra arguments go to every script, e.g. `bench/run_all.sh --strict`.
# Uses the repository's venv when present, else python3 from PATH (with vikunja_sync importable).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/../.venv/bin/python" ]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi
failed=()
for script in hook_overhead latency breaker_open reconcile_scale webhook_throughput; do
  echo
  echo "################ $script --quick $*"
  if ! "$python" "$here/$script.py" --quick "$@"; then
    failed+=("$script")
  fi
done
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all: failed: ${failed[*]}"
  exit 1
fi
echo "run_all: all benchmarks ran (see each PASS/FAIL line above)"
