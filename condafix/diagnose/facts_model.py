"""The shapes of what a paste or an env says (``Fact``, ``Facts``) and the decoders of the encodings tools
print (``12080`` = CUDA 12.8, cuDNN ``8907`` = 8.9.7, NCCL ``21803`` = 2.18.3): the reader is ``facts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from condafix.errors import UsageError
from condafix.knowledge import roles
from condafix.knowledge.cuda import CudaVersion

if TYPE_CHECKING:
    from condafix.env.envinfo import EnvInfo

MAX_INPUT: Final = 1 << 20  # 1 MiB: longer pastes keep their head and their tail (the error is usually last)
MAX_LINE: Final = 8192
_HEAD: Final = 256 * 1024
UNKNOWN: Final = "unknown"

FactKind = Literal[
    "driver_version",  # the NVIDIA driver (kernel module / libcuda build), e.g. 570.133.20
    "driver_cuda",  # the newest CUDA that driver runs, e.g. 12.8
    "conda_cuda",  # conda's __cuda virtual package
    "runtime_cuda",  # the CUDA runtime (cudart) loaded or linked
    "build_cuda",  # the CUDA a framework or library was built with
    "toolkit_cuda",  # a toolkit's own identification (nvcc/ptxas --version, a toolkit path)
    "nvrtc_cuda",  # NVRTC's version
    "ptxas_cuda",  # the version of a ptxas binary in use
    "ptx_isa",  # the PTX ISA the code was written in (the compiler that wrote it)
    "accepted_ptx",  # the newest PTX ISA the refusing assembler (driver JIT or ptxas) accepts
    "gpu_name",
    "gpu_sm",  # the GPU's compute capability
    "build_sm",  # an architecture a build ships SASS for
    "min_sm",  # the oldest architecture a build still supports
    "target_sm",  # an architecture a compiler was asked for
    "library",  # a library version that is not a CUDA version (cuDNN, NCCL, cuSPARSE, nvJitLink needed)
    "platform",  # WSL, the OS kernel
    "env_name",
    "env_prefix",
    "manager",  # conda, mamba, pixi, pip
    "tool",  # a tool's own version (CuPy 13.6.0, pixi 0.73.0, conda 24.1.2): never a CUDA or driver version
    "package",
]


@dataclass(frozen=True, kw_only=True)
class Fact:
    """One thing read: what it is, its normalised value, and where it came from."""

    kind: FactKind
    value: str
    source: str
    line: int | None
    text: str
    name: str | None = None
    raw: str | None = None

    def describe(self) -> str | None:
        """One line for people: what it is, its value (as printed), its line and source; None for context facts."""
        label = _LABELS.get(self.kind)
        if label is None:
            return None
        name = f"{self.name} " if self.kind == "library" and self.name else ""
        raw = f" = {self.raw}" if self.raw else ""
        where = f"line {self.line}, " if self.line is not None else ""
        return f"{label} {name}{self.value}{raw} ({where}{self.source})"


_LABELS: Final = {
    "driver_version": "driver",
    "driver_cuda": "driver CUDA",
    "runtime_cuda": "CUDA runtime",
    "build_cuda": "built with CUDA",
    "toolkit_cuda": "toolkit CUDA",
    "nvrtc_cuda": "NVRTC",
    "ptxas_cuda": "ptxas CUDA",
    "ptx_isa": "PTX ISA",
    "accepted_ptx": "accepted PTX ISA",
    "gpu_name": "GPU",
    "gpu_sm": "GPU architecture",
    "library": "library",
}


@dataclass(frozen=True, kw_only=True)
class Package:
    """A CUDA-relevant package row from ``conda list`` / ``pip list`` / ``pip freeze``."""

    name: str
    version: str
    build: str
    cuda: str | None


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What the paste says; the scalar fields are the chosen facts of ``items``, None where it says nothing."""

    ptx: str | None = None
    accepted_ptx: str | None = None
    ptx_line: str | None = None
    driver_version: str | None = None
    driver_cuda: str | None = None
    driver_source: str | None = None
    smi_error: bool = False
    conda_cuda: str | None = None
    packages: tuple[Package, ...] = ()
    gpu_sm: str | None = None
    gpu_name: str | None = None
    build_sms: tuple[str, ...] = ()
    ptxas_version: str | None = None
    nvjitlink_missing: bool = False
    env_name: str | None = None
    env_prefix: str | None = None
    frames: tuple[str, ...] = ()
    items: tuple[Fact, ...] = ()

    def package(self, *names: str) -> Package | None:
        return next((p for p in self.packages if p.name in names), None)

    def first(self, kind: FactKind, name: str | None = None) -> Fact | None:
        """The first fact of ``kind`` (and ``name``) with a known value."""
        return next((f for f in self.all(kind, name) if f.value != UNKNOWN), None)

    def all(self, kind: FactKind, name: str | None = None) -> tuple[Fact, ...]:
        return tuple(f for f in self.items if f.kind == kind and (name is None or f.name == name))

    def manager(self) -> str | None:
        """The package manager the paste shows (pip venv, conda, mamba, pixi), first seen wins."""
        found = self.first("manager")
        return found.value if found else None

    @property
    def toolkit_cuda(self) -> str | None:
        """The env's CUDA as the pasted package rows give it (pin first, then toolkit, NVVM, framework)."""
        for names in (("cuda-version",), ("cudatoolkit",), ("cuda-nvvm", "cuda-nvcc", "nvidia-nvvm"), ()):
            for pkg in self.packages:
                if (pkg.name in names or not names) and pkg.cuda:
                    return pkg.cuda
        return None


