"""condafix inside real conda 26.7.1: `conda doctor` check and fixer, `conda cuda`, the post-solve guard,
error hints, and conda's own solvers still working with condafix installed beside them.

These run conda as a user would (``python -m conda …``) in the venv that ``.ci/conda-venv`` builds, where
condafix is installed as a plugin; they skip without it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import tree_digest
from .realconda import BROKEN_SPECS, RealConda, real_conda  # noqa: F401  (fixture)

SOLVERS = ("libmamba", "classic", "rattler")


@pytest.fixture(scope="module")
def plugged(real_conda: RealConda) -> RealConda:  # noqa: F811
    """Real conda whose venv has condafix installed as a plugin; a condarc naming the fixture channel."""
    done = subprocess.run(
        [real_conda.python, "-c", "import condafix.conda_plugin"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"condafix is not installed in conda's venv (.ci/conda-venv does it): {done.stderr[-200:]}")
    return real_conda


@pytest.fixture
def user_condarc(plugged: RealConda, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The user's own .condarc lists the channel: conda's configuration, not a -c flag, must be used."""
    condarc = tmp_path / "condarc"
    condarc.write_text(f"channels:\n  - {plugged.channel_url}\n")
    yield {"CONDARC": str(condarc)}


def broken_env(conda: RealConda, tmp_path: Path, solver: str = "libmamba") -> Path:
    """conda itself reproduces the bug: __cuda 12.4, and the solver picks cuda-version 12.9 (13.0 for classic)."""
    prefix = conda.create(tmp_path / "env", BROKEN_SPECS, solver=solver, cuda="12.4")
    assert conda.installed(prefix)["cuda-version"] in ("12.9", "13.0")
    return prefix


def test_conda_doctor_lists_the_cuda_check(plugged: RealConda) -> None:
    done = plugged.run("doctor", "--list")
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("cuda:"))
    assert "condafix" in line and "fix:" in line


def test_conda_doctor_cuda_reports_the_seed_mismatch(plugged: RealConda, tmp_path: Path) -> None:
    prefix = broken_env(plugged, tmp_path)
    done = plugged.run("doctor", "cuda", "-p", str(prefix))
    assert "CUDA (condafix): mismatch" in done.stdout
    assert "env CUDA 12.9" in done.stdout and "driver CUDA 12.4" in done.stdout
    assert "conda doctor --fix cuda" in done.stdout


@pytest.mark.parametrize("solver", SOLVERS)
def test_conda_doctor_fix_pins_with_the_users_solver_and_conda_keeps_the_history(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str], solver: str
) -> None:
    prefix = broken_env(plugged, tmp_path)
    done = plugged.run("doctor", "--fix", "cuda", "-p", str(prefix), "--yes", solver=solver, env=user_condarc)
    assert f"with conda ({solver})" in done.stdout, done.stdout
    installed = plugged.installed(prefix)
    assert installed["cuda-version"] == "12.4"
    assert all(installed[n].startswith("12.4.") for n in ("cuda-nvvm-impl", "cuda-nvrtc", "libnvjitlink"))
    assert installed["numpy"] == "2.0.0" and installed["python"] == "3.12.3"  # nothing else moved
    history = plugged.history(prefix)  # conda parses it, and it is conda's own revision
    assert history.requested["cuda-version"] == "cuda-version=12.4"
    assert "doctor --fix cuda" in " ".join(map(str, history.requests[-1]["cmd"]))
    revisions = plugged.run("list", "--revisions", "-p", str(prefix)).stdout
    assert "cuda-version  {12.9" in revisions and "-> 12.4" in revisions


def test_conda_doctor_fix_dry_run_changes_nothing(plugged: RealConda, tmp_path: Path) -> None:
    prefix = broken_env(plugged, tmp_path)
    before = tree_digest(prefix)
    done = plugged.run("doctor", "--fix", "cuda", "-p", str(prefix), "--dry-run", check=False)
    assert "cuda-version=12.4" in done.stdout  # the plan was shown
    assert tree_digest(prefix) == before


