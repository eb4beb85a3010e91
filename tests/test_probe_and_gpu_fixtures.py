"""`doctor --probe` (compile half, no GPU) and regression tests from the H100 captures (issue 8).

The captures in tests/fixtures/gpu/ come from tests/gpu/e2e.sh on an H100, driver 580.159.04.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.detect import driver, ptxprobe
from condafix.diagnose import verdict
from condafix.diagnose.explain import explain, with_env, with_live
from condafix.env import envinfo

from .conftest import FIXTURES

GPU = FIXTURES / "gpu"
NVVM_SITE_ENV = "CONDAFIX_TEST_NVVM_SITE"  # a `pip install --target` dir holding nvidia-cuda-nvcc-cu12 12.4.131


def venv_with(tmp_path: Path, site: Path | None = None, dists: tuple[tuple[str, str], ...] = ()) -> Path:
    """A venv-shaped prefix: its site-packages links to what ``site`` holds, plus empty dist-infos."""
    prefix = tmp_path / "venv"
    (prefix / "lib" / "python3.12").mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    packages = prefix / "lib" / "python3.12" / "site-packages"
    packages.mkdir()
    for entry in sorted(site.iterdir()) if site is not None else ():
        (packages / entry.name).symlink_to(entry)
    for dist, version in dists:
        (packages / f"{dist}-{version}.dist-info").mkdir()
    return prefix


@pytest.fixture
def nvvm_site() -> Path:
    site = os.environ.get(NVVM_SITE_ENV)
    if not site or not list(Path(site).glob("nvidia/cuda_nvcc/nvvm/lib64/libnvvm.so*")):
        pytest.skip(f"set {NVVM_SITE_ENV} to a dir with nvidia-cuda-nvcc-cu12 installed (.ci/run does)")
    return Path(site)


def test_probe_compiles_with_a_pypi_nvvm(nvvm_site: Path, tmp_path: Path) -> None:
    prefix = venv_with(tmp_path, nvvm_site)
    newer = ptxprobe.probe(prefix, driver.detect(cuda="12.2"))
    assert (newer.halves, newer.verdict, newer.ptx_version) == ("compile only", "ptx-newer-than-driver", "8.4")
    assert newer.toolkit_cuda == ("12.4",) and newer.driver_max_ptx == "8.2"
    assert "JIT half not run" in newer.message and newer.nvvm is not None
    same = ptxprobe.probe(prefix, driver.detect(cuda="12.4"))
    assert same.verdict == "ok"


@pytest.mark.parametrize(
    ("consumer", "code", "severity"),
    # numba-cuda 0.13 loads PTX through the driver's JIT, with the NVVM wheel first in its search order;
    # numba's built-in target would not use the wheel at all (gpu-notes.md, tests/test_libsources.py)
    [((), 1, "warning"), ((("numba_cuda", "0.13.0"),), 2, "error")],
)
def test_doctor_probe_cli(
    nvvm_site: Path, tmp_path: Path, consumer: tuple[tuple[str, str], ...], code: int, severity: str
) -> None:
    """The probe's newer PTX is an error only when a package in the env hands PTX to the driver's JIT."""
    prefix = venv_with(tmp_path, nvvm_site, consumer)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "condafix",
            "doctor",
            "-p",
            str(prefix),
            "--probe",
            "--cuda",
            "12.2",
            "--json",
            "--check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    doc = json.loads(done.stdout)
    assert done.returncode == code and doc["result"]["probe"]["ptx_version"] == "8.4"
    probe = [f for f in doc["result"]["findings"] if f["code"] == "probe_ptx_newer"]
    assert [f["severity"] for f in probe] == [severity]


def test_probe_says_which_half_ran_without_nvvm(tmp_path: Path) -> None:
    result = ptxprobe.probe(venv_with(tmp_path), driver.detect(cuda="12.4"), env={})
    assert (result.halves, result.verdict, result.nvvm) == ("none", "unknown", None)
    assert "no libNVVM" in result.message


def test_probe_reports_a_library_that_does_not_load(tmp_path: Path) -> None:
    prefix = venv_with(tmp_path)
    broken = prefix / "lib" / "python3.12" / "site-packages" / "nvidia" / "cu13" / "lib" / "libnvvm.so.4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an ELF file")
    result = ptxprobe.probe(prefix, driver.detect(cuda="13.0"), env={})
    assert result.verdict == "unknown" and "cannot load" in result.message
    assert result.nvvm is not None and result.nvvm.origin == "pip wheel nvidia-nvvm (cu13)"


# ---------------------------------------------------------------- H100 captures


def test_recorded_sources_agree_with_our_parsers() -> None:
    parity = json.loads((GPU / "h100-doctor-parity.json").read_text())["result"]["driver"]
    answers = {a["source"]: a["cuda"] for a in parity["attempts"] if a["ok"]}
    assert answers == {"nvml": "13.0", "libcuda": "13.0", "nvidia-smi": "13.0"}
    banner = driver.parse_smi_banner((FIXTURES / "smi" / "h100-580.159.04-banner.txt").read_text())
    nvml = json.loads((FIXTURES / "smi" / "h100-580.159.04-nvml.json").read_text())
    assert banner.cuda == driver.decode_cuda(nvml["v2"]) == parity["cuda"]
    assert banner.driver_version == nvml["drv"] == parity["driver_version"]


def test_real_nvjitlink_failure_names_both_versions(tmp_path: Path) -> None:
    text = (GPU / "h100-numba-cuda-0.30.4-nvvm-13.5-nvjitlink-13.0.txt").read_text()
    env = envinfo.read_env(
        venv_with(
            tmp_path, dists=(("nvidia_nvvm", "13.5.37"), ("nvidia_nvjitlink", "13.0.88"), ("numba_cuda", "0.30.4"))
        )
    )
    expl = with_env(with_live(explain(text), driver.detect(cuda="13.0")), env)
    assert expl.family == "nvjitlink_outdated"
    assert (expl.toolkit_cuda, expl.driver_cuda, expl.newer) == (("13.5",), ("13.0",), "toolkit")
    # issue 13: nvJitLink up to NVVM first (measured on the H200: 13.5 + 13.5 runs on the 13.0 driver),
    # NVVM down second (what this H100 capture recorded as its first fix before)
    assert expl.fixes[0].endswith('pip install "nvidia-nvjitlink==13.5.*"')
    recorded = json.loads((GPU / "h100-explain-nvjitlink.json").read_text())["result"]
    assert expl.fixes[1].endswith(recorded["fixes"][0].rsplit(": ", 1)[1])


def test_gpu_verdict_reproduces_from_the_recorded_env(tmp_path: Path, make_prefix: Callable[..., Path]) -> None:
    recorded = json.loads((GPU / "h100-doctor-nvvm-13.5.json").read_text())["result"]
    dists = tuple((c["name"].replace("-", "_"), c["version"]) for c in recorded["env"]["components"])
    env = envinfo.read_env(venv_with(tmp_path, dists=dists))
    report = verdict.diagnose(driver.detect(cuda=recorded["driver"]["cuda"]), env)
    # Recorded before issue 13: the fix then was NVVM down. The kernel failed with ERROR_OUTDATED_LIBRARY
    # (h100-numba-cuda-...txt), so nvJitLink up to NVVM comes first now, NVVM down second.
    assert report.status == recorded["status"] == "mismatch"
    assert report.fix is not None and report.fix.commands == ('pip install "nvidia-nvjitlink==13.5.*"',)
    assert report.fix.alternatives[0].endswith(recorded["fix"]["commands"][0].removeprefix("pip install "))
    assert [v.name for v in report.verdicts] == [v["name"] for v in recorded["verdicts"]]
    assert any(f.code == "nvjitlink_older" and f.severity == "error" for f in report.findings)
