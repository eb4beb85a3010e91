"""GPU matrix for issue 21 item 4: which NVVM / nvJitLink / NVRTC file each consumer really loads, whether
its kernel runs, and what condafix doctor predicted, one cell per library source.

Two halves, stdlib only:

``prepare WHEELDIR CARRY`` (here, no GPU): from NVIDIA's PyPI wheels nvidia_nvvm / nvidia_nvjitlink /
nvidia_cuda_nvrtc 13.2.86 in WHEELDIR keep only ``nvidia/cu13/lib/*`` and ``nvidia/cu13/nvvm/libdevice/*``
(no ``cicc``) as ``CARRY/<part>-<version>.tar.xz``: xz gives nvvm 21 MB, nvjitlink 30 MB, cuda_nvrtc about
30 MB, more than the 64 MiB that travels at once, so run twice: ``--only nvvm,nvjitlink`` (the numba cells and
the CuPy-with-system-NVRTC cell), then ``--only cuda_nvrtc`` (the CuPy NVRTC 13.2 cells); a cell whose parts
are not carried is skipped.

``run CARRY OUT [CELL,...]`` (on the GPU machine, repo root, the image's venv /opt/torch/.venv with numba
0.68, numba-cuda 0.30.4, cupy-cuda13x 14.2 and /usr/local/cuda 13.0): every cell is a fresh venv whose
site-packages holds only the wheels the cell names (library files + a dist-info with the RECORD pip would
write) and the consumer's dist-info; the consumers themselves are imported from the image's site-packages
through a ``.pth`` line (numba-cuda cells run the image's .pth files, so its redirector is on; built-in
cells do not), so cuda-pathfinder (which scans ``site.getsitepackages()`` only) sees the cell's wheels and
nothing else. ``CUDA_HOME`` points at a toolkit dir made of the carried 13.2 NVVM, where a cell says so.
Per cell it records, as one JSON line and in ``OUT/sources-matrix-<carried parts>.json``:
- ``finder``: the consumer's own finder run in the cell's python (``condafix/detect/_finder_child.py``);
- ``kernel``: a one-kernel run (numba ``@cuda.jit`` / CuPy ``RawKernel``), whether it ran, the error, and the
  libnvvm / libnvJitLink / libnvrtc files mapped into that process (``/proc/self/maps``);
- ``doctor`` / ``doctor_probe``: ``condafix doctor -p CELL --json`` (and ``--probe``) with the cell's variables.
Keep each ``OUT/sources-matrix-*.json`` under ``tests/fixtures/gpu/``: tests/test_libsources.py replays them
(the measured outcome against condafix's verdict on the measured files, and the files doctor named).
"""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

IMAGE_VENV = Path(os.environ.get("VENV", "/opt/torch/.venv"))
SYSTEM = Path(os.environ.get("SYSTEM_CUDA", "/usr/local/cuda"))
REPO = Path(__file__).resolve().parents[2]
CHILD = REPO / "condafix" / "detect" / "_finder_child.py"
WORK = Path("/tmp/condafix-sources")
WHEEL_PARTS = {
    "nvvm": ("nvidia_nvvm", ("nvidia/cu13/lib/libnvvm.so", "nvidia/cu13/nvvm/libdevice/")),
    "nvjitlink": ("nvidia_nvjitlink", ("nvidia/cu13/lib/libnvJitLink.so",)),
    "cuda_nvrtc": ("nvidia_cuda_nvrtc", ("nvidia/cu13/lib/libnvrtc",)),
}

