"""py-rattler's network side: the repodata cache, the HTTP client under the sanitized proxy
environment, and the limits (timeout, silence, size) every fetch is watched against.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import rattler
from rattler import (
    Gateway,
)
from rattler.repo_data.gateway import SourceConfig

from condafix import progress, proxy
from condafix.errors import CondafixError, Hint, UsageError

QUERY_TIMEOUT_S = 120.0


@dataclass(frozen=True, kw_only=True)
class Target:
    """What the solve runs against: channels, platform, virtual packages."""

    channels: tuple[str, ...]
    platform: str
    cuda: str
    cuda_arch: str | None = None


def cache_dir() -> Path:
    """Where repodata is cached: ``$CONDAFIX_CACHE_DIR`` or ``$XDG_CACHE_HOME/condafix``."""
    if os.environ.get("CONDAFIX_CACHE_DIR"):
        return Path(os.environ["CONDAFIX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "condafix"


def repodata_cache_age(now: float) -> float | None:
    """Seconds since the newest cached repodata was written; None without a cache."""
    root = cache_dir()
    stamps = [p.stat().st_mtime for p in root.rglob("*.json")] if root.is_dir() else []
    return now - max(stamps) if stamps else None


HTTP_TIMEOUT_S = 60.0  # CONDAFIX_HTTP_TIMEOUT: per request, and how long a channel may stay silent


MAX_REPODATA_MB = 1024  # CONDAFIX_MAX_REPODATA_MB: the largest repodata file condafix lets rattler download


_POLL_S = 0.05


_log = logging.getLogger("condafix")


@dataclass(frozen=True, kw_only=True)
class NetLimits:
    """How long a request may take (and a channel stay silent), and how big one download may grow."""

    timeout_s: float
    max_bytes: int


def net_limits(env: Mapping[str, str] | None = None) -> NetLimits:
    """The limits from ``CONDAFIX_HTTP_TIMEOUT`` (seconds) and ``CONDAFIX_MAX_REPODATA_MB``; one clear line if bad."""
    env = os.environ if env is None else env

    def number(name: str, default: float) -> float:
        raw = env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"{name}={raw!r}: expected a positive number")
        return value

    return NetLimits(
        timeout_s=number("CONDAFIX_HTTP_TIMEOUT", HTTP_TIMEOUT_S),
        max_bytes=int(number("CONDAFIX_MAX_REPODATA_MB", MAX_REPODATA_MB) * 2**20),
    )


def client(on_request: Callable[[str, str], None] | None = None, *, timeout_s: float | None = None) -> rattler.Client:
    """An HTTP client created under the sanitized environment (rattler reads proxies at creation).

    ``on_request(host, path)`` sees every request attempt (progress: which URL is being fetched).
    ``timeout_s`` replaces CONDAFIX_HTTP_TIMEOUT: rattler's timeout covers the whole body, so package
    downloads get a long one and are watched for silence instead (see ``install``).
    """
    timeout = max(1, math.ceil(net_limits().timeout_s if timeout_s is None else timeout_s))
    with proxy.applied():
        if on_request is None:
            return rattler.Client.default_client(timeout=timeout)
        from rattler.networking import (
            AddHeadersMiddleware,
            AuthenticationMiddleware,
            GCSMiddleware,
            OciMiddleware,
            RetryMiddleware,
            S3Middleware,
        )

        def hook(host: str, path: str) -> None:
            on_request(host, path)
            return None  # no headers added

        # Client.default_client's stack, plus the hook
        stack: list[Any] = [RetryMiddleware(3), AuthenticationMiddleware(), OciMiddleware(), GCSMiddleware()]
        return rattler.Client([*stack, S3Middleware(), AddHeadersMiddleware(hook)], timeout=timeout)


def gateway(*, offline: bool, refetch: Sequence[str] = (), sharded: bool = True) -> Gateway:
    """A gateway on condafix's cache; ``refetch`` channels skip the cache, ``sharded=False`` forces monolithic."""
    config = SourceConfig(cache_action="force-cache-only" if offline else "cache-or-fetch")
    fresh = SourceConfig(cache_action="no-cache", sharded_enabled=sharded)
    with proxy.applied():
        return Gateway(
            cache_dir=cache_dir(),
            default_config=config,
            per_channel_config={channel: fresh for channel in refetch},
            client=client(_WATCH.on_request),
        )


class _Watch:
    """Feeds the active progress Reporter while the gateway fetches: each request (from the client
    hook) and the bytes rattler streams into its cache directory (``.tmp*``, then ``*.info.json``).

    The reporter is looked up per event: rattler calls the hook from its own threads, and one
    gateway outlives a progress session (planning, then applying)."""

    def __init__(self) -> None:
        self.channels: list[str] = []

    def on_request(self, host: str, path: str) -> None:
        reporter = progress.current()
        if reporter is not None:
            reporter.request(self.url(host, path))

    def url(self, host: str, path: str) -> str:
        """The hook sees host and path only: put back the channel's scheme and port."""
        for channel in self.channels:
            parts = urlsplit(channel)
            base = parts.path.rstrip("/")
            if parts.hostname == host and path.startswith(base + "/"):
                return channel.rstrip("/") + path[len(base) :]
        return f"https://{host}{path}"

    @contextlib.contextmanager
    def fetching(self, channels: Sequence[str]) -> Iterator[None]:
        self.channels = [c for c in channels if "://" in c]
        reporter = progress.current()
        if reporter is None:
            yield
            return
        cache = cache_dir()
        started = time.time() - 1
        partial: dict[str, int] = {}

        def poll() -> None:
            if not cache.is_dir():
                return
            for entry in os.scandir(cache):
                if entry.name.startswith(".tmp") and entry.is_file():
                    partial[entry.name] = max(partial.get(entry.name, 0), entry.stat().st_size)
                elif entry.name.endswith(".info.json") and entry.stat().st_mtime >= started:
                    info = json.loads(Path(entry.path).read_text())
                    if isinstance(info, dict) and isinstance(info.get("url"), str):
                        reporter.source_done(info["url"], int(info.get("size") or 0))
            reporter.source_bytes(sum(partial.values()))

        try:
            with reporter.polling(poll):
                yield
        finally:
            reporter.sources_settled()


