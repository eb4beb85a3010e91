"""Compilers that do not know the GPU: NVRTC and nvcc asked for an architecture they do not build.

Both directions: a toolchain older than the GPU (sm_100/120/121 need CUDA 12.8/12.9+), and a GPU older than
the toolchain (CUDA 13 no longer builds anything below sm_75). The direction decides the fix: a GPU that was
dropped never comes back with a newer CUDA or driver.
"""

from __future__ import annotations

import re

from condafix.diagnose.advice import Explanation, cuda_for_sm, fact_sm, made, sm_text, toolchain_cuda
from condafix.diagnose.facts import Facts
from condafix.diagnose.families import Family
from condafix.knowledge.cuda import CudaVersion, knowledge

# ---------------------------------------------------------------- architectures: compilers that do not know the GPU


def _arch_direction(arch: CudaVersion, tool: CudaVersion) -> str | None:
    """'dropped' when the toolchain no longer builds for ``arch``, 'too-new' when it predates it."""
    kb = knowledge()
    oldest, newest = kb.oldest_sm(tool.major), kb.newest_sm(tool)
    if oldest is not None and arch < oldest:
        return "dropped"
    if newest is not None and arch > newest:
        return "too-new"
    first_cuda, first_sm = kb.newest_sm_by_cuda[0]
    if newest is None and tool < first_cuda and arch >= first_sm:
        return "too-new"  # older than the table: it cannot know what the table's first release added
    return None


def _last_major_for(arch: CudaVersion) -> int | None:
    majors = [m for m, oldest in sorted(knowledge().oldest_sm_by_major.items()) if oldest <= arch]
    return max(majors) if majors else None


def nvrtc_arch(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    kb = knowledge()
    arch = fact_sm(facts, "target_sm") or fact_sm(facts, "gpu_sm")
    tool = toolchain_cuda(facts, "nvrtc_cuda", "toolkit_cuda", "build_cuda", "runtime_cuda")
    newest_known = max(sm for _c, sm in kb.newest_sm_by_cuda)
    direction = _arch_direction(arch, tool[0]) if arch and tool else None
    if direction is None and tool and arch is None and kb.newest_sm(tool[0]) == newest_known:
        direction = "dropped"  # this NVRTC knows every GPU there is: the GPU must be older than its floor
    if direction is None and arch is not None and tool is None and arch >= max(kb.oldest_sm_by_major.values()):
        direction = "too-new"  # no CUDA release dropped this architecture: the NVRTC predates it
    if direction == "dropped":
        cuda = tool[0] if tool else None
        floor = kb.oldest_sm(cuda.major) if cuda else None
        last = _last_major_for(arch) if arch else (cuda.major - 1 if cuda else None)
        lines: tuple[str, ...] = (
            f"NVRTC {cuda or '?'} ({tool[1] if tool else '?'}) builds for sm_{floor.major}{floor.minor} and newer"
            if floor
            else "this NVRTC no longer builds for the GPU's architecture",
            f"the GPU{' (' + sm_text(arch) + ')' if arch else ''} is older than the toolchain: its CUDA dropped it; "
            "a driver upgrade or a newer CUDA never brings it back",
        )
        fixes: tuple[str, ...] = (
            f"install a build of the library for CUDA {last}.x (e.g. cupy-cuda{last}x; conda: cuda-version={last}), "
            "the last major that supports this GPU"
            if last
            else "install a build from an older CUDA that still supports this GPU",
        )
        return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="package", culprit="build")
    if direction == "too-new" and arch is not None:
        since = cuda_for_sm(arch)
        lines = (
            f"the NVRTC that loaded{' (CUDA ' + str(tool[0]) + ')' if tool else ''} predates {sm_text(arch)}"
            + (f", which needs CUDA >= {since}" if since else ""),
            "an older NVRTC wins the loader (LD_LIBRARY_PATH, another toolkit's lib dir); not the driver",
        )
        fixes = (
            f"load an NVRTC of CUDA >= {since or '?'}: check `ldd` on the library and `echo $LD_LIBRARY_PATH`, "
            "and drop the older toolkit's lib dir from it",
        )
        return made(family, newer="driver", lines=lines, fixes=fixes, fix_kind="path", culprit="library")
    lines = (
        "NVRTC refused the -arch it was given: the GPU is either older than the toolchain's floor or newer than it",
        "the paste does not say which NVRTC or which GPU",
    )
    fixes = (
        'not enough information: run `python -c "import cupy; cupy.show_config()"` (NVRTC version) and '
        "`nvidia-smi --query-gpu=name,compute_cap --format=csv`",
    )
    return made(family, newer="unknown", lines=lines, fixes=fixes, fix_kind="info", culprit="unknown")


def nvcc_arch(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    refused = [CudaVersion.parse(f.value) for f in facts.all("target_sm") if f.source == "nvcc's refusal"]
    tool = toolchain_cuda(facts, "toolkit_cuda")
    arch = min(refused) if refused else None
    direction = _arch_direction(arch, tool[0]) if arch and tool else None
    if direction is not None and arch is not None and tool is not None:
        names = ", ".join(f"compute_{a.major}{a.minor}" for a in sorted(set(refused)))
        if direction == "dropped":
            why = f"CUDA {tool[0]}'s nvcc ({tool[1]}) no longer builds {names}: that architecture was dropped"
        else:
            why = f"CUDA {tool[0]}'s nvcc ({tool[1]}) predates {names} (needs CUDA >= {cuda_for_sm(arch) or '?'})"
        lines: tuple[str, ...] = (why, "a build-configuration problem, not the driver and not the env's CUDA pin")
        fixes: tuple[str, ...] = (
            f"take {names} out of the build's -gencode / CMAKE_CUDA_ARCHITECTURES / TORCH_CUDA_ARCH_LIST list "
            "(keep the architectures of the GPUs you have)",
            "or build with a toolkit that supports it",
        )
        return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="spec", culprit="spec")
    lines = (
        "nvcc refused a GPU architecture: it is either older than the toolkit's floor (CUDA 13 dropped everything "
        "below sm_75) or newer than the toolkit",
        "the paste does not say which nvcc ran",
    )
    fixes = ("not enough information: run `nvcc --version` (and `which nvcc`) in the shell that builds",)
    return made(family, newer="unknown", lines=lines, fixes=fixes, fix_kind="info", culprit="unknown")
