"""Deterministic generator of conda-forge-sized channels, written monolithic and sharded (CEP 16).

Why synthetic: conda-forge is not reachable from CI or the bench machines, and a solver's cost
depends on the shape of the repodata (how many records per name, how deep the dependency graph,
how many python variants), not on real package contents. So the channel imitates that shape:

- a fixed *core* (the same at every size): python 3.10-3.13 with ``python_abi``, the real CUDA
  12/13 layout of conda-forge (``cuda-version`` with ``__cuda >=MAJOR`` constrains, the CTK
  components pinned to ``cuda-version >=X.Y,<X.(Y+1).0a0``, ``cudatoolkit`` 11.x, numba,
  numba-cuda, cupy, ...) and ~280 library/python names whose dependencies stay inside the core,
  so a 300-package env made of the core is always consistent;
- *filler* names with heavy-tailed record counts (log-normal, capped), versions that move by
  patch/minor/major or by calendar, python variants (``py310..py313`` builds with
  ``python_abi``), noarch python and C libraries with ``__glibc``/``libgcc`` run exports, 5%
  ``constrains``; their dependencies point at the core and at earlier filler names.

Core names also grow with the size (newer versions appended), so a 700k channel has more python
and numpy records than a 50k one, as conda-forge does. Everything is derived from
``random.Random(f"{seed}:{name}")``: the same size and seed give byte-identical files.

Layout written under ``root``::

    mono/{linux-64,noarch}/repodata.json
    sharded/{linux-64,noarch}/repodata_shards.msgpack.zst   (index: name -> sha256 of the shard file)
    sharded/{linux-64,noarch}/shards/<sha256>.msgpack.zst    (one per name: packages.conda, removed)
    sharded/{linux-64,noarch}/repodata.json -> ../../mono/...  (clients without shards fall back)

The shard format was checked against rattler's ``ShardedRepodata``/``Shard`` types and against
what ``rattler.index.index_fs(write_shards=True)`` writes: msgpack, zstd, ``sha256``/``md5`` as
raw bytes, shard file named by the sha256 of its compressed bytes, ``shards_base_url`` relative.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENERATOR_VERSION = "4"
SEED = "condafix-bench"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
ENV_PYTHON = "3.12"
TIMESTAMP0 = 1_640_000_000_000  # ms, 2021-12-20
GLIBC = "__glibc >=2.17,<3.0.a0"
SUBDIRS = ("linux-64", "noarch")

# ---------------------------------------------------------------- the CUDA layout (conda-forge)

# cuda-version builds on conda-forge (no 12.7), CTK component patch releases per minor
# (cuda-nvcc feedstock history; shared/reference/cuda-facts.md §2.2).
CUDA_MINORS_11 = ("11.0", "11.1", "11.2", "11.3", "11.4", "11.5", "11.6", "11.7", "11.8")
CTK_RELEASES: dict[str, tuple[str, ...]] = {
    "12.0": ("12.0.76",),
    "12.1": ("12.1.105",),
    "12.2": ("12.2.128", "12.2.140"),
    "12.3": ("12.3.52", "12.3.107"),
    "12.4": ("12.4.99", "12.4.127", "12.4.131"),
    "12.5": ("12.5.40", "12.5.82"),
    "12.6": ("12.6.20", "12.6.68", "12.6.77", "12.6.85"),
    "12.8": ("12.8.61", "12.8.93"),
    "12.9": ("12.9.41", "12.9.79", "12.9.86"),
    "13.0": ("13.0.48", "13.0.88"),
    "13.1": ("13.1.80", "13.1.115"),
    "13.2": ("13.2.51", "13.2.78"),
}
CTK_COMPONENTS = (
    "cuda-nvvm-impl",
    "cuda-nvrtc",
    "cuda-cudart",
    "libnvjitlink",
    "cuda-nvcc-impl",
    "cuda-nvcc-tools",
    "cuda-crt-tools",
    "cuda-cudart-dev",
    "cuda-nvrtc-dev",
    "libnvjitlink-dev",
)
# Math libraries carry their own version numbers, still pinned to the cuda-version minor.
CTK_LIBS = ("libcublas", "libcufft", "libcurand", "libcusparse", "libcusolver")
CUDATOOLKIT = ("11.2.2", "11.3.1", "11.4.3", "11.5.2", "11.6.2", "11.7.1", "11.8.0")

ENV_CUDA = "12.9"  # the env the bench plans for: toolkit 12.9 on a CUDA 12.4 driver
TARGET_CUDA = "12.4"
CORE_SIZE = 300  # the big env = every core name


def _upper(minor: str) -> str:
    major, low = minor.split(".")
    return f"{major}.{int(low) + 1}.0a0"


def _hash(rng: random.Random) -> str:
    return "h" + "".join(rng.choice("0123456789abcdef") for _ in range(7))


@dataclass
class Rec:
    """One repodata record before serialisation (``fn`` is ``name-version-build.conda``)."""

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    depends: list[str]
    constrains: list[str]
    noarch: str | None
    timestamp: int
    size: int
    sha: bytes
    md5: bytes
    license: str = "BSD-3-Clause"

    @property
    def fn(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.conda"

    def as_dict(self, *, binary: bool) -> dict[str, Any]:
        """The record as repodata.json (hex digests) or a shard (raw bytes) carries it."""
        out: dict[str, Any] = {
            "build": self.build,
            "build_number": self.build_number,
            "depends": self.depends,
        }
        if self.constrains:
            out["constrains"] = self.constrains
        out["license"] = self.license
        out["md5"] = self.md5 if binary else self.md5.hex()
        out["name"] = self.name
        if self.noarch:
            out["noarch"] = self.noarch
        out["sha256"] = self.sha if binary else self.sha.hex()
        out["size"] = self.size
        out["subdir"] = self.subdir
        out["timestamp"] = self.timestamp
        out["version"] = self.version
        return out


def _record(
    rng: random.Random,
    name: str,
    version: str,
    build: str,
    build_number: int,
    subdir: str,
    depends: list[str],
    constrains: list[str] | None = None,
    noarch: str | None = None,
) -> Rec:
    digest = hashlib.sha256(f"{name}/{version}/{build}/{subdir}".encode()).digest()
    return Rec(
        name,
        version,
        build,
        build_number,
        subdir,
        depends,
        constrains or [],
        noarch,
        TIMESTAMP0 + rng.randrange(0, 150_000_000_000),
        int(rng.lognormvariate(12, 1.5)),
        digest,
        digest[:16],
    )


def cuda_records() -> Iterator[Rec]:
    """conda-forge's CUDA packages, as their feedstocks pin them."""
    rng = random.Random(f"{SEED}:cuda")
    for minor in (*CUDA_MINORS_11, *CTK_RELEASES):
        major = minor.split(".")[0]
        for number in range(4):
            constrains = (
                [f"__cuda >={major}"] if number < 1 else [f"__cuda >={major}", f"cudatoolkit {minor}|{minor}.*"]
            )
            yield _record(
                rng, "cuda-version", minor, f"{_hash(rng)}_{number}", number, "noarch", [], constrains, "generic"
            )
    for full in CUDATOOLKIT:
        for number in (11, 12, 13):
            yield _record(
                rng, "cudatoolkit", full, f"{_hash(rng)}_{number}", number, "linux-64",
                [GLIBC, "libgcc-ng >=12", "libstdcxx-ng >=12"], ["__cuda >=11"],
            )  # fmt: skip
    for minor, releases in CTK_RELEASES.items():
        pin = f"cuda-version >={minor},<{_upper(minor)}"
        for release in releases:
            for comp in CTK_COMPONENTS:
                deps = [pin, GLIBC]
                if comp.endswith("-dev"):
                    deps.append(f"{comp[:-4]} {release} *_0")
                for number in range(2):
                    yield _record(rng, comp, release, f"{_hash(rng)}_{number}", number, "linux-64", deps)
            for index, lib in enumerate(CTK_LIBS):
                major = 10 + index
                patch = release.rsplit(".", 1)[-1]
                version = f"{major}.{minor.split('.')[1]}.{index}.{patch}"
                yield _record(rng, lib, version, f"{_hash(rng)}_0", 0, "linux-64", [pin, GLIBC, "libgcc >=13"])
        # noarch per-platform cudart pieces
        for release in releases:
            yield _record(rng, "cuda-cudart_linux-64", release, "h3f2d84a_0", 0, "noarch", [pin], None, "generic")
    # numba-cuda: noarch python, cuda-version >=12 unbounded (the source of the drift).
    for index in range(12):
        version = f"0.{14 + index}.{rng.randrange(0, 4)}"
        deps = [
            "python >=3.10",
            "numba >=0.59",
            "cuda-version >=12",
            "cuda-nvvm-impl",
            "cuda-nvrtc",
            "cuda-cudart",
            "libnvjitlink",
        ]
        yield _record(rng, "numba-cuda", version, "pyh29b5f1c_0", 0, "noarch", deps, None, "python")
    for index, version in enumerate(("0.59.1", "0.60.0", "0.61.0", "0.61.2")):
        for py in PYTHONS:
            tag = py.replace(".", "")
            deps = [
                f"python >={py},<{_upper(py)}",
                f"python_abi {py}.* *_cp{tag}",
                "numpy >=1.24,<2.3",
                GLIBC,
            ]
            constrains = ["cuda-version >=11.2", "cudatoolkit >=11.2", "cuda-python >=11.6"]
            yield _record(
                rng, "numba", version, f"py{tag}{_hash(rng)}_{index % 2}", index % 2, "linux-64", deps, constrains
            )
    for cuda_major, minors in (("12", ("12.2", "12.9")), ("13", ("13.0", "13.2"))):
        for version in ("13.3.0", "13.4.1", "13.6.0", "14.0.1"):
            for py in PYTHONS:
                tag = py.replace(".", "")
                deps = [
                    f"python >={py},<{_upper(py)}",
                    f"python_abi {py}.* *_cp{tag}",
                    f"cuda-version >={cuda_major},<{int(cuda_major) + 1}.0a0",
                    "cuda-nvrtc",
                    "libcublas",
                    "libcufft",
                    "libcurand",
                    "libcusparse",
                    "libcusolver",
                    "numpy >=1.24,<3",
                    "fastrlock >=0.8.2",
                    GLIBC,
                    "libgcc >=13",
                    "libstdcxx >=13",
                ]
                build = f"py{tag}h{cuda_major}{minors[0].replace('.', '')}{rng.randrange(100, 999)}_0"
                yield _record(rng, "cupy", version, build, 0, "linux-64", deps)
    for version in ("2.6.0", "2.7.1", "2.8.0", "2.9.0"):
        for cuda in ("126", "129"):
            for py in PYTHONS:
                tag = py.replace(".", "")
                minor = f"{cuda[:2]}.{cuda[2:]}"
                deps = [
                    f"python >={py},<{_upper(py)}",
                    f"python_abi {py}.* *_cp{tag}",
                    f"cuda-version >={minor},<13",
                    "cuda-cudart",
                    "cuda-nvrtc",
                    "libcublas",
                    "__cuda",
                    "numpy >=1.24",
                    GLIBC,
                ]
                build = f"cuda{cuda}_generic_py{tag}{_hash(rng)}_300"
                yield _record(rng, "pytorch", version, build, 300, "linux-64", deps)


