"""Nix-level tests of the flake's NixOS module, runnable without nixpkgs.

`nix flake check` and the VM test need a nixpkgs checkout, which cannot be
downloaded here. These tests cover what can be checked without one: every
`.nix` file parses; the module, evaluated with nixpkgs' `lib.evalModules`
(from the checkout named by NIXPKGS_LIB), stub NixOS options and a fake
`pkgs` (tests/nix/), yields the intended units, credentials, hooks and
assertions; and the units, written to files, pass `systemd-analyze verify`
and score at most 2.0 with `systemd-analyze security --offline=true`.

Without NIXPKGS_LIB (or nix-instantiate / systemd-analyze) the affected
tests are skipped, unless VIKUNJA_SYNC_REQUIRE_NIX_EVAL is set: then they fail.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
EVAL_NIX = REPO / "tests" / "nix" / "eval-module.nix"
REQUIRE_ENV = "VIKUNJA_SYNC_REQUIRE_NIX_EVAL"

# The `vikunja-direct` subcommands of ARCHITECTURE.md's command-line contract.
CONTRACT_SUBCOMMANDS = {
    "hook",
    "install-hooks",
    "push",
    "process-queue",
    "webhook",
    "serve",
    "reconcile",
    "diagnose",
    "breaker",
    "provision-webhooks",
    "demo",
}

# nixpkgs revisions with the narHash other projects publish in their flake.lock
# (the project's shared pin list): a hash cannot be computed without a download.
PUBLISHED_PINS = {
    ("54170c54449ea4d6725efd30d719c5e505f1c10e", "sha256-t+HZK42pB6N+i5RGbuy7Xluez/VvWbembBdvzsc23Ss="),
    ("61b7c44c4073f0b827768aff0049561b5110ea5a", "sha256-12KrbMiWLcf8m7pCvAtZh1ZrgF85ZXDXvfR/fWTKy84="),
}

TOKEN = "/run/secrets/vikunja-token"
SECRET = "/run/secrets/webhook-secret"
STATE_DIR = "/var/lib/vikunja-sync"

# Settings every service must carry (issue 5's hardening list and more).
HARDENING: dict[str, Any] = {
    "ProtectSystem": "strict",
    "ProtectHome": "tmpfs",
    "BindPaths": ["/home/alice/.task"],
    "BindReadOnlyPaths": ["-/home/alice/.taskrc"],
    "PrivateTmp": True,
    "PrivateDevices": True,
    "NoNewPrivileges": True,
    "CapabilityBoundingSet": [""],
    "RestrictAddressFamilies": ["AF_INET", "AF_INET6", "AF_UNIX"],
    "ProtectKernelTunables": True,
    "ProtectKernelModules": True,
    "ProtectKernelLogs": True,
    "ProtectControlGroups": True,
    "LockPersonality": True,
    "RestrictNamespaces": True,
    "RestrictRealtime": True,
    "UMask": "0077",
    "User": "alice",
    "Group": "users",
    "StateDirectory": "vikunja-sync",
}


def _require(reason: str) -> None:
    """Skip for a missing prerequisite, or fail when CI demands the check."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this check must run)")
    pytest.skip(reason)


def _nixpkgs_lib() -> Path:
    """The nixpkgs `lib` directory from NIXPKGS_LIB (a checkout or its lib/)."""
    raw = os.environ.get("NIXPKGS_LIB")
    if not raw:
        _require("NIXPKGS_LIB is not set: point it at a nixpkgs (or nixpkgs.lib) checkout")
    base = Path(raw).resolve()
    for candidate in (base / "lib", base):
        if (candidate / "modules.nix").is_file() and (candidate / "default.nix").is_file():
            return candidate
    pytest.fail(f"NIXPKGS_LIB={raw} holds neither lib/modules.nix nor modules.nix")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _require(f"{name} is not installed")
    return path


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing text output; the caller checks the result."""
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300, check=False)


def base_config(**service: Any) -> dict[str, Any]:
    """A complete, valid configuration; keyword arguments override the service's options."""
    options: dict[str, Any] = {
        "enable": True,
        "user": "alice",
        "tokenFile": TOKEN,
        "settings": {"vikunja": {"url": "https://vikunja.example.com"}},
        "webhook": {"secretFile": SECRET},
    }
    options.update(service)
    return {
        "users": {"users": {"alice": {"isNormalUser": True}}},
        "services": {"vikunja-sync": options},
    }


