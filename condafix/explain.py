"""Error text (+ live detection) -> which side is newer, both CUDA versions, and the fix.

The pattern table is data: each family has a regex, a one-line cause and hint codes. Text that
matches no family is reported as unknown; condafix never guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from condafix.driver import DriverInfo
from condafix.envinfo import Component, EnvInfo
from condafix.errors import UsageError
from condafix.knowledge import CudaVersion, knowledge

Newer = Literal["toolkit", "driver", "neither", "unknown"]


@dataclass(frozen=True)
class Family:
    code: str
    pattern: re.Pattern[str]
    title: str


# Most specific first: the ptxas line carries both versions, so it wins over bare error codes.
FAMILIES: Final[tuple[Family, ...]] = (
    Family(
        "ptx_version",
        re.compile(r"Unsupported \.version (?P<ptx>\d+\.\d+); current version is '(?P<driver_ptx>\d+\.\d+)'"),
        "PTX from a toolkit newer than the driver's JIT",
    ),
    Family(
        "nvjitlink_outdated",
        re.compile(r"ERROR_OUTDATED_LIBRARY|NVJITLINK_ERROR_OUTDATED_LIBRARY"),
        "nvJitLink older than the NVVM that wrote the code",
    ),
    Family(
        "unsupported_ptx",
        re.compile(
            r"CUDA_ERROR_UNSUPPORTED_PTX_VERSION|\[222\]|cuLinkAddData results in UNKNOWN_CUDA_ERROR|"
            r"the provided PTX was compiled with an unsupported toolchain"
        ),
        "PTX from a toolkit newer than the driver's JIT",
    ),
    Family(
        "invalid_ptx",
        re.compile(r"CUDA_ERROR_INVALID_PTX|\[218\]|a PTX JIT compilation failed"),
        "the driver's JIT rejected the PTX",
    ),
    Family(
        "torch_driver_too_old",
        re.compile(r"NVIDIA driver on your system is too old \(found version (?P<found>\d{4,5})\)"),
        "PyTorch built for a newer CUDA than the driver",
    ),
    Family(
        "runtime_insufficient",
        re.compile(
            r"CUDA driver version is insufficient for CUDA runtime version|cudaErrorInsufficientDriver|"
            r"CUDA_ERROR_INSUFFICIENT_DRIVER"
        ),
        "CUDA runtime newer than the driver",
    ),
    Family(
        "no_kernel_image",
        re.compile(r"no kernel image is available for execution on the device"),
        "no SASS for this GPU's architecture",
    ),
    Family(
        "solver_cuda",
        re.compile(
            r"nothing provides (?:requested )?__cuda|requires __cuda|"
            r"__cuda\s*(?:>=|==)?\s*(?P<need>\d+(?:\.\d+)?)?[^\n]*"
            r"(?:conflict|missing|but)|virtual package __cuda|__cuda[^\n]*not available|mismatching virtual package"
        ),
        "the solver needs the __cuda virtual package",
    ),
    Family(
        "proxy",
        re.compile(
            r"ProxyError|Conda cannot proceed due to an error in your proxy configuration|"
            r"Cannot connect to proxy|tunnel error|407 Proxy Authentication Required"
        ),
        "a proxy setting is broken",
    ),
)


# Families whose explanation improves with the live driver's CUDA version.
LIVE_FAMILIES: Final = frozenset(
    {
        "ptx_version",
        "unsupported_ptx",
        "invalid_ptx",
        "runtime_insufficient",
        "torch_driver_too_old",
        "no_kernel_image",
        "nvjitlink_outdated",
    }
)


@dataclass(frozen=True)
class Explanation:
    """What the error means; ``recognised`` False when no family matched."""

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
    live_driver: str | None = None
    live_source: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _cudas_for_ptx(ptx: CudaVersion) -> tuple[CudaVersion, ...]:
    return tuple(c for c in knowledge().cuda_for_ptx(ptx) if knowledge().is_released(c))


def _fmt(versions: tuple[CudaVersion, ...]) -> str:
    return " or ".join(str(v) for v in versions) if versions else "unknown"


def pins_for(driver: CudaVersion) -> tuple[str, ...]:
    """The pins that bring an env to the newest CUDA <= driver (cudatoolkit only exists for <= 11)."""
    kb = knowledge()
    pins: list[str] = []
    toolkit = kb.newest_cudatoolkit(driver)
    if toolkit is not None:
        pins.append(f"cudatoolkit={CudaVersion.parse(toolkit)}")
    pin = kb.newest_cuda_version_pin(driver)
    if pin is not None:
        pins.append(f"cuda-version={pin}")
    return tuple(pins)


def _pin_lines(driver: CudaVersion) -> tuple[str, ...]:
    pins = pins_for(driver)
    if not pins:
        return (f"no conda-forge CUDA package exists for CUDA {driver}: upgrade the driver",)
    quoted = " ".join(f'"{p}"' for p in pins)
    return (f"conda install -c conda-forge {quoted}", f"or in environment.yml: {' / '.join(pins)}")


def _ptx_explanation(ptx_text: str, driver_ptx_text: str) -> Explanation:
    ptx, driver_ptx = CudaVersion.parse(ptx_text), CudaVersion.parse(driver_ptx_text)
    tk, drv = _cudas_for_ptx(ptx), _cudas_for_ptx(driver_ptx)
    if ptx <= driver_ptx:
        newer: Newer = "neither"
        same = (f"the PTX ISA {ptx} is not newer than the driver's {driver_ptx}; this is not a version mismatch",)
        return Explanation(
            True,
            "ptx_version",
            FAMILIES[0].title,
            newer,
            tuple(map(str, tk)),
            tuple(map(str, drv)),
            str(ptx),
            str(driver_ptx),
            same,
            (),
        )
    lines: tuple[str, ...] = (
        f"the env's toolkit (its NVVM) wrote PTX ISA {ptx} = CUDA {_fmt(tk)}",
        f"the driver's JIT accepts up to PTX ISA {driver_ptx} = CUDA {_fmt(drv)}: the toolkit is newer than the driver",
        "minor version compatibility covers SASS, not PTX JIT (Numba, CuPy RawKernel, JAX ptxas)",
    )
    fixes: tuple[str, ...] = ()
    if drv:
        fixes = (f"pin the env to CUDA {max(drv)} or older:", *_pin_lines(max(drv)))
        if tk:
            need = knowledge().min_driver_for(min(tk))
            if need:
                fixes += (f"or upgrade the NVIDIA driver to >= {need} (CUDA {min(tk)})",)
    return Explanation(
        True,
        "ptx_version",
        FAMILIES[0].title,
        "toolkit",
        tuple(map(str, tk)),
        tuple(map(str, drv)),
        str(ptx),
        str(driver_ptx),
        lines,
        fixes,
    )


def with_live(expl: Explanation, live: DriverInfo | None) -> Explanation:
    """Fill what the text does not say from the live driver, and flag disagreements."""
    if live is None:
        return expl
    notes = list(expl.notes)
    drv = live.cuda_version
    lines, fixes, driver_cuda = expl.lines, expl.fixes, expl.driver_cuda
    if drv is None:
        notes.append("no driver detected on this machine: the error came from another machine, or pass --cuda")
    elif driver_cuda and str(drv) not in driver_cuda and expl.family in ("ptx_version", "torch_driver_too_old"):
        notes.append(
            f"this machine's driver supports CUDA {drv} ({live.source}), not {' or '.join(driver_cuda)}: "
            "the error came from another driver"
        )
    elif not driver_cuda and expl.family in (
        "unsupported_ptx",
        "invalid_ptx",
        "runtime_insufficient",
        "nvjitlink_outdated",
    ):
        driver_cuda = (str(drv),)
        lines = (*lines, f"this machine's driver supports CUDA {drv} (from {live.source})")
        fixes = (f"pin the env to CUDA {drv} or older:", *_pin_lines(drv), *fixes)
    return Explanation(
        expl.recognised,
        expl.family,
        expl.title,
        expl.newer,
        expl.toolkit_cuda,
        driver_cuda,
        expl.ptx,
        expl.driver_ptx,
        lines,
        fixes,
        str(drv) if drv else None,
        live.source,
        tuple(notes),
    )


def explain(text: str, live: DriverInfo | None = None) -> Explanation:
    """Recognise the error family in ``text`` and explain it; UsageError on empty input."""
    if not text or not text.strip():
        raise UsageError("no error text given (pass TEXT, -f FILE, or pipe it on stdin)")
    for family in FAMILIES:
        match = family.pattern.search(text)
        if match:
            return with_live(_explain_family(family, match), live)
    return Explanation(
        False, None, None, "unknown", lines=("condafix does not recognise this error; it does not guess",)
    )


def _explain_family(family: Family, match: re.Match[str]) -> Explanation:
    code, title = family.code, family.title
    if code == "ptx_version":
        return _ptx_explanation(match["ptx"], match["driver_ptx"])
    if code == "torch_driver_too_old":
        try:
            found = CudaVersion.from_encoded(int(match["found"]))
        except ValueError:
            raise UsageError(
                f"the message says 'found version {match['found']}', which is not an encoded CUDA version "
                "(PyTorch prints e.g. 11040 for CUDA 11.4); paste the whole message unchanged"
            ) from None
        need = knowledge().min_driver_for(CudaVersion(found.major, found.minor + 1))
        return Explanation(
            True,
            code,
            title,
            "toolkit",
            (),
            (str(found),),
            lines=(
                f"{match['found']} is the driver's maximum CUDA version ({found}), not a driver version",
                f"this PyTorch build needs a newer CUDA than {found}",
            ),
            fixes=(
                f"install a PyTorch build for CUDA <= {found} "
                f"(conda: a `cuda{found.major}{found.minor}` build or older; "
                f"pip: a +cu{found.major}{found.minor} wheel or older)",
                f"or upgrade the NVIDIA driver (>= {need} gives a newer CUDA)"
                if need
                else "or upgrade the NVIDIA driver",
            ),
        )
    texts: dict[str, tuple[Newer, tuple[str, ...], tuple[str, ...]]] = {
        "unsupported_ptx": (
            "toolkit",
            (
                "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (222): the PTX was written by a toolkit newer than "
                "the driver's JIT",
                "older Numba prints this as UNKNOWN_CUDA_ERROR; the ptxas log line (if any) names both PTX versions",
            ),
            ("run `condafix doctor` on the failing machine to see both CUDA versions and the pin",),
        ),
        "invalid_ptx": (
            "unknown",
            (
                "CUDA_ERROR_INVALID_PTX (218): the driver's JIT rejected the PTX",
                "older drivers report a too-new PTX version this way; without the ptxas line the cause is not certain",
            ),
            (
                "look for `Unsupported .version X; current version is 'Y'` in the full log "
                "and pass it to condafix explain",
            ),
        ),
        "nvjitlink_outdated": (
            "toolkit",
            (
                "nvJitLink is older than the NVVM that compiled the code (LTO-IR/PTX from a newer toolkit)",
                "NVVM and nvJitLink must come from the same CUDA release, or nvJitLink newer",
            ),
            (
                'conda: install libnvjitlink of the same CUDA as cuda-nvvm, e.g. `conda install "cuda-version=X.Y"` '
                "so both follow the pin",
                "pip: install nvidia-nvjitlink(-cu12) of the same X.Y as nvidia-nvvm / nvidia-cuda-nvcc",
            ),
        ),
        "runtime_insufficient": (
            "toolkit",
            (
                "the CUDA runtime (cudart) in the env is newer than the driver supports",
                "across a major this never works; within a major it needs the minor-version-compatibility floor",
            ),
            ("pin the env's CUDA to the driver's version (`condafix doctor` prints the pin), or upgrade the driver",),
        ),
        "no_kernel_image": (
            "neither",
            (
                "not a version mismatch: the binary has no SASS (and no usable PTX) for this GPU's compute capability",
                "typical with a new GPU (e.g. Blackwell sm_120) and an old build, or an old GPU dropped by a new build",
            ),
            ("install a build that includes your GPU's architecture (`condafix doctor` shows its compute capability)",),
        ),
        "solver_cuda": (
            "driver",
            (
                "the solver needs the __cuda virtual package (the driver's CUDA) and did not get it, or it is too old",
                "on a host without a GPU (login node, CI, Docker build) no __cuda exists",
            ),
            (
                "on a GPU-less host: CONDA_OVERRIDE_CUDA=M.m conda install … (M.m = the target machine's driver CUDA)",
                "on a GPU host: upgrade the driver, or pin cuda-version to what the driver supports",
            ),
        ),
        "proxy": (
            "neither",
            (
                "a proxy setting (http_proxy/https_proxy/all_proxy or .condarc proxy_servers) is broken",
                "common causes: an https:// scheme for the proxy itself, a dead host/port, stale credentials",
            ),
            ("run `condafix proxy` to find which setting is wrong; `env | grep -i _proxy` lists them",),
        ),
    }
    newer, lines, fixes = texts[code]
    if code == "solver_cuda" and match.groupdict().get("need"):
        lines = (*lines, f"the package asks for __cuda >= {match['need']}")
    return Explanation(True, code, title, newer, lines=lines, fixes=fixes)


def _newest(components: list[Component]) -> Component | None:
    return max(components, key=lambda c: CudaVersion.parse(c.cuda or "0.0"), default=None)


def with_env(expl: Explanation, env: EnvInfo) -> Explanation:
    """Name the env's own NVVM/nvJitLink versions and turn the fix into the env's exact command."""
    nvvm = _newest([c for c in env.components if c.role in ("nvvm", "toolkit") and c.cuda])
    link = _newest([c for c in env.components if c.role == "nvjitlink" and c.cuda])
    if nvvm is None or expl.family not in ("nvjitlink_outdated", "unsupported_ptx", "invalid_ptx"):
        return expl
    lines = (*expl.lines, f"this env's NVVM: {nvvm.name} {nvvm.version} (CUDA {nvvm.cuda}, {nvvm.source})")
    if link is not None:
        lines = (*lines, f"this env's nvJitLink: {link.name} {link.version} (CUDA {link.cuda}, {link.source})")
    fixes = expl.fixes
    drv = CudaVersion.parse(expl.driver_cuda[0]) if expl.driver_cuda else None
    target = drv if drv is not None else (CudaVersion.parse(link.cuda) if link and link.cuda else None)
    if target is not None and nvvm.cuda and CudaVersion.parse(nvvm.cuda) > target:
        if nvvm.source == "pip":
            exact = f'pip install "{nvvm.name}=={target}.*"'
        else:
            pin = knowledge().newest_cuda_version_pin(target)
            exact = f'conda install -p {env.prefix} "cuda-version={pin}"' if pin else ""
        if exact:
            fixes = (f"bring NVVM down to CUDA {target} (<= the driver and nvJitLink): {exact}", *fixes)
    newer = "toolkit" if expl.newer == "unknown" else expl.newer
    return replace(expl, lines=lines, fixes=fixes, toolkit_cuda=expl.toolkit_cuda or (nvvm.cuda or "",), newer=newer)
