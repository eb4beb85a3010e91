"""The facts reader: every number read is typed and carries its line and text (issue 21, item 1).

The pastes are lines as real tools print them (nvidia-smi, CuPy's show_config, deviceQuery, PyTorch,
XLA, numba); the expected values are the tools' documented encodings, not condafix's output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from condafix.diagnose import facts as reader
from condafix.diagnose.explain import explain, with_env
from condafix.env import envinfo

BENCHMARK = """\
Benchmark configuration
  Driver Version: 570.133.20
  CUDA Driver Version: 12080
  CUDA Runtime Version: 12040
CUDA_ERROR_UNSUPPORTED_PTX_VERSION
"""


def test_a_benchmarks_cuda_driver_version_is_the_drivers_cuda_not_the_driver() -> None:
    """The bug of b1aaa3b: 'CUDA Driver Version: 12080' was read as driver 1208 -> CUDA 13.3."""
    facts = reader.read(BENCHMARK)
    assert facts.driver_version == "570.133.20"
    assert facts.driver_cuda == "12.8"
    cuda = facts.first("driver_cuda")
    assert cuda is not None and (cuda.raw, cuda.line, cuda.text) == ("12080", 3, "CUDA Driver Version: 12080")
    runtime = facts.first("runtime_cuda")
    assert runtime is not None and (runtime.value, runtime.line) == ("12.4", 4)
    assert [f.value for f in facts.all("driver_version")] == ["570.133.20"]


def test_the_benchmark_paste_is_never_told_to_pin_past_its_driver() -> None:
    expl = explain(BENCHMARK)
    assert expl.driver_cuda == ("12.8",)
    assert any('"cuda-version=12.8"' in fix for fix in expl.fixes)
    assert not any("13." in fix for fix in expl.fixes)


@pytest.mark.parametrize(
    ("line", "kind", "value", "raw"),
    [
        (
            "RuntimeError: The NVIDIA driver on your system is too old (found version 12080).",
            "driver_cuda",
            "12.8",
            "12080",
        ),
        (
            "cuda.bindings._internal.utils.NotSupportedError: CUDA driver version 13000 is not supported",
            "driver_cuda",
            "13.0",
            "13000",
        ),
        ("CUDA Driver Version          : 9020", "driver_cuda", "9.2", "9020"),
        ("CUDA Build Version           : 13000", "build_cuda", "13.0", "13000"),
        ("  CUDA Driver Version / Runtime Version          7.0 / 6.5", "runtime_cuda", "6.5", None),
        ("NVRTC Version                : (13, 0)", "nvrtc_cuda", "13.0", None),
        ("Cuda compilation tools, release 12.4, V12.4.131", "toolkit_cuda", "12.4", None),
        ("*** WARNING *** You are using ptxas 11.0.221, which is older than 11.1.", "ptxas_cuda", "11.0", None),
        ("CUDA used to build PyTorch: 12.1", "build_cuda", "12.1", None),
        ("| NVIDIA-SMI 610.43.02   KMD Version: 610.43.02   CUDA UMD Version: 13.3 |", "driver_cuda", "13.3", None),
        ("<cuda_version>12.4</cuda_version>", "driver_cuda", "12.4", None),
        ("    CUDA Version                          : 12.2", "driver_cuda", "12.2", None),
    ],
)
def test_each_tools_cuda_number(line: str, kind: reader.FactKind, value: str, raw: str | None) -> None:
    fact = reader.read(line).first(kind)
    assert fact is not None and (fact.value, fact.raw, fact.line) == (value, raw, 1), fact


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("cuDNN Version                : 8907", "cuDNN", "8.9.7"),
        ("cuDNN Version         : 7605", "cuDNN", "7.6.5"),
        ("cuDNN Version                : 90100", "cuDNN", "9.1.0"),
        ("NCCL Runtime Version  : 2507", "NCCL", "2.5.7"),
        ("NCCL Runtime Version         : 21803", "NCCL", "2.18.3"),
        ("cuSPARSE Version      : 10301", "cuSPARSE", "10.3.1"),
        (
            "RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1191, unhandled system error, NCCL version 2.10.3",
            "NCCL",
            "2.10.3",
        ),
    ],
)
def test_library_versions_are_not_cuda_versions(line: str, name: str, value: str) -> None:
    facts = reader.read(line)
    lib = facts.first("library", name)
    assert lib is not None and lib.value == value
    assert facts.driver_cuda is None and facts.first("driver_version") is None  # 8907 is no driver, no CUDA


def test_cudnn_pairs_name_both_sides() -> None:
    facts = reader.read(
        "RuntimeError: cuDNN version incompatibility: PyTorch was compiled  against (8, 5, 0) "
        "but found runtime version (8, 3, 3)."
    )
    assert [(f.name, f.value) for f in facts.all("library")] == [("cuDNN build", "8.5.0"), ("cuDNN", "8.3.3")]


def test_unknown_is_a_value() -> None:
    facts = reader.read("| NVIDIA-SMI 470.57.02    Driver Version: 470.57.02    CUDA Version: ERR!     |")
    banner, table = facts.all("driver_cuda")
    assert (banner.value, banner.raw, banner.source) == (reader.UNKNOWN, "ERR!", "nvidia-smi banner")
    assert facts.first("driver_cuda") == table  # unknown is never chosen; the driver table gives 470 -> 11.4
    assert facts.driver_cuda == "11.4" and facts.driver_source is not None
    assert "through the driver table" in facts.driver_source


def test_ptx_facts_name_the_component_that_refused() -> None:
    jit = reader.read(
        "ptxas application ptx input, line 9; fatal   : Unsupported .version 8.7; current version is '8.4'"
    )
    binary = reader.read("ptxas /tmp/x.ptx, line 5; fatal   : Unsupported .version 8.7; current version is '8.4'")
    jit_src, bin_src = jit.first("accepted_ptx"), binary.first("accepted_ptx")
    assert jit_src is not None and "driver's JIT" in jit_src.source
    assert bin_src is not None and "ptxas binary" in bin_src.source
    assert (jit.ptx, jit.accepted_ptx) == ("8.7", "8.4")


def test_gpu_facts() -> None:
    facts = reader.read(
        "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch installation.\n"
        "The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90.\n"
        "    Found GPU1 Tesla V100-PCIE-16GB which is of cuda capability 7.0.\n"
        "    The minimum cuda capability supported by this library is 7.5.\n"
    )
    assert facts.gpu_name == "NVIDIA GeForce RTX 5090" and facts.gpu_sm == "12.0"
    assert facts.build_sms == ("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0")
    assert [f.value for f in facts.all("gpu_sm")] == ["12.0", "7.0"]
    assert [f.value for f in facts.all("min_sm")] == ["7.5"]


def test_platform_env_and_manager_facts() -> None:
    facts = reader.read(
        "ldconfig: /usr/lib/wsl/lib/libcuda.so.1 is not a symbolic link\n"
        "Virtual package '__cuda' does not match: [__glibc=2.39=0, __unix=0=0, __linux=6.11.0=0]\n"
        'File "/home/u/miniforge3/envs/gpu/lib/python3.11/site-packages/numba/core/x.py", line 1\n'
    )
    assert [(f.name, f.value) for f in facts.all("platform")] == [("wsl", "wsl"), ("linux", "6.11.0")]
    assert facts.env_name == "gpu" and facts.manager() == "conda"
    assert facts.driver_cuda is None  # a kernel version is not a CUDA version


def test_a_pip_venv_gets_pip_commands_never_a_conda_pin() -> None:
    paste = (
        'File "/home/u/proj/.venv/lib/python3.12/site-packages/numba/cuda/cudadrv/driver.py", line 2824, in add_ptx\n'
        "ptxas application ptx input, line 9; fatal   : Unsupported .version 8.7; current version is '8.4'\n"
    )
    expl = explain(paste)
    assert expl.fix_kind == "pip"
    assert not any("conda install" in fix or "environment.yml" in fix for fix in expl.fixes), expl.fixes


def test_forward_compat_only_on_a_data_center_gpu_and_never_through_ldconfig() -> None:
    torch = (
        "RuntimeError: The NVIDIA driver on your system is too old (found version 12020).\n"
        "PyTorch version: 2.8.0+cu128\n"
    )
    a100 = explain("| 0  NVIDIA A100-SXM4-80GB          On  | 00000000:00:04.0 Off |\n" + torch)
    geforce = explain("| 0  NVIDIA GeForce RTX 4090        Off | 00000000:01:00.0  On |\n" + torch)
    compat = [fix for fix in a100.fixes if "cuda-compat" in fix]
    assert compat and "LD_LIBRARY_PATH" in compat[0] and "never ldconfig" in compat[0]
    assert a100.fixes[0] == geforce.fixes[0]  # compat is an alternative, not the first fix
    assert not any("cuda-compat" in fix for fix in geforce.fixes)


@pytest.mark.parametrize(
    "text",
    [
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "| NVIDIA-SMI 535.54.03  Driver Version: 535.54.03  CUDA Version: 12.2 |",
        "RuntimeError: CUDA error: an illegal memory access was encountered\nPyTorch version: 2.4.0+cu121",
        "RuntimeError: No CUDA GPUs are available\n<cuda_version>11.4</cuda_version>",
    ],
)
def test_look_alikes_never_get_a_pin_or_a_driver_upgrade(text: str) -> None:
    expl = explain(text)
    assert expl.fix_kind == "none" and expl.culprit == "none"
    assert not any("conda install" in f or "cuda-version" in f or "upgrade the NVIDIA driver" in f for f in expl.fixes)
    assert expl.findings and expl.findings[0].severity == "info"


def test_a_finding_carries_the_fixes_as_hints() -> None:
    expl = explain("ptxas application ptx input, line 9; fatal   : Unsupported .version 8.4; current version is '8.2'")
    (finding,) = expl.findings
    assert (finding.code, finding.severity, finding.component) == ("explain-ptx_version", "error", "driver_jit")
    assert finding.hints[0].code == "fix.pin" and finding.hints[0].text == expl.fixes[0]


def test_env_facts_come_from_the_envs_records(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    site = prefix / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for dist in ("numba_cuda-0.30.4", "nvidia_nvvm-13.2.86"):
        (site / f"{dist}.dist-info").mkdir()
    env = envinfo.read_env(prefix)
    found = reader.env_facts(env)
    assert ("manager", "pip") in {(f.kind, f.value) for f in found}
    nvvm = [f for f in found if f.kind == "toolkit_cuda"]
    assert nvvm and nvvm[0].value == "13.2" and nvvm[0].line is None and nvvm[0].source == "pip metadata"
    paste = "ptxas application ptx input, line 9; fatal   : Unsupported .version 9.2; current version is '9.0'"
    expl = with_env(explain(paste), env)
    assert expl.facts is not None and any(f.kind == "package" and f.name == "nvidia-nvvm" for f in expl.facts.items)


def test_a_gpu_newer_than_the_driver_can_serve_gets_the_driver_first() -> None:
    """sm_120 needs a CUDA 12.8 build; on a 12.4 driver no build for it runs, so the driver comes first."""
    expl = explain(
        "| NVIDIA-SMI 550.54.14   Driver Version: 550.54.14   CUDA Version: 12.4     |\n"
        "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch installation.\n"
        "The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90.\n"
    )
    assert (expl.fix_kind, expl.culprit) == ("driver", "build")
    assert expl.fixes[0].startswith("upgrade the NVIDIA driver to >= 570.26")


def test_cuda_bindings_of_a_newer_major_than_the_driver_get_the_drivers_bindings() -> None:
    """cudaErrorInsufficientDriver through cuda-python: cuda-bindings 13 on a 570 (CUDA 12.8) driver."""
    expl = explain(
        "| NVIDIA-SMI 570.133.20   Driver Version: 570.133.20   CUDA Version: 12.8     |\n"
        "- Error name: (<cudaError_t.cudaSuccess: 0>, b'cudaErrorInsufficientDriver')\n"
        "- Error code: 35\n"
    )
    assert (expl.family, expl.component, expl.culprit, expl.fix_kind) == (
        "runtime_insufficient", "bindings", "bindings", "pip",
    )  # fmt: skip
    assert '"cuda-python>=12,<13"' in expl.fixes[0]


def test_the_pastes_own_driver_bounds_the_pin_not_this_machines() -> None:
    """A log from another machine: its driver (12.8, read from the paste) decides, the live 12.4 only adds a note."""
    from condafix.detect import driver
    from condafix.diagnose.explain import with_live

    paste = "| NVIDIA-SMI 570.133.20   Driver Version: 570.133.20   CUDA Version: 12.8 |\n" + (
        "ptxas application ptx input, line 9; fatal   : Unsupported .version 9.0; current version is '8.7'"
    )
    expl = with_live(explain(paste), driver.detect(cuda="12.4"))
    assert expl.fix_kind == "pin" and any('"cuda-version=12.8"' in fix for fix in expl.fixes)
    assert any("came from another driver" in note for note in expl.notes)


def test_collect_env_numba_s_query_gpu_ptx_header_and_wsl() -> None:
    facts = reader.read(
        "CUDA runtime version: 12.4.131\n"
        "GPU models and configuration: \n"
        "GPU 0: NVIDIA GeForce RTX 4090\n"
        "Nvidia driver version: 550.54.15\n"
        "cuDNN version: Probably one of the following:\n"
        "CUDA Driver Version                           : (12, 4)\n"
        "NVIDIA H200, 9.0\n"
        "// Based on NVVM 20.0.0\n"
        "Linux host 5.15.167.4-microsoft-standard-WSL2 #1 SMP\n"
    )
    assert facts.first("runtime_cuda") is not None and facts.first("runtime_cuda").value == "12.4"  # type: ignore[union-attr]
    assert (facts.driver_version, facts.driver_cuda) == ("550.54.15", "12.4")
    assert [f.value for f in facts.all("gpu_name")] == ["NVIDIA GeForce RTX 4090", "NVIDIA H200"]
    assert [f.value for f in facts.all("gpu_sm")] == ["9.0"]
    nvvm = facts.first("library", "NVVM")
    assert nvvm is not None and nvvm.value == "20.0.0" and facts.first("toolkit_cuda") is None
    kernel = facts.first("platform", "wsl kernel")
    assert kernel is not None and kernel.value == "5.15.167.4"


def test_a_solver_message_wrapped_to_the_terminal_is_still_read() -> None:
    """pixi and mamba wrap long lines inside their trees; the phrase can fall across two lines."""
    wrapped = (
        "  × failed to solve the conda requirements of 'default' 'linux-64'\n"
        "  ╰─▶ Cannot solve the request because of: jaxlib * cuda cannot be installed because there are no\n"
        "      viable options:\n"
        "      └─ jaxlib 0.4.23 | 0.4.23 would require\n"
        "         └─ __cuda *, for which no candidates\n"
        "      were found.\n"
    )
    expl = explain(wrapped)
    assert (expl.family, expl.fix_kind) == ("pixi_no_cuda", "manifest")


def test_a_tools_own_version_is_neither_cuda_nor_the_driver() -> None:
    facts = reader.read(
        "CuPy Version                 : 13.6.0\n"
        "       Pixi version: 0.73.0\n"
        "          mamba version : 1.5.8\n"
        "CUDA Build Version           : 13000\n"
    )
    assert [(f.name, f.value) for f in facts.all("tool")] == [
        ("cupy", "13.6.0"),
        ("pixi", "0.73.0"),
        ("mamba", "1.5.8"),
    ]
    assert facts.driver_cuda is None and facts.driver_version is None
    assert facts.first("build_cuda") is not None


def test_cupy_show_config_names_every_version_for_what_it_is() -> None:
    """cupy/cupy#5095's show_config: driver 11020 = CUDA 11.2, runtime/build 11.3, libraries their own."""
    facts = reader.read(
        "CUDA Build Version           : 11030\n"
        "CUDA Driver Version          : 11020\n"
        "CUDA Runtime Version         : 11030\n"
        "cuSPARSE Version             : 11500\n"
        "NVRTC Version                : (11, 3)\n"
        "NCCL Runtime Version         : 2507\n"
        "Device 0 Name                : GeForce RTX 2080 Ti\n"
        "Device 0 Compute Capability  : 75\n"
    )
    got = {(f.kind, f.name, f.value) for f in facts.items}
    assert {("driver_cuda", None, "11.2"), ("runtime_cuda", None, "11.3"), ("build_cuda", None, "11.3")} <= got
    assert {("library", "cuSPARSE", "11.5.0"), ("library", "NCCL", "2.5.7"), ("nvrtc_cuda", None, "11.3")} <= got
    assert (facts.gpu_name, facts.gpu_sm) == ("GeForce RTX 2080 Ti", "7.5")
