{
  description = "Real-time two-way sync between Taskwarrior and Vikunja";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      eachSystem = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: {
        vikunja-sync = final.callPackage ./pkgs/vikunja-sync { };
      };

      packages = eachSystem (pkgs: {
        vikunja-sync = pkgs.callPackage ./pkgs/vikunja-sync { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.vikunja-sync;
      });

      # The module builds its default package from the configuration's own
      # pkgs (or takes pkgs.vikunja-sync when the overlay is applied).
      nixosModules = {
        vikunja-sync = ./modules/vikunja-sync.nix;
        default = self.nixosModules.vikunja-sync;
      };

      checks = eachSystem (pkgs: {
        # Building the package runs the Python test suite.
        vikunja-sync = self.packages.${pkgs.stdenv.hostPlatform.system}.vikunja-sync;
        nixos = pkgs.testers.runNixOSTest ./tests/nixos;
      });

      devShells = eachSystem (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (ps: [
              ps.requests
              ps.setuptools
              ps.pytest
              ps.hypothesis
            ]))
            pkgs.taskwarrior3
            pkgs.ruff
            pkgs.nixfmt
          ];
          shellHook = ''
            export PYTHONPATH="$PWD/pkgs/vikunja-sync/src''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });

      formatter = eachSystem (pkgs: pkgs.nixfmt-tree);
    };
}
