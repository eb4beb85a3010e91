"""Shared fixtures: fake prefixes on disk, captured driver outputs, a fake nvidia-smi on PATH."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .realconda import real_conda  # noqa: F401  (fixture)

FIXTURES = Path(__file__).parent / "fixtures"

# (name, version, build, subdir) of real conda-forge packages, as conda-meta names them.
Pkg = tuple[str, str, str, str]


def write_record(
    meta: Path,
    name: str,
    version: str,
    build: str,
    subdir: str = "linux-64",
    channel: str = "conda-forge",
    requested: str | None = None,
) -> Path:
    """A conda-meta record with the keys conda 24.x writes."""
    fn = f"{name}-{version}-{build}"
    base = f"https://conda.anaconda.org/{channel}/{subdir}"
    record = {
        "build": build,
        "build_number": int(build.rsplit("_", 1)[-1]) if build.rsplit("_", 1)[-1].isdigit() else 0,
        "channel": base,
        "constrains": [],
        "depends": [],
        "extracted_package_dir": f"/opt/conda/pkgs/{fn}",
        "files": [],
        "fn": f"{fn}.conda",
        "license": "LicenseRef-NVIDIA-End-User-License-Agreement",
        "link": {"source": f"/opt/conda/pkgs/{fn}", "type": 1},
        "md5": "0" * 32,
        "name": name,
        "package_tarball_full_path": f"/opt/conda/pkgs/{fn}.conda",
        "paths_data": {"paths": [], "paths_version": 1},
        "requested_spec": requested or "None",
        "sha256": "0" * 64,
        "size": 21034,
        "subdir": subdir,
        "timestamp": 1716000000000,
        "url": f"{base}/{fn}.conda",
        "version": version,
    }
    path = meta / f"{fn}.json"
    path.write_text(json.dumps(record, indent=2))
    return path


@pytest.fixture
def make_prefix(tmp_path: Path) -> Callable[..., Path]:
    """Build a conda prefix on disk: records, a history file, and optional pip dist-infos."""

    def build(
        packages: list[Pkg], *, history: str = "", pip: tuple[tuple[str, str], ...] = (), name: str = "env"
    ) -> Path:
        prefix = tmp_path / "envs" / name
        meta = prefix / "conda-meta"
        meta.mkdir(parents=True)
        for pkg_name, version, build_str, subdir in packages:
            write_record(meta, pkg_name, version, build_str, subdir)
        (meta / "history").write_text(history)
        site = prefix / "lib" / "python3.12" / "site-packages"
        site.mkdir(parents=True)
        for dist, version in pip:
            info = site / f"{dist}-{version}.dist-info"
            info.mkdir()
            (info / "INSTALLER").write_text("pip\n")
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        return prefix

    return build


SEED_ENV: list[Pkg] = [
    ("python", "3.10.13", "hd12c33a_0_cpython", "linux-64"),
    ("numba", "0.56.4", "py310h0e39c9b_1", "linux-64"),
    ("cudatoolkit", "11.7.1", "h4bc3d14_13", "linux-64"),
    ("numpy", "1.23.5", "py310h53a5b5f_0", "linux-64"),
]

CUDA12_ENV: list[Pkg] = [
    ("python", "3.12.3", "hab00c5b_0_cpython", "linux-64"),
    ("cuda-version", "12.9", "h4f385c5_3", "noarch"),
    ("cuda-nvvm-impl", "12.9.86", "h4bc722e_1", "linux-64"),
    ("cuda-nvrtc", "12.9.86", "h5888daf_0", "linux-64"),
    ("cuda-cudart", "12.9.79", "h5888daf_0", "linux-64"),
    ("libnvjitlink", "12.9.86", "h5888daf_1", "linux-64"),
    ("numba", "0.61.2", "py312h2e8e312_0", "linux-64"),
    ("numba-cuda", "0.15.2", "pyh29b5f1c_0", "noarch"),
]


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Put an ``nvidia-smi`` on PATH that replays captured outputs (the machine has no GPU)."""
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")

    def install(*, xml: str = "", banner: str = "", query: str = "", exit_code: int = 0, sleep: float = 0) -> Path:
        for key, text in (("xml", xml), ("banner", banner), ("query", query)):
            (bindir / f"{key}.out").write_text(text)
        script = bindir / "nvidia-smi"
        script.write_text(
            "#!/bin/sh\n"
            f"sleep {sleep}\n"
            f'case "$*" in\n'
            f'  *"-x"*) cat "{bindir}/xml.out";;\n'
            f'  *"--query-gpu"*) cat "{bindir}/query.out";;\n'
            f'  *) cat "{bindir}/banner.out";;\n'
            "esac\n"
            f"exit {exit_code}\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return script

    yield install


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Skip interpreter finalization once py-rattler is loaded: its runtime threads can crash it
    (SIGSEGV / PyGILState_Release seen here) after every test has passed; see condafix.cli.guard.finish."""
    import sys

    if "rattler" in sys.modules and _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU checks skip cleanly unless NVIDIA driver libraries are present (never on CI)."""
    from condafix.detect.driver import native_libraries_missing

    missing = native_libraries_missing(os.environ)
    if missing is None:
        return
    skip = pytest.mark.skip(reason=f"needs an NVIDIA driver (libcuda.so.1 {missing})")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide overrides themselves; the developer's shell must not leak in."""
    for var in ("CONDA_OVERRIDE_CUDA", "CONDA_PREFIX", "VIRTUAL_ENV", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conda-forge-shaped channel of real .tar.bz2 packages, indexed by rattler."""
    from .channel_factory import make_channel

    return make_channel(tmp_path_factory.mktemp("channel"))


@pytest.fixture(scope="session")
def pkgs_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pkgs")


@pytest.fixture
def installed_env(channel: Path, pkgs_cache: Path, tmp_path: Path) -> Callable[..., Path]:
    """Install specs into a fresh prefix as a machine with a CUDA ``cuda`` driver's solver would."""
    from .envs import install_env

    def make(specs: list[str], *, cuda: str, name: str = "gpu") -> Path:
        return install_env(channel, tmp_path / "envs" / name, specs, cuda=cuda, cache=pkgs_cache)

    return make


@pytest.fixture
def cli_env(tmp_path: Path, pkgs_cache: Path) -> dict[str, str]:
    """The environment for condafix subprocesses: no proxies, condafix's caches in tmp."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NO_COLOR="1", CONDAFIX_PKGS_DIR=str(pkgs_cache), CONDAFIX_CACHE_DIR=str(tmp_path / "cache"))
    return env


@pytest.fixture
def http_channel(channel: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Serve the fixture channel from a real HTTP server on 127.0.0.1."""
    import functools
    import http.server
    import threading

    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    handler = functools.partial(_QuietHandler, directory=str(channel))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


import http.server  # noqa: E402


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root: 'byte for byte' checks."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
