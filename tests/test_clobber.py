"""A new build that ships a path another package owns (or a file of the user's) overwrites it; the
snapshot saves it first, so a rollback puts it back byte for byte (real rattler, a local channel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .channel_factory import Spec, build_package, index
from .envs import install_env

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]
NUMPY_FILE = "share/condafix-fixture/numpy.txt"  # numpy's, a package the fix does not touch
USER_FILE = "share/user-notes.txt"  # no package's: the user's own


@pytest.fixture
def clobbering_channel(channel: Path, tmp_path: Path) -> Path:
    """The fixture channel, with a cuda-cudart 12.4 build that also ships numpy's file and the user's."""
    copy = tmp_path / "clobbering" / "channel"
    shutil.copytree(channel, copy)
    for old in copy.rglob("repodata*"):
        old.unlink()
    files = {
        "share/condafix-fixture/cuda-cudart.txt": "cuda-cudart 12.4.131\n",
        NUMPY_FILE: "clobbered by cuda-cudart\n",
        USER_FILE: "cuda-cudart's notes\n",
    }
    depends = ("cuda-version >=12.4,<12.5.0a0", "__glibc >=2.17,<3.0.a0")
    build_package(copy, Spec("cuda-cudart", "12.4.131", "h5888daf_0", depends=depends, files=files))
    index(copy)
    return copy


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_rollback_restores_a_clobbered_file_of_an_untouched_package(
    clobbering_channel: Path, tmp_path: Path, cli_env: dict[str, str], cache: str
) -> None:
    prefix = install_env(clobbering_channel, tmp_path / "env", BROKEN, cuda="12.9", cache=tmp_path / "pkgs0")
    (prefix / USER_FILE).write_bytes(b"my own notes \xe2\x9c\x93\n")
    before = {rel: (prefix / rel).read_bytes() for rel in (NUMPY_FILE, USER_FILE)}
    env = {**cli_env, "CONDAFIX_PKGS_DIR": str(tmp_path / "pkgs")}
    apply = [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4"]
    apply += ["-c", clobbering_channel.as_uri(), "--apply", "--yes"]
    rollback = [sys.executable, "-m", "condafix", "rollback", "-p", str(prefix), "--yes"]
    if cache == "warm":  # the new builds are extracted before the snapshot is taken
        warm = tmp_path / "warm"
        shutil.copytree(prefix, warm, symlinks=True)
        apply_warm = [a if a != str(prefix) else str(warm) for a in apply]
        assert subprocess.run(apply_warm, env=env, capture_output=True, check=False, timeout=120).returncode == 0
    done = subprocess.run(apply, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (prefix / NUMPY_FILE).read_text() == "clobbered by cuda-cudart\n"  # the clobber happened
    undone = subprocess.run(rollback, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert undone.returncode == 0, undone.stderr
    assert {rel: (prefix / rel).read_bytes() for rel in (NUMPY_FILE, USER_FILE)} == before
    assert (prefix / "conda-meta" / "cuda-cudart-12.9.86-h5888daf_0.json").is_file()
