"""The runtime-side families: the CUDA runtime, frameworks and GPU architectures, the loader (803/804),
library skew inside an env, and the solvers' messages (conda, mamba, pixi).

Each builder decides the culprit from the component that refused, not from the numbers around it: a
loader mismatch is never a pin, a library skew is never the driver, a pixi manifest without CUDA is a
manifest edit.
"""

from __future__ import annotations

import re

from condafix.diagnose.advice import (
    Explanation,
    cuda_for_sm,
    driver_from_facts,
    fact_sm,
    fixed,
    is_pip,
    made,
    pin_lines,
    sm_text,
    toolchain_cuda,
)
from condafix.diagnose.facts import Facts
from condafix.diagnose.families import Family, FixKind
from condafix.errors import UsageError
from condafix.knowledge.cuda import CudaVersion, knowledge


def has_conda(facts: Facts) -> bool:
    """The paste shows a conda-family env (a prompt, an envs/ path, conda rows, __cuda, a conda solver)."""
    managers = {f.value for f in facts.all("manager")}
    rows = any(f.kind == "package" and f.source == "a conda list row" for f in facts.items)
    return bool(managers & {"conda", "mamba", "pixi"}) or bool(facts.env_name) or rows or bool(facts.conda_cuda)


# ---------------------------------------------------------------- frameworks and the CUDA runtime


def _build_cuda(facts: Facts) -> CudaVersion | None:
    pkg = facts.package("pytorch", "torch", "pytorch-cuda")
    if pkg and pkg.cuda:
        return CudaVersion.parse(pkg.cuda)
    built = facts.first("build_cuda")
    return CudaVersion.parse(built.value) if built else None


