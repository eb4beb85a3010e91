"""The bench's conda envs (10 and 300 packages), written as conda writes a prefix's metadata.

Both are the "toolkit newer than the driver" case: CUDA 12.9 parts, planned down to 12.4. Their
records come from the generator's core, which every channel size holds byte for byte, so the same
env plans against every channel. Only ``conda-meta/`` is written (records + ``history``): planning
and ``conda install --dry-run`` read nothing else, and no package file has to exist.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gen

CHANNEL_URL = "https://conda.anaconda.org/conda-forge"
CREATED = "2026-10-01 12:00:00"


def _key(rec: gen.Rec) -> tuple[object, int]:
    from rattler import Version

    return (Version(rec.version), rec.build_number)


def _fits(rec: gen.Rec) -> bool:
    """A record an env of python 3.12 with CUDA 12.9 would hold."""
    tag = gen.ENV_PYTHON.replace(".", "")
    if rec.name == "python":
        return rec.version.startswith(gen.ENV_PYTHON + ".")
    if rec.name == "python_abi":
        return rec.version == gen.ENV_PYTHON
    if rec.name == "cuda-version":
        return rec.version == gen.ENV_CUDA
    if any(d.startswith("cuda-version >=") and "," in d for d in rec.depends) and rec.name != "cupy":
        return f"cuda-version >={gen.ENV_CUDA}," in " ".join(rec.depends)
    if rec.name == "cupy":
        return rec.build.startswith(f"py{tag}h12")
    if rec.build.startswith("py") and not rec.build.startswith("pyh"):
        return rec.build.startswith(f"py{tag}")
    return True


# numba-cuda 0.25 links through nvJitLink into SASS: an env holding it needs no pin (issue 21's pin rule), and
# condafix would have nothing to plan. The bench envs leave it out: numba's own ``numba.cuda`` hands PTX to the
# driver's JIT, so every tool (condafix, conda, micromamba, the bare solve) plans the same cuda-version move.
LEFT_OUT = ("numba-cuda",)


def env_names(size: int) -> list[str]:
    """The env's package names: ``size`` is its name (env10, env300), less :data:`LEFT_OUT`."""
    if size == 10:
        return [n for n in gen.ENV10 if n not in LEFT_OUT]
    names = [n.name for n in gen.core_names() if n.name not in gen.NOT_IN_ENV]
    return [n for n in dict.fromkeys([*gen.ENV10, *names, *gen.ENV_CUDA_NAMES]) if n not in LEFT_OUT]


def env_records(size: int) -> list[gen.Rec]:
    wanted = set(env_names(size))
    best: dict[str, gen.Rec] = {}
    for rec in (*gen.cuda_records(), *gen.core_records(0.0)):  # base versions: in every size
        if rec.name in wanted and _fits(rec) and (rec.name not in best or _key(rec) > _key(best[rec.name])):
            best[rec.name] = rec
    missing = wanted - best.keys()
    if missing:
        raise SystemExit(f"bench env: no record for {sorted(missing)}")
    return [best[n] for n in sorted(best)]


def requested_specs(records: list[gen.Rec]) -> list[str]:
    """What the user asked for (conda-meta/history): python, numba-cuda and every installed name
    nothing else in the env depends on, as an env built by ``conda install`` calls would record."""
    needed = {d.split()[0] for rec in records for d in rec.depends}
    leaves = sorted(r.name for r in records if r.name not in needed and r.name not in ("python", "numba-cuda"))
    asked = ["numba-cuda"] if any(r.name == "numba-cuda" for r in records) else []
    return [f"python={gen.ENV_PYTHON}", *asked, *leaves]


def write_env(prefix: Path, size: int) -> list[gen.Rec]:
    """Write ``prefix/conda-meta`` for the env named ``size`` (replacing what was there)."""
    if prefix.exists():
        shutil.rmtree(prefix)
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True)
    records = env_records(size)
    specs = requested_specs(records)
    requested = {s.split("=")[0]: s for s in specs}
    lines = [f"==> {CREATED} <==", f"# cmd: conda create -n {prefix.name} {' '.join(specs)}", "# conda version: 26.7.1"]
    for rec in records:
        stem = rec.fn[: -len(".conda")]
        base = f"{CHANNEL_URL}/{rec.subdir}"
        data = rec.as_dict(binary=False)
        data.update(
            channel=base,
            constrains=rec.constrains,
            extracted_package_dir=f"/opt/conda/pkgs/{stem}",
            files=[],
            fn=rec.fn,
            link={"source": f"/opt/conda/pkgs/{stem}", "type": 1},
            package_tarball_full_path=f"/opt/conda/pkgs/{rec.fn}",
            paths_data={"paths": [], "paths_version": 1},
            requested_spec=requested.get(rec.name, "None"),
            url=f"{base}/{rec.fn}",
        )
        (meta / f"{stem}.json").write_text(json.dumps(data, indent=2, sort_keys=True))
        lines.append(f"+conda-forge/{rec.subdir}::{stem}")
    lines.append(f"# update specs: {specs!r}")
    (meta / "history").write_text("\n".join(lines) + "\n")
    return records


def write_big_env(prefix: Path, count: int) -> None:
    """An env of ``count`` records (issue 23: doctor and planning must stay linear in the env's size).

    The 300-package env, then ``count - 300`` leaf packages of their own (``bench-local-NNNNN``, no
    dependencies, not on the channel: what a big env built from many channels and local builds holds;
    solvers keep installed records they cannot find). Written once: the same count is left as it is.
    """
    meta = prefix / "conda-meta"
    if meta.is_dir() and sum(1 for p in meta.iterdir() if p.suffix == ".json") == count:
        return
    write_env(prefix, 300)
    have = sum(1 for p in meta.iterdir() if p.suffix == ".json")
    base = f"{CHANNEL_URL}/linux-64"
    lines = []
    for number in range(count - have):
        name, version, build = f"bench-local-{number:05d}", f"1.{number % 17}.0", "h0123456_0"
        stem = f"{name}-{version}-{build}"
        record = {
            "build": build,
            "build_number": 0,
            "channel": base,
            "constrains": [],
            "depends": [],
            "extracted_package_dir": f"/opt/conda/pkgs/{stem}",
            "files": [f"lib/lib{name}.so"],
            "fn": f"{stem}.conda",
            "license": "MIT",
            "link": {"source": f"/opt/conda/pkgs/{stem}", "type": 1},
            "md5": f"{number:032x}",
            "name": name,
            "package_tarball_full_path": f"/opt/conda/pkgs/{stem}.conda",
            "paths_data": {"paths": [], "paths_version": 1},
            "requested_spec": name,
            "sha256": f"{number:064x}",
            "size": 4096,
            "subdir": "linux-64",
            "timestamp": 1759320000000,
            "url": f"{base}/{stem}.conda",
            "version": version,
        }
        (meta / f"{stem}.json").write_text(json.dumps(record, indent=2, sort_keys=True))
        lines.append(f"+conda-forge/linux-64::{stem}")
    with (meta / "history").open("a") as history:
        history.write(f"==> {CREATED} <==\n# cmd: conda install -n {prefix.name} bench-local-*\n")
        history.write("\n".join(lines) + "\n")


BIG_ENV = 20_000  # records in the big env (issue 23)
