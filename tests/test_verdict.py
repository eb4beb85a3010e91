"""Verdicts and fixes for real-world env shapes (see shared/reference/peers.md §2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.detect import driver
from condafix.diagnose import verdict
from condafix.env import envinfo
from condafix.schema import to_jsonable

from .conftest import CUDA12_ENV, SEED_ENV, Pkg


@pytest.fixture(autouse=True)
def _envs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """make_prefix's envs folder is an envs dir conda knows, so the fix commands name the env with -n."""
    monkeypatch.setenv("CONDA_ENVS_PATH", str(tmp_path / "envs"))


def diagnose(
    make_prefix: Callable[..., Path], packages: list[Pkg], cuda: str | None, **kw: object
) -> verdict.DoctorReport:
    env = envinfo.read_env(make_prefix(packages, **kw), "-p")
    info = driver.detect(cuda=cuda) if cuda else driver.DriverInfo(cuda=None, source=None)
    return verdict.diagnose(info, env)


def test_seed_case_is_an_error_with_cudatoolkit_pin(make_prefix: Callable[..., Path]) -> None:
    report = diagnose(make_prefix, SEED_ENV, "11.4")
    assert report.status == "mismatch" and report.check_exit_code == 2
    (toolkit,) = [v for v in report.verdicts if v.name == "cudatoolkit"]
    assert (toolkit.verdict, toolkit.severity) == ("newer-than-driver", "error")
    assert "7.7" in toolkit.reason and "7.4" in toolkit.reason
    assert report.fix is not None and report.fix.pins == ("cudatoolkit=11.4",)
    assert report.fix.commands[0].endswith('-c conda-forge "cudatoolkit=11.4"')
    assert "-n env" in report.fix.commands[0]


def test_cuda12_env_on_older_minor_driver(make_prefix: Callable[..., Path]) -> None:
    report = diagnose(make_prefix, CUDA12_ENV, "12.4")
    assert report.status == "mismatch" and report.env_cuda == "12.9"
    assert report.fix is not None and report.fix.pins == ("cuda-version=12.4",)
    assert any("nvJitLink" in alt for alt in report.fix.alternatives)


def test_without_jit_consumer_newer_minor_is_only_a_warning(make_prefix: Callable[..., Path]) -> None:
    no_jit = [p for p in CUDA12_ENV if not p[0].startswith("numba")]
    report = diagnose(make_prefix, no_jit, "12.4")
    assert report.status == "warning" and report.check_exit_code == 1
    assert {v.severity for v in report.verdicts if v.verdict == "newer-than-driver"} == {"warning"}
    assert any(f.code == "no_jit_consumer" for f in report.findings)


def test_driver_12_7_override_pins_12_6_not_a_missing_version(make_prefix: Callable[..., Path]) -> None:
    report = diagnose(make_prefix, CUDA12_ENV, "12.7")
    assert report.fix is not None and report.fix.pins == ("cuda-version=12.6",)


def test_same_ptx_isa_is_compatible(make_prefix: Callable[..., Path]) -> None:
    env = [
        ("cuda-version", "12.6", "h7480c83_3", "noarch"),
        ("cuda-nvvm-impl", "12.6.85", "he02047a_0", "linux-64"),
        ("numba-cuda", "0.15.2", "pyh29b5f1c_0", "noarch"),
    ]
    report = diagnose(make_prefix, env, "12.5")
    assert report.status == "ok" and report.fix is None
    assert all("8.5" in v.reason for v in report.verdicts if v.cuda)


def test_compatible_env_gets_no_fix(make_prefix: Callable[..., Path]) -> None:
    report = diagnose(make_prefix, CUDA12_ENV, "13.0")  # older major on a newer driver: fine
    assert report.status == "ok" and report.fix is None


def test_newer_major_suggests_driver_upgrade_and_labels_major_change(make_prefix: Callable[..., Path]) -> None:
    env = [("cuda-version", "13.0", "h2ba5b12_3", "noarch"), ("cuda-cudart", "13.0.96", "h5888daf_0", "linux-64")]
    report = diagnose(make_prefix, env, "12.4")
    assert report.status == "mismatch"
    assert report.fix is not None and report.fix.pins == () and "580.65.06" in report.fix.summary
    assert "crosses a major" in report.fix.alternatives[0] and "cuda-version=12.4" in report.fix.alternatives[0]


