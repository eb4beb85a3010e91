"""Child half of ``doctor --probe``'s library question: run one consumer's own finder, say what it loaded.

Runs in the *env's* interpreter as ``python _finder_child.py KIND`` (KIND: numba-cuda, numba, cupy), so it
imports nothing of condafix and only the standard library besides the consumer itself; condafix never
imports a consumer in its own process. Prints one JSON line: for each library the path the finder
returned, how it found it, the file really mapped (``/proc/self/maps``) and, where the library can say,
its version (``nvJitLinkVersion``, ``nvrtcVersion``; NVVM's own ``nvvmVersion`` is not a CUDA version).
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

MARKS = {"nvvm": "libnvvm", "nvJitLink": "libnvJitLink", "nvrtc": "libnvrtc.so"}


def mapped(library: str) -> str | None:
    """The file of ``library`` mapped into this process, as the loader really chose it."""
    mark = MARKS[library]
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and "/" in parts[5] and mark in parts[5].rsplit("/", 1)[-1]:
                    return parts[5].strip()
    except OSError:
        return None
    return None


def version_of(library: str, path: str) -> str | None:
    """nvJitLinkVersion / nvrtcVersion of the loaded file (NVVM has no CUDA version API)."""
    symbol = {"nvJitLink": "nvJitLinkVersion", "nvrtc": "nvrtcVersion"}.get(library)
    if symbol is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        func = getattr(lib, symbol)
    except (OSError, AttributeError):
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    if func(ctypes.byref(major), ctypes.byref(minor)) != 0:
        return None
    return f"{major.value}.{minor.value}"


def entry(library: str, path: Any, via: Any, error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"library": library, "path": str(path) if path else None, "found_via": str(via or "")}
    out["mapped"] = mapped(library)
    real = out["mapped"] or out["path"]
    if real:
        version = version_of(library, real)
        if version:
            out["version"] = version
            out["version_source"] = f"{'nvJitLinkVersion' if library == 'nvJitLink' else 'nvrtcVersion'}()"
    if error:
        out["error"] = error[-300:]
    return out


def pathfinder(library: str) -> dict[str, Any]:
    """cuda-pathfinder's load_nvidia_dynamic_lib: what cuda-bindings (nvJitLink) and CuPy (NVRTC) call."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib  # type: ignore[import-not-found]

        loaded = load_nvidia_dynamic_lib(library)
    except Exception as exc:  # any failure is the answer "not found"
        return entry(library, None, "not found", f"{type(exc).__name__}: {exc}")
    return entry(library, loaded.abs_path, getattr(loaded, "found_via", "?"))


def numba_cuda() -> list[dict[str, Any]]:
    """numba-cuda: cuda_paths.get_cuda_paths()['nvvm'] (its _get_nvvm), nvJitLink through cuda-bindings."""
    try:
        from numba.cuda import cuda_paths  # type: ignore[import-not-found]

        by, path = cuda_paths.get_cuda_paths()["nvvm"]
        nvvm = entry("nvvm", path, by)
    except Exception as exc:
        nvvm = entry("nvvm", None, "not found", f"{type(exc).__name__}: {exc}")
    return [nvvm, pathfinder("nvJitLink")]


def numba_builtin() -> list[dict[str, Any]]:
    """numba's built-in target: libs.get_cudalib('nvvm') (cuda_paths' decision, else 'libnvvm.so'), opened."""
    try:
        from numba.cuda.cuda_paths import get_cuda_paths  # type: ignore[import-not-found]
        from numba.cuda.cudadrv.libs import get_cudalib  # type: ignore[import-not-found]

        by = get_cuda_paths()["nvvm"].by
        path = get_cudalib("nvvm")
        ctypes.CDLL(path)
        return [entry("nvvm", path, by)]
    except Exception as exc:
        return [entry("nvvm", None, "not found", f"{type(exc).__name__}: {exc}")]


def cupy() -> list[dict[str, Any]]:
    """CuPy: its NVRTC SoftLink (cupy_backends.cuda.libs.nvrtc), else the pathfinder call it makes."""
    try:
        from cupy_backends.cuda.libs import nvrtc  # type: ignore[import-not-found]

        nvrtc.getVersion()
        path = mapped("nvrtc")
        if path:
            return [entry("nvrtc", path, "cupy_backends.cuda.libs.nvrtc")]
    except Exception:  # fall back to the call CuPy makes
        pass
    return [pathfinder("nvrtc")]


def main(argv: list[str]) -> int:
    kind = argv[0] if argv else ""
    finders = {"numba-cuda": numba_cuda, "numba": numba_builtin, "cupy": cupy}
    if kind not in finders:
        print(json.dumps({"error": f"unknown consumer {kind!r}"}))
        return 2
    print(json.dumps({"consumer": kind, "python": sys.version.split()[0], "libraries": finders[kind]()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
