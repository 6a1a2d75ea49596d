# NixOS module for vikunja-sync: real-time two-way sync between a user's
# Taskwarrior tasks and Vikunja.
#
# Everything runs as the Taskwarrior owner (`user`), never as root: the
# daemon (`vikunja-direct serve`, socket-activated so webhooks queue in the
# kernel while it restarts), a safety-net queue drain, an hourly
# reconciliation and, optionally, webhook provisioning. One state directory,
# /var/lib/vikunja-sync, holds the breaker state and the outbox for all of
# them and for the Taskwarrior hooks the user runs from a shell.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkIf
    mkOption
    types
    ;

  cfg = config.services.vikunja-sync;
  settingsFormat = pkgs.formats.toml { };

  stateDirName = "vikunja-sync";
  stateDir = "/var/lib/${stateDirName}";
  configPath = "/etc/vikunja-sync/config.toml";
  exe = lib.getExe cfg.package;

  # Read the user's record without failing when it is missing, so that the
  # "user exists" assertion can report the problem instead of an eval error.
  userRecord = config.users.users.${cfg.user} or { };
  userHome = userRecord.home or "/home/${cfg.user}";

  # Without webhooks nothing outside needs to reach the daemon's socket.
  listenAddress = if cfg.webhook.enable then cfg.webhook.listenAddress else "127.0.0.1";
  listenStream =
    if lib.hasInfix ":" listenAddress then
      "[${listenAddress}]:${toString cfg.webhook.port}"
    else
      "${listenAddress}:${toString cfg.webhook.port}";

  # The TOML renderer rejects nulls; unset optional keys are simply omitted.
  configFile = settingsFormat.generate "vikunja-sync.toml" (
    lib.filterAttrsRecursive (_: v: v != null) cfg.settings
  );

  # TW passes "api:2 args:… command:…" as arguments; the CLI reads only stdin,
  # so they are dropped here. The module's config file is forced so that the
  # hooks share the services' state directory and, with push.fallback = "none",
  # leave every call to Vikunja to the units (which alone hold the token).
  hookScript = pkgs.writeShellScript "vikunja-sync-hook" ''
    export VIKUNJA_SYNC_CONFIG=${configPath}
    exec ${exe} hook
  '';

  # Taskwarrior 2.6 does not lock across a command: the daemon takes this lock
  # (exclusively, when no `task` runs) for each of its writes, and every `task`
  # command of the user waits here, shared, until such a write has finished.
  launchHookScript = pkgs.writeShellScript "vikunja-sync-on-launch" ''
    lock=${stateDir}/taskwarrior.lock
    [ -e "$lock" ] && ${pkgs.util-linux}/bin/flock -s -w 30 "$lock" true 2>/dev/null
    exit 0
  '';

  inStore = path: lib.hasPrefix "${builtins.storeDir}/" path;
  escapeSpecifiers = lib.replaceStrings [ "%" ] [ "%%" ];
  isAbsolute = path: lib.hasPrefix "/" path;

  secretAssertions =
    option: path:
    [
      {
        assertion = path != null;
        message = ''
          services.vikunja-sync.${option} must be set: the path of a file outside the
          Nix store (for example one managed by sops-nix or agenix). systemd passes it
          to the units with LoadCredential, so only root needs to be able to read it.
        '';
      }
      {
        assertion = path == null || isAbsolute path;
        message = "services.vikunja-sync.${option} must be an absolute path, got \"${toString path}\".";
      }
      {
        assertion = path == null || !(inStore path);
        message = ''
          services.vikunja-sync.${option} = "${toString path}" is in the Nix store, which
          every local user can read. Put the secret in a file outside the store (sops-nix,
          agenix, or a root-only file under /run or /var/lib) and give its path as a string.
        '';
      }
    ];

  # Parses a systemd ListenStream= value into { address, port } (null for
  # UNIX, abstract or vsock sockets); "" stands for every address.
  parseListen =
    stream:
    let
      bracketed = builtins.match "\\[(.*)]:([0-9]+)" stream;
      hostPort = builtins.match "([^:/@]*):([0-9]+)" stream;
      portOnly = builtins.match "([0-9]+)" stream;
    in
    if bracketed != null then
      {
        address = builtins.elemAt bracketed 0;
        port = builtins.elemAt bracketed 1;
      }
    else if hostPort != null then
      {
        address = builtins.elemAt hostPort 0;
        port = builtins.elemAt hostPort 1;
      }
    else if portOnly != null then
      {
        address = "";
        port = builtins.elemAt portOnly 0;
      }
    else
      null;

  wildcard =
    address:
    builtins.elem address [
      ""
      "0.0.0.0"
      "::"
      "*"
    ];
  overlaps =
    a: b:
    a != null
    && a.port == b.port
    && (wildcard a.address || wildcard b.address || a.address == b.address);
  ours = {
    address = listenAddress;
    port = toString cfg.webhook.port;
  };
  clashingSockets = lib.attrNames (
    lib.filterAttrs (
      name: socket:
      name != "vikunja-sync"
      && lib.any (s: overlaps (parseListen s) ours) (socket.listenStreams or [ ])
    ) config.systemd.sockets
  );
  vikunjaService = config.services.vikunja or { };
  clashes =
    map (name: "systemd.sockets.${name}") clashingSockets
    ++ lib.optional (
      (vikunjaService.enable or false) && toString (vikunjaService.port or "") == ours.port
    ) "services.vikunja.port (Vikunja listens on every address)";

  # Applied to every unit: the user's identity, the shared state directory and
  # a sandbox that sees only the Taskwarrior data, the taskrc and the network.
  hardening = {
    User = cfg.user;
    Group = cfg.group;
    StateDirectory = stateDirName;
    StateDirectoryMode = "0700";
    UMask = "0077";

    ProtectSystem = "strict";
    ProtectHome = "tmpfs";
    BindPaths = [ cfg.taskwarrior.dataDir ];
    BindReadOnlyPaths = [ "-${cfg.taskwarrior.configFile}" ];
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateUsers = true;
    PrivateMounts = true;
    DevicePolicy = "closed";
    NoNewPrivileges = true;
    CapabilityBoundingSet = [ "" ];
    AmbientCapabilities = [ "" ];
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    SystemCallArchitectures = "native";
    SystemCallErrorNumber = "EPERM";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
  };

  tokenCredential = lib.optional (cfg.tokenFile != null) "vikunja-token:${cfg.tokenFile}";
  secretCredential = lib.optional (
    cfg.webhook.enable && cfg.webhook.secretFile != null
  ) "webhook-secret:${cfg.webhook.secretFile}";

  # Common to every vikunja-sync service; `credentials` lists LoadCredential=
  # entries so that each unit gets only the secrets it needs.
  mkService =
    {
      description,
      credentials,
      serviceConfig,
      environment ? { },
      extra ? { },
    }:
    {
      inherit description;
      path = [ cfg.taskwarrior.package ];
      environment = {
        VIKUNJA_SYNC_CONFIG = configPath;
        TASKRC = cfg.taskwarrior.configFile;
        TASKDATA = cfg.taskwarrior.dataDir;
      }
      // environment;
      serviceConfig = hardening // { LoadCredential = credentials; } // serviceConfig;
    }
    // extra;

  # Without a secret, `serve` accepts unsigned webhooks on loopback, that is
  # from any local user. With webhooks off, the daemon gets instead a random
  # secret made at each start and known to nobody, so it refuses them all.
  refusingSecret = "/run/${stateDirName}/refuse-webhooks.secret";
  refusingSecretSetup = {
    environment.VIKUNJA_WEBHOOK_SECRET_FILE = refusingSecret;
    serviceConfig = {
      RuntimeDirectory = stateDirName;
      RuntimeDirectoryMode = "0700";
      ExecStartPre = pkgs.writeShellScript "vikunja-sync-refuse-webhooks" ''
        umask 077
        od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > ${refusingSecret}
      '';
    };
  };

  # A oneshot started by a timer; exit 75 ("queued, try later") is success.
  mkOneshot =
    {
      description,
      credentials,
      args,
    }:
    mkService {
      inherit description credentials;
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${exe} ${args}";
        SuccessExitStatus = [ 75 ];
      };
      extra = {
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
      };
    };
