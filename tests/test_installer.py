"""The installer inversion: a backend builds an Installer, ``change.apply`` wraps it (lock, snapshot, journal,
pin, history) and the command layer hands the pieces over. Real installs into temp prefixes from the
local fixture channel; a custom installer shows that whatever installs is wrapped the same way."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.backends import choice
from condafix.change import apply as apply_mod
from condafix.change import lock as lock_mod
from condafix.change import rollback as rollback_mod
from condafix.change import safety, snapshot
from condafix.change.installer import Installer, InstallRequest, Move, Reinstaller
from condafix.detect.target import TargetCuda
from condafix.plan import planner

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]


def digest(prefix: Path, *, history: bool = False) -> dict[str, str]:
    """sha256 of every file but condafix's own state and, unless asked, conda's history (a rollback appends
    a revision; a failed change leaves none)."""
    skip = ("conda-meta/condafix",) if history else ("conda-meta/condafix", "conda-meta/history")
    return {
        p.relative_to(prefix).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(prefix.rglob("*"))
        if p.is_file() and not p.relative_to(prefix).as_posix().startswith(skip)
    }


@pytest.fixture
def isolated(tmp_path: Path, pkgs_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDAFIX_PKGS_DIR", str(pkgs_cache))
    monkeypatch.setenv("CONDAFIX_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def cuda_version_move(prefix: Path) -> Move:
    """The installed cuda-version record, read from the file name conda gives it."""
    (record,) = (prefix / "conda-meta").glob("cuda-version-*.json")
    _name, version, build = record.name.removesuffix(".json").rsplit("-", 2)
    return Move(name="cuda-version", from_version=version, from_build=build, to_version="12.4", to_build="h0_3")


def hand_made_request(prefix: Path) -> InstallRequest:
    """A request no planner made: the change path needs nothing but these neutral fields."""
    return InstallRequest(
        prefix=prefix,
        cuda="12.4",
        channels=(),
        pins=("cuda-version=12.4",),
        moves=(cuda_version_move(prefix),),
        command=f"condafix cuda -p {prefix} --apply --cuda 12.4",
        plan={"made": "by hand"},
    )


def never_matches(_spec: str, _name: str, _version: str) -> bool:
    raise AssertionError("no pin in conda-meta/pinned to check")


def test_a_backend_installer_really_installs_inside_the_wrapper(
    installed_env: Callable[..., Path], isolated: None, channel: Path
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = digest(prefix)
    backend = choice.open_backend("rattler", prefix=prefix, offline=False)
    plan = planner.plan(prefix=prefix, target=TargetCuda(cuda="12.4", source="--cuda 12.4"), backend=backend)
    assert plan.status == "change"
    assert all(type(r).__name__ == "Record" for r in plan.records)  # neutral: no native object rides along
    request = planner.install_request(plan)
    installer = choice.installer(backend, request, via=None, relay=lambda: sys.stderr)
    assert installer.label == "rattler" and not installer.writes_history
    applied = apply_mod.apply(request, installer, step=lambda _m: None, reinstaller=choice.reinstaller())
    assert applied.via == "rattler" and applied.pinned == ("cuda-version 12.4.*",)
    assert sorted(p.name for p in (prefix / "conda-meta").glob("cuda-*.json")) == [
        "cuda-cudart-12.4.131-h5888daf_0.json",
        "cuda-nvrtc-12.4.131-h5888daf_0.json",
        "cuda-nvvm-impl-12.4.131-h5888daf_0.json",
        "cuda-version-12.4-h0_3.json",
    ]
    assert (prefix / "share/condafix-fixture/cuda-version.txt").read_text() == "cuda-version 12.4\n"
    history = (prefix / "conda-meta" / "history").read_text()  # rattler writes none: the wrapper does
    assert f"# cmd: condafix cuda -p {prefix} --apply --cuda 12.4\n" in history
    assert f"+{channel.as_uri()}/noarch::cuda-version-12.4-h0_3" in history
    assert snapshot.pending(prefix) is None and snapshot.list_snapshots(prefix)[-1].state == "applied"
    rollback_mod.rollback(prefix, None, dry_run=False, reinstaller=choice.reinstaller())
    assert digest(prefix) == before


def test_a_failing_custom_installer_is_undone_byte_for_byte(installed_env: Callable[..., Path], isolated: None) -> None:
    """Whatever installs is wrapped: during the install the lock is held, the journal and the snapshot exist
    and the pin is in; the installer's half-done work is undone when it fails, history included."""
    prefix = installed_env(BROKEN, cuda="12.9")
    before = digest(prefix, history=True)
    (old_record,) = (prefix / "conda-meta").glob("cuda-version-*.json")
    seen: dict[str, object] = {}

    def install(step: Callable[[str], None]) -> None:
        seen["journal"] = snapshot.pending(prefix)
        seen["state"] = snapshot.list_snapshots(prefix)[-1].state
        seen["pinned"] = (prefix / "conda-meta" / "pinned").read_text()
        locked = pytest.raises(safety.ApplyError, match="locked by another condafix")
        with locked, lock_mod.prefix_lock(prefix, wait=0):
            pass
        # half an install: a touched package's file rewritten, its record gone, a new package linked
        record = json.loads(old_record.read_text())
        for rel in record["files"]:  # replaced, as installers do (the file may be a hard link into a cache)
            (prefix / rel).unlink()
            (prefix / rel).write_text("half-written\n")
        old_record.unlink()
        (prefix / "share" / "new-part.txt").write_text("new\n")
        new = {"name": "cuda-version", "version": "12.4", "build": "h0_3", "files": ["share/new-part.txt"]}
        (prefix / "conda-meta" / "cuda-version-12.4-h0_3.json").write_text(json.dumps(new))
        with open(prefix / "conda-meta" / "history", "a") as out:
            out.write("==> 2026-01-01 00:00:00 <==\n+local::cuda-version-12.4-h0_3\n")  # its own revision
        raise RuntimeError("the custom installer broke")

    custom = Installer(label="custom", install=install, writes_history=True, spec_matches=never_matches)
    with pytest.raises(safety.ApplyError, match="the change failed and was undone: the custom installer broke"):
        apply_mod.apply(hand_made_request(prefix), custom)
    assert seen["journal"] is not None and seen["state"] == "started"
    assert seen["pinned"] == "cuda-version 12.4.*\n"
    assert digest(prefix, history=True) == before
    assert snapshot.pending(prefix) is None and snapshot.list_snapshots(prefix)[-1].state == "restored"


