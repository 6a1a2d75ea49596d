# Evaluates modules/vikunja-sync.nix with nixpkgs' lib.evalModules, the stub
# NixOS options and a fake pkgs, and returns plain data for
# tests/test_nix_module.py (nix-instantiate --eval --strict --json -A <attr>).
#   libPath:    a nixpkgs `lib` directory (the one holding modules.nix)
#   configJSON: the NixOS configuration under test, as JSON
#   extraModule: more configuration, for what JSON cannot express (paths)
{
  libPath,
  configJSON ? "{}",
  extraModule ? { },
}:

let
  lib = import libPath;
  pkgs = import ./stub-pkgs.nix { inherit lib; };

  eval = lib.evalModules {
    modules = [
      { _module.args.pkgs = pkgs; }
      ./stub-nixos.nix
      ../../modules/vikunja-sync.nix
      (lib.setDefaultModuleLocation "the test configuration" (builtins.fromJSON configJSON))
      extraModule
    ];
  };
  inherit (eval) config;

  ours = lib.filterAttrs (name: _: lib.hasPrefix "vikunja-sync" name);
  configSource = config.environment.etc."vikunja-sync/config.toml".source;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;

  services = ours config.systemd.services;
  sockets = ours config.systemd.sockets;
  timers = ours config.systemd.timers;
  tmpfiles = config.systemd.tmpfiles.settings;
  firewallPorts = config.networking.firewall.allowedTCPPorts;

  configFile = {
    path = "${configSource}";
    inherit (configSource) value;
  };
  hookScript = {
    path = "${config.services.vikunja-sync.hooks.script}";
    inherit (config.services.vikunja-sync.hooks.script) text;
  };
  packagePath = "${config.services.vikunja-sync.package}";
  # the ExecStartPre script's text, when there is one
  refusingSecretScript =
    config.systemd.services.vikunja-sync.serviceConfig.ExecStartPre.text or null;

  options = map (o: {
    inherit (o) name description readOnly;
    type = o.type or null;
    hasDefault = o ? default;
  }) (lib.optionAttrSetToDocList eval.options.services.vikunja-sync);
}
