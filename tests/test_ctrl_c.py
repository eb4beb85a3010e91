"""Ctrl-C during `--apply` stops the downloads at once (they are not waited for), then undoes; a second
Ctrl-C is told what state the env is in (real rattler, a slow local HTTP channel)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from condafix.change import snapshot

from .slow_http import Pace, slow_server
from .test_apply import BROKEN, state_digest


def _apply(prefix: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4", "-c", url, "--apply", "-y"]


def _interrupt_during_downloads(
    prefix: Path, url: str, env: dict[str, str], signals: int
) -> subprocess.CompletedProcess[str]:
    child = subprocess.Popen(_apply(prefix, url), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = prefix / "conda-meta" / "condafix" / "journal.json"
    while not journal.exists():  # the snapshot is saved: the install (its downloads) starts now
        assert child.poll() is None, child.communicate()
        time.sleep(0.02)
    time.sleep(0.3)
    for _ in range(signals):
        child.send_signal(signal.SIGINT)
        time.sleep(0.05)
    out, err = child.communicate(timeout=120)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def test_ctrl_c_cancels_the_downloads_and_undoes(
    installed_env: Callable[..., Path], cli_env: dict[str, str], channel: Path, tmp_path: Path
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    env = {**cli_env, "CONDAFIX_PKGS_DIR": str(tmp_path / "cold-pkgs")}
    pace = Pace(chunk=16, delay=0.5)  # each ~550-byte package takes ~17 s to send
    with slow_server(channel, pace) as url:
        done = _interrupt_during_downloads(prefix, url, env, signals=1)
    assert pace.whole == [], "the downloads were waited for instead of cancelled"
    assert done.returncode == 4, done.stderr
    assert "interrupted: stopping the downloads" in done.stderr
    assert "the environment was restored" in done.stderr
    assert state_digest(prefix) == before and snapshot.pending(prefix) is None


def test_a_second_ctrl_c_says_what_state_the_env_is_in(
    installed_env: Callable[..., Path], cli_env: dict[str, str], channel: Path, tmp_path: Path
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    env = {**cli_env, "CONDAFIX_PKGS_DIR": str(tmp_path / "cold-pkgs")}
    with slow_server(channel, Pace(chunk=16, delay=0.5)) as url:
        done = _interrupt_during_downloads(prefix, url, env, signals=2)
    again = [line for line in done.stderr.splitlines() if line.startswith("interrupted again")]
    assert again and ("snapshot" in again[0] or "nothing in the env" in again[0]), done.stderr
    assert state_digest(prefix) == before and snapshot.pending(prefix) is None