# name -> consumer, wheels in the cell's site-packages ("image" = the image's 13.0 file, "13.2" = carried),
# CUDA_HOME ("13.2" = a toolkit dir made of the carried NVVM), extra variables, and what gpu-notes.md says.
CELLS: dict[str, dict[str, Any]] = {
    "nc-cudahome-nvvm13.2-njl13.0wheel": {
        "consumer": "numba-cuda",
        "wheels": {"nvjitlink": "image"},
        "cuda_home": "13.2",
        "notes": "failed ERROR_OUTDATED_LIBRARY (NVVM 13.2 from CUDA_HOME, nvJitLink 13.0 wheel)",
    },
    "nc-nvvm13.2wheel-system-njl": {
        "consumer": "numba-cuda",
        "wheels": {"nvvm": "13.2"},
        "notes": "failed ERROR_OUTDATED_LIBRARY (system libnvJitLink.so.13 13.0 from the loader cache), not 222",
    },
    "nc-nvvm13.2wheel-njl13.2wheel": {
        "consumer": "numba-cuda",
        "wheels": {"nvvm": "13.2", "nvjitlink": "13.2"},
        "notes": "ran (nvJitLink >= NVVM)",
    },
    "nc-system-only": {"consumer": "numba-cuda", "wheels": {}, "notes": "ran (system NVVM and nvJitLink 13.0)"},
    "builtin-nvvm13.2wheel-system": {
        "consumer": "numba",
        "wheels": {"nvvm": "13.2"},
        "notes": "ran on the system NVVM 13.0: the built-in target never looks at pip NVVM wheels",
    },
    "builtin-cudahome13.2": {
        "consumer": "numba",
        "wheels": {},
        "cuda_home": "13.2",
        "notes": "failed 222 CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
    },
    "cupy-nvrtc13.2wheel": {"consumer": "cupy", "wheels": {"cuda_nvrtc": "13.2"}, "notes": "ran (cubin)"},
    "cupy-nvrtc13.2wheel-ptx": {
        "consumer": "cupy",
        "wheels": {"cuda_nvrtc": "13.2"},
        "env": {"CUPY_COMPILE_WITH_PTX": "1"},
        "notes": "failed CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
    },
    "cupy-system-nvrtc-nvvm13.2wheel-ptx": {
        "consumer": "cupy",
        "wheels": {"nvvm": "13.2"},
        "env": {"CUPY_COMPILE_WITH_PTX": "1"},
        "notes": "not measured; NVRTC 13.0 ran with CUPY_COMPILE_WITH_PTX=1 (judged by NVRTC, not NVVM)",
    },
}
CONSUMER_DISTS = {"numba-cuda": ("numba_cuda", "numba"), "numba": ("numba",), "cupy": ("cupy_cuda13x",)}

MAPS = r"""
def _maps():
    found = {}
    for line in open('/proc/self/maps'):
        parts = line.split(None, 5)
        name = parts[5].strip() if len(parts) == 6 else ''
        for mark in ('libnvvm', 'libnvJitLink', 'libnvrtc.so'):
            if mark in name.rsplit('/', 1)[-1]:
                found.setdefault(mark, name)
    return found
"""
NUMBA_KERNEL = (
    MAPS
    + r"""
import json
out = {}
try:
    import numpy as np
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda
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
out["mapped"] = _maps()
print(json.dumps(out))
"""
)
CUPY_KERNEL = (
    MAPS
    + r"""
import json
out = {}
try:
    import cupy
    from cupy.cuda import nvrtc
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
out["mapped"] = _maps()
print(json.dumps(out))
"""
)


# ---------------------------------------------------------------- prepare (no GPU)


def prepare(wheels: Path, carry: Path, only: set[str]) -> None:
    carry.mkdir(parents=True, exist_ok=True)
    for part, (stem, keep) in WHEEL_PARTS.items():
        if only and part not in only:
            continue
        found = sorted(wheels.glob(f"{stem}-{os.environ.get('WHEEL_VERSION', '13.2.86')}-*.whl"))
        if not found:
            print(f"no {stem} wheel in {wheels}")
            continue
        wheel = found[-1]
        version = wheel.name.split("-")[1]
        with zipfile.ZipFile(wheel) as whl, tarfile.open(carry / f"{part}-{version}.tar.xz", "w:xz") as tar:
            for info in whl.infolist():
                if any(info.filename.startswith(k) for k in keep) and not info.is_dir():
                    data = whl.read(info)
                    member = tarfile.TarInfo(info.filename)
                    member.size, member.mode = len(data), 0o755
                    tar.addfile(member, io.BytesIO(data))
        print(carry / f"{part}-{version}.tar.xz", (carry / f"{part}-{version}.tar.xz").stat().st_size)


# ---------------------------------------------------------------- run (GPU)


def image_site() -> Path:
    (site,) = sorted(IMAGE_VENV.glob("lib/python3*/site-packages"))
    return site


def unpack(carry: Path) -> dict[str, Path]:
    """``CARRY/<part>-<version>.tar.xz`` -> WORK/carried/<part>-<version>/ (a site-packages-shaped root)."""
    found = {}
    for archive in sorted(carry.glob("*.tar.xz")):
        stem = archive.name[: -len(".tar.xz")]
        part = stem.split("-", 1)[0]
        dest = WORK / "carried" / stem
        if not dest.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(dest)  # our own archive, made by prepare
        found[part] = dest
    return found


