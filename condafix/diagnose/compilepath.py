"""Which path turns each consumer's PTX into machine code, and whether that path works on this driver.

The old rule ("a toolkit minor newer than the driver breaks every JIT user") is wrong for modern
numba-cuda: it links through nvJitLink, which writes SASS, and SASS runs on any driver of the same
major (minor version compatibility). What still needs PTX ISA <= the driver's is the driver's own
JIT: numba's built-in ``numba.cuda``, numba-cuda without nvJitLink, CuPy asked for PTX. nvJitLink
itself must be at least the NVVM that wrote the code. The table (``data/compile_paths.json``) says
which consumer version takes which path, with sources; the rules here judge each path.

Which NVVM/nvJitLink/NVRTC a consumer uses is not "the env's": ``condafix.detect.libsources`` follows each
consumer's own search order (``$CUDA_HOME``, the system toolkit, pip wheels, the conda prefix). When it is
given, the loaded files' versions judge the path; without it the env's packages stand in for them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from condafix.detect import libsources
from condafix.detect.libsources import Host, LoadedLibrary
from condafix.env.envinfo import Component, EnvInfo
from condafix.errors import Hint
from condafix.findings import Finding, Severity
from condafix.knowledge.cuda import CudaVersion, data_text, knowledge

PathKind = Literal["nvjitlink", "pynvjitlink", "nvrtc-cubin", "xla-ptxas", "driver-jit"]
Outcome = Literal["ok", "jit-fails", "link-fails", "slow-compile", "unknown"]

# Which writer roles a consumer's code comes from (PTX/LTO-IR), by path.
_WRITER_ROLES: Mapping[str, tuple[str, ...]] = {
    "numba-cuda": ("nvvm", "toolkit", "pin"),
    "numba": ("nvvm", "toolkit", "pin"),
    "cupy": ("nvrtc", "toolkit", "pin"),
    "jaxlib": ("nvvm", "toolkit", "pin"),
}


@dataclass(frozen=True, kw_only=True)
class Row:
    since: Version
    path: PathKind
    source: str
    needs: str | None = None
    min_nvjitlink: CudaVersion | None = None
    fallback: PathKind | None = None


@dataclass(frozen=True, kw_only=True)
class Table:
    consumers: Mapping[str, tuple[Row, ...]]
    aliases: Mapping[str, str]
    removed_settings: Mapping[str, str]
    nvjitlink_conda: str
    nvjitlink_pip: Mapping[int, str]


@functools.cache
def table() -> Table:
    """Load data/compile_paths.json once per process."""
    raw: dict[str, Any] = json.loads(data_text("compile_paths.json"))
    consumers = {
        name: tuple(
            Row(
                since=Version(r["since"]),
                path=r["path"],
                source=r["source"],
                needs=r.get("needs"),
                min_nvjitlink=CudaVersion.parse(r["min_nvjitlink"]) if r.get("min_nvjitlink") else None,
                fallback=r.get("fallback"),
            )
            for r in entry["rows"]
        )
        for name, entry in raw["consumers"].items()
    }
    removed = {r["name"]: f"{r['consumer']} {r['removed_in']}" for r in raw["removed_settings"]["rows"]}
    pip = {int(k): v for k, v in raw["nvjitlink_packages"]["pip"].items()}
    return Table(
        consumers=consumers,
        aliases=dict(raw["aliases"]["names"]),
        removed_settings=removed,
        nvjitlink_conda=raw["nvjitlink_packages"]["conda"],
        nvjitlink_pip=pip,
    )


@dataclass(frozen=True, kw_only=True)
class CompilePath:
    """One consumer, the path its kernels take to machine code here, and what happens on this driver."""

    consumer: str
    version: str
    kind: str
    path: PathKind
    why: str
    writer: str | None
    writer_cuda: str | None
    linker: str | None
    linker_cuda: str | None
    outcome: Outcome
    severity: Severity
    message: str
    missing: PathKind | None = None  # the path this consumer would take with nvJitLink/pynvjitlink present
    libraries: tuple[LoadedLibrary, ...] = ()  # the files it loads, in its own search order (libsources)

    @property
    def uses_driver_jit(self) -> bool:
        return self.path == "driver-jit"


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _cuda(comp: Component | None) -> CudaVersion | None:
    if comp is None or not comp.cuda:
        return None
    return CudaVersion.parse(comp.cuda)


def _newest(env: EnvInfo, roles: tuple[str, ...]) -> Component | None:
    """The newest component of the first role that has one (NVVM before cudatoolkit before the pin)."""
    for role in roles:
        found = [c for c in env.components if c.role == role and c.cuda]
        if found:
            return max(found, key=lambda c: CudaVersion.parse(c.cuda or "0.0"))
    return None


def _ptxas(env: EnvInfo) -> Component | None:
    """XLA's ptxas ships with nvcc (conda cuda-nvcc*, pip nvidia-cuda-nvcc*), not with NVVM alone."""
    found = [c for c in env.components if c.role == "nvvm" and "nvcc" in c.name and c.cuda]
    if found:
        return max(found, key=lambda c: CudaVersion.parse(c.cuda or "0.0"))
    return _newest(env, ("toolkit", "pin"))