def _nix_eval(path: Path, *args: str) -> Any:
    """`nix-instantiate --eval --strict --json` of a file, as Python data."""
    result = _run([_tool("nix-instantiate"), "--readonly-mode", "--eval", "--strict", "--json", str(path), *args])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@functools.cache
def _evaluate(lib: str, config_json: str, attr: str) -> Any:
    return _nix_eval(EVAL_NIX, "-A", attr, "--argstr", "libPath", lib, "--argstr", "configJSON", config_json)


def evaluate(config: dict[str, Any], attr: str) -> Any:
    """One attribute of tests/nix/eval-module.nix for `config`."""
    return _evaluate(str(_nixpkgs_lib()), json.dumps(config, sort_keys=True), attr)


def failed_assertions(config: dict[str, Any]) -> list[str]:
    return evaluate(config, "failedAssertions")


def full_config() -> dict[str, Any]:
    """Every optional unit enabled."""
    return base_config(
        webhook={
            "secretFile": SECRET,
            "provision": {"enable": True, "publicUrl": "https://tasks.example.com/webhook"},
        }
    )


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    """The evaluation of a configuration with every optional unit enabled."""
    result = {
        attr: evaluate(full_config(), attr)
        for attr in (
            "failedAssertions",
            "services",
            "sockets",
            "timers",
            "tmpfiles",
            "configFile",
            "hookScript",
            "packagePath",
        )
    }
    assert result["failedAssertions"] == []
    return result


# --- parsing -----------------------------------------------------------------


def _nix_files() -> list[Path]:
    skip = {".git", ".venv", "node_modules", "result"}
    return sorted(p for p in REPO.rglob("*.nix") if not skip.intersection(p.relative_to(REPO).parts))


def test_expected_nix_files_exist() -> None:
    names = {p.relative_to(REPO).as_posix() for p in _nix_files()}
    assert {
        "flake.nix",
        "pkgs/vikunja-sync/default.nix",
        "modules/vikunja-sync.nix",
        "tests/nixos/default.nix",
        "tests/nix/eval-module.nix",
    } <= names


@pytest.mark.parametrize("path", _nix_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_nix_file_parses(path: Path) -> None:
    result = _run([_tool("nix-instantiate"), "--parse", str(path)])
    assert result.returncode == 0, result.stderr


def test_flake_lock_pins_a_published_nixpkgs() -> None:
    """The lock must carry a pin from the shared list, never a made-up hash."""
    lock = json.loads((REPO / "flake.lock").read_text())
    locked = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]["locked"]
    assert locked["type"] == "github" and locked["owner"] == "NixOS"
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"])
    assert (locked["rev"], locked["narHash"]) in PUBLISHED_PINS


def test_flake_outputs_layout() -> None:
    """flake.nix's outputs, called with a fake nixpkgs, have the documented layout."""
    flake = _nix_eval(REPO / "tests" / "nix" / "flake-outputs.nix", "--argstr", "libPath", str(_nixpkgs_lib()))
    assert flake["nixpkgsUrl"] == "github:NixOS/nixpkgs/nixos-25.11"
    assert flake["outputNames"] == [
        "checks",
        "devShells",
        "formatter",
        "nixosModules",
        "overlays",
        "packages",
    ]
    package = str(REPO / "pkgs" / "vikunja-sync")
    for system in ("x86_64-linux", "aarch64-linux"):
        assert flake["packages"][system] == {"default": package, "vikunja-sync": package}
        assert flake["checks"][system] == {"vikunja-sync": package, "nixos": str(REPO / "tests" / "nixos")}
        assert set(flake["devShells"][system]) == {"default"}
        assert flake["formatter"][system] == "nixfmt-tree"
    module = str(REPO / "modules" / "vikunja-sync.nix")
    assert flake["nixosModules"] == {"default": module, "vikunja-sync": module}
    assert flake["overlay"] == package


