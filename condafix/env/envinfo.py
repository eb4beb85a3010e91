"""What CUDA parts an environment holds: conda-meta records, history, pip CUDA wheels.

Reads conda-meta through :mod:`condafix.env.condameta` (stdlib ``json``): ``doctor`` must start fast, so py-rattler's
``PrefixRecord`` is left to the planner, which needs full records for the solver.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from condafix.env import condameta
from condafix.errors import Hint, InspectError, UsageError
from condafix.knowledge import roles
from condafix.knowledge.cuda import CudaVersion
from condafix.knowledge.pinrule import CudaRequirement, requirements_of
from condafix.knowledge.roles import Role, cuda_of_build, cuda_of_local_version


# The role table (conda and pip names, PTX writers, JIT consumers) is data/package_roles.json,
# loaded by condafix.knowledge.roles: the doctor, the planner and the env-file groups read one table.
@dataclass(frozen=True, kw_only=True)
class Component:
    """One CUDA-relevant package of the env and the CUDA major.minor it was built for."""

    name: str
    version: str
    build: str
    source: Literal["conda", "pip"]
    role: Role
    cuda: str | None
    channel: str | None = None


@dataclass(frozen=True, kw_only=True)
class SystemToolkit:
    """A toolkit outside any env (``/usr/local/cuda``): not the driver, whatever mamba thinks."""

    path: str
    cuda: str | None
    source: str
    has_version_json: bool


@dataclass(frozen=True, kw_only=True)
class EnvInfo:
    """The inspected environment; ``prefix`` None means no env was targeted."""

    prefix: str | None
    name: str | None
    kind: Literal["conda", "venv", "none"]
    selected_by: str | None
    components: tuple[Component, ...]
    requested_specs: tuple[str, ...]
    channels: tuple[str, ...]
    package_count: int
    #: every record's own depends/constrains on cuda-version/cudatoolkit (conda-meta): who holds the pin
    cuda_requirements: tuple[CudaRequirement, ...] = ()

    @property
    def jit_consumers(self) -> tuple[Component, ...]:
        jit = roles.table().jit_consumers
        return tuple(c for c in self.components if c.name in jit)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


# ---------------------------------------------------------------- parsing (pure)


def component_cuda(name: str, version: str, build: str, role: Role) -> str | None:
    """The CUDA major.minor a package belongs to, or None where it has none (consumers)."""
    if role == "framework":
        return cuda_of_local_version(version) or cuda_of_build(build)
    if role == "consumer":
        return cuda_of_build(build) if name == "jaxlib" else None
    if role == "linker":
        return None
    try:
        return str(CudaVersion.parse(version))
    except UsageError:
        return None


def conda_role(name: str) -> Role | None:
    return roles.conda_role(name)


def channel_name(url: object) -> str | None:
    """Channel of a record: ``https://conda.anaconda.org/conda-forge/linux-64`` -> ``conda-forge``.

    Other hosts (mirrors, file:// channels) keep their base URL, so a plan queries the same place.
    """
    if not isinstance(url, str) or not url:
        return None
    return _channel_name(url)


@functools.lru_cache(maxsize=256)  # an env's records share a handful of channel URLs
def _channel_name(url: str) -> str:
    text = url.rstrip("/")
    text = re.sub(r"/[^/]+\.(conda|tar\.bz2)$", "", text)
    text = re.sub(r"/(noarch|linux-64|linux-aarch64|linux-ppc64le|osx-64|osx-arm64|win-64)$", "", text)
    match = re.match(r"https?://conda\.anaconda\.org/(.+)$", text)
    if match:
        return match.group(1)
    return text


# ---------------------------------------------------------------- locating the env


#: where the installers put conda when no ``$CONDA_EXE`` says where it is (checked, never assumed)
_USUAL_ROOTS = ("miniconda3", "miniforge3", "mambaforge", "anaconda3", "micromamba", "conda")


def _is_conda_root(path: Path) -> bool:
    return (path / "conda-meta").is_dir() and ((path / "condabin").is_dir() or (path / "bin" / "conda").exists())


def _guessed_roots(env: Mapping[str, str]) -> list[Path]:
    """conda installs when ``$CONDA_EXE``/``$CONDA_ROOT`` name none: the roots of the envs that
    ``~/.conda/environments.txt`` lists (a hint conda writes on every create), then the installers'
    usual places. Only a directory that is a conda install counts."""
    home = Path(env.get("HOME") or Path.home())
    listed: list[Path] = []
    try:
        lines = (home / ".conda" / "environments.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        entry = Path(line.strip()) if line.strip() else None
        if entry is None:
            continue
        listed.append(entry.parent.parent if entry.parent.name == "envs" else entry)
    usual = [home / n for n in _USUAL_ROOTS] + [Path("/opt") / n for n in _USUAL_ROOTS]
    return [r for r in dict.fromkeys([*listed, *usual]) if _is_conda_root(r)]


def _env_names(dirs: Iterable[Path]) -> list[str]:
    names: list[str] = []
    for directory in dirs:
        try:
            names += sorted(p.name for p in directory.iterdir() if (p / "conda-meta").is_dir())
        except OSError:
            continue
    return list(dict.fromkeys(names))


def find_named_env(name: str, env: Mapping[str, str]) -> Path:
    """Resolve ``-n NAME`` the way conda does: its envs dirs (``CONDA_ENVS_PATH``/``envs_dirs``, the
    root's ``envs/``, ``~/.conda/envs``) and ``base``. Without ``$CONDA_EXE`` the root is unknown, so the
    installs ``~/.conda/environments.txt`` points to (and the usual places) stand in for it; an env is
    still only found inside an envs dir, never by a folder name from environments.txt."""
    import difflib

    from condafix.env import condarc

    config = condarc.load(env)
    found = condarc.find_named_env(name, config)
    if found is not None:
        return found
    roots = [] if config.root_prefix is not None else _guessed_roots(env)
    for root in roots:
        candidate = root if name == "base" else root / "envs" / name
        if (candidate / "conda-meta").is_dir():
            return candidate
    dirs = [*config.envs_dirs, *(r / "envs" for r in roots)]
    known = _env_names(dirs) + (["base"] if roots or config.root_prefix is not None else [])
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hints = [Hint(code="did_you_mean", text=f"did you mean {' or '.join(repr(c) for c in close)}?")] if close else []
    if known:
        shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
        hints.append(Hint(code="known_envs", text=f"known environments: {shown}"))
    hints.append(Hint(code="use_prefix", text="pass the environment's path with `-p PATH`"))
    raise InspectError(
        f"no environment named {name!r} (looked in {', '.join(str(d) for d in dict.fromkeys(dirs))})", tuple(hints)
    )


def resolve_prefix(*, name: str | None, path: str | None, env: Mapping[str, str]) -> tuple[Path | None, str | None]:
    """Which env to inspect and how it was chosen: ``-p``, ``-n``, ``$CONDA_PREFIX``, ``$VIRTUAL_ENV``."""
    if name and path:
        raise InspectError("pass either -n NAME or -p PATH, not both")
    if path is not None:
        return Path(path).expanduser().resolve(), "-p"
    if name is not None:
        return find_named_env(name, env), "-n"
    for var in ("CONDA_PREFIX", "VIRTUAL_ENV"):
        if env.get(var):
            return Path(env[var]).resolve(), f"${var}"
    return None, None


# ---------------------------------------------------------------- reading the env


def _site_packages(prefix: Path) -> list[Path]:
    found = sorted(prefix.glob("lib/python3*/site-packages")) + sorted(prefix.glob("Lib/site-packages"))
    return [p for p in found if p.is_dir()]


def read_pip_components(prefix: Path, conda_names: Iterable[str]) -> list[Component]:
    """NVIDIA CUDA wheels (and CUDA consumers) installed by pip: from ``*.dist-info`` names."""
    skip = set(conda_names)
    found: list[Component] = []
    for site in _site_packages(prefix):
        for info in sorted(site.glob("*.dist-info")):
            stem = info.name[: -len(".dist-info")]
            if "-" not in stem:
                continue
            raw_name, version = stem.split("-", 1)
            name = re.sub(r"[-_.]+", "-", raw_name).lower()
            role = roles.pip_role(name)
            if role is None or name in skip:
                continue
            installer = info / "INSTALLER"
            if installer.is_file() and installer.read_text(errors="replace").strip() == "conda":
                continue
            found.append(
                Component(
                    name=name,
                    version=version,
                    build="",
                    source="pip",
                    role=role,
                    cuda=component_cuda(name, version, "", role),
                    channel="pypi",
                )
            )
    return found


def read_env(prefix: Path | None, selected_by: str | None = None) -> EnvInfo:
    """Read one prefix; a missing dir or a broken record is an InspectError (exit 3)."""
    if prefix is None:
        return EnvInfo(
            prefix=None,
            name=None,
            kind="none",
            selected_by=None,
            components=(),
            requested_specs=(),
            channels=(),
            package_count=0,
        )
    if not prefix.is_dir():
        raise InspectError(f"prefix does not exist: {prefix}")
    meta = condameta.meta_dir(prefix)
    if not meta.is_dir():
        if (prefix / "pyvenv.cfg").is_file():
            pip = read_pip_components(prefix, ())
            return EnvInfo(
                prefix=str(prefix),
                name=prefix.name,
                kind="venv",
                selected_by=selected_by,
                components=tuple(pip),
                requested_specs=(),
                channels=("pypi",),
                package_count=len(pip),
            )
        raise InspectError(
            f"not a conda environment (no conda-meta/): {prefix}",
            (Hint(code="use_prefix", text="point -p at the environment's root directory"),),
        )
    components: list[Component] = []
    channels: list[str] = []
    names: list[str] = []
    requested_from_records: list[str] = []
    requirements: list[CudaRequirement] = []
    all_records = condameta.records(prefix)
    for _path, record in all_records:
        name, version, build = str(record["name"]), str(record["version"]), str(record["build"])
        names.append(name)
        channel = channel_name(record.get("channel"))
        if channel is None or "********" in channel or "<TOKEN>" in channel:
            # rattler/conda store the channel with its token masked; the url keeps the real one
            channel = channel_name(record.get("url")) or channel
        if channel and channel not in channels and channel != "pypi":
            channels.append(channel)
        specs = record.get("requested_specs")
        if isinstance(specs, list):
            requested_from_records += [s for s in specs if isinstance(s, str)]
        requirements += requirements_of(
            name, version, build, _listed(record.get("depends")), _listed(record.get("constrains"))
        )
        role = conda_role(name)
        if role is not None:
            cuda = component_cuda(name, version, build, role)
            components.append(
                Component(
                    name=name, version=version, build=build, source="conda", role=role, cuda=cuda, channel=channel
                )
            )
    requested = tuple(condameta.read_history(prefix).requested_specs(names).values())
    components += read_pip_components(prefix, names)
    return EnvInfo(
        prefix=str(prefix),
        name=prefix.name,
        kind="conda",
        selected_by=selected_by,
        components=tuple(components),
        requested_specs=requested or tuple(dict.fromkeys(requested_from_records)),
        channels=tuple(channels),
        package_count=len(all_records),
        cuda_requirements=tuple(requirements),
    )


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def inspect_env(*, name: str | None, path: str | None, env: Mapping[str, str] | None = None) -> EnvInfo:
    """Resolve and read the target env (``-n``/``-p``/``$CONDA_PREFIX``)."""
    env = os.environ if env is None else env
    prefix, how = resolve_prefix(name=name, path=path, env=env)
    return read_env(prefix, how)


# ---------------------------------------------------------------- the system toolkit


def system_toolkit(env: Mapping[str, str] | None = None) -> SystemToolkit | None:
    """``$CUDA_HOME``/``$CUDA_PATH``/``/usr/local/cuda``: version from version.json or cuda.h."""
    env = os.environ if env is None else env
    for candidate in (env.get("CUDA_HOME"), env.get("CUDA_PATH"), "/usr/local/cuda"):
        if not candidate or not Path(candidate).is_dir():
            continue
        root = Path(candidate)
        version_json = root / "version.json"
        if version_json.is_file():
            try:
                version = json.loads(version_json.read_text())["cuda"]["version"]
                return SystemToolkit(
                    path=str(root), cuda=str(CudaVersion.parse(version)), source="version.json", has_version_json=True
                )
            except (UsageError, ValueError, KeyError, TypeError):
                pass
        header = root / "include" / "cuda.h"
        if header.is_file():
            match = re.search(r"#define\s+CUDA_VERSION\s+(\d+)", header.read_text(errors="replace"))
            if match:
                cuda = str(CudaVersion.from_encoded(int(match.group(1))))
                return SystemToolkit(path=str(root), cuda=cuda, source="include/cuda.h", has_version_json=False)
        return SystemToolkit(path=str(root), cuda=None, source="directory only", has_version_json=False)
    return None