def _has(env: EnvInfo, *names: str) -> bool:
    return any(c.name in names for c in env.components)


def _lib(libs: tuple[LoadedLibrary, ...], library: str) -> LoadedLibrary | None:
    return next((lib for lib in libs if lib.library == library), None)


def _inside(lib: LoadedLibrary, env: EnvInfo) -> bool:
    return bool(lib.path and env.prefix and lib.path.startswith(env.prefix.rstrip("/") + "/"))


def _where(lib: LoadedLibrary) -> str:
    version = f" (CUDA {lib.version})" if lib.version else ""
    return f"{lib.path}{version}, found via {lib.found_via}"


def _choose(
    kind: str, version: str, env: EnvInfo, env_vars: Mapping[str, str], libs: tuple[LoadedLibrary, ...] = ()
) -> tuple[PathKind, str, PathKind | None]:
    rows = table().consumers[kind]
    parsed = _version(version)
    row = next((r for r in rows if parsed is not None and parsed >= r.since), rows[-1])
    why = row.source.split(":")[0]
    if row.needs == "nvjitlink":
        loaded = _lib(libs, "nvJitLink")
        if loaded is not None:
            link = loaded.cuda if loaded.path else None
            present = loaded.path is not None
        else:
            link = _cuda(_newest(env, ("nvjitlink",)))
            present = link is not None
        fallback = row.fallback or "driver-jit"
        if not present:
            where = "anywhere it looks" if loaded is not None else "in this env"
            return fallback, f"{kind} {version} links with nvJitLink when present; none {where}", row.path
        if row.min_nvjitlink is not None and link is not None and link < row.min_nvjitlink:
            return fallback, f"{kind} {version} needs nvJitLink >= {row.min_nvjitlink}, not {link}", row.path
    if row.needs == "pynvjitlink" and not _has(env, "pynvjitlink", "pynvjitlink-cu12"):
        why = f"{kind} {version} links with pynvjitlink when present; none in this env"
        return row.fallback or "driver-jit", why, row.path
    if kind == "cupy" and env_vars.get("CUPY_COMPILE_WITH_PTX", "").strip() not in ("", "0"):
        return "driver-jit", "CUPY_COMPILE_WITH_PTX is set: CuPy loads PTX through the driver's JIT", None
    return row.path, why, None