def test_vm_test_node_satisfies_the_module() -> None:
    """The VM test's configuration passes the module's assertions (checked here, run by nix flake check)."""
    node = f"(import {REPO / 'tests' / 'nixos' / 'default.nix'}).nodes.machine"
    common = ["--argstr", "libPath", str(_nixpkgs_lib()), "--arg", "extraModule", node]
    assert _nix_eval(EVAL_NIX, "-A", "failedAssertions", *common) == []
    services = _nix_eval(EVAL_NIX, "-A", "services", *common)
    assert services["vikunja-sync-provision"]["serviceConfig"]["ExecStart"].endswith(
        "provision-webhooks --target-url http://127.0.0.1:8765/webhook"
    )


def test_vm_test_script_is_clean_python() -> None:
    """The driver lints the test script only when the VM test builds; do it here too."""
    script = _nix_eval(REPO / "tests" / "nixos" / "default.nix", "-A", "testScript")
    compile(script, "testScript", "exec")
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        ruff = Path(_tool("ruff"))
    result = _run(
        [
            str(ruff),
            "check",
            "--no-cache",
            "--config",
            'builtins = ["machine", "subtest", "start_all"]',
            "--select",
            "F,E9",
            "--stdin-filename",
            "testScript.py",
            "-",
        ],
        stdin=script,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- units -------------------------------------------------------------------


def test_units_are_the_expected_set(full: dict[str, Any]) -> None:
    assert set(full["services"]) == {
        "vikunja-sync",
        "vikunja-sync-queue",
        "vikunja-sync-reconcile",
        "vikunja-sync-provision",
    }
    assert set(full["sockets"]) == {"vikunja-sync"}
    assert set(full["timers"]) == {
        "vikunja-sync-queue",
        "vikunja-sync-reconcile",
        "vikunja-sync-provision",
    }


def _argv(service: dict[str, Any]) -> list[str]:
    return shlex.split(service["serviceConfig"]["ExecStart"])


def test_exec_start_runs_contract_subcommands(full: dict[str, Any]) -> None:
    binary = f"{full['packagePath']}/bin/vikunja-direct"
    expected = {
        "vikunja-sync": ["serve"],
        "vikunja-sync-queue": ["process-queue"],
        "vikunja-sync-reconcile": ["reconcile", "--full"],
        "vikunja-sync-provision": [
            "provision-webhooks",
            "--target-url",
            "https://tasks.example.com/webhook",
        ],
    }
    for name, service in full["services"].items():
        argv = _argv(service)
        assert argv[0] == binary
        assert argv[1] in CONTRACT_SUBCOMMANDS
        assert argv[1:] == expected[name]


def test_exec_start_arguments_are_accepted_by_the_cli(full: dict[str, Any]) -> None:
    """The real argument parser knows each unit's subcommand and options."""
    for service in full["services"].values():
        args = _argv(service)[1:]
        result = _run([sys.executable, "-m", "vikunja_sync", *args, "--help"])
        assert result.returncode == 0, (args, result.stderr)
    # `hook` bypasses argparse (it reads stdin at once), so look it up in the listing.
    listing = _run([sys.executable, "-m", "vikunja_sync", "--help"])
    assert re.search(r"^\s+hook\s", listing.stdout, re.MULTILINE), listing.stdout


def test_socket_activates_the_daemon(full: dict[str, Any]) -> None:
    socket = full["sockets"]["vikunja-sync"]
    daemon = full["services"]["vikunja-sync"]
    assert socket["listenStreams"] == ["127.0.0.1:8765"]
    assert socket["wantedBy"] == ["sockets.target"]
    # Same name: systemd hands the socket's fd to vikunja-sync.service.
    assert daemon["serviceConfig"]["Type"] == "notify"
    assert "vikunja-sync.socket" in daemon["requires"]
    assert "vikunja-sync.socket" in daemon["after"]
    # Started at boot too, so the hooks' wake socket exists.
    assert daemon["wantedBy"] == ["multi-user.target"]
    assert full["configFile"]["value"]["webhook"]["listen"] == "127.0.0.1:8765"


def test_ipv6_listen_address_is_bracketed() -> None:
    config = base_config(webhook={"secretFile": SECRET, "listenAddress": "::1", "port": 9001})
    assert evaluate(config, "sockets")["vikunja-sync"]["listenStreams"] == ["[::1]:9001"]


def test_timers_default_schedules(full: dict[str, Any]) -> None:
    timers = full["timers"]
    assert timers["vikunja-sync-queue"]["timerConfig"] == {"OnCalendar": "*:0/5"}
    assert timers["vikunja-sync-reconcile"]["timerConfig"] == {
        "OnCalendar": "hourly",
        "RandomizedDelaySec": "5m",
        "Persistent": True,
    }
    assert timers["vikunja-sync-provision"]["timerConfig"]["OnCalendar"] == "daily"
    for name, timer in timers.items():
        assert timer["wantedBy"] == ["timers.target"]
        service = full["services"][name]  # the timer's unit has its name
        assert service["serviceConfig"]["Type"] == "oneshot"
        assert service["serviceConfig"]["SuccessExitStatus"] == [75]


def test_timer_options_reach_the_units() -> None:
    config = base_config(
        queue={"onCalendar": "*:0/2"},
        reconcile={"onCalendar": "daily", "randomizedDelaySec": "1h", "persistent": False},
    )
    timers = evaluate(config, "timers")
    assert timers["vikunja-sync-queue"]["timerConfig"]["OnCalendar"] == "*:0/2"
    assert timers["vikunja-sync-reconcile"]["timerConfig"] == {
        "OnCalendar": "daily",
        "RandomizedDelaySec": "1h",
        "Persistent": False,
    }
    assert "vikunja-sync-provision" not in timers


def test_reconcile_can_be_disabled() -> None:
    config = base_config(reconcile={"enable": False})
    assert "vikunja-sync-reconcile" not in evaluate(config, "services")
    assert "vikunja-sync-reconcile" not in evaluate(config, "timers")


# --- secrets -----------------------------------------------------------------


def test_credentials_are_loaded_per_unit(full: dict[str, Any]) -> None:
    token = f"vikunja-token:{TOKEN}"
    secret = f"webhook-secret:{SECRET}"
    creds = {n: s["serviceConfig"]["LoadCredential"] for n, s in full["services"].items()}
    assert creds == {
        "vikunja-sync": [token, secret],
        "vikunja-sync-queue": [token],
        "vikunja-sync-reconcile": [token],
        "vikunja-sync-provision": [token, secret],
    }


def test_secret_paths_stay_out_of_the_store(full: dict[str, Any]) -> None:
    """Only units reference the secret files; nothing bound for the store does."""
    stored = json.dumps([full["configFile"]["value"], full["hookScript"]["text"]])
    assert TOKEN not in stored and SECRET not in stored
    for service in full["services"].values():
        for entry in service["serviceConfig"]["LoadCredential"]:
            assert not entry.split(":", 1)[1].startswith("/nix/store/")
        assert not any(TOKEN in v or SECRET in v for v in service["environment"].values())
        assert TOKEN not in service["serviceConfig"]["ExecStart"]


def test_disabling_webhooks_refuses_them_all() -> None:
    """No secret file is needed, and the daemon gets an unknowable one instead of none."""
    config = base_config(webhook={"enable": False, "listenAddress": "0.0.0.0"})
    assert failed_assertions(config) == []
    daemon = evaluate(config, "services")["vikunja-sync"]
    assert daemon["serviceConfig"]["LoadCredential"] == [f"vikunja-token:{TOKEN}"]
    secret_file = daemon["environment"]["VIKUNJA_WEBHOOK_SECRET_FILE"]
    assert secret_file == "/run/vikunja-sync/refuse-webhooks.secret"
    assert daemon["serviceConfig"]["RuntimeDirectory"] == "vikunja-sync"
    assert daemon["serviceConfig"]["RuntimeDirectoryMode"] == "0700"
    assert evaluate(config, "sockets")["vikunja-sync"]["listenStreams"] == ["127.0.0.1:8765"]
    # with webhooks on, the real secret is used and nothing is generated
    enabled = evaluate(base_config(), "services")["vikunja-sync"]
    assert "VIKUNJA_WEBHOOK_SECRET_FILE" not in enabled["environment"]
    assert "ExecStartPre" not in enabled["serviceConfig"]


def test_refusing_secret_is_random_and_private(tmp_path: Path) -> None:
    """Run the generated ExecStartPre script: 64 hex digits, mode 0600, new each start."""
    config = base_config(webhook={"enable": False})
    daemon = evaluate(config, "services")["vikunja-sync"]
    script = evaluate(config, "refusingSecretScript")
    target = tmp_path / "refuse-webhooks.secret"
    body = script.replace(daemon["environment"]["VIKUNJA_WEBHOOK_SECRET_FILE"], str(target))
    secrets = []
    for _ in range(2):
        assert _run(["sh", "-c", body]).returncode == 0
        secrets.append(target.read_text())
        assert target.stat().st_mode & 0o777 == 0o600
    assert all(re.fullmatch(r"[0-9a-f]{64}", s) for s in secrets), secrets
    assert secrets[0] != secrets[1]


# --- state, config file, hooks ---------------------------------------------------


def test_every_service_shares_the_state_directory(full: dict[str, Any]) -> None:
    assert full["configFile"]["value"]["state_dir"] == STATE_DIR
    for service in full["services"].values():
        assert service["serviceConfig"]["StateDirectory"] == "vikunja-sync"
        assert service["environment"]["VIKUNJA_SYNC_CONFIG"] == "/etc/vikunja-sync/config.toml"
        assert service["environment"]["TASKDATA"] == "/home/alice/.task"
    rule = full["tmpfiles"]["10-vikunja-sync"][STATE_DIR]["d"]
    assert (rule["user"], rule["group"], rule["mode"]) == ("alice", "users", "0700")


@pytest.mark.parametrize("name", sorted(HARDENING))
def test_hardening_on_every_service(full: dict[str, Any], name: str) -> None:
    for unit, service in full["services"].items():
        assert service["serviceConfig"].get(name) == HARDENING[name], unit
    for unit, service in full["services"].items():
        filters = service["serviceConfig"]["SystemCallFilter"]
        assert "@system-service" in filters, unit


def test_config_file_values(full: dict[str, Any]) -> None:
    assert full["configFile"]["value"] == {
        "state_dir": STATE_DIR,
        "default_project": "inbox",
        "vikunja": {"url": "https://vikunja.example.com", "timeout": 10},
        "breaker": {"failure_threshold": 3, "recovery_timeout": 60},
        "push": {"fallback": "none"},
        "webhook": {"listen": "127.0.0.1:8765", "path": "/webhook"},
    }


def test_free_form_settings_pass_through() -> None:
    config = base_config(
        settings={
            "vikunja": {"url": "http://10.0.0.2:3456", "verify_tls": False},
            "reconcile": {"max_delete_share": 0.1},
            "breaker": {"failure_threshold": 5},
        }
    )
    value = evaluate(config, "configFile")["value"]
    assert value["vikunja"] == {"url": "http://10.0.0.2:3456", "timeout": 10, "verify_tls": False}
    assert value["reconcile"] == {"max_delete_share": 0.1}
    assert value["breaker"]["failure_threshold"] == 5


def test_hooks_are_linked_into_the_hooks_directory(full: dict[str, Any]) -> None:
    rules = full["tmpfiles"]["10-vikunja-sync"]
    script = full["hookScript"]["path"]
    for hook in ("on-add", "on-modify"):
        link = rules[f"/home/alice/.task/hooks/{hook}.vikunja-sync"]["L+"]
        assert link["argument"] == script
    assert rules["/home/alice/.task/hooks"]["d"]["user"] == "alice"
    launch = rules["/home/alice/.task/hooks/on-launch.vikunja-sync"]["L+"]["argument"]
    assert launch.endswith("-vikunja-sync-on-launch")
    text = full["hookScript"]["text"]
    assert "export VIKUNJA_SYNC_CONFIG=/etc/vikunja-sync/config.toml" in text
    assert f"exec {full['packagePath']}/bin/vikunja-direct hook" in text
    # TW's "api:2 args:…" arguments are not forwarded to the CLI.
    assert '"$@"' not in text


def test_hooks_directory_and_disabling() -> None:
    moved = base_config(hooks={"directory": "/srv/tw/hooks"})
    rules = evaluate(moved, "tmpfiles")["10-vikunja-sync"]
    assert "/srv/tw/hooks/on-add.vikunja-sync" in rules
    follows_data = base_config(taskwarrior={"dataDir": "/srv/tasks"})
    assert "/srv/tasks/hooks/on-launch.vikunja-sync" in evaluate(follows_data, "tmpfiles")["10-vikunja-sync"]
    off = base_config(hooks={"enable": False})
    rules = evaluate(off, "tmpfiles")["10-vikunja-sync"]
    assert not any("hooks" in path for path in rules)


def test_firewall_is_opened_only_on_request() -> None:
    assert evaluate(base_config(), "firewallPorts") == []
    config = base_config(webhook={"secretFile": SECRET, "listenAddress": "0.0.0.0", "openFirewall": True})
    assert evaluate(config, "firewallPorts") == [8765]
    assert evaluate(config, "warnings") == []
    loopback = base_config(webhook={"secretFile": SECRET, "openFirewall": True})
    assert any("openFirewall has no effect" in w for w in evaluate(loopback, "warnings"))


def test_every_option_is_documented() -> None:
    options = evaluate(base_config(), "options")
    names = {o["name"] for o in options}
    assert {
        "services.vikunja-sync.tokenFile",
        "services.vikunja-sync.webhook.secretFile",
        "services.vikunja-sync.settings.vikunja.url",
        "services.vikunja-sync.reconcile.randomizedDelaySec",
        "services.vikunja-sync.webhook.provision.publicUrl",
    } <= names
    undocumented = [o["name"] for o in options if not o["description"].strip()]
    assert undocumented == []


# --- assertions --------------------------------------------------------------


def _without_url() -> dict[str, Any]:
    config = base_config()
    config["services"]["vikunja-sync"]["settings"] = {}
    return config


def _with_other_socket(stream: str) -> dict[str, Any]:
    config = base_config()
    config["systemd"] = {"sockets": {"other": {"listenStreams": [stream]}}}
    return config


def _with_vikunja_on(port: int) -> dict[str, Any]:
    config = base_config(webhook={"secretFile": SECRET, "port": port})
    config["services"]["vikunja"] = {"enable": True}
    return config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (_without_url(), "settings.vikunja.url must be set"),
        (base_config(tokenFile=None), "services.vikunja-sync.tokenFile must be set"),
        (
            base_config(tokenFile="/nix/store/0123456789abcdfghijklmnpqrsvwxyz-token"),
            'tokenFile = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-token" is in the Nix store',
        ),
        (base_config(tokenFile="secrets/token"), "tokenFile must be an absolute path"),
        (
            base_config(webhook={"secretFile": "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-s"}),
            'webhook.secretFile = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-s" is in the Nix store',
        ),
        (base_config(webhook={}), "services.vikunja-sync.webhook.secretFile must be set"),
        (base_config(user="bob"), 'user = "bob", but users.users.bob is not declared'),
        (_with_other_socket("0.0.0.0:8765"), "8765 on 127.0.0.1 clashes with systemd.sockets.other"),
        (_with_other_socket("8765"), "clashes with systemd.sockets.other"),
        (_with_vikunja_on(3456), "clashes with services.vikunja.port"),
        (
            base_config(settings={"vikunja": {"url": "https://v.example.com/api/v1"}}),
            "must not end in /api/v1",
        ),
        (
            base_config(webhook={"secretFile": SECRET, "provision": {"enable": True}}),
            "webhook.provision.publicUrl",
        ),
    ],
    ids=[
        "missing-url",
        "missing-token",
        "token-in-store",
        "token-relative",
        "secret-in-store",
        "missing-secret",
        "unknown-user",
        "port-clash-wildcard-socket",
        "port-clash-port-only-socket",
        "port-clash-vikunja",
        "url-with-api-suffix",
        "provision-without-url",
    ],
)
def test_assertion_fires_with_clear_message(config: dict[str, Any], expected: str) -> None:
    messages = failed_assertions(config)
    assert len(messages) == 1, messages
    assert expected in " ".join(messages[0].split())


