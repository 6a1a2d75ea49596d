# The vikunja-sync Python application. Its tests live at the repository root
# (tests/), so the source is the repository trimmed to this project and those
# tests, and the build runs inside pkgs/vikunja-sync.
{
  lib,
  python3Packages,
  taskwarrior3,
  util-linux,
}:

let
  project = (lib.importTOML ./pyproject.toml).project;
  fs = lib.fileset;

  # Nix-level tests need nix and nixpkgs' lib, which the sandbox does not have;
  # they run through `nix flake check` (tests/nixos) and tests/test_nix_module.py.
  nixTests = fs.unions [
    (fs.maybeMissing ../../tests/nix)
    (fs.maybeMissing ../../tests/nixos)
    (fs.maybeMissing ../../tests/test_nix_module.py)
  ];
  notBytecode = file: !(file.hasExt "pyc");
in
python3Packages.buildPythonApplication {
  pname = "vikunja-sync";
  inherit (project) version;
  pyproject = true;

  src = fs.toSource {
    root = ../..;
    fileset = fs.unions [
      ./pyproject.toml
      ./README.md
      (fs.difference (fs.fileFilter notBytecode ./src) (
        fs.maybeMissing ./src/vikunja_sync.egg-info
      ))
      (fs.difference (fs.fileFilter notBytecode ../../tests) nixTests)
    ];
  };
  sourceRoot = "source/pkgs/vikunja-sync";
  # pytest and Hypothesis write caches next to the tests.
  postUnpack = "chmod -R u+w source";

  build-system = [ python3Packages.setuptools ];
  dependencies = [ python3Packages.requests ];

  # The user's own `task` (first on PATH) wins; taskwarrior3 is the fallback.
  makeWrapperArgs = [
    "--suffix"
    "PATH"
    ":"
    (lib.makeBinPath [ taskwarrior3 ])
  ];

  nativeCheckInputs = [
    python3Packages.pytestCheckHook
    python3Packages.hypothesis
    taskwarrior3
    util-linux # flock, for the on-launch hook the tests install
  ];
  # The spec conformance test reads Vikunja's swagger.json from the steering
  # repository's shared/ folder, which is not part of this source.
  disabledTestPaths = [ "../../tests/test_emulator_spec.py" ];
  # pyproject.toml's testpaths (../../tests) select the suite.
  preCheck = ''
    export HOME=$(mktemp -d)
    export PATH=$out/bin:$PATH
  '';

  pythonImportsCheck = [
    "vikunja_sync"
    "vikunja_sync.cli"
  ];

  meta = {
    inherit (project) description;
    license = lib.licenses.mit;
    mainProgram = "vikunja-direct";
    platforms = lib.platforms.linux;
  };
}
