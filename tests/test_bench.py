"""The bench's channel generator: deterministic, and its sharded channel is one py-rattler solves.

No timings here (the bench measures; tests never assert speed). Small size: the fixed core plus a
little filler, about 6k records.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
pytest.importorskip("msgpack")
pytest.importorskip("zstandard")
sys.path.insert(0, str(BENCH))

import envs  # noqa: E402
import gen  # noqa: E402
import serve  # noqa: E402

from .conftest import tree_digest  # noqa: E402

SIZE = 8_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-channel")
    gen.write_channel(root, SIZE)
    return root


def test_generator_is_deterministic(generated: Path, tmp_path: Path) -> None:
    stats = gen.write_channel(tmp_path, SIZE)
    assert stats["records"] >= SIZE
    assert tree_digest(tmp_path) == tree_digest(generated)


def test_bigger_channels_keep_the_env_records(tmp_path: Path) -> None:
    """The envs are made from the core's base versions, which every size must hold byte for byte."""
    small = {(r.fn, r.subdir): r.as_dict(binary=False) for r in gen.all_records(SIZE)}
    big = {(r.fn, r.subdir): r.as_dict(binary=False) for r in gen.all_records(60_000)}
    for rec in envs.env_records(300):
        assert small[(rec.fn, rec.subdir)] == big[(rec.fn, rec.subdir)] == rec.as_dict(binary=False)


def test_shard_index_has_rattlers_layout(generated: Path) -> None:
    import msgpack
    import zstandard

    raw = (generated / "sharded" / "linux-64" / "repodata_shards.msgpack.zst").read_bytes()
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(raw))
    assert index["info"]["subdir"] == "linux-64"
    digest = index["shards"]["cuda-version"] if "cuda-version" in index["shards"] else index["shards"]["cuda-cudart"]
    shard_file = generated / "sharded" / "linux-64" / "shards" / f"{digest.hex()}.msgpack.zst"
    assert hashlib.sha256(shard_file.read_bytes()).digest() == digest  # named by the compressed bytes


