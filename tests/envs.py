"""Install real envs from a fixture channel into temp prefixes with rattler (no conda needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from rattler import BuildString, GenericVirtualPackage, MatchSpec, PackageName, Version, install, solve


def virtual(cuda: str) -> list[GenericVirtualPackage]:
    def vp(name: str, version: str) -> GenericVirtualPackage:
        return GenericVirtualPackage(PackageName(name), Version(version), BuildString("0"))

    return [vp("__cuda", cuda), vp("__glibc", "2.36"), vp("__unix", "0"), vp("__linux", "6.1")]


def install_env(channel: Path, prefix: Path, specs: Sequence[str], *, cuda: str, cache: Path) -> Path:
    """Solve ``specs`` as a machine with a CUDA ``cuda`` driver would, and install them into ``prefix``."""

    async def go() -> None:
        records = await solve(
            [channel.as_uri()], list(specs), platforms=["linux-64", "noarch"], virtual_packages=virtual(cuda)
        )
        await install(
            records,
            target_prefix=prefix,
            cache_dir=cache,
            show_progress=False,
            requested_specs=[MatchSpec(s)._match_spec for s in specs],
        )

    asyncio.run(go())
    return prefix