def test_path_literal_is_rejected_by_the_type() -> None:
    """`tokenFile = ./token;` would copy the secret into the store: refuse it."""
    module = "{ services.vikunja-sync.tokenFile = ./token; }"
    result = _run(
        [
            _tool("nix-instantiate"),
            "--readonly-mode",
            "--eval",
            "--strict",
            "--json",
            str(EVAL_NIX),
            "-A",
            "services",
            "--argstr",
            "libPath",
            str(_nixpkgs_lib()),
            "--argstr",
            "configJSON",
            json.dumps(base_config(tokenFile=None)),
            "--arg",
            "extraModule",
            module,
        ]
    )
    assert result.returncode != 0
    assert "services.vikunja-sync.tokenFile" in result.stderr
    assert "is not of type" in result.stderr


_ADDRESSES = ["127.0.0.1", "0.0.0.0", "10.1.2.3", "::1", "::"]


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ours=st.sampled_from(["127.0.0.1", "10.1.2.3", "::1"]),
    port=st.sampled_from([8765, 9000]),
    other_address=st.sampled_from(_ADDRESSES + [""]),
    other_port=st.sampled_from([8765, 9000]),
)
def test_port_clash_detection_matches_socket_semantics(
    ours: str, port: int, other_address: str, other_port: int
) -> None:
    """Another socket clashes iff same port and overlapping addresses."""
    if not other_address:
        stream = str(other_port)
    elif ":" in other_address:
        stream = f"[{other_address}]:{other_port}"
    else:
        stream = f"{other_address}:{other_port}"
    config = base_config(webhook={"secretFile": SECRET, "listenAddress": ours, "port": port})
    config["systemd"] = {"sockets": {"other": {"listenStreams": [stream, "/run/other.sock"]}}}
    wildcard = other_address in ("", "0.0.0.0", "::")
    expected = port == other_port and (wildcard or other_address == ours)
    clashed = any("clashes with" in m for m in failed_assertions(config))
    assert clashed == expected, stream


