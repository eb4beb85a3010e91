"""GPU matrix for issue 13: which compile path turns a kernel's PTX into machine code, and when it fails.

Two halves, one file, stdlib + ctypes only (the numba-cuda and CuPy cells run their own snippets):

``prepare LIBDIR... OUT`` (no GPU needed): compile one NVVM IR kernel with each carried libNVVM to
PTX and to LTO-IR for sm_90, and write them to OUT as ``nvvm-<ver>.ptx`` / ``.ltoir``.

``run CARRY OUT`` (on the GPU machine): for every artifact and every nvJitLink library, link with
nvJitLink, load the cubin, launch it and check what it wrote; load every PTX with the driver's own
JIT; then numba-cuda cells (NVVM x nvJitLink x debug, and without nvJitLink) and CuPy RawKernel
cells with a newer NVRTC, each in a child process with the library files swapped in. Writes one JSON
per part to OUT; tests/test_compilepath.py replays them against condafix's compile-path verdict.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

LAYOUT = (
    "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64"
    "-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
)
IR = """target datalayout = "{layout}"
target triple = "nvptx64-nvidia-cuda"

define void @condafix_probe(i32* %p) {{
entry:
  store i32 42, i32* %p, align 4
  ret void
}}

!nvvm.annotations = !{{!0}}
!0 = !{{void (i32*)* @condafix_probe, !"kernel", i32 1}}
!nvvmir.version = !{{!1}}
!1 = !{{i32 {a}, i32 {b}}}
"""
KEEP = (
    "@llvm.used = appending global [1 x i8*] [i8* bitcast (void (i32*)* @condafix_probe to i8*)], "
    'section "llvm.metadata"\n'
)
NVJITLINK_INPUT_PTX, NVJITLINK_INPUT_LTOIR = 2, 3
NVJITLINK_RESULTS = {
    0: "SUCCESS",
    1: "ERROR_UNRECOGNIZED_OPTION",
    2: "ERROR_MISSING_ARCH",
    3: "ERROR_INVALID_INPUT",
    4: "ERROR_PTX_COMPILE",
    5: "ERROR_NVVM_COMPILE",
    6: "ERROR_INTERNAL",
    7: "ERROR_THREADPOOL",
    8: "ERROR_UNRECOGNIZED_INPUT",
    9: "ERROR_FINALIZE",
    10: "ERROR_NULL_INPUT",
    11: "ERROR_INCOMPATIBLE_OPTIONS",
    12: "ERROR_INCORRECT_INPUT_TYPE",
    13: "ERROR_ARCH_MISMATCH",
    14: "ERROR_OUTDATED_LIBRARY",
    15: "ERROR_MISSING_FATBIN",
}


# ---------------------------------------------------------------- prepare (no GPU)


def nvvm_compile(library: str, arch: str, lto: bool) -> tuple[bytes, str]:
    nvvm = ctypes.CDLL(library)
    ir = [ctypes.c_int() for _ in range(4)]
    nvvm.nvvmIRVersion(*(ctypes.byref(x) for x in ir))
    text = IR.format(layout=LAYOUT, a=ir[0].value, b=ir[1].value)
    if lto:  # without @llvm.used, link-time optimisation drops the kernel: nothing references it
        text = text.replace("!nvvmir.version", KEEP + "!nvvmir.version", 1)
    source = text.encode()
    prog = ctypes.c_void_p()
    nvvm.nvvmCreateProgram(ctypes.byref(prog))
    nvvm.nvvmAddModuleToProgram(prog, source, ctypes.c_size_t(len(source)), b"k")
    opts = [f"-arch=compute_{arch}".encode()] + ([b"-gen-lto"] if lto else [])
    arr = (ctypes.c_char_p * len(opts))(*opts)
    status = nvvm.nvvmCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    if status != 0:
        nvvm.nvvmGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvvm.nvvmGetProgramLog(prog, log)
        raise RuntimeError(f"nvvmCompileProgram {status}: {log.value.decode(errors='replace')}")
    nvvm.nvvmGetCompiledResultSize(prog, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    nvvm.nvvmGetCompiledResult(prog, buf)
    nvvm.nvvmDestroyProgram(ctypes.byref(prog))
    data = buf.raw[: size.value]
    if not lto:
        data = data.rstrip(b"\0")
    version = ""
    if not lto:
        match = re.search(rb"^\s*\.version\s+(\d+\.\d+)", data, re.M)
        version = match.group(1).decode() if match else ""
    return data, version


def prepare_links(libraries: list[str], artifacts: Path) -> None:
    """Link every artifact with every nvJitLink here (no GPU needed); the cubins are loaded on the GPU."""
    rows = []
    cubins = artifacts / "cubins"
    cubins.mkdir(exist_ok=True)
    for item in libraries:
        version, path = item.split("=", 1)
        for artifact in sorted(artifacts.glob("nvvm-*.*")):
            if artifact.suffix not in (".ptx", ".ltoir"):
                continue
            nvvm, kind = artifact.stem.split("-", 1)[1], artifact.suffix[1:]
            res = nvjitlink_link(path, artifact.read_bytes(), NVJITLINK_INPUT_LTOIR if kind == "ltoir" else 2, "90")
            cubin = res.pop("cubin", None)
            row = {"nvvm": nvvm, "input": kind, "nvjitlink": version, **res}
            if cubin is not None:
                name = f"nvvm-{nvvm}.{kind}.njl-{version}.cubin"
                (cubins / name).write_bytes(cubin)
                row["cubin"] = name
            rows.append(row)
            print(nvvm, kind, version, row.get("link"))
    (artifacts / "links.json").write_text(json.dumps(rows, indent=1))


def prepare(libraries: list[str], out: Path) -> None:
    """``libraries``: VERSION=path/to/libnvvm.so.4 pairs."""
    out.mkdir(parents=True, exist_ok=True)
    index = {}
    for item in libraries:
        version, path = item.split("=", 1)
        ptx, isa = nvvm_compile(path, "90", lto=False)
        ltoir, _ = nvvm_compile(path, "90", lto=True)
        (out / f"nvvm-{version}.ptx").write_bytes(ptx)
        (out / f"nvvm-{version}.ltoir").write_bytes(ltoir)
        index[version] = {"ptx_isa": isa, "ltoir_bytes": len(ltoir)}
        print(version, isa, len(ltoir))
    (out / "index.json").write_text(json.dumps(index, indent=1))


# ---------------------------------------------------------------- run (GPU)


class Cuda:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.check(self.lib.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self.check(self.lib.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        self.ctx = ctypes.c_void_p()
        self.check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), dev), "ctx")
        self.check(self.lib.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")

    def name(self, status: int) -> str:
        out = ctypes.c_char_p()
        if self.lib.cuGetErrorName(status, ctypes.byref(out)) == 0 and out.value:
            return out.value.decode()
        return f"CUDA error {status}"

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what}: {status}")

    def driver_version(self) -> int:
        v = ctypes.c_int()
        self.lib.cuDriverGetVersion(ctypes.byref(v))
        return v.value

    def load_and_run(self, image: bytes, jit_log: bool = False) -> dict[str, Any]:
        """Load a cubin or PTX image, launch condafix_probe(p) and read *p back (42 means it ran)."""
        module = ctypes.c_void_p()
        log = ctypes.create_string_buffer(8192)
        opts = (ctypes.c_int * 2)(5, 6)  # CU_JIT_ERROR_LOG_BUFFER, ..._SIZE_BYTES
        vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(len(log)))
        data = image + (b"\0" if not image.startswith(b"\x7fELF") else b"")
        status = self.lib.cuModuleLoadDataEx(ctypes.byref(module), data, 2, opts, vals)
        result: dict[str, Any] = {"load": self.name(status), "load_code": status}
        if jit_log:
            result["log"] = log.value.decode(errors="replace").strip()
        if status != 0:
            return result
        func = ctypes.c_void_p()
        self.check(self.lib.cuModuleGetFunction(ctypes.byref(func), module, b"condafix_probe"), "getfunction")
        ptr = ctypes.c_uint64()
        self.check(self.lib.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(4)), "alloc")
        self.lib.cuMemsetD32_v2(ptr, 0, ctypes.c_size_t(1))
        arg = ctypes.c_uint64(ptr.value)
        params = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.byref(arg), ctypes.c_void_p))
        status = self.lib.cuLaunchKernel(func, 1, 1, 1, 1, 1, 1, 0, None, params, None)
        result["launch"] = self.name(status)
        self.lib.cuCtxSynchronize()
        value = ctypes.c_int32()
        self.lib.cuMemcpyDtoH_v2(ctypes.byref(value), ptr, ctypes.c_size_t(4))
        result["value"] = value.value
        result["ran"] = status == 0 and value.value == 42
        self.lib.cuMemFree_v2(ptr)
        self.lib.cuModuleUnload(module)
        return result


def nvjitlink_link(library: str, data: bytes, kind: int, arch: str) -> dict[str, Any]:
    lib = ctypes.CDLL(library)
    major, minor = ctypes.c_uint(), ctypes.c_uint()
    lib.nvJitLinkVersion(ctypes.byref(major), ctypes.byref(minor))
    out: dict[str, Any] = {"nvjitlink_version": f"{major.value}.{minor.value}"}
    handle = ctypes.c_void_p()
    opts = [f"-arch=sm_{arch}".encode()] + ([b"-lto"] if kind == NVJITLINK_INPUT_LTOIR else [])
    arr = (ctypes.c_char_p * len(opts))(*opts)
    status = lib.__nvJitLinkCreate_13_0(ctypes.byref(handle), len(opts), arr)
    if status != 0:
        return {**out, "link": NVJITLINK_RESULTS.get(status, str(status)), "stage": "create"}
    try:
        status = lib.__nvJitLinkAddData_13_0(handle, kind, data, ctypes.c_size_t(len(data)), b"input")
        stage = "add"
        if status == 0:
            status = lib.__nvJitLinkComplete_13_0(handle)
            stage = "complete"
        out["link"] = NVJITLINK_RESULTS.get(status, str(status))
        out["stage"] = stage
        size = ctypes.c_size_t()
        lib.__nvJitLinkGetErrorLogSize_13_0(handle, ctypes.byref(size))
        if size.value > 1:
            log = ctypes.create_string_buffer(size.value)
            lib.__nvJitLinkGetErrorLog_13_0(handle, log)
            out["error_log"] = log.value.decode(errors="replace").strip()[:600]
        if status == 0:
            lib.__nvJitLinkGetLinkedCubinSize_13_0(handle, ctypes.byref(size))
            cubin = ctypes.create_string_buffer(size.value)
            lib.__nvJitLinkGetLinkedCubin_13_0(handle, cubin)
            out["cubin"] = cubin.raw[: size.value]
    finally:
        lib.__nvJitLinkDestroy_13_0(ctypes.byref(handle))
    return out


def link_cell(library: str, artifact: str, kind: str) -> None:
    """Child process: link one artifact with one nvJitLink, then load and launch it."""
    data = Path(artifact).read_bytes()
    res = nvjitlink_link(library, data, NVJITLINK_INPUT_LTOIR if kind == "ltoir" else NVJITLINK_INPUT_PTX, "90")
    cubin = res.pop("cubin", None)
    if cubin is not None:
        res.update(Cuda().load_and_run(cubin))
    print(json.dumps(res))


def load_cell(cubin: str) -> None:
    print(json.dumps(Cuda().load_and_run(Path(cubin).read_bytes())))


def driver_jit_cell(artifact: str) -> None:
    cuda = Cuda()
    print(json.dumps({"driver_cuda": cuda.driver_version(), **cuda.load_and_run(Path(artifact).read_bytes(), True)}))


def child(args: list[str], env: dict[str, str] | None = None, timeout: int = 240) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        return dict(json.loads(lines[-1]))
    return {"error": f"exit {done.returncode}", "stderr_tail": done.stderr[-1500:]}


NUMBA_CELL = r"""
import json, sys, traceback
import numpy as np
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
out = {}
try:
    from numba import cuda
    from importlib.metadata import version
    from numba.cuda.cudadrv import driver as drv
    out["numba_cuda"] = version("numba-cuda")
    out["have_nvjitlink"] = bool(drv._have_nvjitlink())
    try:
        from cuda.bindings import nvjitlink
        out["nvjitlink_version"] = "%d.%d" % nvjitlink.version()
    except Exception as exc:
        out["nvjitlink_version"] = None
    flags = json.loads(sys.argv[1])
    @cuda.jit(**flags)
    def add_one(values):
        i = cuda.grid(1)
        if i < values.size:
            values[i] += 1
    data = cuda.to_device(np.zeros(32, dtype=np.int32))
    add_one[1, 32](data)
    out["sum"] = int(data.copy_to_host().sum())
    out["ran"] = out["sum"] == 32
