"""The baseline: the solve ``condafix cuda`` makes, written as the shortest py-rattler script.

Same channel, same platforms, the env's installed records locked, the same specs (the user's
requested specs plus the pin), detected virtual packages with ``__cuda`` set to the target. What
condafix does beyond this (reading the env, finding the candidates on the channel, the diff, the
CLI) is the overhead the bench measures.

    python bench/bare_solve.py URL PREFIX CUDA CACHE_DIR SPEC...
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from rattler import (
    BuildString,
    Gateway,
    GenericVirtualPackage,
    PackageName,
    PrefixRecord,
    Version,
    VirtualPackage,
    solve,
)


def main() -> None:
    url, prefix, cuda, cache = sys.argv[1:5]
    specs = sys.argv[5:]
    locked = [PrefixRecord.from_path(p) for p in sorted((Path(prefix) / "conda-meta").glob("*.json"))]
    virtual = [v.into_generic() for v in VirtualPackage.detect()]
    virtual = [v for v in virtual if v.name.normalized != "__cuda"]
    virtual.append(GenericVirtualPackage(PackageName("__cuda"), Version(cuda), BuildString("0")))
    records = asyncio.run(
        solve(
            [url],
            specs,
            gateway=Gateway(cache_dir=Path(cache)),
            platforms=["linux-64", "noarch"],
            locked_packages=locked,
            virtual_packages=virtual,
        )
    )
    found = {r.name.normalized: str(r.version) for r in records}
    sys.stdout.write(f"{len(records)} records, cuda-version {found.get('cuda-version')}\n")
    sys.stdout.flush()
    os._exit(0)  # as condafix does: py-rattler's threads can crash interpreter finalization


if __name__ == "__main__":
    main()
