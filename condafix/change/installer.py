"""What the change path needs from whoever installs: a neutral request and the installer for it.

Why here: ``change.apply`` wraps any install (a backend's own, or ``--via conda|mamba|micromamba``)
in the lock, snapshot, journal, pin and history, the way pipx wraps pip. So the installer is a
value a backend (or the tool module) builds and the command layer hands over; nothing in
``change/`` imports a backend, and only a backend touches its native records.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Step = Callable[[str], None]
Matches = Callable[[str, str, str], bool]


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


@dataclass(frozen=True, kw_only=True)
class Move:
    """One package the change moves: what is installed now (None: not installed) and what comes."""

    name: str
    from_version: str | None
    from_build: str | None
    to_version: str | None
    to_build: str | None


@dataclass(frozen=True, kw_only=True)
class InstallRequest:
    """A planned change as the change path and an installer need it (built from the planner's Plan).

    ``records`` is the solved final state; ``command`` is the line conda's history gets; ``plan`` is
    the plan's JSON, kept in the snapshot.
    """

    prefix: Path
    cuda: str
    channels: tuple[str, ...]
    pins: tuple[str, ...]
    specs: tuple[str, ...] = ()
    records: tuple[Record, ...] = ()
    moves: tuple[Move, ...] = ()
    command: str = ""
    plan: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class Installer:
    """One way to make a prefix hold a request's records; ``change.apply`` runs it inside its safety net.

    ``install(step)`` does the work (``step``: progress); ``writes_history``: the installer writes
    conda's history revision itself (conda, mamba), so condafix writes none; ``caches``: package
    caches it extracts into (a rollback after a kill finds half-linked files there); ``spec_matches``:
    its own match-spec check, for pins already in ``conda-meta/pinned``; ``argv``: the command it runs,
    when it is a tool; ``moved()``: the package names its own transaction moved, when it re-solves
    (conda's): an undo removes only records of those and of the plan's moves, never another tool's.
    """

    label: str
    install: Callable[[Step], None]
    writes_history: bool
    spec_matches: Matches
    caches: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    moved: Callable[[], Sequence[str]] = lambda: ()


@dataclass(frozen=True, kw_only=True)
class Reinstaller:
    """How a restore gets back packages the snapshot holds no backup of (handed in by the command layer).

    ``unavailable(records_dir, names)``: of the records saved in ``records_dir`` with those names, the
    ones no cache or channel holds any more (``"name version build"``); ``reinstall(prefix, records_dir)``
    makes the prefix hold exactly the saved records. ``unusable``: why this one cannot run here (then
    nothing is tried and the restore says so). ``writes_history``: it writes conda's history revision
    itself (conda's transaction), so the rollback adds only the spec lines.
    """

    label: str
    unavailable: Callable[[Path, Sequence[str]], list[str]]
    reinstall: Callable[[Path, Path], None]
    unusable: str | None = None
    writes_history: bool = False


_GUARDS: list[Callable[[Iterable[str]], None]] = []
_GUARD_LOCK = threading.Lock()


def before_writing(paths: Iterable[str]) -> None:
    """An installer calls this just before it links a package, with the paths the package writes
    (its ``info/paths.json``): the change in flight saves whatever is at those paths now, so a
    clobbered file of a package it does not touch (or a user's own file) comes back byte for byte.
    Safe to call from an installer's worker threads; a no-op outside a change."""
    wanted = list(paths)
    with _GUARD_LOCK:
        for guard in _GUARDS:
            guard(wanted)


@contextlib.contextmanager
def guarding(guard: Callable[[Iterable[str]], None]) -> Iterator[None]:
    """While the change path runs an install: ``before_writing`` goes to ``guard``."""
    with _GUARD_LOCK:
        _GUARDS.append(guard)
    try:
        yield
    finally:
        with _GUARD_LOCK:
            _GUARDS.remove(guard)


_CANCEL = threading.Event()


def cancel_requested() -> bool:
    """The user pressed Ctrl-C (or sent SIGTERM/SIGHUP) during a change: an installer stops downloading
    at once and raises ``KeyboardInterrupt`` while it has linked nothing yet; once it links, it finishes
    the step (the change path then undoes it)."""
    return _CANCEL.is_set()
