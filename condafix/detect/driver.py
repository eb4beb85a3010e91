"""What CUDA version the installed driver supports, and how we know.

Order: overrides (``--cuda``, ``--driver``, ``CONDA_OVERRIDE_CUDA``), then NVML v2, libcuda
(both in a child process with a timeout), then ``nvidia-smi``. Every attempt is recorded so that
"no driver" is reported with what was tried and why each failed, never as a silent CPU fallback.
Parsing is pure (``parse_*``) and tested on captured outputs; probing does the I/O.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from condafix import runner
from condafix.detect._native_probe import LIBCUDA_CANDIDATES, LIBNVML_EXTRA
from condafix.errors import UsageError
from condafix.knowledge.cuda import CudaVersion, knowledge

PROBE_TIMEOUT_ENV = "CONDAFIX_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 30.0
SMI_TIMEOUT = 15.0  # one budget for every nvidia-smi call of a detection, not per call
MAX_SMI_OUTPUT = 1 << 20  # parse at most 1 MiB of any nvidia-smi output


@dataclass(frozen=True, kw_only=True)
class Gpu:
    index: int
    name: str
    compute_capability: str | None = None


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One detection source: did it answer, and what it said or why it failed."""

    source: str
    ok: bool
    detail: str
    cuda: str | None = None
    driver_version: str | None = None
    tried: bool = True


@dataclass(frozen=True, kw_only=True)
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

_XML_NAME = re.compile(r"<product_name>\s{0,20}([^<]{0,200}?)\s{0,20}</product_name>")
# nvidia-smi's fields, read by one set of patterns for live detection and for pasted reports
# (diagnose.facts reads a paste line by line with the same ones). The banner's "Driver Version" is never
# the one inside "CUDA Driver Version: 12080" (a benchmark tool's encoded CUDA, 12.8) and always has a dot.
_BANNER = re.compile(
    r"(?<!CUDA )(?:Driver|KMD) {1,4}Version: {0,8}(?P<driver>\d{2,4}(?:\.\d{1,3}){1,2})(?![\d])"
    r"(?: {1,60}CUDA(?: UMD)? {1,4}Version: {0,8}(?P<cuda>\d{1,2}\.\d{1,2}|N/A|ERR!))?"
)
_XML_FIELD = re.compile(r"<(?P<key>driver_version|cuda_version)>\s{0,20}(?P<value>[^<]{0,40}?)\s{0,20}</(?P=key)>")
_BANNER_GPU = re.compile(
    r"^\| {1,6}(?P<index>\d{1,3}) {1,6}(?P<name>[A-Za-z][^|]{0,60}?) {1,60}(?:On|Off|WDDM|TCC|N/A) {1,10}\|", re.M
)
_SMI_FAILURE = re.compile(
    r"^(NVIDIA-SMI has failed[^\n]{0,300}|[^\n]{0,300}couldn't communicate with the NVIDIA driver[^\n]{0,300})$", re.M
)
_DRIVER_NUMBER = re.compile(r"\d{2,4}(?:\.\d{1,3}){1,2}")
_CUDA_FIELD = re.compile(r"\d{1,2}\.\d{1,2}")
_Q_FIELD = re.compile(r"^ {0,12}(Driver Version|CUDA Version|Product Name) {0,80}: {0,4}([^\n]{0,200}?) {0,20}$", re.M)


@dataclass(frozen=True, kw_only=True)
class SmiReport:
    """What one nvidia-smi output said."""

    cuda: str | None
    driver_version: str | None
    gpus: tuple[Gpu, ...] = ()


def _xml_gpu_blocks(text: str) -> list[str]:
    """The ``<gpu ...>...</gpu>`` blocks, found with str.find: linear even for 100 KB of open tags."""
    blocks: list[str] = []
    position = 0
    while len(blocks) < 64:
        start = text.find("<gpu", position)
        if start < 0:
            break
        after = text[start + 4 : start + 5]
        if after not in (">", " ", "\t", "\n"):
            position = start + 4
            continue
        end = text.find("</gpu>", start)
        if end < 0:
            break
        blocks.append(text[start:end])
        position = end + 6
    return blocks


