"""Planning through real conda's solver (issue 23 item 3): one solve picks the minor, and the plan holds
only what the fix needs (conda's ``aggressive_update_packages`` stay out of condafix's solves).

Skips without real conda (``.ci/conda-venv`` and ``CONDAFIX_TEST_CONDA_PYTHON``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .realconda import BROKEN_SPECS, SOLVERS, RealConda, real_conda  # noqa: F401  (fixture)

CUDA_PARTS = {"cuda-version", "cuda-nvvm-impl", "cuda-nvrtc", "cuda-cudart", "libnvjitlink"}


@pytest.fixture(scope="module")
def plugged(real_conda: RealConda) -> RealConda:  # noqa: F811
    done = subprocess.run(
        [real_conda.python, "-c", "import condafix.backends.conda"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"condafix is not importable from conda's venv: {done.stderr[-200:]}")
    return real_conda


def env_with_old_openssl(conda: RealConda, tmp_path: Path, solver: str) -> Path:
    """The bug env plus openssl 3.0.0, asked for by name (``conda install openssl`` when 3.0.0 was newest)."""
    prefix = conda.create(tmp_path / "env", (*BROKEN_SPECS, "openssl=3.0.0"), solver=solver)
    history = prefix / "conda-meta" / "history"
    history.write_text(history.read_text().replace("'openssl=3.0.0'", "'openssl'"))
    assert conda.installed(prefix)["openssl"] == "3.0.0"
    return prefix


def plan(conda: RealConda, prefix: Path, solver: str, cuda: str = "12.4") -> dict[str, object]:
    args = ("cuda", "-p", str(prefix), "--cuda", cuda, "--json", "-c", conda.channel_url)
    done = subprocess.run(
        [conda.python, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env=conda.env(solver=solver),
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 2), done.stderr
    doc = json.loads(done.stdout)
    assert "result" in doc, doc
    result: dict[str, object] = doc["result"]
    return result


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_plan_holds_only_the_fix_where_conda_would_update_openssl(
    plugged: RealConda, tmp_path: Path, solver: str
) -> None:
    prefix = env_with_old_openssl(plugged, tmp_path, solver)
    # conda's own install of the same pin brings openssl 3.5.0 along: the channel has the newer one
    dry = plugged.run(
        "install", "--dry-run", "--json", "-p", str(prefix), "--override-channels", "-c", plugged.channel_url,
        "cuda-version=12.4", solver=solver,
    )  # fmt: skip
    linked = {p["name"]: p["version"] for p in json.loads(dry.stdout)["actions"]["LINK"]}
    assert linked.get("openssl") == "3.5.0", linked
    result = plan(plugged, prefix, solver)
    assert result["solver"] == f"conda ({solver})" and result["pin"] == "cuda-version=12.4", result
    changed = {c["name"] for c in result["changes"]}  # type: ignore[attr-defined]
    assert changed == CUDA_PARTS, changed  # openssl stays 3.0.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_one_solve_picks_the_newest_minor_that_solves(plugged: RealConda, tmp_path: Path, solver: str) -> None:
    prefix = plugged.create(tmp_path / "env", BROKEN_SPECS, solver=solver)
    result = plan(plugged, prefix, solver)
    attempts = result["attempts"]
    assert result["pin"] == "cuda-version=12.4" and result["pins"] == ["cuda-version=12.4"], result
    assert len(attempts) == 1 and "cuda-version >=12.0,<12.5.0a0" in attempts[0]["detail"], attempts  # type: ignore
    # 12.7 is not on the channel: the solver's pick is the newest below it, as the per-candidate walk found
    lower = plan(plugged, prefix, solver, "12.7")
    assert lower["pin"] == "cuda-version=12.6", lower


@pytest.mark.parametrize("solver", SOLVERS)
def test_nothing_in_the_range_solves_names_the_blocker(plugged: RealConda, tmp_path: Path, solver: str) -> None:
    # numba-cuda hands PTX to the driver's JIT, so the env needs a plan (pytorch alone only warns)
    specs = ("pytorch=2.9.0", "numba-cuda", "python=3.12.3", "numpy=2.0.0")
    prefix = plugged.create(tmp_path / "env", specs, solver=solver, cuda="12.9")
    result = plan(plugged, prefix, solver)
    assert result["status"] == "blocked", result
    assert [b["name"] for b in result["blockers"]] == ["pytorch"], result  # type: ignore[index]
    assert "pytorch" in str(result["reason"]) and "cuda-version >=12.8" in str(result["reason"])
