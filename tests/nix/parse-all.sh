#!/bin/sh
# Parses every .nix file of the repository with nix-instantiate --parse (no
# nixpkgs needed). Usage: tests/nix/parse-all.sh [REPO_ROOT]
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
status=0
count=0
for file in $(find "$root" -name '*.nix' -not -path '*/.git/*' -not -path '*/.venv/*' -not -path '*/result*/*' | sort); do
    count=$((count + 1))
    if ! nix-instantiate --parse "$file" >/dev/null; then
        echo "parse error: $file" >&2
        status=1
    fi
done
echo "parsed $count .nix files"
exit $status
