#!/usr/bin/env bash
# Everything a fresh Debian machine needs, as root: Taskwarrior, Nix (for parsing and
# evaluating the Nix files), systemd-analyze, a virtualenv with the package and its tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v task >/dev/null || need_apt+=(taskwarrior)
command -v nix-instantiate >/dev/null || need_apt+=(nix-bin)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e 'pkgs/vikunja-sync[test]' ruff
echo "setup done: $(task --version | head -1) (Taskwarrior), $(nix-instantiate --version), $(.venv/bin/python --version)"