def test_mixed_components_and_old_nvjitlink(make_prefix: Callable[..., Path]) -> None:
    env = [
        ("cuda-version", "12.5", "hd4f0392_3", "noarch"),
        ("nvcc_linux-64", "11.8", "he0b4e1d_13", "linux-64"),
        ("cuda-nvvm-impl", "12.5.82", "h5888daf_0", "linux-64"),
        ("libnvjitlink", "12.4.127", "h5888daf_1", "linux-64"),
        ("numba-cuda", "0.30.2", "pyh29b5f1c_0", "noarch"),
    ]
    report = diagnose(make_prefix, env, "12.5")
    codes = {(f.code, f.component, f.severity) for f in report.findings}
    assert ("mixed", "nvcc_linux-64", "warning") in codes
    assert ("nvjitlink_older", "libnvjitlink", "error") in codes
    assert report.status == "mismatch"  # numba-cuda 0.30 links through the older nvJitLink
    # the least change first: bring nvJitLink up to NVVM, not the env down
    assert report.fix is not None and report.fix.pins == ("libnvjitlink=12.5",)
    assert report.fix.commands == ('conda install -n env -c conda-forge "libnvjitlink=12.5"',)


def test_old_nvjitlink_is_only_a_warning_when_nothing_links_with_it(make_prefix: Callable[..., Path]) -> None:
    env = [
        ("cuda-version", "12.5", "hd4f0392_3", "noarch"),
        ("cuda-nvvm-impl", "12.5.82", "h5888daf_0", "linux-64"),
        ("libnvjitlink", "12.4.127", "h5888daf_1", "linux-64"),
        ("numba-cuda", "0.15.2", "pyh29b5f1c_0", "noarch"),  # before nvJitLink became its linker (0.16.0)
    ]
    report = diagnose(make_prefix, env, "12.5")
    (older,) = [f for f in report.findings if f.code == "nvjitlink_older"]
    assert older.severity == "warning" and report.status == "warning"


def test_numba_cuda_with_nvjitlink_on_older_minor_driver_is_not_a_mismatch(make_prefix: Callable[..., Path]) -> None:
    # issue 13 "Done when": NVVM and nvJitLink 12.9 on a 12.4 driver; numba-cuda >= 0.16 links to SASS
    env = [("numba-cuda", "0.30.2", "pyh29b5f1c_0", "noarch") if p[0] == "numba-cuda" else p for p in CUDA12_ENV]
    report = diagnose(make_prefix, env, "12.4")
    assert report.status == "ok" and report.fix is None
    (path,) = report.compile_paths
    assert (path.consumer, path.path, path.outcome, path.linker_cuda) == ("numba-cuda", "nvjitlink", "ok", "12.9")
    assert any(f.code == "sass_path" for f in report.findings)
    nvvm = next(v for v in report.verdicts if v.name == "cuda-nvvm-impl")
    assert (nvvm.verdict, nvvm.severity) == ("ok", "info") and "SASS" in nvvm.reason


def test_numba_cuda_without_nvjitlink_gets_nvjitlink_first_then_the_pin(make_prefix: Callable[..., Path]) -> None:
    env = [
        ("numba-cuda", "0.30.2", "pyh29b5f1c_0", "noarch") if p[0] == "numba-cuda" else p
        for p in CUDA12_ENV
        if p[0] != "libnvjitlink"
    ]
    report = diagnose(make_prefix, env, "12.4")
    assert report.status == "mismatch"
    (path,) = report.compile_paths
    assert (path.path, path.missing, path.outcome) == ("driver-jit", "nvjitlink", "jit-fails")
    assert report.fix is not None and report.fix.pins == ("libnvjitlink=12.9",)
    assert report.fix.alternatives[0].startswith("move the env's CUDA down to 12.4")
    assert '"cuda-version=12.4"' in report.fix.alternatives[0]


def test_old_numba_still_mismatches_and_no_removed_setting_is_advised(make_prefix: Callable[..., Path]) -> None:
    for packages, cuda in ((SEED_ENV, "11.4"), (CUDA12_ENV, "12.4")):
        report = diagnose(make_prefix, packages, cuda, name=f"e{cuda}")
        assert report.status == "mismatch"
        assert report.compile_paths[0].path == "driver-jit"
        assert report.fix is not None
        text = " ".join((report.fix.summary, *report.fix.commands, *report.fix.alternatives))
        assert "NUMBA_CUDA_ENABLE_MINOR_VERSION_COMPATIBILITY" not in text