def test_a_custom_installer_that_writes_no_history_gets_the_wrappers(
    installed_env: Callable[..., Path], isolated: None
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    history_before = (prefix / "conda-meta" / "history").read_text()
    calls: list[str] = []
    for writes in (True, False):
        nothing = Installer(
            label="nothing",
            install=lambda _s: calls.append("install"),
            writes_history=writes,
            spec_matches=never_matches,
        )
        applied = apply_mod.apply(hand_made_request(prefix), nothing, pin=False)
        assert applied.via == "nothing" and applied.changes == 1 and applied.pinned == ()
        history = (prefix / "conda-meta" / "history").read_text()
        if writes:  # the installer says it writes conda's history: condafix adds nothing
            assert history == history_before
    assert calls == ["install", "install"]
    added = history.removeprefix(history_before)
    assert added.startswith("==> ") and f"# cmd: condafix cuda -p {prefix} --apply --cuda 12.4\n" in added
    assert "# update specs: ['cuda-version=12.4']" in added


_KILLED_MID_INSTALL = """
import os, signal, sys
from pathlib import Path
from condafix.change import apply as apply_mod
from condafix.change.installer import Installer, InstallRequest, Move

prefix = Path(sys.argv[1])
version, build = sys.argv[2], sys.argv[3]

def install(step):
    (prefix / "share" / "new-part.txt").write_text("new\\n")
    (prefix / "conda-meta" / "cuda-version-12.4-h0_3.json").write_text(
        '{"name": "cuda-version", "version": "12.4", "build": "h0_3", "files": ["share/new-part.txt"]}'
    )
    os.kill(os.getpid(), signal.SIGKILL)

request = InstallRequest(
    prefix=prefix, cuda="12.4", channels=(), pins=("cuda-version=12.4",),
    moves=(Move(name="cuda-version", from_version=version, from_build=build, to_version="12.4", to_build="h0_3"),),
    command="condafix cuda --apply (killed)",
)
apply_mod.apply(request, Installer(label="doomed", install=install, writes_history=True, spec_matches=lambda *a: True))
"""


def test_a_custom_installer_killed_mid_install_leaves_a_journal_doctor_reports(
    installed_env: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = digest(prefix)
    move = cuda_version_move(prefix)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_INSTALL, str(prefix), str(move.from_version), str(move.from_build)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert snapshot.pending(prefix) is not None  # the journal outlived the process
    doctor = subprocess.run(
        [sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "interrupted condafix change" in doctor.stdout
    undone = subprocess.run(
        [sys.executable, "-m", "condafix", "rollback", "-p", str(prefix), "--yes"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert undone.returncode == 0, undone.stderr
    assert digest(prefix) == before and snapshot.pending(prefix) is None


def test_a_restore_that_needs_packages_uses_the_reinstaller_it_is_handed(
    installed_env: Callable[..., Path], isolated: None
) -> None:
    """Rollback gets its reinstaller from its caller: without one, a restore that needs a package changes nothing."""
    prefix = installed_env(BROKEN, cuda="12.9")
    backend = choice.open_backend("rattler", prefix=prefix, offline=False)
    plan = planner.plan(prefix=prefix, target=TargetCuda(cuda="12.4", source="--cuda 12.4"), backend=backend)
    request = planner.install_request(plan)
    apply_mod.apply(request, backend.installer(request))
    root = Path(snapshot.list_snapshots(prefix)[-1].path)
    meta = json.loads((root / "meta.json").read_text())
    meta["backed_up"].remove("cuda-version")  # as if its backup were lost: it must be reinstalled
    (root / "meta.json").write_text(json.dumps(meta))
    after = digest(prefix)
    with pytest.raises(safety.ApplyError, match="no installer was handed to the restore; nothing was changed"):
        rollback_mod.rollback(prefix, None, dry_run=False)
    assert digest(prefix) == after
    asked: list[tuple[str, ...]] = []
    real = choice.reinstaller()

    def unavailable(records_dir: Path, names: object) -> list[str]:
        asked.append(tuple(names))  # type: ignore[arg-type]
        return real.unavailable(records_dir, names)  # type: ignore[arg-type]

    counting = Reinstaller(label="counting", unavailable=unavailable, reinstall=real.reinstall)
    done = rollback_mod.rollback(prefix, None, dry_run=False, reinstaller=counting)
    assert asked == [("cuda-version",)] and done.missing == ("cuda-version",)
    versions = {p.name for p in (prefix / "conda-meta").glob("cuda-version-*.json")}
    assert versions == {"cuda-version-12.9-h0_3.json"}
    assert (prefix / "share/condafix-fixture/cuda-version.txt").read_text() == "cuda-version 12.9\n"


def test_a_ctrl_c_during_the_install_is_told_through_the_lent_notify_and_undone(
    installed_env: Callable[..., Path], isolated: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing below cli/ prints: the change path tells the user through the ``notify`` its caller lends."""
    import signal

    prefix = installed_env(BROKEN, cuda="12.9")
    before = digest(prefix, history=True)
    told: list[str] = []

    def install(_step: Callable[[str], None]) -> None:
        (prefix / "share" / "new-part.txt").write_text("new\n")
        (prefix / "conda-meta" / "cuda-version-12.4-h0_3.json").write_text(
            json.dumps({"name": "cuda-version", "version": "12.4", "build": "h0_3", "files": ["share/new-part.txt"]})
        )
        os.kill(os.getpid(), signal.SIGINT)  # noted, not raised: the install step finishes first

    ctrl_c = Installer(label="ctrl-c", install=install, writes_history=True, spec_matches=never_matches)
    with pytest.raises(safety.ApplyError, match="interrupted: the environment was restored"):
        apply_mod.apply(hand_made_request(prefix), ctrl_c, notify=told.append)
    assert told == ["interrupted: stopping the downloads, then undoing the change"]
    assert capsys.readouterr().err == ""  # nothing of its own on stderr
    assert digest(prefix, history=True) == before


@pytest.mark.parametrize(
    ("via", "variable", "other"),
    [
        ("micromamba", "MAMBA_EXE", "CONDA_EXE"),
        ("mamba", "MAMBA_EXE", "CONDA_EXE"),
        ("conda", "CONDA_EXE", "MAMBA_EXE"),
    ],
)
def test_via_tool_not_found_names_the_variable_it_checked(
    via: str, variable: str, other: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, every --via said `(nor in $CONDA_EXE/$MAMBA_EXE)`, though micromamba's lookup reads only $MAMBA_EXE."""
    from condafix.backends.tool import find_tool
    from condafix.errors import CondafixError

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    with pytest.raises(CondafixError) as unset:
        find_tool(via)
    assert f"${variable}" in unset.value.summary and f"${other}" not in unset.value.summary
    monkeypatch.setenv(variable, str(tmp_path / "gone" / via))
    with pytest.raises(CondafixError) as stale:
        find_tool(via)
    assert str(tmp_path / "gone" / via) in stale.value.summary and stale.value.exit_code == 2
    tool = tmp_path / "bin" / via
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv(variable, str(tool))
    assert find_tool(via) == str(tool)
