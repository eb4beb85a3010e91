"""Which NVVM / nvJitLink / NVRTC each consumer loads, and what doctor then says: the measured GPU cells.

Expectations come from gpu-notes.md ("Which library gets loaded", H200, driver 580.159.04 = CUDA 13.0,
numba 0.68, numba-cuda 0.30.4, 2026-12-02) and from the consumers' own code, not from condafix:
- numba-cuda with no NVVM wheel loaded NVVM from ``CUDA_HOME``: a 13.2 toolkit there + an nvJitLink 13.0
  wheel failed ``ERROR_OUTDATED_LIBRARY``; with no nvJitLink wheel it loaded the system toolkit's
  ``libnvJitLink.so.13`` (13.0, in the loader cache): NVVM 13.2 wheel + that library failed
  ``ERROR_OUTDATED_LIBRARY``, not 222. A pip wheel comes first in its search order.
- numba's built-in target never looks at pip NVVM wheels: next to an NVVM 13.2 wheel it loaded the system
  toolkit's NVVM 13.0 and the kernel ran; with ``CUDA_HOME`` at a 13.2 toolkit it failed 222.
- CuPy with NVRTC 13.2 runs by default (cubin) and fails with ``CUPY_COMPILE_WITH_PTX=1``.
The filesystems are built the way the real toolkits and wheels lay out their files: a toolkit's
``version.json`` and versioned ``libnvJitLink.so.13.0.88``, a wheel's ``nvidia/cu13/lib/libnvvm.so.4`` listed
in its dist-info RECORD. Only the GPU is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from condafix.detect import driver, libsources
from condafix.detect.libsources import Host
from condafix.diagnose import compilepath, verdict
from condafix.env import envinfo

DRIVER = "13.0"  # driver 580.159.04
FULL = {"13.0": "13.0.88", "13.2": "13.2.86"}


# ---------------------------------------------------------------- real layouts, fake bytes


def _lib(directory: Path, real: str, *links: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / real).write_bytes(b"\x7fELF fake")
    for link in links:
        (directory / link).symlink_to(real)
    return directory / real


def toolkit(root: Path, cuda: str) -> Path:
    """A CUDA toolkit as NVIDIA's runfile installs it (``/usr/local/cuda-13.0``)."""
    full = FULL[cuda]
    lib = root / "targets" / "x86_64-linux" / "lib"
    _lib(lib, f"libnvJitLink.so.{full}", "libnvJitLink.so.13", "libnvJitLink.so")
    _lib(lib, f"libnvrtc.so.{full}", "libnvrtc.so.13", "libnvrtc.so")
    _lib(lib, f"libcudart.so.{cuda}.96", "libcudart.so.13", "libcudart.so")
    (root / "lib64").symlink_to("targets/x86_64-linux/lib")
    _lib(root / "nvvm" / "lib64", "libnvvm.so.4.0.0", "libnvvm.so.4", "libnvvm.so")
    (root / "version.json").write_text(
        json.dumps(
            {
                "cuda": {"name": "CUDA SDK", "version": f"{cuda}.0"},
                "libnvjitlink": {"name": "JIT Linker Library", "version": full},
                "libnvvm": {"name": "NVVM", "version": full},
                "cuda_nvrtc": {"name": "CUDA NVRTC", "version": full},
            }
        )
    )
    return root


WHEELS = {  # PyPI name -> (dist-info stem, files it installs)
    "nvidia-nvvm": ("nvidia_nvvm", ("nvidia/cu13/lib/libnvvm.so.4",)),
    "nvidia-nvjitlink": ("nvidia_nvjitlink", ("nvidia/cu13/lib/libnvJitLink.so.13",)),
    "nvidia-cuda-nvrtc": ("nvidia_cuda_nvrtc", ("nvidia/cu13/lib/libnvrtc.so.13",)),
}


def venv(root: Path, wheels: dict[str, str], consumers: dict[str, str]) -> Path:
    """A pip venv: NVIDIA's cu13 wheels (files + RECORD) and consumers (dist-info only)."""
    site = root / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for name, cuda in wheels.items():
        stem, files = WHEELS[name]
        info = site / f"{stem}-{FULL[cuda]}.dist-info"
        info.mkdir()
        (info / "RECORD").write_text("".join(f"{f},sha256=x,9\n" for f in files))
        for rel in files:
            _lib((site / rel).parent, Path(rel).name)
    for dist, version in consumers.items():
        (site / f"{dist}-{version}.dist-info").mkdir()
    return root


