"""The py-rattler adapter: channels, repodata, virtual packages, solving, prefix records.

Imported only by the commands that plan or apply (``import rattler`` costs ~80 ms). rattler is
async-only, so every entry point here is synchronous and runs its own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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
    BuildString,
    Gateway,
    GenericVirtualPackage,
    MatchSpec,
    PackageName,
    PrefixRecord,
    RepoDataRecord,
    Version,
    VersionSpec,
    VirtualPackage,
)
from rattler.exceptions import GatewayError, InvalidMatchSpecError, SolverError
from rattler.repo_data.gateway import SourceConfig

from condafix import progress, proxy
from condafix.errors import CondafixError, Hint, InspectError, UsageError
from condafix.solver import Record as Record
from condafix.solver import SolveFailed as SolveFailed

QUERY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
        number("CONDAFIX_HTTP_TIMEOUT", HTTP_TIMEOUT_S),
        int(number("CONDAFIX_MAX_REPODATA_MB", MAX_REPODATA_MB) * 2**20),
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


def read_prefix_records(prefix: Path) -> list[PrefixRecord]:
    """Installed records for the solver's locked set; a broken one is an InspectError."""
    records = []
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            records.append(PrefixRecord.from_path(path))
        except Exception as exc:  # rattler raises its own IoError/ParseError types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InspectError(f"conda-meta/{path.name}: not a valid package record ({first})") from None
    return records


def virtual_packages(target: Target) -> list[GenericVirtualPackage]:
    """Detected __glibc/__unix/__linux/__archspec with __cuda (and __cuda_arch) set to the target."""
    found = []
    for vp in VirtualPackage.detect():
        generic = vp.into_generic()
        if generic.name.normalized in ("__cuda", "__cuda_arch"):
            continue
        found.append(generic)
    found.append(GenericVirtualPackage(PackageName("__cuda"), Version(target.cuda), BuildString("0")))
    if target.cuda_arch:
        found.append(GenericVirtualPackage(PackageName("__cuda_arch"), Version(target.cuda_arch), BuildString("0")))
    return found


def _subdirs(target: Target) -> list[Any]:
    """The env's platform plus noarch (rattler types them as a Literal of known subdirs)."""
    return [target.platform, "noarch"]


def _gateway_error(exc: Exception, channels: Sequence[str]) -> CondafixError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = " / ".join(lines[:4])
    used = proxy.POLICY.environ()
    via = [
        f"${n}={used[n]}"
        for n in proxy.PROXY_VARS + tuple(v.upper() for v in proxy.PROXY_VARS)
        if used.get(n) and n.lower() != "no_proxy"
    ]
    hints = [Hint("offline", "plan from the cache with --offline, or check the channel URL")]
    where = ""
    if via:
        where = f" through proxy {', '.join(via)}"
        hints.insert(0, Hint("proxy", "run `condafix proxy` to check the proxy settings, or retry with --no-proxy"))
    return CondafixError(f"could not fetch repodata from {', '.join(channels)}{where}: {detail}", tuple(hints))


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
            f"repodata from {named} is larger than {limits.max_bytes >> 20} MB ({size >> 20} MB received); "
            "condafix stopped the download",
            (Hint("max_repodata", "check the channel URL; raise CONDAFIX_MAX_REPODATA_MB if it is really that big"),),
        )
    if kind == "stall":
        return CondafixError(
            f"no answer from {named} within {limits.timeout_s:g} s",
            (
                Hint(
                    "timeout",
                    "check the channel and proxy (`condafix proxy`); CONDAFIX_HTTP_TIMEOUT=SECONDS waits longer",
                ),
            ),
        )
    return CondafixError(f"fetching repodata from {named} took longer than {deadline:g} s")


def _is_stale_revalidation(exc: Exception) -> bool:
    text = str(exc)
    return "304" in text and "unexpected status" in text


def _bounded_query(gw: Gateway, channel: str, target: Target, names: Sequence[str], limits: NetLimits) -> Any:
    async def go() -> Any:
        box: list[Any] = []

        async def fetch() -> None:
            box.append(await gw.query([channel], _subdirs(target), list(names), recursive=False))

        verdict = await _watched(fetch(), limits=limits, deadline=QUERY_TIMEOUT_S, stall=True)
        if verdict is not None:
            raise _limit_error(verdict, [channel], limits, QUERY_TIMEOUT_S)
        return box[0]

    return asyncio.run(go())