def plausible_cuda(text: str | None) -> str | None:
    """``MAJOR.MINOR`` (a patch is dropped) when it can be a CUDA version (major 2..20), else None."""
    if not text:
        return None
    try:
        version = CudaVersion.parse(text)
    except UsageError:
        return None
    return str(version) if 2 <= version.major <= 20 else None


def plausible_driver(text: str | None) -> str | None:
    """An NVIDIA driver version as nvidia-smi prints it (``570.133.20``, ``552.12``), else None (``N/A``)."""
    value = (text or "").strip()
    return value if _DRIVER_NUMBER.fullmatch(value) else None


def read_banner(text: str) -> tuple[str, str | None] | None:
    """The banner's driver version and its CUDA field as printed (``12.4``, ``N/A``, ``ERR!``, None: absent)."""
    match = _BANNER.search(text)
    return (match["driver"], match["cuda"]) if match else None


def read_query_fields(text: str) -> Iterator[tuple[str, str]]:
    """``nvidia-smi -q`` text fields: (``Driver Version`` | ``CUDA Version`` | ``Product Name``, value)."""
    for match in _Q_FIELD.finditer(text):
        yield match.group(1), match.group(2).strip()


def read_xml_fields(text: str) -> Iterator[tuple[str, str]]:
    """``nvidia-smi -q -x`` fields: (``driver_version`` | ``cuda_version``, value)."""
    for match in _XML_FIELD.finditer(text):
        yield match["key"], match["value"]


def _first(fields: Iterator[tuple[str, str]], key: str) -> str | None:
    return next((value for name, value in fields if name == key), None)


def parse_smi_xml(text: str) -> SmiReport:
    """Parse ``nvidia-smi --query -u -x`` or ``-q -x`` XML (what mamba and rattler read)."""
    text = text[:MAX_SMI_OUTPUT]
    gpus = []
    for index, block in enumerate(_xml_gpu_blocks(text)):
        name = _XML_NAME.search(block)
        gpus.append(Gpu(index=index, name=name.group(1) if name else "unknown GPU"))
    return SmiReport(
        cuda=_exact_cuda(_first(read_xml_fields(text), "cuda_version")),
        driver_version=plausible_driver(_first(read_xml_fields(text), "driver_version")),
        gpus=tuple(gpus),
    )


def parse_smi_banner(text: str) -> SmiReport:
    """Parse plain ``nvidia-smi``: ``Driver Version/CUDA Version`` and ``KMD/CUDA UMD``.

    GPU rows come from the table above the ``Processes:`` section only: process rows (Windows lists
    ``C+G`` ones with ``N/A`` columns) are not GPUs.
    """
    text = text[:MAX_SMI_OUTPUT]
    banner = read_banner(text)
    table = text.split("Processes:", 1)[0]
    gpus = tuple(
        Gpu(index=int(m["index"]), name=m["name"])
        for m in _BANNER_GPU.finditer(table)
        if not m["name"].startswith("N/A")
    )[:64]
    if banner is None:
        return SmiReport(cuda=None, driver_version=None, gpus=gpus)
    return SmiReport(cuda=_exact_cuda(banner[1]), driver_version=banner[0], gpus=gpus)


def parse_smi_query_text(text: str) -> SmiReport:
    """Parse ``nvidia-smi -q`` text: ``Driver Version : ...``, ``CUDA Version : ...``, one Product Name a GPU."""
    text = text[:MAX_SMI_OUTPUT]
    cuda = driver = None
    names: list[str] = []
    for key, value in read_query_fields(text):
        if key == "Driver Version" and driver is None:
            driver = value
        elif key == "CUDA Version" and cuda is None:
            cuda = value
        elif key == "Product Name" and len(names) < 64:
            names.append(value)
    return SmiReport(
        cuda=_exact_cuda(cuda),
        driver_version=plausible_driver(driver),
        gpus=tuple(Gpu(index=i, name=n) for i, n in enumerate(names)),
    )


