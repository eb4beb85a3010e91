"""Child-process half of driver detection: NVML and libcuda, printed as one JSON line.

It runs in its own process (``python -S .../_native_probe.py``, stdlib only: no condafix import) so
that a hung or crashing driver can only take this child down; the parent applies a timeout (conda does the same).
The child reports raw values; all interpretation happens in ``condafix.detect.driver``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ctypes  # imported where used: driver.py reads the constants below at every start

# conda's order (conda/plugins/virtual_packages/cuda.py): the loader path, then distro and WSL dirs.
LIBCUDA_CANDIDATES = (
    "libcuda.so.1",
    "libcuda.so",
    "/usr/lib64/nvidia/libcuda.so.1",  # Fedora/RHEL rpmfusion, CentOS
    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",  # Debian/Ubuntu multiarch
    "/usr/lib/wsl/lib/libcuda.so.1",  # WSL2
)
LIBNVML_EXTRA = (
    "/usr/lib64/nvidia/libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "/usr/lib/wsl/lib/libnvidia-ml.so.1",
)
if sys.platform == "win32":
    LIBCUDA_CANDIDATES = ("nvcuda.dll",)
    LIBNVML_EXTRA = ()


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def probe_nvml() -> dict[str, Any]:
    """Ask NVML (nvidia-ml-py) for the CUDA version, driver string and every GPU."""
    import ctypes

    try:
        import pynvml
    except ImportError:
        return {"error": "nvidia-ml-py (pynvml) is not installed"}
    errors: list[str] = []
    for extra in (None, *LIBNVML_EXTRA):
        try:
            if extra is not None:
                pynvml.nvmlLib = ctypes.CDLL(extra)  # pynvml loads the default name itself
            pynvml.nvmlInit()
            break
        except (OSError, pynvml.NVMLError) as exc:
            errors.append(f"{extra or 'libnvidia-ml.so.1'}: {_text(exc)}")
    else:
        return {"error": "; ".join(errors[:1]) or "nvmlInit failed"}
    try:
        result: dict[str, Any] = {}
        if hasattr(pynvml, "nvmlSystemGetCudaDriverVersion_v2"):
            result["api"] = "nvmlSystemGetCudaDriverVersion_v2"
            result["cuda_encoded"] = int(pynvml.nvmlSystemGetCudaDriverVersion_v2())
        else:
            result["api"] = "nvmlSystemGetCudaDriverVersion"
            result["cuda_encoded"] = int(pynvml.nvmlSystemGetCudaDriverVersion())
        result["driver_version"] = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpu: dict[str, Any] = {"index": index, "name": _text(pynvml.nvmlDeviceGetName(handle))}
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                gpu["compute_capability"] = f"{major}.{minor}"
            except pynvml.NVMLError:
                gpu["compute_capability"] = None
            gpus.append(gpu)
        result["gpus"] = gpus
        return result
    except pynvml.NVMLError as exc:
        return {"error": _text(exc)}
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def probe_libcuda() -> dict[str, Any]:
    """cuInit(0) then cuDriverGetVersion, trying the library names conda tries."""
    import ctypes

    failures: list[str] = []
    for name in LIBCUDA_CANDIDATES:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            failures.append(name)
            continue
        status = lib.cuInit(0)
        if status != 0:
            return {"error": f"cuInit(0) returned {status} from {name}", "library": name}
        version = ctypes.c_int(0)
        status = lib.cuDriverGetVersion(ctypes.byref(version))
        if status != 0:
            return {"error": f"cuDriverGetVersion returned {status} from {name}", "library": name}
        return {"cuda_encoded": version.value, "library": name, "gpus": _libcuda_devices(lib)}
    return {"error": f"could not load libcuda (tried {', '.join(failures)})"}


def _libcuda_devices(lib: ctypes.CDLL) -> list[dict[str, Any]]:
    """Name and compute capability of each device, as far as libcuda tells them."""
    import ctypes

    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    gpus = []
    for index in range(count.value):
        device = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(device), index) != 0:
            continue
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, 256, device)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76 (cuda.h)
        ok = lib.cuDeviceGetAttribute(ctypes.byref(major), 75, device) == 0
        ok = ok and lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, device) == 0
        gpus.append(
            {
                "index": index,
                "name": name.value.decode(errors="replace"),
                "compute_capability": f"{major.value}.{minor.value}" if ok else None,
            }
        )
    return gpus


def main(argv: list[str]) -> int:
    everything = "--all" in argv
    for arg in argv:  # the parent's import path: run with -S, this process has only the stdlib's
        if arg.startswith("--sys-path="):
            sys.path.extend(p for p in arg.split("=", 1)[1].split(os.pathsep) if p and p not in sys.path)
    out: dict[str, Any] = {"nvml": probe_nvml()}
    if everything or "error" in out["nvml"]:
        out["libcuda"] = probe_libcuda()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
