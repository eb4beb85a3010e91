"""The CUDA a command plans for, resolved once for every command: ``--cuda``, ``--driver``,
``--drivers-file`` (a fleet: the lowest wins), else the detected driver. condafix never guesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from condafix.detect import driver as driver_mod
from condafix.errors import Hint, UsageError
from condafix.knowledge.cuda import CudaVersion, driver_version_key, knowledge


@dataclass(frozen=True)
class TargetCuda:
    """The CUDA version the env must run on, and where it came from (one driver or a fleet)."""

    cuda: str
    source: str
    inputs: tuple[str, ...] = ()
    cuda_arch: str | None = None


def read_drivers_file(path: Path) -> list[str]:
    """One driver version per line (``#`` comments and blank lines allowed), e.g. from every node."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    drivers = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            driver_version_key(text)
        except UsageError:
            raise UsageError(f"{path}:{number}: not an NVIDIA driver version: {text!r}") from None
        try:
            knowledge().cuda_for_known_driver(text)
        except UsageError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
        drivers.append(text)
    if not drivers:
        raise UsageError(f"{path}: no driver versions in the file")
    return drivers


def resolve_target(*, cudas: Sequence[str], drivers: Sequence[str], env: Mapping[str, str] | None = None) -> TargetCuda:
    """Overrides, or the lowest of several (fleet mode), or the detected driver; refuse to guess."""
    values: list[tuple[CudaVersion, str]] = []
    for text in cudas:
        values.append((CudaVersion.parse(text), f"--cuda {text}"))
    for text in drivers:
        info = driver_mod.from_overrides(cuda=None, driver=text, env={})
        assert info is not None and info.cuda is not None
        values.append((CudaVersion.parse(info.cuda), f"driver {text} -> CUDA {info.cuda}"))
    if values:
        lowest = min(v for v, _ in values)
        source = values[0][1] if len(values) == 1 else f"fleet of {len(values)}: lowest"
        return TargetCuda(str(lowest), source, tuple(label for _, label in values))
    info = driver_mod.detect(env=env)
    if info.cuda is None:
        raise UsageError(
            "no NVIDIA driver found here, and condafix will not guess the CUDA version to plan for",
            (
                Hint("pass_cuda", "pass the GPU machine's CUDA version: `--cuda 12.4` (nvidia-smi's 'CUDA Version')"),
                Hint("pass_driver", "or its driver: `--driver 550.54.14`; for a cluster, `--drivers-file nodes.txt`"),
            ),
        )
    return TargetCuda(info.cuda, info.source or "detected", (), info.cuda_arch)


def from_options(
    *, cudas: Sequence[str], drivers: Sequence[str], drivers_file: Path | None, env: Mapping[str, str] | None = None
) -> TargetCuda:
    """The target from the shared options (``--cuda``, ``--driver``, ``--drivers-file``)."""
    listed = list(drivers) + (read_drivers_file(drivers_file) if drivers_file else [])
    return resolve_target(cudas=cudas, drivers=listed, env=env)
