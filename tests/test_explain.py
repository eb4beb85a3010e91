"""Explaining real error texts (fixtures from public issues, see shared/reference/peers.md §2)."""

from __future__ import annotations

import pytest

from condafix import driver
from condafix.errors import UsageError
from condafix.explain import FAMILIES, explain, with_live

from .conftest import FIXTURES


def text(name: str) -> str:
    return (FIXTURES / "errors" / name).read_text()


def test_seed_error_names_both_versions_and_both_pins() -> None:
    expl = explain(text("numba-seed-7.7-7.4.txt"))
    assert (expl.family, expl.newer) == ("ptx_version", "toolkit")
    assert (expl.toolkit_cuda, expl.driver_cuda) == (("11.7",), ("11.4",))
    joined = "\n".join(expl.fixes)
    assert "cudatoolkit=11.4" in joined and "cuda-version=11.4" in joined
    assert "515.43.04" in joined  # the driver that would run 11.7


@pytest.mark.parametrize(
    ("name", "toolkit", "drv", "pin"),
    [
        ("numba-7006-8.4-8.2.txt", ("12.4",), ("12.2",), "cuda-version=12.2"),
        ("numba-cuda-163-8.7-8.4.txt", ("12.8",), ("12.4",), "cuda-version=12.4"),
        ("numba-218-old-driver.txt", ("9.2",), ("9.1",), None),
    ],
)
def test_ptx_pairs(name: str, toolkit: tuple[str, ...], drv: tuple[str, ...], pin: str | None) -> None:
    expl = explain(text(name))
    assert (expl.toolkit_cuda, expl.driver_cuda) == (toolkit, drv)
    if pin:
        assert any(pin in fix for fix in expl.fixes)
        assert not any("cudatoolkit=12" in fix for fix in expl.fixes)  # never a pin that does not exist


def test_ptx_8_5_maps_to_two_toolkits() -> None:
    expl = explain("Unsupported .version 8.5; current version is '8.4'")
    assert expl.toolkit_cuda == ("12.5", "12.6")


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("unsupported-ptx-bare.txt", "unsupported_ptx"),
        ("nvjitlink-outdated.txt", "nvjitlink_outdated"),
        ("runtime-insufficient.txt", "runtime_insufficient"),
        ("torch-driver-too-old-11040.txt", "torch_driver_too_old"),
        ("no-kernel-image.txt", "no_kernel_image"),
        ("conda-nothing-provides-cuda.txt", "solver_cuda"),
        ("mamba-cuda-version-conflict.txt", "solver_cuda"),
        ("conda-proxy-error.txt", "proxy"),
    ],
)
def test_every_family_is_recognised(name: str, family: str) -> None:
    expl = explain(text(name))
    assert expl.recognised and expl.family == family
    assert 2 <= len(expl.lines) <= 4 and expl.fixes


def test_torch_number_is_the_drivers_cuda_not_a_driver_version() -> None:
    expl = explain(text("torch-driver-too-old-11040.txt"))
    assert expl.driver_cuda == ("11.4",)
    assert "not a driver version" in expl.lines[0]


def test_solver_text_gives_the_needed_major() -> None:
    expl = explain(text("mamba-cuda-version-conflict.txt"))
    assert any("__cuda >= 12" in line for line in expl.lines)
    assert any("CONDA_OVERRIDE_CUDA" in fix for fix in expl.fixes)


def test_proxy_points_to_condafix_proxy() -> None:
    assert any("condafix proxy" in fix for fix in explain(text("conda-proxy-error.txt")).fixes)


def test_unknown_text_is_not_guessed() -> None:
    expl = explain(text("unknown-segfault.txt"))
    assert not expl.recognised and expl.family is None and expl.fixes == ()


@pytest.mark.parametrize("empty", ["", "   \n\t"])
def test_empty_text_is_a_usage_error(empty: str) -> None:
    with pytest.raises(UsageError):
        explain(empty)


def test_live_driver_fills_a_bare_222() -> None:
    expl = with_live(explain(text("unsupported-ptx-bare.txt")), driver.detect(cuda="12.2"))
    assert expl.driver_cuda == ("12.2",) and expl.live_source == "--cuda"
    assert any("cuda-version=12.2" in fix for fix in expl.fixes)


def test_live_driver_disagreeing_with_the_text_is_noted() -> None:
    expl = with_live(explain(text("numba-seed-7.7-7.4.txt")), driver.detect(cuda="12.4"))
    assert any("came from another driver" in note for note in expl.notes)


def test_family_codes_are_unique() -> None:
    codes = [f.code for f in FAMILIES]
    assert len(codes) == len(set(codes))
