"""Which path turns a package's PTX into machine code, from the final package set.

Why: the driver's PTX JIT is what rejects a toolkit newer than the driver; nvJitLink emits SASS,
which runs under minor version compatibility. numba-cuda links through nvJitLink (via pynvjitlink
from 0.14, via cuda.core's linker from 0.16) when it is present; the old built-in ``numba.cuda``
and numba-cuda without nvJitLink hand PTX to the driver.
Sources: NVIDIA/numba-cuda PRs #263 (0.14, pynvjitlink by default) and #310/#133 (0.16, cuda.core
linker, LTO by default); shared/reference/gpu-notes.md (H200 measurement).
"""

from __future__ import annotations

from collections.abc import Mapping

from condafix.errors import UsageError
from condafix.knowledge import CudaVersion

NVJITLINK_VIA_CUDA_CORE = CudaVersion(0, 16)  # numba-cuda >= 0.16 finds libnvjitlink itself
NVJITLINK_VIA_PYNVJITLINK = CudaVersion(0, 14)  # 0.14-0.15: only through the pynvjitlink package


def _v(text: str | None) -> CudaVersion | None:
    if not text:
        return None
    try:
        return CudaVersion.parse(text)
    except UsageError:
        return None


def numba_cuda_links_with_nvjitlink(final: Mapping[str, str]) -> bool:
    """Does this numba-cuda link through nvJitLink (SASS), given what else is installed?"""
    version = _v(final.get("numba-cuda"))
    if version is None:
        return False
    if version >= NVJITLINK_VIA_CUDA_CORE:
        return "libnvjitlink" in final
    return version >= NVJITLINK_VIA_PYNVJITLINK and "pynvjitlink" in final


def driver_jit_users(final: Mapping[str, str]) -> list[str]:
    """Packages in the final state whose kernels reach the driver's PTX JIT."""
    users = []
    if "numba-cuda" in final:
        if not numba_cuda_links_with_nvjitlink(final):
            users.append(f"numba-cuda {final['numba-cuda']}")
    elif "numba" in final:
        users.append(f"numba {final['numba']} (built-in numba.cuda)")
    return users
