"""The prefix is shared with conda, which takes no prefix lock: what conda does while (or after)
condafix changes the env is never undone by condafix's undo or rollback (real conda, a slow channel)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.change import snapshot

from .realconda import RealConda
from .slow_http import Pace, slow_server

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]
ROUNDS = int(os.environ.get("CONDAFIX_TEST_ROUNDS", "1"))  # the long run: CONDAFIX_TEST_ROUNDS=20
ZLIB = "libzlib-1.3.1-hb9d3cd8_2"


def _apply(prefix: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "condafix",
        "cuda",
        "-p",
        str(prefix),
        "--cuda",
        "12.4",
        "-c",
        url,
        "--apply",
        "--yes",
    ]


def _conda_install_zlib(real_conda: RealConda, prefix: Path, *, offline: bool = True) -> None:
    extra = ["--offline"] if offline else ["--dry-run"]
    done = real_conda.run(
        "install", "-y", "-q", "-p", str(prefix), "--override-channels", "-c", real_conda.channel_url,
        *extra, "libzlib", cuda="12.9", check=False,
    )  # fmt: skip
    assert done.returncode == 0 or not offline, done.stderr  # the dry run only fills conda's index cache


@pytest.fixture
def cold_env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """condafix with an empty package cache of its own: every package comes from the slow channel."""
    return {**cli_env, "CONDAFIX_PKGS_DIR": str(tmp_path / "cold-pkgs")}


def _wait_for(path: Path, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the apply ended before it started installing"
        time.sleep(0.02)


def _zlib_kept(real_conda: RealConda, prefix: Path) -> None:
    """conda's install is all still there: record, files, history revision and requested spec."""
    assert (prefix / "conda-meta" / f"{ZLIB}.json").is_file()
    assert (prefix / "share" / "condafix-fixture" / "libzlib.txt").is_file()
    history = real_conda.history(prefix)
    assert history.requested.get("libzlib") == "libzlib"
    assert any(ZLIB in line for state in history.states[-1:] for line in state)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_conda_install_during_apply_is_never_undone(
    real_conda: RealConda,
    installed_env: Callable[..., Path],
    cold_env: dict[str, str],
    channel: Path,
    round_: int,
) -> None:
    """While condafix downloads from a slow channel, `conda install libzlib` finishes in the same prefix."""
    prefix = installed_env(BROKEN, cuda="12.9", name=f"race-{round_}")
    _conda_install_zlib(real_conda, prefix, offline=False)  # warm conda's index cache (a dry run)
    with slow_server(channel, Pace(chunk=32, delay=0.1)) as url:
        child = subprocess.Popen(
            _apply(prefix, url), env=cold_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_for(prefix / "conda-meta" / "condafix" / "journal.json", child)
        _conda_install_zlib(real_conda, prefix)
        _out, err = child.communicate(timeout=120)
    assert child.returncode == 4, err
    assert "panicked" not in err and "RUST_BACKTRACE" not in err, err  # one clear line, not a Rust backtrace
    last = err.strip().splitlines()
    assert any("another tool changed" in line and "libzlib" in line and "kept" in line for line in last), err
    _zlib_kept(real_conda, prefix)
    assert snapshot.pending(prefix) is None
    names = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    # condafix's own change is either whole (kept with conda's) or undone: never half
    assert {"cuda-version-12.4-h0_3.json", "cuda-version-12.9-h0_3.json"} & names
    assert len([n for n in names if n.startswith("cuda-version-")]) == 1
    if "cuda-version-12.4-h0_3.json" in names:  # both kept: a rollback takes back condafix's part only
        rollback = [sys.executable, "-m", "condafix", "rollback", "-p", str(prefix), "--yes"]
        done = subprocess.run(rollback, env=cold_env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert (prefix / "conda-meta" / "cuda-version-12.9-h0_3.json").is_file()
        _zlib_kept(real_conda, prefix)
    _OUTCOMES["race: both kept" if "cuda-version-12.4-h0_3.json" in names else "race: condafix's undone"] += 1
    print(f"\nrace round {round_}: libzlib kept, outcomes so far {dict(_OUTCOMES)}")


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_rollback_of_a_killed_apply_refuses_after_a_conda_install(
    real_conda: RealConda, installed_env: Callable[..., Path], cold_env: dict[str, str], channel: Path, round_: int
) -> None:
    """SIGKILL mid-apply, then `conda install`: the unfinished snapshot gets the later-changes check."""
    prefix = installed_env(BROKEN, cuda="12.9", name=f"killed-{round_}")
    _conda_install_zlib(real_conda, prefix, offline=False)
    with slow_server(channel, Pace(chunk=32, delay=0.1)) as url:
        child = subprocess.Popen(
            _apply(prefix, url), env=cold_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_for(prefix / "conda-meta" / "condafix" / "journal.json", child)
        time.sleep(0.3 * (round_ % 4))  # the long run kills at several points of the downloads (~1.7 s)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    assert snapshot.pending(prefix) is not None
    _conda_install_zlib(real_conda, prefix)
    rollback = [sys.executable, "-m", "condafix", "rollback", "-p", str(prefix), "--yes"]
    refused = subprocess.run(rollback, env=cold_env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2, refused.stderr
    assert "libzlib" in refused.stderr and "--force" in refused.stderr
    _zlib_kept(real_conda, prefix)
    forced = subprocess.run(
        [*rollback, "--force"], env=cold_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert forced.returncode == 0, forced.stderr
    # forced, as the refusal said: the later install is undone too, whole (record, files and spec)
    assert not (prefix / "conda-meta" / f"{ZLIB}.json").exists()
    assert not (prefix / "share" / "condafix-fixture" / "libzlib.txt").exists()
    assert "libzlib" not in real_conda.history(prefix).requested
    assert (prefix / "conda-meta" / "cuda-version-12.9-h0_3.json").is_file()
    assert snapshot.pending(prefix) is None
    _OUTCOMES["kill: refused, then forced"] += 1
    print(f"\nkill round {round_}: libzlib kept until --force, outcomes so far {dict(_OUTCOMES)}")


_OUTCOMES: Counter[str] = Counter()


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_through_the_plugin_a_conda_install_during_apply_survives_the_rollback(
    real_conda: RealConda, tmp_path: Path, channel: Path, round_: int
) -> None:
    """`conda cuda --apply` (conda's own transaction) downloads slowly while `conda install libzlib` finishes:
    condafix never counts libzlib as its own, so `conda cuda --rollback --yes` (no --force) keeps it."""
    plugin = subprocess.run([real_conda.python, "-c", "import condafix.conda_plugin"], capture_output=True, check=False)
    if plugin.returncode != 0:
        pytest.skip("condafix is not installed in conda's venv (.ci/conda-venv does it)")
    from .realconda import BROKEN_SPECS

    prefix = real_conda.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba", cuda="12.4")
    _conda_install_zlib(real_conda, prefix, offline=False)
    cold = real_conda.env(cuda="12.4", CONDA_PKGS_DIRS=str(tmp_path / "cold-pkgs"))  # its downloads are slow
    with slow_server(channel, Pace(chunk=16, delay=0.3)) as url:
        apply = [real_conda.python, "-m", "conda", "cuda", "-p", str(prefix), "--apply", "--yes", "-c", url]
        child = subprocess.Popen(apply, env=cold, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=real_conda.root)  # fmt: skip
        _wait_for(prefix / "conda-meta" / "condafix" / "journal.json", child)
        _conda_install_zlib(real_conda, prefix)
        out, err = child.communicate(timeout=300)
    said = out + err
    assert "Traceback" not in said and "panicked" not in said, said
    assert child.returncode in (0, 4), said
    _zlib_kept(real_conda, prefix)  # in conda's history too: conda's own revision read it as removed
    if child.returncode == 4:  # stopped with both changes kept: the message names the other one
        assert "another tool changed" in said and "libzlib" in said, said
    if real_conda.installed(prefix)["cuda-version"] == "12.4":  # condafix's change is in: take it back
        done = real_conda.run("cuda", "--rollback", "-p", str(prefix), "--yes", check=False, env=cold)
        assert done.returncode == 0, done.stdout + done.stderr
        assert real_conda.installed(prefix)["cuda-version"] in ("12.9", "13.0")
    _zlib_kept(real_conda, prefix)  # record, files, history revision and requested spec, with no --force
    assert snapshot.pending(prefix) is None
    _OUTCOMES[f"plugin race: apply exit {child.returncode}"] += 1
    print(f"\nplugin race round {round_}: libzlib kept, outcomes so far {dict(_OUTCOMES)}")
