"""What a paste (or an env) says: every number read becomes a typed fact with its source.

A report holds more than the error line: an nvidia-smi banner, ``-q`` text or XML, CuPy's ``show_config``,
deviceQuery, ``conda info``'s virtual packages, ``conda list`` / ``pip list`` rows, PyTorch's architecture
warning, a prompt with the env's name. Numbers that look alike mean different things: ``Driver Version:
570.133.20`` is the driver, ``CUDA Driver Version: 12080`` is the newest CUDA that driver runs (12.8, encoded
``1000*major + 10*minor``), ``cuDNN Version: 8907`` is cuDNN 8.9.7 and not a CUDA version at all. Each
:class:`Fact` says what it is, the line it came from and the text it was read from; "unknown" is a value
(``CUDA Version: ERR!``). The same type describes an env (:func:`env_facts`), so explain and doctor read
one vocabulary.

Input is bounded and every pattern is linear: lines are cut to ``MAX_LINE`` characters, no pattern nests
quantifiers, gaps are bounded (``{0,N}``), and a pattern runs only on lines holding its keyword.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Final

from condafix.detect.driver import plausible_cuda, plausible_driver, read_banner, read_query_fields, read_xml_fields
from condafix.diagnose.facts_model import (
    MAX_INPUT,
    MAX_LINE,
    UNKNOWN,
    Fact,
    FactKind,
    Facts,
    Package,
    bound,
    cudnn_version,
    encoded_cuda,
    math_lib_version,
    nccl_version,
    package_cuda,
    tracked_package,
)
from condafix.diagnose.facts_model import env_facts as env_facts
from condafix.errors import UsageError
from condafix.knowledge import roles
from condafix.knowledge.cuda import knowledge

__all__ = [
    "MAX_INPUT",
    "MAX_LINE",
    "UNKNOWN",
    "Fact",
    "FactKind",
    "Facts",
    "Package",
    "bound",
    "cudnn_version",
    "encoded_cuda",
    "env_facts",
    "math_lib_version",
    "nccl_version",
    "read",
]


def _sm(digits: str) -> str:
    return f"{int(digits[:-1])}.{digits[-1]}"


# ---------------------------------------------------------------- patterns (linear: no nested quantifiers)

_PTX = re.compile(r"Unsupported \.version (\d{1,2}\.\d{1,2}); current version is '(\d{1,2}\.\d{1,2})'")
_PTXAS_FILE = re.compile(r"ptxas [^\s,]{1,300}, line \d{1,9}; fatal")
_GLX = re.compile(r"NVIDIA (\d{3}\.\d{1,3}(?:\.\d{1,3})?)\b")
_SMI_NAME = re.compile(
    r"^\| {1,4}\d{1,2} {1,4}(NVIDIA [^|]{1,40}?|Tesla [^|]{1,40}?|Quadro [^|]{1,40}?) {2,40}(?:On|Off)"
)
_CUDA_FIELD = re.compile(
    r"CUDA (Driver|Runtime|Build) Version {0,40}[:=] {0,40}(\d{4,5}|\d{1,2}\.\d{1,2}|\(\d{1,2}, \d{1,2}\))(?![\d.])"
)
# PyTorch's collect_env (python -m torch.utils.collect_env), pasted with most PyTorch issues
_COLLECT_ENV = re.compile(r"^(Nvidia driver version|CUDA runtime version|GPU 0|cuDNN version): {1,4}([^\n]{1,200})$")
_LIBCUDNN = re.compile(r"libcudnn(?:_\w{1,30})?\.so\.(\d{1,2}\.\d{1,2}\.\d{1,2})")
_QUERY_GPU = re.compile(r"^((?:NVIDIA|Tesla|Quadro) [^,]{1,60}), (\d{1,2})\.(\d)$")
_TOOL_VERSION = re.compile(
    r"^(CuPy|Pixi|pixi|mamba|micromamba|libmamba|conda|conda-build|numba|numba-cuda|jax|jaxlib|NumPy|Cython Build) "
    r"[Vv]ersion {0,40}: {0,4}(\d{1,4}\.\d{1,4}(?:\.\d{1,6})?)"
)
_CUPY_DEVICE = re.compile(r"^Device \d{1,2} (Name|Compute Capability) {0,40}: {0,4}([^\n]{1,80})$")
_NVVM_BASED = re.compile(r"// Based on NVVM (\d{1,2}\.\d{1,2}\.\d{1,2})")
_WSL_KERNEL = re.compile(r"(\d{1,2}\.\d{1,3}\.\d{1,4}(?:\.\d{1,3})?)-microsoft-standard-WSL2")
_DEVICE_QUERY = re.compile(r"CUDA Driver Version / Runtime Version {1,40}(\d{1,2}\.\d{1,2}) / (\d{1,2}\.\d{1,2})")
_FOUND = re.compile(r"too old \(found version (\d{4,5})\)")
_BINDINGS = re.compile(r"CUDA driver version (\d{4,5}) is not supported")
_XLA = re.compile(
    r"driver's CUDA version is (\d{1,2}\.\d{1,2})(?:\.\d{1,3})? which is older than the "
    r"(?:ptxas CUDA version|PTX compiler version) \((\d{1,2}\.\d{1,2}(?:\.\d{1,3})?)\)"
)
_NVRTC = re.compile(r"NVRTC Version {0,40}: {0,4}\((\d{1,2}), (\d{1,2})\)")
_NVCC_ID = re.compile(r"Cuda compilation tools, release (\d{1,2}\.\d{1,2})")
_PTXAS_VERSION = re.compile(r"You are using ptxas (\d{1,2}\.\d{1,2})")
_TOOL_PATH = re.compile(r"CUDA[\\/]{1,2}v(\d{1,2}\.\d{1,2})[\\/]{1,2}bin[\\/]{1,2}(nvcc|ptxas)")
_LIB_PATH = re.compile(r"/usr/local/cuda-(\d{1,2}\.\d{1,2})/")
_TORCH_VERSION = re.compile(r"(?:PyTorch version: |Torch )(\d[\w.]{0,20}\+cu\d{2,3})")
_TORCH_BUILT = re.compile(r"CUDA used to build PyTorch: (\d{1,2}\.\d{1,2})")
_LIB_FIELD = re.compile(
    r"(cuDNN|cuDNN Build|NCCL|NCCL Build|NCCL Runtime|cuBLAS|cuFFT|cuRAND|cuSPARSE) Version {0,40}: {0,4}(\d{3,6})\b"
)
_NCCL_TEXT = re.compile(r"NCCL version (\d{1,2}\.\d{1,3}\.\d{1,3})")
_CUDNN_PAIR = re.compile(
    r"compiled {1,4}against \((\d{1,2}), (\d{1,2}), (\d{1,2})\) but (?:found runtime version|linked against) "
    r"\((\d{1,2}), (\d{1,2}), (\d{1,2})\)"
)
_CUDNN_OLD_PAIR = re.compile(r"compiled against (\d{4,5}) but linked against (\d{4,5})")
_CUDNN_LOADED = re.compile(
    r"Loaded runtime CuDNN library: (\d{1,2}\.\d{1,2}\.\d{1,2}) but source was compiled with: "
    r"(\d{1,2}\.\d{1,2}\.\d{1,2})"
)
_NVJITLINK_SYMBOL = re.compile(r"undefined symbol: __nvJitLink[A-Za-z]{1,40}_(\d{1,2})_(\d{1,2}), version libnvJitLink")
_TORCH_SM = re.compile(r"(?:(NVIDIA [^\n]{1,60}?|Tesla [^\n]{1,60}?) )?with CUDA capability sm_(\d{2,3})[a-z]? is not")
_TORCH_SMS = re.compile(r"supports CUDA capabilities ((?:sm_\d{2,3}[a-z]? ?){1,40})")
_FOUND_GPU = re.compile(
    r"Found (?:GPU\d{0,2} )?([^\n]{1,60}?) which is (?:of cuda capability|too old to be supported[^\n]{0,160}?"
    r"your device is of CUDA capability) (\d{1,2})\.(\d)"
)
_MIN_SM = re.compile(r"minimum cuda capability supported by this library is (\d{1,2})\.(\d)")
_ARCH_LINE = re.compile(r"Architecture: [A-Za-z]{0,20} ?\(sm_(\d{2,3})[a-z]?\)")
_TARGET = re.compile(
    r"(?:--gpu-architecture[= ]|-arch[= ]|--gpu-name[= ]|Unsupported gpu architecture '|Value ')"
    r"(?:sm|compute)_(\d{2,3})"
)
_CONDA_CUDA = re.compile(r"__cuda(?:=|-| {1,40})(\d{1,2}\.\d{1,2})(?:=0|-0| {1,40}0)?\b")
_LINUX = re.compile(r"__linux=(\d{1,2}\.\d{1,3}(?:\.\d{1,4})?)")
_CONDA_ROW = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,60}) {1,60}(\d[\w.!+]{0,40}) {1,60}(\S{1,80})(?: {1,60}(\S{1,80}))? {0,10}$"
)
_PIP_ROW = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,60})(?:==| {1,60})(\d[\w.!+]{0,40}) {0,10}$")
_NO_NVJITLINK = re.compile(r"nvjitlink is not available, therefore the driver APIs will be used")
_PROMPT = re.compile(r"^\(([A-Za-z0-9_.\-]{1,60})\) {0,4}[\w.\-]{0,40}@?[\w.\-]{0,60}[:~ ]")
_ENV_PATH = re.compile(r"((?:[/\\][\w.\-]{1,80}){0,10}[/\\]envs[/\\]([A-Za-z0-9_.\-]{1,60}))[/\\][Ll]ib[/\\]")
_FRAME = re.compile(r"(?:site|dist)-packages[/\\]([A-Za-z0-9_]{1,60})[/\\]")
_SYSTEM_PYTHON = re.compile(
    r"(?:^|[\s\"'(\[])(?:/usr/local/lib/python|/usr/lib/python|"
    r"[A-Za-z]:\\Users\\[^\\]{1,60}\\AppData\\Local\\Programs\\Python)"
    r"|dist-packages[/\\]"
)
_VENV = re.compile(r"[/\\]\.?venv[/\\]lib[/\\]python")

# ---------------------------------------------------------------- the reader


class _Reader:
    """Collects facts line by line; ``put`` keeps the line number and text of each."""

    def __init__(self) -> None:
        self.items: list[Fact] = []
        self.packages: dict[str, Package] = {}
        self.frames: list[str] = []
        self.flags: set[str] = set()
        self.number = 0
        self.text = ""

    def put(
        self, kind: FactKind, value: str | None, source: str, *, name: str | None = None, raw: str | None = None
    ) -> None:
        if value is not None:
            fact = Fact(
                kind=kind, value=value, source=source, line=self.number, text=self.text[:300], name=name, raw=raw
            )
            same = any(f.kind == kind and f.value == value and f.line == self.number for f in self.items)
            if not same and len(self.items) < 400:
                self.items.append(fact)


_Rule = Callable[[_Reader, str], None]


def _ptx(r: _Reader, line: str) -> None:
    match = _PTX.search(line)
    if not match:
        return
    if "ptx input" in line or "cuLink" in line or "cuModule" in line:
        who = "the driver's JIT (ptxas application ptx input)"
    elif _PTXAS_FILE.search(line):
        who = "a ptxas binary (it names a file)"
    else:
        who = "a PTX assembler's log"
    r.put("ptx_isa", match.group(1), f"the PTX that {who} was given")
    r.put("accepted_ptx", match.group(2), who)


def _smi(r: _Reader, line: str) -> None:
    banner = read_banner(line)
    if banner:
        driver, cuda = banner
        source = "nvidia-smi banner" if "NVIDIA-SMI" in line or "CUDA" in line else "a 'Driver Version:' field"
        r.put("driver_version", driver, source)
        if cuda in ("ERR!", "N/A"):
            r.put("driver_cuda", UNKNOWN, "nvidia-smi banner", raw=cuda)
            r.flags.add("smi_error")
        elif cuda:
            r.put("driver_cuda", plausible_cuda(cuda), "nvidia-smi banner")
    for key, value in read_query_fields(line):
        if key == "Driver Version":
            r.put("driver_version", plausible_driver(value), "nvidia-smi -q")
        elif key == "CUDA Version":
            r.put("driver_cuda", plausible_cuda(value), "nvidia-smi -q")


def _fields(r: _Reader, line: str) -> None:
    field = _CUDA_FIELD.search(line)
    if field:
        kinds: dict[str, FactKind] = {"Driver": "driver_cuda", "Runtime": "runtime_cuda", "Build": "build_cuda"}
        kind = kinds[field.group(1)]
        value = field.group(2)
        if value.startswith("("):
            major, minor = value.strip("()").split(", ")
            decoded: str | None = f"{int(major)}.{int(minor)}"
        else:
            decoded = value if "." in value else encoded_cuda(value)
        raw = None if "." in value else value
        r.put(kind, decoded, f"a 'CUDA {field.group(1)} Version' field", raw=raw)
    query = _DEVICE_QUERY.search(line)
    if query:
        r.put("driver_cuda", query.group(1), "deviceQuery's 'CUDA Driver Version / Runtime Version'")
        r.put("runtime_cuda", query.group(2), "deviceQuery's 'CUDA Driver Version / Runtime Version'")


def _collect_env(r: _Reader, line: str) -> None:
    """PyTorch's collect_env, ``nvidia-smi --query-gpu=name,compute_cap``, a PTX header, a WSL kernel."""
    stripped = line.strip()
    field = _COLLECT_ENV.match(stripped)
    if field:
        label, value = field.groups()
        source = "PyTorch's collect_env"
        if label == "Nvidia driver version" and re.fullmatch(r"\d{2,4}(?:\.\d{1,3}){1,2}", value.strip()):
            r.put("driver_version", value.strip(), source)
        elif label == "CUDA runtime version":
            r.put("runtime_cuda", plausible_cuda(value.strip()), source)
        elif label == "GPU 0":
            r.put("gpu_name", value.strip(), source)
        else:
            cudnn = _LIBCUDNN.search(value)
            r.put("library", cudnn.group(1) if cudnn else None, source, name="cuDNN")
    query = _QUERY_GPU.match(stripped)
    if query:
        r.put("gpu_name", query.group(1).strip(), "nvidia-smi --query-gpu=name,compute_cap")
        r.put("gpu_sm", f"{query.group(2)}.{query.group(3)}", "nvidia-smi --query-gpu=name,compute_cap")
    device = _CUPY_DEVICE.match(stripped)
    if device:
        label, value = device.groups()
        if label == "Name":
            r.put("gpu_name", value.strip(), "CuPy show_config")
        elif re.fullmatch(r"\d{2,3}", value.strip()):
            r.put("gpu_sm", _sm(value.strip()), "CuPy show_config", raw=value.strip())
    tool = _TOOL_VERSION.match(stripped)
    if tool:
        r.put(
            "tool", tool.group(2), "the tool's own version (not CUDA's, not the driver's)", name=tool.group(1).lower()
        )
    nvvm = _NVVM_BASED.search(line)
    if nvvm:
        r.put("library", nvvm.group(1), "the PTX header (NVVM's own version, not CUDA's)", name="NVVM")
    wsl = _WSL_KERNEL.search(line)
    if wsl:
        r.put("platform", wsl.group(1), "a WSL 2 kernel version (not CUDA)", name="wsl kernel")


