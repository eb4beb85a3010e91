"""Child-process half of ``doctor --probe``: compile NVVM IR to PTX, optionally JIT it on the driver.

Runs as ``python -m condafix.detect._ptx_child LIBNVVM [--jit]`` so that a crashing libNVVM or driver
cannot take condafix down; prints one JSON line. Needs no GPU for the compile half.
"""

from __future__ import annotations

import ctypes
import json
import re
import sys
from typing import Any

# 12.4-12.6 refuse a shorter data layout; CUDA 13's NVVM rejects opaque pointers (gpu-notes.md).
DATA_LAYOUT = (
    "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64"
    "-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
)
IR_TEMPLATE = """target datalayout = "{layout}"
target triple = "nvptx64-nvidia-cuda"

define void @condafix_probe(i32* %p) {{
entry:
  store i32 42, i32* %p, align 4
  ret void
}}

!nvvm.annotations = !{{!0}}
!0 = !{{void (i32*)* @condafix_probe, !"kernel", i32 1}}
!nvvmir.version = !{{!1}}
!1 = !{{i32 {ir_major}, i32 {ir_minor}}}
"""
ARCH = b"-arch=compute_75"  # the oldest target every NVVM from 12.x to 13.x accepts
CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6


def compile_ptx(library: str) -> dict[str, Any]:
    """Compile the probe kernel with this libNVVM and read the PTX ``.version`` it wrote."""
    nvvm = ctypes.CDLL(library)
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvvm.nvvmVersion(ctypes.byref(major), ctypes.byref(minor))
    ir = [ctypes.c_int() for _ in range(4)]
    nvvm.nvvmIRVersion(*(ctypes.byref(x) for x in ir))
    result: dict[str, Any] = {
        "nvvm_version": f"{major.value}.{minor.value}",
        "ir_version": f"{ir[0].value}.{ir[1].value}",
    }
    source = IR_TEMPLATE.format(layout=DATA_LAYOUT, ir_major=ir[0].value, ir_minor=ir[1].value).encode()
    program = ctypes.c_void_p()
    if nvvm.nvvmCreateProgram(ctypes.byref(program)) != 0:
        return {**result, "error": "nvvmCreateProgram failed"}
    try:
        status = nvvm.nvvmAddModuleToProgram(program, source, ctypes.c_size_t(len(source)), b"condafix_probe")
        if status != 0:
            return {**result, "error": f"nvvmAddModuleToProgram returned {status}"}
        options = (ctypes.c_char_p * 1)(ARCH)
        status = nvvm.nvvmCompileProgram(program, 1, options)
        if status != 0:
            size = ctypes.c_size_t()
            nvvm.nvvmGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvvm.nvvmGetProgramLog(program, log)
            return {**result, "error": f"nvvmCompileProgram returned {status}: {log.value.decode(errors='replace')}"}
        size = ctypes.c_size_t()
        nvvm.nvvmGetCompiledResultSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        nvvm.nvvmGetCompiledResult(program, buffer)
    finally:
        nvvm.nvvmDestroyProgram(ctypes.byref(program))
    ptx = buffer.value.decode(errors="replace")
    match = re.search(r"^\s*\.version\s+(\d+\.\d+)", ptx, re.M)
    return {**result, "ptx_version": match.group(1) if match else None, "ptx": ptx}


def jit_ptx(ptx: str) -> dict[str, Any]:
    """Load the PTX with cuModuleLoadDataEx on GPU 0 and report the driver's exact answer."""
    cuda = ctypes.CDLL("libcuda.so.1")
    status = cuda.cuInit(0)
    if status != 0:
        return {"code": status, "name": _error_name(cuda, status), "log": "", "stage": "cuInit"}
    device, context = ctypes.c_int(), ctypes.c_void_p()
    cuda.cuDeviceGet(ctypes.byref(device), 0)
    status = cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device)
    if status != 0:
        return {"code": status, "name": _error_name(cuda, status), "log": "", "stage": "cuDevicePrimaryCtxRetain"}
    try:
        cuda.cuCtxSetCurrent(context)
        log = ctypes.create_string_buffer(8192)
        options = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        values = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(len(log)))
        module = ctypes.c_void_p()
        status = cuda.cuModuleLoadDataEx(ctypes.byref(module), ptx.encode() + b"\0", 2, options, values)
        if status == 0:
            cuda.cuModuleUnload(module)
        return {
            "code": status,
            "name": _error_name(cuda, status),
            "log": log.value.decode(errors="replace").strip(),
            "stage": "cuModuleLoadDataEx",
        }
    finally:
        cuda.cuDevicePrimaryCtxRelease(device)


def _error_name(cuda: ctypes.CDLL, status: int) -> str:
    name = ctypes.c_char_p()
    if cuda.cuGetErrorName(status, ctypes.byref(name)) == 0 and name.value:
        return name.value.decode()
    return f"CUDA error {status}"


def main(argv: list[str]) -> int:
    library, want_jit = argv[0], "--jit" in argv
    try:
        out = compile_ptx(library)
    except OSError as exc:
        out = {"error": f"cannot load {library}: {exc}"}
    if want_jit and out.get("ptx"):
        try:
            out["jit"] = jit_ptx(out["ptx"])
        except OSError as exc:
            out["jit"] = {"error": f"cannot load libcuda: {exc}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
