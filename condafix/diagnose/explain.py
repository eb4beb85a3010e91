"""Error text (+ live detection) -> one diagnosis and one ordered fix for this user.

The pattern table is data: each family has a linear-time regex and a title. Facts pasted around the error
(nvidia-smi, conda info, conda/pip lists, PyTorch's arch warning, the prompt) come from ``condafix.diagnose.paste``
and decide which branch fits, so the user gets the one that applies, not every branch. Text that matches
no family is reported as unknown; condafix never guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from condafix.detect.driver import DriverInfo
from condafix.diagnose.paste import Facts, bound, read
from condafix.env.envinfo import Component, EnvInfo
from condafix.errors import UsageError
from condafix.knowledge.cuda import CudaVersion, knowledge, pins_for

Newer = Literal["toolkit", "driver", "neither", "unknown"]


@dataclass(frozen=True)
class Family:
    code: str
    pattern: re.Pattern[str]
    title: str


# Most specific first. Every pattern is linear: no nested unbounded quantifiers, bounded gaps only.
FAMILIES: Final[tuple[Family, ...]] = (
    Family(
        "nvjitlink_outdated",
        re.compile(
            r"ERROR_OUTDATED_LIBRARY|NVJITLINK_ERROR_PTX_COMPILE|nvJitLinkError: ERROR_PTX_COMPILE|"
            r"may need newer version of nvJitLink|NVJITLINK_ERROR_INTERNAL"
        ),
        "nvJitLink older than the NVVM that wrote the code",
    ),
    Family(
        "jitify_nvjitlink",
        re.compile(
            r"libnvJitLink\.so\.(?P<major>\d{1,2}) is too old; it is version (?P<have>\d{1,2}\.\d{1,2})"
            r"[^\n]{0,40}?need at least version (?P<need>\d{1,2}\.\d{1,2})"
        ),
        "an older libnvJitLink is loaded than the library needs",
    ),
    Family(
        "xla_ptxas_newer",
        re.compile(
            r"driver's CUDA version is (?P<driver>\d{1,2}\.\d{1,2})(?:\.\d{1,3})? which is older than the "
            r"(?:ptxas CUDA version|PTX compiler version) \((?P<ptxas>\d{1,2}\.\d{1,2})"
        ),
        "XLA's ptxas is newer than the driver (a warning: compiles run serially)",
    ),
    Family(
        "ptxas_old",
        re.compile(
            r"ptxas exited with non-zero|ptxas /[^\n,]{1,300}\.ptx, line \d{1,9}; fatal {0,4}: Unsupported \.version|"
            r"You are using ptxas \d{1,2}\.\d{1,2}[^\n]{0,200}older|Internal Triton PTX codegen error"
        ),
        "an old ptxas binary (PATH or CUDA_HOME) compiled the PTX, not the driver",
    ),
    Family(
        "ptx_version",
        re.compile(
            r"Unsupported \.version (?P<ptx>\d{1,2}\.\d{1,2}); current version is '(?P<driver_ptx>\d{1,2}\.\d{1,2})'"
        ),
        "PTX from a toolkit newer than the driver's JIT",
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
        re.compile(
            r"no kernel image is available for execution on the device|"
            r"with CUDA capability sm_\d{2,3}[a-z]? is not compatible with the current PyTorch installation"
        ),
        "no SASS for this GPU's architecture",
    ),
    Family(
        "classic_unsat_cuda",
        re.compile(r"feature:[^\n]{0,60}::__cuda==|UnsatisfiableError: The following specifications were found"),
        "the classic solver's UnsatisfiableError lists __cuda (a red herring)",
    ),
    Family(
        "solver_cuda",
        re.compile(
            r"nothing provides (?:requested )?__cuda|requires __cuda|__cuda[^\n]{0,200}(?:conflict|missing|but )|"
            r"virtual package __cuda|__cuda[^\n]{0,120}not available|mismatching virtual package"
        ),
        "the solver needs the __cuda virtual package",
    ),
    Family(
        "proxy_socks",
        re.compile(r"Missing dependencies for SOCKS support"),
        "a SOCKS proxy without the Python SOCKS support",
    ),
    Family(
        "proxy_scheme",
        re.compile(r"ProxySchemeUnknown|Proxy URL had no scheme|Not supported proxy scheme|Unable to determine proxy"),
        "a proxy URL with no or an unknown scheme",
    ),
    Family(
        "proxy_auth",
        re.compile(r"407 Proxy Authentication Required|Tunnel connection failed: 407"),
        "the proxy wants credentials (407)",
    ),
    Family(
        "proxy_forbidden",
        re.compile(r"Tunnel connection failed: 403"),
        "the proxy refuses this host (403: an allowlist)",
    ),
    Family(
        "proxy_dns",
        re.compile(
            r"ProxyError[^\n]{0,400}?(?:Failed to resolve|Name or service not known|NameResolutionError|"
            r"getaddrinfo failed|Temporary failure in name resolution|nodename nor servname)"
        ),
        "the proxy's host name does not resolve",
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

# Packages that ship prebuilt PTX/SASS: a conda pin of cuda-version does not rebuild them.
_PREBUILT: Final = (
    "torch",
    "xformers",
    "flash_attn",
    "bitsandbytes",
    "vllm",
    "tensorflow",
    "jaxlib",
    "faiss",
    "triton",
)
_PROXY_HOST = re.compile(r"Failed to resolve '([A-Za-z0-9.\-]{1,253})'|host='([A-Za-z0-9.\-]{1,253})'")


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
    facts: Facts | None = None


def _cudas_for_ptx(ptx: CudaVersion) -> tuple[CudaVersion, ...]:
    return tuple(c for c in knowledge().cuda_for_ptx(ptx) if knowledge().is_released(c))


def _fmt(versions: tuple[CudaVersion, ...]) -> str:
    return " or ".join(str(v) for v in versions) if versions else "unknown"


def _target(facts: Facts | None) -> str:
    if facts is not None and facts.env_name:
        return f"-n {facts.env_name} "
    return ""


def _pin_lines(driver: CudaVersion, facts: Facts | None = None) -> tuple[str, ...]:
    pins = pins_for(driver)
    if not pins:
        old = knowledge().newest_defaults_cudatoolkit(driver)
        if old is not None:
            return (f'conda install {_target(facts)}-c defaults "cudatoolkit={old}" (conda-forge has none this old)',)
        return (f"no conda package exists for CUDA {driver}: upgrade the driver",)
    quoted = " ".join(f'"{p}"' for p in pins)
    return (f"conda install {_target(facts)}-c conda-forge {quoted}", f"or in environment.yml: {' / '.join(pins)}")


def _nvjitlink_install(cuda: CudaVersion, facts: Facts | None) -> str:
    pip = facts is not None and any(p.name.startswith("nvidia-") for p in facts.packages)
    if pip:
        name = "nvidia-nvjitlink-cu12" if cuda.major == 12 else "nvidia-nvjitlink"
        return f'pip install "{name}=={cuda}.*"'
    return f'conda install {_target(facts)}-c conda-forge "libnvjitlink={cuda}"'


def _uses_driver_jit(facts: Facts) -> str:
    if facts.nvjitlink_missing or "numba_cuda" in facts.frames:
        return "numba-cuda without nvJitLink hands its PTX to the driver's JIT"
    if "numba" in facts.frames or facts.package("numba"):
        return "numba's built-in numba.cuda hands its PTX to the driver's JIT"
    if "cupy" in facts.frames:
        return "CuPy loaded PTX (CUPY_COMPILE_WITH_PTX, or a GPU newer than its NVRTC) through the driver's JIT"
    return "whatever loaded this PTX used the driver's JIT"


def _ptx_explanation(ptx_text: str, driver_ptx_text: str, facts: Facts) -> Explanation:
    ptx, driver_ptx = CudaVersion.parse(ptx_text), CudaVersion.parse(driver_ptx_text)
    tk, drv = _cudas_for_ptx(ptx), _cudas_for_ptx(driver_ptx)
    title = "PTX from a toolkit newer than the driver's JIT"
    if ptx <= driver_ptx:
        same = (f"the PTX ISA {ptx} is not newer than the driver's {driver_ptx}; this is not a version mismatch",)
        return Explanation(
            True, "ptx_version", title, "neither", tuple(map(str, tk)), tuple(map(str, drv)), str(ptx),
            str(driver_ptx), same, (), facts=facts,
        )  # fmt: skip
    lines: tuple[str, ...] = (
        f"the env's toolkit (its NVVM) wrote PTX ISA {ptx} = CUDA {_fmt(tk)}",
        f"the driver's JIT accepts up to PTX ISA {driver_ptx} = CUDA {_fmt(drv)}: the toolkit is newer than the driver",
        _uses_driver_jit(facts) + "; code linked to SASS (numba-cuda with nvJitLink >= NVVM, CuPy's cubin) "
        "would run on this driver",
    )
    fixes: list[str] = []
    numba_cuda = facts.package("numba-cuda")
    link_first = facts.nvjitlink_missing or (numba_cuda is not None and not facts.package("libnvjitlink"))
    if link_first and tk and drv and min(tk).major == max(drv).major:
        fixes.append(
            f"add nvJitLink of the same CUDA as NVVM ({min(tk)}) so numba-cuda links to SASS: "
            + _nvjitlink_install(min(tk), facts)
        )
    if drv:
        lead = "or pin" if fixes else "pin"
        fixes += [f"{lead} the env to CUDA {max(drv)} or older:", *_pin_lines(max(drv), facts)]
        if tk:
            need = knowledge().min_driver_for(min(tk))
            if need:
                fixes.append(f"or upgrade the NVIDIA driver to >= {need} (CUDA {min(tk)})")
    return Explanation(
        True, "ptx_version", title, "toolkit", tuple(map(str, tk)), tuple(map(str, drv)), str(ptx), str(driver_ptx),
        lines, tuple(fixes), facts=facts,
    )  # fmt: skip


def _driver_from_facts(facts: Facts) -> CudaVersion | None:
    for value in (facts.driver_cuda, facts.conda_cuda):
        if value:
            return CudaVersion.parse(value)
    return None


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
    elif not driver_cuda and expl.family in ("unsupported_ptx", "invalid_ptx", "runtime_insufficient"):
        driver_cuda = (str(drv),)
        lines = (*lines, f"this machine's driver supports CUDA {drv} (from {live.source})")
        fixes = (f"pin the env to CUDA {drv} or older:", *_pin_lines(drv, expl.facts), *fixes)
    elif not driver_cuda and expl.family == "nvjitlink_outdated":
        driver_cuda = (str(drv),)
    return replace(
        expl,
        driver_cuda=driver_cuda,
        lines=lines,
        fixes=fixes,
        live_driver=str(drv) if drv else None,
        live_source=live.source,
        notes=tuple(notes),
    )


def explain(text: str, live: DriverInfo | None = None) -> Explanation:
    """Recognise the error family in ``text`` and explain it; UsageError on empty input."""
    if not text or not text.strip():
        raise UsageError("no error text given (pass TEXT, -f FILE, or pipe it on stdin)")
    text = bound(text)
    facts = read(text)
    for family in FAMILIES:
        match = family.pattern.search(text)
        if match:
            return with_live(_explain_family(family, match, facts, text), live)
    return Explanation(
        False,
        None,
        None,
        "unknown",
        lines=("condafix does not recognise this error; it does not guess",),
        facts=facts,
    )


def _filled(expl: Explanation, facts: Facts) -> Explanation:
    """Both CUDA versions from the facts where the error line itself did not give them."""
    toolkit, driver = expl.toolkit_cuda, expl.driver_cuda
    if not toolkit and facts.toolkit_cuda:
        toolkit = (facts.toolkit_cuda,)
    notes = expl.notes
    found = _driver_from_facts(facts)
    if found is not None and driver in ((), (str(found),)):
        if not driver:
            driver = (str(found),)
        if expl.family != "xla_ptxas_newer":
            where = facts.driver_source if facts.driver_cuda else "conda's __cuda virtual package"
            notes = (*notes, f"driver CUDA {found} read from the paste ({where})")
    return replace(expl, toolkit_cuda=toolkit, driver_cuda=driver, facts=facts, notes=notes)


def _explain_family(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    code, title = family.code, family.title
    if code == "ptx_version":
        return _ptx_explanation(match["ptx"], match["driver_ptx"], facts)
    builder = _BUILDERS.get(code)
    if builder is not None:
        return _filled(builder(title, match, facts, text), facts)
    newer, lines, fixes = _STATIC[code]
    return _filled(Explanation(True, code, title, newer, lines=lines, fixes=fixes), facts)


# ---------------------------------------------------------------- family builders


def _nvjitlink(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    nvvm = CudaVersion.parse(facts.ptx) if facts.ptx else None
    link = CudaVersion.parse(facts.accepted_ptx) if facts.accepted_ptx else None
    nvvm_cuda = min(_cudas_for_ptx(nvvm)) if nvvm and _cudas_for_ptx(nvvm) else None
    link_cuda = min(_cudas_for_ptx(link)) if link and _cudas_for_ptx(link) else None
    how = "ERROR_PTX_COMPILE" if "PTX_COMPILE" in match.group(0) else match.group(0).split(":")[0]
    lines: tuple[str, ...] = (
        f"nvJitLink is older than the NVVM that compiled the code ({how}): a library skew inside the env, "
        "not the driver",
        "NVVM and nvJitLink must come from the same CUDA release, or nvJitLink newer (measured: nvJitLink "
        "13.2 links NVVM 13.2's code, 13.0 does not)",
    )
    fixes: list[str] = []
    if nvvm_cuda is not None:
        lines = (
            *lines,
            f"NVVM wrote PTX ISA {nvvm} (CUDA {nvvm_cuda}); nvJitLink accepts up to {link} (CUDA {link_cuda})",
        )
        fixes.append(f"bring nvJitLink up to NVVM's CUDA {nvvm_cuda}: " + _nvjitlink_install(nvvm_cuda, facts))
        if link_cuda is not None:
            fixes.append(f"or bring NVVM down to CUDA {link_cuda}, the nvJitLink's")
    else:
        fixes += [
            'conda: install libnvjitlink of the same CUDA as cuda-nvvm, e.g. `conda install "libnvjitlink=X.Y"`',
            "pip: install nvidia-nvjitlink(-cu12) of the same X.Y as nvidia-nvvm / nvidia-cuda-nvcc",
        ]
    toolkit = (str(nvvm_cuda),) if nvvm_cuda else ()
    return Explanation(True, "nvjitlink_outdated", title, "toolkit", toolkit, lines=lines, fixes=tuple(fixes))


def _jitify(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
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
    return Explanation(True, "jitify_nvjitlink", title, "neither", (need,), lines=lines, fixes=fixes)


def _xla(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
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
        True, "xla_ptxas_newer", title, "toolkit", (str(ptxas),), (str(driver),), lines=lines, fixes=fixes
    )


def _ptxas_old(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
    ptx = CudaVersion.parse(facts.ptx) if facts.ptx else None
    tool = CudaVersion.parse(facts.accepted_ptx) if facts.accepted_ptx else None
    code_cuda = min(_cudas_for_ptx(ptx)) if ptx and _cudas_for_ptx(ptx) else None
    ptxas_cuda = (
        CudaVersion.parse(facts.ptxas_version)
        if facts.ptxas_version
        else (min(_cudas_for_ptx(tool)) if tool and _cudas_for_ptx(tool) else None)
    )
    lines = (
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
        fixes = (
            "put the env's own, newer ptxas first (conda install -c conda-forge cuda-nvcc; pip install "
            "nvidia-cuda-nvcc-cu12 for JAX) and check `which ptxas`",
            "or take the old toolkit's bin/ out of PATH (and unset CUDA_HOME / XLA_FLAGS=--xla_gpu_cuda_data_dir "
            "that point at it)",
        )
        return Explanation(True, "ptxas_old", title, "neither", (), (), None, None, lines, fixes)
    want = code_cuda
    fixes = (
        f"put a ptxas of CUDA >= {want} first: install it in the env (conda install {_target(facts)}-c conda-forge "
        f'"cuda-nvcc={want}"; pip install "nvidia-cuda-nvcc-cu{code_cuda.major if code_cuda else 12}=={want}.*") '
        "and check `which ptxas`",
        "or take the old toolkit's bin/ out of PATH (and unset CUDA_HOME / XLA_FLAGS=--xla_gpu_cuda_data_dir "
        "that point at it)",
    )
    toolkit = (str(code_cuda),) if code_cuda else ()
    return Explanation(True, "ptxas_old", title, "neither", toolkit, (), facts.ptx, facts.accepted_ptx, lines, fixes)


def _unsupported(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
    prebuilt = [f for f in facts.frames if f in _PREBUILT]
    jit = [f for f in facts.frames if f in ("numba", "numba_cuda", "cupy")]
    drv = _driver_from_facts(facts)
    if prebuilt and not jit:
        pkg = prebuilt[0]
        lines = (
            f"CUDA_ERROR_UNSUPPORTED_PTX_VERSION from PTX shipped prebuilt inside {pkg}: it was built with a CUDA "
            "newer than the driver's JIT accepts",
            "a conda pin of cuda-version does not rebuild that package's PTX",
        )
        fixes = (
            f"install a {pkg} build for CUDA <= the driver's"
            + (
                f" ({drv}): pip '+cu{drv.major}{drv.minor}' wheels or conda 'cuda{drv.major}{drv.minor}' builds"
                if drv
                else ""
            )
            + ", or one that ships SASS for this GPU",
            "or upgrade the NVIDIA driver to the CUDA that package was built with",
        )
        return Explanation(True, "unsupported_ptx", title, "toolkit", lines=lines, fixes=fixes)
    lines = (
        "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (222): the PTX was written by a toolkit newer than the driver's JIT",
        "older Numba prints this as UNKNOWN_CUDA_ERROR; the ptxas log line (if any) names both PTX versions",
    )
    if drv is not None:
        return Explanation(
            True, "unsupported_ptx", title, "toolkit", (), (str(drv),), lines=lines,
            fixes=(f"pin the env to CUDA {drv} or older:", *_pin_lines(drv, facts)),
        )  # fmt: skip
    fixes = ("run `condafix doctor` on the failing machine to see both CUDA versions and the pin",)
    return Explanation(True, "unsupported_ptx", title, "toolkit", lines=lines, fixes=fixes)


def _build_cuda(facts: Facts) -> CudaVersion | None:
    pkg = facts.package("pytorch", "torch", "pytorch-cuda")
    return CudaVersion.parse(pkg.cuda) if pkg and pkg.cuda else None


def _torch_too_old(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    kb = knowledge()
    try:
        found = CudaVersion.from_encoded(int(match["found"]))
    except ValueError:
        raise UsageError(
            f"the message says 'found version {match['found']}', which is not an encoded CUDA version "
            "(PyTorch prints e.g. 11040 for CUDA 11.4); paste the whole message unchanged"
        ) from None
    build = _build_cuda(facts)
    lines = [
        f"{match['found']} is the driver's maximum CUDA version ({found}), not a driver version",
        f"this PyTorch build needs a newer CUDA than {found}" + (f": it is built for CUDA {build}" if build else ""),
    ]
    major = build.major if build is not None and build.major > found.major else found.major + 1
    floor = kb.mvc_floor.get(build.major if build is not None else major)
    need = floor[0] if floor else kb.min_driver_for(CudaVersion(major, 0))
    fits = [v for v in kb.pytorch_cuda_versions if v <= found]
    conda = f'conda: "pytorch-cuda={max(fits)}" (pytorch channel)' if fits else "conda: a cudatoolkit build of PyTorch"
    fixes = (
        f"install a PyTorch build for CUDA <= {found}: {conda}; pip: a +cu{found.major}{found.minor} wheel or older",
        f"or upgrade the NVIDIA driver to >= {need}, which runs every CUDA {build.major if build else major}.x build"
        if need
        else "or upgrade the NVIDIA driver",
    )
    return Explanation(
        True, "torch_driver_too_old", title, "toolkit", (str(build),) if build else (), (str(found),),
        lines=tuple(lines), fixes=fixes,
    )  # fmt: skip


def _runtime(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    drv = _driver_from_facts(facts)
    lines = (
        "the CUDA runtime (cudart) in the env is newer than the driver supports",
        "across a major this never works; within a major it needs the minor-version-compatibility floor",
    )
    if drv is not None:
        fixes: tuple[str, ...] = (f"pin the env to CUDA {drv} or older:", *_pin_lines(drv, facts))
        need = knowledge().min_driver_for(CudaVersion.parse(facts.toolkit_cuda)) if facts.toolkit_cuda else None
        if need:
            fixes = (*fixes, f"or upgrade the NVIDIA driver to >= {need}")
    else:
        fixes = (
            "pin the env's CUDA to the driver's version (`condafix doctor` prints the pin), or upgrade the driver",
        )
    return Explanation(True, "runtime_insufficient", title, "toolkit", lines=lines, fixes=fixes)


def _cuda_for_sm(sm: CudaVersion) -> CudaVersion | None:
    kb = knowledge()
    return next((cuda for cuda, newest in kb.newest_sm_by_cuda if newest >= sm), None)


def _no_kernel(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
    kb = knowledge()
    sm = CudaVersion.parse(facts.gpu_sm) if facts.gpu_sm else None
    archs = tuple(CudaVersion.parse(s) for s in facts.build_sms)
    if sm is not None and archs and sm > max(archs):
        since = _cuda_for_sm(sm)
        lines = (
            f"the GPU is sm_{sm.major}{sm.minor}; the build has SASS up to sm_{max(archs).major}{max(archs).minor}: "
            "the env is too OLD for this GPU (not a driver problem)",
            "a newer GPU needs a build from a CUDA that knows it"
            + (f" (sm_{sm.major}{sm.minor}: CUDA >= {since})" if since else ""),
        )
        fixes = (
            f"install a build compiled for sm_{sm.major}{sm.minor}"
            + (f": CUDA >= {since} (e.g. pip '+cu{since.major}{since.minor}' wheels)" if since else ""),
            "the driver must support that CUDA too (`condafix doctor` shows it)",
        )
        return Explanation(True, "no_kernel_image", title, "driver", lines=lines, fixes=fixes)
    if sm is not None and archs and sm < min(archs):
        majors = [m for m, oldest in sorted(kb.oldest_sm_by_major.items()) if oldest <= sm]
        last = max(majors) if majors else None
        lines = (
            f"the GPU is sm_{sm.major}{sm.minor}; the build starts at sm_{min(archs).major}{min(archs).minor}: "
            "its CUDA dropped this GPU (CUDA 12 dropped sm_35/sm_37, CUDA 13 everything below sm_75)",
            "not a driver problem: a newer driver does not bring old architectures back",
        )
        fixes = (
            f"install a build from CUDA {last}.x or older, the last to support sm_{sm.major}{sm.minor}"
            if last
            else "install a build from an older CUDA that still supports this GPU",
        )
        return Explanation(True, "no_kernel_image", title, "toolkit", lines=lines, fixes=fixes)
    lines = (
        "not a version mismatch: the binary has no SASS (and no usable PTX) for this GPU's compute capability",
        "typical with a new GPU (e.g. Blackwell sm_120) and an old build, or an old GPU dropped by a new build",
    )
    fixes = ("install a build that includes your GPU's architecture (`condafix doctor` shows its compute capability)",)
    return Explanation(True, "no_kernel_image", title, "neither", lines=lines, fixes=fixes)


def _classic_unsat(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
    lines = (
        "conda's classic solver lists every virtual package (__cuda, __glibc) among the 'incompatible' features "
        "whenever it finds no solution: __cuda is rarely the cause",
        "the real conflict is elsewhere in the specs",
    )
    fixes = (
        "solve again with libmamba to see the real conflict: conda install --solver=libmamba … "
        "(the default since conda 23.10), then `condafix explain` that message",
    )
    return Explanation(True, "classic_unsat_cuda", title, "neither", lines=lines, fixes=fixes)


_NEED = re.compile(r"__cuda ?>=? ?(\d{1,2}(?:\.\d{1,2})?)")


def _solver(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
    need_match = _NEED.search(text)
    need = need_match.group(1) if need_match else None
    smi = CudaVersion.parse(facts.driver_cuda) if facts.driver_cuda else None
    if smi is not None and not facts.conda_cuda:
        wanted = CudaVersion.parse(need if "." in need else f"{need}.0") if need else None
        if wanted is not None and wanted > smi:
            lines = (
                f"the driver is there ({facts.driver_source}: CUDA {smi}) but older than the __cuda >= {need} "
                "this package asks for",
                "a driver upgrade or an older build of the package fixes it",
            )
            fixes = (
                f"install a build for CUDA <= {smi} "
                f"(pin cuda-version={knowledge().newest_cuda_version_pin(smi) or smi})",
                f"or upgrade the NVIDIA driver to >= {knowledge().min_driver_for(wanted)}",
            )
            return Explanation(True, "solver_cuda", title, "toolkit", lines=lines, fixes=fixes)
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
        return Explanation(True, "solver_cuda", title, "neither", lines=lines, fixes=fixes)
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
    return Explanation(True, "solver_cuda", title, "driver", lines=lines, fixes=fixes)


def _proxy_dns(title: str, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    lines: tuple[str, ...]
    fixes: tuple[str, ...]
    found = _PROXY_HOST.search(text)
    host = (found.group(1) or found.group(2)) if found else None
    lines = (
        f"the proxy host {host!r} does not resolve: most often a typo in http_proxy/https_proxy or .condarc"
        if host
        else "the proxy's host name does not resolve: most often a typo in http_proxy/https_proxy or .condarc",
        "conda retried through the proxy and never reached the channel",
    )
    fixes = ("run `condafix proxy` to see every proxy setting (credentials hidden) and which one fails",)
    return Explanation(True, "proxy_dns", title, "neither", lines=lines, fixes=fixes)


_STATIC: Final[dict[str, tuple[Newer, tuple[str, ...], tuple[str, ...]]]] = {
    "invalid_ptx": (
        "unknown",
        (
            "CUDA_ERROR_INVALID_PTX (218): the driver's JIT rejected the PTX",
            "older drivers report a too-new PTX version this way; without the ptxas line the cause is not certain",
        ),
        ("look for `Unsupported .version X; current version is 'Y'` in the full log and pass it to condafix explain",),
    ),
    "proxy_socks": (
        "neither",
        (
            "a socks:// proxy (all_proxy / ALL_PROXY, often set by the desktop) but Python has no SOCKS support",
            "requests needs PySocks for socks:// proxies",
        ),
        (
            "install it: conda install pysocks (or pip install 'requests[socks]')",
            "or unset all_proxy/ALL_PROXY if conda should not use that proxy (`condafix proxy` lists them)",
        ),
    ),
    "proxy_scheme": (
        "neither",
        (
            "a proxy URL without a scheme, or with one requests does not know (proxy:8080; socks5h without PySocks)",
            "write proxies as http://host:port (also for https_proxy)",
        ),
        ("run `condafix proxy` to see which setting it is (credentials hidden)",),
    ),
    "proxy_auth": (
        "neither",
        (
            "the proxy answered 407: it wants credentials and got none or wrong ones",
            "credentials go in the proxy URL (http://user:password@host:port) or .condarc proxy_servers",
        ),
        ("check the user/password of the proxy setting; `condafix proxy` names it without printing them",),
    ),
    "proxy_forbidden": (
        "neither",
        (
            "the proxy answered 403 to CONNECT: it works, but this host is not on its allowlist",
            "credentials will not help; the channel's host must be allowed (or reached through a mirror)",
        ),
        (
            "ask for conda.anaconda.org (and repo.anaconda.com / your channel hosts) to be allowed, "
            "or use a mirror the proxy allows (channel_alias / custom_channels)",
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

_BUILDERS = {
    "nvjitlink_outdated": _nvjitlink,
    "jitify_nvjitlink": _jitify,
    "xla_ptxas_newer": _xla,
    "ptxas_old": _ptxas_old,
    "unsupported_ptx": _unsupported,
    "torch_driver_too_old": _torch_too_old,
    "runtime_insufficient": _runtime,
    "no_kernel_image": _no_kernel,
    "classic_unsat_cuda": _classic_unsat,
    "solver_cuda": _solver,
    "proxy_dns": _proxy_dns,
}


def _newest(components: list[Component]) -> Component | None:
    return max(components, key=lambda c: CudaVersion.parse(c.cuda or "0.0"), default=None)


def _env_nvjitlink_fix(env: EnvInfo, driver: CudaVersion | None) -> str | None:
    """numba-cuda >= 0.16 in this env but no nvJitLink: adding it is the smallest fix (compilepath)."""
    from condafix.diagnose import compilepath

    for path in compilepath.compile_paths(env, driver):
        writer = CudaVersion.parse(path.writer_cuda) if path.writer_cuda else None
        if path.missing != "nvjitlink" or writer is None or (driver is not None and writer.major != driver.major):
            continue
        spec = compilepath.nvjitlink_spec(env, writer)
        if spec is None:
            continue
        manager, pin = spec
        command = f'pip install "{pin}"' if manager == "pip" else f'conda install -p {env.prefix} "{pin}"'
        return f"add nvJitLink of NVVM's CUDA {writer} so {path.consumer} links to SASS: {command}"
    return None


def with_env(expl: Explanation, env: EnvInfo) -> Explanation:
    """Name the env's own NVVM/nvJitLink versions and turn the fix into the env's exact commands."""
    nvvm = _newest([c for c in env.components if c.role in ("nvvm", "toolkit") and c.cuda])
    link = _newest([c for c in env.components if c.role == "nvjitlink" and c.cuda])
    if nvvm is None or expl.family not in ("nvjitlink_outdated", "unsupported_ptx", "invalid_ptx", "ptx_version"):
        return expl
    lines = (*expl.lines, f"this env's NVVM: {nvvm.name} {nvvm.version} (CUDA {nvvm.cuda}, {nvvm.source})")
    if link is not None:
        lines = (*lines, f"this env's nvJitLink: {link.name} {link.version} (CUDA {link.cuda}, {link.source})")
    fixes = list(expl.fixes)
    nvvm_cuda = CudaVersion.parse(nvvm.cuda or "0.0")
    link_cuda = CudaVersion.parse(link.cuda) if link and link.cuda else None
    if expl.family == "nvjitlink_outdated" and link is not None and link_cuda is not None and link_cuda < nvvm_cuda:
        up = (
            f'pip install "{link.name}=={nvvm_cuda}.*"'
            if link.source == "pip"
            else f'conda install -p {env.prefix} "libnvjitlink={nvvm_cuda}"'
        )
        down = (
            f'pip install "{nvvm.name}=={link_cuda}.*"'
            if nvvm.source == "pip"
            else f'conda install -p {env.prefix} "cuda-version={knowledge().newest_cuda_version_pin(link_cuda)}"'
        )
        fixes = [
            f"bring nvJitLink up to NVVM's CUDA {nvvm_cuda}: {up}",
            f"or bring NVVM down to nvJitLink's CUDA {link_cuda}: {down}",
        ]
    elif expl.family != "nvjitlink_outdated":
        drv = CudaVersion.parse(expl.driver_cuda[0]) if expl.driver_cuda else None
        link_fix = _env_nvjitlink_fix(env, drv)
        if link_fix is not None and fixes and fixes[0].startswith("add nvJitLink"):
            fixes[0] = link_fix
        elif link_fix is not None:
            fixes.insert(0, link_fix)
        elif drv is not None and nvvm_cuda > drv:
            if nvvm.source == "pip":
                exact = f'pip install "{nvvm.name}=={drv}.*"'
            else:
                pin = knowledge().newest_cuda_version_pin(drv)
                exact = f'conda install -p {env.prefix} "cuda-version={pin}"' if pin else ""
            if exact:
                fixes.insert(0, f"bring NVVM down to CUDA {drv} (<= the driver): {exact}")
    newer = "toolkit" if expl.newer == "unknown" else expl.newer
    return replace(
        expl, lines=lines, fixes=tuple(fixes), toolkit_cuda=expl.toolkit_cuda or (nvvm.cuda or "",), newer=newer
    )