def _encoded(r: _Reader, line: str) -> None:
    found = _FOUND.search(line)
    if found:
        r.put(
            "driver_cuda",
            encoded_cuda(found.group(1)),
            "PyTorch's 'found version' (the driver's CUDA)",
            raw=found.group(1),
        )
    bindings = _BINDINGS.search(line)
    if bindings:
        r.put("driver_cuda", encoded_cuda(bindings.group(1)), "cuda-bindings' driver check", raw=bindings.group(1))


def _xla(r: _Reader, line: str) -> None:
    match = _XLA.search(line)
    if match:
        r.put("driver_cuda", match.group(1), "XLA's ptxas warning")
        r.put("ptxas_cuda", match.group(2), "XLA's ptxas warning")


def _tools(r: _Reader, line: str) -> None:
    for pattern, kind, source in (
        (_NVCC_ID, "toolkit_cuda", "nvcc/ptxas --version"),
        (_PTXAS_VERSION, "ptxas_cuda", "XLA's ptxas check"),
        (_TORCH_BUILT, "build_cuda", "PyTorch's collect_env"),
    ):
        match = pattern.search(line)
        if match:
            r.put(kind, match.group(1), source)  # type: ignore[arg-type]
    nvrtc = _NVRTC.search(line)
    if nvrtc:
        r.put("nvrtc_cuda", f"{int(nvrtc.group(1))}.{int(nvrtc.group(2))}", "NVRTC Version field")
    tool = _TOOL_PATH.search(line)
    if tool:
        r.put("toolkit_cuda", tool.group(1), f"the path of {tool.group(2)}", name=tool.group(2))
    lib = _LIB_PATH.search(line)
    if lib:
        r.put("toolkit_cuda", lib.group(1), "a /usr/local/cuda-X.Y path (a toolkit outside the env)")
    torch = _TORCH_VERSION.search(line)
    if torch:
        r.put("build_cuda", roles.cuda_of_local_version(torch.group(1)), f"PyTorch {torch.group(1)}", name="torch")


