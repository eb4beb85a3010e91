"""The newcomer's path through the build and CI files: a warning-free build, CI in venvs of its own, the bench's venv.

Real builds and real venvs (pip against this machine's index); nothing here needs a GPU or conda.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomlkit

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if "pytest" in b).strip()


def test_license_is_an_spdx_string_with_its_file() -> None:
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text()).unwrap()["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text()


def test_pip_builds_the_wheel_without_a_deprecation_warning(tmp_path: Path) -> None:
    """The build log of `pip install .` (here `pip wheel .`, the same backend call) names no deprecation."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "condafix", src / "condafix", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = done.stdout + done.stderr
    if done.returncode != 0 and "setuptools" in log and "No matching distribution" in log:
        pytest.skip("no setuptools>=77 reachable for the isolated build")
    assert done.returncode == 0, log[-2000:]
    warned = [line for line in log.splitlines() if re.search("deprecat", line, re.I)]
    assert not warned, warned
    wheel = next((tmp_path / "dist").glob("condafix-*.whl"))
    metadata = zipfile.ZipFile(wheel).read("condafix-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: BSD-3-Clause" in metadata


def _checkout(tmp_path: Path, name: str) -> Path:
    clone = tmp_path / name
    (clone / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "conda-venv", clone / ".ci" / "conda-venv")
    shutil.copy2(ROOT / "pyproject.toml", clone / "pyproject.toml")
    return clone


def _venv_path(clone: Path, wheels: Path, tmpdir: Path) -> str:
    env = {**os.environ, "TMPDIR": str(tmpdir), "CONDAFIX_WHEELS": str(wheels)}
    done = subprocess.run(
        ["bash", str(clone / ".ci" / "conda-venv"), "--path"], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_conda_venv_is_keyed_by_checkout_and_wheel_content(tmp_path: Path) -> None:
    """Two clones sharing $TMPDIR get two venvs (before, one path: each clone's rebuild deleted the other's)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "conda-26.7.1-py3-none-any.whl").write_bytes(b"one")
    shared = tmp_path / "tmp"
    a, b = _checkout(tmp_path, "a"), _checkout(tmp_path, "b")
    path_a, path_b = _venv_path(a, wheels, shared), _venv_path(b, wheels, shared)
    assert path_a != path_b
    assert Path(path_a).parent == shared and Path(path_b).parent == shared
    assert _venv_path(a, wheels, shared) == path_a  # stable: the same clone finds its venv again
    (wheels / "conda-26.7.1-py3-none-any.whl").write_bytes(b"two")  # same name, new content
    assert _venv_path(a, wheels, shared) != path_a


def test_ci_runs_in_its_own_venv_and_ends_with_the_readme_command() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[-1].strip() == _readme_test_command()
    venv_made = next(i for i, line in enumerate(lines) if re.search(r"-m venv \"\$CI_VENV\"", line))
    path_set = next(i for i, line in enumerate(lines) if line.startswith('export PATH="$CI_VENV/bin:$PATH"'))
    first_pip = next(i for i, line in enumerate(lines) if re.search(r"\bpip install\b", line))
    assert venv_made < path_set < first_pip
    assert not re.search(r"\bpython3 -m pip\b", script)  # not whatever python3 is first on PATH


def test_bench_starts_from_a_python_without_msgpack(tmp_path: Path) -> None:
    """`python bench/run.py` from a bare python: before, `No module named 'msgpack'`; now its own venv has it."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import msgpack"], capture_output=True).returncode != 0
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [str(python), str(ROOT / "bench" / "run.py"), "--which-python"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runner = done.stdout.strip()
    assert runner == str(tmp_path / "condafix-bench" / "bench-venv" / "bin" / "python")
    assert subprocess.run([runner, "-c", "import msgpack, zstandard, rattler"]).returncode == 0


@pytest.mark.parametrize("state", ["missing", "empty", "other-wheels"])
def test_conda_venv_without_wheels_says_one_line_naming_the_setting(tmp_path: Path, state: str) -> None:
    """A clone outside this layout has no ../shared/wheels: before, `cd: ../shared/wheels: No such file or
    directory` from inside the script, and the README's `$(bash .ci/conda-venv)` went on with an empty path."""
    wheels = tmp_path / "wheels"
    if state != "missing":
        wheels.mkdir()
    if state == "other-wheels":
        (wheels / "libmambapy-2.8.1-cp311-cp311-manylinux_2_36_x86_64.whl").write_bytes(b"x")
    clone = _checkout(tmp_path, "clone")
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "CONDAFIX_WHEELS": str(wheels)}
    done = subprocess.run(["bash", str(clone / ".ci" / "conda-venv")], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "CONDAFIX_WHEELS" in lines[0] and str(wheels) in lines[0], done.stderr
    assert not (tmp_path / "tmp").exists()  # nothing was built


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_conda_package_without_wheels_says_one_line_naming_the_setting(tmp_path: Path, state: str) -> None:
    wheels = tmp_path / "wheels"
    if state == "empty":
        wheels.mkdir()
    env = {**os.environ, "CONDAFIX_WHEELS": str(wheels)}
    argv = [
        sys.executable,
        str(ROOT / ".ci" / "conda-package"),
        str(tmp_path / "out"),
        "--conda-python",
        sys.executable,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "CONDAFIX_WHEELS" in lines[0] and str(wheels) in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_conda_package_with_an_empty_conda_python_says_one_line(tmp_path: Path) -> None:
    """`--conda-python "$(bash .ci/conda-venv)"` after conda-venv failed: before, a FileNotFoundError traceback."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "conda-26.7.1-py3-none-any.whl").write_bytes(b"x")
    env = {**os.environ, "CONDAFIX_WHEELS": str(wheels)}
    argv = [sys.executable, str(ROOT / ".ci" / "conda-package"), str(tmp_path / "out"), "--conda-python", ""]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--conda-python" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
