"""Files are read before a driver is needed (issue 24): a file without CUDA is "nothing to do" on a
machine without a driver, a missing lockfile is reported as missing, a Markdown file is named as such.
This machine has no NVIDIA driver (as ``test_cli``'s doctor test assumes); no override is passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import run

NO_OVERRIDE = {"CONDA_OVERRIDE_CUDA": ""}


@pytest.fixture(autouse=True)
def no_driver_here() -> None:
    if "NO NVIDIA DRIVER FOUND" not in run("doctor").stdout:
        pytest.skip("this machine has an NVIDIA driver")


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("cpu.yml", "name: cpu\nchannels: [conda-forge]\ndependencies:\n  - numpy\n  - python=3.12\n", "in this file"),
        (
            "pixi.toml",
            '[workspace]\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n[dependencies]\nnumpy = "*"\n',
            "in this manifest",
        ),
    ],
)
def test_a_file_without_cuda_is_nothing_to_do_without_a_driver(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    done = run("env", str(path), env=NO_OVERRIDE)
    assert done.returncode == 0, done.stderr
    assert f"no CUDA package {reason}: nothing to change" in done.stdout
    assert "driver" not in done.stdout + done.stderr
    doc = json.loads(run("env", str(path), "--json", env=NO_OVERRIDE).stdout)
    assert doc["exit_code"] == 0 and doc["result"]["changed"] is False
    assert path.read_text() == text


def test_a_file_with_cuda_still_needs_the_target(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text("dependencies:\n  - cuda-version=12.9\n  - cuda-nvrtc\n")
    done = run("env", str(path), env=NO_OVERRIDE)
    assert done.returncode == 2 and "no NVIDIA driver found" in done.stderr


def test_a_broken_file_is_reported_before_the_driver(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text("dependencies: [cuda-version=12.9\n")
    done = run("env", str(path), env=NO_OVERRIDE)
    assert done.returncode == 2 and "invalid YAML" in done.stderr and "driver" not in done.stderr


def test_a_missing_lockfile_is_reported_not_the_driver(tmp_path: Path) -> None:
    done = run("lock", str(tmp_path / "nosuch.lock"), env=NO_OVERRIDE)
    assert done.returncode == 2
    assert "nosuch.lock: no such file" in done.stderr and "driver" not in done.stderr


def test_a_markdown_file_is_not_called_a_template(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# env\n\nRun with `{{ cuda }}` set:\n\n```yaml\ndependencies:\n  - cuda-version=12.9\n```\n")
    done = run("env", str(path), "--cuda", "12.4")
    assert done.returncode == 2
    assert "Markdown" in done.stderr and "not an environment file" in done.stderr and "template" not in done.stderr
