"""Facts read from a pasted error report: both CUDA versions and whatever else the user pasted with it.

A report often holds more than the error line: an nvidia-smi banner, ``-q`` text or XML, ``conda info``'s
virtual packages, ``conda list`` / ``pip list`` rows, PyTorch's architecture warning, a prompt with the
env's name. Every fact keeps where it came from. Input is bounded and every pattern is linear: lines are
cut to ``MAX_LINE`` characters, no pattern nests quantifiers, gaps are bounded (``{0,N}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from condafix.errors import UsageError
from condafix.knowledge import roles
from condafix.knowledge.cuda import CudaVersion, knowledge

MAX_INPUT: Final = 1 << 20  # 1 MiB: longer pastes keep their head and their tail (the error is usually last)
MAX_LINE: Final = 8192
_HEAD: Final = 256 * 1024


def bound(text: str) -> str:
    """At most MAX_INPUT characters (head + tail), each line at most MAX_LINE characters."""
    if len(text) > MAX_INPUT:
        text = text[:_HEAD] + "\n" + text[-(MAX_INPUT - _HEAD) :]
    return "\n".join(line[:MAX_LINE] for line in text.splitlines())


@dataclass(frozen=True, kw_only=True)
class Package:
    """A CUDA-relevant package row from ``conda list`` / ``pip list`` / ``pip freeze``."""

    name: str
    version: str
    build: str
    cuda: str | None


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What the paste says, each with its source; None where it says nothing."""

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

    def package(self, *names: str) -> Package | None:
        return next((p for p in self.packages if p.name in names), None)

    @property
    def toolkit_cuda(self) -> str | None:
        """The env's CUDA as the pasted package rows give it (pin first, then toolkit, NVVM, framework)."""
        for names in (("cuda-version",), ("cudatoolkit",), ("cuda-nvvm", "cuda-nvcc", "nvidia-nvvm"), ()):
            for pkg in self.packages:
                if (pkg.name in names or not names) and pkg.cuda:
                    return pkg.cuda
        return None


# ---------------------------------------------------------------- patterns (linear: no nested quantifiers)

_PTX = re.compile(r"Unsupported \.version (\d{1,2}\.\d{1,2}); current version is '(\d{1,2}\.\d{1,2})'")
_BANNER = re.compile(
    r"(?:Driver|KMD) Version: {0,4}(\d{2,4}(?:\.\d{1,3}){0,2})"
    r"(?: {1,40}CUDA(?: UMD)? Version: {0,4}(\d{1,2}\.\d{1,2}|ERR!|N/A))?"
)
_Q_DRIVER = re.compile(r"^ {0,8}Driver Version {0,80}: (\d{2,4}(?:\.\d{1,3}){0,2})")
_Q_CUDA = re.compile(r"^ {0,8}CUDA Version {0,80}: (\d{1,2}\.\d{1,2})")
_XML_DRIVER = re.compile(r"<driver_version>(\d{2,4}(?:\.\d{1,3}){0,2})</driver_version>")
_XML_CUDA = re.compile(r"<cuda_version>(\d{1,2}\.\d{1,2})</cuda_version>")
_GLX = re.compile(r"NVIDIA (\d{3}\.\d{1,3}(?:\.\d{1,3})?)\b")
_SMI_NAME = re.compile(
    r"^\| {1,4}\d{1,2} {1,4}(NVIDIA [^|]{1,40}?|Tesla [^|]{1,40}?|Quadro [^|]{1,40}?) {2,40}(?:On|Off)"
)
_CONDA_CUDA = re.compile(r"__cuda(?:=|-| {1,40})(\d{1,2}\.\d{1,2})(?:=0|-0| {1,40}0)?\b")
_CONDA_ROW = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,60}) {1,60}(\d[\w.!+]{0,40}) {1,60}(\S{1,80})(?: {1,60}(\S{1,80}))? {0,10}$"
)
_PIP_ROW = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,60})(?:==| {1,60})(\d[\w.!+]{0,40}) {0,10}$")
_TORCH_SM = re.compile(r"with CUDA capability sm_(\d{2,3})[a-z]? is not compatible")
_TORCH_SMS = re.compile(r"supports CUDA capabilities ((?:sm_\d{2,3}[a-z]? ?){1,40})")
_PTXAS_VERSION = re.compile(r"You are using ptxas (\d{1,2}\.\d{1,2})")
_NO_NVJITLINK = re.compile(r"nvjitlink is not available, therefore the driver APIs will be used")
_PROMPT = re.compile(r"^\(([A-Za-z0-9_.\-]{1,60})\) {0,4}[\w.\-]{0,40}@?[\w.\-]{0,60}[:~ ]")
_ENV_PATH = re.compile(r"((?:/[\w.\-]{1,80}){0,10}/envs/([A-Za-z0-9_.\-]{1,60}))/lib/python")
_FRAME = re.compile(r"site-packages[/\\]([A-Za-z0-9_]{1,60})[/\\]")

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
    {
        "pytorch",
        "torch",
        "torchvision",
        "numba",
        "numba-cuda",
        "cupy",
        "jaxlib",
        "tensorflow",
    }
)


def _cuda_digits(digits: str) -> str:
    return f"{int(digits[:-1])}.{digits[-1]}"