def torch_too_old(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    kb = knowledge()
    try:
        found = CudaVersion.from_encoded(int(match["found"]))
    except ValueError:
        raise UsageError(
            f"the message says 'found version {match['found']}', which is not an encoded CUDA version "
            "(PyTorch prints e.g. 11040 for CUDA 11.4); paste the whole message unchanged"
        ) from None
    build = _build_cuda(facts)
    lines = (
        f"{match['found']} is the driver's maximum CUDA version ({found}), not a driver version",
        f"this PyTorch build needs a newer CUDA than {found}" + (f": it is built for CUDA {build}" if build else ""),
    )
    major = build.major if build is not None and build.major > found.major else found.major + 1
    floor = kb.mvc_floor.get(build.major if build is not None else major)
    need = floor[0] if floor else kb.min_driver_for(CudaVersion(major=major, minor=0))
    fits = [v for v in kb.pytorch_cuda_versions if v <= found]
    conda = f'conda: "pytorch-cuda={max(fits)}" (pytorch channel)' if fits else "conda: a cudatoolkit build of PyTorch"
    fixes = (
        f"install a PyTorch build for CUDA <= {found}: {conda}; pip: a +cu{found.major}{found.minor} wheel or older",
        f"or upgrade the NVIDIA driver to >= {need}, which runs every CUDA {build.major if build else major}.x build"
        if need
        else "or upgrade the NVIDIA driver",
    )
    return made(
        family,
        newer="toolkit",
        toolkit_cuda=(str(build),) if build else (),
        driver_cuda=(str(found),),
        lines=lines,
        fixes=fixes,
        fix_kind="package",
        culprit="build",
    )


def runtime(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    drv = driver_from_facts(facts)
    component = "bindings" if "cudaError_t" in text or "cuda.bindings" in text else "runtime"
    lines: tuple[str, ...] = (
        "the CUDA runtime (cudart) in use is newer than the driver supports (error 35)",
        "across a major this never works; within a major it needs the minor-version-compatibility floor",
    )
    fixes: tuple[str, ...]
    kind: FixKind
    if drv is None:
        fixes = (
            "not enough information: run `nvidia-smi` (the driver's CUDA) and paste its banner with the error; "
            "`condafix doctor` on that machine prints the pin",
        )
        return made(
            family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="info", culprit="driver", component=component
        )
    have = facts.first("runtime_cuda") or facts.first("build_cuda") or facts.first("toolkit_cuda")
    need = knowledge().min_driver_for(CudaVersion.parse(have.value)) if have else None
    upgrade = (
        f"upgrade the NVIDIA driver to >= {need} (CUDA {have.value})" if need and have else "upgrade the NVIDIA driver"
    )
    if component == "bindings":
        fixes = (
            f'pip install "cuda-python>={drv.major},<{drv.major + 1}" (cuda-bindings of the driver\'s CUDA major '
            f"{drv.major}: cuda-bindings 13 needs a 580+ driver)",
            f"or {upgrade}",
        )
        return made(family, newer="toolkit", driver_cuda=(str(drv),), lines=lines, fixes=fixes, fix_kind="pip",
                    culprit="bindings", component=component)  # fmt: skip
    if has_conda(facts) or is_pip(facts):
        pins, kind = pin_lines(drv, facts)
        fixes = (f"pin the env to CUDA {drv} or older:", *pins, f"or {upgrade}")
    else:
        kind = "driver"
        fixes = (
            f"{upgrade}: the runtime is inside the program (no env in the paste), the driver runs CUDA {drv}",
            f"or use a build of the program for CUDA <= {drv}",
        )
    return made(
        family,
        newer="toolkit",
        driver_cuda=(str(drv),),
        lines=lines,
        fixes=fixes,
        fix_kind=kind,
        culprit="driver",
        component=component,
    )


def bindings_major(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    drv = driver_from_facts(facts)
    major = drv.major if drv else None
    lines = (
        f"cuda-bindings (cuda-python) refused the driver's CUDA {drv or '?'}: the bindings are of an older CUDA major",
        "the driver is the newer side: a driver change is not needed",
    )
    spec = f'"cuda-bindings>={major},<{major + 1}"' if major else "cuda-bindings of the driver's major"
    fixes = (
        f'pip install -U {spec} (numba-cuda: pip install -U "numba-cuda[cu{major or "XY"}]")'
        if not has_conda(facts) or is_pip(facts)
        else f"conda install {spec}",
    )
    kind: FixKind = "pip" if not has_conda(facts) or is_pip(facts) else "package"
    return made(
        family,
        newer="driver",
        driver_cuda=(str(drv),) if drv else (),
        lines=lines,
        fixes=fixes,
        fix_kind=kind,
        culprit="bindings",
    )


# ---------------------------------------------------------------- GPU architectures


def no_kernel(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    kb = knowledge()
    sm = CudaVersion.parse(facts.gpu_sm) if facts.gpu_sm else None
    archs = tuple(CudaVersion.parse(s) for s in facts.build_sms)
    if sm is not None and archs and sm > max(archs):
        since = cuda_for_sm(sm)
        lines: tuple[str, ...] = (
            f"the GPU is {sm_text(sm)}; the build has SASS up to {sm_text(max(archs))}: "
            "the build is too OLD for this GPU (not a driver problem)",
            "a newer GPU needs a build from a CUDA that knows it"
            + (f" ({sm_text(sm)}: CUDA >= {since})" if since else ""),
        )
        fixes: tuple[str, ...] = (
            f"install a build compiled for {sm_text(sm)}"
            + (f": CUDA >= {since} (e.g. pip '+cu{since.major}{since.minor}' wheels)" if since else ""),
            "the driver must support that CUDA too (`condafix doctor` shows it)",
        )
        drv = driver_from_facts(facts)
        need = kb.min_driver_for(since) if since else None
        if drv is not None and since is not None and since > drv and need:
            fixes = (
                f"upgrade the NVIDIA driver to >= {need} first: {sm_text(sm)} needs a build from CUDA >= {since} "
                f"and this driver runs CUDA {drv}",
                f"then install a build compiled for {sm_text(sm)} (CUDA >= {since})",
            )
            return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="driver", culprit="build")
        return made(family, newer="driver", lines=lines, fixes=fixes, fix_kind="package", culprit="build")
    if sm is not None and archs and sm < min(archs):
        majors = [m for m, oldest in sorted(kb.oldest_sm_by_major.items()) if oldest <= sm]
        last = max(majors) if majors else None
        lines = (
            f"the GPU is {sm_text(sm)}; the build starts at {sm_text(min(archs))}: "
            "its CUDA dropped this GPU (CUDA 12 dropped sm_35/sm_37, CUDA 13 everything below sm_75)",
            "not a driver problem: a newer driver does not bring old architectures back",
        )
        fixes = (
            f"install a build from CUDA {last}.x or older, the last to support {sm_text(sm)}"
            if last
            else "install a build from an older CUDA that still supports this GPU",
        )
        return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="package", culprit="build")
    lines = (
        "not a version mismatch: the binary has no SASS (and no usable PTX) for this GPU's compute capability",
        "typical with a new GPU (e.g. Blackwell sm_120) and an old build, or an old GPU dropped by a new build",
    )
    fixes = ("install a build that includes your GPU's architecture (`condafix doctor` shows its compute capability)",)
    return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="package", culprit="build")


def gpu_dropped(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    sm, floor = fact_sm(facts, "gpu_sm"), fact_sm(facts, "min_sm")
    name = f"{facts.gpu_name} ({sm_text(sm)})" if facts.gpu_name and sm else (sm_text(sm) if sm else "this GPU")
    lines: tuple[str, ...] = (
        f"{name} is older than the build supports"
        + (f" (it starts at {sm_text(floor)})" if floor else "")
        + ": the toolchain the build came from dropped it",
        "not a driver problem: a newer driver or a newer CUDA never brings it back (CUDA 13 dropped everything "
        "below sm_75)",
    )
    if "triton GPU compiler" in text:
        fixes: tuple[str, ...] = (
            "run this GPU without Triton: no torch.compile / Triton kernels (Triton builds for sm_70 and newer); "
            "eager PyTorch still runs on it",
        )
        return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="spec", culprit="build",
                    component="triton")  # fmt: skip
    majors = [m for m, oldest in sorted(knowledge().oldest_sm_by_major.items()) if sm and oldest <= sm]
    arch = sm_text(sm) if sm else "this architecture"
    if sm is not None and not majors:
        fixes = (f"no CUDA release with current builds supports {arch} (CUDA 9 dropped it): run on the CPU, or keep "
                 "an old build from CUDA 8 or older",)  # fmt: skip
    else:
        last = f"CUDA {max(majors)}.x" if majors else "an older CUDA"
        fixes = (
            f"install a build from {last} that still ships {arch} (for PyTorch a wheel whose 'supports CUDA "
            "capabilities' list names it); never a CUDA 13 build for a GPU below sm_75",
        )
    return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="package", culprit="build")


