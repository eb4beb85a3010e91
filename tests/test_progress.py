"""Progress: the reporter model, rattler's events on a slow local HTTP channel, the plain lines of
CI logs, stall reports, --quiet/--json, and the live view drawn into a pseudo-terminal."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix import progress
from condafix.progress import Reporter
from condafix.progress_view import PhaseSummary, Stall

from .slow_http import Pace, slow_server

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]
# what moving that env from CUDA 12.9 to 12.4 downloads (test_apply checks the same change)
MOVED = ["cuda-cudart", "cuda-nvrtc", "cuda-nvvm-impl", "cuda-version", "libnvjitlink"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the model, with a fake clock


def test_downloads_totals_rate_eta_and_summary() -> None:
    clock = Clock()
    events: list[object] = []
    rep = Reporter(clock=clock, listener=events.append, stall_after=10)
    rep.begin("install", "installing")
    rep.operations(4)
    rep.download_start("a", url="http://h/ch/linux-64/a.conda", total=1000)
    rep.download_start("b", url="http://h/ch/linux-64/b.conda", total=3000)
    clock.now += 1
    rep.download_progress("a", 500, 1000)
    rep.download_progress("b", 500, 3000)
    clock.now += 1
    rep.download_progress("a", 1000, 1000)
    rep.download_done("a")
    rep.download_progress("b", 1000, 3000)
    view = rep.view()
    assert (view.done_bytes, view.total_bytes) == (2000, 4000)
    assert view.rate == pytest.approx(1000.0)  # 1000 bytes in the last second
    assert view.eta == pytest.approx(2.0)  # 2000 bytes left at 1000 B/s
    assert [t.label for t in view.transfers] == ["a", "b"] and view.transfers[0].finished
    clock.now += 2
    rep.download_progress("b", 3000, 3000)
    rep.download_done("b")
    rep.unlinked("x")
    rep.linked("a")
    rep.linked("b")
    summary = rep.end()
    assert summary is not None and events == [summary]
    assert summary.lines() == ["downloaded 2 packages, 3.9 KB in 4.0 s", "linked 2 packages, unlinked 1 in 4.0 s"]


def test_stall_names_the_silent_url_each_period_then_resumes() -> None:
    clock = Clock()
    events: list[object] = []
    rep = Reporter(clock=clock, listener=events.append, stall_after=5)
    rep.begin("install", "installing")
    rep.download_start("big", url="https://user:pw@mirror/ch/linux-64/big.conda", total=10_000)
    rep.download_start("small", url="https://mirror/ch/noarch/small.conda", total=10)
    rep.download_progress("small", 10)
    rep.download_done("small")
    clock.now += 4.9
    assert rep.tick() is None and events == []
    clock.now += 0.2
    stall = rep.tick()
    assert stall == Stall(url="https://user:pw@mirror/ch/linux-64/big.conda", seconds=pytest.approx(5.1))
    assert events == [stall]
    clock.now += 1
    rep.tick()
    assert len(events) == 1  # once per period, not per tick
    clock.now += 4
    rep.tick()
    assert len(events) == 2 and isinstance(events[1], Stall) and events[1].seconds == pytest.approx(10.1)
    rep.download_progress("big", 100)
    assert events[2] == ("resumed", Stall(url="https://user:pw@mirror/ch/linux-64/big.conda", seconds=10))
    assert rep.stall() is None


def test_stall_setting_from_the_environment() -> None:
    assert progress.stall_seconds({"CONDAFIX_STALL_SECONDS": "2.5"}) == 2.5
    assert progress.stall_seconds({"CONDAFIX_STALL_SECONDS": "soon"}) == progress.STALL_SECONDS
    assert progress.stall_seconds({"CONDAFIX_STALL_SECONDS": "0"}) == progress.STALL_SECONDS
    assert progress.stall_seconds({}) == progress.STALL_SECONDS


def test_repodata_requests_grouped_per_subdir_without_credentials() -> None:
    clock = Clock()
    rep = Reporter(clock=clock, stall_after=10)
    rep.begin("repodata", "repodata for cuda-version from conda-forge")
    rep.request("https://u:p@repo.example/conda-forge/linux-64/repodata_shards.msgpack.zst")
    rep.request("https://repo.example/conda-forge/linux-64/shards/abc.msgpack.zst")
    rep.request("https://repo.example/conda-forge/linux-64/shards/def.msgpack.zst")
    rep.request("https://repo.example/conda-forge/noarch/repodata.json")
    rep.source_bytes(2048)
    rep.source_done("https://repo.example/conda-forge/noarch/repodata.json", 2048)
    view = rep.view()
    assert [(t.label, t.requests, t.finished) for t in view.transfers] == [
        ("conda-forge/linux-64", 3, False),
        ("conda-forge/noarch", 1, True),
    ]
    assert all("u:p" not in t.key for t in view.transfers)
    clock.now += 1.5
    rep.sources_settled()
    summary = rep.end()
    assert summary is not None
    assert summary.lines() == [
        "fetched repodata for cuda-version from conda-forge: 2 subdirs, 4 requests, 2.0 KB in 1.5 s"
    ]


def test_phase_helpers_fall_back_to_a_plain_step() -> None:
    said: list[str] = []
    with progress.phase(said.append, "repodata", "fetching"):
        pass
    progress.begin(said.append, "solve", "solving")
    progress.end(said.append, "solved")
    assert said == ["fetching", "solving"]
    rep = Reporter(stall_after=10)
    with pytest.raises(RuntimeError), progress.phase(rep, "snapshot", "saving"):
        raise RuntimeError("disk full")
    assert rep.summaries[-1].ok is False and rep.summaries[-1].lines()[0].endswith("(failed)")


def test_plain_lines_are_redacted() -> None:
    from condafix.cli.render_progress import summary_lines

    stall = Stall(url="https://alice:Secr3t@repo.example/t/tok123/ch/linux-64/x.conda", seconds=12)
    lines = summary_lines(stall) + summary_lines(("resumed", stall))
    assert lines[0].startswith("waiting: no data for 12 s from https://***@repo.example/t/***/")
    assert "Secr3t" not in "".join(lines) and "tok123" not in "".join(lines)
    summary = PhaseSummary(kind="solve", label="solving", seconds=0.25, result="solved with cuda-version=12.4")
    assert summary_lines(summary) == ["solved with cuda-version=12.4 in 0.2 s"]


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_live_bars_only_on_a_terminal_outside_ci() -> None:
    from condafix.cli.render_progress import choose_mode

    tty, pipe = _Stream(True), _Stream(False)
    assert choose_mode(tty, enabled=True, env={"TERM": "xterm"}) == "live"
    assert choose_mode(tty, enabled=True, env={"TERM": "xterm", "CI": "true"}) == "plain"
    assert choose_mode(tty, enabled=True, env={"TERM": "dumb"}) == "plain"
    assert choose_mode(pipe, enabled=True, env={}) == "plain"
    assert choose_mode(tty, enabled=False, env={}) == "off"


def test_a_failed_phase_leaves_no_summary_line() -> None:
    from condafix.cli.render_progress import summary_lines

    failed = PhaseSummary(kind="repodata", label="repodata for cuda-version", seconds=1, ok=False, requests=3)
    assert summary_lines(failed) == []  # the error line says it


# ---------------------------------------------------------------- rattler on a slow channel


def _sizes(channel: Path, names: list[str], cuda: str) -> dict[str, int]:
    """The on-disk size of each package file the change downloads (independent of condafix)."""
    from .channel_factory import CTK

    out = {}
    for name in names:
        version = cuda if name == "cuda-version" else CTK[cuda]
        (path,) = channel.glob(f"*/{name}-{version}-*.tar.bz2")
        out[name] = path.stat().st_size
    return out


def test_reporter_receives_streamed_bytes_from_rattler(
    channel: Path, installed_env: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from condafix.backends.rattler import backend as backend_rb
    from condafix.backends.rattler import install as install_rb
    from condafix.backends.rattler import solve as solve_rb
    from condafix.plan.solver import SolveFailed

    prefix = installed_env(BROKEN, cuda="12.9")
    monkeypatch.setenv("CONDAFIX_PKGS_DIR", str(tmp_path / "pkgs"))
    monkeypatch.setenv("CONDAFIX_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    calls: list[tuple[str, int]] = []

    class Counting(Reporter):
        def download_progress(self, name: str, done: int, total: int | None = None) -> None:
            calls.append((name, done))
            super().download_progress(name, done, total)

    rep = Counting(stall_after=30)
    with slow_server(channel, Pace(chunk=128, delay=0.01)) as url, progress.active(rep):
        backend = backend_rb.RattlerBackend(prefix=prefix, offline=False)
        with rep.phase("repodata", "repodata"):
            backend.query([url], ["cuda-version"], platform="linux-64")
        try:
            solved = backend.solve(
                channels=[url],
                platform="linux-64",
                cuda="12.4",
                cuda_arch=None,
                pins=["cuda-version=12.4"],
                specs=[*BROKEN, "cuda-version=12.4"],
            )
        except SolveFailed as failed:  # pragma: no cover - the fixture channel solves
            pytest.fail(failed.message)
        install_rb.install(backend.natives(solved), prefix, solve_rb.read_prefix_records(prefix), BROKEN, rep)
    repodata, install = rep.summaries[0], rep.summaries[-1]
    assert repodata.kind == "repodata" and repodata.requests >= 2 and repodata.request_bytes > 0
    assert {s.split("/")[-1] for s in repodata.sources} == {"linux-64", "noarch"}
    sizes = _sizes(channel, MOVED, "12.4")
    assert install.kind == "install" and install.downloads == len(MOVED)
    assert install.download_bytes == sum(sizes.values())
    for name, size in sizes.items():
        seen = [done for who, done in calls if who == name]
        assert len(seen) >= size // 128 and seen == sorted(seen) and seen[-1] == size  # streamed, in order
    assert (install.linked, install.unlinked) == (len(MOVED), len(MOVED))


# ---------------------------------------------------------------- the CLI: plain lines, --json, --quiet


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k not in ("CI", "TERM", "COLUMNS")}
    env.update(
        NO_COLOR="1",
        CONDAFIX_PKGS_DIR=str(tmp_path / "pkgs"),
        CONDAFIX_CACHE_DIR=str(tmp_path / "cache"),
        CONDAFIX_SOLVER="rattler",
    )
    return env


def _apply(prefix: Path, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "condafix", *extra, "cuda", "-p", str(prefix), "--cuda", "12.4", "-c", url]


def _kb(nbytes: int) -> str:
    return f"{nbytes / 1024:.1f} KB"


def test_ci_log_gets_one_line_per_phase_with_the_right_totals(
    channel: Path, installed_env: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    with slow_server(channel, Pace(chunk=128, delay=0.01)) as url:
        done = subprocess.run(
            [*_apply(prefix, url), "--apply", "--yes"], env=cli_env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    total = sum(_sizes(channel, MOVED, "12.4").values())
    downloaded = [line for line in lines if line.startswith("downloaded ")]
    assert len(downloaded) == 1 and downloaded[0].startswith(f"downloaded 5 packages, {_kb(total)} in ")
    assert any(
        re.match(r"fetched repodata for cuda-version from http://127\.0\.0\.1:\d+: 2 subdirs, \d+ requests", x)
        for x in lines
    ), lines
    assert "solved with cuda-version=12.4 (1 of 5 candidates tried) in " in done.stderr
    assert re.search(r"^saved the snapshot: backed up \d+ files", done.stderr, re.M)
    assert re.search(r"^linked 5 packages, unlinked 5 in ", done.stderr, re.M)
    assert "\x1b[" not in done.stderr and "━" not in done.stderr  # no live bars in a log


def test_stall_is_reported_with_the_url_redacted(
    channel: Path, installed_env: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    cli_env["CONDAFIX_STALL_SECONDS"] = "1"
    with slow_server(channel, Pace(chunk=64, delay=0.01, pause_on="cuda-cudart-12.4", pause_s=2.6)) as url:
        secret_url = url.replace("http://", "http://alice:S3cretPw@")
        done = subprocess.run(
            [*_apply(prefix, secret_url), "--apply", "--yes", "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    waited = url.replace("http://", "http://***@") + "/linux-64/cuda-cudart-12.4.131-h5888daf_0.tar.bz2"
    waits = re.findall(r"^waiting: no data for ([\d.]+) s from (\S+)$", done.stderr, re.M)
    assert waits and all(where == waited and float(seconds) >= 1 for seconds, where in waits), done.stderr
    assert f"resumed: data flows again from {waited}" in done.stderr
    assert "S3cretPw" not in done.stderr + done.stdout
    doc = json.loads(done.stdout)  # --json: stdout is the one document, progress went to stderr
    assert doc["result"]["applied"]["via"] == "rattler"


def test_quiet_prints_only_the_result(
    channel: Path, installed_env: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    with slow_server(channel, Pace(chunk=4096, delay=0)) as url:
        done = subprocess.run(
            [*_apply(prefix, url, "--quiet"), "--apply", "--yes"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "applied 5 changes with rattler" in done.stdout


# ---------------------------------------------------------------- the live view in a pseudo-terminal


def _run_in_pty(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(argv[0], argv, env)
    out = b""
    deadline = time.monotonic() + timeout
    signals = [signal.SIGABRT, signal.SIGKILL]  # past the deadline: thread dumps (faulthandler), then kill
    while True:
        if time.monotonic() > deadline and signals:
            os.kill(pid, signals.pop(0))
            deadline = time.monotonic() + 5
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def test_live_view_on_a_terminal(channel: Path, installed_env: Callable[..., Path], cli_env: dict[str, str]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    cli_env.update(TERM="xterm-256color", COLUMNS="120", LINES="40", PYTHONFAULTHANDLER="1")
    with slow_server(channel, Pace(chunk=64, delay=0.1)) as url:  # about 1 s of downloads: several frames
        code, screen = _run_in_pty([*_apply(prefix, url), "--apply", "--yes"], cli_env)
    assert code == 0, screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    frames = [line for line in plain.split("\r") if "━" in line]
    assert frames, plain  # progress bars were drawn
    for name in MOVED:
        assert re.search(rf"{name}\s+━+.*\d+ B / \d+ B", plain), name  # a bar per package, with its size
    assert re.search(r"total \d/5 packages\s+━+.*KB / [\d.]+ KB.*ETA", plain)
    assert re.search(r"linked \d+, unlinked \d+ \(5 operations\)", plain)
    assert re.search(r"✓ downloaded 5 packages, [\d.]+ KB in ", plain)
    assert "✓ solved with cuda-version=12.4" in plain and "✓ saved the snapshot" in plain
    assert "\x1b[?25l" in screen and "\x1b[2K" in screen  # a live region that redraws in place
    assert "applied 5 changes with rattler" in plain
