"""The solver boundary: what planning needs from a package manager, and the installer it hands back.

Two backends implement it: the embedded py-rattler one (``backends/rattler``, for machines without
conda) and conda's own configured solver (``backends/conda.py``: libmamba, classic or rattler, with the
user's channels, ``.condarc``, mirrors, auth, ``pkgs_dirs`` and ``pinned``). Only those modules import
rattler or conda; the planner, verdicts and rendering see the neutral :class:`Record`. A backend never
applies: it builds an :class:`Installer` that ``change.apply`` wraps. Which backend: ``backends/choice.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from condafix.change.installer import Installer, InstallRequest, Record, Step

__all__ = ["Backend", "InstallRequest", "Installer", "Record", "SolveFailed", "Step"]


class SolveFailed(Exception):
    """The solver found no solution; ``message`` is its explanation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Backend(Protocol):
    """Query candidates, solve with the installed set kept (none without a prefix) and a given ``__cuda``,
    build an installer."""

    name: str

    def channels(self, requested: Sequence[str], env_channels: Sequence[str]) -> tuple[str, ...]:
        """The channels this backend plans with (``-c`` values, else its own configuration)."""
        ...

    def cache_age(self, channels: Sequence[str]) -> float | None:
        """With --offline, the repodata cache's age (None when the backend does not keep one)."""
        ...

    def installed(self) -> list[Record]:
        """The prefix's installed records."""
        ...

    def query(self, channels: Sequence[str], names: Sequence[str], *, platform: str) -> list[Record]:
        """Every record of these names on the channels (not recursive)."""
        ...

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
        """The final state with ``pins`` added; raises :class:`SolveFailed`.

        Every spec in ``specs`` holds in the answer. A backend opened without a prefix
        (``open_backend(prefix=None)``) has nothing installed: this is then the solve of a new
        environment of ``specs`` (``conda create``), e.g. for ``condafix env``. ``cuda_arch`` is
        ``__cuda_arch`` where the backend can express it (rattler); conda 26.7 has no such virtual
        package, so the conda backend solves without it.
        """
        ...

    def version_less(self, left: str, right: str) -> bool:
        """Version ordering by the backend's own rules (never hand-written)."""
        ...

    def spec_matches(self, spec: str, name: str, version: str) -> bool:
        """Does a depends/constrains entry accept this version of ``name``?"""
        ...

    def installer(self, request: InstallRequest) -> Installer:
        """How this backend installs a request it solved (``change.apply`` wraps it; the backend never applies)."""
        ...
