"""Changes conda keeps (issue 11): condafix against envs made by real conda, with each solver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .realconda import BROKEN_SPECS, SOLVERS, RealConda


def condafix(conda: RealConda, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run condafix (the project's python) in the same isolated conda configuration."""
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env=conda.env(**env),
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("solver", [*SOLVERS, "classic"])
def test_conda_reproduces_the_bug_and_condafix_reads_it(real_conda: RealConda, tmp_path: Path, solver: str) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver=solver)
    installed = real_conda.installed(prefix)
    # conda's own solvers put a toolkit newer than the CUDA 12.4 driver into the env: the bug.
    assert installed["cuda-version"] == ("13.0" if solver == "classic" else "12.9")
    done = condafix(real_conda, "doctor", "-p", str(prefix), "--cuda", "12.4", "--json")
    report = json.loads(done.stdout)["result"]
    assert report["status"] == "mismatch", done.stdout
    if solver != "classic":  # 13.0 -> 12.4 crosses a major: planned only with --allow-major
        plan = condafix(real_conda, "cuda", "-p", str(prefix), "--cuda", "12.4", "--json")
        result = json.loads(plan.stdout)["result"]
        assert result["status"] == "change" and result["pin"] == "cuda-version=12.4", plan.stdout
        assert result["channels"] == [real_conda.channel_url]
