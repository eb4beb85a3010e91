"""Explaining real error texts (fixtures from public issues, see shared/reference/peers.md §2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from condafix.detect import driver
from condafix.diagnose.explain import FAMILIES, explain, with_env, with_live
from condafix.env import envinfo
from condafix.errors import UsageError

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


# ---------------------------------------------------------------- issue 13: facts in the paste, new families, traps


@pytest.mark.parametrize(
    ("name", "family", "toolkit", "drv", "source"),
    [
        ("ptx-bare-smi-err.txt", "unsupported_ptx", ("11.8",), ("11.4",), "driver table"),  # CUDA Version: ERR!
        ("ptx-bare-glxinfo.txt", "unsupported_ptx", ("12.6",), ("12.3",), "glxinfo"),
        ("ptx-bare-conda-info.txt", "unsupported_ptx", ("12.9",), ("12.4",), "__cuda"),
        ("ptx-bare-smi-q.txt", "unsupported_ptx", ("12.8",), ("12.4",), "nvidia-smi -q"),
        ("ptx-bare-smi-xml.txt", "unsupported_ptx", ("12.6",), ("12.2",), "nvidia-smi XML"),
        ("runtime-insufficient-cuda102-build.txt", "runtime_insufficient", ("10.2",), ("10.1",), "banner"),
        ("torch-too-old-cu124-wheel.txt", "torch_driver_too_old", ("12.4",), ("11.8",), None),
        ("xla-ptxas-newer-than-driver.txt", "xla_ptxas_newer", ("12.6",), ("12.2",), None),
    ],
)
def test_both_versions_come_from_whatever_was_pasted(
    name: str, family: str, toolkit: tuple[str, ...], drv: tuple[str, ...], source: str | None
) -> None:
    expl = explain(text(name))
    assert (expl.family, expl.toolkit_cuda, expl.driver_cuda) == (family, toolkit, drv)
    if source:
        assert any(source in note for note in expl.notes), expl.notes
    pin = f"cuda-version={drv[0]}"
    if family in ("unsupported_ptx", "runtime_insufficient"):
        assert any(pin in fix for fix in expl.fixes)  # the one fix for this user's driver


def test_prompt_and_env_path_name_the_env_in_the_fix() -> None:
    assert any(
        'conda install -n rapids-2302 -c conda-forge "cudatoolkit=11.4"' in f
        for f in explain(text("seed-with-prompt.txt")).fixes
    )
    assert any("-n gpu " in f for f in explain(text("numba-seed-7.7-7.4.txt")).fixes)  # .../envs/gpu/lib/python


def test_old_ptxas_on_path_is_not_blamed_on_the_driver() -> None:
    expl = explain(text("ptxas-old-on-path-jax.txt"))
    assert (expl.family, expl.newer, expl.toolkit_cuda) == ("ptxas_old", "neither", ("11.8",))
    assert "driver is not involved" in " ".join(expl.lines)
    assert not any("upgrade the NVIDIA driver" in f or "cuda-version=" in f for f in expl.fixes)
    assert "cuda-nvcc=11.8" in expl.fixes[0] and "nvidia-cuda-nvcc-cu11" in expl.fixes[0]


def test_prebuilt_ptx_in_a_package_is_not_fixed_with_a_conda_pin_first() -> None:
    expl = explain(text("prebuilt-ptx-torch-extension.txt"))
    assert expl.family == "unsupported_ptx" and "prebuilt inside torch" in expl.lines[0]
    assert "cuda-version" not in expl.fixes[0] and "build" in expl.fixes[0]


def test_nothing_provides_cuda_with_a_working_smi_is_a_detection_problem() -> None:
    expl = explain(text("solver-cuda-with-working-smi.txt"))
    assert expl.family == "solver_cuda" and expl.driver_cuda == ("12.2",)
    assert expl.fixes[0].startswith("tell the solver: CONDA_OVERRIDE_CUDA=12.2")
    assert not any("upgrade" in f for f in expl.fixes)
    assert "driver is fine" in expl.lines[0]


def test_nvjitlink_ptx_compile_is_nvjitlink_not_the_driver() -> None:
    # measured on the H200: numba-cuda debug=True, NVVM 13.2, nvJitLink 13.0 -> the ptxas line comes from nvJitLink
    expl = explain(text("nvjitlink-ptx-compile-debug.txt"))
    assert (expl.family, expl.toolkit_cuda) == ("nvjitlink_outdated", ("13.2",))
    assert expl.fixes[0].startswith("bring nvJitLink up to NVVM's CUDA 13.2")
    assert not any("driver" in f for f in expl.fixes)


@pytest.mark.parametrize("name", ["nvjitlink-internal.txt", "nvjitlink-outdated.txt"])
def test_nvjitlink_internal_and_outdated(name: str) -> None:
    expl = explain(text(name))
    assert expl.family == "nvjitlink_outdated" and "not the driver" in expl.lines[0]


def test_jitify_too_old_is_env_skew() -> None:
    expl = explain(text("jitify-nvjitlink-too-old.txt"))
    assert (expl.family, expl.toolkit_cuda) == ("jitify_nvjitlink", ("12.4",))
    assert "nvidia-nvjitlink-cu12>=12.4" in expl.fixes[0] and "LD_LIBRARY_PATH" in expl.fixes[1]


def test_numba_cuda_without_nvjitlink_gets_nvjitlink_first() -> None:
    expl = explain(text("numba-cuda-no-nvjitlink-h200.txt"))  # captured on the H200 (driver JIT, 9.2 vs 9.0)
    assert (expl.family, expl.toolkit_cuda, expl.driver_cuda) == ("ptx_version", ("13.2",), ("13.0",))
    assert expl.fixes[0].startswith("add nvJitLink of the same CUDA as NVVM (13.2)")
    assert "numba-cuda without nvJitLink" in expl.lines[2]


@pytest.mark.parametrize("name", ["xla-ptxas-newer-than-driver.txt", "xla-ptx-compiler-version.txt"])
def test_xla_warning_is_a_slow_compile_not_a_failure(name: str) -> None:
    expl = explain(text(name))
    assert expl.family == "xla_ptxas_newer" and "nothing is broken" in expl.fixes[0]


def test_classic_unsat_cuda_is_a_red_herring() -> None:
    expl = explain(text("classic-unsat-cuda-feature.txt"))
    assert expl.family == "classic_unsat_cuda" and "--solver=libmamba" in expl.fixes[0]


@pytest.mark.parametrize(
    ("name", "newer", "wanted"),
    [
        ("no-kernel-image-new-gpu.txt", "driver", "CUDA >= 12.8"),
        ("no-kernel-image-old-gpu.txt", "toolkit", "CUDA 11.x"),
    ],
)
def test_no_kernel_image_compares_the_gpu_with_the_build(name: str, newer: str, wanted: str) -> None:
    expl = explain(text(name))
    assert (expl.family, expl.newer) == ("no_kernel_image", newer)
    assert wanted in expl.fixes[0]


def test_torch_too_old_needs_the_driver_of_the_builds_major() -> None:
    expl = explain(text("torch-too-old-cu124-wheel.txt"))
    assert '"pytorch-cuda=11.8"' in expl.fixes[0] and "+cu118" in expl.fixes[0]
    assert "525.60.13" in expl.fixes[1]  # CUDA 12's minor-version-compatibility floor, not 12.5's driver


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("proxy-scheme-unknown.txt", "proxy_scheme"),
        ("proxy-socks-missing.txt", "proxy_socks"),
        ("proxy-tunnel-403.txt", "proxy_forbidden"),
        ("proxy-tunnel-407.txt", "proxy_auth"),
        ("proxy-dns-typo.txt", "proxy_dns"),
    ],
)
def test_proxy_families_without_credentials(name: str, family: str) -> None:
    expl = explain(text(name))
    assert expl.family == family
    shown = "\n".join((*expl.lines, *expl.fixes, *expl.notes))
    assert "Sup3rSecretPW" not in shown and "alice" not in shown


def test_proxy_typo_names_the_host() -> None:
    assert "'proxy.corp.exmaple'" in explain(text("proxy-dns-typo.txt")).lines[0]


def test_403_and_407_give_different_advice() -> None:
    forbidden, auth = explain(text("proxy-tunnel-403.txt")), explain(text("proxy-tunnel-407.txt"))
    assert "allowlist" in forbidden.lines[0] and "credentials will not help" in forbidden.lines[1]
    assert "credentials" in auth.lines[0]


def test_old_cuda_9_env_gets_the_defaults_cudatoolkit() -> None:
    expl = explain(text("numba-218-old-driver.txt"))  # 9.2 vs 9.1: conda-forge starts at 9.2
    assert any('-c defaults "cudatoolkit=9.0"' in fix for fix in expl.fixes)


def test_pre_cuda_9_banner_uses_the_old_driver_table() -> None:
    banner = "| NVIDIA-SMI 375.26     Driver Version: 375.26 |\nCUDA_ERROR_UNSUPPORTED_PTX_VERSION"
    assert explain(banner).driver_cuda == ("8.0",)
    assert explain("Unsupported .version 5.0; current version is '4.3'").driver_cuda == ("7.5",)


def test_explain_json_carries_the_facts() -> None:
    facts = explain(text("ptx-bare-conda-info.txt")).facts
    assert facts is not None and facts.conda_cuda == "12.4"
    assert [(p.name, p.cuda) for p in facts.packages] == [("cuda-version", "12.9"), ("numba", None)]


@pytest.mark.parametrize(
    ("paste", "name", "cuda"),
    [
        ("torchvision               0.9.1                py38_cu102    pytorch", "torchvision", "10.2"),
        ("pytorch  2.4.0  cuda118_py310h1234567_301  conda-forge", "pytorch", "11.8"),
        ("torch==2.1.0+cu118", "torch", "11.8"),
        ("nvidia-nvjitlink-cu12    12.4.127", "nvidia-nvjitlink-cu12", "12.4"),
    ],
)
def test_list_rows_and_build_strings(paste: str, name: str, cuda: str) -> None:
    facts = explain(paste + "\nCUDA_ERROR_UNSUPPORTED_PTX_VERSION").facts
    assert facts is not None and facts.package(name) is not None
    assert facts.package(name).cuda == cuda  # type: ignore[union-attr]


@pytest.mark.parametrize("line", ["  - __cuda=12.4=0", "__cuda-12.4-0", "virtual packages : __cuda=12.4=0"])
def test_conda_and_mamba_virtual_package_forms(line: str) -> None:
    expl = explain(f"{line}\nCUDA_ERROR_UNSUPPORTED_PTX_VERSION")
    assert expl.driver_cuda == ("12.4",) and any("__cuda" in note for note in expl.notes)


def test_with_env_puts_nvjitlink_first_for_numba_cuda_without_it(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    site = prefix / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for dist in ("numba_cuda-0.30.4", "nvidia_nvvm-13.2.86"):
        (site / f"{dist}.dist-info").mkdir()
    expl = with_env(explain(text("numba-cuda-no-nvjitlink-h200.txt")), envinfo.read_env(prefix))
    assert expl.fixes[0].endswith('pip install "nvidia-nvjitlink==13.2.*"')
    assert sum("nvJitLink" in f for f in expl.fixes) == 1  # replaced, not added twice


def test_old_ptxas_named_by_xla_without_a_ptx_line() -> None:
    expl = explain(text("ptxas-old-xla-warning.txt"))
    assert (expl.family, expl.facts.ptxas_version if expl.facts else None) == ("ptxas_old", "11.0")
    assert "CUDA 11.0" in expl.lines[0] and "?" not in expl.lines[0]
    assert "which ptxas" in expl.fixes[0]


def test_a_pytorch_build_in_a_paste_is_read_as_its_cuda_not_1_1() -> None:
    """``conda list`` rows in a paste: ``py3.10_cuda11.3_cudnn8.3.2_0`` is CUDA 11.3 (was read as 1.1 on b1aaa3b)."""
    import json
    import subprocess
    import sys

    paste = "pytorch 1.12.1 py3.10_cuda11.3_cudnn8.3.2_0 pytorch\nCUDA_ERROR_UNSUPPORTED_PTX_VERSION\n"
    env = {**os.environ, "CONDAFIX_NO_DETECT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "explain", "--no-detect", "--json"],
        input=paste, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    doc = json.loads(done.stdout)
    text = json.dumps(doc["result"])
    assert "11.3" in text and '"1.1"' not in text and "CUDA 1.1" not in text, text
    human = subprocess.run(
        [sys.executable, "-m", "condafix", "explain", "--no-detect"],
        input=paste, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert "1.1 " not in human.stdout.replace("11.", "") and "CUDA 11.3" in human.stdout, human.stdout
