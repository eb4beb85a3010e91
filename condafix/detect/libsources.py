"""Which NVVM / nvJitLink / NVRTC file each consumer loads, in that consumer's own search order.

A consumer does not load "the env's NVVM": it walks its own list of places and takes the first hit,
and the env may hold nothing at all while ``$CUDA_HOME`` or ``/usr/local/cuda`` does. Measured on an
H200 (gpu-notes.md, 2026-12-02): numba-cuda took NVVM 13.2 from ``$CUDA_HOME`` next to an nvJitLink
13.0 wheel and failed ``ERROR_OUTDATED_LIBRARY``; numba's built-in target ignored an NVVM 13.2 wheel
and ran on the system NVVM 13.0. The orders modelled here are read from the consumers' code:

- **cuda-pathfinder** ``load_nvidia_dynamic_lib`` (NVIDIA/cuda-python,
  ``cuda_pathfinder/cuda/pathfinder/_dynamic_libs/load_nvidia_dynamic_lib.py`` ``_load_lib_no_cache``,
  ``search_steps.py`` ``EARLY_FIND_STEPS``/``LATE_FIND_STEPS``, ``descriptor_catalog.py``; 1.8.x):
  site-packages wheels -> ``$CONDA_PREFIX`` -> ``dlopen`` of the sonames (RPATH, ``LD_LIBRARY_PATH``,
  the loader cache) -> ``$CUDA_PATH``/``$CUDA_HOME`` -> for NVVM only, the CTK root found from where
  ``dlopen`` finds libcudart. numba-cuda >= 0.2x loads NVVM through it
  (``numba_cuda/numba/cuda/cuda_paths.py`` ``_get_nvvm``, which then also tries the root above the
  system NVRTC) and nvJitLink through cuda-bindings (``cuda/bindings/_internal/nvjitlink_linux.pyx``
  ``load_library``); CuPy >= 14 loads NVRTC through it (``cupy_backends/cuda/libs/_cnvrtc.pxi``
  ``_get_softlink``).
- **numba's built-in target** (numba/numba ``numba/cuda/cuda_paths.py`` ``_get_nvvm_path_decision``,
  ``numba/cuda/cudadrv/libs.py`` ``get_cudalib``): conda env ``lib/`` -> ``$PREFIX/nvvm/lib64`` ->
  ``$CUDA_HOME``/``$CUDA_PATH`` (taken even when it holds no NVVM) -> ``/usr/local/cuda`` -> plain
  ``dlopen("libnvvm.so")``. No pip wheel is ever looked at.

The sonames, wheel dirs and orders are a table with its sources (``data/compile_paths.json``,
``library_sources``). Everything here is a pure function of a :class:`Host` (paths and variables); only
:func:`host_for` reads ``/etc/ld.so.conf`` and :func:`ask` runs the consumer's own finder in the env's
interpreter.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from condafix import runner
from condafix.errors import UsageError
from condafix.knowledge.cuda import CudaVersion, data_text

Library = Literal["nvvm", "nvJitLink", "nvrtc"]
How = Literal["model", "asked", "package"]  # package: the env's record stands in (compilepath)


@functools.cache
def _table() -> dict[str, Any]:
    """data/compile_paths.json: ``library_sources`` (sonames, wheel dirs, anchors, orders) and ``aliases``."""
    raw: dict[str, Any] = json.loads(data_text("compile_paths.json"))
    return raw


_T = _table()["library_sources"]
SONAMES: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in _T["sonames"].items()}
SITE_DIRS: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in _T["site_packages"].items()}
ANCHOR_DIRS: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in _T["anchor_dirs"].items() if k != "default"}
DEFAULT_ANCHOR: tuple[str, ...] = tuple(_T["anchor_dirs"]["default"])
VERSION_KEYS: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in _T["version_json_keys"].items()}
ORDERS: Mapping[str, str] = dict(_T["orders"])
# ld.so's built-in directories, searched after the cache (x86-64 Debian/Ubuntu/RHEL layouts).
DEFAULT_LOADER_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
# pip names of CuPy (the compile-path table's aliases).
CONSUMER_ALIASES: Mapping[str, str] = {k: v for k, v in _table()["aliases"]["names"].items() if v == "cupy"}
_SEPARATOR = re.compile(r"[_.]")
_FULL_VERSION_NAME = re.compile(r"lib(?:nvJitLink|nvrtc)\.so\.(\d+\.\d+\.\d+)$")


@dataclass(frozen=True, kw_only=True)
class Host:
    """What a consumer started in the env would see: its paths and variables, nothing read yet.

    ``site_packages`` in ``sys.path`` order; ``conda_prefix`` is ``$CONDA_PREFIX`` as the consumer sees
    it (the env itself once activated); ``rpath`` the python binary's RPATH (conda: ``$PREFIX/lib``);
    ``loader_cache`` the directories ``ldconfig`` indexes (``/etc/ld.so.conf``).
    """

    prefix: str | None
    conda_env: bool
    site_packages: tuple[str, ...] = ()
    conda_prefix: str | None = None
    cuda_home: str | None = None
    cuda_path: str | None = None
    ld_library_path: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    loader_cache: tuple[str, ...] = ()
    system_ctk: str = "/usr/local/cuda"
    default_loader_dirs: tuple[str, ...] = DEFAULT_LOADER_DIRS


@dataclass(frozen=True, kw_only=True)
class LoadedLibrary:
    """One library a consumer loads: the file, the step of its search that found it, its CUDA version."""

    library: str
    path: str | None
    found_via: str
    version: str | None
    version_source: str
    how: How
    order: str
    consumer: str = ""

    @property
    def cuda(self) -> CudaVersion | None:
        return CudaVersion.parse(self.version) if self.version else None


# ---------------------------------------------------------------- versions of a found file


def _cuda_of(text: str) -> str | None:
    try:
        return str(CudaVersion.parse(text))
    except UsageError:
        return None


def _dist_info_of(site: Path, rel: str) -> Path | None:
    """The ``*.dist-info`` whose RECORD lists ``rel`` (the wheel that installed the file)."""
    for info in sorted(site.glob("*.dist-info")):
        record = info / "RECORD"
        try:
            text = record.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(line.split(",", 1)[0] == rel for line in text.splitlines()):
            return info
    return None


def _version_json(start: Path, library: str) -> tuple[str, str] | None:
    """A toolkit's ``version.json`` above the library (``lib64/``, ``targets/<triple>/lib``, ``nvvm/lib64``)."""
    for root in list(start.parents)[:4]:
        found = root / "version.json"
        if not found.is_file():
            continue
        try:
            data = json.loads(found.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        for key in (*VERSION_KEYS.get(library, ()), "cuda"):
            entry = data.get(key)
            version = entry.get("version") if isinstance(entry, dict) else None
            if isinstance(version, str) and _cuda_of(version):
                return str(_cuda_of(version)), f"{found} ({key} {version})"
    return None


def _toolkit_dist_info(real: Path) -> tuple[str, str] | None:
    """A toolkit unpacked from NVIDIA's wheels keeps their ``dist-info/`` beside ``lib/``: the RECORD
    that lists a file of this name (``nvidia/cu13/lib/libnvvm.so.4``) names its version."""
    for root in list(real.parents)[:3]:
        infos = root / "dist-info"
        if not infos.is_dir():
            continue
        for info in sorted(infos.glob("*.dist-info")):
            try:
                text = (info / "RECORD").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if any(line.split(",", 1)[0].rsplit("/", 1)[-1] == real.name for line in text.splitlines()):
                version = info.name[: -len(".dist-info")].split("-", 1)[-1]
                return _cuda_of(version) or "", f"RECORD of {infos / info.name}"
    return None


def library_version(library: str, path: str, host: Host) -> tuple[str | None, str]:
    """(CUDA major.minor, where that came from) of one library file.

    The soname of NVVM (``libnvvm.so.4``) says nothing about CUDA, so the file's owner decides: the wheel
    whose RECORD lists it, the toolkit's ``version.json``; nvJitLink and NVRTC of a toolkit or a conda
    package also carry it in their real file name (``libnvJitLink.so.13.0.88``). A conda env's NVVM is
    left unknown here: its package (``EnvInfo``, conda-meta's one reader) names it.
    """
    real = Path(os.path.realpath(path))
    named = _FULL_VERSION_NAME.match(real.name)
    if named:
        return _cuda_of(named.group(1)), f"file name {real.name}"
    for site in host.site_packages:
        try:
            rel = Path(path).relative_to(site).as_posix()
        except ValueError:
            continue
        info = _dist_info_of(Path(site), rel)
        if info is not None:
            version = info.name[: -len(".dist-info")].split("-", 1)[-1]
            return _cuda_of(version), f"RECORD of {info.name}"
        return None, f"no wheel in {site} lists {rel}"
    found = _version_json(Path(path), library) or _version_json(real, library) or _toolkit_dist_info(real)
    if found is not None and found[0]:
        return found
    return None, "unknown (no wheel RECORD, versioned file name or version.json names it)"


def _found(library: str, path: str, via: str, host: Host, order: str) -> LoadedLibrary:
    version, source = library_version(library, path, host)
    return LoadedLibrary(
        library=library, path=path, found_via=via, version=version, version_source=source, how="model", order=order
    )


def _missing(library: str, order: str, why: str = "not found") -> LoadedLibrary:
    return LoadedLibrary(
        library=library, path=None, found_via=why, version=None, version_source="-", how="model", order=order
    )


# ---------------------------------------------------------------- the search steps


def _exact(directory: str, sonames: Iterable[str]) -> str | None:
    """pathfinder's ``_find_descriptor_so_under_dir``: the first soname present as a file."""
    for soname in sonames:
        candidate = os.path.join(directory, soname)
        if os.path.isfile(candidate):
            return candidate
    return None


def _anchored(root: str, library: str) -> str | None:
    """pathfinder's ``_find_under_anchor_root``: the descriptor's anchor dirs under ``root``."""
    for rel in ANCHOR_DIRS.get(library, DEFAULT_ANCHOR):
        for directory in sorted(glob.glob(os.path.join(root, rel))):
            if os.path.isdir(directory):
                hit = _exact(os.path.normpath(directory), SONAMES[library])
                if hit:
                    return hit
    return None


def loader_dirs(host: Host) -> Iterator[str]:
    """Where ``dlopen`` looks for a bare soname: RPATH, ``LD_LIBRARY_PATH``, the cache, the defaults."""
    yield from host.rpath
    yield from host.ld_library_path
    yield from host.loader_cache
    yield from host.default_loader_dirs


def dlopen_finds(host: Host, sonames: Iterable[str]) -> str | None:
    """The file ``dlopen`` would map for the first soname it can resolve (pathfinder's system search)."""
    for soname in sonames:
        for directory in loader_dirs(host):
            candidate = os.path.join(directory, soname)
            if os.path.isfile(candidate):
                return candidate
    return None


def _ctk_root(lib_path: str) -> str | None:
    """pathfinder ``_derive_ctk_root_linux``: ``ROOT/lib64/x``, ``ROOT/targets/<triple>/lib/x``."""
    lib_dir = os.path.dirname(lib_path)
    if os.path.basename(lib_dir) not in ("lib64", "lib"):
        return None
    parent = os.path.dirname(lib_dir)
    grandparent = os.path.dirname(parent)
    return os.path.dirname(grandparent) if os.path.basename(grandparent) == "targets" else parent


def pathfinder(host: Host, library: str) -> LoadedLibrary:
    """cuda-pathfinder ``_load_lib_no_cache`` (1.8.x) for one library, without loading anything."""
    order = ORDERS["pathfinder"]
    for rel in SITE_DIRS[library]:
        for site in host.site_packages:
            hit = _exact(os.path.join(site, rel), SONAMES[library])
            if hit:
                return _found(library, hit, "site-packages", host, order)
    if host.conda_prefix:
        hit = _anchored(host.conda_prefix, library)
        if hit:
            return _found(library, hit, "conda", host, order)
    hit = dlopen_finds(host, SONAMES[library])
    if hit:
        return _found(library, hit, "system-search", host, order)
    home = host.cuda_path or host.cuda_home  # get_cuda_path_or_home: CUDA_PATH wins when both are set
    if home:
        hit = _anchored(home, library)
        if hit:
            return _found(library, hit, "CUDA_PATH" if host.cuda_path else "CUDA_HOME", host, order)
    if library == "nvvm":
        cudart = dlopen_finds(host, SONAMES["cudart"])
        root = _ctk_root(os.path.realpath(cudart)) if cudart else None
        hit = _anchored(root, library) if root else None
        if hit:
            return _found(library, hit, "system-ctk-root", host, order)
    return _missing(library, order)


def numba_cuda_nvvm(host: Host) -> LoadedLibrary:
    """numba-cuda ``cuda_paths._get_nvvm`` (0.2x-0.30): pathfinder, then the toolkit above the system NVRTC."""
    first = pathfinder(host, "nvvm")
    order = ORDERS["numba-cuda-nvvm"]
    if first.path is not None:
        return replace(first, order=order)
    if host.cuda_home or host.cuda_path:
        return _missing("nvvm", order, "not found (CUDA_HOME/CUDA_PATH is set, so numba-cuda looks no further)")
    nvrtc = pathfinder(host, "nvrtc")
    if nvrtc.path is None or nvrtc.found_via != "system-search":
        return _missing("nvvm", order)
    for parent in Path(os.path.realpath(nvrtc.path)).parents:
        if (parent / "nvvm").is_dir():
            hit = _anchored(str(parent), "nvvm")
            return _found("nvvm", hit, "system-search", host, order) if hit else _missing("nvvm", order)
    return _missing("nvvm", order)


def _numba_nvvm_name(name: str) -> bool:
    """numba ``findlib.find_lib``'s ``libnvvm\\.so\\.[0-9]*([_\\.][0-9]+)*$``, without a nested repeat."""
    if not name.startswith("libnvvm.so."):
        return False
    first, *rest = _SEPARATOR.split(name[len("libnvvm.so.") :])
    return (first == "" or first.isdigit()) and all(part.isdigit() for part in rest)


def _numba_find(directory: str) -> str | None:
    """numba ``findlib.find_lib('nvvm', dir)``: ``libnvvm.so.<digits>`` files, the largest name."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    hits = [os.path.join(directory, n) for n in names if _numba_nvvm_name(n)]
    hits = [h for h in hits if os.path.isfile(h)]
    return max(hits) if hits else None


def numba_builtin_nvvm(host: Host) -> LoadedLibrary:
    """numba ``cuda_paths._get_nvvm_path_decision`` + ``libs.get_cudalib('nvvm')``: the first option that
    names a directory wins even when it holds no NVVM (then ``dlopen('libnvvm.so')`` decides)."""
    order = ORDERS["numba"]
    options: list[tuple[str, str | None]] = []
    if host.conda_env and host.prefix:
        conda_lib = _numba_find(os.path.join(host.prefix, "lib"))
        options.append(("Conda environment", os.path.dirname(conda_lib) if conda_lib else None))
        nvidia = os.path.join(host.prefix, "nvvm", "lib64")
        options.append(("Conda environment (NVIDIA package)", nvidia if _numba_find(nvidia) else None))
    home = host.cuda_home if host.cuda_home is not None else host.cuda_path
    options.append(("CUDA_HOME", os.path.join(home, "nvvm", "lib64") if home is not None else None))
    system = os.path.join(host.system_ctk, "nvvm", "lib64") if os.path.exists(host.system_ctk) else None
    options.append(("System", system))
    by, directory = next(((b, d) for b, d in options if d is not None), ("<unknown>", None))
    hit = _numba_find(directory) if directory else None
    if hit:
        return _found("nvvm", hit, by, host, order)
    loaded = dlopen_finds(host, ("libnvvm.so",))
    if loaded:
        return _found("nvvm", loaded, f"dlopen('libnvvm.so') after {by} had none", host, order)
    return _missing("nvvm", order, f"not found ({by} had none, dlopen('libnvvm.so') failed)")


def consumer_libraries(kind: str, host: Host) -> tuple[LoadedLibrary, ...]:
    """The libraries one consumer (a compilepath table key) loads to build kernels, as its code finds them."""
    if kind == "numba-cuda":
        found: tuple[LoadedLibrary, ...] = (numba_cuda_nvvm(host), pathfinder(host, "nvJitLink"))
    elif kind == "numba":
        found = (numba_builtin_nvvm(host),)
    elif kind == "cupy":
        found = (pathfinder(host, "nvrtc"),)
    else:
        found = ()
    return tuple(replace(lib, consumer=kind) for lib in found)


def consumer_kinds(names: Iterable[str]) -> tuple[str, ...]:
    """Which of the modelled consumers an env holds (package names): numba only without numba-cuda,
    whose ``_numba_cuda_redirector.pth`` takes ``numba.cuda`` over."""
    present = {CONSUMER_ALIASES.get(n, n) for n in names}
    kinds = ["numba-cuda"] if "numba-cuda" in present else ["numba"] if "numba" in present else []
    return tuple(kinds + (["cupy"] if "cupy" in present else []))


# ---------------------------------------------------------------- the host as it is


def _ld_conf(path: Path, seen: set[Path]) -> list[str]:
    """Directories of an ``ld.so.conf`` and the files it includes (``include /etc/ld.so.conf.d/*.conf``)."""
    if path in seen:
        return []
    seen.add(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    dirs: list[str] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include "):
            pattern = line.split(None, 1)[1]
            if not os.path.isabs(pattern):
                pattern = str(path.parent / pattern)
            for name in sorted(glob.glob(pattern)):
                dirs += _ld_conf(Path(name), seen)
        else:
            dirs.append(line)
    return dirs


def host_for(
    prefix: str | None, kind: str, env_vars: Mapping[str, str], *, ld_conf: Path = Path("/etc/ld.so.conf")
) -> Host:
    """The host a consumer in ``prefix`` would see, with the user's variables (a conda env as activated)."""
    base = Path(prefix) if prefix else None
    sites = tuple(str(p) for p in sorted(base.glob("lib/python3*/site-packages")) if p.is_dir()) if base else ()
    conda = kind == "conda"
    return Host(
        prefix=prefix,
        conda_env=conda,
        site_packages=sites,
        conda_prefix=prefix if conda else (env_vars.get("CONDA_PREFIX") or None),
        cuda_home=env_vars.get("CUDA_HOME") or None,
        cuda_path=env_vars.get("CUDA_PATH") or None,
        ld_library_path=tuple(d for d in env_vars.get("LD_LIBRARY_PATH", "").split(":") if d),
        rpath=(str(base / "lib"),) if conda and base else (),
        loader_cache=tuple(_ld_conf(ld_conf, set())),
    )


def sources(kinds: Iterable[str], host: Host) -> dict[str, tuple[LoadedLibrary, ...]]:
    """Every consumer's libraries, by the model."""
    return {kind: consumer_libraries(kind, host) for kind in kinds}


# ---------------------------------------------------------------- asking the env's own interpreter

ASK_TIMEOUT = 60.0
CHILD = Path(__file__).with_name("_finder_child.py")


def python_of(prefix: str | None) -> Path | None:
    """The env's interpreter, if it has one."""
    if not prefix:
        return None
    for name in ("bin/python", "bin/python3", "python.exe"):
        candidate = Path(prefix) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def parse_answer(kind: str, stdout: str, host: Host) -> tuple[LoadedLibrary, ...] | None:
    """The child's last JSON line -> libraries (versions the library reported, else the file's owner)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("libraries"), list):
        return None
    found: list[LoadedLibrary] = []
    for item in data["libraries"]:
        if not isinstance(item, dict) or not isinstance(item.get("library"), str):
            continue
        said, mapped = item.get("path"), item.get("mapped")
        said = said if isinstance(said, str) and os.path.isabs(said) else None
        mapped = mapped if isinstance(mapped, str) and mapped else None
        path = said or mapped  # the finder's own answer; the mapped file is its realpath (or dlopen's pick)
        reported = item.get("version")
        if isinstance(reported, str) and _cuda_of(reported):
            version, source = _cuda_of(reported), str(item.get("version_source") or "the library")
        elif path is not None:
            version, source = library_version(str(item["library"]), path, host)
        else:
            version, source = None, "-"
        found.append(
            LoadedLibrary(
                library=str(item["library"]),
                path=path,
                found_via=str(item.get("found_via") or ("not found" if path is None else "?")),
                version=version,
                version_source=source,
                how="asked",
                consumer=kind,
                order=f"{kind}'s own finder in the env's interpreter"
                + (f": {item['error']}" if item.get("error") else ""),
            )
        )
    return tuple(found)


def ask(
    kind: str, host: Host, env_vars: Mapping[str, str], *, timeout: float = ASK_TIMEOUT
) -> tuple[LoadedLibrary, ...] | None:
    """Run ``kind``'s own finder in the env's python (never in condafix's); None when that cannot run."""
    python = python_of(host.prefix)
    if python is None or kind not in ("numba-cuda", "numba", "cupy"):
        return None
    overrides: dict[str, str | None] = {k: env_vars.get(k) for k in ("CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH")}
    overrides["CONDA_PREFIX"] = host.conda_prefix
    overrides["PYTHONPATH"] = None
    done = runner.run([str(python), str(CHILD), kind], timeout=timeout, env_overrides=overrides)
    if done.error:
        return None
    return parse_answer(kind, done.stdout, host)
