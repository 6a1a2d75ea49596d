"""The README's main command: the end-to-end demo must pass and touch nothing outside its temp dir."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_passes_end_to_end(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "vikunja_sync", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Demo passed" in proc.stdout and "State: OPEN (failing fast)" in proc.stdout
    assert proc.stdout.count("  ok  ") >= 9
    assert list(home.iterdir()) == []  # no ~/.task, no ~/.local/state: only temp dirs were used
