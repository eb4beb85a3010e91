"""What CUDA parts an environment holds: conda-meta records, history, pip CUDA wheels.

Reads the filesystem only (stdlib ``json``): ``doctor`` must start fast, so py-rattler's
``PrefixRecord`` is left to the planner, which needs full records for the solver.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from condafix.errors import Hint, InspectError, UsageError
from condafix.knowledge.cuda import CudaVersion
from condafix.knowledge.roles import cuda_of_build, cuda_of_local_version

Role = Literal["pin", "toolkit", "nvvm", "nvrtc", "nvjitlink", "runtime", "consumer", "framework", "compat", "linker"]

# Roles whose version decides which PTX ISA the env writes (what the driver's JIT must accept).
PTX_WRITERS: Final = frozenset({"pin", "toolkit", "nvvm", "nvrtc"})

# conda package name -> role. CTK split packages (CUDA >= 12) pin cuda-version to their own X.Y.
CONDA_ROLES: Final[Mapping[str, Role]] = {
    "cuda-version": "pin",
    "pytorch-cuda": "pin",
    "cudatoolkit": "toolkit",
    "cuda-nvcc": "nvvm",
    "cuda-nvcc-impl": "nvvm",
    "cuda-nvcc-tools": "nvvm",
    "cuda-nvvm": "nvvm",
    "cuda-nvvm-impl": "nvvm",
    "cuda-nvvm-tools": "nvvm",
    "cuda-nvvm-dev_linux-64": "nvvm",
    "nvcc_linux-64": "nvvm",  # the old conda-forge nvcc wrapper (nvcc-feedstock#108: 11.8 beside 12.5)
    "cuda-nvrtc": "nvrtc",
    "libnvjitlink": "nvjitlink",
    "cuda-cudart": "runtime",
    "cuda-cudart_linux-64": "runtime",
    "numba": "consumer",
    "numba-cuda": "consumer",
    "cupy": "consumer",
    "cupy-core": "consumer",
    "jaxlib": "consumer",
    "pytorch": "framework",
    "cuda-compat": "compat",
    # Link helpers that change numba's compile path (condafix.diagnose.compilepath); no CUDA version of their own.
    "pynvjitlink": "linker",
    "cubinlinker": "linker",
    "ptxcompiler": "linker",
}
_CONDA_PREFIXED: Final = (("cuda-nvcc_", "nvvm"), ("cuda-nvvm-dev_", "nvvm"), ("cuda-cudart_", "runtime"))

# pip distribution name (normalized) -> role; NVIDIA's cu12 wheels and the unsuffixed cu13 ones.
PIP_ROLES: Final[Mapping[str, Role]] = {
    "nvidia-cuda-nvcc-cu12": "nvvm",
    "nvidia-cuda-nvcc": "nvvm",
    "nvidia-nvvm": "nvvm",
    "nvidia-cuda-nvrtc-cu12": "nvrtc",
    "nvidia-cuda-nvrtc-cu11": "nvrtc",
    "nvidia-cuda-nvrtc": "nvrtc",
    "nvidia-nvjitlink-cu12": "nvjitlink",
    "nvidia-nvjitlink": "nvjitlink",
    "nvidia-cuda-runtime-cu12": "runtime",
    "nvidia-cuda-runtime-cu11": "runtime",
    "nvidia-cuda-runtime": "runtime",
    "cuda-toolkit": "pin",
    "numba-cuda": "consumer",
    "numba": "consumer",
    "cupy-cuda11x": "consumer",
    "cupy-cuda12x": "consumer",
    "cupy-cuda13x": "consumer",
    "jax-cuda12-plugin": "consumer",
    "jax-cuda13-plugin": "consumer",
    "torch": "framework",
    "pynvjitlink-cu12": "linker",
    "cubinlinker-cu11": "linker",
    "ptxcompiler-cu11": "linker",
}

# Consumers that compile PTX at run time through the driver (or NVRTC): the JIT rule applies.
JIT_CONSUMERS: Final = frozenset(
    {
        "numba",
        "numba-cuda",
        "cupy",
        "cupy-core",
        "jaxlib",
        "cupy-cuda11x",
        "cupy-cuda12x",
        "cupy-cuda13x",
        "jax-cuda12-plugin",
        "jax-cuda13-plugin",
    }
)


@dataclass(frozen=True)
class Component:
    """One CUDA-relevant package of the env and the CUDA major.minor it was built for."""

    name: str
    version: str
    build: str
    source: Literal["conda", "pip"]
    role: Role
    cuda: str | None
    channel: str | None = None


@dataclass(frozen=True)
class SystemToolkit:
    """A toolkit outside any env (``/usr/local/cuda``): not the driver, whatever mamba thinks."""

    path: str
    cuda: str | None
    source: str
    has_version_json: bool


@dataclass(frozen=True)
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

    @property
    def jit_consumers(self) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.name in JIT_CONSUMERS)

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
    role = CONDA_ROLES.get(name)
    if role is None:
        role = next((r for prefix, r in _CONDA_PREFIXED if name.startswith(prefix)), None)  # type: ignore[misc]
    return role


def spec_name(spec: str) -> str:
    """Package name of a conda MatchSpec string (``conda-forge::cuda-version=12.4`` -> cuda-version)."""
    text = spec.strip().split("::")[-1]
    return re.split(r"[\s=<>!~\[]", text, maxsplit=1)[0].lower()


def parse_history(text: str) -> tuple[str, ...]:
    """The user's requested specs after replaying ``conda-meta/history`` (update/install/remove)."""
    requested: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"#\s*(update|install|create|remove|neutered)\s+specs:\s*(\[.*\])\s*$", line)
        if not match:
            continue
        try:
            specs = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            continue
        for spec in specs if isinstance(specs, list) else []:
            if not isinstance(spec, str) or not spec.strip():
                continue
            if match.group(1) == "remove":
                requested.pop(spec_name(spec), None)
            else:
                requested[spec_name(spec)] = spec.strip()
    return tuple(requested.values())


