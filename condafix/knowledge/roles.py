"""What a package's name, version and build say about CUDA: the one package-role table and the one
build-string parser.

The role table is ``data/package_roles.json`` (with sources): a package's ``role`` is what the doctor
reads it as, its group ``kind`` is how a file or the planner moves it with the CUDA pin. Three copies
of it (the doctor's, the planner's, the env-file group's) once drifted apart.

Why one: three parsers once disagreed, and the one in the paste reader read the pytorch build
``py3.10_cuda11.3_cudnn8.3.2_0`` as CUDA 1.1 (a packed ``cu113`` form matched before the dotted one).
The dotted form (``cuda11.3``, ``cuda_11.8``) is tried where it stands; packed digits (``cuda129``,
``cuda112py39h...``, torchvision's ``py38_cu102``) read as major + last digit; a pip local version
(``2.5.1+cu121``) likewise.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

Role = Literal["pin", "toolkit", "nvvm", "nvrtc", "nvjitlink", "runtime", "consumer", "framework", "compat", "linker"]
Kind = Literal["pin", "toolkit", "pytorch-cuda", "metapackage", "component", "library", "build", "major", "consumer"]

# one pass, no nested repeats (linear on any input): cuda[_]M.m | cuda[_]Mm | _cuMm_
_BUILD = re.compile(r"cuda_?(\d+)(?:\.(\d+))?|(?:^|[_.])cu(\d{2,3})(?=[_.]|$)")
_LOCAL = re.compile(r"\+cu(\d{2,3})\b")


def _data_text(name: str) -> str:
    from condafix.knowledge.cuda import data_text  # the one table reader (no import cycle at load)

    return data_text(name)


def _packed(digits: str) -> str | None:
    """``129`` -> 12.9, ``102`` -> 10.2; one digit is no CUDA version."""
    if len(digits) < 2:
        return None
    return f"{int(digits[:-1])}.{digits[-1]}"


@dataclass(frozen=True, kw_only=True)
class BuildCuda:
    """Where a build string names its CUDA, and how to write another CUDA in the same style.

    ``form`` takes ``major`` and ``minor`` (``cuda{major}{minor}``, ``cuda_{major}.{minor}``,
    ``cu{major}{minor}``), so an env file's ``*cuda118*`` becomes ``*cuda124*`` and not ``*cuda12.4*``.
    Sources: [V] pytorch-cpu-feedstock builds ``cuda{XY}_...``; [S] pytorch channel builds
    ``py3.X_cudaX.Y_cudnn..._0``; torchvision's ``py38_cu102``.
    """

    cuda: str
    start: int
    end: int
    form: str


def build_cuda(build: str) -> BuildCuda | None:
    """The CUDA a build string names, with its place in the text (the one build-string parser)."""
    match = _BUILD.search(build)
    if not match:
        return None
    if match.group(1) is not None:
        sep = "_" if build[match.start() + 4 : match.start() + 5] == "_" else ""
        if match.group(2) is not None:
            cuda: str | None = f"{int(match.group(1))}.{int(match.group(2))}"
            form = f"cuda{sep}{{major}}.{{minor}}"
        else:
            cuda, form = _packed(match.group(1)), f"cuda{sep}{{major}}{{minor}}"
        start, end = match.start(), match.end()
    else:
        cuda, form = _packed(match.group(3)), "cu{major}{minor}"
        start, end = match.start(3) - 2, match.end(3)
    if cuda is None:
        return None
    return BuildCuda(cuda=cuda, start=start, end=end, form=form)


def cuda_of_build(build: str) -> str | None:
    """CUDA of a build string: ``cuda129_generic_py312_h1_300``, ``py3.10_cuda11.3_cudnn8.3.2_0``, ``py38_cu102``."""
    found = build_cuda(build)
    return found.cuda if found else None


def cuda_of_local_version(version: str) -> str | None:
    """CUDA of a pip local version: ``2.5.1+cu121`` -> 12.1."""
    match = _LOCAL.search(version)
    return _packed(match.group(1)) if match else None


# ---------------------------------------------------------------- the package-role table


@dataclass(frozen=True, kw_only=True)
class RoleTable:
    """data/package_roles.json, validated at load time."""

    conda: Mapping[str, Role]
    conda_prefixes: tuple[tuple[str, Role], ...]
    pip: Mapping[str, Role]
    ptx_writers: frozenset[Role]
    mover_roles: frozenset[Role]
    pin_movers: frozenset[str]
    jit_consumers: frozenset[str]
    anchors: Mapping[str, Kind]
    metapackages: frozenset[str]
    component_prefixes: tuple[str, ...]
    component_exclude: frozenset[str]
    library_prefixes: tuple[str, ...]
    major_tied: frozenset[str]
    consumers: frozenset[str]
    sources: Mapping[str, str]


_ROLES = frozenset(Role.__args__)  # type: ignore[attr-defined]
_KINDS = frozenset(Kind.__args__)  # type: ignore[attr-defined]


def _role(value: object, where: str) -> Role:
    if value not in _ROLES:
        raise ValueError(f"package_roles.json {where}: unknown role {value!r}")
    return cast(Role, value)


@functools.cache
def table() -> RoleTable:
    """Load the table once per process; an unknown role or kind is a packaging bug, caught by the tests."""
    raw: dict[str, Any] = json.loads(_data_text("package_roles.json"))
    group = raw["group"]
    anchors: dict[str, Kind] = {}
    for row in group["anchors"]:
        if row["kind"] not in _KINDS:
            raise ValueError(f"package_roles.json group.anchors: unknown kind {row['kind']!r}")
        anchors[row["name"]] = row["kind"]
    sources = {key: value["source"] for key, value in raw.items() if isinstance(value, dict) and "source" in value}
    sources |= {f"group.{key}": value for key, value in group.items() if key.endswith("_source")}
    return RoleTable(
        conda={row["name"]: _role(row["role"], "conda") for row in raw["conda"]["rows"]},
        conda_prefixes=tuple((row["prefix"], _role(row["role"], "conda.prefixes")) for row in raw["conda"]["prefixes"]),
        pip={row["name"]: _role(row["role"], "pip") for row in raw["pip"]["rows"]},
        ptx_writers=frozenset(_role(r, "roles.ptx_writers") for r in raw["roles"]["ptx_writers"]),
        mover_roles=frozenset(_role(r, "roles.movers") for r in raw["roles"]["movers"]),
        pin_movers=frozenset(raw["pin_movers"]["names"]),
        jit_consumers=frozenset(raw["jit_consumers"]["names"]),
        anchors=anchors,
        metapackages=frozenset(group["metapackages"]),
        component_prefixes=tuple(group["component_prefixes"]),
        component_exclude=frozenset(group["component_exclude"]),
        library_prefixes=tuple(group["library_prefixes"]),
        major_tied=frozenset(group["major_tied"]),
        consumers=frozenset(group["consumers"]),
        sources=sources,
    )


def conda_role(name: str) -> Role | None:
    """What the doctor reads a conda package as (``cuda-nvcc_linux-64`` -> nvvm), None when no CUDA part."""
    t = table()
    role = t.conda.get(name)
    if role is None:
        role = next((r for prefix, r in t.conda_prefixes if name.startswith(prefix)), None)
    return role


def pip_role(name: str) -> Role | None:
    """The same for a normalized pip distribution name (``nvidia-cuda-nvrtc-cu12`` -> nvrtc)."""
    return table().pip.get(name)


def name_kind(name: str) -> Kind | None:
    """Which part of the CUDA group a package name is, by its name alone (build strings: files/cudagroup)."""
    t = table()
    if name in t.anchors:
        return t.anchors[name]
    if name in t.metapackages:
        return "metapackage"
    if name in t.major_tied:
        return "major"
    if name.startswith(t.library_prefixes):
        return "library"
    if name not in t.component_exclude and name.startswith(t.component_prefixes):
        return "component"
    if name in t.consumers:
        return "consumer"
    return None


def pin_mover(name: str) -> bool:
    """A CTK part pinned to cuda-version's X.Y (by role, or a -dev/-static/_linux-64 companion): it moves
    with the pin, so its own cuda-version requirement never blocks one (other builds exist)."""
    t = table()
    role = conda_role(name)
    return (role is not None and role in t.mover_roles) or name in t.pin_movers


def moves_with_pin(name: str) -> bool:
    """A requested spec on this package loses its version so the CUDA group moves together: the pin
    movers and the group's anchors, metapackages (full releases), components and CTK libraries."""
    return pin_mover(name) or name_kind(name) in (
        "pin",
        "toolkit",
        "pytorch-cuda",
        "metapackage",
        "component",
        "library",
    )