def _libraries(r: _Reader, line: str) -> None:
    for match in _LIB_FIELD.finditer(line):
        label, raw = match.group(1), match.group(2)
        name = label.split()[0]
        decode = cudnn_version if name == "cuDNN" else nccl_version if name == "NCCL" else math_lib_version
        r.put("library", decode(raw), f"a '{label} Version' field (its own version, not CUDA's)", name=name, raw=raw)
    nccl = _NCCL_TEXT.search(line)
    if nccl:
        r.put("library", nccl.group(1), "NCCL's own version (not CUDA's)", name="NCCL")
    pair = _CUDNN_PAIR.search(line)
    if pair:
        r.put(
            "library", ".".join(pair.groups()[:3]), "the framework's cuDNN check (compiled against)", name="cuDNN build"
        )
        r.put("library", ".".join(pair.groups()[3:]), "the framework's cuDNN check (loaded)", name="cuDNN")
    old = _CUDNN_OLD_PAIR.search(line)
    if old:
        r.put("library", cudnn_version(old.group(1)), "PyTorch's cuDNN check (compiled against)", name="cuDNN build")
        r.put("library", cudnn_version(old.group(2)), "PyTorch's cuDNN check (loaded)", name="cuDNN")
    loaded = _CUDNN_LOADED.search(line)
    if loaded:
        r.put("library", loaded.group(2), "XLA/TensorFlow's cuDNN check (compiled with)", name="cuDNN build")
        r.put("library", loaded.group(1), "XLA/TensorFlow's cuDNN check (loaded)", name="cuDNN")
    symbol = _NVJITLINK_SYMBOL.search(line)
    if symbol:
        need = f"{int(symbol.group(1))}.{int(symbol.group(2))}"
        r.put(
            "library", need, "an undefined versioned nvJitLink symbol (the nvJitLink it needs)", name="nvJitLink needed"
        )


