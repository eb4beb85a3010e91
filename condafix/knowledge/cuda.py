"""CUDA knowledge tables, loaded from ``data/cuda.json`` (package data with its sources).

Everything version-shaped is a ``CudaVersion`` (major, minor) so comparisons are numeric,
never string-based ("12.10" > "12.9").
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from condafix.errors import UsageError

_MAJOR_MINOR = re.compile(r"^\s*(\d{1,2})\.(\d{1,2})(?:[.\d]*)?\s*$")


class CudaVersion(NamedTuple):
    """A CUDA (or PTX ISA) major.minor pair; orders numerically."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> CudaVersion:
        """Parse "12.4", "12.4.131" or "12.4.1" into (12, 4); raise UsageError otherwise."""
        match = _MAJOR_MINOR.match(text)
        if not match:
            raise UsageError(f"not a CUDA version: {text!r} (expected MAJOR.MINOR, e.g. 12.4)")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def from_encoded(cls, value: int) -> CudaVersion:
        """Decode the driver APIs' 1000*major + 10*minor form (12040 -> 12.4)."""
        if not 1000 <= value <= 99990:
            raise ValueError(f"implausible encoded CUDA version {value}")
        return cls(value // 1000, (value % 1000) // 10)


def driver_version_key(text: str) -> tuple[int, ...]:
    """Order driver versions like 535.104.05 numerically; raise UsageError if malformed."""
    if not re.fullmatch(r"\d{2,4}(\.\d{1,3}){0,2}", text.strip()):
        raise UsageError(f"not an NVIDIA driver version: {text!r} (expected e.g. 535.104.05)")
    return tuple(int(part) for part in text.strip().split("."))


@dataclass(frozen=True, kw_only=True)
class DriverRow:
    """Minimum driver of a CUDA minor's GA release."""

    cuda: CudaVersion
    linux: str
    windows: str | None


@dataclass(frozen=True, kw_only=True)
class Knowledge:
    """All tables, validated at load time; one instance per process."""

    ptx_to_cuda: dict[CudaVersion, tuple[CudaVersion, ...]]
    toolkit_releases: tuple[CudaVersion, ...]
    min_driver: tuple[DriverRow, ...]
    mvc_floor: dict[int, tuple[str, str | None]]
    cudatoolkit_versions: tuple[str, ...]
    cuda_version_versions: tuple[CudaVersion, ...]
    pytorch_cuda_versions: tuple[CudaVersion, ...]
    sources: dict[str, str]
    oldest_sm_by_major: dict[int, CudaVersion]
    defaults_cudatoolkit_versions: tuple[str, ...]
    newest_sm_by_cuda: tuple[tuple[CudaVersion, CudaVersion], ...]

    def newest_defaults_cudatoolkit(self, limit: CudaVersion) -> CudaVersion | None:
        """Newest ``cudatoolkit`` on defaults with major == limit.major and <= limit (old CUDA 9/10 envs)."""
        fits = [CudaVersion.parse(v) for v in self.defaults_cudatoolkit_versions]
        fits = [v for v in fits if v.major == limit.major and v <= limit]
        return max(fits) if fits else None

    def oldest_sm(self, major: int) -> CudaVersion | None:
        """Oldest GPU architecture a CUDA major still builds for (CUDA 13 -> 7.5)."""
        return self.oldest_sm_by_major.get(major)

    def newest_sm(self, cuda: CudaVersion) -> CudaVersion | None:
        """Newest GPU architecture a CUDA release's compilers (NVRTC, ptxas) know."""
        known = [sm for since, sm in self.newest_sm_by_cuda if since <= cuda]
        return max(known) if known else None

    def cuda_for_ptx(self, ptx: CudaVersion) -> tuple[CudaVersion, ...]:
        """Released CUDA toolkits whose NVVM writes this PTX ISA (8.5 -> 12.5 and 12.6); () if unknown.

        The one lookup for explain, doctor's probe and the advice: a version that never shipped (12.7) wrote
        no PTX."""
        return tuple(c for c in self.ptx_to_cuda.get(ptx, ()) if self.is_released(c))

    def ptx_for_cuda(self, cuda: CudaVersion) -> CudaVersion | None:
        """Newest PTX ISA a driver of this CUDA version accepts (and its toolkit writes)."""
        for ptx, cudas in self.ptx_to_cuda.items():
            if cuda in cudas:
                return ptx
        return None

    def is_released(self, cuda: CudaVersion) -> bool:
        """False for versions that never shipped, like 12.7."""
        return cuda in self.toolkit_releases

    def max_cuda_for_driver(self, driver: str, *, windows: bool = False) -> CudaVersion | None:
        """Newest CUDA whose GA minimum driver is <= this driver (535.104.05 -> 12.2)."""
        key = driver_version_key(driver)
        best: CudaVersion | None = None
        for row in self.min_driver:
            needed = row.windows if windows else row.linux
            if needed is not None and driver_version_key(needed) <= key:
                best = row.cuda if best is None else max(best, row.cuda)
        return best

    def driver_branches(self) -> tuple[DriverRow, DriverRow]:
        """The oldest and newest rows of the Linux driver table: the branches condafix can map to a CUDA."""
        rows = [r for r in self.min_driver if r.linux]
        return min(rows, key=lambda r: r.cuda), max(rows, key=lambda r: r.cuda)

    def cuda_for_known_driver(self, driver: str) -> CudaVersion:
        """The CUDA a ``--driver`` supports; a branch outside the table is refused, never guessed.

        A driver newer than the table (``--driver 999``) used to become the newest CUDA in it (13.3) with
        status ok; its real CUDA is unknown, so it is bad input that names the known range.
        """
        key = driver_version_key(driver)
        oldest, newest = self.driver_branches()
        low, high = driver_version_key(oldest.linux)[0], driver_version_key(newest.linux)[0]
        best = self.max_cuda_for_driver(driver)
        if best is None or key[0] > high:
            side = "older than every CUDA release in" if best is None else "newer than"
            raise UsageError(
                f"driver {driver.strip()} (branch {key[0]}) is {side} condafix's driver table, which knows "
                f"branches {low} to {high} (CUDA {oldest.cuda} to {newest.cuda}; a driver looks like {newest.linux}); "
                "pass the CUDA version instead: --cuda X.Y (nvidia-smi's 'CUDA Version')"
            )
        return best

    def min_driver_for(self, cuda: CudaVersion, *, windows: bool = False) -> str | None:
        """Driver needed for a driver max CUDA of at least ``cuda`` (skipping unreleased minors)."""
        rows = [r for r in self.min_driver if r.cuda >= cuda]
        if not rows:
            return None
        row = min(rows, key=lambda r: r.cuda)
        return row.windows if windows else row.linux

    def newest_cuda_version_pin(self, limit: CudaVersion) -> CudaVersion | None:
        """Newest conda-forge ``cuda-version`` of the same major that is <= limit."""
        fits = [v for v in self.cuda_version_versions if v.major == limit.major and v <= limit]
        return max(fits) if fits else None

    def newest_cudatoolkit(self, limit: CudaVersion) -> str | None:
        """Newest conda-forge ``cudatoolkit`` (full version) with major == limit.major, minor <= limit."""
        fits = [
            v
            for v in self.cudatoolkit_versions
            if CudaVersion.parse(v).major == limit.major and CudaVersion.parse(v) <= limit
        ]
        return max(fits, key=lambda v: tuple(int(p) for p in v.split("."))) if fits else None


def pins_for(target: CudaVersion, installed: Collection[str] | None = None) -> tuple[str, ...]:
    """The one pin rule (explain, doctor's fix and conda's guard): the pins that bring an env to the
    newest CUDA <= ``target`` of the same major, only versions conda-forge has (12.7 has no
    ``cuda-version``: a 12.7 driver gets 12.6).

    ``installed``: the env's package names; ``None`` when they are unknown (a pasted error), which
    names both families where they exist. ``cudatoolkit`` (CUDA <= 11) only for an env that has it;
    ``cuda-version`` for an env that has it or has no ``cudatoolkit``.
    """
    kb = knowledge()
    pins: list[str] = []
    toolkit = kb.newest_cudatoolkit(target)
    if toolkit is not None and (installed is None or "cudatoolkit" in installed):
        pins.append(f"cudatoolkit={CudaVersion.parse(toolkit)}")
    pin = kb.newest_cuda_version_pin(target)
    if pin is not None and (installed is None or "cuda-version" in installed or "cudatoolkit" not in installed):
        pins.append(f"cuda-version={pin}")
    return tuple(pins)


def _versions(raw: list[str]) -> tuple[CudaVersion, ...]:
    return tuple(sorted(CudaVersion.parse(v) for v in raw))


def _build(raw: dict[str, Any]) -> Knowledge:
    ptx = {
        CudaVersion.parse(row["ptx"]): tuple(CudaVersion.parse(c) for c in row["cuda"])
        for row in raw["ptx_isa"]["rows"]
    }
    rows = tuple(
        DriverRow(cuda=CudaVersion.parse(r["cuda"]), linux=r["linux"], windows=r["windows"])
        for r in raw["min_driver"]["rows"]
    )
    floors = {int(r["major"]): (r["linux"], r["windows"]) for r in raw["mvc_floor"]["rows"]}
    sources = {key: value["source"] for key, value in raw.items() if isinstance(value, dict)}
    return Knowledge(
        ptx_to_cuda=ptx,
        toolkit_releases=_versions(raw["toolkit_releases"]["versions"]),
        min_driver=rows,
        mvc_floor=floors,
        cudatoolkit_versions=tuple(raw["conda_forge_cudatoolkit"]["versions"]),
        cuda_version_versions=_versions(raw["conda_forge_cuda_version"]["versions"]),
        pytorch_cuda_versions=_versions(raw["pytorch_cuda"]["versions"]),
        sources=sources,
        defaults_cudatoolkit_versions=tuple(raw["defaults_cudatoolkit"]["versions"]),
        oldest_sm_by_major={int(r["major"]): CudaVersion.parse(r["sm"]) for r in raw["gpu_arch"]["oldest_sm_by_major"]},
        newest_sm_by_cuda=tuple(
            (CudaVersion.parse(r["cuda"]), CudaVersion.parse(r["sm"])) for r in raw["gpu_arch"]["newest_sm_by_cuda"]
        ),
    )


def data_text(name: str) -> str:
    """A table from ``condafix/data``: read from the package directory, importlib.resources only for an
    install that has none (a zip): its import (zipfile and friends) was 5% of doctor's start."""
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", name)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        from importlib import resources

        return resources.files("condafix.data").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def knowledge() -> Knowledge:
    """Load the tables once per process."""
    return _build(json.loads(data_text("cuda.json")))