# --- systemd-analyze ----------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _entries(section: dict[str, Any]) -> list[str]:
    """NixOS's rendering: one line per list element, booleans as true/false."""
    lines = []
    for key, value in section.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key}={_value(item)}")
    return lines


def _unit_section(unit: dict[str, Any]) -> list[str]:
    lines = ["[Unit]", f"Description={unit['description']}"]
    for attr, key in (("after", "After"), ("requires", "Requires"), ("wants", "Wants")):
        if unit.get(attr):
            lines.append(f"{key}={' '.join(unit[attr])}")
    return lines


def render_units(evaluation: dict[str, Any], root: Path) -> list[Path]:
    """Write the evaluated units under root/etc/systemd/system, as NixOS would."""
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    written = []
    for name, service in evaluation["services"].items():
        env = dict(service["environment"])
        env["PATH"] = ":".join(f"{p}/bin" for p in service["path"])
        body = [f'Environment="{k}={v}"' for k, v in env.items()]
        text = _unit_section(service) + ["", "[Service]", *body, *_entries(service["serviceConfig"])]
        written.append(unit_dir / f"{name}.service")
        written[-1].write_text("\n".join(text) + "\n")
        # verify checks that the Exec*= binaries exist (under --root)
        for key in ("ExecStart", "ExecStartPre"):
            if key in service["serviceConfig"]:
                binary = root / shlex.split(service["serviceConfig"][key])[0].lstrip("/")
                binary.parent.mkdir(parents=True, exist_ok=True)
                binary.write_text("#!/bin/sh\n")
                binary.chmod(0o755)
    for name, socket in evaluation["sockets"].items():
        streams = [f"ListenStream={s}" for s in socket["listenStreams"]]
        text = _unit_section(socket) + ["", "[Socket]", *streams, *_entries(socket["socketConfig"])]
        written.append(unit_dir / f"{name}.socket")
        written[-1].write_text("\n".join(text) + "\n")
    for name, timer in evaluation["timers"].items():
        text = _unit_section(timer) + ["", "[Timer]", *_entries(timer["timerConfig"])]
        written.append(unit_dir / f"{name}.timer")
        written[-1].write_text("\n".join(text) + "\n")
    # the targets the units refer to, from the host
    system_units = root / "usr" / "lib" / "systemd" / "system"
    system_units.mkdir(parents=True)
    for target in Path("/lib/systemd/system").glob("*.target"):
        shutil.copy(target, system_units / target.name, follow_symlinks=True)
    return written


