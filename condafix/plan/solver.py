"""The solver boundary: what planning needs from a package manager, and how a backend is chosen.

Two backends implement it: the embedded py-rattler one (``rattler_backend``, for machines without
conda) and conda's own configured solver (``conda_backend``: libmamba, classic or rattler, with the
user's channels, ``.condarc``, mirrors, auth, ``pkgs_dirs`` and ``pinned``). Only those two modules
import rattler or conda; the planner, verdicts and rendering see the neutral :class:`Record`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from condafix.errors import Hint, UsageError

Step = Callable[[str], None]
Choice = Literal["auto", "conda", "rattler"]


class SolveFailed(Exception):
    """The solver found no solution; ``message`` is its explanation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Record:
    """One package record, whichever backend read it; ``channel`` and ``url`` stay raw (not redacted)."""

    name: str
    version: str
    build: str
    subdir: str = ""
    channel: str | None = None
    url: str | None = None
    size: int | None = None
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    native: Any = field(default=None, repr=False, compare=False, metadata={"json": False})


class Backend(Protocol):
    """Query candidates, solve with the installed set kept (none without a prefix) and a given ``__cuda``, apply."""

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

    def apply(self, plan: Any, *, via: str | None, step: Step, pin: bool = True, replace_pin: bool = False) -> Any:
        """Change the prefix as planned (``pin``: also in conda-meta/pinned); returns ``transaction.Applied``."""
        ...


def conda_available() -> bool:
    """Is conda's Python API importable here (condafix installed into a conda install)?"""
    return importlib.util.find_spec("conda") is not None and importlib.util.find_spec("conda.base") is not None


def default_choice(env: Mapping[str, str] | None = None) -> Literal["conda", "rattler"]:
    """conda when condafix runs inside a conda install (``$CONDAFIX_SOLVER`` overrides), else rattler."""
    env = os.environ if env is None else env
    wanted = env.get("CONDAFIX_SOLVER", "").strip().lower()
    if wanted in ("conda", "rattler"):
        return "conda" if wanted == "conda" else "rattler"
    return "conda" if conda_available() else "rattler"


def open_backend(
    choice: str,
    *,
    prefix: Path | None,
    offline: bool,
    env: Mapping[str, str] | None = None,
    configured: bool = False,
) -> Backend:
    """The backend for ``--solver``; ``configured`` means conda's context is already set up (plugin).

    ``prefix=None``: no environment; the backend solves files (``condafix env``) with nothing installed.
    """
    picked = default_choice(env) if choice == "auto" else choice
    if picked == "conda":
        if not conda_available():
            raise UsageError(
                "--solver conda: conda's Python API is not importable from this Python",
                (),
            )
        from condafix.backends.conda import CondaBackend

        return CondaBackend(prefix=prefix, offline=offline, configured=configured)
    if picked == "rattler":
        try:
            from condafix.backends.rattler.backend import RattlerBackend
        except ImportError as exc:  # e.g. py-rattler 0.26, kept beside conda for conda-rattler-solver
            raise UsageError(
                f"the embedded solver needs py-rattler >= 0.28 ({exc})",
                (Hint("use_conda", "inside a conda install, plan with conda's solver: --solver conda"),),
            ) from None
        return RattlerBackend(prefix=prefix, offline=offline)
    raise UsageError(f"--solver must be conda or rattler, not {choice!r}")