def host(prefix: Path, system: Path | None, **extra: object) -> Host:
    """The H200 image: the system toolkit's lib64 in the loader cache (``/etc/ld.so.conf.d``), its NVVM not."""
    sites = tuple(str(p) for p in sorted(prefix.glob("lib/python3*/site-packages")))
    cache = (str(system / "lib64"),) if system else ()
    args: dict[str, object] = {
        "prefix": str(prefix),
        "conda_env": False,
        "site_packages": sites,
        "loader_cache": cache,
        "system_ctk": str(system) if system else "/nonexistent/cuda",
        "default_loader_dirs": (),
    }
    args.update(extra)
    return Host(**args)  # type: ignore[arg-type]


def doctor(prefix: Path, where: Host, env_vars: dict[str, str] | None = None) -> verdict.DoctorReport:
    env = envinfo.read_env(prefix, "-p")
    return verdict.diagnose(driver.detect(cuda=DRIVER), env, env_vars=env_vars or {}, host=where)


def lib_of(report: verdict.DoctorReport, library: str) -> libsources.LoadedLibrary:
    (path,) = report.compile_paths
    return next(lib for lib in path.libraries if lib.library == library)


# ---------------------------------------------------------------- the measured cells


def test_numba_cuda_takes_nvvm_from_cuda_home_and_fails_against_an_older_nvjitlink_wheel(tmp_path: Path) -> None:
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    home = toolkit(tmp_path / "cuda-13.2", "13.2")
    prefix = venv(tmp_path / "env", {"nvidia-nvjitlink": "13.0"}, {"numba_cuda": "0.30.4"})
    report = doctor(prefix, host(prefix, system, cuda_home=str(home)))
    nvvm, link = lib_of(report, "nvvm"), lib_of(report, "nvJitLink")
    assert (nvvm.found_via, nvvm.path, nvvm.version) == (
        "CUDA_HOME",
        str(home / "nvvm" / "lib64" / "libnvvm.so.4"),
        "13.2",
    )
    assert "version.json" in nvvm.version_source
    assert (link.found_via, link.version, link.version_source) == (
        "site-packages",
        "13.0",
        "RECORD of nvidia_nvjitlink-13.0.88.dist-info",
    )
    (path,) = report.compile_paths
    assert (path.path, path.outcome) == ("nvjitlink", "link-fails")
    assert report.status == "mismatch"  # doctor said ok at b1aaa3b; the kernel failed
    failing = [f for f in report.findings if f.code == "nvjitlink_older"]
    assert failing and "ERROR_OUTDATED_LIBRARY" in failing[0].message and str(home) in failing[0].message
    assert report.fix is not None and report.fix.commands == ('pip install "nvidia-nvjitlink==13.2.*"',)
    wheel = next(v for v in report.verdicts if v.name == "nvidia-nvjitlink")
    assert (wheel.verdict, wheel.severity) == ("mixed", "error")


def test_numba_cuda_without_an_nvjitlink_wheel_links_with_the_system_one(tmp_path: Path) -> None:
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    prefix = venv(tmp_path / "env", {"nvidia-nvvm": "13.2"}, {"numba_cuda": "0.30.4"})
    report = doctor(prefix, host(prefix, system))
    link = lib_of(report, "nvJitLink")
    assert (link.found_via, Path(link.path or "").name, link.version) == (
        "system-search",
        "libnvJitLink.so.13",
        "13.0",
    )
    (path,) = report.compile_paths
    # ERROR_OUTDATED_LIBRARY, not 222: the link fails before any PTX reaches the driver
    assert (path.path, path.outcome, path.writer_cuda, path.linker_cuda) == ("nvjitlink", "link-fails", "13.2", "13.0")
    assert report.status == "mismatch" and "ERROR_OUTDATED_LIBRARY" in path.message