def carried_version(root: Path) -> str:
    return root.name.split("-", 1)[1]


def image_files(part: str) -> list[Path]:
    """The image's own 13.0 files of a wheel part (its site-packages' nvidia/cu13)."""
    lib = image_site() / "nvidia" / "cu13"
    patterns = {
        "nvvm": ["lib/libnvvm.so*", "nvvm/libdevice/*"],
        "nvjitlink": ["lib/libnvJitLink.so*"],
        "cuda_nvrtc": ["lib/libnvrtc.so*", "lib/libnvrtc-builtins.so*"],
    }[part]
    return [Path(p) for pat in patterns for p in sorted(glob.glob(str(lib / pat)))]


def add_wheel(site: Path, part: str, version: str, carried: dict[str, Path]) -> None:
    """Files under site/nvidia/cu13 and the dist-info pip would write (METADATA, RECORD)."""
    stem = WHEEL_PARTS[part][0]
    if version == "image":
        sources = [(p, p.relative_to(image_site())) for p in image_files(part)]
        full = dist_version(image_site(), stem) or "13.0.88"
    else:
        root = carried[part]
        sources = [(p, p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file()]
        full = carried_version(root)
    records = []
    for source, rel in sources:
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        records.append(f"{rel.as_posix()},,{target.stat().st_size}")
    info = site / f"{stem}-{full}.dist-info"
    info.mkdir(exist_ok=True)
    name = stem.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {full}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("\n".join([*records, f"{info.name}/RECORD,,"]) + "\n")


def dist_version(site: Path, stem: str) -> str | None:
    found = sorted(site.glob(f"{stem}-*.dist-info"))
    return found[0].name[: -len(".dist-info")].split("-", 1)[1] if found else None


def toolkit_132(carried: dict[str, Path]) -> Path:
    """A CUDA_HOME whose NVVM is the carried 13.2 one: nvvm/lib64/libnvvm.so.4, libdevice, version.json."""
    home = WORK / "cuda-home-13.2"
    if home.exists():
        return home
    lib64 = home / "nvvm" / "lib64"
    lib64.mkdir(parents=True)
    shutil.copy2(carried["nvvm"] / "nvidia" / "cu13" / "lib" / "libnvvm.so.4", lib64 / "libnvvm.so.4")
    (lib64 / "libnvvm.so").symlink_to("libnvvm.so.4")
    libdevice = carried["nvvm"] / "nvidia" / "cu13" / "nvvm" / "libdevice"
    shutil.copytree(libdevice if libdevice.is_dir() else SYSTEM / "nvvm" / "libdevice", home / "nvvm" / "libdevice")
    full = carried_version(carried["nvvm"])
    (home / "version.json").write_text(
        json.dumps({"cuda": {"version": full}, "libnvvm": {"name": "NVVM", "version": full}}, indent=1)
    )
    return home


def make_cell(name: str, spec: dict[str, Any], carried: dict[str, Path]) -> Path:
    root = WORK / "cells" / name
    if root.exists():
        shutil.rmtree(root)
    base = os.path.realpath(IMAGE_VENV / "bin" / "python3")
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True)
    (site,) = sorted(root.glob("lib/python3*/site-packages"))
    image = image_site()
    if spec["consumer"] == "numba":  # the image's modules, but not its .pth files (numba-cuda's redirector)
        (site / "zz_image.pth").write_text(f"{image}\n")
    else:
        (site / "zz_image.pth").write_text(f"import site; site.addsitedir({str(image)!r})\n")
    for dist in CONSUMER_DISTS[spec["consumer"]]:
        for info in image.glob(f"{dist}-*.dist-info"):
            (site / info.name).symlink_to(info)
    for part, version in spec.get("wheels", {}).items():
        add_wheel(site, part, version, carried)
    return root


