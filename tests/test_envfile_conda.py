"""`condafix env` inside real conda 26.7.1: the file's candidates are checked with conda's configured solver
(through the Backend port, without a prefix), and ``CondaBackend.solve`` honours the specs it is given.

The proof that conda's solver answered, not the embedded one: the user's ``.condarc`` has
``pinned_packages: [cuda-version<=12.5]``. conda's libmamba and rattler solvers refuse a file candidate
that conflicts with a configured pin ("Requested specs conflict with configured specs"), so the answer
is 12.5; the embedded py-rattler solver does not read ``pinned_packages`` and answers 12.6. They skip
without ``CONDAFIX_TEST_CONDA_PYTHON``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .realconda import BROKEN_SPECS, RealConda, real_conda  # noqa: F401  (fixture)

FILE = "dependencies:\n  - python 3.12.*\n  - numba-cuda\n  - cuda-version=12.9\n"  # no channels: the user's


@pytest.fixture
def pinned_condarc(real_conda: RealConda, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """The user's .condarc: the fixture channel, and a pin conda's solver must keep."""
    condarc = tmp_path / "condarc"
    condarc.write_text(f"channels:\n  - {real_conda.channel_url}\npinned_packages:\n  - cuda-version<=12.5\n")
    return {"CONDARC": str(condarc)}


def env_json(python: str, conda: RealConda, path: Path, *args: str, **env: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-m", "condafix", "env", str(path), "--cuda", "12.7", "--json", *args],
        capture_output=True,
        text=True,
        env=conda.env(**env),
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "condafix-solve-" not in done.stderr, done.stderr  # conda's reporter never names the scratch prefix
    if "Target prefix:" in done.stderr:  # conda's rattler solver names it; libmamba does not
        assert "Target prefix: (a new environment, solved only: nothing is installed)" in done.stderr
    result: dict[str, Any] = json.loads(done.stdout)["result"]  # conda's own progress went to stderr
    return result


@pytest.mark.parametrize("solver", ["libmamba", "rattler"])
def test_env_inside_conda_checks_the_candidates_with_condas_solver(
    real_conda: RealConda,  # noqa: F811
    tmp_path: Path,
    pinned_condarc: dict[str, str],
    solver: str,
) -> None:
    path = tmp_path / "environment.yml"
    path.write_text(FILE)
    inside = env_json(real_conda.python, real_conda, path, CONDA_SOLVER=solver, **pinned_condarc)
    assert inside["solver"] == f"conda ({solver})" and inside["pin"] == "cuda-version=12.5"
    assert any(
        a.startswith("CUDA 12.6: does not solve") and "Requested specs conflict with configured specs" in a
        for a in inside["attempts"]
    ), inside["attempts"]
    assert real_conda.channel_url in inside["checked"]  # the user's channels, from the .condarc
    assert path.read_text() == FILE
    # the embedded solver, on the same channel, does not know conda's configured pins
    embedded = env_json(sys.executable, real_conda, path, "-c", real_conda.channel_url, **pinned_condarc)
    assert embedded["solver"] == "rattler" and embedded["pin"] == "cuda-version=12.6"


def test_env_solver_rattler_inside_conda_says_what_it_needs(
    real_conda: RealConda,  # noqa: F811
    tmp_path: Path,
    pinned_condarc: dict[str, str],
) -> None:
    path = tmp_path / "environment.yml"
    path.write_text(FILE)
    done = subprocess.run(
        [real_conda.python, "-m", "condafix", "env", str(path), "--cuda", "12.7", "--solver", "rattler"],
        capture_output=True,
        text=True,
        env=real_conda.env(**pinned_condarc),
        timeout=300,
        check=False,
    )
    assert done.returncode == 2 and "py-rattler >= 0.28" in done.stderr and "Traceback" not in done.stderr


_SOLVE = """
import json, sys
from pathlib import Path
from condafix.backends.conda import CondaBackend
from condafix.plan.solver import SolveFailed

backend = CondaBackend(prefix=Path(sys.argv[1]), offline=False, configured=False)
installed = [r.name for r in backend.installed()]

def solve(pins, extra):
    try:
        final = backend.solve(channels=[sys.argv[2]], platform="linux-64", cuda="12.4", cuda_arch=None,
                              pins=pins, specs=[*installed, *extra, *pins])
    except SolveFailed as failed:
        return "failed: " + failed.message.splitlines()[0]
    return {r.name: r.version for r in final}

print(json.dumps({
    "plain": solve(["cuda-version=12.4"], []),
    "forbidden": solve(["cuda-version=12.4"], ["cuda-nvrtc>=12.9"]),
    "bounded": solve(["cuda-version<=12.6"], []),
    "narrowed": solve(["cuda-version<=12.6"], ["cuda-nvrtc<12.5"]),
    "kept": solve(["cuda-version=12.4"], ["numpy>=2"]),
}))
"""


def test_conda_backend_solve_honours_its_specs(real_conda: RealConda, tmp_path: Path) -> None:  # noqa: F811
    prefix = real_conda.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba")
    assert real_conda.installed(prefix)["numpy"] == "2.0.0"  # numpy 2.1.0 is on the channel too
    done = subprocess.run(
        [real_conda.python, "-c", _SOLVE, str(prefix), real_conda.channel_url],
        capture_output=True,
        text=True,
        env=real_conda.env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["plain"]["cuda-version"] == "12.4"
    # a spec that forbids the candidate: no solution, where ignoring the specs solved
    assert isinstance(answers["forbidden"], str) and answers["forbidden"].startswith("failed: "), answers["forbidden"]
    # a spec that narrows the answer: conda must pick the CUDA the spec allows, not the newest
    assert answers["bounded"]["cuda-version"] == "12.6"
    assert answers["narrowed"]["cuda-version"] == "12.4" and answers["narrowed"]["cuda-nvrtc"].startswith("12.4")
    # specs the installed packages already meet keep them, without asking conda to update them
    assert answers["plain"]["numpy"] == "2.0.0" and answers["plain"]["python"] == "3.12.3"
    assert answers["kept"]["numpy"] == "2.0.0"
