"""The explanation shape, the shared fix helpers, and the compile-side families (JIT, ptxas, NVRTC, nvcc).

Rules every fix here keeps: no CUDA newer than the driver's CUDA that was read; a driver upgrade only when
the driver is the older side; pip venvs get pip commands, never a conda pin; and a first fix always says
what kind it is (``fix_kind``), "info" meaning not enough information plus the exact command to run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from condafix.diagnose.facts import Facts
from condafix.diagnose.families import Family, FixKind, Newer
from condafix.findings import Finding
from condafix.knowledge.cuda import CudaVersion, knowledge, pins_for


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """What the error means; ``recognised`` False when no family matched.

    ``component``: what refused (driver_jit, ptxas, nvrtc, loader, ...); ``culprit``: what has to change
    (env, driver, ptxas, build, library, loader, spec, host, none, unknown); ``fix_kind``: the kind of the
    first fix. ``facts`` holds every number read from the paste with its line and text.
    """

    recognised: bool
    family: str | None
    title: str | None
    newer: Newer
    toolkit_cuda: tuple[str, ...] = ()
    driver_cuda: tuple[str, ...] = ()
    ptx: str | None = None
    driver_ptx: str | None = None
    lines: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    fix_kind: FixKind | None = None
    component: str | None = None
    culprit: str | None = None
    live_driver: str | None = None
    live_source: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    facts: Facts | None = None
    findings: tuple[Finding, ...] = ()


def made(
    family: Family,
    *,
    newer: Newer,
    lines: tuple[str, ...],
    fixes: tuple[str, ...],
    fix_kind: FixKind,
    culprit: str,
    component: str | None = None,
    toolkit_cuda: tuple[str, ...] = (),
    driver_cuda: tuple[str, ...] = (),
    ptx: str | None = None,
    driver_ptx: str | None = None,
) -> Explanation:
    """A recognised explanation of ``family`` (its code, title and, unless given, its component)."""
    return Explanation(
        recognised=True, family=family.code, title=family.title, newer=newer, toolkit_cuda=toolkit_cuda,
        driver_cuda=driver_cuda, ptx=ptx, driver_ptx=driver_ptx, lines=lines, fixes=fixes, fix_kind=fix_kind,
        component=component or family.component, culprit=culprit,
    )  # fmt: skip


def fixed(
    *,
    newer: Newer = "neither",
    lines: tuple[str, ...],
    fixes: tuple[str, ...],
    fix_kind: FixKind,
    culprit: str,
    component: str | None = None,
) -> Callable[[Family, re.Match[str], Facts, str], Explanation]:
    """The builder of a family whose explanation does not depend on the paste: its words, said as they are."""

    def build(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
        return made(
            family, newer=newer, lines=lines, fixes=fixes, fix_kind=fix_kind, culprit=culprit, component=component
        )

    return build


def cudas_for_ptx(ptx: CudaVersion) -> tuple[CudaVersion, ...]:
    return knowledge().cuda_for_ptx(ptx)


def fmt(versions: tuple[CudaVersion, ...]) -> str:
    return " or ".join(str(v) for v in versions) if versions else "unknown"


def target(facts: Facts | None) -> str:
    if facts is not None and facts.env_name:
        return f"-n {facts.env_name} "
    return ""


def is_pip(facts: Facts | None) -> bool:
    """A pip venv (no conda in sight): it gets pip commands, never a conda pin."""
    if facts is None:
        return False
    managers = {f.value for f in facts.all("manager")}
    return "pip" in managers and not managers & {"conda", "mamba", "pixi"}


def pin_lines(driver: CudaVersion, facts: Facts | None = None) -> tuple[tuple[str, ...], FixKind]:
    """The commands that bring an env to CUDA <= ``driver``, and their kind."""
    if is_pip(facts):
        wheel = f"nvidia-*-cu{driver.major}" if driver.major < 13 else "nvidia-* (cu13 wheels)"
        return (
            (
                f"this is a pip venv: install wheels built for CUDA <= {driver} "
                f"(pip: {wheel} =={driver}.* and a framework wheel '+cu{driver.major}{driver.minor}' or older)",
            ),
            "pip",
        )
    pins = pins_for(driver)
    if not pins:
        old = knowledge().newest_defaults_cudatoolkit(driver)
        if old is not None:
            return (
                (f'conda install {target(facts)}-c defaults "cudatoolkit={old}" (conda-forge has none this old)',),
                "pin",
            )
        return ((f"no conda package exists for CUDA {driver}: upgrade the driver",), "driver")
    quoted = " ".join(f'"{p}"' for p in pins)
    return (
        f"conda install {target(facts)}-c conda-forge {quoted}",
        f"or in environment.yml: {' / '.join(pins)}",
    ), "pin"


def nvjitlink_install(cuda: CudaVersion, facts: Facts | None) -> tuple[str, FixKind]:
    pip = facts is not None and (is_pip(facts) or any(p.name.startswith("nvidia-") for p in facts.packages))
    if pip:
        name = "nvidia-nvjitlink-cu12" if cuda.major == 12 else "nvidia-nvjitlink"
        return f'pip install "{name}=={cuda}.*"', "pip"
    return f'conda install {target(facts)}-c conda-forge "libnvjitlink={cuda}"', "package"


def driver_from_facts(facts: Facts) -> CudaVersion | None:
    for value in (facts.driver_cuda, facts.conda_cuda):
        if value:
            return CudaVersion.parse(value)
    return None


def cuda_for_sm(sm: CudaVersion) -> CudaVersion | None:
    """The first CUDA whose compilers know this architecture."""
    return next((cuda for cuda, newest in knowledge().newest_sm_by_cuda if newest >= sm), None)


def sm_text(sm: CudaVersion) -> str:
    return f"sm_{sm.major}{sm.minor}"


def fact_sm(facts: Facts, kind: str) -> CudaVersion | None:
    found = facts.first(kind)  # type: ignore[arg-type]
    return CudaVersion.parse(found.value) if found else None


def toolchain_cuda(facts: Facts, *kinds: str) -> tuple[CudaVersion, str] | None:
    """The first toolchain version the paste states (NVRTC, nvcc release, a toolkit path ...) and its source."""
    for kind in kinds:
        found = facts.first(kind)  # type: ignore[arg-type]
        if found is not None:
            return CudaVersion.parse(found.value), found.source
    return None


def _uses_driver_jit(facts: Facts) -> str:
    if facts.nvjitlink_missing or "numba_cuda" in facts.frames:
        return "numba-cuda without nvJitLink hands its PTX to the driver's JIT"
    if "numba" in facts.frames or facts.package("numba"):
        return "numba's built-in numba.cuda hands its PTX to the driver's JIT"
    if "cupy" in facts.frames:
        return "CuPy loaded PTX (CUPY_COMPILE_WITH_PTX, or a GPU newer than its NVRTC) through the driver's JIT"
    return "whatever loaded this PTX used the driver's JIT"


# ---------------------------------------------------------------- the driver's JIT


def ptx_explanation(ptx_text: str, driver_ptx_text: str, facts: Facts) -> Explanation:
    from condafix.diagnose.families import BY_CODE

    family = BY_CODE["ptx_version"]
    ptx, driver_ptx = CudaVersion.parse(ptx_text), CudaVersion.parse(driver_ptx_text)
    tk, drv = cudas_for_ptx(ptx), cudas_for_ptx(driver_ptx)
    tk_text, drv_text = tuple(map(str, tk)), tuple(map(str, drv))
    if ptx <= driver_ptx:
        same = (f"the PTX ISA {ptx} is not newer than the driver's {driver_ptx}; this is not a version mismatch",)
        info = ("not enough information: rerun with the full log (the error above this line names the cause)",)
        return made(
            family,
            newer="neither",
            lines=same,
            fixes=info,
            fix_kind="info",
            culprit="unknown",
            toolkit_cuda=tk_text,
            driver_cuda=drv_text,
            ptx=str(ptx),
            driver_ptx=str(driver_ptx),
        )
    lines: tuple[str, ...] = (
        f"the env's toolkit (its NVVM) wrote PTX ISA {ptx} = CUDA {fmt(tk)}",
        f"the driver's JIT accepts up to PTX ISA {driver_ptx} = CUDA {fmt(drv)}: the toolkit is newer than the driver",
        _uses_driver_jit(facts) + "; code linked to SASS (numba-cuda with nvJitLink >= NVVM, CuPy's cubin) "
        "would run on this driver",
    )
    fixes: list[str] = []
    kind: FixKind = "info"
    numba_cuda = facts.package("numba-cuda")
    link_first = facts.nvjitlink_missing or (numba_cuda is not None and not facts.package("libnvjitlink"))
    if link_first and tk and drv and min(tk).major == max(drv).major:
        command, kind = nvjitlink_install(min(tk), facts)
        fixes.append(f"add nvJitLink of the same CUDA as NVVM ({min(tk)}) so numba-cuda links to SASS: {command}")
    if drv:
        lead = "or pin" if fixes else "pin"
        pins, pin_kind = pin_lines(max(drv), facts)
        fixes += [f"{lead} the env to CUDA {max(drv)} or older:", *pins]
        kind = kind if len(fixes) > len(pins) + 1 else pin_kind
        if tk:
            need = knowledge().min_driver_for(min(tk))
            if need:
                fixes.append(f"or upgrade the NVIDIA driver to >= {need} (CUDA {min(tk)})")
    else:
        fixes.append("not enough information: run `nvidia-smi` on that machine and paste its banner too")
    return made(
        family,
        newer="toolkit",
        lines=lines,
        fixes=tuple(fixes),
        fix_kind=kind,
        culprit="env",
        toolkit_cuda=tk_text,
        driver_cuda=drv_text,
        ptx=str(ptx),
        driver_ptx=str(driver_ptx),
    )


def unsupported(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    from condafix.diagnose.families import PREBUILT

    prebuilt = [f for f in facts.frames if f in PREBUILT]
    jit = [f for f in facts.frames if f in ("numba", "numba_cuda", "cupy")]
    drv = driver_from_facts(facts)
    if prebuilt and not jit:
        pkg = prebuilt[0]
        lines: tuple[str, ...] = (
            f"CUDA_ERROR_UNSUPPORTED_PTX_VERSION from PTX shipped prebuilt inside {pkg}: it was built with a CUDA "
            "newer than the driver's JIT accepts",
            "a conda pin of cuda-version does not rebuild that package's PTX",
        )
        fixes: tuple[str, ...] = (
            f"install a {pkg} build for CUDA <= the driver's"
            + (
                f" ({drv}): pip '+cu{drv.major}{drv.minor}' wheels or conda 'cuda{drv.major}{drv.minor}' builds"
                if drv
                else ""
            )
            + ", or one that ships SASS for this GPU",
            "or upgrade the NVIDIA driver to the CUDA that package was built with",
        )
        return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="package", culprit="build")
    lines = (
        "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (222): the PTX was written by a toolkit newer than the driver's JIT",
        "older Numba prints this as UNKNOWN_CUDA_ERROR; the ptxas log line (if any) names both PTX versions",
    )
    if drv is not None:
        pins, kind = pin_lines(drv, facts)
        fixes = (f"pin the env to CUDA {drv} or older:", *pins)
        return made(
            family, newer="toolkit", driver_cuda=(str(drv),), lines=lines, fixes=fixes, fix_kind=kind, culprit="env"
        )
    fixes = (
        "not enough information: run `nvidia-smi` (the driver's CUDA) and `condafix doctor` on the failing "
        "machine; they name both CUDA versions and the pin",
    )
    return made(family, newer="toolkit", lines=lines, fixes=fixes, fix_kind="info", culprit="env")


# ---------------------------------------------------------------- linkers and assemblers


def nvjitlink(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    nvvm = CudaVersion.parse(facts.ptx) if facts.ptx else None
    link = CudaVersion.parse(facts.accepted_ptx) if facts.accepted_ptx else None
    nvvm_cuda = min(cudas_for_ptx(nvvm)) if nvvm and cudas_for_ptx(nvvm) else None
    link_cuda = min(cudas_for_ptx(link)) if link and cudas_for_ptx(link) else None
    how = "ERROR_PTX_COMPILE" if "PTX_COMPILE" in match.group(0) else match.group(0).split(":")[0]
    lines: tuple[str, ...] = (
        f"nvJitLink is older than the NVVM that compiled the code ({how}): a library skew inside the env, "
        "not the driver",
        "NVVM and nvJitLink must come from the same CUDA release, or nvJitLink newer (measured: nvJitLink "
        "13.2 links NVVM 13.2's code, 13.0 does not)",
    )
    fixes: list[str] = []
    kind: FixKind = "package"
    if nvvm_cuda is not None:
        lines = (
            *lines,
            f"NVVM wrote PTX ISA {nvvm} (CUDA {nvvm_cuda}); nvJitLink accepts up to {link} (CUDA {link_cuda})",
        )
        command, kind = nvjitlink_install(nvvm_cuda, facts)
        fixes.append(f"bring nvJitLink up to NVVM's CUDA {nvvm_cuda}: {command}")
        if link_cuda is not None:
            fixes.append(f"or bring NVVM down to CUDA {link_cuda}, the nvJitLink's")
    else:
        fixes += [
            'conda: install libnvjitlink of the same CUDA as cuda-nvvm, e.g. `conda install "libnvjitlink=X.Y"`',
            "pip: install nvidia-nvjitlink(-cu12) of the same X.Y as nvidia-nvvm / nvidia-cuda-nvcc",
        ]
        kind = "pip" if is_pip(facts) else "package"
    return Explanation(
        recognised=True, family=family.code, title=family.title, newer="toolkit",
        toolkit_cuda=(str(nvvm_cuda),) if nvvm_cuda else (), lines=lines, fixes=tuple(fixes), fix_kind=kind,
        component="nvjitlink", culprit="env",
    )  # fmt: skip


def jitify(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    have, need, major = match["have"], match["need"], match["major"]
    lines = (
        f"the libnvJitLink.so.{major} that loaded is CUDA {have}; the library (CuPy/Jitify) needs at least {need}",
        "an env library skew (an older CUDA's lib dir on LD_LIBRARY_PATH, or an old nvJitLink wheel), not the driver",
    )
    wheel = "nvidia-nvjitlink-cu12" if major == "12" else "nvidia-nvjitlink"
    fixes = (
        f'bring nvJitLink to >= {need} in the env: pip install "{wheel}>={need}" '
        f'or conda install "libnvjitlink>={need}"',
        "or drop the older CUDA lib dir from LD_LIBRARY_PATH (`echo $LD_LIBRARY_PATH`, `ldd` on the library)",
    )
    return Explanation(
        recognised=True, family=family.code, title=family.title, newer="neither", toolkit_cuda=(need,),
        lines=lines, fixes=fixes, fix_kind="pip" if is_pip(facts) else "package", component="library",
        culprit="library",
    )  # fmt: skip


def xla(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    driver, ptxas = CudaVersion.parse(match["driver"]), CudaVersion.parse(match["ptxas"])
    need = knowledge().min_driver_for(ptxas)
    lines = (
        f"JAX/XLA compiles with ptxas CUDA {ptxas}; the driver supports CUDA {driver}",
        "XLA still writes SASS, which runs: it only turns parallel compilation off, so compiles are slower",
    )
    fixes = (
        "nothing is broken; to silence it, match ptxas to the driver: "
        f'pip install "nvidia-cuda-nvcc-cu{ptxas.major}=={driver}.*" (or cuda-nvcc={driver} in conda)',
        f"or upgrade the NVIDIA driver to >= {need} (CUDA {ptxas})" if need else "or upgrade the NVIDIA driver",
    )
    return Explanation(
        recognised=True, family=family.code, title=family.title, newer="toolkit", toolkit_cuda=(str(ptxas),),
        driver_cuda=(str(driver),), lines=lines, fixes=fixes, fix_kind="pip", component="xla_ptxas", culprit="env",
    )  # fmt: skip


_PUT_FIRST = (
    "or take the old toolkit's bin/ out of PATH (and unset CUDA_HOME / XLA_FLAGS=--xla_gpu_cuda_data_dir "
    "that point at it)"
)


def ptxas_old(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    ptx = CudaVersion.parse(facts.ptx) if facts.ptx else None
    tool = CudaVersion.parse(facts.accepted_ptx) if facts.accepted_ptx else None
    code_cuda = min(cudas_for_ptx(ptx)) if ptx and cudas_for_ptx(ptx) else None
    ptxas_cuda = (
        CudaVersion.parse(facts.ptxas_version)
        if facts.ptxas_version
        else (min(cudas_for_ptx(tool)) if tool and cudas_for_ptx(tool) else None)
    )
    component = "xla_ptxas" if "You are using ptxas" in text or "XLA" in text else "ptxas"
    lines: tuple[str, ...] = (
        f"a standalone ptxas (CUDA {ptxas_cuda or '?'}) was asked to compile PTX ISA {ptx or '?'} "
        f"(CUDA {code_cuda or '?'}): the ptxas on PATH or under CUDA_HOME is older than the compiler that wrote it",
        "the driver is not involved: upgrading it or pinning the env down does not change which ptxas runs",
    )
    if code_cuda is None:
        lines = (
            f"a standalone ptxas of CUDA {ptxas_cuda or '?'} (PATH or CUDA_HOME) is in use, older than the code "
            "or the tool (XLA, Triton) needs",
            lines[1],
        )
        fixes: tuple[str, ...] = (
            "put the env's own, newer ptxas first (conda install -c conda-forge cuda-nvcc; pip install "
            "nvidia-cuda-nvcc-cu12 for JAX) and check `which ptxas`",
            _PUT_FIRST,
        )
        return made(
            family, newer="neither", lines=lines, fixes=fixes, fix_kind="path", culprit="ptxas", component=component
        )
    fixes = (
        f"put a ptxas of CUDA >= {code_cuda} first: install it in the env (conda install {target(facts)}-c conda-forge "
        f'"cuda-nvcc={code_cuda}"; pip install "nvidia-cuda-nvcc-cu{code_cuda.major}=={code_cuda}.*") '
        "and check `which ptxas`",
        _PUT_FIRST,
    )
    return made(
        family,
        newer="neither",
        toolkit_cuda=(str(code_cuda),),
        ptx=facts.ptx,
        driver_ptx=facts.accepted_ptx,
        lines=lines,
        fixes=fixes,
        fix_kind="path",
        culprit="ptxas",
        component=component,
    )


def ptxas_arch(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    refused = next((f for f in facts.all("target_sm") if f.source == "ptxas's refusal"), None)
    arch = CudaVersion.parse(refused.value) if refused else None
    since = cuda_for_sm(arch) if arch else None
    bundled = "triton/backends/nvidia/bin/ptxas" in text.replace("\\", "/") or "Triton" in text
    who = "Triton's bundled ptxas" if bundled else "the ptxas on PATH"
    need = f"CUDA >= {since}" if since else "a CUDA that knows this GPU"
    lines: tuple[str, ...] = (
        f"{who} does not know {sm_text(arch) if arch else 'the GPU architecture'}: it is older than the GPU "
        f"(that needs {need})",
        "not the driver and not the env's CUDA pin: a newer ptxas fixes it",
    )
    if bundled:
        fixes: tuple[str, ...] = (
            f"point TRITON_PTXAS_PATH at a ptxas of {need} (e.g. /usr/local/cuda/bin/ptxas; check `ptxas --version`)",
            "or pip install -U triton (a release whose bundled ptxas knows this GPU)",
        )
        return made(
            family, newer="driver", lines=lines, fixes=fixes, fix_kind="path", culprit="triton", component="triton"
        )
    fixes = (f"put a ptxas of {need} first on PATH (`which ptxas`, `ptxas --version`)",)
    return made(family, newer="driver", lines=lines, fixes=fixes, fix_kind="path", culprit="ptxas")


ptxas_failed = fixed(
    newer="unknown",
    lines=(
        "a ptxas binary (Triton's, or the toolkit's on Windows) exited with an error and its message is not "
        "in the paste",
        "without that message the cause is unknown: a PTX version, an unknown --gpu-name, or a crash",
    ),
    fixes=(
        "not enough information: run the ptxas command from the traceback by hand to see its message, "
        "and `ptxas --version` (`where ptxas` on Windows); then pass both to condafix explain",
    ),
    fix_kind="info",
    culprit="unknown",
    component="ptxas",
)


def triton_table(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    tool = facts.first("toolkit_cuda", "ptxas")
    where = f" (the ptxas here is CUDA {tool.value}, from {tool.source})" if tool else ""
    lines = (
        "PTX ISA 8.6 belongs to no released CUDA (12.5 and 12.6 both write 8.5, 12.8 writes 8.7): Triton derived "
        "the PTX version from the ptxas version with a formula that is wrong for 12.6",
        f"the ptxas accepts up to 8.5{where}: not the driver, and not the env's CUDA pin",
    )
    fixes = (
        "pip install -U triton (a release whose table maps 12.6 to PTX 8.5), or point TRITON_PTXAS_PATH at a "
        "ptxas of CUDA >= 12.8",
    )
    return Explanation(
        recognised=True, family=family.code, title=family.title, newer="neither", ptx="8.6", driver_ptx="8.5",
        lines=lines, fixes=fixes, fix_kind="pip", component="triton", culprit="triton",
    )  # fmt: skip
