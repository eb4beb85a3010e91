"""What other tools did to a prefix while (or since) condafix changed it.

Why: the prefix is shared with conda, which takes no prefix lock (conda 26.7's only locks,
``conda.gateways.disk.lock``, guard the repodata cache and partial downloads; ``--no-lock`` turns
those off), so condafix's own lock cannot keep ``conda install`` out. An undo or a rollback must
therefore tell condafix's own packages (the names its change moves) from everything else, and
leave everything else as the other tool left it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix.change.safety import _read_json
from condafix.env import condameta


def own_names(meta: Mapping[str, Any]) -> set[str]:
    """The package names condafix's change moves: its own transaction (``moving``), else the plan's
    touched and linked packages (snapshots written before ``moving`` was kept)."""
    moving = meta.get("moving")
    names = {n for n in moving if isinstance(n, str)} if isinstance(moving, list) else set()
    backed = meta.get("backed_up")
    names |= {n for n in backed if isinstance(n, str)} if isinstance(backed, list) else set()
    linking = meta.get("linking")
    names |= {condameta.dist_name(d) for d in linking if isinstance(d, str)} if isinstance(linking, list) else set()
    return names


@dataclass(frozen=True, kw_only=True)
class Scope:
    """The package names a restore may act on: condafix's own (``names``); or, for a rollback the user
    forced past later changes, every name but those another tool changed during condafix's change
    (``kept``: the user was told those stay)."""

    names: frozenset[str]
    everything: bool = False
    kept: frozenset[str] = frozenset()

    def __contains__(self, name: object) -> bool:
        return name not in self.kept if self.everything else name in self.names


def scope(meta: Mapping[str, Any], *, force: bool = False) -> Scope:
    kept = meta.get("others_names")
    return Scope(
        names=frozenset(own_names(meta)),
        everything=force,
        kept=frozenset(n for n in kept if isinstance(n, str)) if isinstance(kept, list) else frozenset(),
    )


def _revision_names(revision: condameta.Revision, kept: frozenset[str] = frozenset()) -> set[str]:
    """The names a revision moves; a ``+`` of a record in ``kept`` (installed before and after, unchanged) moves
    nothing: conda's first revision in an empty history lists the whole env so (rattler, pixi, micromamba)."""
    names = set()
    for line in revision.lines:
        dist = line[1:].split("::")[-1]
        if line[:1] == "-" or (line[:1] == "+" and dist not in kept):
            names.add(condameta.dist_name(dist))
    return names


def _kept(prefix: Path, snapshot: Path) -> frozenset[str]:
    """``name-version-build`` of the records both at snapshot time and now (their file names: no record is read)."""
    saved = {p.name for p in condameta.record_paths(snapshot)}
    return frozenset(p.name.removesuffix(".json") for p in condameta.record_paths(prefix) if p.name in saved)


def revisions_before(meta: Mapping[str, Any], text: str) -> int:
    """How many history revisions there were when the snapshot was taken."""
    counted = meta.get("history_revisions")
    if isinstance(counted, int) and counted >= 0:
        return counted
    size = meta.get("history_size")
    head = text.encode()[: size if isinstance(size, int) and size >= 0 else 0].decode(errors="replace")
    return len(condameta.parse_history(head).revisions)


def foreign_revisions(prefix: Path, snapshot: Path, meta: Mapping[str, Any]) -> list[str]:
    """History revisions written after the snapshot that move a package condafix's change does not."""
    text = condameta.history_text(prefix)
    own = own_names(meta)
    revisions = condameta.parse_history(text).revisions
    since = revisions_before(meta, text)
    kept = _kept(prefix, snapshot)
    return [
        f"history revision {n}: {_short(rev.command)}"
        for n, rev in enumerate(revisions[since:], since + 1)
        if _revision_names(rev, kept) - own
    ]


def _short(command: str | None) -> str:
    """A revision's command with conda's own path shown as ``conda`` (``.../conda/__main__.py`` too)."""
    argv = (command or "(no command)").split()
    if argv and (argv[0].endswith(("/conda", "/conda/__main__.py")) or argv[0] == "conda"):
        argv[0] = "conda"
    return " ".join(argv)


def tail_revisions(prefix: Path, meta: Mapping[str, Any]) -> int:
    """How many revisions the history holds beyond those at snapshot time."""
    text = condameta.history_text(prefix)
    return max(0, len(condameta.parse_history(text).revisions) - revisions_before(meta, text))


def foreign_changes(prefix: Path, snapshot: Path, meta: Mapping[str, Any]) -> list[str]:
    """What another tool changed since the snapshot: records of packages condafix's change does not
    move (added, replaced or removed) and history revisions that move them."""
    return [text for _name, text in foreign_records(prefix, snapshot, meta)] + foreign_revisions(prefix, snapshot, meta)


def foreign_records(prefix: Path, snapshot: Path, meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, what happened) for each package another tool installed, replaced or removed since the snapshot.

    A record file in both is the same build (conda names it ``name-version-build``) and is never read:
    only the files that differ are, so a 200 MB record the change does not touch is not parsed twice."""
    own = own_names(meta)
    saved_files = {p.name: p for p in condameta.record_paths(snapshot)}
    current_files = {p.name: p for p in condameta.record_paths(prefix)}
    added = {f: _read_json(p) for f, p in current_files.items() if f not in saved_files}
    gone = {f: _read_json(p) for f, p in saved_files.items() if f not in current_files}

    def name(file: str, record: Mapping[str, Any] | None) -> str:
        return str((record or {}).get("name") or condameta.dist_name(file))

    saved_by_name = {name(f, gone.get(f)): f for f in saved_files}
    found: list[tuple[str, str]] = []
    for file, record in sorted(added.items()):
        if name(file, record) in own:
            continue
        was = saved_by_name.get(name(file, record))
        old = " ".join(was.removesuffix(".json").rsplit("-", 2)[1:]) if was else "(not installed)"
        found.append(
            (name(file, record), f"{name(file, record)} {old} -> {record.get('version')} {record.get('build')}")
        )
    names_now = {name(f, added.get(f)) for f in current_files}
    for file, record in sorted(gone.items()):
        if name(file, record) not in own and name(file, record) not in names_now:
            found.append(
                (name(file, record), f"{name(file, record)} {record.get('version')} {record.get('build')} removed")
            )
    return found
