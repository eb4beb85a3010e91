"""Package downloads are bounded by silence, not by total time: a steady download longer than the
request timeout succeeds; a silent one stops with a clear error (real rattler, a slow local HTTP channel)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.errors import CondafixError

from .conftest import tree_digest
from .slow_http import Pace, slow_server

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]


def _solved(url: str, prefix: Path) -> list[object]:
    from condafix.backends.rattler import backend as backend_rb

    backend = backend_rb.RattlerBackend(prefix=prefix, offline=False)
    solved = backend.solve(
        channels=[url],
        platform="linux-64",
        cuda="12.4",
        cuda_arch=None,
        pins=["cuda-version=12.4"],
        specs=[*BROKEN, "cuda-version=12.4"],
    )
    return backend.natives(solved)


def _digest(prefix: Path) -> dict[str, str]:
    """Every file but condafix's own state and the appended history."""
    return {
        k: v for k, v in tree_digest(prefix).items() if not k.startswith(("conda-meta/condafix", "conda-meta/history"))
    }


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDAFIX_PKGS_DIR", str(tmp_path / "pkgs"))
    monkeypatch.setenv("CONDAFIX_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_a_steady_download_longer_than_the_request_timeout_succeeds(
    channel: Path, installed_env: Callable[..., Path], isolated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from condafix.backends.rattler import install as install_rb
    from condafix.backends.rattler import solve as solve_rb

    prefix = installed_env(BROKEN, cuda="12.9")
    with slow_server(channel, Pace(chunk=16, delay=0.05)) as url:  # ~1.7 s per ~550-byte package, never silent
        records = _solved(url, prefix)
        monkeypatch.setenv("CONDAFIX_HTTP_TIMEOUT", "1")  # the repodata limit; a whole download takes longer
        install_rb.install(records, prefix, solve_rb.read_prefix_records(prefix), BROKEN)
    versions = {r.name.normalized: str(r.version) for r in solve_rb.read_prefix_records(prefix)}
    assert versions["cuda-version"] == "12.4" and versions["cuda-nvvm-impl"] == "12.4.131"


def test_a_silent_download_stops_and_the_apply_is_undone(
    channel: Path, installed_env: Callable[..., Path], isolated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from condafix.backends.rattler import install as install_rb
    from condafix.cli import commands

    prefix = installed_env(BROKEN, cuda="12.9")
    before = _digest(prefix)
    monkeypatch.setattr(install_rb, "INSTALL_SILENCE_FLOOR_S", 0.0)
    monkeypatch.setenv("CONDAFIX_HTTP_TIMEOUT", "0.3")  # silence allowed: 5 x 0.3 s
    ui = commands.Ui(confirm=lambda _q: True)
    pace = Pace(chunk=64, delay=0.0, pause_on="cuda-version-12.4", pause_s=6)
    stalled = r"undone.*stalled: no download or link progress for 1.5 s"
    with slow_server(channel, pace) as url, pytest.raises(CondafixError, match=stalled):
        commands.cuda(prefix=str(prefix), channels=[url], cudas=["12.4"], apply=True, solver="rattler", ui=ui)
    assert _digest(prefix) == before
