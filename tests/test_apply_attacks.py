"""Apply and rollback must never hurt (issue 11): each test is an attack that once succeeded.

Paths that leave the prefix, symlinked state folders, tampered snapshots, files condafix did not
create, kills during rollback, lock races, credentials on disk, a full disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.change import safety, snapshot

from .test_apply import BROKEN, ROUNDS, apply_cmd, rollback_cmd, run, state_digest


@pytest.fixture
def env12(installed_env: Callable[..., Path]) -> Path:
    return installed_env(BROKEN, cuda="12.9")


def _record(prefix: Path, name: str) -> Path:
    return next(p for p in (prefix / "conda-meta").glob(f"{name}-[0-9]*.json"))


def _add_path(record_path: Path, rel: str) -> None:
    record = json.loads(record_path.read_text())
    record["files"] = [*record.get("files", []), rel]
    record["paths_data"]["paths"].append({"_path": rel, "path_type": "hardlink", "size_in_bytes": 1})
    record_path.write_text(json.dumps(record))


def _snapshot(prefix: Path) -> Path:
    return Path(snapshot.list_snapshots(prefix)[-1].path)


@pytest.mark.parametrize("rel", ["../outside/victim.txt", "/ABS/victim.txt"])
def test_an_installed_record_pointing_outside_blocks_apply(
    env12: Path, cli_env: dict[str, str], tmp_path: Path, rel: str
) -> None:
    victim = tmp_path / "envs" / "outside" / "victim.txt" if rel.startswith("..") else tmp_path / "abs" / "victim.txt"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("mine\n")
    _add_path(_record(env12, "cuda-nvrtc"), rel.replace("/ABS", str(victim.parent.parent / "abs")))
    before = state_digest(env12)
    done = run(apply_cmd(env12, "--yes"), cli_env)
    assert done.returncode == 2 and "outside" in done.stderr and "nothing was changed" in done.stderr, done.stderr
    assert victim.read_text() == "mine\n" and state_digest(env12) == before


def test_a_snapshot_record_pointing_outside_blocks_rollback(
    env12: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert run(apply_cmd(env12, "--yes"), cli_env).returncode == 0
    snap = _snapshot(env12)
    _add_path(_record(snap, "cuda-nvrtc"), "../../evil.sh")
    after = state_digest(env12)
    done = run(rollback_cmd(env12, "--yes"), cli_env)
    assert done.returncode == 2 and "outside" in done.stderr and "Traceback" not in done.stderr
    assert not (env12.parent / "evil.sh").exists() and not (env12.parent.parent / "evil.sh").exists()
    assert state_digest(env12) == after


def test_symlinked_condafix_folder_is_refused(env12: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (env12 / "conda-meta" / "condafix").symlink_to(elsewhere)
    before = state_digest(env12)
    done = run(apply_cmd(env12, "--yes"), cli_env)
    assert done.returncode == 2 and "is a symlink" in done.stderr
    assert list(elsewhere.iterdir()) == [] and state_digest(env12) == before
    assert run(rollback_cmd(env12, "--yes"), cli_env).returncode == 2


@pytest.mark.parametrize("damage", ["garbage", "backed_up", "record"])
def test_tampered_snapshot_is_a_clear_error(env12: Path, cli_env: dict[str, str], damage: str) -> None:
    assert run(apply_cmd(env12, "--yes"), cli_env).returncode == 0
    snap = _snapshot(env12)
    if damage == "garbage":
        (snap / "meta.json").write_text("{not json")
    elif damage == "backed_up":
        meta = json.loads((snap / "meta.json").read_text())
        meta["backed_up"] = {"x": 1}
        (snap / "meta.json").write_text(json.dumps(meta))
    else:
        _record(snap, "cuda-nvrtc").write_text('{"name": 3}')
    after = state_digest(env12)
    done = run(rollback_cmd(env12, "--yes"), cli_env)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert ("damaged" in done.stderr or "not a package record" in done.stderr) and state_digest(env12) == after


def _fake_interrupted(prefix: Path) -> None:
    """The state a SIGKILL mid-apply leaves: journal of a dead process, snapshot still 'started'."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    snap = _snapshot(prefix)
    meta = json.loads((snap / "meta.json").read_text())
    meta["state"] = "started"
    (snap / "meta.json").write_text(json.dumps(meta))
    journal = {"snapshot": snap.name, "op": "apply", "pid": dead.pid, "started": time.time()}
    (safety.state_dir(prefix) / "journal.json").write_text(json.dumps(journal))


def test_rollback_of_an_interrupted_change_keeps_what_the_user_added(env12: Path, cli_env: dict[str, str]) -> None:
    old = state_digest(env12)
    assert run(apply_cmd(env12, "--yes"), cli_env).returncode == 0
    _fake_interrupted(env12)
    mine = {
        "work/analysis.ipynb": "{}",
        "pkgs/some-1.0-0.tar.bz2": "x",
        "envs/nested/conda-meta/history": "",
        "lib/python3.12/site-packages/mymod.py": "print(1)\n",
    }
    for rel, text in mine.items():
        (env12 / rel).parent.mkdir(parents=True, exist_ok=True)
        (env12 / rel).write_text(text)
    (_snapshot(env12) / "manifest.txt").write_text("")  # an emptied manifest must not mean "delete everything"
    done = run(rollback_cmd(env12, "--yes"), cli_env)
    assert done.returncode == 0, done.stderr
    for rel, text in mine.items():
        assert (env12 / rel).read_text() == text
    assert {k: v for k, v in state_digest(env12).items() if k not in mine} == old
    assert snapshot.pending(env12) is None