def _driver_jit(base: dict[str, Any], writer: CudaVersion | None, driver: CudaVersion) -> tuple[Outcome, Severity, str]:
    who = f"{base['consumer']} {base['version']}"
    if writer is None:
        return "unknown", "info", f"{who} loads PTX through the driver's JIT; no NVVM/NVRTC version in this env"
    kb = knowledge()
    ptx, accepted = kb.ptx_for_cuda(writer), kb.ptx_for_cuda(driver)
    if writer.major > driver.major or (ptx is not None and accepted is not None and ptx > accepted):
        return (
            "jit-fails",
            "error",
            f"{who} loads PTX through the driver's JIT: PTX ISA {ptx or '?'} (CUDA {writer}) > "
            f"{accepted or '?'} that the driver (CUDA {driver}) accepts, so JIT compilation fails",
        )
    return "ok", "ok", f"{who} loads PTX through the driver's JIT: PTX ISA {ptx or '?'} <= {accepted or '?'}"


def _judge(
    base: dict[str, Any], env: EnvInfo, driver: CudaVersion, gpu_arch: CudaVersion | None
) -> tuple[Outcome, Severity, str, dict[str, Any]]:
    path: PathKind = base["path"]
    writer = CudaVersion.parse(base["writer_cuda"]) if base["writer_cuda"] else None
    who = f"{base['consumer']} {base['version']}"
    extra: dict[str, Any] = {}
    if path == "driver-jit":
        return (*_driver_jit(base, writer, driver), extra)
    if path == "nvjitlink":
        if base.get("linker"):
            link = CudaVersion.parse(base["linker_cuda"]) if base.get("linker_cuda") else None
            extra = {}
        else:
            link_comp = _newest(env, ("nvjitlink",))
            link = _cuda(link_comp)
            extra = {"linker": link_comp.name if link_comp else None, "linker_cuda": str(link) if link else None}
        if link is not None and writer is not None and link < writer:
            return (
                "link-fails",
                "error",
                f"{who} links through nvJitLink {link}, older than the NVVM {writer} that writes its code: "
                "linking fails (ERROR_OUTDATED_LIBRARY; with debug=True, ERROR_PTX_COMPILE)",
                extra,
            )
        top = max(v for v in (link, writer) if v is not None) if (link or writer) else None
        if top is not None and top.major > driver.major:
            return (
                "jit-fails",
                "error",
                f"{who}: SASS from CUDA {top} needs a CUDA {top.major} driver; this one supports CUDA {driver}",
                extra,
            )
        return (
            "ok",
            "ok",
            f"{who} links through nvJitLink {link} into SASS, which runs on the CUDA {driver} driver "
            "(minor version compatibility)",
            extra,
        )
    if path == "pynvjitlink":
        return "ok", "ok", f"{who} links through pynvjitlink into SASS (minor version compatibility)", extra
    if path == "nvrtc-cubin":
        newest = knowledge().newest_sm(writer) if writer else None
        if gpu_arch is not None and newest is not None and gpu_arch > newest:
            fail = _driver_jit(base, writer, driver)
            note = f"; the GPU (sm {gpu_arch}) is newer than NVRTC {writer} knows, so CuPy falls back to PTX"
            return fail[0], fail[1], fail[2] + note, {"path": "driver-jit"}
        if writer is not None and writer.major > driver.major:
            return (
                "jit-fails",
                "error",
                f"{who}: NVRTC {writer} writes SASS for CUDA {writer.major}; this driver supports CUDA {driver}",
                extra,
            )
        return "ok", "ok", f"{who} compiles with NVRTC {writer or '?'} to cubin (SASS) for this GPU", extra
    # xla-ptxas
    if writer is not None and writer.major > driver.major:
        why = f"{who}: ptxas {writer} writes SASS for CUDA {writer.major}; the driver supports CUDA {driver}"
        return "jit-fails", "error", why, extra
    if writer is not None and writer > driver:
        return (
            "slow-compile",
            "warning",
            f"{who}: ptxas CUDA {writer} is newer than the driver's CUDA {driver}; XLA warns and turns parallel "
            "compilation off (slower compiles, kernels still run)",
            extra,
        )
    return "ok", "ok", f"{who} compiles with ptxas {writer or '?'} to SASS", extra


