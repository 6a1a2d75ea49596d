"""Configuration: file + environment, secrets from files or credentials, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vikunja_sync.config import ConfigError, load_settings
from vikunja_sync.locations import default_state_dir


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_file_and_environment_precedence(tmp_path):
    token = write(tmp_path / "tok", "tk_file\n")
    cfg = write(
        tmp_path / "c.toml",
        f'state_dir = "{tmp_path}/s"\ndefault_project = "Work"\n[vikunja]\nurl = "https://v.example.org/"\n'
        f'token_file = "{token}"\ntimeout = 4\n[breaker]\nfailure_threshold = 5\nrecovery_timeout = 30\n',
    )
    s = load_settings({"VIKUNJA_SYNC_CONFIG": str(cfg), "HOME": str(tmp_path)})
    assert (s.vikunja_url, s.failure_threshold, s.recovery_timeout, s.timeout) == (
        "https://v.example.org",
        5,
        30,
        4,
    )
    assert s.default_project == "Work" and s.state_dir == tmp_path / "s"
    assert s.read_token() == "tk_file"
    env = {
        "VIKUNJA_SYNC_CONFIG": str(cfg),
        "HOME": str(tmp_path),
        "VIKUNJA_URL": "http://127.0.0.1:3456/api/v1",
        "VIKUNJA_SYNC_BREAKER_THRESHOLD": "2",
        "VIKUNJA_SYNC_BREAKER_RECOVERY": "7.5",
        "VIKUNJA_SYNC_STATE_DIR": str(tmp_path / "env-state"),
    }
    s = load_settings(env)
    assert s.vikunja_url == "http://127.0.0.1:3456"  # a trailing /api/v1 is forgiven
    assert (s.failure_threshold, s.recovery_timeout, s.state_dir) == (
        2,
        7.5,
        tmp_path / "env-state",
    )


def test_defaults_and_state_dir_order(tmp_path):
    s = load_settings({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert (s.failure_threshold, s.recovery_timeout, s.timeout, s.default_project) == (
        3,
        60,
        10,
        "inbox",
    )
    assert s.state_dir == tmp_path / ".local/state/vikunja-sync"
    assert default_state_dir({"XDG_STATE_HOME": "/x", "HOME": "/h"}) == "/x/vikunja-sync"
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/vikunja-sync:/other", "XDG_STATE_HOME": "/x"}) == (
        "/var/lib/vikunja-sync"
    )


def test_xdg_config_file_is_found(tmp_path):
    (tmp_path / "cfg/vikunja-sync").mkdir(parents=True)
    write(
        tmp_path / "cfg/vikunja-sync/config.toml",
        '[vikunja]\nurl = "https://found.example"\n',
    )
    s = load_settings({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert s.vikunja_url == "https://found.example"


def test_systemd_credentials(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    write(creds / "vikunja-token", "tk_cred")
    write(creds / "webhook-secret", "s3cret")
    s = load_settings(
        {
            "HOME": str(tmp_path),
            "CREDENTIALS_DIRECTORY": str(creds),
            "VIKUNJA_URL": "http://x",
        }
    )
    assert s.read_token() == "tk_cred" and s.read_webhook_secret() == "s3cret"


@pytest.mark.parametrize(
    ("env", "toml", "needle"),
    [
        ({"VIKUNJA_URL": "ftp://x"}, "", "not an http(s) URL"),
        ({}, "[vikunja\nurl=", "not valid TOML"),
        ({}, "vikunja = 3\n", "must be a table"),
        ({"VIKUNJA_SYNC_BREAKER_THRESHOLD": "zero"}, "", "failure_threshold"),
        ({"VIKUNJA_SYNC_BREAKER_THRESHOLD": "0"}, "", "at least 1"),
        ({}, '[push]\nfallback = "maybe"\n', "push.fallback"),
        ({}, "[reconcile]\nmax_delete_share = 3\n", "max_delete_share"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, env, toml, needle):
    cfg = write(tmp_path / "c.toml", toml)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")) as info:
        load_settings({"HOME": str(tmp_path), "VIKUNJA_SYNC_CONFIG": str(cfg), **env})
    assert "\n" not in str(info.value)


def test_secret_errors(tmp_path):
    s = load_settings({"HOME": str(tmp_path), "VIKUNJA_API_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="cannot read the API token file"):
        s.read_token()
    write(tmp_path / "empty", "  \n")
    s = load_settings({"HOME": str(tmp_path), "VIKUNJA_API_TOKEN_FILE": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match="is empty"):
        s.read_token()
    with pytest.raises(ConfigError, match="vikunja.url is not set"):
        load_settings({"HOME": str(tmp_path)}).require_url()


def test_cli_reports_config_errors_in_one_line_with_exit_2(tmp_path):
    cfg = write(tmp_path / "c.toml", "not toml ===")
    proc = subprocess.run(
        [sys.executable, "-m", "vikunja_sync", "diagnose"],
        env={
            "HOME": str(tmp_path),
            "VIKUNJA_SYNC_CONFIG": str(cfg),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not valid TOML" in proc.stderr and "Traceback" not in proc.stderr
