"""The error families: one linear-time pattern, a title and the component that refused, per family.

The table is data, most specific first: the first family whose pattern matches the paste decides. The
component (what refused: the driver's JIT, a ptxas binary, NVRTC, the loader ...) is named here because it,
not the numbers around it, decides who is to blame: ``ptxas /tmp/x.ptx, line 5`` is a ptxas binary on PATH,
never the driver. Every pattern is linear: no nested unbounded quantifiers, bounded gaps only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Newer = Literal["toolkit", "driver", "neither", "unknown"]
# What the first fix is: a conda pin of the env's CUDA, a driver upgrade, a pip install, another package or
# build, an environment/PATH/LD_LIBRARY_PATH change, a loader fix (803/804), CONDA_OVERRIDE_CUDA, a manifest
# edit, a spec/flag edit, nothing CUDA-version related, or "not enough information: run X".
FixKind = Literal["pin", "driver", "pip", "package", "path", "loader", "override", "manifest", "spec", "none", "info"]


@dataclass(frozen=True, kw_only=True)
class Family:
    code: str
    pattern: re.Pattern[str]
    title: str
    component: str


def _f(code: str, pattern: str, title: str, component: str) -> Family:
    return Family(code=code, pattern=re.compile(pattern), title=title, component=component)


FAMILIES: Final[tuple[Family, ...]] = (
    # -------------------------------------------------------------- the loader and forward compatibility
    _f(
        "compat_804",
        r"forward compatibility was attempted on non supported HW|cudaErrorCompatNotSupportedOnDevice|"
        r"CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE|Error 804\b",
        "a forward-compatibility libcuda on a GPU that does not support it (804)",
        "loader",
    ),
    _f(
        "loader_803",
        r"system has unsupported display driver / cuda driver combination|cudaErrorSystemDriverMismatch|"
        r"CUDA_ERROR_SYSTEM_DRIVER_MISMATCH|Error 803\b",
        "the user-space libcuda does not match the kernel driver (803)",
        "loader",
    ),
    # -------------------------------------------------------------- linkers, assemblers, compilers
    _f(
        "nvjitlink_outdated",
        r"ERROR_OUTDATED_LIBRARY|NVJITLINK_ERROR_PTX_COMPILE|nvJitLinkError: ERROR_PTX_COMPILE|"
        r"may need newer version of nvJitLink|NVJITLINK_ERROR_INTERNAL",
        "nvJitLink older than the NVVM that wrote the code",
        "nvjitlink",
    ),
    _f(
        "jitify_nvjitlink",
        r"libnvJitLink\.so\.(?P<major>\d{1,2}) is too old; it is version (?P<have>\d{1,2}\.\d{1,2})"
        r"[^\n]{0,40}?need at least version (?P<need>\d{1,2}\.\d{1,2})",
        "an older libnvJitLink is loaded than the library needs",
        "library",
    ),
    _f(
        "xla_ptxas_newer",
        r"driver's CUDA version is (?P<driver>\d{1,2}\.\d{1,2})(?:\.\d{1,3})? which is older than the "
        r"(?:ptxas CUDA version|PTX compiler version) \((?P<ptxas>\d{1,2}\.\d{1,2})",
        "XLA's ptxas is newer than the driver (a warning: compiles run serially)",
        "xla_ptxas",
    ),
    _f(
        "ptxas_arch",
        r"Value 'sm_\d{2,3}[a-z]?' is not defined for option 'gpu-name'",
        "a ptxas older than the GPU: it does not know the architecture (Triton's bundled one, or PATH's)",
        "ptxas",
    ),
    _f(
        "triton_ptx_table",
        r"Unsupported \.version 8\.6; current version is '8\.5'",
        "a compiler's CUDA-to-PTX table wrote PTX ISA 8.6, which no CUDA release writes (Triton)",
        "triton",
    ),
    _f(
        "ptxas_old",
        r"ptxas exited with non-zero|ptxas [^\s,]{1,300}\.ptx, line \d{1,9}; fatal {0,4}: Unsupported \.version|"
        r"You are using ptxas \d{1,2}\.\d{1,2}[^\n]{0,200}older|Internal Triton PTX codegen error",
        "an old ptxas binary (PATH or CUDA_HOME) compiled the PTX, not the driver",
        "ptxas",
    ),
    _f(
        "ptxas_failed",
        r"`ptxas` failed with error code|ptxas(?:\.exe)?'[^\n]{0,600}returned non-zero exit status",
        "a ptxas binary failed and its log gives no reason",
        "ptxas",
    ),
    _f(
        "nvrtc_arch",
        r"invalid value for --gpu-architecture|NVRTC_ERROR_INVALID_OPTION",
        "NVRTC does not know the GPU architecture it was asked for",
        "nvrtc",
    ),
    _f(
        "nvcc_arch",
        r"nvcc fatal {0,4}: {0,4}Unsupported gpu architecture '(?:compute|sm)_\d{2,3}'",
        "nvcc does not support the GPU architecture it was asked for",
        "nvcc",
    ),
    _f(
        "ptx_version",
        r"Unsupported \.version (?P<ptx>\d{1,2}\.\d{1,2}); current version is '(?P<driver_ptx>\d{1,2}\.\d{1,2})'",
        "PTX from a toolkit newer than the driver's JIT",
        "driver_jit",
    ),
    _f(
        "unsupported_ptx",
        r"CUDA_ERROR_UNSUPPORTED_PTX_VERSION|\[222\]|cuLinkAddData results in UNKNOWN_CUDA_ERROR|"
        r"the provided PTX was compiled with an unsupported toolchain",
        "PTX from a toolkit newer than the driver's JIT",
        "driver_jit",
    ),
    _f(
        "invalid_ptx",
        r"CUDA_ERROR_INVALID_PTX|\[218\]|a PTX JIT compilation failed",
        "the driver's JIT rejected the PTX",
        "driver_jit",
    ),
    # -------------------------------------------------------------- runtimes and frameworks
    _f(
        "bindings_major",
        r"CUDA driver version \d{4,5} is not supported",
        "cuda-bindings of another CUDA major than the driver",
        "bindings",
    ),
    _f(
        "torch_driver_too_old",
        r"NVIDIA driver on your system is too old \(found version (?P<found>\d{4,5})\)",
        "PyTorch built for a newer CUDA than the driver",
        "framework",
    ),
    _f(
        "runtime_insufficient",
        r"CUDA driver version is insufficient for CUDA runtime version|cudaErrorInsufficientDriver|"
        r"CUDA_ERROR_INSUFFICIENT_DRIVER",
        "CUDA runtime newer than the driver",
        "runtime",
    ),
    _f(
        "gpu_dropped",
        r"no longer supports this GPU because it is too old|minimum cuda capability supported by this library is|"
        r"too old to be supported by the triton GPU compiler",
        "the build no longer supports this (older) GPU",
        "framework",
    ),
    _f(
        "no_kernel_image",
        r"no kernel image is available for execution on the device|"
        r"with CUDA capability sm_\d{2,3}[a-z]? is not compatible with the current PyTorch installation",
        "no SASS for this GPU's architecture",
        "framework",
    ),
    _f(
        "library_skew",
        r"cuDNN version incompatibility|cuDNN version mismatch|Loaded runtime CuDNN library: [\d.]{1,12} but source|"
        r"undefined symbol: __nvJitLink[A-Za-z]{1,40}_\d{1,2}_\d{1,2}, version libnvJitLink",
        "a library in the env is older than the framework was built against (not the driver)",
        "library",
    ),
    # -------------------------------------------------------------- look-alikes: not CUDA version problems
    _f(
        "out_of_memory",
        r"CUDA out of memory|OutOfMemoryError|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation",
        "out of GPU memory (not a version problem)",
        "memory",
    ),
    _f(
        "illegal_access",
        r"an illegal memory access was encountered|CUDA_ERROR_ILLEGAL_ADDRESS|cudaErrorIllegalAddress",
        "a kernel accessed memory it does not own (not a version problem)",
        "kernel",
    ),
    _f(
        "nccl_network",
        r"NCCL WARN socket|ncclSystemError|ncclRemoteError|NCCL error in:[^\n]{0,300}unhandled system error|"
        r"NCCL failure[^\n]{0,100}unhandled system error",
        "NCCL could not reach its peers (network or system call; not a version problem)",
        "nccl",
    ),
    _f(
        "wsl_libcuda_symlink",
        r"libcuda\.so\.1 is not a symbolic link",
        "WSL's ldconfig warning about libcuda copies (harmless; not a version problem)",
        "wsl",
    ),
    _f(
        "no_device",
        r"No CUDA GPUs are available|CUDA_ERROR_NO_DEVICE|cudaErrorNoDevice|no CUDA-capable device is detected",
        "no GPU visible to the process (not a version problem)",
        "device",
    ),
    # -------------------------------------------------------------- solvers
    _f(
        "pixi_virtual_missing",
        r"Virtual package '__cuda' does not match any of the available virtual packages",
        "pixi: the manifest needs __cuda and this machine has none",
        "pixi",
    ),
    _f(
        "pixi_no_cuda",
        r"__cuda \*, for which no candidates were found",
        "pixi: a CUDA build is asked for but the manifest declares no CUDA",
        "pixi",
    ),
    _f(
        "pixi_platform_mismatch",
        r"no platform supported by [^\n]{0,200}matches the current system",
        "pixi: this machine matches none of the environment's platforms (their cuda/glibc requirements)",
        "pixi",
    ),
    _f(
        "build_glob",
        r"does not exist \(perhaps a typo or a missing channel\)",
        "a build-string glob matches no package (not the driver)",
        "solver",
    ),
    _f(
        "solver_conflict",
        r"(?:pytorch-cuda|cudatoolkit|cuda-version)[^\n]{0,80}(?:conflicts with any installable versions|"
        r"is not installable because it conflicts)",
        "the solver's conflict is between packages (a CUDA pin or build), not the driver",
        "solver",
    ),
    _f(
        "classic_unsat_cuda",
        r"feature:[^\n]{0,60}::__cuda==|UnsatisfiableError: The following specifications were found",
        "the classic solver's UnsatisfiableError lists __cuda (a red herring)",
        "solver",
    ),
    _f(
        "solver_cuda",
        r"nothing provides (?:requested )?__cuda|requires __cuda|__cuda[^\n]{0,200}(?:conflict|missing|but )|"
        r"virtual package __cuda|__cuda[^\n]{0,120}not available|mismatching virtual package",
        "the solver needs the __cuda virtual package",
        "solver",
    ),
    # -------------------------------------------------------------- proxies
    _f(
        "proxy_socks",
        r"Missing dependencies for SOCKS support",
        "a SOCKS proxy without the Python SOCKS support",
        "proxy",
    ),
    _f(
        "proxy_scheme",
        r"ProxySchemeUnknown|Proxy URL had no scheme|Not supported proxy scheme|Unable to determine proxy",
        "a proxy URL with no or an unknown scheme",
        "proxy",
    ),
    _f(
        "proxy_auth",
        r"407 Proxy Authentication Required|Tunnel connection failed: 407",
        "the proxy wants credentials (407)",
        "proxy",
    ),
    _f("proxy_forbidden", r"Tunnel connection failed: 403", "the proxy refuses this host (403: an allowlist)", "proxy"),
    _f(
        "proxy_dns",
        r"ProxyError[^\n]{0,400}?(?:Failed to resolve|Name or service not known|NameResolutionError|"
        r"getaddrinfo failed|Temporary failure in name resolution|nodename nor servname)",
        "the proxy's host name does not resolve",
        "proxy",
    ),
    _f(
        "proxy",
        r"ProxyError|Conda cannot proceed due to an error in your proxy configuration|"
        r"Cannot connect to proxy|tunnel error|407 Proxy Authentication Required",
        "a proxy setting is broken",
        "proxy",
    ),
)

BY_CODE: Final = {family.code: family for family in FAMILIES}

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

# Families that are not CUDA version problems: they never get a pin or a driver upgrade.
LOOKALIKES: Final = frozenset({"out_of_memory", "illegal_access", "nccl_network", "wsl_libcuda_symlink", "no_device"})

# Packages that ship prebuilt PTX/SASS: a conda pin of cuda-version does not rebuild them.
PREBUILT: Final = ("torch", "xformers", "flash_attn", "bitsandbytes", "vllm", "tensorflow", "jaxlib", "faiss", "triton")

# (newer, lines, fixes, fix kind, culprit) of the families whose text does not depend on the paste
Static = tuple[Newer, tuple[str, ...], tuple[str, ...], FixKind, str]
STATIC: Final[dict[str, Static]] = {
    "invalid_ptx": (
        "unknown",
        (
            "CUDA_ERROR_INVALID_PTX (218): the driver's JIT rejected the PTX",
            "older drivers report a too-new PTX version this way; without the ptxas line the cause is not certain",
        ),
        (
            "not enough information: look for `Unsupported .version X; current version is 'Y'` in the full log "
            "and run `nvidia-smi`, then pass both to condafix explain",
        ),
        "info",
        "unknown",
    ),
    "out_of_memory": (
        "neither",
        (
            "the GPU ran out of memory: the allocation did not fit in what is free on the card",
            "not a CUDA version problem: no pin, toolkit or driver change frees memory",
        ),
        (
            "nothing to change in the env: use a smaller batch/model, free other processes on the GPU "
            "(`nvidia-smi` lists them), or set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True against "
            "fragmentation",
        ),
        "none",
        "none",
    ),
    "illegal_access": (
        "neither",
        (
            "a kernel read or wrote memory it does not own: a bug in the kernel or its inputs (an index out of "
            "range, a freed tensor), reported late because launches are asynchronous",
            "not a CUDA version problem: a pin or a driver upgrade does not change it",
        ),
        (
            "nothing to change in the env: rerun with CUDA_LAUNCH_BLOCKING=1 to see the kernel that failed "
            "(and compute-sanitizer for the access)",
        ),
        "none",
        "none",
    ),
    "nccl_network": (
        "neither",
        (
            "NCCL failed a system or network call while connecting ranks: an interface, firewall, route or "
            "peer that went away",
            "not a CUDA version problem; NCCL's own version is a library version, not CUDA's",
        ),
        (
            "nothing to change in the env: rerun with NCCL_DEBUG=INFO and check NCCL_SOCKET_IFNAME / the "
            "route between the nodes",
        ),
        "none",
        "none",
    ),
    "wsl_libcuda_symlink": (
        "neither",
        (
            "WSL's /usr/lib/wsl/lib holds copies of libcuda.so, not symlinks; ldconfig warns about it",
            "harmless, and not a CUDA version problem: CUDA works with the warning",
        ),
        ("nothing to change: the warning can be ignored (it comes from the Windows driver's files)",),
        "none",
        "none",
    ),
    "no_device": (
        "neither",
        (
            "the process sees no GPU: CUDA_VISIBLE_DEVICES names one that does not exist (or is empty), the "
            "container got no GPU, or the driver is not loaded",
            "not a CUDA version problem: a pin does not make a GPU visible",
        ),
        (
            "nothing to change in the env: check `echo $CUDA_VISIBLE_DEVICES` (GPU ids start at 0), "
            "`nvidia-smi`, and `--gpus all` for containers",
        ),
        "none",
        "none",
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
        "package",
        "host",
    ),
    "proxy_scheme": (
        "neither",
        (
            "a proxy URL without a scheme, or with one requests does not know (proxy:8080; socks5h without PySocks)",
            "write proxies as http://host:port (also for https_proxy)",
        ),
        ("run `condafix proxy` to see which setting it is (credentials hidden)",),
        "path",
        "host",
    ),
    "proxy_auth": (
        "neither",
        (
            "the proxy answered 407: it wants credentials and got none or wrong ones",
            "credentials go in the proxy URL (http://user:password@host:port) or .condarc proxy_servers",
        ),
        ("check the user/password of the proxy setting; `condafix proxy` names it without printing them",),
        "path",
        "host",
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
        "path",
        "host",
    ),
    "proxy": (
        "neither",
        (
            "a proxy setting (http_proxy/https_proxy/all_proxy or .condarc proxy_servers) is broken",
            "common causes: an https:// scheme for the proxy itself, a dead host/port, stale credentials",
        ),
        ("run `condafix proxy` to find which setting is wrong; `env | grep -i _proxy` lists them",),
        "path",
        "host",
    ),
}