def parse_smi_query_gpu(text: str) -> tuple[Gpu, ...]:
    """Parse ``--query-gpu=index,name,compute_cap --format=csv,noheader`` lines."""
    gpus = []
    for line in text[:MAX_SMI_OUTPUT].splitlines()[:64]:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            cap = parts[2] if re.fullmatch(r"\d+\.\d+", parts[2]) else None
            gpus.append(Gpu(index=int(parts[0]), name=parts[1], compute_capability=cap))
    return tuple(gpus)


def smi_failure(text: str) -> str | None:
    """The driver-communication failure line nvidia-smi prints when no driver is loaded."""
    match = _SMI_FAILURE.search(text[:MAX_SMI_OUTPUT])
    return match.group(1).strip() if match else None


def _exact_cuda(text: str | None) -> str | None:
    """nvidia-smi's own CUDA field: exactly ``MAJOR.MINOR`` (``N/A``, ``ERR!`` and anything else: None)."""
    return plausible_cuda(text) if text and _CUDA_FIELD.fullmatch(text) else None


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
    """Run NVML/libcuda in a child (without CUDA_VISIBLE_DEVICES, as conda does).

    The child starts bare, as conda's ``__cuda`` probe does since conda#16392: ``-S`` (no site, no
    .pth files, no editable finders) and the probe file by path (no condafix package), with this
    process's ``sys.path`` handed over so that nvidia-ml-py is found where it is installed.
    """
    import condafix.detect._native_probe as child

    here = os.pathsep.join(p for p in sys.path if p)
    argv = [sys.executable, "-S", child.__file__, f"--sys-path={here}"] + (["--all"] if everything else [])
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
        return Attempt(source=source, ok=False, detail="not tried (an earlier source answered)", tried=False), ()
    if "error" in raw:
        return Attempt(source=source, ok=False, detail=str(raw["error"])), ()
    cuda = decode_cuda(raw.get("cuda_encoded"))
    if cuda is None:
        return Attempt(source=source, ok=False, detail=f"implausible CUDA version {raw.get('cuda_encoded')!r}"), ()
    gpus = tuple(
        Gpu(index=int(g["index"]), name=str(g["name"]), compute_capability=g.get("compute_capability"))
        for g in raw.get("gpus", [])
    )
    where = raw.get("api") or raw.get("library") or source
    return Attempt(
        source=source,
        ok=True,
        detail=f"{where} -> {raw['cuda_encoded']}",
        cuda=cuda,
        driver_version=raw.get("driver_version"),
    ), gpus


def _which(name: str) -> str | None:
    """``shutil.which`` without importing shutil (it loads zlib, bz2 and lzma) off Windows."""
    if sys.platform == "win32":
        import shutil

        return shutil.which(name)
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_nvidia_smi() -> str | None:
    """nvidia-smi on PATH, else where WSL and Windows drivers put it."""
    found = _which("nvidia-smi")
    if found:
        return found
    candidates = ["/usr/lib/wsl/lib/nvidia-smi"]
    if sys.platform == "win32":
        import glob

        candidates += glob.glob(r"C:\Windows\System32\DriverStore\FileRepository\nv*\nvidia-smi.exe")
    return next((c for c in candidates if os.path.isfile(c)), None)


def _cuda_from_table(driver_version: str | None) -> str | None:
    if not driver_version:
        return None
    try:
        found = knowledge().max_cuda_for_driver(driver_version)
    except UsageError:
        return None
    return str(found) if found else None