def _gpu(r: _Reader, line: str) -> None:
    torch = _TORCH_SM.search(line)
    if torch:
        if torch.group(1):
            r.put("gpu_name", torch.group(1).strip(), "PyTorch's architecture warning")
        r.put("gpu_sm", _sm(torch.group(2)), "PyTorch's architecture warning")
    listed = _TORCH_SMS.search(line)
    if listed:
        for sm in listed.group(1).split():
            r.put("build_sm", _sm(sm[3:].rstrip("abcdefghijklmnopqrstuvwxyz")), "PyTorch's architecture list")
    found = _FOUND_GPU.search(line)
    if found:
        r.put("gpu_name", found.group(1).strip(), "PyTorch's minimum-capability warning")
        r.put("gpu_sm", f"{found.group(2)}.{found.group(3)}", "PyTorch's minimum-capability warning")
    minimum = _MIN_SM.search(line)
    if minimum:
        r.put("min_sm", f"{minimum.group(1)}.{minimum.group(2)}", "the build's minimum compute capability")
    arch = _ARCH_LINE.search(line)
    if arch:
        r.put("gpu_sm", _sm(arch.group(1)), "an 'Architecture: (sm_XY)' line")
    for target in _TARGET.finditer(line):
        said = target.group(0)
        source = (
            "nvcc's refusal" if "Unsupported" in said else "ptxas's refusal" if "Value" in said else "an -arch option"
        )
        r.put("target_sm", _sm(target.group(1)), source)
    name = _SMI_NAME.search(line) if line.startswith("|") else None
    if name:
        r.put("gpu_name", name.group(1).strip(), "nvidia-smi")


