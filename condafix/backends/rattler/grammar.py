"""conda's grammars as rattler parses them: match specs, version specs, pixi lockfiles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rattler import (
    MatchSpec,
    Version,
    VersionSpec,
)
from rattler.exceptions import InvalidMatchSpecError


def spec_matches(spec: str, name: str, version: str) -> bool:
    """Does a depends/constrains entry like ``cuda-version >=12.8,<13`` accept this version of ``name``?"""
    try:
        match = MatchSpec(spec)
    except InvalidMatchSpecError:
        return True
    if match.name is None or match.name.normalized != name or not match.version:
        return True
    return bool(VersionSpec(match.version).matches(Version(version)))


@dataclass(frozen=True, kw_only=True)
class SpecParts:
    """What conda's MatchSpec grammar makes of a spec string (rattler parses it)."""

    name: str
    version: str | None
    build: str | None
    channel: str | None


def parse_spec(text: str) -> SpecParts | None:
    """Name, version spec, build and channel of a conda spec; None when conda would refuse it."""
    try:
        match = MatchSpec(text)
    except (InvalidMatchSpecError, ValueError):
        return None
    if match.name is None:
        return None
    channel = match.channel.name if match.channel is not None else None
    return SpecParts(
        name=match.name.normalized, version=match.version or None, build=match.build or None, channel=channel
    )


def version_matches(version_spec: str, version: str) -> bool:
    """Does a conda version spec (``>=12.0,<=12.9``, ``12.5.*``, ``==11.8.86``) accept this version?"""
    try:
        return bool(VersionSpec(version_spec).matches(Version(version)))
    except Exception:  # rattler raises its own parse errors: an unparsable spec accepts nothing
        return False


@dataclass(frozen=True, kw_only=True)
class LockPlatform:
    """One platform of a pixi.lock: its key, subdir and the virtual packages it was solved with.

    Lock format 7 (pixi >= 0.71) keys rich platforms by short aliases (``p1``, ``p2``: pixi's
    ``shorten_platform_names``) and records each one's virtual packages (``__cuda=12``); before 7 the key
    is the subdir and no virtual package is recorded.
    """

    name: str
    subdir: str
    virtual_packages: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PixiLock:
    """What condafix reads of a pixi.lock, once: per (env, platform) its records, and the platforms."""

    envs: tuple[tuple[str, str, list[tuple[str, str, str]], list[str]], ...]
    platforms: tuple[LockPlatform, ...]
    # (env, platform) -> (package, spec) of each locked record's `depends` on __cuda: what pixi install
    # checks against the machine's __cuda (constrains are not checked at install)
    cuda_depends: dict[tuple[str, str], tuple[tuple[str, str], ...]]


def read_pixi_lock(path: Path) -> PixiLock:
    """Every env and platform of a pixi.lock (every format rattler reads: 3 to 7)."""
    from rattler.lock import LockFile

    try:
        lock = LockFile.from_path(path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # rattler's parse errors, and pyo3's PanicException (a BaseException)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ValueError(f"py-rattler {_rattler_version()}: {' / '.join(lines[:2]) or type(exc).__name__}") from None
    envs = []
    depends: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
    for env_name, env in lock.environments():
        conda = env.conda_repodata_records()
        pypi = env.pypi_packages()
        for platform in sorted(set(conda) | set(pypi)):
            found = conda.get(platform, [])
            records = [(r.name.normalized, str(r.version), str(r.build)) for r in found]
            envs.append((str(env_name), str(platform), records, [str(p.name) for p in pypi.get(platform, [])]))
            depends[(str(env_name), str(platform))] = tuple(
                (r.name.normalized, str(d)) for r in found for d in r.depends if _is_cuda_spec(str(d))
            )
    platforms = tuple(
        LockPlatform(name=str(p.name), subdir=str(p.subdir), virtual_packages=tuple(str(v) for v in p.virtual_packages))
        for p in lock.platforms()
    )
    return PixiLock(envs=tuple(envs), platforms=platforms, cuda_depends=depends)


def _rattler_version() -> str:
    """The py-rattler that read the lock: which lock formats it knows is its version's, so errors name it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("py-rattler")
    except PackageNotFoundError:
        return "(unknown version)"


def _is_cuda_spec(spec: str) -> bool:
    name = spec.strip().split(" ", 1)[0].split("=", 1)[0].split(">", 1)[0].split("<", 1)[0]
    return name == "__cuda"