def test_numba_cuda_prefers_the_wheel_to_cuda_home(tmp_path: Path) -> None:
    """A pip wheel comes first in its search order: NVVM 13.2 + nvJitLink 13.2 wheels run, CUDA_HOME unused."""
    home = toolkit(tmp_path / "cuda-13.0", "13.0")
    prefix = venv(tmp_path / "env", {"nvidia-nvvm": "13.2", "nvidia-nvjitlink": "13.2"}, {"numba_cuda": "0.30.4"})
    report = doctor(prefix, host(prefix, None, cuda_home=str(home)))
    assert {lib.library: lib.found_via for lib in report.compile_paths[0].libraries} == {
        "nvvm": "site-packages",
        "nvJitLink": "site-packages",
    }
    assert (report.compile_paths[0].outcome, report.status) == ("ok", "ok")


def test_numba_cuda_with_no_nvjitlink_anywhere_hands_ptx_to_the_driver(tmp_path: Path) -> None:
    prefix = venv(tmp_path / "env", {"nvidia-nvvm": "13.2"}, {"numba_cuda": "0.30.4"})
    report = doctor(prefix, host(prefix, None))
    (path,) = report.compile_paths
    assert (path.path, path.outcome, report.status) == ("driver-jit", "jit-fails", "mismatch")  # 222


def test_builtin_numba_ignores_the_nvvm_wheel_and_runs_on_the_system_nvvm(tmp_path: Path) -> None:
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    prefix = venv(tmp_path / "env", {"nvidia-nvvm": "13.2"}, {"numba": "0.68.0"})
    report = doctor(prefix, host(prefix, system))
    nvvm = lib_of(report, "nvvm")
    assert (nvvm.found_via, nvvm.path, nvvm.version) == (
        "System",
        str(system / "nvvm" / "lib64" / "libnvvm.so.4.0.0"),
        "13.0",
    )
    (path,) = report.compile_paths
    assert (path.path, path.outcome, path.writer_cuda) == ("driver-jit", "ok", "13.0")
    wheel = next(v for v in report.verdicts if v.name == "nvidia-nvvm")
    assert wheel.severity in ("ok", "info") and "not loaded" in wheel.reason  # b1aaa3b: a mismatch
    assert report.status == "ok" and report.fix is None


def test_builtin_numba_with_cuda_home_at_a_newer_toolkit_fails_222(tmp_path: Path) -> None:
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    home = toolkit(tmp_path / "cuda-13.2", "13.2")
    prefix = venv(tmp_path / "env", {}, {"numba": "0.68.0"})
    report = doctor(prefix, host(prefix, system, cuda_home=str(home)))
    assert lib_of(report, "nvvm").found_via == "CUDA_HOME"
    (path,) = report.compile_paths
    assert (path.path, path.outcome, path.writer_cuda, report.status) == ("driver-jit", "jit-fails", "13.2", "mismatch")


@pytest.mark.parametrize(("ptx", "outcome"), [(None, "ok"), ("1", "jit-fails")])
def test_cupy_is_judged_by_the_nvrtc_it_loads(tmp_path: Path, ptx: str | None, outcome: str) -> None:
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    prefix = venv(tmp_path / "env", {"nvidia-cuda-nvrtc": "13.2"}, {"cupy_cuda13x": "14.2.0"})
    env_vars = {"CUPY_COMPILE_WITH_PTX": ptx} if ptx else {}
    report = doctor(prefix, host(prefix, system), env_vars)
    nvrtc = lib_of(report, "nvrtc")
    assert (nvrtc.found_via, nvrtc.version) == ("site-packages", "13.2")
    assert report.compile_paths[0].outcome == outcome


def test_cupy_with_the_system_nvrtc_is_not_judged_by_an_nvvm_wheel(tmp_path: Path) -> None:
    """NVRTC 13.0 runs with and without CUPY_COMPILE_WITH_PTX; an NVVM 13.2 wheel beside it is not CuPy's."""
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    prefix = venv(tmp_path / "env", {"nvidia-nvvm": "13.2"}, {"cupy_cuda13x": "14.2.0"})
    report = doctor(prefix, host(prefix, system), {"CUPY_COMPILE_WITH_PTX": "1"})
    (path,) = report.compile_paths
    assert (path.writer_cuda, path.outcome) == ("13.0", "ok")
    assert path.writer == str(system / "lib64" / "libnvrtc.so.13")
    assert report.status != "mismatch"