def consumers(env: EnvInfo) -> list[tuple[Component, str]]:
    """(component, table key) for every consumer with a row; numba only when numba-cuda is absent."""
    known = table()
    found: list[tuple[Component, str]] = []
    seen: set[str] = set()
    numba_cuda = _has(env, "numba-cuda")
    for comp in env.components:
        kind = known.aliases.get(comp.name, comp.name)
        if kind not in known.consumers or kind in seen:
            continue
        if kind == "numba" and numba_cuda:
            continue  # numba-cuda's redirector takes over numba.cuda
        seen.add(kind)
        found.append((comp, kind))
    return found


_WRITER_LIBRARY: Mapping[str, str] = {"numba-cuda": "nvvm", "numba": "nvvm", "cupy": "nvrtc"}


_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "nvvm": ("nvvm", "toolkit"),
    "nvJitLink": ("nvjitlink",),
    "nvrtc": ("nvrtc", "toolkit"),
}


def _shadowed(lib: LoadedLibrary, kind: str, env: EnvInfo) -> Component | None:
    """An env package whose file the consumer's search reaches before the one the model found (or found
    none): its record says the file is there, so it stands in (a conda package is searched before the
    system toolkit and ``$CUDA_HOME`` by all three consumers; a wheel by all but numba's built-in target)."""
    if lib.how != "model" or (lib.path is not None and _inside(lib, env)):
        return None  # what the env's interpreter reported is what it loaded
    found = [
        c
        for c in env.components
        if c.role in _PROVIDERS.get(lib.library, ())
        and c.cuda
        and not (kind == "numba" and c.source == "pip")
        and c.name != "nvidia-cuda-nvcc"  # CUDA 13's nvcc wheel holds no libNVVM (nvidia-nvvm does)
    ]
    return max(found, key=lambda c: CudaVersion.parse(c.cuda or "0.0")) if found else None


def _stand_in(lib: LoadedLibrary, comp: Component, kind: str) -> LoadedLibrary:
    """What ``--json`` shows for a library whose env package comes first (``how="package"``)."""
    model = f"{lib.path} via {lib.found_via}" if lib.path else "none"
    return replace(
        lib,
        path=None,
        found_via=f"the env's {comp.name} {comp.version} comes first in {kind}'s search; its file is not on disk "
        f"(the search alone found {model})",
        version=comp.cuda,
        version_source=f"{comp.source} package {comp.name} {comp.version}",
        how="package",
    )


def _loaded_writer(
    kind: str, libs: tuple[LoadedLibrary, ...], env: EnvInfo, fallback: Component | None
) -> tuple[str | None, str | None, str]:
    """(writer, its CUDA, a note for ``why``) from the file the consumer loads; the env's package stands in
    for the version only when that file lies inside the env and its owner could not be read."""
    lib = _lib(libs, _WRITER_LIBRARY.get(kind, ""))
    if lib is None:
        return (fallback.name if fallback else None), (fallback.cuda if fallback else None), ""
    if lib.path is None:
        return None, None, f"; loads no {lib.library}: {lib.found_via}"
    cuda, owner = lib.version, ""
    if cuda is None and _inside(lib, env) and fallback is not None:
        cuda, owner = fallback.cuda, f" (version of the env's {fallback.name})"
    return lib.path, cuda, f"; loads {lib.library} {_where(lib)}{owner}"


