"""Invariants of the CUDA tables against shared/reference/cuda-facts.md."""

from __future__ import annotations

import pytest

from condafix.errors import UsageError
from condafix.knowledge.cuda import CudaVersion, driver_version_key, knowledge

V = CudaVersion.parse


def test_every_table_names_its_source() -> None:
    kb = knowledge()
    assert set(kb.sources) >= {
        "ptx_isa",
        "min_driver",
        "mvc_floor",
        "conda_forge_cudatoolkit",
        "conda_forge_cuda_version",
        "toolkit_releases",
    }
    assert all(len(source) > 20 for source in kb.sources.values())


def test_ptx_facts() -> None:
    kb = knowledge()
    assert kb.cuda_for_ptx(V("7.7")) == (V("11.7"),)
    assert kb.cuda_for_ptx(V("8.5")) == (V("12.5"), V("12.6"))
    # PTX ISA 8.6 was booked for a CUDA 12.7 that never shipped: no toolkit wrote it (one lookup, for explain,
    # the advice and doctor's probe; each used to filter it on its own)
    assert kb.cuda_for_ptx(V("8.6")) == ()
    assert kb.ptx_for_cuda(V("12.6")) == V("8.5")
    assert kb.ptx_for_cuda(V("13.0")) == V("9.0")
    for release in kb.toolkit_releases:
        ptx = kb.ptx_for_cuda(release)
        assert ptx is not None, release
        if release.major >= 13:
            assert ptx == CudaVersion(major=9, minor=release.minor)


def test_no_cuda_12_7_anywhere_a_user_could_be_pointed() -> None:
    kb = knowledge()
    assert not kb.is_released(V("12.7"))
    assert V("12.7") not in kb.cuda_version_versions
    assert all(row.cuda != V("12.7") for row in kb.min_driver)
    assert kb.newest_cuda_version_pin(V("12.7")) == V("12.6")


def test_cudatoolkit_ends_at_11_8_0() -> None:
    kb = knowledge()
    assert max(kb.cudatoolkit_versions, key=lambda v: tuple(map(int, v.split(".")))) == "11.8.0"
    assert kb.newest_cudatoolkit(V("11.4")) == "11.4.3"
    assert kb.newest_cudatoolkit(V("12.4")) is None
    assert min(kb.pytorch_cuda_versions) == V("11.6")


def test_min_driver_grows_with_cuda() -> None:
    rows = knowledge().min_driver
    assert [r.cuda for r in rows] == sorted(r.cuda for r in rows)
    keys = [driver_version_key(r.linux) for r in rows]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("535.104.05", "12.2"),
        ("580.159.04", "13.0"),
        ("470.82.01", "11.4"),
        ("450.80.02", "11.0"),
        ("525.60.13", "12.0"),
        ("560.35.03", "12.6"),
        ("570.26", "12.8"),
        ("610.57.04", "13.3"),
    ],
)
def test_driver_to_max_cuda(driver: str, cuda: str) -> None:
    assert knowledge().max_cuda_for_driver(driver) == V(cuda)


def test_min_driver_skips_unreleased_minor() -> None:
    assert knowledge().min_driver_for(V("12.7")) == "570.26"
    assert knowledge().mvc_floor[12][0] == "525.60.13"


@pytest.mark.parametrize("bad", ["", "twelve", "12", "12.4beta", "1.2.3.4.x"])
def test_bad_versions_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        CudaVersion.parse(bad)


def test_encoded_versions() -> None:
    assert CudaVersion.from_encoded(12040) == V("12.4")
    assert CudaVersion.from_encoded(13000) == V("13.0")
    with pytest.raises(ValueError):
        CudaVersion.from_encoded(0)
    assert V("12.10") > V("12.9")


def test_issue_13_tables() -> None:
    kb = knowledge()
    assert kb.cuda_for_ptx(V("5.0")) == (V("8.0"),) and kb.cuda_for_ptx(V("4.0")) == (V("6.0"),)
    assert kb.max_cuda_for_driver("331.62") == V("6.0") and kb.max_cuda_for_driver("375.26") == V("8.0")
    assert kb.max_cuda_for_driver("418.87.01") == V("10.1")  # cuda-facts 4.2: 10.1 needs 418.39
    assert V("13.3") in kb.cuda_version_versions and V("12.7") not in kb.cuda_version_versions
    assert kb.newest_defaults_cudatoolkit(V("9.1")) == V("9.0")  # conda-forge starts at 9.2 (cuda-facts 1.5)
    assert kb.newest_defaults_cudatoolkit(V("10.1")) == V("10.1")
    assert kb.oldest_sm(12) == V("5.0") and kb.oldest_sm(13) == V("7.5")
    assert kb.newest_sm(V("12.6")) == V("9.0") and kb.newest_sm(V("12.8")) == V("12.0")
    assert {"defaults_cudatoolkit", "gpu_arch"} <= set(kb.sources)
