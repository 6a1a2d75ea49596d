# Calls flake.nix's `outputs` with a fake nixpkgs (its real lib plus stand-ins
# for the few package functions the flake calls) and reports the layout, so
# tests/test_nix_module.py can check it without fetching nixpkgs.
{ libPath }:

let
  lib = import libPath;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  fake =
    system: name: extra:
    {
      type = "derivation";
      inherit name system;
    }
    // extra;

  fakePkgs = system: {
    stdenv.hostPlatform.system = system;
    callPackage = fn: _args: fake system "called" { from = toString fn; };
    testers.runNixOSTest = test: fake system "nixos-test" { from = toString test; };
    mkShell = _attrs: fake system "shell" { };
    nixfmt-tree = fake system "nixfmt-tree" { };
  };

  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems fakePkgs;
  };

  flake = import ../../flake.nix;
  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };

  perSystem = lib.mapAttrs (_: lib.mapAttrs (_: drv: drv.from or drv.name));
in
{
  inherit (flake) description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  outputNames = lib.attrNames outputs;
  packages = perSystem outputs.packages;
  checks = perSystem outputs.checks;
  devShells = perSystem outputs.devShells;
  formatter = lib.mapAttrs (_: drv: drv.name) outputs.formatter;
  nixosModules = lib.mapAttrs (_: toString) outputs.nixosModules;
  overlay = (outputs.overlays.default (fakePkgs "x86_64-linux") { }).vikunja-sync.from;
}