# ---------------------------------------------------------------- the loader


def loader_803(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    driver = facts.first("driver_version")
    lines = (
        "error 803: the user-space libcuda.so that loaded does not match the kernel driver"
        + (f" ({driver.value}, {driver.source})" if driver else ""),
        "usually a forward-compat libcuda (cuda-compat, an image's /usr/local/cuda/compat in ld.so.conf.d) winning "
        "the loader cache on a host whose driver is newer, or a driver update without a reboot",
        "not a CUDA version problem of the env: a pin or a driver upgrade does not fix it",
    )
    fixes = (
        "find the libcuda that loads: `ldconfig -p | grep libcuda`, `cat /proc/driver/nvidia/version` and "
        "`echo $LD_LIBRARY_PATH`; take the compat dir out (the image's /etc/ld.so.conf.d/*compat* entry or "
        "the LD_LIBRARY_PATH entry), or reboot after a driver update",
    )
    return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="loader", culprit="loader")


def compat_804(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...] = (
        "error 804: a forward-compatibility libcuda (cuda-compat) is loaded, but this GPU does not support "
        "forward compatibility: only data-center, some professional and Jetson GPUs do",
        "not an env pin problem: remove the compat library; to run a newer CUDA on this GPU the driver itself "
        "must be newer",
    )
    banner, driver = facts.first("driver_cuda"), facts.first("driver_version")
    if banner and driver and banner.source == "nvidia-smi banner":
        try:
            native = knowledge().max_cuda_for_driver(driver.value)
        except UsageError:
            native = None
        if native is not None and CudaVersion.parse(banner.value) > native:
            lines = (
                *lines,
                f"nvidia-smi shows CUDA {banner.value} but driver {driver.value} runs CUDA {native} by itself "
                f"(line {banner.line}): the compat libcuda is the one loaded",
            )
    fixes: tuple[str, ...] = (
        "take the compat libcuda out of the loader path: `ldconfig -p | grep libcuda`, remove the cuda-compat "
        "package (cuda-compat-*) or its LD_LIBRARY_PATH entry; reboot if the driver was just updated",
    )
    return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="loader", culprit="loader")


# ---------------------------------------------------------------- library skew inside the env