# ---------------------------------------------------------------- core and filler names


SYLLABLES = (
    "ar", "bo", "ca", "da", "el", "fi", "ga", "he", "io", "ju", "ka", "lo", "mu", "ne", "or", "pa",
    "qu", "ri", "sa", "to", "un", "ve", "wi", "xa", "yo", "ze", "py", "lib", "net", "geo", "sci", "bio",
)  # fmt: skip
KINDS = ("pyext", "noarch", "clib")


@dataclass(frozen=True)
class Name:
    name: str
    kind: str  # pyext (python variants), noarch (noarch python) or clib
    index: int


def _synth_name(rng: random.Random, kind: str, taken: set[str]) -> str:
    while True:
        stem = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 4))))
        name = {"pyext": stem, "noarch": stem, "clib": f"lib{stem}"}[kind]
        if rng.random() < 0.25:
            name = rng.choice(("r-", "py-", "perl-", "")) + name
        if name not in taken:
            taken.add(name)
            return name


def core_names() -> list[Name]:
    """The fixed core: python's runtime pieces, then synthetic names (a DAG in index order)."""
    fixed = [
        Name("libgcc", "clib", 0),
        Name("libstdcxx", "clib", 1),
        Name("libzlib", "clib", 2),
        Name("openssl", "clib", 3),
        Name("python_abi", "abi", 4),
        Name("python", "python", 5),
        Name("numpy", "pyext", 6),
        Name("llvmlite", "pyext", 7),
        Name("fastrlock", "pyext", 8),
        Name("libgcc-ng", "clib", 9),
        Name("libstdcxx-ng", "clib", 10),
    ]
    for lib in RUNTIME_LIBS:
        fixed.append(Name(lib, "noarch" if lib in ("pip", "setuptools", "wheel", "tzdata") else "clib", len(fixed)))
    rng = random.Random(f"{SEED}:core-names")
    taken = {n.name for n in fixed}
    out = list(fixed)
    synthetic = CORE_SIZE - (len(fixed) - len(NOT_IN_ENV)) - len(ENV_CUDA_NAMES)
    while len(out) < len(fixed) + synthetic:
        kind = rng.choice(KINDS)
        out.append(Name(_synth_name(rng, kind, taken), kind, len(out)))
    return out