@pytest.mark.parametrize("solver", ("libmamba", "rattler"))
def test_conda_cuda_applies_with_condarc_channels(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str], solver: str
) -> None:
    prefix = broken_env(plugged, tmp_path)
    done = plugged.run("cuda", "-p", str(prefix), "--apply", "--yes", "--json", "--solver", solver, env=user_condarc)
    doc = json.loads(done.stdout)
    assert doc["schema"] == "condafix/cuda/v3"
    plan = doc["result"]["plan"]
    assert plan["solver"] == f"conda ({solver})" and plan["channels"] == [plugged.channel_url]
    assert doc["result"]["applied"]["via"] == f"conda ({solver})"
    assert plugged.installed(prefix)["cuda-version"] == "12.4"
    assert plugged.history(prefix).requested["cuda-version"] == "cuda-version=12.4"


def test_conda_cuda_dry_run_is_a_plan_only(plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str]) -> None:
    prefix = broken_env(plugged, tmp_path)
    before = tree_digest(prefix)
    done = plugged.run("cuda", "-p", str(prefix), env=user_condarc)
    assert "cuda-version=12.4" in done.stdout and "dry run" in done.stdout
    assert tree_digest(prefix) == before


def test_conda_create_warns_before_linking_a_toolkit_the_driver_cannot_jit(plugged: RealConda, tmp_path: Path) -> None:
    args = ("create", "-y", "-p", str(tmp_path / "new"), "--override-channels", "-c", plugged.channel_url)
    warned = plugged.run(*args, *BROKEN_SPECS, "--dry-run", check=False)
    assert "Warning (condafix)" in warned.stderr
    assert "cuda-version 12.9" in warned.stderr and "__cuda 12.4" in warned.stderr
    assert '"cuda-version=12.4"' in warned.stderr
    # the pin it suggests silences it
    quiet = plugged.run(*args, *BROKEN_SPECS, "cuda-version=12.4", "--dry-run", check=False)
    assert "Warning (condafix)" not in quiet.stderr
    # and the setting turns the warning into a refusal: nothing is created
    refused = plugged.run(*args, *BROKEN_SPECS, check=False, env={"CONDA_PLUGINS_CONDAFIX_CUDA_GUARD": "error"})
    assert refused.returncode != 0 and "condafix_cuda_guard" in refused.stderr
    assert not (tmp_path / "new" / "conda-meta").exists()


def test_missing_cuda_error_gets_a_hint_from_live_detection(plugged: RealConda, tmp_path: Path) -> None:
    args = (
        "create",
        "-y",
        "-p",
        str(tmp_path / "t"),
        "--override-channels",
        "-c",
        plugged.channel_url,
        "pytorch=2.9.0",
    )
    done = plugged.run(*args, "--dry-run", cuda="", check=False)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "condafix_cuda_override" in out and "CONDA_OVERRIDE_CUDA" in out