def test_kill_trials_during_rollback(env12: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL a rollback at many points: the env is new, old, or doctor reports it and a second rollback ends old."""
    old = state_digest(env12)
    assert run(apply_cmd(env12, "--yes"), cli_env).returncode == 0
    new = state_digest(env12)
    probe = tmp_path / "probe"
    shutil.copytree(env12, probe, symlinks=True)
    started = time.monotonic()
    assert run(rollback_cmd(probe, "--yes"), cli_env).returncode == 0
    duration = time.monotonic() - started
    outcomes: Counter[str] = Counter()
    steps = max(14, ROUNDS)
    history = (env12 / "conda-meta" / "history").read_bytes()  # with condafix's revision: a rollback appends
    for step in range(steps):
        prefix = tmp_path / f"trial-{step}"
        shutil.copytree(env12, prefix, symlinks=True)
        child = subprocess.Popen(
            rollback_cmd(prefix, "--yes"), env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(duration * (0.6 + 0.5 * step / steps))  # start-up is most of it: aim at the restore
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert (prefix / "conda-meta" / "history").read_bytes().startswith(history), step  # never cut
        now = state_digest(prefix)
        if snapshot.pending(prefix) is None and now in (old, new):
            outcomes["old" if now == old else "new"] += 1
            continue
        assert snapshot.pending(prefix) is not None, step  # half-restored is never silent
        doctor = run([sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4"], cli_env)
        assert "interrupted condafix change" in doctor.stdout
        again = run(rollback_cmd(prefix, "--yes"), cli_env)
        assert again.returncode == 0, again.stderr
        assert state_digest(prefix) == old and snapshot.pending(prefix) is None
        outcomes["completed by a second rollback"] += 1
    print(f"\nrollback kill trials: {steps}, outcomes: {dict(outcomes)}, rollback took {duration:.2f} s")
    assert sum(outcomes.values()) == steps


_HOLDER = """
import os, sys, time
from pathlib import Path
from condafix.change import lock as lock_mod, safety, snapshot
prefix, marker = Path(sys.argv[1]), Path(sys.argv[2])
with lock_mod.prefix_lock(prefix, wait=60):
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print("two holders"); sys.exit(1)
    time.sleep(0.05)
    os.close(fd); os.unlink(marker)
"""


def test_eight_processes_never_hold_the_lock_together(env12: Path, tmp_path: Path) -> None:
    lock = safety.state_dir(env12) / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # what a holder leaves visible right after creating the file: not a stale lock
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(env12), str(tmp_path / "held")], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=120), p.stdout.read() if p.stdout else "") for p in procs]
    assert all(code == 0 for code, _ in results), results


def test_an_empty_lock_file_held_by_a_live_process_is_not_taken(env12: Path, cli_env: dict[str, str]) -> None:
    import fcntl

    lock = safety.state_dir(env12) / "lock"
    lock.parent.mkdir(parents=True)
    before = state_digest(env12)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # held, pid not written yet
        done = run(apply_cmd(env12, "--yes"), {**cli_env, "CONDAFIX_LOCK_WAIT": "0.3"})
    assert done.returncode == 4 and "locked by another condafix" in done.stderr
    assert state_digest(env12) == before


def test_no_credentials_in_any_file_condafix_writes(env12: Path, cli_env: dict[str, str], http_channel: str) -> None:
    secret_url = http_channel.replace("http://", "http://alice:s3cr3t@")
    for path in (env12 / "conda-meta").glob("*.json"):  # records an installer wrote from a token channel
        record = json.loads(path.read_text())
        record["url"] = record["url"].replace("file://", "https://bob:hunter2@example.invalid/t/tk-991/x")
        record["channel"] = "https://bob:hunter2@example.invalid/t/tk-991/x/linux-64"
        path.write_text(json.dumps(record))
    done = run(apply_cmd(env12, "--yes", "-c", secret_url), cli_env)
    assert done.returncode == 0, done.stderr
    snap = _snapshot(env12)
    written = [*snap.rglob("*"), env12 / "conda-meta" / "history", env12 / "conda-meta" / "pinned"]
    written += [p for p in (env12 / "conda-meta").glob("*.json") if "12.4" in p.name]  # installed by condafix
    for path in written:
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in ("s3cr3t", "hunter2", "tk-991", "alice:", "bob:"):
                assert secret not in text, (path, secret)
    assert "@EXPLICIT" in (snap / "explicit.txt").read_text()


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_ends_in_a_documented_code_and_a_restorable_env(
    env12: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    outcomes: Counter[str] = Counter()
    try:
        old = state_digest(env12)
        for free_kb in (0, 8, 24, 64, 160, 400):
            prefix = disk / "env"
            shutil.copytree(env12, prefix, symlinks=True)
            filler = disk / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "status=none"], check=False)
            stat = os.statvfs(disk)
            free = stat.f_bavail * stat.f_frsize
            with open(filler, "r+b") as out:  # give back free_kb
                out.truncate(max(0, filler.stat().st_size - free_kb * 1024 + free))
            done = run(apply_cmd(prefix, "--yes"), cli_env)
            assert done.returncode in (0, 4), (free_kb, done.returncode, done.stderr)
            assert "Traceback" not in done.stderr and "internal error" not in done.stderr
            filler.unlink()
            if done.returncode == 4:
                if snapshot.pending(prefix) is not None:
                    assert run(rollback_cmd(prefix, "--yes"), cli_env).returncode == 0
                    outcomes["restored by rollback"] += 1
                else:
                    outcomes["unchanged"] += 1
                assert state_digest(prefix) == old, free_kb
            else:
                outcomes["applied"] += 1
            shutil.rmtree(prefix)
    finally:
        subprocess.run(["umount", str(disk)], check=False, capture_output=True)
    print(f"\nfull-disk trials: {dict(outcomes)}")
    assert outcomes["unchanged"] + outcomes["restored by rollback"] >= 1