# The CUDA part of the small env, and what the big env adds from the CUDA records.
ENV10_CUDA = ("cuda-version", "cuda-nvvm-impl", "cuda-nvrtc", "cuda-cudart", "libnvjitlink", "numba", "numba-cuda")
ENV_CUDA_NAMES = (*ENV10_CUDA, "cupy", *CTK_LIBS)
ENV10 = ("python", "python_abi", "numpy", *ENV10_CUDA)
NOT_IN_ENV = ("libgcc-ng", "libstdcxx-ng")
# What newer python/numpy builds link against (conda-forge's python depends on all of these).
RUNTIME_LIBS = (
    *("bzip2", "libffi", "ncurses", "readline", "sqlite", "tk", "tzdata", "xz", "libuuid", "libexpat"),
    *("libblas", "libcblas", "liblapack", "libopenblas", "pip", "setuptools", "wheel"),
)
EXTRA_POOL_FILLER = 1500  # newer core versions may depend on the first filler names (all exist from 50k on)
LEAF_LIBS = ("libgcc", "libstdcxx", "libzlib")
CORE_DEPTH = 5  # dependency chains stay conda-forge-short: conda's classic solver recurses along them
FILLER_DEPTH = 8
# Names other packages pin with versions: their version lines are fixed so those pins resolve.
SPECIAL_VERSIONS = {
    "libgcc": ("13.1.0", "13.2.0", "14.1.0", "14.2.0"),
    "libstdcxx": ("13.1.0", "13.2.0", "14.1.0", "14.2.0"),
    "libgcc-ng": ("12.3.0", "13.2.0", "14.1.0", "14.2.0"),
    "libstdcxx-ng": ("12.3.0", "13.2.0", "14.1.0", "14.2.0"),
    "numpy": ("1.24.4", "1.26.4", "2.0.2", "2.1.3"),
    "fastrlock": ("0.8.2", "0.8.3", "0.8.4", "0.8.5"),
    "llvmlite": ("0.42.0", "0.43.0", "0.44.0", "0.45.1"),
}