in
{
  options.services.vikunja-sync = {
    enable = lib.mkEnableOption "real-time two-way sync between Taskwarrior and Vikunja";

    package = mkOption {
      type = types.package;
      default = pkgs.vikunja-sync or (pkgs.callPackage ../pkgs/vikunja-sync { });
      defaultText = literalExpression "pkgs.vikunja-sync or (pkgs.callPackage ../pkgs/vikunja-sync { })";
      description = "The vikunja-sync package providing {command}`vikunja-direct`.";
    };

    user = mkOption {
      type = types.str;
      example = "alice";
      description = ''
        The owner of the Taskwarrior data. Every unit runs as this user so that the
        files the sync writes in the Taskwarrior data directory stay theirs; the user
        must be declared in {option}`users.users`.
      '';
    };

    group = mkOption {
      type = types.str;
      default = userRecord.group or "users";
      defaultText = literalExpression "config.users.users.\${user}.group";
      description = "Group the units run as.";
    };

    taskwarrior = {
      package = lib.mkPackageOption pkgs "taskwarrior3" { };

      dataDir = mkOption {
        type = types.str;
        default = "${userHome}/.task";
        defaultText = literalExpression ''"''${config.users.users.''${user}.home}/.task"'';
        description = ''
          Taskwarrior's data directory (`data.location`). It is the only part of the
          user's home the services can write to, and is passed to them as
          {env}`TASKDATA`.
        '';
      };

      configFile = mkOption {
        type = types.str;
        default = "${userHome}/.taskrc";
        defaultText = literalExpression ''"''${config.users.users.''${user}.home}/.taskrc"'';
        description = ''
          The user's taskrc, passed to the services as {env}`TASKRC` and mounted
          read-only into their sandbox (a missing file is tolerated).
        '';
      };
    };

    hooks = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether to link the `on-add.vikunja-sync` and `on-modify.vikunja-sync` hooks
          into {option}`hooks.directory`, so `task add` / `task modify` reach Vikunja
          at once. The hooks only queue the change and wake the daemon: they never
          hold the API token and never touch the network. An `on-launch.vikunja-sync`
          hook (a shell script) makes a command wait while the daemon writes to
          Taskwarrior, which 2.6 needs to lose no write.
        '';
      };

      directory = mkOption {
        type = types.str;
        default = "${cfg.taskwarrior.dataDir}/hooks";
        defaultText = literalExpression ''"''${config.services.vikunja-sync.taskwarrior.dataDir}/hooks"'';
        description = ''
          Where Taskwarrior looks for hooks: `hooks.location` if the taskrc sets it,
          else {file}`hooks` in its data directory.
        '';
      };

      script = mkOption {
        type = types.package;
        default = hookScript;
        defaultText = lib.literalMD "a script running `vikunja-direct hook` with the module's config";
        readOnly = true;
        description = ''
          The hook executable linked as both hooks, for linking it by other means
          (for example with home-manager) when {option}`hooks.enable` is off.
        '';
      };
    };

    tokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/vikunja-token";
      description = ''
        Path of a file holding the Vikunja API token, outside the Nix store. It is read
        by systemd (as root) and handed to the units as the credential `vikunja-token`;
        it is never copied into the store. Create the token in Vikunja under
        *Settings → API Tokens* with the permissions listed in the documentation.
      '';
    };

    settings = mkOption {
      default = { };
      description = ''
        Configuration written to {file}`${configPath}` (TOML). Keys not listed here
        are passed through unchanged. Do not put secrets here: use
        {option}`services.vikunja-sync.tokenFile` and
        {option}`services.vikunja-sync.webhook.secretFile`.
      '';
      example = literalExpression ''
        {
          vikunja.url = "https://vikunja.example.com";
          default_project = "inbox";
          breaker.failure_threshold = 5;
        }
      '';
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          state_dir = mkOption {
            type = types.str;
            default = stateDir;
            readOnly = true;
            description = ''
              The state directory shared by the services and the hooks (breaker
              state, outbox, inbox). Managed by the module.
            '';
          };

          default_project = mkOption {
            type = types.str;
            default = "inbox";
            description = "Vikunja project for Taskwarrior tasks that have no `project`.";
          };

          vikunja = mkOption {
            default = { };
            description = "Where Vikunja is.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options = {
                url = mkOption {
                  type = types.nullOr (types.strMatching "https?://.+");
                  default = null;
                  example = "https://vikunja.example.com";
                  description = "Base URL of Vikunja, without `/api/v1`. Required.";
                };
                timeout = mkOption {
                  type = types.ints.positive;
                  default = 10;
                  description = "Timeout of each HTTP request to Vikunja, in seconds.";
                };
              };
            };
          };

          breaker = mkOption {
            default = { };
            description = "The circuit breaker shared by every process.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options = {
                failure_threshold = mkOption {
                  type = types.ints.positive;
                  default = 3;
                  description = "Consecutive failed calls to Vikunja after which the breaker opens.";
                };
                recovery_timeout = mkOption {
                  type = types.ints.positive;
                  default = 60;
                  description = "Seconds an open breaker fails fast before one trial request is let through.";
                };
              };
            };
          };

          push = mkOption {
            default = { };
            description = "How the Taskwarrior hooks push changes.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options.fallback = mkOption {
                type = types.enum [
                  "none"
                  "spawn"
                ];
                default = "none";
                description = ''
                  What a hook does when the daemon cannot be woken. Under this module the
                  user's shell has no API token (only the units get it), so the default
                  `"none"` leaves the change queued for the daemon and the queue timer.
                '';
              };
            };
          };

          webhook = mkOption {
            default = { };
            description = "The webhook receiver of the daemon.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options = {
                listen = mkOption {
                  type = types.str;
                  default = listenStream;
                  defaultText = literalExpression ''"''${webhook.listenAddress}:''${toString webhook.port}"'';
                  readOnly = true;
                  description = ''
                    Address the daemon listens on when started by hand; under systemd it
                    receives the socket of `vikunja-sync.socket` instead.
                  '';
                };
                path = mkOption {
                  type = types.strMatching "/.*";
                  default = "/webhook";
                  description = "HTTP path webhooks are POSTed to.";
                };
              };
            };
          };
        };
      };
    };

    webhook = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether the daemon accepts Vikunja webhooks (changes made in Vikunja reach
          Taskwarrior in well under a second). When disabled, the daemon's socket
          stays on 127.0.0.1 and checks signatures against a random secret made at
          each start, so every webhook is refused; changes from Vikunja then arrive
          with the reconciliation timer. The daemon keeps running to push
          Taskwarrior changes either way.
        '';
      };

      secretFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/vikunja-webhook-secret";
        description = ''
          Path of a file holding the webhook secret (the same string as in the Vikunja
          webhook), outside the Nix store. Passed as the credential `webhook-secret`.
          Required when {option}`webhook.enable` is set.
        '';
      };

      listenAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = ''
          Address of the webhook socket. Keep the default when Vikunja runs on this
          host or reaches it through a TLS reverse proxy; webhook bodies travel in
          plain HTTP.
        '';
      };

      port = mkOption {
        type = types.port;
        default = 8765;
        description = "TCP port of the webhook socket.";
      };

      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Whether to open {option}`webhook.port` in the firewall.";
      };

      provision = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Whether to create (idempotently) the Vikunja project webhooks pointing at
            {option}`webhook.provision.publicUrl`, shortly after boot and then daily.
            The API token then needs the webhook permissions as well.
          '';
        };

        publicUrl = mkOption {
          type = types.nullOr (types.strMatching "https?://[^[:space:]\"'\\]+");
          default = null;
          example = "https://tasks.example.com/webhook";
          description = ''
            The full URL Vikunja POSTs webhooks to (including
            {option}`settings.webhook.path`), as reachable from the Vikunja server.
          '';
        };

        onCalendar = mkOption {
          type = types.str;
          default = "daily";
          description = "When to re-check the webhooks, as a systemd calendar event.";
        };
      };
    };

    reconcile = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether to run the full two-way reconciliation periodically. It catches what
          webhooks miss (Vikunja keeps undelivered webhooks only in memory).
        '';
      };

      onCalendar = mkOption {
        type = types.str;
        default = "hourly";
        description = "When to reconcile, as a systemd calendar event ({manpage}`systemd.time(7)`).";
      };

      randomizedDelaySec = mkOption {
        type = types.str;
        default = "5m";
        description = "Random delay added to each reconciliation, so hosts do not hit Vikunja at once.";
      };

      persistent = mkOption {
        type = types.bool;
        default = true;
        description = "Whether a reconciliation missed while the machine was off runs at the next boot.";
      };
    };

    queue.onCalendar = mkOption {
      type = types.str;
      default = "*:0/5";
      description = ''
        When to drain the outbox as a safety net (the daemon normally drains it at
        once), as a systemd calendar event. Default: every 5 minutes.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = config.users.users ? ${cfg.user};
        message = ''
          services.vikunja-sync.user = "${cfg.user}", but users.users.${cfg.user} is not declared.
          The sync runs as the owner of the Taskwarrior data: set it to an existing user.
        '';
      }
      {
        assertion = cfg.settings.vikunja.url != null;
        message = ''
          services.vikunja-sync.settings.vikunja.url must be set to the base URL of Vikunja,
          for example "https://vikunja.example.com" (without /api/v1).
        '';
      }
      {
        assertion =
          cfg.settings.vikunja.url == null || !(lib.hasSuffix "/api/v1" cfg.settings.vikunja.url);
        message = "services.vikunja-sync.settings.vikunja.url must not end in /api/v1: give the base URL of Vikunja.";
      }
      {
        assertion = clashes == [ ];
        message = ''
          services.vikunja-sync.webhook.port ${ours.port} on ${listenAddress} clashes with
          ${lib.concatStringsSep ", " clashes}. Choose another services.vikunja-sync.webhook.port.
        '';
      }
      {
        assertion =
          cfg.webhook.provision.enable
          -> (cfg.webhook.enable && cfg.webhook.provision.publicUrl != null);
        message = ''
          services.vikunja-sync.webhook.provision.enable needs webhook.enable = true and
          webhook.provision.publicUrl (the URL Vikunja POSTs to, e.g. "https://tasks.example.com/webhook").
        '';
      }
    ]
    ++ secretAssertions "tokenFile" cfg.tokenFile
    ++ lib.optionals cfg.webhook.enable (
      secretAssertions "webhook.secretFile" cfg.webhook.secretFile
    );

    warnings =
      lib.optional
        (
          cfg.webhook.enable
          && cfg.webhook.openFirewall
          && builtins.elem cfg.webhook.listenAddress [
            "127.0.0.1"
            "::1"
            "localhost"
          ]
        )
        "services.vikunja-sync.webhook.openFirewall has no effect while webhook.listenAddress is ${cfg.webhook.listenAddress}.";

    environment.etc."vikunja-sync/config.toml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    networking.firewall.allowedTCPPorts = lib.optional (
      cfg.webhook.enable && cfg.webhook.openFirewall
    ) cfg.webhook.port;

    # The state directory exists from boot on (the hooks may run before any
    # unit has started); the hook links point into the store.
    systemd.tmpfiles.settings."10-vikunja-sync" =
      {
        ${stateDir}.d = {
          user = cfg.user;
          group = cfg.group;
          mode = "0700";
        };
        ${cfg.taskwarrior.dataDir}.d = {
          user = cfg.user;
          group = cfg.group;
          mode = "0700";
        };
      }
      // lib.optionalAttrs cfg.hooks.enable {
        ${cfg.hooks.directory}.d = {
          user = cfg.user;
          group = cfg.group;
          mode = "0700";
        };
        "${cfg.hooks.directory}/on-add.vikunja-sync"."L+".argument = "${cfg.hooks.script}";
        "${cfg.hooks.directory}/on-modify.vikunja-sync"."L+".argument = "${cfg.hooks.script}";
        "${cfg.hooks.directory}/on-launch.vikunja-sync"."L+".argument = "${launchHookScript}";
      };

    systemd.sockets.vikunja-sync = {
      description = "vikunja-sync webhook socket";
      wantedBy = [ "sockets.target" ];
      listenStreams = [ listenStream ];
      socketConfig.FreeBind = true;
    };

    systemd.services.vikunja-sync = mkService {
      description = "vikunja-sync daemon (Vikunja webhooks, Taskwarrior outbox)";
      credentials = tokenCredential ++ secretCredential;
      environment = lib.optionalAttrs (!cfg.webhook.enable) refusingSecretSetup.environment;
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${exe} serve";
        Restart = "on-failure";
        RestartSec = "5s";
      }
      // lib.optionalAttrs (!cfg.webhook.enable) refusingSecretSetup.serviceConfig;
      extra = {
        # Started at boot as well as on the first connection: the hooks wake it
        # through <state_dir>/wake.sock, which only exists while it runs.
        wantedBy = [ "multi-user.target" ];
        requires = [ "vikunja-sync.socket" ];
        after = [
          "vikunja-sync.socket"
          "network.target"
        ];
        restartTriggers = [ configFile ];
      };
    };

    systemd.services.vikunja-sync-queue = mkOneshot {
      description = "vikunja-sync: drain the Taskwarrior outbox";
      credentials = tokenCredential;
      args = "process-queue";
    };
    systemd.timers.vikunja-sync-queue = {
      description = "vikunja-sync: drain the outbox periodically";
      wantedBy = [ "timers.target" ];
      timerConfig.OnCalendar = cfg.queue.onCalendar;
    };

    systemd.services.vikunja-sync-reconcile = mkIf cfg.reconcile.enable (mkOneshot {
      description = "vikunja-sync: two-way reconciliation";
      credentials = tokenCredential;
      # A full pass: deletions in Vikunja show only there, and it is cheap
      # (one `task export` and one list call per 50 tasks).
      args = "reconcile --full";
    });
    systemd.timers.vikunja-sync-reconcile = mkIf cfg.reconcile.enable {
      description = "vikunja-sync: periodic reconciliation";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.reconcile.onCalendar;
        RandomizedDelaySec = cfg.reconcile.randomizedDelaySec;
        Persistent = cfg.reconcile.persistent;
      };
    };

    systemd.services.vikunja-sync-provision = mkIf cfg.webhook.provision.enable (mkOneshot {
      description = "vikunja-sync: create the Vikunja webhooks";
      credentials = tokenCredential ++ secretCredential;
      # The URL has no blanks or quotes (see its type); "%" would be a systemd specifier.
      args = "provision-webhooks --target-url ${escapeSpecifiers cfg.webhook.provision.publicUrl}";
    });
    systemd.timers.vikunja-sync-provision = mkIf cfg.webhook.provision.enable {
      description = "vikunja-sync: keep the Vikunja webhooks in place";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "2min";
        OnCalendar = cfg.webhook.provision.onCalendar;
        Persistent = true;
      };
    };
  };
}