def _package_cuda(name: str, version: str, build: str) -> str | None:
    if name in _CTK_NAMES:
        try:
            return str(CudaVersion.parse(version))
        except UsageError:
            return None
    return roles.cuda_of_local_version(version) or roles.cuda_of_build(build)


def _plausible_cuda(text: str) -> str | None:
    try:
        version = CudaVersion.parse(text)
    except UsageError:
        return None
    return str(version) if 2 <= version.major <= 20 else None


def read(text: str) -> Facts:
    """Every fact in a (bounded) paste; the first occurrence of each wins."""
    found: dict[str, object] = {}
    packages: dict[str, Package] = {}
    frames: list[str] = []
    sms: tuple[str, ...] = ()

    def put(key: str, value: object) -> None:
        if value is not None and key not in found:
            found[key] = value

    for line in bound(text).splitlines():
        stripped = line.strip()
        if "Unsupported .version" in line:
            match = _PTX.search(line)
            if match:
                put("ptx", match.group(1))
                put("accepted_ptx", match.group(2))
                put("ptx_line", stripped[:300])
        if "Version:" in line:
            banner = _BANNER.search(line)
            if banner:
                put("driver_version", banner.group(1))
                cuda = banner.group(2)
                if cuda and cuda[0].isdigit():
                    if "driver_cuda" not in found:
                        found["driver_source"] = "nvidia-smi banner"
                    put("driver_cuda", _plausible_cuda(cuda))
                elif cuda == "ERR!":
                    found["smi_error"] = True
        if "Version" in line and ":" in line:
            q_driver, q_cuda = _Q_DRIVER.search(line), _Q_CUDA.search(line)
            if q_driver:
                put("driver_version", q_driver.group(1))
            if q_cuda and "driver_cuda" not in found:
                found["driver_source"] = "nvidia-smi -q"
                put("driver_cuda", _plausible_cuda(q_cuda.group(1)))
        if "_version>" in line:
            x_driver, x_cuda = _XML_DRIVER.search(line), _XML_CUDA.search(line)
            if x_driver:
                put("driver_version", x_driver.group(1))
            if x_cuda and "driver_cuda" not in found:
                found["driver_source"] = "nvidia-smi XML"
                put("driver_cuda", _plausible_cuda(x_cuda.group(1)))
        if "OpenGL" in line and "NVIDIA" in line:
            glx = _GLX.search(line)
            if glx:
                put("glx_driver", glx.group(1))
        if line.startswith("|") and "NVIDIA" in line:
            name = _SMI_NAME.search(line)
            if name:
                put("gpu_name", name.group(1).strip())
        if "__cuda" in line:
            conda = _CONDA_CUDA.search(line)
            if conda:
                put("conda_cuda", _plausible_cuda(conda.group(1)))
        row = _CONDA_ROW.match(stripped) or _PIP_ROW.match(stripped)
        if row:
            pkg_name = row.group(1).lower().replace("_", "-")
            version = row.group(2)
            build = row.group(3) if row.re is _CONDA_ROW else ""
            if pkg_name in _CUDA_PACKAGES and pkg_name not in packages:
                packages[pkg_name] = Package(
                    name=pkg_name, version=version, build=build, cuda=_package_cuda(pkg_name, version, build)
                )
        if "CUDA capabilit" in line:
            sm = _TORCH_SM.search(line)
            if sm:
                put("gpu_sm", _cuda_digits(sm.group(1)))
            listed = _TORCH_SMS.search(line)
            if listed and not sms:
                sms = tuple(_cuda_digits(s[3:].rstrip("abcdefghijklmnopqrstuvwxyz")) for s in listed.group(1).split())
        if "ptxas" in line:
            ptxas = _PTXAS_VERSION.search(line)
            if ptxas:
                put("ptxas_version", ptxas.group(1))
        if "nvjitlink is not available" in line and _NO_NVJITLINK.search(line):
            found["nvjitlink_missing"] = True
        if stripped.startswith("(") and "env_name" not in found:
            prompt = _PROMPT.match(stripped)
            if prompt and prompt.group(1) != "base":
                put("env_name", prompt.group(1))
        if "/envs/" in line:
            env_path = _ENV_PATH.search(line)
            if env_path:
                put("env_prefix", env_path.group(1))
                put("env_name", env_path.group(2))
        if "site-packages" in line and len(frames) < 50:
            for frame in _FRAME.findall(line)[:4]:
                if frame not in frames:
                    frames.append(frame)
    if "driver_cuda" not in found:
        driver = found.get("driver_version") or found.get("glx_driver")
        if isinstance(driver, str):
            try:
                from_table = knowledge().max_cuda_for_driver(driver)
            except UsageError:
                from_table = None
            if from_table is not None:
                found["driver_cuda"] = str(from_table)
                found["driver_source"] = (
                    f"driver {driver} " + ("(glxinfo)" if "driver_version" not in found else "(nvidia-smi)")
                ) + " through the driver table"
                found.setdefault("driver_version", driver)
    found.pop("glx_driver", None)
    return Facts(**found, packages=tuple(packages.values()), build_sms=sms, frames=tuple(frames))  # type: ignore[arg-type]