def library_skew(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    loaded, built = facts.first("library", "cuDNN"), facts.first("library", "cuDNN build")
    need_link = facts.first("library", "nvJitLink needed")
    if need_link is not None:
        lines: tuple[str, ...] = (
            f"a library (cuSPARSE from the wheels) needs nvJitLink >= {need_link.value}; an older libnvJitLink.so "
            "loads first, from another toolkit's lib dir on LD_LIBRARY_PATH",
            "a library skew inside the env, not the driver and not the env's CUDA pin",
        )
        fixes: tuple[str, ...] = (
            "take the other toolkit's lib dir out of LD_LIBRARY_PATH (`ldd` on libcusparse.so.12 shows which "
            f"libnvJitLink loads), or install nvidia-nvjitlink-cu12>={need_link.value}",
        )
        return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="path", culprit="library")
    versions = f"built against cuDNN {built.value}, loaded {loaded.value}" if loaded and built else "a cuDNN mismatch"
    lines = (
        f"the framework was {versions}: the cuDNN that loads is older than it needs",
        "a library skew inside the env (or on LD_LIBRARY_PATH), not the driver and not a CUDA pin",
    )
    if "bundled" in text or "LD_LIBRARY_PATH" in text or "linked against" in text:
        fixes = (
            "PyTorch brings its own cuDNN: take the older cuDNN out of LD_LIBRARY_PATH (`echo $LD_LIBRARY_PATH`) "
            "or remove the separate cudnn package so the bundled one loads",
        )
        return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="path", culprit="library")
    want = built.value if built else "the version it was built with"
    kind: FixKind
    if is_pip(facts):
        fixes, kind = (f'pip install "nvidia-cudnn-cu12>={want}"',), "pip"
    else:
        fixes, kind = (
            (f'conda install "cudnn>={want}" in the env (or the matching nvidia-cudnn wheel for pip)',),
            "package",
        )
    return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind=kind, culprit="library")


# ---------------------------------------------------------------- solvers


classic_unsat = fixed(
    lines=(
        "conda's classic solver lists every virtual package (__cuda, __glibc) among the 'incompatible' features "
        "whenever it finds no solution: __cuda is rarely the cause",
        "the real conflict is elsewhere in the specs",
    ),
    fixes=(
        "not enough information: solve again with libmamba to see the real conflict: conda install "
        "--solver=libmamba … (the default since conda 23.10), then `condafix explain` that message",
    ),
    fix_kind="info",
    culprit="spec",
)


_NEED = re.compile(r"__cuda ?>=? ?(\d{1,2}(?:\.\d{1,2})?)")


def solver(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    need_match = _NEED.search(text)
    need = need_match.group(1) if need_match else None
    wanted = CudaVersion.parse(need if "." in need else f"{need}.0") if need else None
    smi = CudaVersion.parse(facts.driver_cuda) if facts.driver_cuda else None
    seen = CudaVersion.parse(facts.conda_cuda) if facts.conda_cuda else None
    have = seen or smi
    if have is not None and wanted is not None and wanted > have:
        where = "the solver's __cuda" if seen else facts.driver_source
        pins, kind = pin_lines(have, facts)
        lines: tuple[str, ...] = (
            f"the driver is there ({where}: CUDA {have}) but older than the __cuda >= {need} this package asks for",
            "a build for the driver's CUDA or a driver upgrade fixes it",
        )
        fixes: tuple[str, ...] = (
            f"pin the env to CUDA {have} or older:",
            *pins,
            f"or upgrade the NVIDIA driver to >= {knowledge().min_driver_for(wanted)}",
        )
        return made(
            family, newer="toolkit", driver_cuda=(str(have),), lines=lines, fixes=fixes, fix_kind=kind, culprit="env"
        )
    if smi is not None and seen is None:
        lines = (
            f"the pasted {facts.driver_source} shows a working driver (CUDA {smi}), yet the solver saw no __cuda: "
            "conda's detection failed here, the driver is fine",
            "common causes: the solve ran on another host or container, CUDA_VISIBLE_DEVICES empty or invalid, "
            "or libcuda not loadable by conda's probe",
        )
        fixes = (
            f"tell the solver: CONDA_OVERRIDE_CUDA={smi} conda install … (conda, mamba and pixi honour it)",
            f"then check `conda info` lists __cuda={smi}; `condafix doctor` shows which detection failed",
        )
        return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="override", culprit="host")
    lines = (
        "the solver needs the __cuda virtual package (the driver's CUDA) and did not get it, or it is too old",
        "on a host without a GPU (login node, CI, Docker build) no __cuda exists",
    )
    if need:
        lines = (*lines, f"the package asks for __cuda >= {need}")
    fixes = (
        "on a GPU-less host: CONDA_OVERRIDE_CUDA=M.m conda install … (M.m = the target machine's driver CUDA)",
        "on the GPU host: `condafix doctor` says whether the driver is missing, too old, or just not detected",
    )
    return made(family, newer="driver", lines=lines, fixes=fixes, fix_kind="override", culprit="host")