def query_channels(
    gw: Gateway, target: Target, names: Sequence[str], *, offline: bool = False
) -> tuple[list[RepoDataRecord], Gateway]:
    """All records of these names from each channel in turn (so a slow or huge one is named), within the limits.

    A sharded-repodata cache whose revalidation the server answers with a ``304`` rattler cannot use is
    fetched again without the cache, then as monolithic repodata; each step is said on stderr. Returns the
    gateway to solve with (a new one after such a recovery).
    """
    limits = net_limits()
    records: list[RepoDataRecord] = []
    for channel in target.channels:
        try:
            with _WATCH.fetching(target.channels):
                result = _bounded_query(gw, channel, target, names, limits)
        except GatewayError as exc:
            if offline or not _is_stale_revalidation(exc):
                raise _gateway_error(exc, [channel]) from None
            result, gw = _recover_304(exc, gw, channel, target, names, limits)
        records += [record for subdir in result for record in subdir]
    return records, gw


def _recover_304(
    exc: Exception, gw: Gateway, channel: str, target: Target, names: Sequence[str], limits: NetLimits
) -> tuple[Any, Gateway]:
    first = str(exc).splitlines()[0]
    _log.warning(
        "%s: the cached sharded repodata could not be revalidated (%s); fetching it again without the cache",
        channel,
        first,
    )
    refetched = list(dict.fromkeys([*target.channels]))
    try:
        fresh = gateway(offline=False, refetch=refetched)
        return _bounded_query(fresh, channel, target, names, limits), fresh
    except GatewayError as again:
        if not _is_stale_revalidation(again):
            raise _gateway_error(again, [channel]) from None
    _log.warning("%s: still a 304 for the shard index; using the monolithic repodata.json instead", channel)
    mono = gateway(offline=False, refetch=refetched, sharded=False)
    try:
        return _bounded_query(mono, channel, target, names, limits), mono
    except GatewayError as last:
        raise _gateway_error(last, [channel]) from None


def query(gw: Gateway, target: Target, names: Sequence[str]) -> list[RepoDataRecord]:
    """All records of these names (not recursive) from the target's channels."""
    return query_channels(gw, target, names)[0]


def solve(
    gw: Gateway,
    target: Target,
    specs: Sequence[str],
    locked: Sequence[PrefixRecord],
    *,
    retry: int = 0,
) -> list[RepoDataRecord]:
    """Solve the specs with the installed records locked (preferred), raising SolveFailed."""
    try:
        match_specs = [MatchSpec(spec) for spec in specs]
    except InvalidMatchSpecError as exc:
        raise CondafixError(f"invalid spec in the env's history: {exc}") from None
    limits = net_limits()

    async def go() -> list[RepoDataRecord]:
        box: list[Any] = []

        async def run_solver() -> None:
            box.append(
                await rattler.solve(
                    list(target.channels),
                    match_specs,
                    gateway=gw,
                    platforms=_subdirs(target),
                    locked_packages=list(locked),
                    virtual_packages=virtual_packages(target),
                )
            )

        # no stall rule here: the solver may think for a while without fetching anything
        verdict = await _watched(run_solver(), limits=limits, deadline=QUERY_TIMEOUT_S, stall=False)
        if verdict is not None:
            raise _limit_error(verdict, target.channels, limits, QUERY_TIMEOUT_S)
        return list(box[0])

    try:
        with _WATCH.fetching(target.channels):
            return asyncio.run(go())
    except SolverError as exc:
        raise SolveFailed(str(exc)) from None
    except GatewayError as exc:
        if not _is_stale_revalidation(exc) or retry == 2:
            raise _gateway_error(exc, target.channels) from None
        step = "again without the cache" if retry == 0 else "with the monolithic repodata.json"
        _log.warning(
            "the cached sharded repodata could not be revalidated (%s); solving %s", str(exc).splitlines()[0], step
        )
        fresh = gateway(offline=False, refetch=target.channels, sharded=retry == 0)
        return solve(fresh, target, specs, locked, retry=retry + 1)


def spec_matches(spec: str, name: str, version: str) -> bool:
    """Does a depends/constrains entry like ``cuda-version >=12.8,<13`` accept this version of ``name``?"""
    try:
        match = MatchSpec(spec)
    except InvalidMatchSpecError:
        return True
    if match.name is None or match.name.normalized != name or not match.version:
        return True
    return bool(VersionSpec(match.version).matches(Version(version)))


