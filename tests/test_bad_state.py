"""Damaged state and hostile paths (issue 22 item 7): one clear line, exit 2/3, nothing changed; a prefix
path holding a newline never writes a revision of its own into conda's history."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.env import condameta

from .test_apply import BROKEN, apply_cmd, rollback_cmd, run, state_digest

DEEP = "[" * 200_000 + "]" * 200_000


def _cli(prefix: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "condafix", *args[:1], "-p", str(prefix), *args[1:]], env)


def _one_clear_line(done: subprocess.CompletedProcess[str], codes: tuple[int, ...]) -> None:
    assert done.returncode in codes, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: "), done.stderr


@pytest.fixture
def applied(installed_env: Callable[..., Path], cli_env: dict[str, str]) -> Path:
    prefix = installed_env(BROKEN, cuda="12.9")
    assert run(apply_cmd(prefix, "--yes"), cli_env).returncode == 0
    return prefix


def _snapshot_dir(prefix: Path) -> Path:
    return sorted((prefix / "conda-meta" / "condafix" / "snapshots").iterdir())[-1]


@pytest.mark.parametrize("where", ["journal", "meta", "record"])
def test_deeply_nested_json_is_one_clear_line(applied: Path, cli_env: dict[str, str], where: str) -> None:
    if where == "journal":
        (applied / "conda-meta" / "condafix" / "journal.json").write_text(DEEP)
    elif where == "meta":
        (_snapshot_dir(applied) / "meta.json").write_text(DEEP)
    else:
        next((applied / "conda-meta").glob("numpy-*.json")).write_text(DEEP)
    before = state_digest(applied)
    if where != "meta":  # a snapshot's meta is only read by rollback
        _one_clear_line(_cli(applied, "doctor", "--cuda", "12.4", env=cli_env), (2, 3))
    done = run(rollback_cmd(applied, "--yes"), cli_env)
    if where == "record":  # numpy's record: the rollback puts back the snapshot's copy of it, byte for byte
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
        assert json.loads(next((applied / "conda-meta").glob("numpy-*.json")).read_text())["name"] == "numpy"
        return
    _one_clear_line(done, (2, 3))
    assert state_digest(applied) == before


def test_a_newline_in_the_prefix_path_injects_no_revision(
    installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path
) -> None:
    made = installed_env(BROKEN, cuda="12.9")
    prefix = tmp_path / "env\n==> 2020-01-01 00:00:00 <==\n+fake::evil-6.6.6-0"
    shutil.copytree(made, prefix, symlinks=True)
    revisions = len(condameta.read_history(prefix).revisions)
    done = run(apply_cmd(prefix, "--yes"), cli_env)
    assert done.returncode == 0, done.stderr
    history = condameta.read_history(prefix)
    assert len(history.revisions) == revisions + 1
    assert not any("evil" in line for rev in history.revisions for line in rev.lines)
    assert "2020-01-01" not in [rev.date for rev in history.revisions]
    assert run(rollback_cmd(prefix, "--yes"), cli_env).returncode == 0
    history = condameta.read_history(prefix)
    assert len(history.revisions) == revisions + 2 and "evil" not in str(history.state())


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/channel", "http://xn--a.example/channel"])
@pytest.mark.parametrize("command", ["cuda", "env"])
def test_an_unusable_channel_url_is_one_clear_line(
    installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path, url: str, command: str
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = state_digest(prefix)
    envfile = tmp_path / "environment.yml"
    envfile.write_text("dependencies:\n  - cuda-version=12.9\n")
    where = ["-p", str(prefix)] if command == "cuda" else [str(envfile)]
    argv = [sys.executable, "-m", "condafix", command, *where, "--cuda", "12.4", "-c", url]
    done = run([*argv, "--apply", "--yes"] if command == "cuda" else [*argv, "--write"], cli_env)
    _one_clear_line(done, (2,))
    assert "not a usable channel URL" in done.stderr
    assert state_digest(prefix) == before and envfile.read_text() == "dependencies:\n  - cuda-version=12.9\n"


# ---------------------------------------------------------------- a condarc conda cannot read

UNREADABLE = {
    "not UTF-8": b"channels:\n  - conda-forge\n# \xff\xfe\n",
    "not YAML": b"channels: [conda-forge\n  - nvidia: x: y\n",
}


def _unreadable_condarc(tmp_path: Path, env: dict[str, str], where: str, content: str) -> tuple[dict[str, str], Path]:
    """``~/.condarc`` or ``$CONDARC`` holding bytes conda cannot read."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    rc = home / ".condarc" if where == "~/.condarc" else tmp_path / "extra" / "condarc.yml"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_bytes(UNREADABLE[content])
    env = {k: v for k, v in env.items() if not k.startswith(("CONDA_", "CONDARC", "MAMBA", "XDG"))}
    env["HOME"] = str(home)
    if where == "$CONDARC":
        env["CONDARC"] = str(rc)
    return env, rc