# ---------------------------------------------------------------- the search orders themselves


def test_pathfinder_order_site_packages_conda_loader_then_cuda_path_over_cuda_home(tmp_path: Path) -> None:
    conda = tmp_path / "conda"
    _lib(conda / "lib", "libnvJitLink.so.13.0.88", "libnvJitLink.so.13")
    cache = toolkit(tmp_path / "cached", "13.0")
    home, path = toolkit(tmp_path / "home", "13.2"), toolkit(tmp_path / "path", "13.0")
    prefix = venv(tmp_path / "env", {"nvidia-nvjitlink": "13.2"}, {})
    base = host(prefix, None)
    assert libsources.pathfinder(base, "nvJitLink").found_via == "site-packages"
    bare = Host(prefix=str(prefix), conda_env=False, conda_prefix=str(conda), default_loader_dirs=())
    assert libsources.pathfinder(bare, "nvJitLink").found_via == "conda"
    loader = Host(prefix=None, conda_env=False, loader_cache=(str(cache / "lib64"),), cuda_home=str(home))
    assert libsources.pathfinder(loader, "nvJitLink").found_via == "system-search"
    both = Host(prefix=None, conda_env=False, cuda_home=str(home), cuda_path=str(path), default_loader_dirs=())
    found = libsources.pathfinder(both, "nvJitLink")
    assert (found.found_via, found.version) == ("CUDA_PATH", "13.0")  # get_cuda_path_or_home: CUDA_PATH first


def test_pathfinder_finds_the_system_nvvm_through_libcudart(tmp_path: Path) -> None:
    """NVVM is not in the loader cache; pathfinder derives the toolkit root from libcudart, which is."""
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    found = libsources.numba_cuda_nvvm(host(tmp_path, system))
    assert (found.found_via, found.version) == ("system-ctk-root", "13.0")


def test_an_empty_cuda_home_does_not_stop_pathfinder_s_libcudart_step(tmp_path: Path) -> None:
    """load_nvidia_dynamic_lib tries the CTK root of libcudart after CUDA_PATH/CUDA_HOME found nothing."""
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    empty = tmp_path / "empty-home"
    empty.mkdir()
    found = libsources.numba_cuda_nvvm(host(tmp_path, system, cuda_home=str(empty)))
    assert (found.found_via, found.version) == ("system-ctk-root", "13.0")
    nothing = libsources.numba_cuda_nvvm(host(tmp_path, None, cuda_home=str(empty)))
    assert nothing.path is None and "CUDA_HOME/CUDA_PATH is set" in nothing.found_via


def test_builtin_numba_takes_cuda_home_even_when_it_holds_no_nvvm(tmp_path: Path) -> None:
    """numba's get_cuda_home joins the path without looking; get_cudalib then falls back to dlopen."""
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    empty = tmp_path / "empty-home"
    empty.mkdir()
    found = libsources.numba_builtin_nvvm(host(tmp_path, system, cuda_home=str(empty)))
    assert found.path is None and "CUDA_HOME had none" in found.found_via
    _lib(tmp_path / "ldpath", "libnvvm.so")
    found = libsources.numba_builtin_nvvm(
        host(tmp_path, system, cuda_home=str(empty), ld_library_path=(str(tmp_path / "ldpath"),))
    )
    assert found.path == str(tmp_path / "ldpath" / "libnvvm.so") and found.found_via.startswith("dlopen")


def test_builtin_numba_in_a_conda_env_takes_the_env_nvvm(tmp_path: Path) -> None:
    prefix = tmp_path / "conda-env"
    (prefix / "conda-meta").mkdir(parents=True)
    _lib(prefix / "nvvm" / "lib64", "libnvvm.so.4.0.0", "libnvvm.so.4")
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    where = Host(prefix=str(prefix), conda_env=True, conda_prefix=str(prefix), system_ctk=str(system))
    found = libsources.numba_builtin_nvvm(where)
    assert (found.found_via, found.path) == (
        "Conda environment (NVIDIA package)",
        str(prefix / "nvvm" / "lib64" / "libnvvm.so.4.0.0"),
    )