def _context(r: _Reader, line: str) -> None:
    stripped = line.strip()
    if "__cuda" in line:
        conda = _CONDA_CUDA.search(line)
        if conda:
            r.put("conda_cuda", plausible_cuda(conda.group(1)), "the __cuda virtual package")
    if "__linux=" in line:
        linux = _LINUX.search(line)
        if linux:
            r.put("platform", linux.group(1), "the __linux virtual package (the OS kernel, not CUDA)", name="linux")
    if "/usr/lib/wsl/lib" in line:
        r.put("platform", "wsl", "a /usr/lib/wsl/lib path", name="wsl")
    if stripped.startswith("("):
        prompt = _PROMPT.match(stripped)
        if prompt and prompt.group(1) != "base":
            r.put("env_name", prompt.group(1), "the shell prompt")
    if "envs" in line:
        env_path = _ENV_PATH.search(line)
        if env_path:
            r.put("env_prefix", env_path.group(1), "a path inside the env")
            r.put("env_name", env_path.group(2), "a path inside the env")
            r.put("manager", "conda", "an .../envs/NAME path")
    if "venv" in line and _VENV.search(line):
        r.put("manager", "pip", "a virtualenv path (.venv/lib/python)")
    if "-packages" in line and _SYSTEM_PYTHON.search(line):
        r.put("manager", "pip", "a system Python's packages (pip, no conda env)")
    if "Conda not available" in line:
        r.put("manager", "pip", "numba -s: conda not available")
    if "libmamba" in line or "Encountered problems while solving" in line:
        r.put("manager", "mamba", "a libmamba message")
    if "╰─▶" in line or "pixi " in line:
        r.put("manager", "pixi", "pixi's message layout")
    if "nvjitlink is not available" in line and _NO_NVJITLINK.search(line):
        r.flags.add("nvjitlink_missing")
    if "-packages" in line and len(r.frames) < 50:
        for frame in _FRAME.findall(line)[:4]:
            if frame not in r.frames:
                r.frames.append(frame)


