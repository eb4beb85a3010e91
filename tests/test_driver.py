"""Driver detection: parsing captured outputs, the probe chain, overrides, and loud failure."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.detect import driver
from condafix.errors import UsageError

from .conftest import FIXTURES

SMI = FIXTURES / "smi"


def read(name: str) -> str:
    return (SMI / name).read_text()


def test_parse_real_h100_banner() -> None:
    report = driver.parse_smi_banner(read("h100-580.159.04-banner.txt"))
    assert (report.cuda, report.driver_version) == ("13.0", "580.159.04")
    assert [g.name for g in report.gpus] == ["NVIDIA H100 80GB HBM3"]


def test_parse_old_banner_with_four_gpus() -> None:
    report = driver.parse_smi_banner(read("v100x4-470.82.01-banner.txt"))
    assert (report.cuda, report.driver_version) == ("11.4", "470.82.01")
    assert [g.index for g in report.gpus] == [0, 1, 2, 3]
    assert report.gpus[0].name == "Tesla V100-SXM2..."


def test_parse_kmd_umd_banner() -> None:
    report = driver.parse_smi_banner(read("rtx-610.57.04-kmd-banner.txt"))
    assert (report.cuda, report.driver_version) == ("13.3", "610.57.04")
    assert report.gpus[0].name == "NVIDIA GeForce RTX 5060"


def test_parse_xml_unit_and_full() -> None:
    unit = driver.parse_smi_xml(read("h100-580.159.04-query.xml"))
    assert (unit.cuda, unit.driver_version, unit.gpus) == ("13.0", "580.159.04", ())
    full = driver.parse_smi_xml(read("t4x2-535.104.05-query-full.xml"))
    assert full.cuda == "12.2"
    assert [g.name for g in full.gpus] == ["Tesla T4", "Tesla T4"]


def test_failure_text_is_recognised_and_yields_nothing() -> None:
    text = read("no-driver-failure.txt")
    assert driver.parse_smi_banner(text).cuda is None
    assert "couldn't communicate with the NVIDIA driver" in (driver.smi_failure(text) or "")


def test_query_gpu_and_min_compute_capability() -> None:
    gpus = driver.parse_smi_query_gpu(read("mixed-query-gpu.csv"))
    assert [g.compute_capability for g in gpus] == ["7.0", "7.0", "8.0"]
    assert driver.min_compute_capability(gpus) == "7.0"
    assert driver.parse_smi_query_gpu(read("h100-580.159.04-query-gpu.csv")) == ()  # no index column


@pytest.mark.parametrize(
    ("value", "expected"), [(12040, "12.4"), (13000, "13.0"), (0, None), (999999, None), ("junk", None), (None, None)]
)
def test_decode_rejects_implausible(value: object, expected: str | None) -> None:
    assert driver.decode_cuda(value) == expected


# ---------------------------------------------------------------- overrides


def test_override_precedence() -> None:
    env = {"CONDA_OVERRIDE_CUDA": "11.8"}
    assert driver.detect(cuda="12.4", driver="535.104.05", env=env).source == "--cuda"
    by_driver = driver.detect(driver="535.104.05", env=env)
    assert (by_driver.source, by_driver.cuda) == ("--driver", "12.2")
    assert driver.detect(env=env).source == "CONDA_OVERRIDE_CUDA"


def test_empty_conda_override_means_no_gpu() -> None:
    info = driver.detect(env={"CONDA_OVERRIDE_CUDA": "  "})
    assert info.cuda is None and info.override and info.attempts == ()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"cuda": "12"}, "not a CUDA version"),
        ({"driver": "banana"}, "not an NVIDIA driver version"),
        ({"driver": "100.1"}, "older than every CUDA release"),
        ({"env": {"CONDA_OVERRIDE_CUDA": "twelve"}}, "CONDA_OVERRIDE_CUDA"),
    ],
)
def test_bad_overrides(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        driver.detect(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the probe chain on this (GPU-less) machine


def test_no_driver_reports_every_attempt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    if Path("/usr/lib/x86_64-linux-gnu/libcuda.so.1").exists():
        pytest.skip("this machine has a driver")
    info = driver.detect(env={})
    assert info.cuda is None and info.source is None
    assert [a.source for a in info.attempts] == ["nvml", "libcuda", "nvidia-smi"]
    assert not any(a.ok for a in info.attempts)
    assert "libcuda" in info.attempts[1].detail and "nvidia-smi not found" in info.attempts[2].detail


def test_nvidia_smi_fallback_with_replayed_outputs(fake_smi: Callable[..., Path]) -> None:
    fake_smi(
        xml=read("h100-580.159.04-query.xml"),
        banner=read("h100-580.159.04-banner.txt"),
        query="0, NVIDIA H100 80GB HBM3, 9.0\n",
    )
    info = driver.detect(env=dict(os.environ))
    assert (info.source, info.cuda, info.driver_version) == ("nvidia-smi", "13.0", "580.159.04")
    assert info.cuda_arch == "9.0"


def test_nvidia_smi_banner_fallback_when_xml_is_empty(fake_smi: Callable[..., Path]) -> None:
    fake_smi(banner=read("rtx-610.57.04-kmd-banner.txt"))
    info = driver.detect(env=dict(os.environ))
    assert (info.cuda, info.attempts[-1].detail) == ("13.3", "banner")
    assert info.gpus[0].name == "NVIDIA GeForce RTX 5060"


def test_nvidia_smi_driver_failure_is_named(fake_smi: Callable[..., Path]) -> None:
    failure = read("no-driver-failure.txt")
    fake_smi(xml=failure, banner=failure, exit_code=9)
    info = driver.detect(env=dict(os.environ))
    assert info.cuda is None
    assert "couldn't communicate with the NVIDIA driver" in info.attempts[-1].detail


def test_hung_nvidia_smi_times_out(fake_smi: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(sleep=30)
    monkeypatch.setattr(driver, "SMI_TIMEOUT", 0.5)
    info = driver.detect(env=dict(os.environ))
    assert info.cuda is None and "timed out" in info.attempts[-1].detail


def fake_library_dir(tmp_path: Path, name: str) -> str:
    """A directory holding a (non-loadable) file of that name: the loader would look there."""
    libdir = tmp_path / "fake-lib"
    libdir.mkdir(exist_ok=True)
    (libdir / name).write_bytes(b"")
    return str(libdir)


def test_missing_libraries_skip_the_probe_child(tmp_path: Path) -> None:
    if driver.native_libraries_missing({}) is None:
        pytest.skip("this machine has NVIDIA libraries")
    assert "loader cache" in (driver.native_libraries_missing({"LD_LIBRARY_PATH": str(tmp_path)}) or "")
    assert driver.native_libraries_missing({"LD_LIBRARY_PATH": fake_library_dir(tmp_path, "libcuda.so.1")}) is None


def test_unloadable_libcuda_is_reported_by_the_child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    info = driver.detect(env={"LD_LIBRARY_PATH": fake_library_dir(tmp_path, "libcuda.so.1")})
    assert info.cuda is None and "could not load libcuda" in info.attempts[1].detail


def test_hung_native_probe_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    libs = fake_library_dir(tmp_path, "libcuda.so.1")
    info = driver.detect(env={driver.PROBE_TIMEOUT_ENV: "0.001", "LD_LIBRARY_PATH": libs})
    assert "timed out" in info.attempts[0].detail


FAKE_PYNVML = '''
"""Replays the values NVML returned on the H100 test machine (tests/fixtures/smi/*-nvml.json)."""
import json, os
_D = json.load(open(os.environ["FAKE_NVML_JSON"]))
class NVMLError(Exception):
    pass
nvmlLib = None
def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlSystemGetCudaDriverVersion_v2(): return _D["v2"]
def nvmlSystemGetCudaDriverVersion(): return _D["v1"]
def nvmlSystemGetDriverVersion(): return _D["drv"]
def nvmlDeviceGetCount(): return _D["count"]
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetName(h): return _D["name"]
def nvmlDeviceGetCudaComputeCapability(h): return tuple(_D["cc"])
'''


def test_nvml_path_with_recorded_h100_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pynvml.py").write_text(FAKE_PYNVML)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("FAKE_NVML_JSON", str(SMI / "h100-580.159.04-nvml.json"))
    monkeypatch.setenv("LD_LIBRARY_PATH", fake_library_dir(tmp_path, "libnvidia-ml.so.1"))
    info = driver.detect(env=dict(os.environ))
    recorded = json.loads(read("h100-580.159.04-nvml.json"))
    assert (info.source, info.cuda, info.driver_version) == ("nvml", "13.0", recorded["drv"])
    assert info.attempts[0].detail == "nvmlSystemGetCudaDriverVersion_v2 -> 13000"
    assert info.gpus[0].compute_capability == "9.0" and info.cuda_arch == "9.0"


# ---------------------------------------------------------------- issue 13: driver fallbacks


def test_windows_process_rows_are_not_gpus() -> None:
    report = driver.parse_smi_banner(read("windows-552.12-processes.txt"))
    assert (report.cuda, report.driver_version) == ("12.4", "552.12")
    assert [g.name for g in report.gpus] == ["NVIDIA GeForce GTX 1650"]


@pytest.mark.parametrize(
    ("name", "driver_version", "cuda"),
    [("old-banner-no-cuda-418.87.01.txt", "418.87.01", "10.1"), ("cuda-err-470.82.01.txt", "470.82.01", "11.4")],
)
def test_a_driver_without_a_cuda_field_gets_cuda_from_the_table(
    fake_smi: Callable[..., Path], name: str, driver_version: str, cuda: str
) -> None:
    banner = read(name)
    assert driver.parse_smi_banner(banner) == driver.SmiReport(
        cuda=None, driver_version=driver_version, gpus=driver.parse_smi_banner(banner).gpus
    )
    fake_smi(xml="", banner=banner)
    info = driver.detect(env=dict(os.environ))
    assert (info.cuda, info.source, info.driver_version) == (cuda, "nvidia-smi", driver_version)
    assert "driver table" in info.attempts[-1].detail  # not "NO DRIVER"


def test_query_text_is_parsed() -> None:
    report = driver.parse_smi_query_text(read("h200-580.159.04-q.txt"))  # captured on the H200 (issue 13 matrix)
    assert (report.cuda, report.driver_version, [g.name for g in report.gpus]) == (
        "13.0",
        "580.159.04",
        ["NVIDIA H200"],
    )


def test_one_time_budget_for_every_nvidia_smi_call(
    fake_smi: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_smi(sleep=30)
    monkeypatch.setattr(driver, "SMI_TIMEOUT", 1.0)
    calls: list[float] = []
    real = driver.runner.run

    def counting(argv: list[str], *, timeout: float, **kw: object) -> driver.runner.RunResult:
        calls.append(timeout)
        return real(argv, timeout=timeout, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(driver.runner, "run", counting)
    attempt, _ = driver.probe_smi()
    assert not attempt.ok and "timed out" in attempt.detail
    assert sum(calls) <= 1.0 + 1e-6 and len(calls) == 1  # the hung first call used the whole budget


def test_repeated_gpu_tags_parse_in_linear_time() -> None:
    report = driver.parse_smi_xml("<nvidia_smi_log>" + "<gpu>" * 20_000 + "<cuda_version>12.4</cuda_version>")
    assert (report.cuda, report.gpus) == ("12.4", ())
    many = "<gpu id='x'><product_name>NVIDIA A100</product_name></gpu>" * 5_000
    assert len(driver.parse_smi_xml(many).gpus) == 64  # bounded


def test_a_driver_older_than_the_table_is_one_clean_line() -> None:
    with pytest.raises(UsageError) as raised:
        driver.from_overrides(cuda=None, driver="12.4\n", env={})  # found by the fuzz run: a CUDA version as --driver
    assert "\n" not in raised.value.summary and "--cuda" in raised.value.summary


# ---------------------------------------------------------------- one reader of nvidia-smi's fields

BENCH_PREFACE = "CUDA Driver Version: 12080\n"  # a benchmark tool's line above the banner: CUDA 12.8, encoded


def test_a_cuda_driver_version_line_is_not_the_driver() -> None:
    """``CUDA Driver Version: 12080`` is an encoded CUDA, never a driver "1208" (main read it as one)."""
    report = driver.parse_smi_banner(BENCH_PREFACE + read("h100-580.159.04-banner.txt"))
    assert (report.driver_version, report.cuda) == ("580.159.04", "13.0")


def test_a_field_nvidia_smi_could_not_read_is_no_driver_version() -> None:
    """``N/A`` in ``-q`` text or XML is unknown, not a driver version named "N/A"."""
    assert driver.parse_smi_query_text("Driver Version : N/A\nCUDA Version : 12.4\n").driver_version is None
    xml = "<nvidia_smi_log><driver_version>N/A</driver_version><cuda_version>12.4</cuda_version></nvidia_smi_log>"
    assert (driver.parse_smi_xml(xml).driver_version, driver.parse_smi_xml(xml).cuda) == (None, "12.4")


@pytest.mark.parametrize(
    ("name", "parse"),
    [
        ("h100-580.159.04-banner.txt", driver.parse_smi_banner),
        ("v100x4-470.82.01-banner.txt", driver.parse_smi_banner),
        ("rtx-610.57.04-kmd-banner.txt", driver.parse_smi_banner),
        ("windows-552.12-processes.txt", driver.parse_smi_banner),
        ("h200-580.159.04-q.txt", driver.parse_smi_query_text),
        ("h100-580.159.04-query.xml", driver.parse_smi_xml),
        ("t4x2-535.104.05-query-full.xml", driver.parse_smi_xml),
        ("h200-580.159.04-q.xml", driver.parse_smi_xml),  # nvidia-smi -q -x, captured on the H200 on 2026-12-03
    ],
)
@pytest.mark.parametrize("preface", ["", BENCH_PREFACE])
def test_a_pasted_nvidia_smi_says_what_live_detection_reads(
    name: str, parse: Callable[[str], driver.SmiReport], preface: str
) -> None:
    """explain's facts of a pasted nvidia-smi output and live detection of the same output agree."""
    from condafix.diagnose import facts

    text = preface + read(name)
    live, pasted = parse(text), facts.read(text)
    said = {(f.kind, f.value) for f in pasted.items if f.kind in ("driver_version", "driver_cuda")}
    assert ("driver_version", live.driver_version) in said
    assert ("driver_cuda", live.cuda) in said
    assert not any(kind == "driver_version" and value != live.driver_version for kind, value in said), said
