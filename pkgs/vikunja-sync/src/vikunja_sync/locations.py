"""Where the config file and the state directory are, by the contract's rules.

Only `os` is used: the Taskwarrior hook imports this on every change.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing` and `collections` cost the hook milliseconds at run time
if TYPE_CHECKING:
    from collections.abc import Mapping

WAKE_SOCKET = "wake.sock"  # in the state dir: the hooks' datagrams wake the daemon


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def config_candidates(env: Mapping[str, str]) -> list[str]:
    """`VIKUNJA_SYNC_CONFIG` alone if set, else the XDG file, then the system one."""
    if env.get("VIKUNJA_SYNC_CONFIG"):
        return [env["VIKUNJA_SYNC_CONFIG"]]
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(_home(env), ".config")
    return [os.path.join(xdg, "vikunja-sync", "config.toml"), "/etc/vikunja-sync/config.toml"]


def find_config_file(env: Mapping[str, str]) -> str | None:
    return next((path for path in config_candidates(env) if os.path.isfile(path)), None)


def default_state_dir(env: Mapping[str, str]) -> str:
    if env.get("STATE_DIRECTORY"):
        # systemd may pass several colon-separated directories; the first is ours.
        return env["STATE_DIRECTORY"].split(":")[0]
    if env.get("XDG_STATE_HOME"):
        return os.path.join(env["XDG_STATE_HOME"], "vikunja-sync")
    return os.path.join(_home(env), ".local", "state", "vikunja-sync")
