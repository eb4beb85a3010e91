"""Checks that need a real NVIDIA driver (marker ``gpu``; skipped cleanly elsewhere, e.g. on CI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from condafix.detect import driver, ptxprobe
from condafix.knowledge.cuda import knowledge

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def live() -> driver.DriverInfo:
    if driver.native_libraries_missing(os.environ) is not None:
        pytest.skip("no NVIDIA driver libraries on this machine")
    info = driver.detect(env={k: v for k, v in os.environ.items() if k != "CONDA_OVERRIDE_CUDA"}, all_sources=True)
    if info.cuda is None:
        pytest.skip("no working NVIDIA driver on this machine")
    return info


def test_three_sources_agree(live: driver.DriverInfo) -> None:
    answers = {a.source: a.cuda for a in live.attempts if a.ok}
    assert set(answers) == {"nvml", "libcuda", "nvidia-smi"}, live.attempts
    assert len(set(answers.values())) == 1
    assert live.driver_version and live.gpus and live.cuda_arch


def test_probe_jits_on_the_real_driver(live: driver.DriverInfo) -> None:
    prefix = Path(sys.prefix)
    result = ptxprobe.probe(prefix, live)
    if result.nvvm is None:
        pytest.skip("no libNVVM to compile with")
    assert result.halves == "compile and JIT"
    driver_ptx = knowledge().ptx_for_cuda(live.cuda_version)  # type: ignore[arg-type]
    if result.verdict == "ok":
        assert result.jit_code == 0, result.jit_log
    else:
        assert result.verdict == "ptx-newer-than-driver" and str(driver_ptx) in result.message
        assert result.jit_code == 222 and result.jit_error == "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"