def pkgs_dir() -> Path:
    """The package cache condafix installs from: ``$CONDAFIX_PKGS_DIR`` or ``<cache>/pkgs``."""
    return Path(os.environ.get("CONDAFIX_PKGS_DIR") or cache_dir() / "pkgs")


class _InstallEvents:
    """rattler's install reporter -> the progress model (downloads with bytes, link/unlink counts);
    with a plain ``step`` callable, the old one-line messages."""

    def __init__(self, step: Any, records: Sequence[Any]) -> None:
        self.step = step
        self.reporter = progress.reporter_of(step)
        self.records = {r.name.normalized: r for r in records}
        self.names: dict[int, str] = {}
        self.tokens = itertools.count(1)
        self.total = 0
        self.done = 0

    def _token(self, name: str) -> int:
        token = next(self.tokens)
        self.names[token] = name
        return token

    def on_transaction_start(self, total: int) -> None:
        self.total = total
        if self.reporter is not None:
            self.reporter.operations(total)

    def on_transaction_operation_complete(self, _index: int) -> None:
        self.done += 1
        if self.reporter is None:
            self.step(f"installing: {self.done}/{self.total} operations")

    def on_populate_cache_start(self, _operation: int, name: str) -> int:
        return self._token(name)

    def on_download_start(self, cache_entry: int) -> int:
        name = self.names.get(cache_entry, "?")
        if self.reporter is None:
            self.step("downloading packages")
        else:
            record = self.records.get(name)
            size = int(record.size) if record is not None and record.size else None
            self.reporter.download_start(name, url=str(record.url) if record is not None else name, total=size)
        return self._token(name)

    def on_download_progress(self, index: int, done: int, total: int | None) -> None:
        if self.reporter is not None:
            self.reporter.download_progress(self.names.get(index, "?"), done, total)

    def on_download_completed(self, index: int) -> None:
        if self.reporter is not None:
            self.reporter.download_done(self.names.get(index, "?"))

    def on_link_start(self, _operation: int, name: str) -> int:
        return self._token(name)

    def on_link_complete(self, index: int) -> None:
        if self.reporter is not None:
            self.reporter.linked(self.names.get(index, "?"))

    def on_unlink_start(self, _operation: int, name: str) -> int:
        return self._token(name)

    def on_unlink_complete(self, index: int) -> None:
        if self.reporter is not None:
            self.reporter.unlinked(self.names.get(index, "?"))

    def __getattr__(self, name: str) -> Any:  # every other on_* event is accepted and ignored
        if name.startswith("on_"):
            return lambda *args, **kwargs: 0
        raise AttributeError(name)


# A package download may take hours (CUDA parts are GB); what must not pass unnoticed is silence.
INSTALL_REQUEST_TIMEOUT_S = 24 * 3600.0
INSTALL_SILENCE_FLOOR_S = 300.0  # linking one large package sends no event for a while