def cell_env(name: str, spec: dict[str, Any], carried: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH", "CONDA_PREFIX", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"
    env["NUMBA_CACHE_DIR"] = str(WORK / "numba-cache")
    env["CUPY_CACHE_DIR"] = str(WORK / "cupy-cache" / name)  # fresh per cell: no cubin from another NVRTC
    if spec["consumer"] == "numba":
        env["NUMBA_CUDA_USE_NVIDIA_BINDING"] = "0"
    if spec.get("cuda_home") == "13.2":
        env["CUDA_HOME"] = str(toolkit_132(carried))
    env.update(spec.get("env", {}))
    return env


def last_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        try:
            return dict(json.loads(lines[-1]))
        except ValueError:
            pass
    return {"error": f"exit {done.returncode}", "stderr_tail": done.stderr[-1500:]}


def run_json(argv: list[str], env: dict[str, str], timeout: int = 300) -> dict[str, Any]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if argv[1:3] == ["-m", "condafix"]:
        try:
            return dict(json.loads(done.stdout))
        except ValueError:
            return {"error": f"exit {done.returncode}", "stderr_tail": done.stderr[-1500:]}
    return last_json(done)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What condafix predicted: status, each compile path and the files it says the consumer loads."""
    result = doc.get("result") or {}
    return {
        "status": result.get("status"),
        "compile_paths": [
            {k: p.get(k) for k in ("consumer", "path", "outcome", "writer", "writer_cuda", "linker", "linker_cuda")}
            | {"libraries": p.get("libraries")}
            for p in result.get("compile_paths") or []
        ],
        "fix": (result.get("fix") or {}).get("commands"),
        "findings": [f.get("code") for f in result.get("findings") or []],
        "error": doc.get("error"),
        "stderr_tail": doc.get("stderr_tail"),
    }


def run(carry: Path, out: Path, wanted: set[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(exist_ok=True)
    carried = unpack(carry)
    python = os.environ.get("CONDAFIX_PYTHON", str(IMAGE_VENV / "bin" / "python3"))  # runs condafix itself
    meta = {
        "image_site": str(image_site()),
        "image_dists": {s: dist_version(image_site(), s) for s in ("numba", "numba_cuda", "cupy_cuda13x")},
        "system": str(SYSTEM),
        "system_real": os.path.realpath(SYSTEM),
        "carried": sorted(carried),
        "ldconfig": subprocess.run(
            "ldconfig -p | grep -E 'libnvvm|libnvJitLink|libnvrtc|libcudart'",
            shell=True,
            capture_output=True,
            text=True,
            check=False,
        ).stdout,
        "nvidia_smi": subprocess.run(
            "nvidia-smi --query-gpu=name,driver_version --format=csv,noheader",
            shell=True,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }
    cells = []
    for name, spec in CELLS.items():
        if wanted and name not in wanted:
            continue
        needs = {p for p, v in spec.get("wheels", {}).items() if v != "image"} | (
            {"nvvm"} if spec.get("cuda_home") else set()
        )
        if needs - set(carried):
            print(json.dumps({"cell": name, "skipped": f"not carried: {sorted(needs - set(carried))}"}))
            continue
        root = make_cell(name, spec, carried)
        env = cell_env(name, spec, carried)
        cell_python = str(root / "bin" / "python")
        kernel = NUMBA_KERNEL if spec["consumer"] in ("numba", "numba-cuda") else CUPY_KERNEL
        condafix_env = {**env, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        row = {
            "cell": name,
            "spec": spec,
            "prefix": str(root),
            "site_packages": sorted(p.name for p in next(root.glob("lib/python3*/site-packages")).iterdir()),
            "finder": run_json([cell_python, str(CHILD), spec["consumer"]], env),
            "kernel": run_json([cell_python, "-c", kernel], env),
            "doctor": summary(run_json([python, "-m", "condafix", "doctor", "-p", str(root), "--json"], condafix_env)),
            "doctor_probe": summary(
                run_json([python, "-m", "condafix", "doctor", "-p", str(root), "--probe", "--json"], condafix_env)
            ),
        }
        cells.append(row)
        print(json.dumps({k: row[k] for k in ("cell", "finder", "kernel")} | {"doctor": row["doctor"]["status"]}))
    name = "sources-matrix-" + "+".join(sorted(carried)) + ".json" if carried else "sources-matrix.json"
    (out / name).write_text(json.dumps({"meta": meta, "cells": cells}, indent=1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"] and len(argv) >= 3:
        only = set(argv[4].split(",")) if len(argv) > 4 and argv[3] == "--only" else set()
        prepare(Path(argv[1]), Path(argv[2]), only)
    elif argv[:1] == ["run"] and len(argv) >= 3:
        run(Path(argv[1]), Path(argv[2]), set(argv[3].split(",")) if len(argv) > 3 else set())
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