except BaseException as exc:
    out["ran"] = False
    out["error_type"] = type(exc).__name__
    out["error"] = str(exc)[-900:]
print(json.dumps(out))
"""

CUPY_CELL = r"""
import json, os
out = {}
try:
    import cupy
    from cupy.cuda import nvrtc
    out["cupy"] = cupy.__version__
    out["nvrtc_version"] = "%d.%d" % nvrtc.getVersion()
    k = cupy.RawKernel(r'extern "C" __global__ void f(int* p) { p[threadIdx.x] = 42; }', "f")
    a = cupy.zeros(8, dtype=cupy.int32)
    k((1,), (8,), (a,))
    cupy.cuda.Device().synchronize()
    out["ran"] = int(a.sum()) == 8 * 42
except BaseException as exc:
    out["ran"] = False
    out["error_type"] = type(exc).__name__
    out["error"] = str(exc)[-900:]
print(json.dumps(out))
"""


BUILTIN_CELL = r"""
import json, sys
out = {}
try:
    sys.meta_path[:] = [f for f in sys.meta_path if "redirect" not in type(f).__module__.lower()
                        and "numba_cuda" not in type(f).__module__.lower()]
    import numpy as np
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda
    out["implementation"] = getattr(cuda, "implementation", "?")
    out["module"] = cuda.__file__
    @cuda.jit
    def add_one(values):
        i = cuda.grid(1)
        if i < values.size:
            values[i] += 1
    data = cuda.to_device(np.zeros(32, dtype=np.int32))
    add_one[1, 32](data)
    out["ran"] = int(data.copy_to_host().sum()) == 32