UNIT_SETS = {
    "all-units": full_config,
    "webhooks-off": lambda: base_config(webhook={"enable": False}),
}


@pytest.fixture(scope="module", params=sorted(UNIT_SETS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The units of one configuration, evaluated and written under a fresh root."""
    config = UNIT_SETS[request.param]()
    evaluation = {attr: evaluate(config, attr) for attr in ("services", "sockets", "timers")}
    root = tmp_path_factory.mktemp(request.param)
    render_units(evaluation, root)
    return evaluation, root


def test_systemd_analyze_verify_is_clean(rendered: tuple[dict[str, Any], Path]) -> None:
    _, unit_root = rendered
    units = sorted((unit_root / "etc" / "systemd" / "system").iterdir())
    result = _run([_tool("systemd-analyze"), "verify", f"--root={unit_root}", *map(str, units)])
    # verify only warns about unknown keys or bad values: any output is a finding
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_systemd_analyze_security_exposure(rendered: tuple[dict[str, Any], Path]) -> None:
    evaluation, unit_root = rendered
    scores = {}
    for name in evaluation["services"]:
        result = _run(
            [
                _tool("systemd-analyze"),
                "security",
                "--offline=true",
                f"--root={unit_root}",
                "--no-pager",
                f"{name}.service",
            ]
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
        assert match, result.stdout + result.stderr
        scores[name] = float(match.group(1))
    print("systemd-analyze security exposure:", scores)
    assert all(score <= 2.0 for score in scores.values()), scores