def _versions(rng: random.Random, count: int) -> list[str]:
    """An increasing version sequence: patch/minor/major steps, or calendar versions."""
    if rng.random() < 0.12:
        year, month, day = 2019 + rng.randrange(0, 3), 1, 1
        out = []
        for _ in range(count):
            month += rng.randrange(1, 3)
            if month > 12:
                year, month = year + 1, month - 12
            day = rng.randrange(1, 28)
            out.append(f"{year}.{month}.{day}")
        return out
    major, minor, patch = rng.choice((0, 0, 1, 1, 2, 3, 5, 11)), rng.randrange(0, 12), rng.randrange(0, 5)
    out = []
    for _ in range(count):
        step = rng.random()
        if step < 0.65:
            patch += 1
        elif step < 0.95:
            minor, patch = minor + 1, 0
        else:
            major, minor, patch = major + 1, 0, 0
        out.append(f"{major}.{minor}.{patch}")
    return out


def _dep_spec(rng: random.Random, dep: str, first: str) -> str:
    """A dependency on ``dep`` that every version of it since ``first`` satisfies."""
    roll = rng.random()
    if roll < 0.3:
        return dep
    if roll < 0.8:
        return f"{dep} >={first}"
    major = first.split(".")[0]
    return f"{dep} >={first},<{int(major) + 100}"


