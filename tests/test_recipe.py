"""The conda package: recipe.yaml (rattler-build v1) says what pyproject says; it builds and installs into real conda.

The build test runs `.ci/conda-package` for real: rattler-build (py-rattler-build) builds the recipe offline
against a local channel of repackaged wheels and runs the recipe's own tests, then real conda 26.7.1 creates
a base and that base's conda installs condafix from the channel. It skips without py-rattler-build or conda.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from .realconda import CONDA_PYTHON

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "condafix" / "recipe.yaml"
CONDA_NAMES = {"ruamel-yaml": "ruamel.yaml"}  # conda-forge's names where they differ from PyPI's normalized one


def _recipe() -> dict[str, object]:
    loaded = yaml.safe_load(RECIPE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _conda_name(pypi: str) -> str:
    canonical = re.sub(r"[-_.]+", "-", pypi).lower()
    return CONDA_NAMES.get(canonical, canonical)


def _run_requirements() -> dict[str, SpecifierSet]:
    recipe = _recipe()
    context = recipe["context"]
    requirements = recipe["requirements"]
    assert isinstance(context, dict) and isinstance(requirements, dict)
    out: dict[str, SpecifierSet] = {}
    for line in requirements["run"]:
        text = re.sub(r"\$\{\{\s*(\w+)\s*\}\}", lambda m: str(context[m.group(1)]), line)
        name, _, spec = text.partition(" ")
        out[name] = SpecifierSet(spec.replace(" ", ""))
    return out


def test_recipe_is_rattler_build_v1() -> None:
    recipe = _recipe()
    assert recipe["schema_version"] == 1
    assert not (RECIPE.parent / "meta.yaml").exists()  # one recipe, the format conda-forge builds with
    build = recipe["build"]
    assert isinstance(build, dict) and build["noarch"] == "python"
    assert build["python"]["entry_points"] == ["condafix = condafix.cli.start:main"]


def test_run_requirements_equal_pyproject_dependencies() -> None:
    """Before: the recipe said py-rattler >=0.28,<0.29, pyproject >=0.26,<0.29 (0.26 keeps conda's rattler solver)."""
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text()).unwrap()["project"]
    wanted = {_conda_name(Requirement(d).name): Requirement(d).specifier for d in project["dependencies"]}
    wanted["python"] = SpecifierSet(project["requires-python"])
    assert _run_requirements() == wanted
    assert _run_requirements()["py-rattler"] == SpecifierSet(">=0.26,<0.29")
    scripts = project["scripts"]
    assert _recipe()["build"]["python"]["entry_points"] == [f"{k} = {v}" for k, v in scripts.items()]  # type: ignore[index]


def test_recipe_version_is_pyproject_version() -> None:
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text()).unwrap()["project"]
    context = _recipe()["context"]
    assert isinstance(context, dict) and context["version"] == project["version"]


@pytest.mark.skipif(not CONDA_PYTHON, reason="real conda not installed (run .ci/conda-venv)")
def test_package_builds_and_installs_into_a_real_conda_base(tmp_path: Path) -> None:
    pytest.importorskip("rattler_build", reason="py-rattler-build not installed (.ci/run installs it)")
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "conda-package"), str(tmp_path), "--conda-python", CONDA_PYTHON],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode == 3:  # the machine lacks a prerequisite (.ci/conda-package names it)
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    paths = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(paths["package"]).name.startswith("condafix-0.1.0-")
    base = Path(paths["base"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(tmp_path / "home"), CONDA_PKGS_DIRS=str(tmp_path / "pkgs"), CONDARC=str(tmp_path / "condarc"))

    def conda(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(base / "bin" / "python"), "-m", "conda", *args], capture_output=True, text=True, env=env, timeout=300
        )

    listed = conda("list", "-n", "base", "--json")
    assert listed.returncode == 0, listed.stderr
    records = {r["name"]: r for r in json.loads(listed.stdout)}
    assert records["condafix"]["channel"].endswith("channel") and records["condafix"]["version"] == "0.1.0"
    assert {"typer", "rich", "py-rattler", "ruamel.yaml", "tomlkit"} <= set(records)  # its run deps, solved by conda
    checks = conda("doctor", "--list")
    assert checks.returncode == 0, checks.stderr
    assert re.search(r"^\s*cuda: .*\(condafix\)", checks.stdout, re.M), checks.stdout
    helped = conda("cuda", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage: conda cuda" in helped.stdout
    version = subprocess.run([str(base / "bin" / "condafix"), "--version"], capture_output=True, text=True, env=env)
    assert version.stdout.strip() == "condafix 0.1.0"