def compile_paths(
    env: EnvInfo,
    driver: CudaVersion | None,
    *,
    gpu_arch: str | None = None,
    env_vars: Mapping[str, str] | None = None,
    libraries: Mapping[str, tuple[LoadedLibrary, ...]] | None = None,
) -> tuple[CompilePath, ...]:
    """Every consumer's compile path and its outcome on ``driver`` (None: no driver, outcome unknown).

    ``libraries`` (consumer kind -> files it loads, ``condafix.detect.libsources``) replaces the env's
    packages as the writer (NVVM, NVRTC) and the linker (nvJitLink) wherever the consumer loads them.
    """
    env_vars = {} if env_vars is None else env_vars
    arch = CudaVersion.parse(gpu_arch) if gpu_arch else None
    result: list[CompilePath] = []
    for comp, kind in consumers(env):
        found = tuple((libraries or {}).get(kind, ()))
        libs = tuple(lib for lib in found if _shadowed(lib, kind, env) is None)
        shown = tuple(_stand_in(lib, s, kind) if (s := _shadowed(lib, kind, env)) else lib for lib in found)
        path, why, missing = _choose(kind, comp.version, env, env_vars, libs)
        fallback = _ptxas(env) if kind == "jaxlib" else _newest(env, _WRITER_ROLES[kind])
        writer, writer_cuda, note = _loaded_writer(kind, libs, env, fallback)
        link = _lib(libs, "nvJitLink")
        base: dict[str, Any] = {
            "consumer": comp.name,
            "version": comp.version,
            "kind": kind,
            "path": path,
            "why": why + note,
            "writer": writer,
            "writer_cuda": writer_cuda,
            "linker": link.path if link is not None and path == "nvjitlink" else None,
            "linker_cuda": link.version if link is not None and path == "nvjitlink" else None,
        }
        if driver is None:
            outcome: Outcome = "unknown"
            severity: Severity = "info"
            message = f"{comp.name} {comp.version} compiles through {path}; no driver to judge it against"
        elif writer is None and (writing := _lib(libs, _WRITER_LIBRARY.get(kind, ""))) is not None:
            outcome, severity = "unknown", "warning"
            message = (
                f"{comp.name} {comp.version} finds no {writing.library} where it looks ({writing.found_via}): "
                "its kernels cannot compile here"
            )
        else:
            outcome, severity, message, extra = _judge(base, env, driver, arch)
            base.update(extra)
            if outcome == "link-fails" and libs:
                message += "; " + "; ".join(f"{lib.library}: {_where(lib)}" for lib in libs if lib.path)
        result.append(
            CompilePath(**base, outcome=outcome, severity=severity, message=message, missing=missing, libraries=shown)
        )
    return tuple(result)


def nvjitlink_spec(env: EnvInfo, cuda: CudaVersion) -> tuple[str, str] | None:
    """(manager, spec) that installs nvJitLink of ``cuda``: conda ``libnvjitlink=X.Y`` or the pip wheel."""
    link = _newest(env, ("nvjitlink",))
    nvvm = _newest(env, ("nvvm", "toolkit", "pin"))
    known = link or nvvm
    source = known.source if known is not None else "conda"
    if source == "pip":
        name = table().nvjitlink_pip.get(cuda.major)
        return ("pip", f"{name}=={cuda}.*") if name else None
    return "conda", f"{table().nvjitlink_conda}={cuda}"


def removed_setting(name: str) -> str | None:
    """Where a numba-cuda setting was removed (``NUMBA_CUDA_ENABLE_MINOR_VERSION_COMPATIBILITY`` -> 0.20.0)."""
    return table().removed_settings.get(name)


# ---------------------------------------------------------------- final package sets (conda's post-solve guard)

_NVJITLINK_NAMES = ("libnvjitlink", "nvidia-nvjitlink", "nvidia-nvjitlink-cu12")
_PYNVJITLINK_NAMES = ("pynvjitlink", "pynvjitlink-cu12")


def _row(kind: str, version: str) -> Row:
    rows = table().consumers[kind]
    parsed = _version(version)
    return next((r for r in rows if parsed is not None and parsed >= r.since), rows[-1])


def numba_cuda_links_with_nvjitlink(final: Mapping[str, str]) -> bool:
    """Does this numba-cuda link through nvJitLink (SASS), given what else is installed (name -> version)?"""
    version = final.get("numba-cuda")
    if version is None:
        return False
    row = _row("numba-cuda", version)
    if row.needs == "nvjitlink":
        return any(name in final for name in _NVJITLINK_NAMES)
    if row.needs == "pynvjitlink":
        return any(name in final for name in _PYNVJITLINK_NAMES)
    return row.path != "driver-jit"


