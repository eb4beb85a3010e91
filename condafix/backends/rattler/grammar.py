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


def read_pixi_lock(path: Path) -> list[tuple[str, str, list[tuple[str, str, str]], list[str]]]:
    """(env, platform, conda (name, version, build), PyPI names) of a pixi.lock (every format rattler reads)."""
    from rattler.lock import LockFile

    try:
        lock = LockFile.from_path(path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # rattler's parse errors, and pyo3's PanicException (a BaseException)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ValueError(" / ".join(lines[:2]) or type(exc).__name__) from None
    out = []
    for env_name, env in lock.environments():
        conda = env.conda_repodata_records()
        pypi = env.pypi_packages()
        for platform in sorted(set(conda) | set(pypi)):
            records = [(r.name.normalized, str(r.version), str(r.build)) for r in conda.get(platform, [])]
            out.append((str(env_name), str(platform), records, [str(p.name) for p in pypi.get(platform, [])]))
    return out
