"""`condafix cuda --apply` and `condafix rollback` on real prefixes installed from the fixture channel."""

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

from condafix.change import lock as lock_mod
from condafix.change import safety, snapshot

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]
ROUNDS = int(os.environ.get("CONDAFIX_TEST_ROUNDS", "0"))  # the long run (=20): at least that many kills per kind


def state_digest(prefix: Path) -> dict[str, str]:
    """sha256 of every file, without condafix's own state and the (appended) history."""
    import hashlib

    out = {}
    for path in sorted(prefix.rglob("*")):
        rel = path.relative_to(prefix).as_posix()
        if rel.startswith("conda-meta/condafix") or rel == "conda-meta/history" or not path.is_file():
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def apply_cmd(prefix: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4", "--apply", *extra]


def run(argv: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def rollback_cmd(prefix: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "condafix", "rollback", "-p", str(prefix), *extra]


def test_apply_then_rollback_byte_for_byte(
    installed_env: Callable[..., Path], cli_env: dict[str, str], channel: Path
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    records_before = {p.name: p.read_bytes() for p in (prefix / "conda-meta").glob("*.json")}
    done = run(apply_cmd(prefix, "--yes", "--json"), cli_env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["result"]
    assert doc["applied"]["via"] == "rattler" and doc["applied"]["after"]["status"] == "ok"
    names = sorted(p.name for p in (prefix / "conda-meta").glob("cuda-*.json"))
    assert names == [
        "cuda-cudart-12.4.131-h5888daf_0.json",
        "cuda-nvrtc-12.4.131-h5888daf_0.json",
        "cuda-nvvm-impl-12.4.131-h5888daf_0.json",
        "cuda-version-12.4-h0_3.json",
    ]
    assert (prefix / "share/condafix-fixture/cuda-version.txt").read_text() == "cuda-version 12.4\n"
    history = (prefix / "conda-meta" / "history").read_text()
    chan = f"{channel.as_uri()}/noarch::"  # conda's channel/subdir::name-version-build
    assert f"-{chan}cuda-version-12.9-h0_3" in history and f"+{chan}cuda-version-12.4-h0_3" in history
    assert (prefix / "conda-meta" / "pinned").read_text() == "cuda-version 12.4.*\n"
    snap = Path(snapshot.list_snapshots(prefix)[-1].path)
    assert "@EXPLICIT" in (snap / "explicit.txt").read_text() and "#sha256:" in (snap / "explicit.txt").read_text()
    assert run(rollback_cmd(prefix, "--dry-run"), cli_env).returncode == 0
    assert state_digest(prefix) != before  # --dry-run changed nothing
    undone = run(rollback_cmd(prefix, "--yes"), cli_env)
    assert undone.returncode == 0, undone.stderr
    assert state_digest(prefix) == before and not (prefix / "conda-meta" / "pinned").exists()
    assert {p.name: p.read_bytes() for p in (prefix / "conda-meta").glob("*.json")} == records_before


def test_apply_refuses_without_terminal_or_yes(installed_env: Callable[..., Path], cli_env: dict[str, str]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    done = run(apply_cmd(prefix), cli_env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "without --yes" in done.stderr and state_digest(prefix) == before


def drop_backup(prefix: Path, name: str) -> None:
    snap = Path(snapshot.list_snapshots(prefix)[-1].path)
    meta = json.loads((snap / "meta.json").read_text())
    meta["backed_up"].remove(name)
    (snap / "meta.json").write_text(json.dumps(meta))


def test_rollback_without_backup_reinstalls_from_the_channel(
    channel: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    from .envs import install_env

    copy = tmp_path / "channel-copy"
    shutil.copytree(channel, copy)
    prefix = install_env(copy, tmp_path / "envs" / "gpu", BROKEN, cuda="12.9", cache=tmp_path / "install-cache")
    before = state_digest(prefix)
    env = {**cli_env, "CONDAFIX_PKGS_DIR": str(tmp_path / "fresh-cache")}  # nothing of 12.9 cached here
    assert run(apply_cmd(prefix, "--yes"), env).returncode == 0
    drop_backup(prefix, "libnvjitlink")
    done = run(rollback_cmd(prefix, "--yes"), env)
    assert done.returncode == 0, done.stderr
    assert state_digest(prefix) == before


def test_rollback_that_cannot_restore_changes_nothing(channel: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    from .envs import install_env

    copy = tmp_path / "channel-copy"
    shutil.copytree(channel, copy)
    prefix = install_env(copy, tmp_path / "envs" / "gpu", BROKEN, cuda="12.9", cache=tmp_path / "install-cache")
    env = {**cli_env, "CONDAFIX_PKGS_DIR": str(tmp_path / "fresh-cache")}
    assert run(apply_cmd(prefix, "--yes"), env).returncode == 0
    after = state_digest(prefix)
    drop_backup(prefix, "libnvjitlink")
    (copy / "linux-64" / "libnvjitlink-12.9.86-h5888daf_0.tar.bz2").unlink()  # the build left the channel
    done = run(rollback_cmd(prefix, "--yes"), env)
    assert done.returncode == 4 and "cannot restore libnvjitlink 12.9.86 h5888daf_0" in done.stderr
    assert "left the channel" in done.stderr and state_digest(prefix) == after


def test_lock_held_by_a_live_process(installed_env: Callable[..., Path], cli_env: dict[str, str]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    with lock_mod.prefix_lock(prefix):
        done = run(apply_cmd(prefix, "--yes"), {**cli_env, "CONDAFIX_LOCK_WAIT": "0.5"})
    assert done.returncode == 4 and f"locked by another condafix (pid {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr and state_digest(prefix) == before


def test_stale_lock_is_taken_over(installed_env: Callable[..., Path], cli_env: dict[str, str]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    lock = safety.state_dir(prefix) / "lock"
    lock.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    assert run(apply_cmd(prefix, "--yes"), cli_env).returncode == 0
    assert not lock.exists()


def test_two_concurrent_applies(installed_env: Callable[..., Path], cli_env: dict[str, str]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    env = {**cli_env, "CONDAFIX_LOCK_WAIT": "0"}
    procs = [
        subprocess.Popen(apply_cmd(prefix, "--yes"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0, results
    # the second either found the lock held, or got it afterwards and saw its plan no longer fits the env
    refusals = ("locked by another condafix", "changed since this plan was made")
    assert codes[1] == 0 or (codes[1] == 4 and any(r in err for _, err in results for r in refusals)), results
    assert sorted(p.name for p in (prefix / "conda-meta").glob("cuda-version-*.json")) == [
        "cuda-version-12.4-h0_3.json"
    ]
    assert snapshot.pending(prefix) is None


def test_read_only_prefix(installed_env: Callable[..., Path], cli_env: dict[str, str]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    if subprocess.run(["mount", "--bind", str(prefix), str(prefix)], capture_output=True, check=False).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(prefix)], check=True, capture_output=True)
        done = run(apply_cmd(prefix, "--yes"), cli_env)
    finally:
        subprocess.run(["umount", str(prefix)], check=False, capture_output=True)
    assert done.returncode == 4 and "read-only" in done.stderr and "Traceback" not in done.stderr
    assert state_digest(prefix) == before


def test_via_conda_goes_through_the_runner(
    installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    record = tmp_path / "conda-call.json"
    stub = tmp_path / "bin" / "conda"
    stub.parent.mkdir()
    stub.write_text(
        f"#!{sys.executable}\nimport json, os, sys\njson.dump({{'argv': sys.argv[1:], "
        f"'proxy': os.environ.get('http_proxy')}}, open({str(record)!r}, 'w'))\nsys.exit(3)\n"
    )
    stub.chmod(0o755)
    env = {
        **cli_env,
        "PATH": f"{stub.parent}{os.pathsep}{cli_env['PATH']}",
        "CONDA_EXE": str(stub),
        "http_proxy": "http://127.0.0.1:9",
    }
    done = run(apply_cmd(prefix, "--yes", "--via", "conda"), env)
    call = json.loads(record.read_text())
    assert call["argv"][:4] == ["install", "-p", str(prefix), "-y"] and call["argv"][-1] == "cuda-version=12.4"
    assert call["proxy"] is None  # the dead proxy was dropped from the child's environment
    assert done.returncode == 4 and "conda install failed" in done.stderr and "undone" in done.stderr
    assert state_digest(prefix) == before


def test_kill_trials(installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path) -> None:
    """Kill `--apply` at many points; the prefix is old, new, or recoverable by `rollback` to old."""
    template = installed_env(BROKEN, cuda="12.9")
    old = state_digest(template)
    probe = tmp_path / "probe"
    shutil.copytree(template, probe, symlinks=True)
    started = time.monotonic()
    assert run(apply_cmd(probe, "--yes"), cli_env).returncode == 0
    duration = time.monotonic() - started
    new = state_digest(probe)
    outcomes: Counter[str] = Counter()
    trials = 0
    steps = max(12, ROUNDS)
    history = (template / "conda-meta" / "history").read_bytes()
    for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
        for step in range(steps):
            trials += 1
            prefix = tmp_path / f"trial-{sig.name}-{step}"
            shutil.copytree(template, prefix, symlinks=True)
            child = subprocess.Popen(
                apply_cmd(prefix, "--yes"), env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            time.sleep(duration * (0.4 + 0.7 * step / steps))  # start-up takes the first half
            child.send_signal(sig)
            child.wait(timeout=60)
            assert (prefix / "conda-meta" / "history").read_bytes().startswith(history), (sig, step)  # never cut
            now = state_digest(prefix)
            if now == old and snapshot.pending(prefix) is None:
                outcomes["old"] += 1
            elif now == new and snapshot.pending(prefix) is None:
                outcomes["new"] += 1
            else:
                assert snapshot.pending(prefix) is not None, (sig, step)
                doctor = run([sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4"], cli_env)
                assert "interrupted condafix change" in doctor.stdout
                assert run(rollback_cmd(prefix, "--yes"), cli_env).returncode == 0
                assert state_digest(prefix) == old
                assert (prefix / "conda-meta" / "history").read_bytes().startswith(history), (sig, step)
                outcomes["recovered by rollback"] += 1
            assert not (safety.state_dir(prefix) / "lock").exists() or sig == signal.SIGKILL
    print(f"\nkill trials: {trials}, outcomes: {dict(outcomes)}, apply took {duration:.2f} s")
    assert sum(outcomes.values()) == trials


@pytest.mark.parametrize("tool", ["mamba", "micromamba"])
def test_via_mamba_runs_every_channel_and_pin_with_override_channels(
    installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path, channel: Path, tool: str
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    record = tmp_path / "call.json"
    stub = tmp_path / "bin" / tool
    stub.parent.mkdir()
    stub.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n")
    stub.chmod(0o755)
    env = {**cli_env, "PATH": f"{stub.parent}{os.pathsep}{cli_env['PATH']}", "MAMBA_EXE": str(stub)}
    extra = tmp_path / "extra-channel"
    shutil.copytree(channel, extra)
    done = run(apply_cmd(prefix, "--yes", "--via", tool, "-c", channel.as_uri(), "-c", extra.as_uri()), env)
    argv = json.loads(record.read_text())
    assert argv == ["install", "-p", str(prefix), "-y", "--override-channels", "-c", channel.as_uri(),
                    "-c", extra.as_uri(), "cuda-version=12.4"]  # fmt: skip
    # the stub changed nothing: condafix's snapshot says applied, the pin is there, no history of its own
    assert done.returncode == 0, done.stderr
    assert (prefix / "conda-meta" / "pinned").read_text() == "cuda-version 12.4.*\n"
    assert "condafix cuda" not in (prefix / "conda-meta" / "history").read_text()