def parse_record(text: str, origin: str) -> dict[str, object]:
    """Validate one conda-meta JSON record; a broken one is an InspectError naming the file."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise InspectError(f"{origin}: not a valid package record (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise InspectError(
            f"{origin}: not a valid package record (invalid JSON at line {exc.lineno} column {exc.colno})",
            (Hint("broken_record", "move the file aside or reinstall that package with conda"),),
        ) from None
    if not isinstance(data, dict):
        raise InspectError(f"{origin}: not a valid package record (expected a JSON object)")
    for key in ("name", "version", "build"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InspectError(f"{origin}: not a valid package record (missing {key!r})")
    return data


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


def find_named_env(name: str, env: Mapping[str, str]) -> Path:
    """Resolve ``-n NAME`` the way conda does: its envs dirs (``CONDA_ENVS_PATH``/``envs_dirs``, the
    root's ``envs/``, ``~/.conda/envs``) and ``base``; never any folder name from environments.txt."""
    from condafix.env import condarc

    config = condarc.load(env)
    found = condarc.find_named_env(name, config)
    if found is not None:
        return found
    raise InspectError(
        f"no environment named {name!r} (looked in {', '.join(str(d) for d in config.envs_dirs)})",
        (Hint("use_prefix", "pass the environment's path with `-p PATH`"),),
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
            role = PIP_ROLES.get(name)
            if role is None or name in skip:
                continue
            installer = info / "INSTALLER"
            if installer.is_file() and installer.read_text(errors="replace").strip() == "conda":
                continue
            found.append(Component(name, version, "", "pip", role, component_cuda(name, version, "", role), "pypi"))
    return found


def read_env(prefix: Path | None, selected_by: str | None = None) -> EnvInfo:
    """Read one prefix; a missing dir or a broken record is an InspectError (exit 3)."""
    if prefix is None:
        return EnvInfo(None, None, "none", None, (), (), (), 0)
    if not prefix.is_dir():
        raise InspectError(f"prefix does not exist: {prefix}")
    meta = prefix / "conda-meta"
    if not meta.is_dir():
        if (prefix / "pyvenv.cfg").is_file():
            pip = read_pip_components(prefix, ())
            return EnvInfo(str(prefix), prefix.name, "venv", selected_by, tuple(pip), (), ("pypi",), len(pip))
        raise InspectError(
            f"not a conda environment (no conda-meta/): {prefix}",
            (Hint("use_prefix", "point -p at the environment's root directory"),),
        )
    components: list[Component] = []
    channels: list[str] = []
    names: list[str] = []
    requested_from_records: list[str] = []
    try:
        # names sorted as strings and opened by path: sorting 20k Path objects and pathlib's read_text
        # were most of doctor's time on a big env (issue 23)
        record_paths = sorted(e.name for e in os.scandir(meta) if e.name.endswith(".json") and e.is_file())
        for file_name in record_paths:
            with open(os.path.join(meta, file_name), encoding="utf-8", errors="replace") as handle:
                record = parse_record(handle.read(), f"conda-meta/{file_name}")
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
            role = conda_role(name)
            if role is not None:
                cuda = component_cuda(name, version, build, role)
                components.append(Component(name, version, build, "conda", role, cuda, channel))
        history = meta / "history"
        requested = parse_history(history.read_text(errors="replace")) if history.is_file() else ()
    except PermissionError as exc:
        raise InspectError(f"cannot read {exc.filename}: permission denied") from None
    components += read_pip_components(prefix, names)
    return EnvInfo(
        prefix=str(prefix),
        name=prefix.name,
        kind="conda",
        selected_by=selected_by,
        components=tuple(components),
        requested_specs=requested or tuple(dict.fromkeys(requested_from_records)),
        channels=tuple(channels),
        package_count=len(record_paths),
    )


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
                return SystemToolkit(str(root), str(CudaVersion.parse(version)), "version.json", True)
            except (UsageError, ValueError, KeyError, TypeError):
                pass
        header = root / "include" / "cuda.h"
        if header.is_file():
            match = re.search(r"#define\s+CUDA_VERSION\s+(\d+)", header.read_text(errors="replace"))
            if match:
                cuda = str(CudaVersion.from_encoded(int(match.group(1))))
                return SystemToolkit(str(root), cuda, "include/cuda.h", False)
        return SystemToolkit(str(root), None, "directory only", False)
    return None