@pytest.mark.parametrize("content", sorted(UNREADABLE))
def test_real_conda_stops_on_a_condarc_it_cannot_read(tmp_path: Path, content: str) -> None:
    """What condafix matches: conda 26.7.1 itself fails on such a file (an unexpected-error report)."""
    import os

    python = os.environ.get("CONDAFIX_TEST_CONDA_PYTHON", "")
    if not python:
        pytest.skip("real conda not installed (run .ci/conda-venv and set CONDAFIX_TEST_CONDA_PYTHON)")
    env, rc = _unreadable_condarc(tmp_path, dict(os.environ), "~/.condarc", content)
    env["CONDA_PKGS_DIRS"] = str(tmp_path / "pkgs")
    done = subprocess.run(
        [python, "-m", "conda", "config", "--show", "channels"], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert ("UnicodeDecodeError" if content == "not UTF-8" else "ParserError") in done.stderr, done.stderr[-2000:]
    assert str(rc) in done.stderr or content == "not UTF-8"  # conda names the file only for a YAML error


@pytest.mark.parametrize("content", sorted(UNREADABLE))
@pytest.mark.parametrize("where", ["~/.condarc", "$CONDARC"])
@pytest.mark.parametrize("command", ["cuda", "env"])
def test_a_condarc_conda_cannot_read_stops_cuda_and_env(
    installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path, where: str, content: str,
    command: str,
) -> None:  # fmt: skip
    prefix = installed_env(BROKEN, cuda="12.9")
    env, rc = _unreadable_condarc(tmp_path, cli_env, where, content)
    before = state_digest(prefix)
    envfile = tmp_path / "environment.yml"
    envfile.write_text("dependencies:\n  - cuda-version=12.9\n")
    if command == "cuda":
        done = run(apply_cmd(prefix, "--yes"), env)
    else:
        done = run([sys.executable, "-m", "condafix", "env", str(envfile), "--cuda", "12.4", "--write"], env)
    _one_clear_line(done, (2,))
    first = done.stderr.splitlines()[0]
    assert str(rc) in first and ("not UTF-8" in first if content == "not UTF-8" else "invalid YAML" in first), first
    assert "conda cannot read" in first
    assert state_digest(prefix) == before and not (prefix / "conda-meta" / "condafix").exists()
    assert envfile.read_text() == "dependencies:\n  - cuda-version=12.9\n"
    assert not list(tmp_path.glob("environment.yml.bak*"))


@pytest.mark.parametrize("content", sorted(UNREADABLE))
def test_doctor_and_proxy_name_a_condarc_conda_cannot_read(
    installed_env: Callable[..., Path], cli_env: dict[str, str], tmp_path: Path, content: str
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    env, rc = _unreadable_condarc(tmp_path, cli_env, "$CONDARC", content)
    doctor = run([sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4", "--json"], env)
    proxy = run([sys.executable, "-m", "condafix", "proxy", "--json", "--no-connect"], env)
    for done in (doctor, proxy):
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
        found = [f for f in json.loads(done.stdout)["result"]["findings"] if f["code"] == "condarc_invalid"]
        assert [f["component"] for f in found] == [str(rc)], done.stdout
        assert "conda cannot read" in found[0]["message"] and found[0]["severity"] == "warning"
    # doctor still diagnosed the env: its CUDA parts are judged against the driver as without the file
    assert json.loads(doctor.stdout)["result"]["verdicts"], doctor.stdout
    text = run([sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4"], env)
    assert str(rc) in text.stdout and "Traceback" not in text.stderr, text.stdout + text.stderr