def test_host_reads_the_loader_config_and_the_users_variables(tmp_path: Path) -> None:
    conf = tmp_path / "ld.so.conf"
    (tmp_path / "ld.so.conf.d").mkdir()
    conf.write_text("include ld.so.conf.d/*.conf\n# comment\n/opt/extra\n")
    (tmp_path / "ld.so.conf.d" / "zz-cuda-13-0.conf").write_text("/usr/local/cuda-13.0/targets/x86_64-linux/lib\n")
    prefix = venv(tmp_path / "env", {}, {})
    got = libsources.host_for(str(prefix), "venv", {"CUDA_HOME": "/h", "LD_LIBRARY_PATH": "/a::/b"}, ld_conf=conf)
    assert got.loader_cache == ("/usr/local/cuda-13.0/targets/x86_64-linux/lib", "/opt/extra")
    assert (got.cuda_home, got.ld_library_path, got.conda_prefix, got.rpath) == ("/h", ("/a", "/b"), None, ())
    conda = libsources.host_for(str(prefix), "conda", {}, ld_conf=conf)
    assert conda.conda_prefix == str(prefix) and conda.rpath == (str(prefix / "lib"),)


def test_without_a_host_doctor_keeps_reading_the_envs_packages(tmp_path: Path) -> None:
    """No variables, no host: the packages of the env stand in (the old reading, for unit callers)."""
    prefix = venv(tmp_path / "env", {"nvidia-nvvm": "13.2", "nvidia-nvjitlink": "13.0"}, {"numba_cuda": "0.30.4"})
    env = envinfo.read_env(prefix, "-p")
    report = verdict.diagnose(driver.detect(cuda=DRIVER), env)
    assert report.compile_paths[0].libraries == () and report.compile_paths[0].outcome == "link-fails"


# ---------------------------------------------------------------- asking the env's own interpreter


def test_parse_answer_prefers_the_library_s_own_version(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "libraries": [
                {"library": "nvJitLink", "path": "/x/libnvJitLink.so.13", "found_via": "conda", "version": "13.2"},
                {"library": "nvvm", "path": None, "found_via": "not found", "error": "DynamicLibNotFoundError"},
            ]
        }
    )
    got = libsources.parse_answer("numba-cuda", "noise\n" + line, Host(prefix=None, conda_env=False))
    assert got is not None
    assert [(g.library, g.version, g.how, g.consumer) for g in got] == [
        ("nvJitLink", "13.2", "asked", "numba-cuda"),
        ("nvvm", None, "asked", "numba-cuda"),
    ]
    assert libsources.parse_answer("cupy", "no json here", Host(prefix=None, conda_env=False)) is None


def test_ask_without_an_interpreter_is_none(tmp_path: Path) -> None:
    prefix = venv(tmp_path / "env", {}, {"numba": "0.68.0"})
    assert libsources.ask("numba", host(prefix, None), {}) is None


NUMBA_VENV = "CONDAFIX_TEST_NUMBA_PYTHON"  # a python with numba 0.68 (no numba-cuda); tests/gpu/README


