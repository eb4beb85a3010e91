"""The README's examples, offline: a local channel of real conda packages and the envs and files the README uses.

    python -m tests.demo /tmp/demo        # then run the printed exports, and the README's commands as written

The channel is ``tests/channel_factory.py``'s conda-forge-shaped one (real ``.tar.bz2`` packages indexed by
rattler); the envs are installed from it with rattler (``tests/envs.py``) as a solver on a machine with the
named driver would have installed them, so each holds what the README says:

- ``envs/seed``: cudatoolkit 11.7 + numba (installed for a CUDA 11.7 driver), the seed's case;
- ``envs/gpu``: numba-cuda with CUDA 12.9 parts (installed for a CUDA 12.9 driver);
- ``envs/torch``: a pytorch built for CUDA 12.8 only, on cuda-version 12.9;
- ``files/``: the environment.yml, pixi.toml and pixi.lock examples (copies of ``tests/fixtures``).

``tests/test_readme.py`` builds the same demo and runs the README's marked console blocks against it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# name -> (specs, the driver's CUDA the env was installed for)
ENVS: dict[str, tuple[list[str], str]] = {
    "seed": (["cudatoolkit 11.7.*", "numba", "python 3.12.7.*"], "11.7"),
    "gpu": (["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"], "12.9"),
    "torch": (["pytorch", "numba-cuda", "python 3.12.7.*"], "12.9"),
}
# where the README's file examples are (the working directory of each), and which fixture each copies
FILES: dict[str, list[tuple[str, str]]] = {
    "files/envyml": [("envfiles/pytorch-1.12-cudatoolkit-dev.yml", "environment.yml")],
    "files/metapackage": [("envfiles/cuda-metapackage.yml", "environment.yml")],
    "files/pixi": [("pixi/pixi.toml", "pixi.toml")],
    "files/lock": [("lockfiles/pixi-v6/pixi.lock", "pixi.lock"), ("lockfiles/pixi-v6/pixi.toml", "pixi.toml")],
}


def exports(root: Path) -> dict[str, str]:
    """What a shell needs so the README's ``-n gpu`` finds the demo's env and condafix's caches stay in it."""
    return {
        "CONDA_ENVS_PATH": str(root / "envs"),
        "CONDAFIX_PKGS_DIR": str(root / "pkgs"),
        "CONDAFIX_CACHE_DIR": str(root / "cache"),
    }


def build(root: Path) -> Path:
    """(Re)build the demo under ``root``: the channel, the envs, the files. Returns the channel."""
    from .channel_factory import make_channel
    from .envs import install_env

    root.mkdir(parents=True, exist_ok=True)
    for part in ("channel", "envs", "files", "pkgs", "cache", "install-cache"):
        shutil.rmtree(root / part, ignore_errors=True)
    channel = make_channel(root)
    for name, (specs, cuda) in ENVS.items():
        install_env(channel, root / "envs" / name, specs, cuda=cuda, cache=root / "install-cache")
    for where, copies in FILES.items():
        (root / where).mkdir(parents=True, exist_ok=True)
        for source, target in copies:
            shutil.copy2(FIXTURES / source, root / where / target)
    return channel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="where to build it (the README uses /tmp/demo)")
    root = parser.parse_args(argv).dir.absolute()
    build(root)
    print(f"# the README's examples, built in {root}; run these in your shell first:")
    for key, value in exports(root).items():
        print(f"export {key}={shlex.quote(value)}")
    print("unset CONDA_PREFIX VIRTUAL_ENV")
    for where in FILES:
        print(f"# the file examples run in {root / where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
