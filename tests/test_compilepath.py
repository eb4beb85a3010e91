"""The compile-path model: who turns PTX into machine code, judged against that path (issue 13)."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from condafix.detect import driver, ptxprobe
from condafix.diagnose import compilepath, verdict
from condafix.env import envinfo

from .conftest import Pkg

NUMBA_CUDA_12_9: list[Pkg] = [
    ("cuda-version", "12.9", "h4f385c5_3", "noarch"),
    ("cuda-nvvm-impl", "12.9.86", "h4bc722e_1", "linux-64"),
    ("libnvjitlink", "12.9.86", "h5888daf_1", "linux-64"),
    ("numba-cuda", "0.30.2", "pyh29b5f1c_0", "noarch"),
]


def paths(make_prefix: Callable[..., Path], packages: list[Pkg], cuda: str, **kw: object) -> verdict.DoctorReport:
    env = envinfo.read_env(make_prefix(packages), "-p")
    return verdict.diagnose(driver.detect(cuda=cuda), env, **kw)  # type: ignore[arg-type]


def test_every_row_names_its_source() -> None:
    raw = json.loads(resources.files("condafix.data").joinpath("compile_paths.json").read_text())
    for consumer, entry in raw["consumers"].items():
        for row in entry["rows"]:
            assert len(row["source"]) > 40, (consumer, row)
    assert compilepath.removed_setting("NUMBA_CUDA_ENABLE_MINOR_VERSION_COMPATIBILITY") == "numba-cuda 0.20.0"


@pytest.mark.parametrize(
    ("version", "extra", "path"),
    [
        ("0.30.2", (), "nvjitlink"),
        ("0.16.0", (), "nvjitlink"),
        ("0.15.2", (), "driver-jit"),
        ("0.15.2", (("pynvjitlink", "0.7.0", "py312h1_0", "linux-64"),), "pynvjitlink"),
        ("0.13.0", (("pynvjitlink", "0.7.0", "py312h1_0", "linux-64"),), "driver-jit"),
    ],
)
def test_numba_cuda_version_decides_the_linker(
    make_prefix: Callable[..., Path], version: str, extra: tuple[Pkg, ...], path: str
) -> None:
    packages = [p if p[0] != "numba-cuda" else ("numba-cuda", version, p[2], p[3]) for p in NUMBA_CUDA_12_9]
    report = paths(make_prefix, [*packages, *extra], "12.4")
    assert report.compile_paths[0].path == path
    assert report.status == ("mismatch" if path == "driver-jit" else "ok")


def test_old_nvjitlink_below_12_3_is_not_used(make_prefix: Callable[..., Path]) -> None:
    packages = [
        ("cuda-version", "12.2", "h1_3", "noarch"),
        ("cuda-nvvm-impl", "12.2.140", "h1_0", "linux-64"),
        ("libnvjitlink", "12.2.140", "h1_0", "linux-64"),
        ("numba-cuda", "0.30.2", "pyh1_0", "noarch"),
    ]
    (path,) = paths(make_prefix, packages, "12.2").compile_paths
    assert path.path == "driver-jit" and "12.3" in path.why and path.outcome == "ok"


def test_numba_builtin_only_without_numba_cuda(make_prefix: Callable[..., Path]) -> None:
    both = [*NUMBA_CUDA_12_9, ("numba", "0.61.2", "py312h1_0", "linux-64")]
    assert [p.kind for p in paths(make_prefix, both, "12.9").compile_paths] == ["numba-cuda"]


def test_cupy_compiles_cubin_unless_asked_for_ptx(make_prefix: Callable[..., Path]) -> None:
    packages: list[Pkg] = [
        ("cuda-version", "13.2", "h1_3", "noarch"),
        ("cuda-nvrtc", "13.2.78", "h1_0", "linux-64"),
        ("cupy", "14.1.1", "py312h1_0", "linux-64"),
    ]
    cubin = paths(make_prefix, packages, "13.0")
    assert (cubin.compile_paths[0].path, cubin.status) == ("nvrtc-cubin", "ok")
    env = envinfo.read_env(make_prefix(packages, name="ptx"), "-p")
    ptx = verdict.diagnose(driver.detect(cuda="13.0"), env, env_vars={"CUPY_COMPILE_WITH_PTX": "1"})
    assert (ptx.compile_paths[0].path, ptx.compile_paths[0].outcome, ptx.status) == (
        "driver-jit",
        "jit-fails",
        "mismatch",
    )


def test_cupy_falls_back_to_ptx_on_a_gpu_newer_than_its_nvrtc(make_prefix: Callable[..., Path]) -> None:
    packages: list[Pkg] = [
        ("cuda-version", "12.6", "h1_3", "noarch"),
        ("cuda-nvrtc", "12.6.85", "h1_0", "linux-64"),
        ("cupy", "13.4.1", "py312h1_0", "linux-64"),
    ]
    env = envinfo.read_env(make_prefix(packages), "-p")
    blackwell = driver.DriverInfo(cuda="12.4", source="--cuda", cuda_arch="12.0")
    (path,) = verdict.diagnose(blackwell, env).compile_paths
    assert path.outcome == "jit-fails" and "falls back to PTX" in path.message


def test_jax_ptxas_newer_than_driver_is_a_warning(make_prefix: Callable[..., Path]) -> None:
    packages: list[Pkg] = [
        ("cuda-nvcc-tools", "12.6.85", "h1_0", "linux-64"),
        ("jaxlib", "0.4.35", "cuda126py312h1_200", "linux-64"),
    ]
    report = paths(make_prefix, packages, "12.4")
    (path,) = report.compile_paths
    assert (path.path, path.outcome, path.severity) == ("xla-ptxas", "slow-compile", "warning")
    assert report.status == "warning" and any(f.code == "xla_ptxas_newer" for f in report.findings)


def _probe(ptx: str, driver_cuda: str) -> ptxprobe.ProbeResult:
    return ptxprobe.ProbeResult(
        "compile only", "ptx-newer-than-driver", f"NVVM writes PTX ISA {ptx}", ptx_version=ptx, driver_cuda=driver_cuda
    )


def test_probe_says_would_jit_fail_only_for_driver_jit_consumers(make_prefix: Callable[..., Path]) -> None:
    sass = paths(make_prefix, NUMBA_CUDA_12_9, "12.4", probe=_probe("8.8", "12.4"))
    (finding,) = [f for f in sass.findings if f.code.startswith("probe")]
    assert (finding.code, finding.severity) == ("probe_ptx_newer_unused", "info") and sass.status == "ok"
    assert "would JIT-fail" not in finding.message
    old = [("numba-cuda", "0.15.2", "pyh1_0", "noarch") if p[0] == "numba-cuda" else p for p in NUMBA_CUDA_12_9]
    env = envinfo.read_env(make_prefix(old, name="old"), "-p")
    jit = verdict.diagnose(driver.detect(cuda="12.4"), env, probe=_probe("8.8", "12.4"))
    (finding,) = [f for f in jit.findings if f.code.startswith("probe")]
    assert finding.severity == "error" and "would JIT-fail for numba-cuda 0.15.2" in finding.message


def test_doctor_reads_cupy_compile_with_ptx_from_the_environment(make_prefix: Callable[..., Path]) -> None:
    from condafix.cli import commands

    packages: list[Pkg] = [
        ("cuda-version", "13.2", "h1_3", "noarch"),
        ("cuda-nvrtc", "13.2.78", "h1_0", "linux-64"),
        ("cupy", "14.1.1", "py312h1_0", "linux-64"),
    ]
    prefix = str(make_prefix(packages))
    plain = commands.doctor(prefix=prefix, cuda="13.0", ui=commands.Ui(env={}))
    ptx = commands.doctor(prefix=prefix, cuda="13.0", ui=commands.Ui(env={"CUPY_COMPILE_WITH_PTX": "1"}))
    assert (plain.result.status, ptx.result.status) == ("ok", "mismatch")  # measured: matrix-cupy.json