@pytest.fixture(scope="module")
def numba_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv with numba 0.68 (its built-in CUDA target); built once, offline where the index is local."""
    given = os.environ.get(NUMBA_VENV)
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("numba-venv") / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, check=False, timeout=300)
    python = root / "bin" / "python"
    if made.returncode != 0:
        pytest.skip("cannot create a venv here")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "numba==0.68.0"], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.skip(f"numba 0.68 is not installable here: {done.stderr[-300:]}")
    return python


@pytest.fixture
def real_nvvm() -> Path:
    site = os.environ.get("CONDAFIX_TEST_NVVM_SITE")
    found = sorted(Path(site).glob("nvidia/cuda_nvcc/nvvm/lib64/libnvvm.so")) if site else []
    if not found:
        pytest.skip("set CONDAFIX_TEST_NVVM_SITE to a dir with nvidia-cuda-nvcc-cu12 installed (.ci/run does)")
    return found[0]


def test_numbas_own_finder_in_the_envs_python_agrees_with_the_model(
    numba_python: Path, real_nvvm: Path, tmp_path: Path
) -> None:
    """numba's get_cudalib + dlopen of a real libNVVM in a real interpreter: the file it mapped is
    ``$CUDA_HOME``'s, as the model says, and the version comes from that toolkit's version.json."""
    home = tmp_path / "cuda-12.4"
    (home / "nvvm" / "lib64").mkdir(parents=True)
    (home / "nvvm" / "lib64" / "libnvvm.so.4").symlink_to(real_nvvm)
    (home / "version.json").write_text(json.dumps({"cuda": {"version": "12.4.1"}, "libnvvm": {"version": "12.4.131"}}))
    prefix = numba_python.parent.parent
    where = libsources.host_for(str(prefix), "venv", {"CUDA_HOME": str(home)})
    asked = libsources.ask("numba", where, {"CUDA_HOME": str(home)})
    assert asked is not None, "the env's python could not answer"
    (nvvm,) = asked
    assert (nvvm.how, nvvm.found_via, nvvm.version) == ("asked", "CUDA_HOME", "12.4")
    assert nvvm.path == str(home / "nvvm" / "lib64" / "libnvvm.so.4")
    (model,) = libsources.consumer_libraries("numba", where)
    assert (model.found_via, model.path, model.version) == (nvvm.found_via, nvvm.path, nvvm.version)


# ---------------------------------------------------------------- the GPU captures (tests/gpu/matrix_sources.py)

CAPTURES = Path(__file__).parent / "fixtures" / "gpu"
MARKS = {"libnvvm": "nvvm", "libnvJitLink": "nvJitLink", "libnvrtc.so": "nvrtc"}


def _measured_libraries(row: dict[str, object], kind: str) -> tuple[libsources.LoadedLibrary, ...]:
    """The files the kernel's process mapped, with the CUDA version each has by construction of the cell:
    the cell's wheels and CUDA_HOME hold what the spec put there, anything else is the image's 13.0."""
    spec = row["spec"]
    kernel = row["kernel"]
    assert isinstance(spec, dict) and isinstance(kernel, dict)
    wheels = {"nvvm": "nvvm", "nvJitLink": "nvjitlink", "nvrtc": "cuda_nvrtc"}
    found = []
    for mark, path in dict(kernel.get("mapped") or {}).items():
        library = MARKS[mark]
        in_site = "/site-packages/" in path and str(row["prefix"]) in path
        if in_site:
            version = dict(spec.get("wheels") or {}).get(wheels[library], "13.0")
        elif spec.get("cuda_home") and "cuda-home" in path:
            version = str(spec["cuda_home"])
        else:
            version = "13.0"
        version = "13.0" if version == "image" else version
        found.append(
            libsources.LoadedLibrary(
                library=library,
                path=path,
                found_via="mapped",
                version=version,
                version_source="the cell",
                how="asked",
                order="measured",
                consumer=kind,
            )
        )
    return tuple(found)


def replay(capture: dict[str, object], tmp_path: Path) -> list[str]:
    """Every GPU cell against condafix: the verdict on the measured files must say whether the kernel ran,
    and the files doctor said the consumer loads must be the ones its process mapped."""
    problems: list[str] = []
    cells = capture["cells"]
    assert isinstance(cells, list) and cells
    for row in cells:
        name, spec, kernel = row["cell"], row["spec"], row["kernel"]
        kind = spec["consumer"]
        prefix = tmp_path / name
        site = prefix / "lib" / "python3.12" / "site-packages"
        site.mkdir(parents=True)
        (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
        for entry in row["site_packages"]:
            if entry.endswith(".dist-info"):
                (site / entry).mkdir()
        env = envinfo.read_env(prefix, "-p")
        libraries = {kind: _measured_libraries(row, kind)}
        paths = compilepath.compile_paths(
            env, driver.detect(cuda=DRIVER).cuda_version, env_vars=spec.get("env") or {}, libraries=libraries
        )
        (path,) = paths
        if (path.outcome == "ok") is not bool(kernel.get("ran")):
            problems.append(f"{name}: verdict {path.outcome} on the mapped files, kernel ran={kernel.get('ran')}")
        predicted = row["doctor_probe"]["compile_paths"] or row["doctor"]["compile_paths"]
        said = {lib["library"]: lib["path"] for lib in (predicted[0]["libraries"] if predicted else [])}
        for lib in libraries[kind]:
            want = os.path.realpath(lib.path or "")
            if lib.library in said and os.path.realpath(said[lib.library] or "") != want:
                problems.append(f"{name}: doctor said {lib.library} {said[lib.library]}, the kernel mapped {want}")
        status = row["doctor"]["status"]
        if (status != "mismatch") is not bool(kernel.get("ran")):
            problems.append(f"{name}: doctor status {status}, kernel ran={kernel.get('ran')}")
    return problems


def test_the_gpu_sources_matrix_is_predicted(tmp_path: Path) -> None:
    captures = sorted(CAPTURES.glob("sources-matrix*.json"))
    if not captures:
        pytest.skip("no capture yet: run tests/gpu/matrix_sources.py on the GPU machine, keep sources-matrix-*.json")
    for number, capture in enumerate(captures):
        assert replay(json.loads(capture.read_text()), tmp_path / str(number)) == [], capture.name


def _row(name: str, spec: dict[str, object], sites: list[str], mapped: dict[str, str], ran: bool) -> dict[str, object]:
    """One cell shaped as matrix_sources.py writes it, outcomes from gpu-notes.md."""
    prefix = f"/tmp/condafix-sources/cells/{name}"
    libs = [{"library": MARKS[m], "path": p} for m, p in mapped.items()]
    doctor = {"status": "ok" if ran else "mismatch", "compile_paths": [{"libraries": libs}]}
    return {
        "cell": name,
        "spec": spec,
        "prefix": prefix,
        "site_packages": sites,
        "kernel": {"ran": ran, "mapped": {m: p.replace("CELL", prefix) for m, p in mapped.items()}},
        "doctor": doctor,
        "doctor_probe": {
            "compile_paths": [{"libraries": [{**x, "path": x["path"].replace("CELL", prefix)} for x in libs]}]
        },
    }


def test_the_replay_catches_a_wrong_prediction(tmp_path: Path) -> None:
    site = "CELL/lib/python3.12/site-packages/nvidia/cu13/lib"
    rows = [
        _row(
            "nc-cudahome-nvvm13.2-njl13.0wheel",
            {"consumer": "numba-cuda", "wheels": {"nvjitlink": "image"}, "cuda_home": "13.2"},
            ["numba_cuda-0.30.4.dist-info", "numba-0.68.0.dist-info", "nvidia_nvjitlink-13.0.88.dist-info"],
            {
                "libnvvm": "/tmp/condafix-sources/cuda-home-13.2/nvvm/lib64/libnvvm.so.4",
                "libnvJitLink": f"{site}/libnvJitLink.so.13",
            },
            False,
        ),
        _row(
            "builtin-nvvm13.2wheel-system",
            {"consumer": "numba", "wheels": {"nvvm": "13.2"}},
            ["numba-0.68.0.dist-info", "nvidia_nvvm-13.2.86.dist-info"],
            {"libnvvm": "/usr/local/cuda-13.0/nvvm/lib64/libnvvm.so.4.0.0"},
            True,
        ),
        _row(
            "cupy-nvrtc13.2wheel-ptx",
            {"consumer": "cupy", "wheels": {"cuda_nvrtc": "13.2"}, "env": {"CUPY_COMPILE_WITH_PTX": "1"}},
            ["cupy_cuda13x-14.2.0.dist-info", "nvidia_cuda_nvrtc-13.2.86.dist-info"],
            {"libnvrtc.so": f"{site}/libnvrtc.so.13"},
            False,
        ),
    ]
    assert replay({"cells": rows}, tmp_path / "right") == []
    wrong = json.loads(json.dumps(rows))
    wrong[1]["kernel"]["ran"] = False  # as if the built-in target had failed on the system NVVM 13.0
    wrong[0]["doctor"]["compile_paths"][0]["libraries"][0]["path"] = "/elsewhere/libnvvm.so.4"
    wrong[0]["doctor_probe"]["compile_paths"] = []
    problems = replay({"cells": wrong}, tmp_path / "wrong")
    assert any(p.startswith("builtin-nvvm13.2wheel-system: verdict ok") for p in problems)
    assert any("doctor said nvvm /elsewhere/libnvvm.so.4" in p for p in problems)


@pytest.mark.gpu
def test_the_gpu_sources_matrix_live(tmp_path: Path) -> None:
    """On the GPU machine: CONDAFIX_SOURCES_CARRY holds the prepared 13.2 libraries (matrix_sources.py prepare)."""
    carry = os.environ.get("CONDAFIX_SOURCES_CARRY")
    if not carry or not Path("/opt/torch/.venv").is_dir() or shutil.which("nvidia-smi") is None:
        pytest.skip("needs the GPU image (/opt/torch/.venv, nvidia-smi) and CONDAFIX_SOURCES_CARRY")
    script = Path(__file__).parent / "gpu" / "matrix_sources.py"
    subprocess.run([sys.executable, str(script), "run", carry, str(tmp_path / "out")], check=True, timeout=1800)
    (capture,) = sorted((tmp_path / "out").glob("sources-matrix*.json"))
    assert replay(json.loads(capture.read_text()), tmp_path / "replay") == []


def test_doctor_probe_compiles_with_the_nvvm_numba_loads(numba_python: Path, real_nvvm: Path, tmp_path: Path) -> None:
    """``--probe`` asks the env's python which NVVM numba's built-in target loads (here ``$CUDA_HOME``'s,
    a real NVVM 12.4) and compiles with that one: PTX 8.4, newer than a 12.2 driver's 8.2."""
    from condafix.detect import ptxprobe

    home = tmp_path / "cuda-12.4"
    (home / "nvvm" / "lib64").mkdir(parents=True)
    (home / "nvvm" / "lib64" / "libnvvm.so.4").symlink_to(real_nvvm)
    (home / "version.json").write_text(json.dumps({"cuda": {"version": "12.4.1"}}))
    prefix = numba_python.parent.parent
    result = ptxprobe.probe(prefix, driver.detect(cuda="12.2"), env={"CUDA_HOME": str(home)})
    assert result.nvvm is not None and result.nvvm.path == str(home / "nvvm" / "lib64" / "libnvvm.so.4")
    assert "asked" in result.nvvm.origin and (result.ptx_version, result.verdict) == ("8.4", "ptx-newer-than-driver")
    (nvvm,) = result.libraries
    assert (nvvm.consumer, nvvm.how, nvvm.found_via, nvvm.version) == ("numba", "asked", "CUDA_HOME", "12.4")


