"""Settings from a TOML file plus the environment (the environment wins).

Secrets are never settings themselves: only the *paths* of files holding them are,
or systemd credentials (``$CREDENTIALS_DIRECTORY``). Loading stays light (``tomllib``
only) because the Taskwarrior hook reads the configuration on every change.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vikunja_sync.locations import WAKE_SOCKET, default_state_dir, find_config_file

TOKEN_CREDENTIAL = "vikunja-token"
WEBHOOK_SECRET_CREDENTIAL = "webhook-secret"
DEFAULT_LISTEN = "127.0.0.1:8765"
FALLBACKS = ("spawn", "none")


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it and the fix (one line)."""


@dataclass(frozen=True)
class Settings:
    vikunja_url: str | None
    token_file: Path | None
    webhook_secret_file: Path | None
    state_dir: Path
    config_file: Path | None
    failure_threshold: int = 3
    recovery_timeout: float = 60.0
    timeout: float = 10.0
    default_project: str = "inbox"
    webhook_listen: str = DEFAULT_LISTEN
    webhook_path: str = "/webhook"
    push_fallback: str = "spawn"
    reconcile_max_delete_share: float = 0.2
    drain_interval: float = 300.0

    @property
    def api_url(self) -> str:
        return f"{self.require_url()}/api/v1"

    def require_url(self) -> str:
        if not self.vikunja_url:
            raise ConfigError(
                "vikunja.url is not set: set VIKUNJA_URL or `[vikunja] url = "
                '"https://vikunja.example.org"` in the config file'
            )
        return self.vikunja_url

    def read_token(self) -> str:
        """The API token; read on demand so it never sits in the settings object."""
        return _read_secret(self.token_file, "API token", "VIKUNJA_API_TOKEN_FILE", "vikunja.token_file")

    def read_webhook_secret(self) -> str | None:
        if self.webhook_secret_file is None:
            return None
        return _read_secret(
            self.webhook_secret_file, "webhook secret", "VIKUNJA_WEBHOOK_SECRET_FILE", "webhook.secret_file"
        )

    @property
    def outbox_wake_socket(self) -> Path:
        return self.state_dir / WAKE_SOCKET

    @property
    def database(self) -> Path:
        return self.state_dir / "sync.sqlite3"


def _read_secret(path: Path | None, what: str, env: str, key: str) -> str:
    if path is None:
        raise ConfigError(f"no {what} configured: set {env} or `{key}` to a file holding it")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} file {path}: {exc.strerror}; check {env} / {key} and the file's permissions"
        ) from None
    if not value:
        raise ConfigError(f"the {what} file {path} is empty; write the secret into it")
    return value


def _load_toml(env: Mapping[str, str]) -> tuple[Path | None, dict[str, Any]]:
    found = find_config_file(env)
    if found is None:
        if env.get("VIKUNJA_SYNC_CONFIG"):
            raise ConfigError(
                f"config file {env['VIKUNJA_SYNC_CONFIG']} (VIKUNJA_SYNC_CONFIG) does not exist; "
                "create it or unset the variable"
            )
        return None, {}
    path = Path(found)
    try:
        with path.open("rb") as fh:
            return path, tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}; check its permissions") from None


def _section(data: dict[str, Any], name: str, config_file: Path | None) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"`{name}` in {config_file} must be a table ([{name}]); fix the config file")
    return value


def _number(raw: Any, setting: str, kind: type, minimum: float) -> Any:
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} must be a {kind.__name__}, got {raw!r}; fix the value") from None
    if value < minimum:
        raise ConfigError(f"{setting} must be at least {minimum}, got {raw!r}; fix the value")
    return value


def _credential(env: Mapping[str, str], name: str) -> Path | None:
    directory = env.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / name).exists():
        return Path(directory) / name
    return None


def _validate_url(url: str | None) -> str | None:
    if url is None:
        return None
    url = str(url).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"vikunja.url {url!r} is not an http(s) URL; set it like https://vikunja.example.org (without /api/v1)"
        )
    if parts.path.rstrip("/").endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings; raises ConfigError with a one-line, fixable message."""
    env = os.environ if env is None else env
    config_file, data = _load_toml(env)
    vikunja = _section(data, "vikunja", config_file)
    webhook = _section(data, "webhook", config_file)
    breaker = _section(data, "breaker", config_file)
    push = _section(data, "push", config_file)
    reconcile = _section(data, "reconcile", config_file)

    def path_setting(env_name: str, raw: Any, credential: str | None = None) -> Path | None:
        value = env.get(env_name) or raw
        if value:
            return Path(str(value)).expanduser()
        return _credential(env, credential) if credential else None

    state_dir = env.get("VIKUNJA_SYNC_STATE_DIR") or data.get("state_dir")
    fallback = str(push.get("fallback", "spawn"))
    if fallback not in FALLBACKS:
        raise ConfigError(f'push.fallback must be "spawn" or "none", got {fallback!r}; fix the config file')
    share = _number(reconcile.get("max_delete_share", 0.2), "reconcile.max_delete_share", float, 0.0)
    if share > 1:
        raise ConfigError(f"reconcile.max_delete_share must be between 0 and 1, got {share}; fix the value")
    return Settings(
        vikunja_url=_validate_url(env.get("VIKUNJA_URL") or vikunja.get("url")),
        token_file=path_setting("VIKUNJA_API_TOKEN_FILE", vikunja.get("token_file"), TOKEN_CREDENTIAL),
        webhook_secret_file=path_setting(
            "VIKUNJA_WEBHOOK_SECRET_FILE", webhook.get("secret_file"), WEBHOOK_SECRET_CREDENTIAL
        ),
        state_dir=Path(str(state_dir) if state_dir else default_state_dir(env)).expanduser(),
        config_file=config_file,
        failure_threshold=_number(
            env.get("VIKUNJA_SYNC_BREAKER_THRESHOLD") or breaker.get("failure_threshold", 3),
            "breaker.failure_threshold (VIKUNJA_SYNC_BREAKER_THRESHOLD)",
            int,
            1,
        ),
        recovery_timeout=_number(
            env.get("VIKUNJA_SYNC_BREAKER_RECOVERY") or breaker.get("recovery_timeout", 60),
            "breaker.recovery_timeout (VIKUNJA_SYNC_BREAKER_RECOVERY)",
            float,
            0.0,
        ),
        timeout=_number(vikunja.get("timeout", 10), "vikunja.timeout", float, 0.1),
        default_project=str(data.get("default_project", "inbox")),
        webhook_listen=str(webhook.get("listen", DEFAULT_LISTEN)),
        webhook_path="/" + str(webhook.get("path", "/webhook")).lstrip("/"),
        push_fallback=fallback,
        reconcile_max_delete_share=share,
        drain_interval=_number(push.get("drain_interval", 300), "push.drain_interval", float, 1.0),
    )