def driver_jit_users(final: Mapping[str, str]) -> list[str]:
    """Packages in a final state (name -> version) whose kernels reach the driver's PTX JIT."""
    users = []
    if "numba-cuda" in final:
        if not numba_cuda_links_with_nvjitlink(final):
            users.append(f"numba-cuda {final['numba-cuda']}")
    elif "numba" in final:
        users.append(f"numba {final['numba']} (built-in numba.cuda)")
    return users


# ---------------------------------------------------------------- which env package a loaded file is


_ROLE_LIBRARY: Mapping[str, str] = {"nvvm": "nvvm", "nvrtc": "nvrtc", "nvjitlink": "nvJitLink"}


def loaded_libraries(
    env: EnvInfo, env_vars: Mapping[str, str] | None, asked: tuple[LoadedLibrary, ...], host: Host | None
) -> dict[str, tuple[LoadedLibrary, ...]] | None:
    """Consumer kind -> the files it loads: what the env's interpreter said (``asked``, from ``doctor --probe``),
    else the model of its search order on ``host`` (built from ``env_vars`` when not given); None without either."""
    kinds = [kind for _, kind in consumers(env) if kind in ("numba-cuda", "numba", "cupy")]
    if not kinds:
        return None
    if host is None:
        if env_vars is None or env.prefix is None:
            return None
        host = libsources.host_for(env.prefix, env.kind, env_vars)
    found = libsources.sources(kinds, host)
    for kind in kinds:
        mine = tuple(lib for lib in asked if lib.consumer == kind)
        if mine:
            found[kind] = mine
    return found


def owned(lib: LoadedLibrary, comp: Component, prefix: str | None) -> bool:
    """Is ``lib`` this package's file? A wheel's lies in site-packages, a conda package's elsewhere in the prefix."""
    if not lib.path or not prefix or not lib.path.startswith(prefix.rstrip("/") + "/"):
        return False
    return ("/site-packages/" in lib.path) == (comp.source == "pip")


def _loaded_for(path: CompilePath, comp: Component) -> LoadedLibrary | None:
    library = _ROLE_LIBRARY.get(comp.role)
    return next((lib for lib in path.libraries if lib.library == library), None)


def loads_other(path: CompilePath, comp: Component, prefix: str | None) -> bool:
    """This consumer's own search order took another file for the package's library (an NVVM wheel beside
    numba's built-in target, which never looks at wheels)."""
    lib = _loaded_for(path, comp)
    return lib is not None and lib.how != "package" and not owned(lib, comp, prefix)


def loaded_text(path: CompilePath, comp: Component) -> str:
    lib = _loaded_for(path, comp)
    if lib is None or lib.path is None:
        return f"no {_ROLE_LIBRARY.get(comp.role)} at all"
    return f"{lib.path}" + (f" (CUDA {lib.version})" if lib.version else "") + f" via {lib.found_via}"


def failing_linkers(env: EnvInfo, paths: tuple[CompilePath, ...]) -> set[str | None]:
    """Env packages whose nvJitLink file a failing link loads (its NVVM may come from outside the env)."""
    return {
        comp.name
        for path in paths
        if path.outcome == "link-fails"
        for comp in env.components
        if comp.role == "nvjitlink" and (lib := _loaded_for(path, comp)) is not None and owned(lib, comp, env.prefix)
    }


def link_finding(path: CompilePath) -> Finding:
    """A failing link whose NVVM or nvJitLink comes from outside the env (``$CUDA_HOME``, the system toolkit)."""
    hint = Hint(code="nvjitlink_up", text=f"bring nvJitLink up to CUDA {path.writer_cuda} (the NVVM that is loaded)")
    return Finding(
        code="nvjitlink_older", severity="error", message=path.message, hints=(hint,), component=path.consumer
    )