def probe_smi() -> tuple[Attempt, tuple[Gpu, ...]]:
    """``nvidia-smi --query -u -x``, then ``-q``/the banner; GPUs from ``--query-gpu``.

    One time budget (SMI_TIMEOUT) covers every call, so a hung nvidia-smi costs it once. A driver
    that prints its version but no CUDA version (``N/A``, ``ERR!``, an old banner) gets its CUDA
    from the driver table instead of being reported as no driver.
    """
    exe = find_nvidia_smi()
    if exe is None:
        return Attempt(source="nvidia-smi", ok=False, detail="nvidia-smi not found on PATH"), ()
    deadline = time.monotonic() + SMI_TIMEOUT

    def call(*args: str) -> runner.RunResult | None:
        left = deadline - time.monotonic()
        return runner.run([exe, *args], timeout=left) if left > 0.05 else None

    outputs: list[runner.RunResult] = []
    xml = call("--query", "-u", "-x")
    report = (
        parse_smi_xml(xml.stdout) if xml else SmiReport(cuda=None, driver_version=None)
    )  # parsed on a non-zero exit too
    how = "--query -u -x"
    outputs += [xml] if xml else []
    if report.cuda is None:
        banner = call()
        outputs += [banner] if banner else []
        if banner is not None:
            shown = parse_smi_banner(banner.stdout)
            query = parse_smi_query_text(banner.stdout)
            report = SmiReport(
                cuda=shown.cuda or query.cuda or report.cuda,
                driver_version=shown.driver_version or query.driver_version or report.driver_version,
                gpus=shown.gpus or query.gpus or report.gpus,
            )
            how = "banner"
    if report.cuda is None and report.driver_version:
        from_table = _cuda_from_table(report.driver_version)
        if from_table is not None:
            how = f"driver {report.driver_version} printed no CUDA version: CUDA {from_table} from the driver table"
            report = SmiReport(cuda=from_table, driver_version=report.driver_version, gpus=report.gpus)
    if report.cuda is None:
        texts = [t for o in outputs for t in (o.stdout, o.stderr)]
        failure = next((f for f in map(smi_failure, texts) if f), None)
        errors = [o.error for o in outputs if o.error]
        timed_out = f"timed out ({SMI_TIMEOUT:g} s for all nvidia-smi calls)" if len(outputs) < 2 else None
        why = failure or (errors[0] if errors else None) or timed_out or "printed no CUDA version"
        return Attempt(source="nvidia-smi", ok=False, detail=why), ()
    query_gpu = call("--query-gpu=index,name,compute_cap", "--format=csv,noheader")
    gpus = (parse_smi_query_gpu(query_gpu.stdout) if query_gpu else ()) or report.gpus
    return Attempt(
        source="nvidia-smi", ok=True, detail=how, cuda=report.cuda, driver_version=report.driver_version
    ), gpus


# ---------------------------------------------------------------- resolution


def from_overrides(*, cuda: str | None, driver: str | None, env: Mapping[str, str]) -> DriverInfo | None:
    """Apply ``--cuda`` > ``--driver`` > ``CONDA_OVERRIDE_CUDA``; None when none is given."""
    if cuda is not None:
        version = CudaVersion.parse(cuda)
        return DriverInfo(cuda=str(version), source="--cuda", override=True)
    if driver is not None:
        best = knowledge().cuda_for_known_driver(driver)  # a branch outside the table: one line, exit 2
        return DriverInfo(cuda=str(best), source="--driver", driver_version=driver.strip(), override=True)
    if "CONDA_OVERRIDE_CUDA" in env:
        value = env["CONDA_OVERRIDE_CUDA"].strip()
        if not value:  # conda, mamba and pixi: an empty override means "no GPU"
            return DriverInfo(cuda=None, source="CONDA_OVERRIDE_CUDA", override=True)
        try:
            version = CudaVersion.parse(value)
        except UsageError:
            raise UsageError(f"CONDA_OVERRIDE_CUDA={value!r} is not a CUDA version (expected e.g. 12.4)") from None
        return DriverInfo(cuda=str(version), source="CONDA_OVERRIDE_CUDA", override=True)
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
        return DriverInfo(cuda=None, source=None, attempts=tuple(attempts))
    hit, gpus = answer
    driver_version = hit.driver_version or next((a.driver_version for a in attempts if a.driver_version), None)
    return DriverInfo(
        cuda=hit.cuda,
        source=hit.source,
        driver_version=driver_version,
        gpus=gpus,
        cuda_arch=min_compute_capability(gpus),
        attempts=tuple(attempts),
    )
