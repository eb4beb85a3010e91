"""Querying and solving with py-rattler: ``__cuda`` is set explicitly (rattler's ``solve`` detects
nothing), installed records are locked, and a stale sharded cache is recovered from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
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
    VirtualPackage,
)
from rattler.exceptions import GatewayError, InvalidMatchSpecError, SolverError

from condafix.backends.rattler.net import (
    _WATCH,
    QUERY_TIMEOUT_S,
    NetLimits,
    Target,
    _gateway_error,
    _is_stale_revalidation,
    _limit_error,
    _log,
    _watched,
    gateway,
    net_limits,
)
from condafix.env import condameta
from condafix.errors import CondafixError, InspectError
from condafix.plan.solver import SolveFailed


def read_prefix_records(prefix: Path) -> list[PrefixRecord]:
    """Installed records for the solver's locked set; a broken one is an InspectError."""
    records = []
    for path in condameta.record_paths(prefix):
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
        raise CondafixError(summary=f"invalid spec in the env's history: {exc}") from None
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


def records_of(gw: Gateway, target: Target, name: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(version, build, depends) of every record of ``name`` on the target's channels."""
    return [(str(r.version), str(r.build), tuple(r.depends)) for r in query(gw, target, [name])]
