"""The one package-role table (data/package_roles.json via knowledge.roles): sourced, read by the
doctor, the planner and the env-file groups alike."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from condafix.env import envinfo
from condafix.files import cudagroup
from condafix.knowledge import roles
from condafix.knowledge.cuda import CudaVersion
from condafix.plan import blocking
from condafix.plan.solver import Record


def raw() -> dict[str, object]:
    return json.loads(resources.files("condafix.data").joinpath("package_roles.json").read_text(encoding="utf-8"))


def test_every_section_names_its_source() -> None:
    data = raw()
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    assert set(sections) == {"roles", "conda", "pip", "jit_consumers", "pin_movers", "group"}
    assert all(isinstance(v.get("source"), str) and v["source"] for v in sections.values())
    group = sections["group"]
    for part in ("anchors", "metapackages", "components", "libraries", "major_tied", "consumers"):
        assert group[f"{part}_source"], part  # every group part keeps the source it had in cuda_groups.json


def test_each_name_has_one_row() -> None:
    data = raw()
    for section in ("conda", "pip"):
        names = [row["name"] for row in data[section]["rows"]]  # type: ignore[index]
        assert len(names) == len(set(names)), section


def test_the_group_table_no_longer_keeps_its_own_kinds() -> None:
    """data/cuda_groups.json keeps versions and build forms; which name is which kind is the role table's."""
    groups = json.loads(resources.files("condafix.data").joinpath("cuda_groups.json").read_text(encoding="utf-8"))
    assert not {"libraries", "major_tied", "consumers"} & set(groups)
    assert "names" not in groups["metapackages"] and "prefixes" not in groups["components"]
    assert all("kind" not in row for row in groups["anchors"]["rows"])


@pytest.mark.parametrize(
    ("name", "role", "kind", "moves"),
    [
        # expectations from the CUDA packaging facts, not from the table
        ("cuda-version", "pin", "pin", True),
        ("cuda-nvvm-impl", "nvvm", "component", True),  # NVVM writes the PTX; pins cuda-version X.Y
        ("cuda-nvcc_linux-aarch64", "nvvm", "component", True),  # the per-target split of cuda-nvcc
        ("cuda-cudart_linux-aarch64", "runtime", "component", True),
        ("libnvjitlink", "nvjitlink", "component", True),
        ("libcublas", None, "library", True),  # its version (12.4.5.8) does not name the CUDA release
        ("cuda-compat", "compat", None, False),  # a driver for data-center GPUs, never moved with the toolkit
        ("cuda-python", None, "major", False),  # binds a CUDA major, needs no minor pin
        ("numba-cuda", "consumer", "consumer", False),
        ("numba", "consumer", None, False),  # CUDA reaches it only through numba-cuda or cudatoolkit
        ("numpy", None, None, False),
    ],
)
def test_the_doctor_the_planner_and_the_group_read_one_table(
    name: str, role: str | None, kind: str | None, moves: bool
) -> None:
    assert envinfo.conda_role(name) == role
    assert cudagroup.kind_of(name) == kind
    assert roles.moves_with_pin(name) is moves


def test_an_aarch64_runtime_split_never_blocks_the_pin() -> None:
    """``cuda-cudart_linux-aarch64`` pins cuda-version to its own X.Y and moves with it. The planner's
    own mover list named only the linux-64 splits, so on aarch64 it reported the runtime as a blocker."""
    installed = [
        Record(name="cuda-cudart_linux-aarch64", version="12.9.79", build="h3ae8b8a_0",
               depends=("cuda-version >=12.9,<12.10.0a0",)),
        Record(name="somepkg", version="1.0", build="0", depends=("cuda-version >=12.9,<12.10.0a0",)),
    ]  # fmt: skip

    def matches(spec: str, _name: str, version: str) -> bool:
        return version.startswith("12.9")

    blockers = blocking.find_blockers(
        installed, "cuda-version", CudaVersion(major=12, minor=4), ["12.4", "12.9"], matches
    )
    assert [b.name for b in blockers] == ["somepkg"]


def test_a_pip_wheel_and_the_jit_rule_read_the_same_table() -> None:
    assert envinfo.component_cuda("nvidia-cuda-nvrtc-cu12", "12.4.127", "", "nvrtc") == "12.4"
    assert roles.pip_role("nvidia-cuda-nvrtc-cu12") == "nvrtc"
    assert {"numba-cuda", "cupy", "jaxlib"} <= roles.table().jit_consumers
    assert roles.table().ptx_writers == {"pin", "toolkit", "nvvm", "nvrtc"}


@pytest.mark.parametrize(
    ("build", "cuda", "token", "form"),
    [
        ("cuda112py39h0_300", "11.2", "cuda112", "cuda{major}{minor}"),
        ("cuda128_generic_py312_h1_300", "12.8", "cuda128", "cuda{major}{minor}"),
        ("py3.10_cuda11.3_cudnn8.3.2_0", "11.3", "cuda11.3", "cuda{major}.{minor}"),
        ("cuda_11.8_py39", "11.8", "cuda_11.8", "cuda_{major}.{minor}"),
        ("py38_cu102", "10.2", "cu102", "cu{major}{minor}"),
    ],
)
def test_one_build_parser_gives_the_place_and_the_style(build: str, cuda: str, token: str, form: str) -> None:
    """Env-file rewrites once used a second parser (regexes in cuda_groups.json); the one parser now
    says where the CUDA stands and how to write another one in the same style."""
    found = roles.build_cuda(build)
    assert found is not None and found.cuda == cuda and found.form == form
    assert build[found.start : found.end] == token
    assert found.form.format(major=12, minor=4) in ("cuda124", "cuda12.4", "cuda_12.4", "cu124")