_WATCH = _Watch()


def _gateway_error(exc: Exception, channels: Sequence[str]) -> CondafixError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = " / ".join(lines[:4])
    used = proxy.POLICY.environ()
    via = [
        f"${n}={used[n]}"
        for n in proxy.PROXY_VARS + tuple(v.upper() for v in proxy.PROXY_VARS)
        if used.get(n) and n.lower() != "no_proxy"
    ]
    hints = [Hint(code="offline", text="plan from the cache with --offline, or check the channel URL")]
    where = ""
    if via:
        where = f" through proxy {', '.join(via)}"
        hints.insert(
            0,
            Hint(
                code="proxy",
                text="run `condafix proxy` to check the proxy settings, or retry as `condafix --no-proxy …`",
            ),
        )
    return CondafixError(
        summary=f"could not fetch repodata from {', '.join(channels)}{where}: {detail}", hints=tuple(hints)
    )


def _run(coro: Any, timeout: float) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def _remote(channels: Sequence[str]) -> list[str]:
    return [c for c in channels if "://" in c and not c.startswith("file://")] or list(channels)


def _cache_entries(root: Path) -> dict[str, tuple[int, int, bool]]:
    """name -> (size, mtime_ns, is_file) of the cache's top level, where rattler streams each download."""
    found: dict[str, tuple[int, int, bool]] = {}
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found[entry.name] = (info.st_size, info.st_mtime_ns, entry.is_file(follow_symlinks=False))
    except OSError:
        pass
    return found


async def _watched(coro: Any, *, limits: NetLimits, deadline: float, stall: bool) -> tuple[str, int] | None:
    """Await ``coro`` while watching the cache: ("size", bytes) once a download outgrows the cap, ("stall", 0)
    when nothing arrived for ``timeout_s`` (if ``stall``), ("deadline", 0) after ``deadline`` s; None if it ended.

    rattler streams repodata into a temp file in the cache and only parses it once complete, so stopping
    the download at the cap keeps memory bounded (a 2 GiB body took 4.2 GB RSS to parse).
    """
    root = cache_dir()
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    before = _cache_entries(root)
    started = last_change = loop.time()
    state = before
    verdict: tuple[str, int] | None = None
    while verdict is None:
        done, _pending = await asyncio.wait({task}, timeout=_POLL_S)
        if done:
            task.result()  # the query's own error (GatewayError, SolverError) is the caller's to handle
            return None
        now = loop.time()
        current = _cache_entries(root)
        grown = max(
            (size for name, (size, _m, is_file) in current.items() if is_file and current[name] != before.get(name)),
            default=0,
        )
        if grown > limits.max_bytes:
            verdict = ("size", grown)
        elif current != state:
            state, last_change = current, now
        elif stall and now - last_change > limits.timeout_s:
            verdict = ("stall", 0)
        if verdict is None and now - started > deadline:
            verdict = ("deadline", 0)
    task.cancel()
    await asyncio.wait({task}, timeout=2.0)
    for name, (size, _mtime, is_file) in _cache_entries(root).items():
        # the partial download rattler was writing (a temp file of this run): condafix's cache, condafix removes it
        if is_file and name.startswith(".tmp") and name not in before and size > limits.max_bytes:
            with contextlib.suppress(OSError):
                (root / name).unlink()
    return verdict


def _limit_error(
    verdict: tuple[str, int], channels: Sequence[str], limits: NetLimits, deadline: float
) -> CondafixError:
    named = ", ".join(_remote(channels))
    kind, size = verdict
    if kind == "size":
        return CondafixError(
            summary=f"repodata from {named} is larger than {limits.max_bytes >> 20} MB ({size >> 20} MB received); "
            "condafix stopped the download",
            hints=(
                Hint(
                    code="max_repodata",
                    text="check the channel URL; raise CONDAFIX_MAX_REPODATA_MB if it is really that big",
                ),
            ),
        )
    if kind == "stall":
        return CondafixError(
            summary=f"no answer from {named} within {limits.timeout_s:g} s",
            hints=(
                Hint(
                    code="timeout",
                    text="check the channel and proxy (`condafix proxy`); CONDAFIX_HTTP_TIMEOUT=SECONDS waits longer",
                ),
            ),
        )
    return CondafixError(summary=f"fetching repodata from {named} took longer than {deadline:g} s")


def _is_stale_revalidation(exc: Exception) -> bool:
    text = str(exc)
    return "304" in text and "unexpected status" in text