def test_a_conda_package_comes_before_the_system_toolkit_even_without_its_files(tmp_path: Path) -> None:
    """numba's built-in target searches the conda env before /usr/local/cuda; a record (here without its
    files, as in a fake prefix) therefore stands in for the env's NVVM, never the system's 13.0."""
    from .conftest import write_record

    prefix = tmp_path / "conda-env"
    (prefix / "conda-meta").mkdir(parents=True)
    write_record(prefix / "conda-meta", "cudatoolkit", "11.7.1", "h4bc3d14_13")
    write_record(prefix / "conda-meta", "numba", "0.56.4", "py310h0e39c9b_1")
    system = toolkit(tmp_path / "usr-local-cuda-13.0", "13.0")
    env = envinfo.read_env(prefix, "-p")
    where = Host(prefix=str(prefix), conda_env=True, conda_prefix=str(prefix), system_ctk=str(system))
    report = verdict.diagnose(driver.detect(cuda="11.8"), env, env_vars={}, host=where)
    (path,) = report.compile_paths
    (nvvm,) = path.libraries
    assert (nvvm.how, nvvm.version, path.writer_cuda, path.outcome) == ("package", "11.7", "11.7", "ok")
    assert str(system) in nvvm.found_via and report.status == "ok"


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("libnvvm.so.4", True),
        ("libnvvm.so.4.0.0", True),
        ("libnvvm.so", False),  # find_lib wants the dot: a bare dev symlink is dlopen's, not find_lib's
        ("libnvvm.so.4_1", True),
        ("libnvvm.so.4.", False),
        ("libnvvm.so.a", False),
    ],
)
def test_builtin_numba_names_nvvm_files_as_find_lib_does(tmp_path: Path, name: str, found: bool) -> None:
    _lib(tmp_path / "nvvm" / "lib64", name)
    where = Host(prefix=None, conda_env=False, cuda_home=str(tmp_path), default_loader_dirs=())
    got = libsources.numba_builtin_nvvm(where)
    assert (got.path == str(tmp_path / "nvvm" / "lib64" / name)) is found