@pytest.fixture
def served(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Serve a copy of the sharded channel *without* repodata.json, so only shards can answer."""
    import shutil

    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    copy = tmp_path / "served"
    shutil.copytree(generated / "sharded", copy / "sharded", symlinks=True)
    for link in copy.glob("sharded/*/repodata.json"):
        link.unlink()
    server = serve.Server(("127.0.0.1", 0), functools.partial(serve.Handler, directory=str(copy)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sharded"
    server.shutdown()
    server.server_close()


def _solve(url: str, prefix: Path, cache: Path) -> dict[str, str]:
    from rattler import Gateway, PrefixRecord, solve

    from .envs import virtual

    locked = [PrefixRecord.from_path(p) for p in sorted((prefix / "conda-meta").glob("*.json"))]
    specs = [*envs.requested_specs(envs.env_records(10)), "cuda-version=12.4"]
    records = asyncio.run(
        solve(
            [url],
            specs,
            gateway=Gateway(cache_dir=cache),
            platforms=["linux-64", "noarch"],
            locked_packages=locked,
            virtual_packages=virtual("12.4"),
        )
    )
    return {r.name.normalized: str(r.version) for r in records}


def test_sharded_channel_solves_with_py_rattler(served: str, generated: Path, tmp_path: Path) -> None:
    """The bench's env (CUDA 12.9) pinned to 12.4 over HTTP from shards alone; a second, warm run
    revalidates the shard index against the server (304 with validators) and gives the same."""
    prefix = tmp_path / "env10"
    envs.write_env(prefix, 10)
    cold = _solve(served, prefix, tmp_path / "cache")
    assert cold["cuda-version"] == "12.4"
    assert cold["cuda-nvvm-impl"].startswith("12.4.") and cold["libnvjitlink"].startswith("12.4.")
    installed = {r.name: r.version for r in envs.env_records(10)}
    assert {n: v for n, v in cold.items() if not n.startswith(("cuda", "libnv"))} == {
        n: v for n, v in installed.items() if not n.startswith(("cuda", "libnv"))
    }
    assert _solve(served, prefix, tmp_path / "cache") == cold
    mono = _solve((generated / "mono").as_uri(), prefix, tmp_path / "cache-mono")
    assert mono == cold


MICROMAMBA = os.environ.get("CONDAFIX_TEST_MICROMAMBA", "")


@pytest.mark.parametrize("fmt", ["sharded", "mono"])
def test_micromamba_rows_run_both_dry_runs_of_the_same_pin(
    fmt: str, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/run.py's micromamba rows, once, on the small channel over HTTP: micromamba's own dry run and condafix's
    ``--via micromamba`` dry run both exit 0 and plan cuda-version 12.4, the env is untouched, the table has the row."""
    if not MICROMAMBA:
        pytest.skip("real micromamba not unpacked (.ci/run does it; set CONDAFIX_TEST_MICROMAMBA)")
    import run as bench_run

    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bench_run, "WORK", tmp_path / "work")
    (tmp_path / "work").mkdir()
    prefix = tmp_path / "env10"
    envs.write_env(prefix, 10)
    before = tree_digest(prefix)
    server = serve.Server(("127.0.0.1", 0), functools.partial(serve.Handler, directory=str(generated)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{fmt}"
        tools = bench_run.Tools(Path(sys.executable), None, None, None, Path(MICROMAMBA))
        block = bench_run.Block(SIZE, fmt, 10)
        cases = bench_run.micromamba_cases(block, url, prefix, tools)
        assert [c.label for c in cases] == ["micromamba", "condafix via micromamba"]
        bench_run.run_rounds(cases, 1)
        assert [(len(c.samples), c.failure) for c in cases] == [(1, None), (1, None)]
        own, via = (subprocess.run(c.argv, env=c.env, capture_output=True, text=True, timeout=300) for c in cases)
    finally:
        server.shutdown()
        server.server_close()
    assert own.returncode == 0 and "Dry run" in own.stdout, own.stdout + own.stderr
    assert re.search(r"\+ cuda-version\s+12\.4\s", own.stdout), own.stdout
    assert via.returncode == 0 and 'cuda-version=12.4"' in via.stdout and "dry run: nothing was changed" in via.stdout
    moved = {"cuda-cudart", "cuda-nvrtc", "cuda-nvvm-impl", "cuda-version", "libnvjitlink"}
    assert {n for n in moved if re.search(rf"^downgrade\s+{n}\s", via.stdout, re.M)} == moved  # micromamba's five too
    assert all(re.search(rf"\+ {n}\s+12\.4", own.stdout) for n in moved), own.stdout
    assert tree_digest(prefix) == before
    table = bench_run.micromamba_table({block: cases}, {SIZE: {"records": SIZE}})
    row = next(line for line in table if line.startswith(f"| {SIZE // 1000}k {fmt} | 10 |"))
    assert "failed" not in row and row.count("×") == 2, row


def test_the_bench_times_only_plans_that_solve(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """env10 is a PTX-JIT env, so condafix's plan is a change found by a solve; a plan that is nothing to do
    (here: the env's own CUDA 12.9 as the target) stops the bench, naming the case, before anything is timed."""
    import run as bench_run

    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bench_run, "WORK", tmp_path / "work")
    (tmp_path / "work").mkdir()
    prefix = tmp_path / "env10"
    records = envs.write_env(prefix, 10)
    assert "numba-cuda" not in {r.name for r in records} and "numba" in {r.name for r in records}
    server = serve.Server(("127.0.0.1", 0), functools.partial(serve.Handler, directory=str(generated)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sharded"
        tools = bench_run.Tools(Path(sys.executable), None, None, None, None)
        cases = bench_run.plan_cases(bench_run.Block(SIZE, "sharded", 10), url, prefix, tools)
        bench_run.check_plans(cases)
        own = [c for c in cases if c.label == "condafix cuda"]
        own[0].argv[own[0].argv.index("--cuda") + 1] = "12.9"
        with pytest.raises(SystemExit, match="condafix cuda plans 'nothing-to-do', not a change"):
            bench_run.check_plans(own)
    finally:
        server.shutdown()
        server.server_close()
