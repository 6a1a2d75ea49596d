# NixOS VM test (pkgs.testers.runNixOSTest): the bundled Vikunja emulator runs
# as a service next to the module, configured for the Taskwarrior user alice.
# It checks that changes queue while Vikunja is down (breaker open) and drain
# when it is back, that `task add` reaches Vikunja, that signed webhooks (sent
# by hand and by webhooks the module provisions) create Taskwarrior tasks, and
# that every service scores at most 2.0 with `systemd-analyze security`.
let
  token = "tk_0123456789abcdef0123456789abcdef01234567";
  secret = "vm-test-webhook-secret";
  emulatorPort = 3456;
  webhookPort = 8765;
in
{
  name = "vikunja-sync";

  nodes.machine =
    { config, pkgs, ... }:
    {
      imports = [ ../../modules/vikunja-sync.nix ];

      users.users.alice.isNormalUser = true;
      environment.systemPackages = [
        pkgs.taskwarrior3
        pkgs.curl
      ];

      # Test secrets: a real system would use sops-nix or agenix.
      systemd.tmpfiles.rules = [
        "d /var/lib/secrets 0700 root root -"
        "f+ /var/lib/secrets/vikunja-token 0400 root root - ${token}"
        "f+ /var/lib/secrets/webhook-secret 0400 root root - ${secret}"
        "f /home/alice/.taskrc 0600 alice users - confirmation=off"
      ];

      systemd.services.vikunja-emulator = {
        description = "Vikunja emulator (vikunja_sync.emulator)";
        wantedBy = [ "multi-user.target" ];
        before = [ "vikunja-sync.service" ];
        environment.PYTHONPATH = "${config.services.vikunja-sync.package}/${pkgs.python3.sitePackages}";
        serviceConfig = {
          ExecStart = "${pkgs.python3.interpreter} -m vikunja_sync.emulator --host 127.0.0.1 --port ${toString emulatorPort} --token-file %d/vikunja-token";
          LoadCredential = "vikunja-token:/var/lib/secrets/vikunja-token";
          DynamicUser = true;
        };
      };

      services.vikunja-sync = {
        enable = true;
        user = "alice";
        tokenFile = "/var/lib/secrets/vikunja-token";
        webhook = {
          secretFile = "/var/lib/secrets/webhook-secret";
          port = webhookPort;
          provision = {
            enable = true;
            publicUrl = "http://127.0.0.1:${toString webhookPort}/webhook";
          };
        };
        settings = {
          vikunja = {
            url = "http://127.0.0.1:${toString emulatorPort}";
            timeout = 2;
          };
          default_project = "Inbox";
          breaker = {
            failure_threshold = 3;
            recovery_timeout = 15;
          };
        };
      };
    };

  testScript = ''
    import hashlib
    import hmac
    import json
    import shlex

    TOKEN = "${token}"
    SECRET = "${secret}"
    EMULATOR = "http://127.0.0.1:${toString emulatorPort}"
    WEBHOOK = "http://127.0.0.1:${toString webhookPort}/webhook"
    SERVICES = [
        "vikunja-sync",
        "vikunja-sync-queue",
        "vikunja-sync-reconcile",
        "vikunja-sync-provision",
    ]


    def as_alice(command):
        return machine.succeed(f"su - alice -c {shlex.quote(command)}")


    def in_taskwarrior(text):
        return f"su - alice -c 'task export' | grep -qF {shlex.quote(text)}"


    def in_vikunja(text):
        return f"curl -fsS {EMULATOR}/_emulator/tasks | grep -qF {shlex.quote(text)}"


    def emulator_admin(path, body):
        data = shlex.quote(json.dumps(body))
        out = machine.succeed(
            f"curl -fsS -X POST -H 'Content-Type: application/json' -d {data} {EMULATOR}/_emulator/{path}"
        )
        return json.loads(out)


    def breaker_state_is(state):
        return f"su - alice -c 'vikunja-direct diagnose' | grep -qF {shlex.quote('State: ' + state)}"


    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("vikunja-emulator.service")
    machine.wait_for_open_port(${toString emulatorPort})
    machine.wait_for_unit("vikunja-sync.socket")
    machine.wait_for_unit("vikunja-sync.service")
    machine.succeed("test -L /home/alice/.task/hooks/on-add.vikunja-sync")
    machine.succeed("test -L /home/alice/.task/hooks/on-modify.vikunja-sync")
    machine.succeed("test \"$(stat -c %U /var/lib/vikunja-sync)\" = alice")

    # First, while neither side holds any task: the emulator keeps its data in
    # memory, so restarting it later would orphan tasks synced before.
    with subtest("changes queue while Vikunja is down, and the breaker opens"):
        machine.succeed("systemctl stop vikunja-emulator.service")
        for i in range(3):
            as_alice(f"task add offline {i}")
        # each drain attempt fails once; the third failure opens the breaker
        machine.wait_until_succeeds(
            "systemctl start vikunja-sync-queue.service && " + breaker_state_is("OPEN (failing fast)"),
            timeout=120,
        )
        exported = as_alice("task export")
        assert all(f"offline {i}" in exported for i in range(3)), exported

    with subtest("restarting Vikunja drains the queue"):
        machine.succeed("systemctl start vikunja-emulator.service")
        machine.wait_for_open_port(${toString emulatorPort})
        drained = " && ".join(in_vikunja(f"offline {i}") for i in range(3))
        machine.wait_until_succeeds(f"systemctl start vikunja-sync-queue.service && {drained}", timeout=180)
        machine.wait_until_succeeds(breaker_state_is("CLOSED (normal)"), timeout=60)

    with subtest("a task added in Taskwarrior reaches Vikunja at once"):
        as_alice("task add from taskwarrior")
        machine.wait_until_succeeds(in_vikunja("from taskwarrior"), timeout=30)

    projects = json.loads(
        machine.succeed(f"curl -fsS -H 'Authorization: Bearer {TOKEN}' {EMULATOR}/api/v1/projects")
    )
    inbox = next(p["id"] for p in projects if p["title"] == "Inbox")

    with subtest("a signed webhook creates a Taskwarrior task; a forged one is refused"):
        task = emulator_admin(f"projects/{inbox}/tasks", {"title": "from a signed webhook"})
        body = json.dumps({"event_name": "task.created", "time": task.get("created", ""), "data": {"task": task}})
        signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        machine.succeed(f"printf %s {shlex.quote(body)} > /tmp/payload")
        post = f"curl -fsS -H 'Content-Type: application/json' --data-binary @/tmp/payload {WEBHOOK}"
        machine.fail(f"{post} -H 'X-Vikunja-Signature: {'0' * 64}'")
        machine.succeed(f"{post} -H 'X-Vikunja-Signature: {signature}'")
        machine.wait_until_succeeds(in_taskwarrior("from a signed webhook"), timeout=30)

    with subtest("provisioned webhooks bring changes made in Vikunja"):
        machine.succeed("systemctl start vikunja-sync-provision.service")
        emulator_admin(f"projects/{inbox}/tasks", {"title": "made in the Vikunja UI"})
        machine.wait_until_succeeds(in_taskwarrior("made in the Vikunja UI"), timeout=30)

    with subtest("reconciliation runs under the sandbox"):
        machine.succeed("systemctl start vikunja-sync-reconcile.service")

    with subtest("every service has an exposure of at most 2.0"):
        for unit in SERVICES:
            report = machine.succeed(f"systemd-analyze security --no-pager --threshold=20 {unit}.service")
            print(report.strip().splitlines()[-1])
  '';
}