class _Heartbeat:
    """Forwards rattler's install events and notes when the last one came (silence = a stalled install)."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.last = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.events, name)
        if not name.startswith("on_"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.last = time.monotonic()
            return target(*args, **kwargs)

        return call


def install_silence_s() -> float:
    """How long an install may go without any download or link event: 5x CONDAFIX_HTTP_TIMEOUT, >= 300 s."""
    return max(net_limits().timeout_s * 5, INSTALL_SILENCE_FLOOR_S)


async def _until_silent(coro: Any, beat: _Heartbeat, silence_s: float) -> None:
    task = asyncio.ensure_future(coro)
    while True:
        done, _pending = await asyncio.wait({task}, timeout=min(1.0, silence_s / 4))
        if done:
            task.result()
            return
        if time.monotonic() - beat.last > silence_s:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)
            raise CondafixError(
                f"the install stalled: no download or link progress for {silence_s:g} s",
                (
                    Hint(
                        "timeout",
                        "check the channel and proxy (`condafix proxy`); CONDAFIX_HTTP_TIMEOUT=SECONDS "
                        "allows 5x that much silence",
                    ),
                ),
            )


def install(
    records: Sequence[Any],
    prefix: Path,
    installed: Sequence[PrefixRecord],
    specs: Sequence[str],
    step: Any = lambda _m: None,
    *,
    silence_s: float | None = None,
) -> None:
    """Make the prefix equal to ``records`` (rattler unlinks/links only what differs).

    Not bounded by a total time: a steady multi-GB download is fine; silence longer than
    ``silence_s`` (default ``install_silence_s()``) stops it.
    """
    from rattler import install as rattler_install
    from rattler.exceptions import InstallerError, LinkError, TransactionError

    beat = _Heartbeat(_InstallEvents(step, records))
    try:
        with progress.phase(step, "install", f"installing into {prefix}"):
            asyncio.run(
                _until_silent(
                    rattler_install(
                        list(records),
                        target_prefix=prefix,
                        cache_dir=pkgs_dir(),
                        installed_packages=list(installed),
                        show_progress=False,
                        client=client(timeout_s=INSTALL_REQUEST_TIMEOUT_S),
                        requested_specs=[MatchSpec(s)._match_spec for s in specs],
                        reporter=beat,
                    ),
                    beat,
                    install_silence_s() if silence_s is None else silence_s,
                )
            )
    except (InstallerError, LinkError, TransactionError) as exc:
        raise CondafixError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def conda_archive(record: Any) -> Path | None:
    """The package's archive in conda's package cache (``CONDA_PKGS_DIRS``/``pkgs_dirs``), checksum-checked."""
    import hashlib

    from condafix import condarc

    name = str(record.file_name) if record.file_name else ""
    if not name or "/" in name:
        return None
    sha = record.sha256.hex() if record.sha256 else None
    for cache in condarc.load().pkgs_dirs:
        archive = cache / name
        if not archive.is_file():
            continue
        if sha is None:
            return archive
        digest = hashlib.sha256()
        with open(archive, "rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() == sha:
            return archive
    return None


def prefer_cached(records: Sequence[Any]) -> list[Any]:
    """Install from conda's package cache where it holds the same archive (offline, no download)."""
    out = []
    for record in records:
        archive = conda_archive(record)
        stem = f"{record.name.normalized}-{record.version}-{record.build}"
        if archive is not None and not (pkgs_dir() / stem).is_dir():
            record.url = archive.as_uri()
        out.append(record)
    return out


def package_source(record: Any) -> str | None:
    """Where a package can be had again: ``cache`` (conda's or condafix's), ``channel``, or None."""
    import urllib.request
    from urllib.parse import unquote, urlsplit

    stem = f"{record.name.normalized}-{record.version}-{record.build}"
    cache = pkgs_dir()
    if (cache / stem / "info").is_dir() or any((cache / f"{stem}{ext}").is_file() for ext in (".conda", ".tar.bz2")):
        return "cache"
    if conda_archive(record) is not None:
        return "cache"
    url = str(record.url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "channel" if Path(unquote(parts.path)).is_file() else None
    if parts.scheme in ("http", "https"):
        with proxy.applied():
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15) as answer:
                    return "channel" if answer.status < 400 else None
            except OSError:
                return None
    return None


def records_from_dir(directory: Path) -> list[PrefixRecord]:
    return [PrefixRecord.from_path(p) for p in sorted(directory.glob("*.json"))]


# ---------------------------------------------------------------- the solver-boundary backend


def to_record(record: Any) -> Record:
    """A rattler record as the planner's neutral record (raw channel and URL kept)."""
    return Record(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        subdir=str(record.subdir),
        channel=str(record.channel) if getattr(record, "channel", None) else None,
        url=str(record.url) if getattr(record, "url", None) else None,
        size=int(record.size) if getattr(record, "size", None) else None,
        depends=tuple(record.depends),
        constrains=tuple(record.constrains),
        native=record,
    )