def test_pip_wheel_env_gets_a_pip_pin(make_prefix: Callable[..., Path]) -> None:
    report = diagnose(
        make_prefix,
        [("python", "3.12.3", "hab00c5b_0_cpython", "linux-64")],
        "13.0",
        pip=(("nvidia_nvvm", "13.5.37"), ("numba_cuda", "0.30.4")),
    )
    assert report.status == "mismatch"
    assert report.fix is not None and report.fix.commands == ('pip install "nvidia-nvjitlink==13.5.*"',)
    assert 'pip install "nvidia-nvvm==13.0.*"' in report.fix.alternatives[0]


def test_no_driver_is_a_loud_warning(make_prefix: Callable[..., Path]) -> None:
    report = diagnose(make_prefix, CUDA12_ENV, None)
    assert report.status == "warning" and report.fix is None
    assert {v.verdict for v in report.verdicts if v.cuda} == {"unknown"}
    assert any(f.code == "no_driver" and "--cuda" in f.message for f in report.findings)


def test_system_toolkit_with_version_json_warns_about_micromamba(make_prefix: Callable[..., Path]) -> None:
    env = envinfo.read_env(make_prefix(SEED_ENV))
    toolkit = envinfo.SystemToolkit("/usr/local/cuda", "12.8", "version.json", True)
    report = verdict.diagnose(driver.detect(cuda="12.2"), env, toolkit)
    (finding,) = [f for f in report.findings if f.code.startswith("system_toolkit")]
    assert finding.code == "system_toolkit_newer" and "micromamba" in finding.message


def test_gpu_architecture_against_the_envs_cuda(make_prefix: Callable[..., Path]) -> None:
    env = envinfo.read_env(make_prefix(CUDA12_ENV), "-p")
    kepler = verdict.diagnose(driver.DriverInfo(cuda="12.9", source="--cuda", cuda_arch="3.7"), env)
    (dropped,) = [f for f in kepler.findings if f.code == "gpu_arch_dropped"]
    assert dropped.severity == "error" and "CUDA 11.x is the last" in dropped.message
    blackwell = verdict.diagnose(driver.DriverInfo(cuda="12.9", source="--cuda", cuda_arch="12.0"), env)
    assert not [f for f in blackwell.findings if f.code.startswith("gpu_arch")]  # 12.9 knows sm_120
    old = [("cuda-version", "12.4", "h1_3", "noarch"), ("cuda-cudart", "12.4.127", "h1_0", "linux-64")]
    older = verdict.diagnose(
        driver.DriverInfo(cuda="12.8", source="--cuda", cuda_arch="12.0"), envinfo.read_env(make_prefix(old, name="o"))
    )
    (newer,) = [f for f in older.findings if f.code == "gpu_arch_newer"]
    assert newer.severity == "warning" and "CUDA >= 12.8" in newer.message


@pytest.mark.parametrize(("env", "cuda"), [(SEED_ENV, "11.4"), (CUDA12_ENV, "12.4"), (CUDA12_ENV, "12.7")])
def test_doctor_the_guard_and_explain_advise_the_same_pin(
    make_prefix: Callable[..., Path], env: list[Pkg], cuda: str
) -> None:
    """One pin rule: doctor's fix, conda's post-solve guard and explain name the same pins (a 12.7 driver
    gets cuda-version=12.6: conda-forge has no 12.7; the guard said 12.7 on b1aaa3b)."""
    import re

    from condafix.cli import commands
    from condafix.diagnose import explain

    report = diagnose(make_prefix, env, cuda)
    assert report.fix is not None
    final = {name: version for name, version, _build, _subdir in env}
    finding = commands.guard_transaction(final, cuda)
    assert finding is not None
    assert tuple(re.findall(r'"([a-z-]+=[\d.]+)"', finding.hints[0].text)) == report.fix.pins
    ptx = {"11.4": "7.4", "12.4": "8.4"}.get(cuda)
    if ptx is None:  # no CUDA release 12.7 writes or reads its own PTX ISA: explain has no case here
        return
    written = "7.7" if "cudatoolkit" in final else "8.8"
    said = explain.explain(f"ptxas fatal : Unsupported .version {written}; current version is '{ptx}'")
    advice = json.dumps(to_jsonable(said))
    for pin in report.fix.pins:
        assert pin in advice, (pin, advice)


def test_the_guard_never_advises_crossing_a_major() -> None:
    from condafix.cli import commands

    finding = commands.guard_transaction({"cuda-version": "12.9", "numba": "0.60.0"}, "11.8")
    assert finding is not None
    text = finding.hints[0].text
    assert "upgrade the NVIDIA driver" in text and "cuda-version=11" not in text
