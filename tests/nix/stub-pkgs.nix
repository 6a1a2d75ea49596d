# A fake `pkgs` with just what modules/vikunja-sync.nix uses. Derivations are
# attribute sets with a store-like outPath; formats.toml has the real value
# type and keeps the value to render so the test can inspect it.
{ lib }:

let
  fakeHash = name: builtins.substring 0 32 (builtins.hashString "sha256" name);
  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "${builtins.storeDir}/${fakeHash name}-${name}";
    }
    // extra;

  # As in nixpkgs: the fixed description stops the recursive type from
  # describing itself forever.
  tomlValue =
    lib.types.oneOf [
      lib.types.bool
      lib.types.int
      lib.types.float
      lib.types.str
      lib.types.path
      (lib.types.attrsOf tomlValue)
      (lib.types.listOf tomlValue)
    ]
    // {
      description = "TOML value";
    };

  python3 = fakeDrv "python3-3.13.5" { };
in
{
  vikunja-sync = fakeDrv "vikunja-sync-0.1.0" { meta.mainProgram = "vikunja-direct"; };
  taskwarrior3 = fakeDrv "taskwarrior-3.4.1" { meta.mainProgram = "task"; };
  # for the VM test's node configuration
  curl = fakeDrv "curl-8.14.1" { };
  util-linux = fakeDrv "util-linux-2.41" { };
  python3 = python3 // {
    sitePackages = "lib/python3.13/site-packages";
    interpreter = "${python3}/bin/python3.13";
  };

  writeShellScript = name: text: fakeDrv name { inherit text; };

  formats.toml = _: {
    type = tomlValue;
    generate = name: value: fakeDrv name { inherit value; };
  };
}