pixi_virtual_missing = fixed(
    lines=(
        "pixi found no __cuda on this machine (no NVIDIA driver here: CI runner, login node, Docker build) but the "
        "environment requires one",
        "nothing is wrong with the manifest's CUDA or with a driver elsewhere",
    ),
    fixes=(
        "for the solve/install on this machine: CONDA_OVERRIDE_CUDA=<the GPU machine's driver CUDA, e.g. 12.0> "
        "pixi install",
        "or give GPU-less machines their own environment without the cuda requirement",
    ),
    fix_kind="override",
    culprit="host",
)


pixi_no_cuda = fixed(
    lines=(
        "pixi solves against the manifest's declared system requirements, not the machine: a CUDA build "
        "(`*cuda*`) needs __cuda, and this manifest declares no CUDA for the environment",
        "not the driver: pixi does not look at the machine's __cuda for a manifest without it",
    ),
    fixes=(
        'declare it in the manifest: [system-requirements] cuda = "12" (pixi < 0.71), or the cuda entry of the '
        "workspace platform (rich platforms, pixi >= 0.71), for the environments that need CUDA",
    ),
    fix_kind="manifest",
    culprit="spec",
)


pixi_platform_mismatch = fixed(
    newer="unknown",
    lines=(
        "pixi compares the machine's virtual packages (__cuda, __glibc) with each platform the environment "
        "declares; none matched here",
        "either this machine's driver CUDA is older than the platforms ask for, or it has no __cuda at all",
    ),
    fixes=(
        "not enough information: run `pixi info` (its Virtual packages list __cuda) and compare it with the "
        "cuda of the workspace platforms; an older __cuda needs a driver upgrade or a platform for it, none needs "
        "CONDA_OVERRIDE_CUDA or a CPU platform",
    ),
    fix_kind="info",
    culprit="host",
)


build_glob = fixed(
    lines=(
        "the requested build-string glob matches no package in these channels for this platform",
        "the solver never got to __cuda: not the driver",
    ),
    fixes=(
        "check what exists: `conda search 'NAME=VERSION=*cuda*' -c CHANNEL` for this platform, then fix the glob "
        "(a leading `*`, the channel that has the build, or a platform that has CUDA builds)",
    ),
    fix_kind="spec",
    culprit="spec",
)


solver_conflict = fixed(
    lines=(
        "the conflict is between packages: a CUDA pin or build (pytorch-cuda, cudatoolkit, cuda-version) the env "
        "or the request holds, against another one",
        "no __cuda in the conflict tree: not the driver",
    ),
    fixes=(
        "relax or remove the package that holds the other CUDA (e.g. `conda remove cudatoolkit` when moving to "
        "cuda-version 12+; ask for pytorch and pytorch-cuda of one CUDA together)",
    ),
    fix_kind="spec",
    culprit="spec",
)


_PROXY_HOST = re.compile(r"Failed to resolve '([A-Za-z0-9.\-]{1,253})'|host='([A-Za-z0-9.\-]{1,253})'")


def proxy_dns(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    found = _PROXY_HOST.search(text)
    host = (found.group(1) or found.group(2)) if found else None
    lines = (
        f"the proxy host {host!r} does not resolve: most often a typo in http_proxy/https_proxy or .condarc"
        if host
        else "the proxy's host name does not resolve: most often a typo in http_proxy/https_proxy or .condarc",
        "conda retried through the proxy and never reached the channel",
    )
    fixes = ("run `condafix proxy` to see every proxy setting (credentials hidden) and which one fails",)
    return made(family, newer="neither", lines=lines, fixes=fixes, fix_kind="path", culprit="host")


def compat_capable(gpu_name: str | None) -> bool | None:
    """Whether a GPU supports forward compatibility (cuda-compat): data-center, professional and Jetson yes,
    GeForce no, None when the name is unknown."""
    if not gpu_name:
        return None
    name = gpu_name.upper()
    if "GEFORCE" in name or "TITAN" in name:
        return False
    markers = (
        "TESLA", "A100", "H100", "H200", "H20", "B200", "B100", "GB200", "GH200", "L40", "L4", "A10", "A30",
        "A40", "A16", "A2", "V100", "T4", "QUADRO", "RTX A", "RTX PRO", "ADA GENERATION", "JETSON", "ORIN", "THOR",
    )  # fmt: skip
    return True if any(m in name for m in markers) else None


def toolkit_outside(facts: Facts) -> tuple[CudaVersion, str] | None:
    """A toolkit outside the env named in the paste (a /usr/local/cuda-X.Y path, nvcc --version)."""
    return toolchain_cuda(facts, "toolkit_cuda")
