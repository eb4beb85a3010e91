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

from condafix.backends.rattler import install as install_rb
from condafix.backends.rattler.grammar import spec_matches
from condafix.backends.rattler.net import Target, cache_dir, gateway, repodata_cache_age
from condafix.backends.rattler.solve import query_channels, read_prefix_records, solve
from condafix.change.installer import Installer, InstallRequest, Step
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
    )


class RattlerBackend:
    """The embedded engine: py-rattler's gateway and solver, condafix's own cache and installer."""

    name = "rattler"

    def __init__(self, *, prefix: Path | None, offline: bool) -> None:
        self.prefix = prefix
        self.offline = offline
        self._gateway: Gateway | None = None
        self._installed: list[PrefixRecord] | None = None
        self._natives: dict[Record, Any] = {}  # neutral record -> rattler's, for the installer

    def _neutral(self, records: Sequence[Any]) -> list[Record]:
        out = []
        for native in records:
            record = to_record(native)
            self._natives[record] = native
            out.append(record)
        return out

    def natives(self, records: Sequence[Record]) -> list[Any]:
        """rattler's own records behind neutral ones this backend returned (only a backend touches them)."""
        missing = [f"{r.name} {r.version} {r.build}" for r in records if r not in self._natives]
        if missing:
            raise CondafixError(summary=f"the rattler backend did not solve {', '.join(missing)}; plan again with it")
        return [self._natives[r] for r in records]

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
                summary=f"--offline: no cached repodata for {', '.join(remote)} in {cache_dir()}",
                hints=(Hint(code="warm_cache", text="run the same command once online to fill the cache"),),
            )
        return age

    def installed(self) -> list[Record]:
        return self._neutral(self._native_installed())

    def query(self, channels: Sequence[str], names: Sequence[str], *, platform: str) -> list[Record]:
        target = Target(channels=tuple(channels), platform=platform, cuda="0")
        records, self._gateway = query_channels(self._gw(), target, names, offline=self.offline)
        return self._neutral(records)

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
        target = Target(channels=tuple(channels), platform=platform, cuda=cuda, cuda_arch=cuda_arch)
        wanted = list(dict.fromkeys([*specs, *pins]))
        return self._neutral(solve(self._gw(), target, wanted, self._native_installed()))

    def version_less(self, left: str, right: str) -> bool:
        return bool(Version(left) < Version(right))

    def spec_matches(self, spec: str, name: str, version: str) -> bool:
        return spec_matches(spec, name, version)

    def installer(self, request: InstallRequest) -> Installer:
        """rattler installs the solved records (from conda's package cache where it holds them)."""
        natives = self.natives(request.records)
        prefix = request.prefix

        def install(step: Step) -> None:
            originals = {f"{r.name.normalized}-{r.version}-{r.build}.json": str(r.url) for r in natives}
            before = install_rb.record_stamps(prefix)
            try:
                install_rb.install(
                    install_rb.prefer_cached(natives), prefix, read_prefix_records(prefix), request.specs, step
                )
            finally:  # prefer_cached points a record at conda's cache; the backend's records stay as solved
                for record in natives:
                    record.url = originals[f"{record.name.normalized}-{record.version}-{record.build}.json"]
            install_rb.keep_channel_urls(prefix, originals, before)

        return Installer(
            label="rattler",
            install=install,
            writes_history=False,
            spec_matches=spec_matches,
            caches=(str(install_rb.pkgs_dir()),),
        )