def bound(text: str) -> str:
    """At most MAX_INPUT characters (head + tail), each line at most MAX_LINE characters."""
    if len(text) > MAX_INPUT:
        text = text[:_HEAD] + "\n" + text[-(MAX_INPUT - _HEAD) :]
    return "\n".join(line[:MAX_LINE] for line in text.splitlines())


# ---------------------------------------------------------------- decoders (the encodings each tool prints)


def encoded_cuda(raw: str) -> str | None:
    """``12080`` -> ``12.8``, ``9020`` -> ``9.2`` (cuDriverGetVersion / NVML / PyTorch / CuPy)."""
    try:
        return str(CudaVersion.from_encoded(int(raw)))
    except ValueError:
        return None


def _three(major: int, minor: int, patch: int) -> str:
    return f"{major}.{minor}.{patch}"


def cudnn_version(raw: str) -> str:
    """cuDNN's ``CUDNN_VERSION``: ``8907`` -> 8.9.7 (major*1000+minor*100+patch), ``90100`` -> 9.1.0 (cuDNN 9)."""
    v = int(raw)
    if v >= 10000:
        return _three(v // 10000, (v % 10000) // 100, v % 100)
    return _three(v // 1000, (v % 1000) // 100, v % 100)


def nccl_version(raw: str) -> str:
    """NCCL's ``NCCL_VERSION_CODE``: ``2507`` -> 2.5.7, ``21803`` -> 2.18.3 (from 2.9 on)."""
    return cudnn_version(raw)


def math_lib_version(raw: str) -> str:
    """cuBLAS/cuFFT/cuRAND/cuSPARSE ``*_VERSION``: ``10301`` -> 10.3.1 (their own versions, not CUDA's)."""
    v = int(raw)
    return _three(v // 1000, (v % 1000) // 100, v % 100)


# Toolkit packages: their version is the CUDA they carry.
_CTK_NAMES: Final = frozenset(
    {
        "cuda-version",
        "cudatoolkit",
        "cuda-nvcc",
        "cuda-nvvm",
        "cuda-nvvm-impl",
        "cuda-nvcc-impl",
        "cuda-nvrtc",
        "cuda-cudart",
        "libnvjitlink",
        "nvidia-nvvm",
        "nvidia-nvjitlink",
        "nvidia-nvjitlink-cu12",
        "nvidia-cuda-nvcc-cu12",
        "nvidia-cuda-nvrtc-cu12",
        "nvidia-cuda-runtime-cu12",
        "pytorch-cuda",
    }
)
# ...and the packages whose builds name a CUDA (consumers and frameworks), read from list rows too.
_CUDA_PACKAGES: Final = _CTK_NAMES | frozenset(
    {"pytorch", "torch", "torchvision", "numba", "numba-cuda", "cupy", "jaxlib", "tensorflow"}
)


def package_cuda(name: str, version: str, build: str) -> str | None:
    if name in _CTK_NAMES:
        try:
            return str(CudaVersion.parse(version))
        except UsageError:
            return None
    return roles.cuda_of_local_version(version) or roles.cuda_of_build(build)


def tracked_package(name: str) -> bool:
    """A package whose list row the reader keeps (toolkit parts, consumers, frameworks)."""
    return name in _CUDA_PACKAGES


# ---------------------------------------------------------------- the same facts from an inspected env


def env_facts(env: EnvInfo) -> tuple[Fact, ...]:
    """The env's packages, name, prefix and manager as facts (``line`` None: they come from the env's records)."""
    where = env.prefix or "the env"
    found: list[Fact] = []
    if env.name:
        found.append(Fact(kind="env_name", value=env.name, source=env.selected_by or "the env", line=None, text=where))
    if env.prefix:
        found.append(
            Fact(kind="env_prefix", value=env.prefix, source=env.selected_by or "the env", line=None, text=where)
        )
    if env.kind != "none":
        manager = "pip" if env.kind == "venv" else "conda"
        found.append(Fact(kind="manager", value=manager, source=f"the env is a {env.kind}", line=None, text=where))
    for c in env.components:
        record = "conda-meta" if c.source == "conda" else "pip metadata"
        text = f"{c.name} {c.version} {c.build}".strip()
        found.append(Fact(kind="package", value=c.version, source=record, line=None, text=text, name=c.name))
        if c.cuda and c.role in ("nvvm", "toolkit", "nvjitlink", "nvrtc", "runtime"):
            found.append(Fact(kind="toolkit_cuda", value=c.cuda, source=record, line=None, text=text, name=c.name))
    return tuple(found)
