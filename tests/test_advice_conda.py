"""Doctor, explain, conda's post-solve guard and ``condafix cuda`` agree, inside real conda 26.7.1 (issue 21 item 5):
on a pytorch + numba-cuda env on a CUDA 12.4 driver, and on a CUDA 12.9 env on an 11.4 driver.

conda creates the envs from the fixture channel (pytorch 2.9.0 depends on ``cuda-version >=12.8,<13``);
NVIDIA's driver table gives CUDA 12.8 -> 570.26 and 12.9 -> 575.51.03. Skips without real conda.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .realconda import BROKEN_SPECS, RealConda, real_conda  # noqa: F401  (fixture)
from .test_advice import DRIVER_FOR_12_9, PYTORCH_HOLDS, numba_paste

TORCH_SPECS = (*BROKEN_SPECS, "pytorch")

_GUARD_ON_CONDAS_RECORDS = """
import sys
from condafix.cli import commands, conda_guard
final, requirements = conda_guard.final_state(sys.argv[1], [], [])
finding = commands.guard_transaction(final, sys.argv[2], requirements)
print(finding.hints[0].text if finding else "no finding")
"""


@pytest.fixture(scope="module")
def plugged(real_conda: RealConda) -> RealConda:  # noqa: F811
    done = subprocess.run(
        [real_conda.python, "-c", "import condafix.conda_plugin"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"condafix is not installed in conda's venv (.ci/conda-venv does it): {done.stderr[-200:]}")
    return real_conda


def condafix(conda: RealConda, *args: str, cuda: str, condarc: Path) -> subprocess.CompletedProcess[str]:
    """condafix as a user inside that conda install runs it (it plans with conda's own solver there)."""
    return subprocess.run(
        [conda.python, "-m", "condafix", *args, "--cuda", cuda],
        capture_output=True, text=True, env=conda.env(CONDARC=str(condarc)), check=False, timeout=300,
    )  # fmt: skip


def explained(conda: RealConda, prefix: Path, paste: str, condarc: Path) -> str:
    """``condafix explain -p ENV`` on a pasted error, the paste's own driver (no detection), whitespace folded."""
    done = subprocess.run(
        [conda.python, "-m", "condafix", "explain", "--no-detect", "-p", str(prefix), "-f", "-"],
        input=paste, capture_output=True, text=True, env=conda.env(CONDARC=str(condarc)), check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return " ".join(done.stdout.split())


@pytest.fixture
def condarc(plugged: RealConda, tmp_path: Path) -> Path:
    path = tmp_path / "condarc"
    path.write_text(f"channels:\n  - {plugged.channel_url}\n")
    return path


def test_pytorch_env_on_a_12_4_driver(plugged: RealConda, tmp_path: Path, condarc: Path) -> None:
    """b1aaa3b: the guard said "add cuda-version=12.4", doctor "move down … nothing else changes", cuda blocked."""
    args = ("create", "-y", "-p", str(tmp_path / "new"), "--override-channels", "-c", plugged.channel_url)
    warned = plugged.run(*args, *TORCH_SPECS, "--dry-run", check=False)
    guard = " ".join(warned.stderr.split())  # conda's reporter wraps long lines
    assert "Warning (condafix)" in warned.stderr and PYTORCH_HOLDS in guard, warned.stderr
    assert '"cuda-version=12.4" to the command' not in guard
    prefix = plugged.create(tmp_path / "env", TORCH_SPECS, solver="libmamba", cuda="12.4")
    assert plugged.installed(prefix)["cuda-version"] in ("12.8", "12.9")
    doctor = condafix(plugged, "doctor", "-p", str(prefix), cuda="12.4", condarc=condarc)
    fix = " ".join(doctor.stdout.split("Fix:", 1)[-1].split())
    assert PYTORCH_HOLDS in fix and "nothing else changes" not in fix, doctor.stdout
    planned = condafix(plugged, "cuda", "-p", str(prefix), cuda="12.4", condarc=condarc)
    said = " ".join(planned.stdout.split())
    assert planned.returncode == 2 and "blocked" in said and PYTORCH_HOLDS in said, planned.stdout + planned.stderr
    assert "remove/replace" not in said
    explain = explained(plugged, prefix, numba_paste("8.8", "8.4"), condarc)  # PTX ISA 8.8: 12.9; 8.4: 12.4
    assert PYTORCH_HOLDS in explain and DRIVER_FOR_12_9 in explain and '"cuda-version=12.4"' not in explain


def test_cuda_12_9_env_on_an_11_4_driver(plugged: RealConda, tmp_path: Path, condarc: Path) -> None:
    """b1aaa3b: doctor offered "upgrade numba-cuda … the env's CUDA can stay" (SASS never crosses a major)."""
    prefix = plugged.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba", cuda="12.4")
    assert plugged.installed(prefix)["cuda-version"] == "12.9"
    doctor = condafix(plugged, "doctor", "-p", str(prefix), cuda="11.4", condarc=condarc)
    fix = " ".join(doctor.stdout.split("Fix:", 1)[-1].split())
    assert fix.startswith(DRIVER_FOR_12_9) and "can stay" not in fix and "nothing else changes" not in fix, fix
    planned = condafix(plugged, "cuda", "-p", str(prefix), cuda="11.4", condarc=condarc)
    said = " ".join(planned.stdout.split())
    assert planned.returncode == 2 and DRIVER_FOR_12_9 in said, planned.stdout + planned.stderr
    # conda itself refuses a CUDA 12 transaction under __cuda=11.4, so the guard is asked on conda's own records
    guard = subprocess.run(
        [plugged.python, "-c", _GUARD_ON_CONDAS_RECORDS, str(prefix), "11.4"],
        capture_output=True, text=True, env=plugged.env(), check=True, timeout=120,
    )  # fmt: skip
    assert DRIVER_FOR_12_9 in guard.stdout and "add " not in guard.stdout, guard.stdout + guard.stderr
    explain = explained(plugged, prefix, numba_paste("8.8", "7.4"), condarc)  # PTX ISA 7.4: CUDA 11.4
    assert DRIVER_FOR_12_9 in explain and "bring NVVM down to CUDA 11" not in explain
