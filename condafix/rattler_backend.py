"""The py-rattler adapter: channels, repodata, virtual packages, solving, prefix records.

Imported only by the commands that plan or apply (``import rattler`` costs ~80 ms). rattler is
async-only, so every entry point here is synchronous and runs its own event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from condafix import proxy
from condafix.errors import CondafixError, Hint, InspectError
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


HTTP_TIMEOUT_S = 30


def client() -> rattler.Client:
    """An HTTP client created under the sanitized environment (rattler reads proxies at creation)."""
    with proxy.applied():
        return rattler.Client.default_client(timeout=HTTP_TIMEOUT_S)


def gateway(*, offline: bool) -> Gateway:
    config = SourceConfig(cache_action="force-cache-only" if offline else "cache-or-fetch")
    with proxy.applied():
        return Gateway(cache_dir=cache_dir(), default_config=config, client=client())


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


def query(gw: Gateway, target: Target, names: Sequence[str]) -> list[RepoDataRecord]:
    """All records of these names (not recursive) from the target's channels."""
    try:
        result = _run(gw.query(target.channels, _subdirs(target), list(names), recursive=False), QUERY_TIMEOUT_S)
    except GatewayError as exc:
        raise _gateway_error(exc, target.channels) from None
    except TimeoutError:
        raise CondafixError(f"fetching repodata timed out after {QUERY_TIMEOUT_S:g} s") from None
    return [record for subdir in result for record in subdir]


def solve(
    gw: Gateway,
    target: Target,
    specs: Sequence[str],
    locked: Sequence[PrefixRecord],
) -> list[RepoDataRecord]:
    """Solve the specs with the installed records locked (preferred), raising SolveFailed."""
    try:
        match_specs = [MatchSpec(spec) for spec in specs]
    except InvalidMatchSpecError as exc:
        raise CondafixError(f"invalid spec in the env's history: {exc}") from None
    try:
        return list(
            _run(
                rattler.solve(
                    list(target.channels),
                    match_specs,
                    gateway=gw,
                    platforms=_subdirs(target),
                    locked_packages=list(locked),
                    virtual_packages=virtual_packages(target),
                ),
                QUERY_TIMEOUT_S,
            )
        )
    except SolverError as exc:
        raise SolveFailed(str(exc)) from None
    except GatewayError as exc:
        raise _gateway_error(exc, target.channels) from None


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


class _Reporter:
    """Forwards rattler's install events to one ``step(message)`` callback (rich progress)."""

    def __init__(self, step: Any) -> None:
        self.step = step
        self.total = 0
        self.done = 0

    def on_transaction_start(self, total: int) -> None:
        self.total = total

    def on_transaction_operation_complete(self, _index: int) -> None:
        self.done += 1
        self.step(f"installing: {self.done}/{self.total} operations")

    def on_download_start(self, _index: int) -> int:
        self.step("downloading packages")
        return 0

    def __getattr__(self, name: str) -> Any:  # every other on_* event is accepted and ignored
        if name.startswith("on_"):
            return lambda *args, **kwargs: 0
        raise AttributeError(name)


def install(
    records: Sequence[Any],
    prefix: Path,
    installed: Sequence[PrefixRecord],
    specs: Sequence[str],
    step: Any = lambda _m: None,
) -> None:
    """Make the prefix equal to ``records`` (rattler unlinks/links only what differs)."""
    from rattler import install as rattler_install
    from rattler.exceptions import InstallerError, LinkError, TransactionError

    try:
        _run(
            rattler_install(
                list(records),
                target_prefix=prefix,
                cache_dir=pkgs_dir(),
                installed_packages=list(installed),
                show_progress=False,
                client=client(),
                requested_specs=[MatchSpec(s)._match_spec for s in specs],
                reporter=_Reporter(step),
            ),
            QUERY_TIMEOUT_S * 5,
        )
    except (InstallerError, LinkError, TransactionError) as exc:
        raise CondafixError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def package_source(record: Any) -> str | None:
    """Where a package can be had again: ``cache``, ``channel``, or None (gone from both)."""
    import urllib.request
    from urllib.parse import unquote, urlsplit

    stem = f"{record.name.normalized}-{record.version}-{record.build}"
    cache = pkgs_dir()
    if (cache / stem / "info").is_dir() or any((cache / f"{stem}{ext}").is_file() for ext in (".conda", ".tar.bz2")):
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
        return tuple(dict.fromkeys(requested)) or tuple(env_channels)

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
        return [to_record(r) for r in query(self._gw(), target, names)]

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

    def apply(self, plan: Any, *, via: str | None, step: Any) -> Any:
        from condafix import transaction

        return transaction.apply_plan(plan, via=via, step=step)