def _rows(r: _Reader, line: str) -> None:
    stripped = line.strip()
    row = _CONDA_ROW.match(stripped) or _PIP_ROW.match(stripped)
    if not row:
        return
    name = row.group(1).lower().replace("_", "-")
    if tracked_package(name) and name not in r.packages:
        version = row.group(2)
        build = row.group(3) if row.re is _CONDA_ROW else ""
        cuda = package_cuda(name, version, build)
        r.packages[name] = Package(name=name, version=version, build=build, cuda=cuda)
        source = "a conda list row" if row.re is _CONDA_ROW else "a pip list row"
        r.put("package", version, source, name=name)


# (keyword that must be on the line, rule): a rule runs only where its keyword is
_RULES: Final[tuple[tuple[str, _Rule], ...]] = (
    ("Unsupported .version", _ptx),
    ("Version", _smi),
    ("CUDA", _fields),
    ("version", _encoded),
    ("", _collect_env),
    ("driver's CUDA", _xla),
    ("", _tools),
    ("", _libraries),
    ("", _gpu),
    ("", _context),
    ("", _rows),
)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    yield from enumerate(bound(text).splitlines(), start=1)


def read(text: str) -> Facts:
    """Every fact in a (bounded) paste, each with its line; the scalar fields take the first known one."""
    r = _Reader()
    glx: str | None = None
    for number, line in _lines(text):
        r.number, r.text = number, line.strip()
        for keyword, rule in _RULES:
            if not keyword or keyword in line:
                rule(r, line)
        if "_version>" in line:
            for key, value in read_xml_fields(line):
                if key == "driver_version":
                    r.put("driver_version", plausible_driver(value), "nvidia-smi XML")
                else:
                    r.put("driver_cuda", plausible_cuda(value), "nvidia-smi XML")
        if "OpenGL" in line and "NVIDIA" in line and glx is None:
            match = _GLX.search(line)
            glx = match.group(1) if match else None
            if glx:
                r.put("driver_version", glx, "glxinfo")
    return _facts(r)


def _facts(r: _Reader) -> Facts:
    made = Facts(items=tuple(r.items))
    driver = made.first("driver_version")
    cuda = made.first("driver_cuda")
    items = list(r.items)
    if cuda is None and driver is not None:
        try:
            from_table = knowledge().max_cuda_for_driver(driver.value)
        except UsageError:
            from_table = None
        if from_table is not None:
            cuda = Fact(
                kind="driver_cuda",
                value=str(from_table),
                source=f"driver {driver.value} ({driver.source}) through the driver table",
                line=driver.line,
                text=driver.text,
            )
            items.append(cuda)
    ptx, accepted = made.first("ptx_isa"), made.first("accepted_ptx")
    sms = tuple(f.value for f in made.all("build_sm"))
    return Facts(
        ptx=ptx.value if ptx else None,
        accepted_ptx=accepted.value if accepted else None,
        ptx_line=ptx.text if ptx else None,
        driver_version=driver.value if driver else None,
        driver_cuda=cuda.value if cuda else None,
        driver_source=cuda.source if cuda else None,
        smi_error="smi_error" in r.flags,
        conda_cuda=_value(made, "conda_cuda"),
        packages=tuple(r.packages.values()),
        gpu_sm=_value(made, "gpu_sm"),
        gpu_name=_value(made, "gpu_name"),
        build_sms=sms,
        ptxas_version=_value(made, "ptxas_cuda"),
        nvjitlink_missing="nvjitlink_missing" in r.flags,
        env_name=_value(made, "env_name"),
        env_prefix=_value(made, "env_prefix"),
        frames=tuple(r.frames),
        items=tuple(items),
    )


def _value(facts: Facts, kind: FactKind) -> str | None:
    found = facts.first(kind)
    return found.value if found else None
