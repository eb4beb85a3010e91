"""The embedded engine behind the solver boundary: py-rattler's gateway, solver and installer.

Imported only by the commands that plan or apply (``import rattler`` costs ~80 ms). rattler is
async-only, so every entry point here is synchronous and runs its own event loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rattler import (
    Gateway,
    PrefixRecord,
    Version,
)

from condafix.backends.rattler.grammar import spec_matches
from condafix.backends.rattler.net import Target, cache_dir, gateway, repodata_cache_age
from condafix.backends.rattler.solve import query_channels, read_prefix_records, solve
from condafix.errors import CondafixError, Hint
from condafix.plan.solver import Record


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

    def __init__(self, *, prefix: Path | None, offline: bool) -> None:
        self.prefix = prefix
        self.offline = offline
        self._gateway: Gateway | None = None
        self._installed: list[PrefixRecord] | None = None

    def _gw(self) -> Gateway:
        if self._gateway is None:
            self._gateway = gateway(offline=self.offline)
        return self._gateway

    def _native_installed(self) -> list[PrefixRecord]:
        if self._installed is None:  # no prefix: a new environment, nothing installed
            self._installed = read_prefix_records(self.prefix) if self.prefix is not None else []
        return self._installed

    def channels(self, requested: Sequence[str], env_channels: Sequence[str]) -> tuple[str, ...]:
        """Names resolve through conda's ``channel_alias``/``custom_channels`` (rattler knows only the default)."""
        from condafix.env import condarc

        config = condarc.load()
        picked = tuple(dict.fromkeys(requested)) or tuple(env_channels)
        out = []
        for channel in picked:
            url = condarc.channel_url(channel, config)
            out.append(channel if url == f"{condarc.DEFAULT_ALIAS}/{channel}" else url)
        return tuple(dict.fromkeys(out))

    def cache_age(self, channels: Sequence[str]) -> float | None:
        """With --offline: the cache's age, or a clear error when a remote channel was never cached."""

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
        wanted = list(dict.fromkeys([*specs, *pins]))
        return [to_record(r) for r in solve(self._gw(), target, wanted, self._native_installed())]

    def version_less(self, left: str, right: str) -> bool:
        return bool(Version(left) < Version(right))

    def spec_matches(self, spec: str, name: str, version: str) -> bool:
        return spec_matches(spec, name, version)

    def apply(self, plan: Any, *, via: str | None, step: Any, pin: bool = True, replace_pin: bool = False) -> Any:
        from condafix.change import apply as apply_mod

        return apply_mod.apply_plan(plan, via=via, step=step, pin=pin, replace_pin=replace_pin)