def _python_records(extra: int) -> Iterator[Rec]:
    patches = {"3.10": 14, "3.11": 11, "3.12": 7, "3.13": 1}
    for py, last in patches.items():
        rng = random.Random(f"{SEED}:python-{py}")  # one stream per minor: growth appends, never shifts
        links = [f"{lib} >=0" for lib in RUNTIME_LIBS if lib not in ("pip", "setuptools", "wheel")]
        for patch in range(max(2, last + extra // 4)):
            version = f"{py}.{patch}"
            deps = [GLIBC] if patch < last else [GLIBC, "libgcc >=13", *links]
            for number in range(1 + (patch % 2)):
                build = f"{_hash(rng)}_{number}_cpython"
                yield _record(rng, "python", version, build, number, "linux-64", deps)
    rng = random.Random(f"{SEED}:python_abi")
    for py in PYTHONS:
        tag = py.replace(".", "")
        yield _record(rng, "python_abi", f"{py}", f"8_cp{tag}", 8, "linux-64", [], [f"python {py}.* *_cpython"])


def _name_records(
    rng: random.Random,
    item: Name,
    versions: list[str],
    deps_of: list[str],
    *,
    pythons: tuple[str, ...],
    extra: dict[int, list[str]] | None = None,
) -> Iterator[Rec]:
    for position, version in enumerate(versions):
        number = position % 3 if rng.random() < 0.3 else 0
        more = (extra or {}).get(position, [])
        if item.kind == "pyext":
            for py in pythons:
                tag = py.replace(".", "")
                deps = [f"python >={py},<{_upper(py)}", f"python_abi {py}.* *_cp{tag}", GLIBC]
                deps += [] if item.name == "numpy" else ["libgcc >=13", *deps_of]
                yield _record(rng, item.name, version, f"py{tag}{_hash(rng)}_{number}", number, "linux-64", deps + more)
        elif item.kind == "noarch":
            deps = ["python >=3.10", *deps_of, *more] if item.name != "tzdata" else list(more)
            yield _record(rng, item.name, version, f"pyhd8ed1ab_{number}", number, "noarch", deps, None, "python")
        else:
            runtime = [] if item.name in SPECIAL_VERSIONS else ["libgcc >=13", "libstdcxx >=13"]
            deps = [GLIBC, *runtime, *deps_of, *more]
            constrains = [f"{deps_of[0].split()[0]} >=0"] if deps_of and rng.random() < 0.05 else None
            yield _record(rng, item.name, version, f"{_hash(rng)}_{number}", number, "linux-64", deps, constrains)


BASE_VERSIONS = 4  # versions of every core name present at every size (the envs use the newest)


def core_records(scale: float) -> Iterator[Rec]:
    """The core at a size: ``BASE_VERSIONS`` fixed versions per name plus newer ones growing with scale.

    Each name has its own random streams (versions, dependencies, builds), so a bigger size only
    appends records: the records of the smallest size exist, byte for byte, in every larger one.
    """
    names = core_names()
    firsts: dict[str, str] = {}
    level: dict[str, int] = {}
    candidates = [n for n in names if n.kind in KINDS and n.name not in SPECIAL_VERSIONS]
    fixed = {"libzlib", "openssl", *RUNTIME_LIBS}
    pool = [lib for lib in RUNTIME_LIBS if lib != "tzdata"] + filler_names(EXTRA_POOL_FILLER)
    for item in names:
        if item.kind == "python":
            yield from _python_records(int(8 * scale))
            continue
        if item.kind == "abi":
            continue  # written with python
        rng = random.Random(f"{SEED}:{item.name}:versions")
        extra = int(rng.lognormvariate(1.2, 0.9) * scale)
        base = list(SPECIAL_VERSIONS.get(item.name, ()))
        if base:
            last = [int(p) for p in base[-1].split(".")]
            versions = base + [f"{last[0]}.{last[1] + 1 + i}.0" for i in range(extra)]
        else:
            versions = _versions(rng, BASE_VERSIONS + extra)
        firsts[item.name] = versions[0]
        # A DAG of bounded depth (conda's classic solver recurses along dependency chains): the
        # runtime libraries depend only on each other, everything else on names CORE_DEPTH deep at most.
        deps_of: list[str] = []
        earlier = [
            n
            for n in candidates
            if n.index < item.index and level[n.name] < CORE_DEPTH and (item.name not in fixed or n.name in fixed)
        ]
        dep_rng = random.Random(f"{SEED}:{item.name}:depends")
        if earlier and item.name not in SPECIAL_VERSIONS:
            for dep in dep_rng.sample(earlier, k=min(len(earlier), dep_rng.choice((0, 1, 1, 2, 2, 3, 4)))):
                deps_of.append(_dep_spec(dep_rng, dep.name, firsts[dep.name]))
        level[item.name] = 1 + max((level[d.split()[0]] for d in deps_of), default=-1)
        extra_rng = random.Random(f"{SEED}:{item.name}:extra-depends")
        # Newer versions reach into the first filler names, which depend only on leaf libraries
        # (libgcc, libstdcxx, libzlib): chains grow with the channel but never lead back here.
        reach = [] if item.name in LEAF_LIBS else [d for d in pool if d not in fixed or item.name not in fixed]
        more: dict[int, list[str]] = {}
        for position in range(BASE_VERSIONS if item.name not in SPECIAL_VERSIONS else len(base), len(versions)):
            if item.name == "numpy":
                more[position] = ["libblas >=0", "libcblas >=0", "liblapack >=0", "libgcc >=13"]
            elif reach:
                picked = extra_rng.sample(reach, k=extra_rng.choice((0, 1, 1, 2, 3)))
                more[position] = [f"{d} >=0" for d in picked]
        build_rng = random.Random(f"{SEED}:{item.name}:builds")
        yield from _name_records(build_rng, item, versions, deps_of, pythons=PYTHONS, extra=more)


def _filler_stream() -> Iterator[Name]:
    """The filler names, always in the same order (a bigger channel just goes further)."""
    rng = random.Random(f"{SEED}:filler-names")
    taken = {n.name for n in core_names()} | {"numba", "numba-cuda", "cupy", "pytorch", "cudatoolkit"}
    taken |= {"cuda-version", *CTK_COMPONENTS, *CTK_LIBS}
    index = 0
    while True:
        kind = rng.choices(KINDS, weights=(3, 4, 3))[0]
        yield Name(_synth_name(rng, kind, taken), kind, index)
        index += 1


@functools.cache
def filler_names(count: int) -> list[str]:
    stream = _filler_stream()
    return [next(stream).name for _ in range(count)]


def filler_records(target: int, core_count: int) -> Iterator[Rec]:
    """Heavy-tailed names until about ``target`` records in all."""
    names = core_names()
    core_deps = [n.name for n in names if n.kind not in ("python", "abi")]
    depth: dict[str, int] = {}
    written = core_count
    filler: list[str] = []
    firsts: dict[str, str] = {}
    stream = _filler_stream()
    while written < target:
        item = next(stream)
        kind = item.kind
        own = random.Random(f"{SEED}:{item.name}")
        per_version = len(PYTHONS) if kind == "pyext" else 1
        records = min(6000, max(1, int(own.lognormvariate(2.2, 1.4))))
        count = max(1, min(records // per_version, (target - written) // per_version or 1))
        versions = _versions(own, count)
        firsts[item.name] = versions[0]
        deps_of = []
        # The first filler names are what newer core versions reach into: they depend only on the
        # runtime libraries and on each other, so no chain leads back into the core.
        reach = list(LEAF_LIBS) if item.index < EXTRA_POOL_FILLER else core_deps
        for dep in own.sample(reach, k=own.choice((0, 1, 1, 2, 3))):
            deps_of.append(_dep_spec(own, dep, "0"))
        shallow = [n for n in filler[-2000:] if depth[n] < FILLER_DEPTH]
        if shallow:
            for dep in own.sample(shallow, k=min(len(shallow), own.choice((0, 0, 1, 2)))):
                deps_of.append(_dep_spec(own, dep, firsts[dep]))
        depth[item.name] = 1 + max((depth.get(d.split()[0], 0) for d in deps_of), default=0)
        pythons = PYTHONS[own.randrange(0, 3) :] if kind == "pyext" else PYTHONS
        for rec in _name_records(own, item, versions, deps_of, pythons=pythons):
            written += 1
            yield rec
        filler.append(item.name)


def all_records(size: int) -> Iterator[Rec]:
    """Every record of a channel of about ``size`` records, in a fixed order."""
    scale = max(1.0, size / 50_000)
    count = 0
    for rec in (*cuda_records(), *core_records(scale)):
        count += 1
        yield rec
    yield from filler_records(size, count)


# ---------------------------------------------------------------- writing


def _zstd() -> Any:
    import zstandard

    return zstandard.ZstdCompressor(level=3)


def write_channel(root: Path, size: int) -> dict[str, int]:
    """Write ``root/mono`` and ``root/sharded`` for a channel of about ``size`` records."""
    import msgpack

    by_subdir: dict[str, dict[str, list[Rec]]] = {s: {} for s in SUBDIRS}
    total = 0
    for rec in all_records(size):
        by_subdir[rec.subdir].setdefault(rec.name, []).append(rec)
        total += 1
    compressor = _zstd()
    stats = {"records": total, "names": 0, "shards": 0}
    for subdir, names in by_subdir.items():
        mono = root / "mono" / subdir
        sharded = root / "sharded" / subdir
        (sharded / "shards").mkdir(parents=True, exist_ok=True)
        mono.mkdir(parents=True, exist_ok=True)
        tmp = mono / "repodata.json.tmp"
        with tmp.open("w", encoding="utf-8") as out:
            out.write('{"info":{"subdir":' + json.dumps(subdir) + '},"packages":{},"packages.conda":{')
            first = True
            for name in sorted(names):
                for rec in names[name]:
                    out.write(("" if first else ",") + json.dumps(rec.fn) + ":")
                    out.write(json.dumps(rec.as_dict(binary=False), separators=(",", ":")))
                    first = False
            out.write('},"removed":[],"repodata_version":1}')
        os.replace(tmp, mono / "repodata.json")
        index: dict[str, bytes] = {}
        for name in sorted(names):
            shard = {
                "packages": {},
                "packages.conda": {rec.fn: rec.as_dict(binary=True) for rec in names[name]},
                "removed": [],
            }
            blob = compressor.compress(msgpack.packb(shard, use_bin_type=True))
            digest = hashlib.sha256(blob).digest()
            path = sharded / "shards" / f"{digest.hex()}.msgpack.zst"
            if not path.exists():
                path.write_bytes(blob)
            index[name] = digest
        info = {"subdir": subdir, "base_url": "", "shards_base_url": "./shards/", "created_at": "2026-11-01T00:00:00Z"}
        packed = compressor.compress(msgpack.packb({"info": info, "shards": index}, use_bin_type=True))
        (sharded / "repodata_shards.msgpack.zst").write_bytes(packed)
        link = sharded / "repodata.json"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..") / ".." / "mono" / subdir / "repodata.json")
        stats["names"] += len(names)
        stats["shards"] += len(index)
    return stats


def ensure_channel(cache: Path, size: int) -> tuple[Path, dict[str, int]]:
    """The channel for ``size`` under ``cache``, generated once per generator version."""
    root = cache / f"channel-{size}-v{GENERATOR_VERSION}"
    stamp = root / "stats.json"
    if stamp.is_file():
        return root, json.loads(stamp.read_text())
    if root.exists():
        import shutil

        shutil.rmtree(root)
    root.mkdir(parents=True)
    stats = write_channel(root, size)
    stamp.write_text(json.dumps(stats))
    return root, stats


def scale_label(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 else str(size)


def log10(x: float) -> float:
    return math.log10(x)
