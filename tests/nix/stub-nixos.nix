# Minimal declarations of the NixOS options modules/vikunja-sync.nix sets or
# reads, so it can be evaluated with lib.evalModules and no nixpkgs checkout.
# Types follow NixOS where the module relies on them (merging of lists and
# attribute sets, tmpfiles entry defaults, user defaults).
{ lib, ... }:

let
  inherit (lib) mkOption types;

  # systemd.{services,sockets,timers}.<name>: free-form, merged like NixOS
  # (lists concatenate, attribute sets merge, scalars must agree).
  unitType = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });

  tmpfilesEntry = types.submodule (
    { name, ... }:
    {
      options = {
        type = mkOption {
          type = types.str;
          default = name;
        };
        mode = mkOption {
          type = types.str;
          default = "-";
        };
        user = mkOption {
          type = types.str;
          default = "-";
        };
        group = mkOption {
          type = types.str;
          default = "-";
        };
        age = mkOption {
          type = types.str;
          default = "-";
        };
        argument = mkOption {
          type = types.str;
          default = "";
        };
      };
    }
  );

  userType = types.submodule (
    { name, config, ... }:
    {
      options = {
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        home = mkOption {
          type = types.str;
          default = "/var/empty";
        };
        group = mkOption {
          type = types.str;
          default = "";
        };
      };
      config = lib.mkIf config.isNormalUser {
        home = lib.mkDefault "/home/${name}";
        group = lib.mkDefault "users";
      };
    }
  );
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    users.users = mkOption {
      type = types.attrsOf userType;
      default = { };
    };
    environment.etc = mkOption {
      type = types.attrsOf (types.attrsOf types.anything);
      default = { };
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };
    systemd.services = mkOption {
      type = unitType;
      default = { };
    };
    systemd.sockets = mkOption {
      type = unitType;
      default = { };
    };
    systemd.timers = mkOption {
      type = unitType;
      default = { };
    };
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    systemd.tmpfiles.settings = mkOption {
      type = types.attrsOf (types.attrsOf (types.attrsOf tmpfilesEntry));
      default = { };
    };
    # nixpkgs' Vikunja server module, for the port clash check.
    services.vikunja = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      port = mkOption {
        type = types.port;
        default = 3456;
      };
    };
  };
}
