"""The CLI end to end, as a user runs it: exit codes, JSON documents, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CUDA12_ENV, FIXTURES, SEED_ENV


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def test_doctor_without_gpu_or_env_says_what_was_tried() -> None:
    done = run("doctor")
    assert done.returncode == 0, done.stderr
    assert "NO NVIDIA DRIVER FOUND" in done.stdout
    for source in ("nvml", "libcuda", "nvidia-smi"):
        assert source in done.stdout
    assert "Traceback" not in done.stderr
    # issue 24: with no GPU the doctor gives a next step (check the driver here, or name another machine's)
    assert "hint: on a machine with an NVIDIA GPU, `nvidia-smi` must list it" in done.stdout
    assert "condafix doctor -p ENV --driver 550.54.14" in done.stdout


def test_doctor_says_each_finding_once_with_no_trailing_spaces(make_prefix: Callable[..., Path]) -> None:
    """Issue 24: every finding was printed twice (the table's why column, then its own line) and the
    table padded its last column with spaces."""
    prefix = make_prefix(CUDA12_ENV)
    done = run("doctor", "-p", str(prefix), "--cuda", "12.4")
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line != line.rstrip()], "trailing spaces"
    message = "writes PTX ISA 8.8; the driver's JIT accepts up to 8.4"
    assert sum(message in line for line in lines) == sum(line.startswith("error: cuda-") for line in lines) > 0
    row = next(line for line in lines if line.startswith("cuda-nvrtc "))
    assert row.endswith("see below")


@pytest.mark.parametrize(
    ("packages", "cuda", "code"),
    [
        (SEED_ENV, "11.4", 2),
        (SEED_ENV, "11.8", 0),
        ([p for p in CUDA12_ENV if "numba" not in p[0]], "12.4", 1),
    ],
)
def test_doctor_check_exit_codes(make_prefix: Callable[..., Path], packages: list, cuda: str, code: int) -> None:
    prefix = make_prefix(packages)
    done = run("doctor", "-p", str(prefix), "--cuda", cuda, "--check")
    assert done.returncode == code, done.stdout + done.stderr


def test_doctor_text_shows_fix(make_prefix: Callable[..., Path], tmp_path: Path) -> None:
    prefix = make_prefix(SEED_ENV)
    done = run("doctor", "-p", str(prefix), "--driver", "470.82.01", env={"HOME": str(tmp_path)})
    # conda's -n would not find it (not in an envs dir): the printed command names the path
    assert f'conda install -p {prefix} -c conda-forge "cudatoolkit=11.4"' in done.stdout
    assert "CUDA 11.4 (from --driver)" in done.stdout
    listed = run("doctor", "-p", str(prefix), "--driver", "470.82.01", env={"CONDA_ENVS_PATH": str(prefix.parent)})
    assert 'conda install -n env -c conda-forge "cudatoolkit=11.4"' in listed.stdout


def test_doctor_json_is_the_dataclasses(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(CUDA12_ENV)
    done = run("doctor", "-p", str(prefix), "--cuda", "12.4", "--json", "--check")
    doc = json.loads(done.stdout)
    assert doc["schema"] == "condafix/doctor/v3" and doc["exit_code"] == done.returncode == 2
    # the keys are pinned by tests/test_schemas.py; here the values a user reads
    assert doc["result"]["fix"]["pins"] == ["cuda-version=12.4"]
    assert doc["result"]["driver"]["cuda"] == "12.4" and doc["result"]["env_cuda"] == "12.9"
    assert doc["result"]["status"] == "mismatch"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("-p", "/does/not/exist"), "prefix does not exist"),
        (("-n", "no-such-env-xyz"), "no environment named"),
    ],
)
def test_doctor_bad_prefix_exit_3(args: tuple[str, ...], needle: str) -> None:
    done = run("doctor", *args, "--check")
    assert done.returncode == 3
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")


def test_doctor_garbage_record_exit_3(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(SEED_ENV)
    (prefix / "conda-meta" / "bad-1-0.json").write_text("\x00garbage")
    done = run("doctor", "-p", str(prefix), "--json")
    assert done.returncode == 3
    assert json.loads(done.stdout)["error"]["summary"].startswith("conda-meta/bad-1-0.json: not a valid")


def test_doctor_bad_cuda_override_exit_2() -> None:
    done = run("doctor", "--cuda", "twelve")
    assert done.returncode == 2 and "not a CUDA version" in done.stderr and "Traceback" not in done.stderr


def test_explain_seed_text_argument() -> None:
    seed = (FIXTURES / "errors" / "numba-seed-7.7-7.4.txt").read_text()
    done = run("explain", seed, "--no-detect")
    assert done.returncode == 0
    assert "CUDA 11.7" in done.stdout and "CUDA 11.4" in done.stdout
    assert "cudatoolkit=11.4" in done.stdout and "cuda-version=11.4" in done.stdout


def test_explain_stdin_file_and_json() -> None:
    path = FIXTURES / "errors" / "numba-cuda-163-8.7-8.4.txt"
    by_stdin = run("explain", "--json", "--cuda", "12.4", stdin=path.read_text())
    by_file = run("explain", "-f", str(path), "--json", "--cuda", "12.4")
    assert json.loads(by_stdin.stdout)["result"] == json.loads(by_file.stdout)["result"]
    result = json.loads(by_file.stdout)["result"]
    assert (result["toolkit_cuda"], result["driver_cuda"], result["live_source"]) == (["12.8"], ["12.4"], "--cuda")


@pytest.mark.parametrize(
    ("args", "stdin", "code", "needle"),
    [
        (("explain", ""), None, 2, "no error text given"),
        (("explain", "-f", "/no/such/file"), None, 2, "cannot read /no/such/file"),
        (("explain", "Segmentation fault"), None, 1, "does not recognise"),
        (("explain",), "", 2, "no error text given"),
    ],
)
def test_explain_bad_or_unknown_input(args: tuple[str, ...], stdin: str | None, code: int, needle: str) -> None:
    done = run(*args, stdin=stdin)
    assert done.returncode == code
    assert needle in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_version_flag() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.startswith("condafix ")
