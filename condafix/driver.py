"""What CUDA version the installed driver supports, and how we know.

Order: overrides (``--cuda``, ``--driver``, ``CONDA_OVERRIDE_CUDA``), then NVML v2, libcuda
(both in a child process with a timeout), then ``nvidia-smi``. Every attempt is recorded so that
"no driver" is reported with what was tried and why each failed, never as a silent CPU fallback.
Parsing is pure (``parse_*``) and tested on captured outputs; probing does the I/O.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from condafix import runner
from condafix._native_probe import LIBCUDA_CANDIDATES, LIBNVML_EXTRA
from condafix.errors import UsageError
from condafix.knowledge import CudaVersion, knowledge

PROBE_TIMEOUT_ENV = "CONDAFIX_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 30.0
SMI_TIMEOUT = 15.0


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One detection source: did it answer, and what it said or why it failed."""

    source: str
    ok: bool
    detail: str
    cuda: str | None = None
    driver_version: str | None = None
    tried: bool = True


@dataclass(frozen=True)
class DriverInfo:
    """The driver's maximum CUDA version (None: no driver) with its provenance."""

    cuda: str | None
    source: str | None
    driver_version: str | None = None
    gpus: tuple[Gpu, ...] = ()
    cuda_arch: str | None = None
    override: bool = False
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)

    @property
    def cuda_version(self) -> CudaVersion | None:
        return CudaVersion.parse(self.cuda) if self.cuda else None


def min_compute_capability(gpus: tuple[Gpu, ...]) -> str | None:
    """``__cuda_arch``: the lowest compute capability over all GPUs."""
    caps = [CudaVersion.parse(g.compute_capability) for g in gpus if g.compute_capability]
    return str(min(caps)) if caps else None


# ---------------------------------------------------------------- parsing (pure)

_XML_CUDA = re.compile(r"<cuda_version>\s*([^<]*?)\s*</cuda_version>")
_XML_DRIVER = re.compile(r"<driver_version>\s*([^<]*?)\s*</driver_version>")
_XML_GPU = re.compile(r"<gpu\b[^>]*>(.*?)</gpu>", re.S)
_XML_NAME = re.compile(r"<product_name>\s*([^<]*?)\s*</product_name>")
_BANNER = re.compile(
    r"(?:Driver|KMD)\s+Version:\s*(?P<driver>[\d.]+)\s+CUDA(?:\s+UMD)?\s+Version:\s*(?P<cuda>\d+\.\d+|N/A)"
)
_BANNER_GPU = re.compile(r"^\|\s+(?P<index>\d+)\s+(?P<name>\S.*?)\s+(?:On|Off|WDDM|TCC|N/A)\s+\|", re.M)
_SMI_FAILURE = re.compile(r"^(NVIDIA-SMI has failed.*|.*couldn't communicate with the NVIDIA driver.*)$", re.M)


@dataclass(frozen=True)
class SmiReport:
    """What one nvidia-smi output said."""

    cuda: str | None
    driver_version: str | None
    gpus: tuple[Gpu, ...] = ()


def parse_smi_xml(text: str) -> SmiReport:
    """Parse ``nvidia-smi --query -u -x`` or ``-q -x`` XML (what mamba and rattler read)."""
    cuda = _XML_CUDA.search(text)
    driver = _XML_DRIVER.search(text)
    gpus = []
    for index, block in enumerate(_XML_GPU.findall(text)):
        name = _XML_NAME.search(block)
        gpus.append(Gpu(index, name.group(1) if name else "unknown GPU"))
    cuda_text = cuda.group(1) if cuda else None
    return SmiReport(_plausible(cuda_text), driver.group(1) if driver else None, tuple(gpus))


def parse_smi_banner(text: str) -> SmiReport:
    """Parse plain ``nvidia-smi``: both ``Driver Version/CUDA Version`` and ``KMD/CUDA UMD``."""
    match = _BANNER.search(text)
    gpus = tuple(Gpu(int(m["index"]), m["name"]) for m in _BANNER_GPU.finditer(text))
    if not match:
        return SmiReport(None, None, gpus)
    return SmiReport(_plausible(match["cuda"]), match["driver"], gpus)