except BaseException as exc:
    out["ran"] = False
    out["error_type"] = type(exc).__name__
    out["error"] = str(exc)[-900:]
print(json.dumps(out))
"""


def hide_nvjitlink() -> list[tuple[str, str]]:
    """Move every libnvJitLink on the machine aside (numba-cuda then falls back to the driver's linker)."""
    found = subprocess.run(
        "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -name 'libnvJitLink.so*' -print",
        shell=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    moved = []
    for path in found:
        if "/tmp/condafix-matrix" in path or (os.path.islink(path) and not os.path.exists(path)):
            continue
        target = path + ".condafix-hidden"
        shutil.move(path, target)
        moved.append((target, path))
    return moved


def fake_cuda_home(home: Path, libnvvm: Path) -> Path:
    """A CUDA_HOME for numba's built-in target: nvvm/lib64/libnvvm.so and libdevice from the image."""
    (home / "nvvm" / "lib64").mkdir(parents=True, exist_ok=True)
    shutil.copy2(libnvvm, home / "nvvm" / "lib64" / "libnvvm.so")
    for libdevice in glob.glob("/usr/local/cuda/nvvm/libdevice") + glob.glob(
        str(Path(sys.prefix) / "lib/python3*/site-packages/nvidia/cu13/nvvm/libdevice")
    ):
        if not (home / "nvvm" / "libdevice").exists():
            shutil.copytree(libdevice, home / "nvvm" / "libdevice")
    return home


def site_lib() -> Path:
    import site

    for base in site.getsitepackages():
        lib = Path(base) / "nvidia" / "cu13" / "lib"
        if lib.is_dir():
            return lib
    raise SystemExit("no site-packages/nvidia/cu13/lib on this machine")


class Swap:
    """Put carried library files over the image's ones, and restore them afterwards."""

    def __init__(self, lib: Path) -> None:
        self.lib = lib
        self.backup = Path("/tmp/condafix-matrix-backup")
        self.backup.mkdir(exist_ok=True)
        self.checked: set[str] = set()

    def original(self, name: str) -> Path:
        saved = self.backup / name
        if name not in self.checked:
            self.checked.add(name)
            if (self.lib / name).exists():
                shutil.copy2(self.lib / name, saved)
        return saved

    def use(self, name: str, source: Path | None) -> None:
        """source None: the image's own file (or none, as shipped); a path: that file; Path('-'): remove it."""
        saved = self.original(name)
        target = self.lib / name
        if source is None:
            if saved.exists():
                shutil.copy2(saved, target)
            else:
                target.unlink(missing_ok=True)
        elif str(source) == "-":
            target.unlink(missing_ok=True)
        else:
            shutil.copy2(source, target)


def unpack(carry: Path, work: Path) -> dict[str, Path]:
    """``<carry>/<name>.tar.xz`` -> work/<name>/nvidia/cu13/lib/..."""
    found: dict[str, Path] = {}
    for archive in sorted(carry.glob("*.tar.xz")):
        name = archive.name[: -len(".tar.xz")]
        dest = work / name
        if not dest.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(dest)
        found[name] = dest / "nvidia" / "cu13" / "lib"
    return found


def run(carry: Path, out: Path, parts: set[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    me = str(Path(__file__).resolve())
    lib = site_lib()
    work = Path("/tmp/condafix-matrix")
    work.mkdir(exist_ok=True)
    libs = unpack(carry, work)
    meta: dict[str, Any] = {
        "python": sys.version.split()[0],
        "site_lib": str(lib),
        "site_lib_files": sorted(p.name for p in lib.iterdir()),
        "carried": sorted(libs),
    }
    try:
        meta["nvidia_smi"] = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        meta["nvidia_smi"] = f"failed: {exc}"
    for dist in (
        "numba",
        "numba-cuda",
        "cuda-core",
        "cuda-bindings",
        "cupy-cuda13x",
        "nvidia-nvjitlink",
        "nvidia-cuda-nvrtc",
        "nvidia-nvvm",
        "cuda-toolkit",
        "jax",
        "jaxlib",
    ):
        done = subprocess.run([sys.executable, "-m", "pip", "show", dist], capture_output=True, text=True)
        version = re.search(r"^Version: (\S+)", done.stdout, re.M)
        meta.setdefault("dists", {})[dist] = version.group(1) if version else None
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    swap = Swap(lib)
    nvjitlinks = {"13.0-image": lib / "libnvJitLink.so.13"}
    for name, path in libs.items():
        if name.startswith("nvjitlink-"):
            nvjitlinks[name.split("-", 1)[1]] = path / "libnvJitLink.so.13"
    if "link" in parts:
        image_copy = work / "nvjitlink-image" / "libnvJitLink.so.13"
        image_copy.parent.mkdir(exist_ok=True)
        shutil.copy2(swap.original("libnvJitLink.so.13"), image_copy)
        nvjitlinks["13.0-image"] = image_copy
        cells = []
        for artifact in sorted((carry / "artifacts").glob("nvvm-*.*")):
            nvvm, kind = artifact.stem.split("-", 1)[1], artifact.suffix[1:]
            for version, path in sorted(nvjitlinks.items()):
                res = child([me, "link-cell", str(path), str(artifact), kind])
                cells.append({"nvvm": nvvm, "input": kind, "nvjitlink": version, **res})
                print("link", nvvm, kind, version, res.get("nvjitlink_version"), res.get("link"), res.get("ran"))
            if kind == "ptx":
                res = child([me, "driver-jit-cell", str(artifact)])
                cells.append({"nvvm": nvvm, "input": "ptx", "nvjitlink": None, "path": "driver-jit", **res})
                print("driver-jit", nvvm, res.get("load"), res.get("ran"))
        (out / "link-matrix.json").write_text(json.dumps(cells, indent=1))
    if "load" in parts:
        rows = json.loads((carry / "artifacts" / "links.json").read_text())
        for row in rows:
            if row.get("cubin"):
                row.update(child([me, "load-cell", str(carry / "artifacts" / "cubins" / row["cubin"])]))
            print("load", row["nvvm"], row["input"], row["nvjitlink"], row.get("link"), row.get("ran"))
        for artifact in sorted((carry / "artifacts").glob("nvvm-*.ptx")):
            res = child([me, "driver-jit-cell", str(artifact)])
            nvvm = artifact.stem.split("-", 1)[1]
            rows.append({"nvvm": nvvm, "input": "ptx", "nvjitlink": None, "path": "driver-jit", **res})
            print("driver-jit", nvvm, res.get("load"), res.get("ran"))
        (out / "link-matrix.json").write_text(json.dumps(rows, indent=1))
    if "nolink" in parts or "builtin" in parts:
        cells = []
        hidden = hide_nvjitlink()
        try:
            nvvms = {
                "13.0-image": None,
                **{n.split("-", 1)[1]: p / "libnvvm.so.4" for n, p in libs.items() if n.startswith("nvvm-")},
            }
            for nvvm_name, nvvm_path in nvvms.items():
                swap.use("libnvvm.so.4", nvvm_path)
                if "nolink" in parts:
                    for flag_name, flags in {"default": {}, "debug": {"debug": True, "opt": False}}.items():
                        res = child(["-c", NUMBA_CELL, json.dumps(flags)])
                        cells.append(
                            {"numba": "numba-cuda", "nvvm": nvvm_name, "nvjitlink": "hidden", "flags": flag_name, **res}
                        )
                        print(
                            "nolink",
                            nvvm_name,
                            flag_name,
                            res.get("have_nvjitlink"),
                            res.get("ran"),
                            res.get("error_type"),
                            str(res.get("error", ""))[:200].replace("\n", " "),
                        )
                if "builtin" in parts:
                    image_nvvm = sorted(glob.glob("/usr/local/cuda/nvvm/lib64/libnvvm.so*"))
                    home = fake_cuda_home(work / f"cuda-home-{nvvm_name}", nvvm_path or Path(image_nvvm[0]))
                    env = {
                        **os.environ,
                        "CUDA_HOME": str(home),
                        "NUMBA_CUDA_USE_NVIDIA_BINDING": "0",
                        "LD_LIBRARY_PATH": f"{home}/nvvm/lib64:" + os.environ.get("LD_LIBRARY_PATH", ""),
                    }
                    res = child(["-c", BUILTIN_CELL], env=env)
                    cells.append(
                        {"numba": "builtin", "nvvm": nvvm_name, "nvjitlink": "hidden", "flags": "default", **res}
                    )
                    print(
                        "builtin",
                        nvvm_name,
                        res.get("implementation"),
                        res.get("ran"),
                        res.get("error_type"),
                        str(res.get("error", ""))[:200].replace("\n", " "),
                    )
            swap.use("libnvvm.so.4", None)
        finally:
            for moved, original in hidden:
                shutil.move(moved, original)
        (out / "nolink-matrix.json").write_text(
            json.dumps({"hidden": [o for _, o in hidden], "cells": cells}, indent=1)
        )
    if "numba" in parts:
        cells = []
        nvvms: dict[str, Path | None] = {"13.0-image": None}
        for name, path in libs.items():
            if name.startswith("nvvm-"):
                nvvms[name.split("-", 1)[1]] = path / "libnvvm.so.4"
        links: dict[str, Path | None] = {"13.0-image": None, "none": Path("-")}
        for name, path in libs.items():
            if name.startswith("nvjitlink-"):
                links[name.split("-", 1)[1]] = path / "libnvJitLink.so.13"
        flag_sets = {"default": {}, "debug": {"debug": True, "opt": False}, "lineinfo": {"lineinfo": True}}
        for nvvm_name, nvvm_path in nvvms.items():
            swap.use("libnvvm.so.4", nvvm_path)
            for link_name, link_path in links.items():
                swap.use("libnvJitLink.so.13", link_path)
                for flag_name, flags in flag_sets.items():
                    if link_name == "none" and flag_name == "lineinfo":
                        continue
                    env = {**os.environ, "NUMBA_CACHE_DIR": str(work / "numba-cache")}
                    res = child(["-c", NUMBA_CELL, json.dumps(flags)], env=env)
                    cell = {"nvvm": nvvm_name, "nvjitlink": link_name, "flags": flag_name, **res}
                    cells.append(cell)
                    print(
                        "numba",
                        nvvm_name,
                        link_name,
                        flag_name,
                        res.get("ran"),
                        res.get("error_type"),
                        str(res.get("error", ""))[:160].replace("\n", " "),
                    )
        swap.use("libnvvm.so.4", None)
        swap.use("libnvJitLink.so.13", None)
        (out / "numba-matrix.json").write_text(json.dumps(cells, indent=1))
    if "cupy" in parts:
        cells = []
        nvrtcs: dict[str, Path | None] = {"13.0-image": None}
        for name, path in libs.items():
            if name.startswith("cuda_nvrtc-"):
                nvrtcs[name.split("-", 1)[1]] = path
        builtins_names = [p.name for p in lib.glob("libnvrtc-builtins.so*")]
        for nvrtc_name, nvrtc_dir in nvrtcs.items():
            if nvrtc_dir is None:
                swap.use("libnvrtc.so.13", None)
            else:
                swap.use("libnvrtc.so.13", nvrtc_dir / "libnvrtc.so.13")
                for extra in nvrtc_dir.glob("libnvrtc-builtins.so*"):
                    shutil.copy2(extra, lib / extra.name)
            for ptx in ("unset", "1"):
                cache = work / f"cupy-cache-{nvrtc_name}-{ptx}"
                env = {**os.environ, "CUPY_CACHE_DIR": str(cache)}
                env.pop("CUPY_COMPILE_WITH_PTX", None)
                if ptx == "1":
                    env["CUPY_COMPILE_WITH_PTX"] = "1"
                res = child(["-c", CUPY_CELL], env=env)
                cells.append({"nvrtc": nvrtc_name, "CUPY_COMPILE_WITH_PTX": ptx, **res})
                print(
                    "cupy",
                    nvrtc_name,
                    ptx,
                    res.get("nvrtc_version"),
                    res.get("ran"),
                    res.get("error_type"),
                    str(res.get("error", ""))[:160].replace("\n", " "),
                )
        swap.use("libnvrtc.so.13", None)
        for extra in lib.glob("libnvrtc-builtins.so*"):
            if extra.name not in builtins_names:
                extra.unlink()
        (out / "cupy-matrix.json").write_text(json.dumps(cells, indent=1))


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "prepare":
        prepare(argv[1:-1], Path(argv[-1]))
    elif cmd == "prepare-links":
        prepare_links(argv[1:-1], Path(argv[-1]))
    elif cmd == "load-cell":
        load_cell(argv[1])
    elif cmd == "run":
        run(Path(argv[1]), Path(argv[2]), set(argv[3].split(",")) if len(argv) > 3 else {"link", "numba", "cupy"})
    elif cmd == "link-cell":
        link_cell(argv[1], argv[2], argv[3])
    elif cmd == "driver-jit-cell":
        driver_jit_cell(argv[1])
    else:
        raise SystemExit(f"unknown command {cmd}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