class RattlerBackend:
    """The embedded engine: py-rattler's gateway and solver, condafix's own cache and installer."""

    name = "rattler"

    def __init__(self, *, prefix: Path, offline: bool) -> None:
        self.prefix = prefix
        self.offline = offline
        self._gateway: Gateway | None = None
        self._installed: list[PrefixRecord] | None = None

    def _gw(self) -> Gateway:
        if self._gateway is None:
            self._gateway = gateway(offline=self.offline)
        return self._gateway

    def _native_installed(self) -> list[PrefixRecord]:
        if self._installed is None:
            self._installed = read_prefix_records(self.prefix)
        return self._installed

    def channels(self, requested: Sequence[str], env_channels: Sequence[str]) -> tuple[str, ...]:
        """Names resolve through conda's ``channel_alias``/``custom_channels`` (rattler knows only the default)."""
        from condafix import condarc

        config = condarc.load()
        picked = tuple(dict.fromkeys(requested)) or tuple(env_channels)
        out = []
        for channel in picked:
            url = condarc.channel_url(channel, config)
            out.append(channel if url == f"{condarc.DEFAULT_ALIAS}/{channel}" else url)
        return tuple(dict.fromkeys(out))

    def cache_age(self, channels: Sequence[str]) -> float | None:
        """With --offline: the cache's age, or a clear error when a remote channel was never cached."""
        import time

        if not self.offline:
            return None
        age = repodata_cache_age(time.time())
        remote = [c for c in channels if not c.startswith("file://")]
        if remote and age is None:
            raise CondafixError(
                f"--offline: no cached repodata for {', '.join(remote)} in {cache_dir()}",
                (Hint("warm_cache", "run the same command once online to fill the cache"),),
            )
        return age

    def installed(self) -> list[Record]:
        return [to_record(r) for r in self._native_installed()]

    def query(self, channels: Sequence[str], names: Sequence[str], *, platform: str) -> list[Record]:
        target = Target(tuple(channels), platform, "0")
        records, self._gateway = query_channels(self._gw(), target, names, offline=self.offline)
        return [to_record(r) for r in records]

    def solve(
        self,
        *,
        channels: Sequence[str],
        platform: str,
        cuda: str,
        cuda_arch: str | None,
        pins: Sequence[str],
        specs: Sequence[str],
    ) -> list[Record]:
        target = Target(tuple(channels), platform, cuda, cuda_arch)
        return [to_record(r) for r in solve(self._gw(), target, specs, self._native_installed())]

    def version_less(self, left: str, right: str) -> bool:
        return bool(Version(left) < Version(right))

    def spec_matches(self, spec: str, name: str, version: str) -> bool:
        return spec_matches(spec, name, version)

    def apply(self, plan: Any, *, via: str | None, step: Any, pin: bool = True, replace_pin: bool = False) -> Any:
        from condafix import transaction

        return transaction.apply_plan(plan, via=via, step=step, pin=pin, replace_pin=replace_pin)


@dataclass(frozen=True)
class SpecParts:
    """What conda's MatchSpec grammar makes of a spec string (rattler parses it)."""

    name: str
    version: str | None
    build: str | None
    channel: str | None


def parse_spec(text: str) -> SpecParts | None:
    """Name, version spec, build and channel of a conda spec; None when conda would refuse it."""
    try:
        match = MatchSpec(text)
    except (InvalidMatchSpecError, ValueError):
        return None
    if match.name is None:
        return None
    channel = match.channel.name if match.channel is not None else None
    return SpecParts(match.name.normalized, match.version or None, match.build or None, channel)


def version_matches(version_spec: str, version: str) -> bool:
    """Does a conda version spec (``>=12.0,<=12.9``, ``12.5.*``, ``==11.8.86``) accept this version?"""
    try:
        return bool(VersionSpec(version_spec).matches(Version(version)))
    except Exception:  # rattler raises its own parse errors: an unparsable spec accepts nothing
        return False


def records_of(gw: Gateway, target: Target, name: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(version, build, depends) of every record of ``name`` on the target's channels."""
    return [(str(r.version), str(r.build), tuple(r.depends)) for r in query(gw, target, [name])]


def read_pixi_lock(path: Path) -> list[tuple[str, str, list[tuple[str, str, str]], list[str]]]:
    """(env, platform, conda (name, version, build), PyPI names) of a pixi.lock (every format rattler reads)."""
    from rattler.lock import LockFile

    try:
        lock = LockFile.from_path(path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # rattler's parse errors, and pyo3's PanicException (a BaseException)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ValueError(" / ".join(lines[:2]) or type(exc).__name__) from None
    out = []
    for env_name, env in lock.environments():
        conda = env.conda_repodata_records()
        pypi = env.pypi_packages()
        for platform in sorted(set(conda) | set(pypi)):
            records = [(r.name.normalized, str(r.version), str(r.build)) for r in conda.get(platform, [])]
            out.append((str(env_name), str(platform), records, [str(p.name) for p in pypi.get(platform, [])]))
    return out