def parse_smi_query_gpu(text: str) -> tuple[Gpu, ...]:
    """Parse ``--query-gpu=index,name,compute_cap --format=csv,noheader`` lines."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            cap = parts[2] if re.fullmatch(r"\d+\.\d+", parts[2]) else None
            gpus.append(Gpu(int(parts[0]), parts[1], cap))
    return tuple(gpus)


def smi_failure(text: str) -> str | None:
    """The driver-communication failure line nvidia-smi prints when no driver is loaded."""
    match = _SMI_FAILURE.search(text)
    return match.group(1).strip() if match else None


def _plausible(text: str | None) -> str | None:
    if not text or not re.fullmatch(r"\d{1,2}\.\d{1,2}", text):
        return None
    return str(CudaVersion.parse(text))


def decode_cuda(value: Any) -> str | None:
    """Interpret the NVML/libcuda integer; reject values outside 1000..99990 as rattler does."""
    try:
        return str(CudaVersion.from_encoded(int(value)))
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- probing (I/O)


def _probe_timeout(env: Mapping[str, str]) -> float:
    try:
        return float(env.get(PROBE_TIMEOUT_ENV, DEFAULT_PROBE_TIMEOUT))
    except ValueError:
        return DEFAULT_PROBE_TIMEOUT


_NATIVE_NAMES = ("libnvidia-ml.so.1", "libnvidia-ml.so", "libcuda.so.1", "libcuda.so")


def native_libraries_missing(env: Mapping[str, str]) -> str | None:
    """Why NVML/libcuda cannot load, or None if they may: saves the probe child on GPU-less Linux hosts.

    Looks where the dynamic loader would: LD_LIBRARY_PATH, the distro/WSL dirs conda tries, and
    the loader cache. Anything it cannot tell (other OSes, unreadable cache) means "go and probe".
    """
    if not sys.platform.startswith("linux"):
        return None
    dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += [os.path.dirname(p) for p in (*LIBCUDA_CANDIDATES, *LIBNVML_EXTRA) if os.path.isabs(p)]
    if any(os.path.exists(os.path.join(d, name)) for d in dirs for name in _NATIVE_NAMES):
        return None
    try:
        with open("/etc/ld.so.cache", "rb") as cache:
            data = cache.read()
    except OSError:
        return None
    if any(name.encode() in data for name in _NATIVE_NAMES):
        return None
    return "not found (loader cache, LD_LIBRARY_PATH, distro and WSL dirs)"


def probe_native(*, everything: bool, timeout: float) -> dict[str, dict[str, Any]]:
    """Run NVML/libcuda in a child (without CUDA_VISIBLE_DEVICES, as conda does)."""
    argv = [sys.executable, "-m", "condafix._native_probe"] + (["--all"] if everything else [])
    done = runner.run(argv, timeout=timeout, env_overrides={"CUDA_VISIBLE_DEVICES": None})
    failure = done.error or (f"exited with {done.returncode}" if done.returncode else None)
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1]) if not failure else None
    except (json.JSONDecodeError, IndexError):
        data, failure = None, "printed no result"
    if data is None:
        why = f"probe process {failure}"
        return {"nvml": {"error": why}, "libcuda": {"error": why}}
    return dict(data)


def _native_attempt(source: str, raw: dict[str, Any] | None) -> tuple[Attempt, tuple[Gpu, ...]]:
    if raw is None:
        return Attempt(source, False, "not tried (an earlier source answered)", tried=False), ()
    if "error" in raw:
        return Attempt(source, False, str(raw["error"])), ()
    cuda = decode_cuda(raw.get("cuda_encoded"))
    if cuda is None:
        return Attempt(source, False, f"implausible CUDA version {raw.get('cuda_encoded')!r}"), ()
    gpus = tuple(Gpu(int(g["index"]), str(g["name"]), g.get("compute_capability")) for g in raw.get("gpus", []))
    where = raw.get("api") or raw.get("library") or source
    return Attempt(source, True, f"{where} -> {raw['cuda_encoded']}", cuda, raw.get("driver_version")), gpus


def find_nvidia_smi() -> str | None:
    """nvidia-smi on PATH, else where WSL and Windows drivers put it."""
    found = shutil.which("nvidia-smi")
    if found:
        return found
    candidates = ["/usr/lib/wsl/lib/nvidia-smi"]
    if sys.platform == "win32":
        candidates += glob.glob(r"C:\Windows\System32\DriverStore\FileRepository\nv*\nvidia-smi.exe")
    return next((c for c in candidates if os.path.isfile(c)), None)


def probe_smi() -> tuple[Attempt, tuple[Gpu, ...]]:
    """``nvidia-smi --query -u -x``, then the text banner; GPUs from ``--query-gpu``."""
    exe = find_nvidia_smi()
    if exe is None:
        return Attempt("nvidia-smi", False, "nvidia-smi not found on PATH"), ()
    xml = runner.run([exe, "--query", "-u", "-x"], timeout=SMI_TIMEOUT)
    report = parse_smi_xml(xml.stdout)  # parsed even on a non-zero exit, as rattler does
    how = "--query -u -x"
    banner = None
    if report.cuda is None:
        banner = runner.run([exe], timeout=SMI_TIMEOUT)
        report = parse_smi_banner(banner.stdout)
        how = "banner"
    if report.cuda is None:
        texts = [xml.stdout, xml.stderr] + ([banner.stdout, banner.stderr] if banner else [])
        failure = next((f for f in map(smi_failure, texts) if f), None)
        why = failure or xml.error or (banner.error if banner else None) or "printed no CUDA version"
        return Attempt("nvidia-smi", False, why), ()
    query = runner.run([exe, "--query-gpu=index,name,compute_cap", "--format=csv,noheader"], timeout=SMI_TIMEOUT)
    gpus = parse_smi_query_gpu(query.stdout) or report.gpus
    return Attempt("nvidia-smi", True, how, report.cuda, report.driver_version), gpus


# ---------------------------------------------------------------- resolution


def from_overrides(*, cuda: str | None, driver: str | None, env: Mapping[str, str]) -> DriverInfo | None:
    """Apply ``--cuda`` > ``--driver`` > ``CONDA_OVERRIDE_CUDA``; None when none is given."""
    if cuda is not None:
        version = CudaVersion.parse(cuda)
        return DriverInfo(str(version), "--cuda", override=True)
    if driver is not None:
        best = knowledge().max_cuda_for_driver(driver)
        if best is None:
            raise UsageError(f"driver {driver} is older than every CUDA release in the driver table")
        return DriverInfo(str(best), "--driver", driver_version=driver.strip(), override=True)
    if "CONDA_OVERRIDE_CUDA" in env:
        value = env["CONDA_OVERRIDE_CUDA"].strip()
        if not value:  # conda, mamba and pixi: an empty override means "no GPU"
            return DriverInfo(None, "CONDA_OVERRIDE_CUDA", override=True)
        try:
            version = CudaVersion.parse(value)
        except UsageError:
            raise UsageError(f"CONDA_OVERRIDE_CUDA={value!r} is not a CUDA version (expected e.g. 12.4)") from None
        return DriverInfo(str(version), "CONDA_OVERRIDE_CUDA", override=True)
    return None


def detect(
    *,
    cuda: str | None = None,
    driver: str | None = None,
    env: Mapping[str, str] | None = None,
    all_sources: bool = False,
) -> DriverInfo:
    """Resolve the driver's max CUDA: an override, else the first source that answers.

    With ``all_sources`` every source is asked (detection parity), the first still wins.
    """
    env = os.environ if env is None else env
    overridden = from_overrides(cuda=cuda, driver=driver, env=env)
    if overridden is not None:
        return overridden
    missing = native_libraries_missing(env)
    if missing is not None:
        native = {"nvml": {"error": f"libnvidia-ml.so.1 {missing}"}, "libcuda": {"error": f"libcuda.so.1 {missing}"}}
    else:
        native = probe_native(everything=all_sources, timeout=_probe_timeout(env))
    attempts: list[Attempt] = []
    answer: tuple[Attempt, tuple[Gpu, ...]] | None = None
    for source in ("nvml", "libcuda"):
        attempt, gpus = _native_attempt(source, native.get(source))
        attempts.append(attempt)
        if attempt.ok and answer is None:
            answer = (attempt, gpus)
    if answer is None or all_sources or not answer[1]:
        smi, smi_gpus = probe_smi()
        attempts.append(smi)
        if smi.ok and answer is None:
            answer = (smi, smi_gpus)
        elif smi.ok and answer is not None and not answer[1]:
            answer = (answer[0], smi_gpus)
    if answer is None:
        return DriverInfo(None, None, attempts=tuple(attempts))
    hit, gpus = answer
    driver_version = hit.driver_version or next((a.driver_version for a in attempts if a.driver_version), None)
    return DriverInfo(
        hit.cuda,
        hit.source,
        driver_version=driver_version,
        gpus=gpus,
        cuda_arch=min_compute_capability(gpus),
        attempts=tuple(attempts),
    )
