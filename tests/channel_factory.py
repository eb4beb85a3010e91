"""Build real conda packages (.tar.bz2) and index them into a local channel with rattler.

The layout mirrors conda-forge (shared/reference/cuda-facts.md §1-2): ``cuda-version`` constrains
``__cuda >=MAJOR`` and ``cudatoolkit X.Y|X.Y.*``; CTK parts pin ``cuda-version >=X.Y,<X.(Y+1)``;
``cudatoolkit`` 11.x constrains ``__cuda >=11``; numba-cuda needs ``cuda-version >=12``; a pytorch
built only for CUDA 12.8 exercises the blocked case.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Spec:
    name: str
    version: str
    build: str = "h0_0"
    subdir: str = "linux-64"
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def build_package(channel: Path, spec: Spec) -> Path:
    """Write ``<channel>/<subdir>/<name>-<version>-<build>.tar.bz2`` with info/index.json and paths.json."""
    files = spec.files or {f"share/condafix-fixture/{spec.name}.txt": f"{spec.name} {spec.version}\n"}
    number = int(spec.build.rsplit("_", 1)[-1]) if spec.build.rsplit("_", 1)[-1].isdigit() else 0
    index = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build,
        "build_number": number,
        "depends": list(spec.depends),
        "constrains": list(spec.constrains),
        "subdir": spec.subdir,
        "license": "BSD-3-Clause",
        "timestamp": 1_700_000_000_000,
    }
    if spec.subdir == "noarch":
        index["noarch"] = "generic"
    else:
        index.update(platform="linux", arch="x86_64")
    paths = {
        "paths": [
            {
                "_path": p,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(c.encode()).hexdigest(),
                "size_in_bytes": len(c.encode()),
            }
            for p, c in files.items()
        ],
        "paths_version": 1,
    }
    out = channel / spec.subdir / f"{spec.name}-{spec.version}-{spec.build}.tar.bz2"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:bz2") as tar:
        _add(tar, "info/index.json", json.dumps(index).encode())
        _add(tar, "info/paths.json", json.dumps(paths).encode())
        _add(tar, "info/files", "".join(f"{p}\n" for p in files).encode())
        for path, content in files.items():
            _add(tar, path, content.encode())
    return out


def index(channel: Path) -> None:
    from rattler.index import index_fs

    for subdir in ("noarch", "linux-64"):
        (channel / subdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))


# Component versions per CUDA minor, as conda-forge's cuda-nvcc feedstock published them.
CTK = {
    "12.0": "12.0.76",
    "12.1": "12.1.105",
    "12.2": "12.2.140",
    "12.3": "12.3.107",
    "12.4": "12.4.131",
    "12.5": "12.5.82",
    "12.6": "12.6.85",
    "12.8": "12.8.93",
    "12.9": "12.9.86",
    "13.0": "13.0.88",
}
COMPONENTS = ("cuda-nvvm-impl", "cuda-nvrtc", "cuda-cudart", "libnvjitlink")
GLIBC = "__glibc >=2.17,<3.0.a0"


def conda_forge_like() -> list[Spec]:
    specs: list[Spec] = []
    for minor in ("11.2", "11.4", "11.8", *CTK):
        major = minor.split(".")[0]
        specs.append(
            Spec(
                "cuda-version",
                minor,
                "h0_3",
                "noarch",
                constrains=(f"__cuda >={major}", f"cudatoolkit {minor}|{minor}.*"),
            )
        )
    for minor, full in CTK.items():
        major, low = minor.split(".")
        upper = f"{major}.{int(low) + 1}.0a0"
        for comp in COMPONENTS:
            specs.append(Spec(comp, full, "h5888daf_0", depends=(f"cuda-version >={minor},<{upper}", GLIBC)))
    for full in ("11.2.2", "11.3.1", "11.4.3", "11.6.2", "11.7.1", "11.8.0"):
        specs.append(Spec("cudatoolkit", full, "h4bc3d14_13", depends=(GLIBC,), constrains=("__cuda >=11",)))
    specs += [
        Spec("python", "3.12.3", "hab00c5b_0_cpython", depends=(GLIBC,)),
        Spec("python", "3.12.7", "hc5c86c4_0_cpython", depends=(GLIBC,)),
        Spec("numpy", "2.0.0", "py312h22e1c76_0", depends=("python >=3.12,<3.13.0a0",)),
        Spec("numpy", "2.1.0", "py312h58c1407_0", depends=("python >=3.12,<3.13.0a0",)),
        Spec(
            "numba",
            "0.60.0",
            "py312h83e6fd3_0",
            depends=("python >=3.12,<3.13.0a0", "numpy >=1.22"),
            constrains=("cuda-version >=11.2", "cudatoolkit >=11.2"),
        ),
        Spec(
            "numba-cuda",
            "0.15.2",
            "pyh29b5f1c_0",
            "noarch",
            depends=(
                "python >=3.9",
                "numba >=0.59",
                "cuda-version >=12",
                "cuda-nvvm-impl",
                "cuda-nvrtc",
                "cuda-cudart",
                "libnvjitlink",
            ),
        ),
        Spec(
            "pytorch",
            "2.9.0",
            "cuda128_generic_py312_h0_300",
            depends=("python >=3.12,<3.13.0a0", "cuda-version >=12.8,<13", "cuda-cudart", "__cuda"),
        ),
        Spec("libzlib", "1.3.1", "hb9d3cd8_2", depends=(GLIBC,)),
        # conda's aggressive_update_packages: an env holding the older one is updated by any conda install
        Spec("openssl", "3.0.0", "h4ab18f5_0", depends=(GLIBC,)),
        Spec("openssl", "3.5.0", "h7b32b05_1", depends=(GLIBC,)),
        Spec("python", "3.10.13", "hd12c33a_0_cpython", depends=(GLIBC,)),
    ]
    specs += pytorch_and_metapackages()
    return specs


def pytorch_and_metapackages() -> list[Spec]:
    """The pytorch channel's 1.12.1 builds (cudatoolkit 11.3 and 11.6 only: no 11.4 build ever existed),
    conda-forge's pytorch-gpu 2.1.2 (CUDA 11.8 and 12.0 variants), the ``cuda`` metapackage at full
    toolkit releases, and CTK libraries whose version does not name the CUDA release (libcurand)."""
    specs: list[Spec] = []
    py310 = "python >=3.10,<3.11.0a0"
    for cuda, upper in (("11.3", "11.4"), ("11.6", "11.7")):
        specs.append(
            Spec(
                "pytorch",
                "1.12.1",
                f"py3.10_cuda{cuda}_cudnn8.3.2_0",
                depends=(py310, f"cudatoolkit >={cuda},<{upper}", GLIBC),
            )
        )
    specs.append(Spec("torchvision", "0.13.1", "py310_cu113", depends=(py310, "pytorch 1.12.1")))
    specs += [
        Spec("pytorch", "2.1.2", "cuda118_py310h0_300", depends=(py310, "cudatoolkit >=11.8,<12", "__cuda")),
        Spec(
            "pytorch",
            "2.1.2",
            "cuda120_py310h0_300",
            depends=(py310, "cuda-version >=12.0,<13", "cuda-cudart", "__cuda"),
        ),
        Spec("pytorch-gpu", "2.1.2", "cuda118py310h0_300", depends=("pytorch 2.1.2 cuda118*",)),
        Spec("pytorch-gpu", "2.1.2", "cuda120py310h0_300", depends=("pytorch 2.1.2 cuda120*",)),
    ]
    for release in ("12.4.1", "12.6.2", "12.9.1"):
        minor = release.rsplit(".", 1)[0]
        major, low = minor.split(".")
        pin = f"cuda-version >={minor},<{major}.{int(low) + 1}.0a0"
        specs.append(Spec("cuda", release, "ha804496_0", "noarch", depends=(pin, f"cuda-cudart {minor}.*")))
    for minor, full in (("12.4", "10.3.5.147"), ("12.9", "10.3.10.19")):
        major, low = minor.split(".")
        pin = f"cuda-version >={minor},<{major}.{int(low) + 1}.0a0"
        specs.append(Spec("libcurand", full, "h3a7a9d0_0", depends=(pin, GLIBC)))
    return specs


def make_channel(root: Path) -> Path:
    channel = root / "channel"
    for spec in conda_forge_like():
        build_package(channel, spec)
    index(channel)
    return channel
