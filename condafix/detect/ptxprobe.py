"""``doctor --probe``: compile a tiny kernel with the NVVM the env will load, read the PTX
``.version`` it writes, compare it with what the driver's JIT accepts, and (with a driver) JIT it.

Which NVVM: the one the env's consumer loads. The probe asks the env's own interpreter to run the
consumer's finder (``libsources.ask``: numba-cuda's ``cuda_paths``, numba's built-in ``get_cudalib``,
CuPy's NVRTC) and falls back to the model of that search order (``libsources``: numba-cuda takes
``$CUDA_HOME`` or the system toolkit when the env has none; numba's built-in target never takes a
pip wheel). Compiling needs no GPU; the JIT half needs a driver.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from condafix import runner
from condafix.detect import libsources
from condafix.detect.driver import DriverInfo
from condafix.detect.libsources import LoadedLibrary
from condafix.knowledge.cuda import CudaVersion, knowledge

PROBE_TIMEOUT = 120.0
Verdict = Literal["ok", "ptx-newer-than-driver", "unknown"]


@dataclass(frozen=True, kw_only=True)
class NvvmLibrary:
    path: str
    origin: str


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What the probe did; ``halves`` says whether compile and JIT both ran."""

    halves: Literal["compile and JIT", "compile only", "none"]
    verdict: Verdict
    message: str
    nvvm: NvvmLibrary | None = None
    ptx_version: str | None = None
    toolkit_cuda: tuple[str, ...] = ()
    driver_cuda: str | None = None
    driver_max_ptx: str | None = None
    jit_code: int | None = None
    jit_error: str | None = None
    jit_log: str | None = None
    libraries: tuple[LoadedLibrary, ...] = ()  # what each consumer loads: asked of the env, else modelled


def _names(prefix: Path) -> list[str]:
    """Package names in the env (conda-meta records and dist-info dirs), for ``consumer_kinds``."""
    from condafix.env import envinfo
    from condafix.errors import CondafixError

    try:
        return [c.name for c in envinfo.read_env(prefix).components]
    except CondafixError:
        return []


def loaded_libraries(prefix: Path | None, env: Mapping[str, str]) -> tuple[LoadedLibrary, ...]:
    """Every consumer's libraries as its own finder reports them in the env's python; the model where
    that cannot run (no interpreter, the consumer does not import, a timeout)."""
    if prefix is None:
        return ()
    kind = "conda" if (prefix / "conda-meta").is_dir() else "venv"
    host = libsources.host_for(str(prefix), kind, env)
    found: list[LoadedLibrary] = []
    for consumer in libsources.consumer_kinds(_names(prefix)):
        asked = libsources.ask(consumer, host, env)
        found += list(asked if asked else libsources.consumer_libraries(consumer, host))
    return tuple(found)


def _loaded_nvvm(libraries: tuple[LoadedLibrary, ...]) -> NvvmLibrary | None:
    for lib in libraries:
        if lib.library == "nvvm" and lib.path:
            return NvvmLibrary(path=lib.path, origin=f"{lib.consumer}'s NVVM ({lib.how}: {lib.found_via})")
    return None


def find_nvvm(prefix: Path | None, env: Mapping[str, str]) -> list[NvvmLibrary]:
    """Every libNVVM inside the env or ``$CUDA_HOME`` (the fallback when no consumer's own search found one)."""
    found: list[NvvmLibrary] = []
    if prefix is not None:
        sites = sorted(prefix.glob("lib/python3*/site-packages")) + sorted(prefix.glob("Lib/site-packages"))
        for site in sites:
            for pattern, origin in (
                ("nvidia/cu13/lib/libnvvm.so*", "pip wheel nvidia-nvvm (cu13)"),
                ("nvidia/cuda_nvcc/nvvm/lib64/libnvvm.so*", "pip wheel nvidia-cuda-nvcc-cu12"),
                ("nvidia/nvvm/lib64/libnvvm.so*", "pip wheel nvidia-nvvm"),
            ):
                found += [NvvmLibrary(path=str(p), origin=origin) for p in sorted(site.glob(pattern))[:1]]
        for pattern in ("nvvm/lib64/libnvvm.so*", "lib/libnvvm.so*"):
            found += [NvvmLibrary(path=str(p), origin="conda env") for p in sorted(prefix.glob(pattern))[:1]]
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if home:
        found += [
            NvvmLibrary(path=str(p), origin="$CUDA_HOME") for p in sorted(Path(home).glob("nvvm/lib64/libnvvm.so*"))[:1]
        ]
    return found


def _run_child(library: str, jit: bool) -> dict[str, object]:
    argv = [sys.executable, "-m", "condafix.detect._ptx_child", library] + (["--jit"] if jit else [])
    done = runner.run(argv, timeout=PROBE_TIMEOUT, env_overrides={"CUDA_VISIBLE_DEVICES": None})
    if done.error or done.returncode:
        return {"error": f"probe process {done.error or f'exited with {done.returncode}'}"}
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "probe process printed no result"}
    return data if isinstance(data, dict) else {"error": "probe process printed no result"}


def probe(prefix: Path | None, driver: DriverInfo, env: Mapping[str, str] | None = None) -> ProbeResult:
    """Compile with the env's NVVM and compare with the driver; JIT only on a real driver."""
    env = os.environ if env is None else env
    kb = knowledge()
    drv = driver.cuda_version
    max_ptx = kb.ptx_for_cuda(drv) if drv else None
    base = ProbeResult(
        halves="none",
        verdict="unknown",
        message="",
        driver_cuda=str(drv) if drv else None,
        driver_max_ptx=str(max_ptx) if max_ptx else None,
    )
    loaded = loaded_libraries(prefix, env)
    base = replace(base, libraries=loaded)
    library = _loaded_nvvm(loaded) or next(iter(find_nvvm(prefix, env)), None)
    if library is None:
        why = "no libNVVM in this env (conda nvvm/lib64, pip nvidia wheels, $CUDA_HOME): nothing to compile with"
        return replace(base, message=why)
    real_driver = drv is not None and not driver.override
    data = _run_child(library.path, jit=real_driver)
    if "error" in data or not data.get("ptx_version"):
        why = str(data.get("error") or "the PTX had no .version line")
        return replace(base, message=f"compiling with {library.path} failed: {why}", nvvm=library)
    ptx = CudaVersion.parse(str(data["ptx_version"]))
    toolkit = tuple(str(c) for c in kb.cuda_for_ptx(ptx))
    wrote = f"{library.origin} NVVM writes PTX ISA {ptx} (CUDA {' or '.join(toolkit) or '?'})"
    result = replace(base, halves="compile only", nvvm=library, ptx_version=str(ptx), toolkit_cuda=toolkit)
    jit = data.get("jit")
    if isinstance(jit, dict):
        code = jit.get("code")
        result = replace(
            result,
            halves="compile and JIT",
            jit_code=code if isinstance(code, int) else None,
            jit_error=str(jit.get("name") or jit.get("error")),
            jit_log=str(jit.get("log") or "") or None,
        )
    if max_ptx is None:
        return replace(result, message=f"{wrote}; no driver to compare with (JIT half not run)")
    message = f"{wrote}; the driver (CUDA {drv}) accepts up to PTX ISA {max_ptx}"
    if result.halves == "compile and JIT":
        message += f"; cuModuleLoadDataEx -> {result.jit_error} ({result.jit_code})"
    else:
        message += "; JIT half not run (no real driver: the CUDA version is an override)"
    return replace(result, verdict="ptx-newer-than-driver" if ptx > max_ptx else "ok", message=message)
