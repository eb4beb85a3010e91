"""Bounded network and memory against real local HTTP servers: a huge body, a stalled channel, a 304 that
rattler's sharded-repodata cache cannot use."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from condafix.errors import UsageError

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "static"
    root: Path | None = None
    requests: ClassVar[list[tuple[str, str, str | None]]] = []
    stop = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, code: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        if code != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code != 304:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        type(self).requests.append((self.command, self.path, self.headers.get("If-None-Match")))
        if self.mode == "stall":  # accept, read the request, never answer
            type(self).stop.wait(60)
            return
        if self.mode == "huge":
            if self.command == "GET" and self.path.endswith("/repodata.json"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(2 * 2**30))  # claims 2 GiB and streams it
                self.end_headers()
                self.wfile.write(b'{"info":{"subdir":"noarch"},"packages":{"')
                chunk = b"a" * 2**20
                try:
                    for _ in range(2048):
                        if type(self).stop.is_set():
                            return
                        self.wfile.write(chunk)
                except OSError:
                    pass
                return
            self._reply(404)
            return
        assert self.root is not None
        path = self.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self._reply(404)
            return
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        conditional = self.headers.get("If-None-Match")
        if conditional and self.mode == "etag-drift" and "shards.msgpack" in self.path:
            # a CDN / mod_deflate answering the revalidation with another representation's ETag
            self._reply(304, headers=(("ETag", etag[:-1] + '-gzip"'), ("Cache-Control", "max-age=0")))
            return
        self._reply(200, data, (("ETag", etag), ("Cache-Control", "max-age=0")))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    servers: list[http.server.ThreadingHTTPServer] = []
    stop = threading.Event()

    def start(mode: str, root: Path | None = None) -> str:
        handler = type("Handler", (_Handler,), {"mode": mode, "root": root, "requests": [], "stop": stop})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        start.handler = handler  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    stop.set()
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def run_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run condafix in a child; also return the child's peak RSS in MB (from wait4)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "condafix", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "NO_COLOR": "1"},
    )
    out, err = child.communicate(timeout=120)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err), int(usage.ru_maxrss // 1024)


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    return {**env, "CONDAFIX_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path), **extra}


def test_a_huge_repodata_body_fails_early_with_bounded_memory(
    server: Callable[..., str], installed_env: Callable[..., Path], tmp_path: Path
) -> None:
    url = server("huge")
    prefix = installed_env(["numba-cuda"], cuda="12.9")
    env = child_env(tmp_path, CONDAFIX_MAX_REPODATA_MB="64")
    done, peak_mb = run_cli(["cuda", "-p", str(prefix), "--cuda", "12.4", "-c", url], env)
    assert done.returncode == 2, done.stderr
    assert f"repodata from {url} is larger than 64 MB" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3
    # before: the whole 2 GiB was downloaded and parsed (4.2 GB RSS); now it stops at the cap
    assert peak_mb < 600, peak_mb
    leftovers = [p for p in (tmp_path / "cache").iterdir() if p.is_file() and p.stat().st_size > 64 * 2**20]
    assert leftovers == []


def test_a_stalled_channel_is_named_within_the_timeout(
    server: Callable[..., str], installed_env: Callable[..., Path], tmp_path: Path
) -> None:
    url = server("stall")
    prefix = installed_env(["numba-cuda"], cuda="12.9")
    env = child_env(tmp_path, CONDAFIX_HTTP_TIMEOUT="1")
    for extra in ([], ["--json"]):
        done, _peak = run_cli(["cuda", "-p", str(prefix), "--cuda", "12.4", "-c", url, *extra], env)
        assert done.returncode == 2, done.stderr
        assert f"error: no answer from {url} within 1 s" in done.stderr
        assert "CONDAFIX_HTTP_TIMEOUT" in done.stderr


@pytest.mark.parametrize("value", ["abc", "0", "-3", "nan", "inf", "1e400", "12\n"])
def test_bad_limits_are_one_clear_line(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from condafix.backends.rattler import net as net_rb

    monkeypatch.setenv("CONDAFIX_HTTP_TIMEOUT", value)
    if value.strip() == "12":
        assert net_rb.net_limits().timeout_s == 12
        return
    with pytest.raises(UsageError, match=r"CONDAFIX_HTTP_TIMEOUT=.*expected a positive number"):
        net_rb.net_limits()


@pytest.fixture(scope="module")
def sharded_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture channel indexed the way conda-forge serves it: shard index, shards, zst."""
    from rattler.index import index_fs

    from .channel_factory import make_channel

    root = make_channel(tmp_path_factory.mktemp("sharded"))
    asyncio.run(index_fs(root, write_zst=True, write_shards=True, force=True))
    assert list(root.glob("*/repodata_shards.msgpack.zst"))
    return root


def test_a_304_the_shard_cache_cannot_use_is_recovered_and_said(
    server: Callable[..., str], sharded_channel: Path, installed_env: Callable[..., Path], tmp_path: Path
) -> None:
    url = server("etag-drift", sharded_channel)
    handler = server.handler  # type: ignore[attr-defined]
    prefix = installed_env(["numba-cuda"], cuda="12.9")
    env = child_env(tmp_path)
    args = ["cuda", "-p", str(prefix), "--cuda", "12.4", "-c", url, "--json"]
    cold, _ = run_cli(args, env)  # fills the cache (shard index with its ETag)
    assert cold.returncode == 0, cold.stderr
    assert "note:" not in cold.stderr
    warm, _ = run_cli(args, env)  # revalidates: If-None-Match -> 304 with a drifted ETag
    assert any(tag for _c, path, tag in handler.requests if "shards.msgpack" in path), handler.requests
    assert warm.returncode == 0, warm.stderr
    assert "could not be revalidated" in warm.stderr and url in warm.stderr, warm.stderr
    assert json.loads(warm.stdout)["result"]["pin"] == json.loads(cold.stdout)["result"]["pin"] == "cuda-version=12.4"


def test_rattler_alone_fails_on_that_304(server: Callable[..., str], sharded_channel: Path, tmp_path: Path) -> None:
    """The reproduction: without condafix's recovery a warm shard cache fails outright."""
    import rattler
    from rattler import Gateway
    from rattler.exceptions import GatewayError

    url = server("etag-drift", sharded_channel)
    cache = tmp_path / "cache"

    async def query() -> object:
        gateway = Gateway(cache_dir=cache, client=rattler.Client.default_client(timeout=10))
        return await gateway.query([url], ["linux-64", "noarch"], ["cuda-version"], recursive=False)

    asyncio.run(query())
    with pytest.raises(GatewayError, match=r"unexpected status code \(304"):
        asyncio.run(query())