@pytest.mark.parametrize("solver", SOLVERS)
def test_installing_condafix_keeps_every_conda_solver_working(plugged: RealConda, tmp_path: Path, solver: str) -> None:
    rattler = subprocess.run(
        [plugged.python, "-c", "import rattler, condafix; print(rattler.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    if solver == "rattler":
        assert rattler.stdout.strip().startswith("0.26"), "conda-rattler-solver 0.2 needs py-rattler 0.26"
    prefix = plugged.create(tmp_path / "ok", ("numba-cuda", "cuda-version=12.4"), solver=solver)
    assert plugged.installed(prefix)["cuda-version"] == "12.4"


def test_standalone_condafix_plans_with_conda_when_inside_a_conda_install(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str]
) -> None:
    prefix = broken_env(plugged, tmp_path)
    done = subprocess.run(
        [plugged.python, "-m", "condafix", "cuda", "-p", str(prefix), "--json"],
        capture_output=True,
        text=True,
        env=plugged.env(**user_condarc),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["result"]  # conda's own progress went to stderr, stdout is one document
    assert plan["solver"] == "conda (libmamba)" and plan["pin"] == "cuda-version=12.4"
    embedded = subprocess.run(
        [plugged.python, "-m", "condafix", "cuda", "-p", str(prefix), "--solver", "rattler"],
        capture_output=True,
        text=True,
        env=plugged.env(**user_condarc),
        check=False,
    )
    assert embedded.returncode == 2 and "py-rattler >= 0.28" in embedded.stderr
    assert "Traceback" not in embedded.stderr


@pytest.mark.parametrize(("word", "solver"), [("conda", "libmamba"), ("classic", "classic")])
def test_conda_cuda_takes_the_solver_words_of_condafix_cuda(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str], word: str, solver: str
) -> None:
    """Issue 24: `conda cuda --solver conda` was "invalid choice"; `conda` is conda's configured solver."""
    prefix = broken_env(plugged, tmp_path)
    done = plugged.run("cuda", "-p", str(prefix), "--json", "--solver", word, env=user_condarc)
    assert json.loads(done.stdout)["result"]["solver"] == f"conda ({solver})"


def test_conda_cuda_takes_the_pin_and_rollback_flags_its_hints_name(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str]
) -> None:
    """Issue 24: "pass --force" was answered "unrecognized arguments: --force"."""
    prefix = broken_env(plugged, tmp_path)
    done = plugged.run("cuda", "-p", str(prefix), "--apply", "--yes", "--no-pin", env=user_condarc)
    pinned = prefix / "conda-meta" / "pinned"
    assert not pinned.exists() or "cuda-version" not in pinned.read_text(), done.stdout
    assert plugged.installed(prefix)["cuda-version"] == "12.4"
    listed = plugged.run("cuda", "--rollback", "--list", "-p", str(prefix), "--json", env=user_condarc)
    assert (
        json.loads(listed.stdout)["schema"] == "condafix/rollback/v3" and len(json.loads(listed.stdout)["result"]) == 1
    )
    plugged.run("install", "-p", str(prefix), "-y", "--override-channels", "-c", plugged.channel_url, "numpy=2.1.0")
    refused = plugged.run("cuda", "--rollback", "-p", str(prefix), "--yes", check=False, env=user_condarc)
    assert refused.returncode != 0 and "--force" in refused.stderr + refused.stdout
    forced = plugged.run("cuda", "--rollback", "-p", str(prefix), "--dry-run", "--force", env=user_condarc)
    assert "cuda-version" in forced.stdout and "numpy" in forced.stdout  # both undone with --force


def test_standalone_condafix_cuda_takes_conda_cudas_solver_names(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str]
) -> None:
    """Issue 24: one --solver vocabulary; `condafix cuda --solver classic` is conda with the classic solver."""
    prefix = broken_env(plugged, tmp_path)
    done = subprocess.run(
        [plugged.python, "-m", "condafix", "cuda", "-p", str(prefix), "--solver", "classic", "--json"],
        capture_output=True,
        text=True,
        env=plugged.env(**user_condarc),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["solver"] == "conda (classic)"


def test_conda_doctor_fix_on_an_env_with_an_empty_history_is_not_another_tool(
    plugged: RealConda, tmp_path: Path, user_condarc: dict[str, str]
) -> None:
    """An env rattler, pixi or micromamba made has an empty conda-meta/history: conda's first revision then lists
    every installed package as `+` (it has nothing to diff against). condafix took that for another tool's change
    ("error: another tool changed … history revision 1: conda doctor --fix cuda …") after its own fix went in."""
    from .envs import install_env

    prefix = install_env(plugged.channel, tmp_path / "env", BROKEN_SPECS, cuda="12.9", cache=tmp_path / "cache")
    assert (prefix / "conda-meta" / "history").read_text() == ""
    done = plugged.run("doctor", "--fix", "cuda", "-p", str(prefix), "--yes", env=user_condarc, check=False)
    assert "another tool" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "applied 5 changes with conda (libmamba)" in done.stdout, done.stdout
    assert plugged.installed(prefix)["cuda-version"] == "12.4"
    assert plugged.history(prefix).requested["cuda-version"] == "cuda-version=12.4"
    rollback = plugged.run("cuda", "-p", str(prefix), "--rollback", "--yes", check=False)
    assert rollback.returncode == 0 and "--force" not in rollback.stdout + rollback.stderr, rollback.stderr
    assert plugged.installed(prefix)["cuda-version"] == "12.9"
