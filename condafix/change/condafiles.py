"""The files conda owns, written the way conda writes them: ``conda-meta/history`` revisions and
``conda-meta/pinned`` lines, so ``conda list --revisions``, ``conda install --revision N`` and ``conda
update --all`` keep working and keep the fix.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix import __version__
from condafix.change.installer import Matches
from condafix.change.safety import Refused, _atomic_write, scrub
from condafix.env import condameta
from condafix.errors import Hint, InspectError


def _records(prefix: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """conda-meta record file and its contents, per package name (a broken record reads as {} here)."""
    return condameta.records_by_name(prefix, strict=False)


def dist_str(record: Mapping[str, Any], config: Any = None) -> str:
    """conda's ``channel/subdir::name-version-build`` for a record (conda's or rattler's)."""
    from condafix.env import condarc

    config = config or condarc.load()
    name, version, build = record.get("name"), record.get("version"), record.get("build")
    subdir = str(record.get("subdir") or "")
    url = str(record.get("url") or "")
    base = url.rsplit("/", 1)[0] if url else str(record.get("channel") or "")
    base = base.rstrip("/")
    if subdir and base.endswith("/" + subdir):
        base = base[: -len(subdir) - 1]
    channel = condarc.canonical_channel(base, config) if base else "<unknown>"
    return f"{channel}/{subdir}::{name}-{version}-{build}" if subdir else f"{channel}::{name}-{version}-{build}"


def history_state(text: str) -> tuple[set[str], int]:
    """The package set conda's history replay ends with, and the number of revisions."""
    history = condameta.parse_history(text)
    return set(history.state()), len(history.revisions)


def _history_text(prefix: Path) -> str:
    return condameta.history_text(prefix)


def requested_map(prefix: Path) -> dict[str, str]:
    """The user's requested specs by package name, as conda's history replay leaves them."""
    return condameta.read_history(prefix).requested_specs()


def append_history(
    prefix: Path,
    command: str,
    removed: Sequence[str],
    added: Sequence[str],
    *,
    update_specs: Sequence[str] = (),
    remove_specs: Sequence[str] = (),
) -> None:
    """One revision exactly as conda writes it (conda/history.py ``write_head``/``write_specs``)."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"==> {stamp} <==", f"# cmd: {_one_line(scrub(command))}", f"# condafix version: {__version__}"]
    lines += [f"-{_one_line(r)}" for r in sorted(removed)] + [f"+{_one_line(a)}" for a in sorted(added)]
    if remove_specs:
        lines.append(_one_line(f"# remove specs: {list(remove_specs)!r}"))
    if update_specs:
        lines.append(_one_line(f"# update specs: {list(update_specs)!r}"))
    path = condameta.history_path(prefix)
    if path.is_symlink():
        raise Refused(f"{path} is a symlink; condafix will not write through it")
    from condafix.redact import redact

    with open(path, "a", encoding="utf-8") as out:
        out.write(redact("\n".join(lines)) + "\n")  # no credential in a file condafix writes
        out.flush()
        os.fsync(out.fileno())


def record_others(prefix: Path, names: Sequence[str], config: Any = None) -> bool:
    """conda's ``History.update`` for the packages another tool changed during condafix's change: conda
    in the plugin's process writes its revision from the records it read before, so a package another
    install linked meanwhile reads as removed. One revision puts the history's state back to the records
    on disk for those names (the next conda command would write the same). True when one was written."""
    wanted = set(names)
    if not wanted:
        return False
    state, _revisions = history_state(_history_text(prefix))
    on_disk = {
        dist.split("::", 1)[-1]: dist
        for file, dist in _current_dists(prefix, config or _config()).items()
        if condameta.dist_name(file) in wanted
    }
    in_state = {line.split("::", 1)[-1]: line for line in state}
    removed = [line for key, line in in_state.items() if condameta.dist_name(key) in wanted and key not in on_disk]
    added = [dist for key, dist in on_disk.items() if key not in in_state]
    if not removed and not added:
        return False
    append_history(prefix, "condafix: another tool's packages as they are on disk", removed, added)
    return True


def _one_line(text: str) -> str:
    """A history line stays one line: a newline in a prefix path must not start a fake revision."""
    return "".join(f"\\x{ord(c):02x}" if c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else c for c in text)


@dataclass(frozen=True, kw_only=True)
class PinEdit:
    """One line condafix puts into ``conda-meta/pinned``, and the line it replaces (if any)."""

    added: str
    replaced: str | None = None


def pin_lines(pins: Sequence[str]) -> list[str]:
    """``cuda-version=12.4`` -> ``cuda-version 12.4.*``: conda's pinned-file form of the plan's pins."""
    out = []
    for pin in pins:
        name, _, version = pin.partition("=")
        out.append(f"{name.strip()} {version.strip().rstrip('.*')}.*")
    return out


def plan_pin_edits(prefix: Path, pins: Sequence[str], *, replace: bool, spec_matches: Matches) -> list[PinEdit]:
    """What to write into ``conda-meta/pinned``; a pin there that excludes the target blocks (file:line).

    ``spec_matches`` is the installer's own match-spec check (conda's inside conda, else rattler's).
    """
    path = condameta.pinned_path(prefix)
    try:
        existing = condameta.pinned_lines(prefix)
    except InspectError as exc:
        raise Refused(f"{exc.summary}; nothing was changed") from None
    edits: list[PinEdit] = []
    for wanted in pin_lines(pins):
        name, version = wanted.split(" ", 1)[0], wanted.split(" ", 1)[1].rstrip(".*")
        same = [(n, line.strip()) for n, line in enumerate(existing, 1)
                if line.strip() and not line.strip().startswith("#") and condameta.spec_name(line) == name]  # fmt: skip
        conflicts = [(n, line) for n, line in same if not spec_matches(line, name, version)]
        if conflicts and not replace:
            where = "; ".join(f"{path}:{n}: {line}" for n, line in conflicts)
            raise Refused(
                f"a pin excludes {name} {version}: {where}; nothing was changed",
                (
                    Hint(
                        code="replace_pin",
                        text=f"pass --replace-pin to replace it with `{wanted}` (rollback restores it)",
                    ),
                ),
            )
        if same and not conflicts:
            continue  # already pinned to something the target satisfies
        edits += [PinEdit(added=wanted, replaced=line) for _n, line in conflicts] or [PinEdit(added=wanted)]
    return edits


def _apply_pin_edits(prefix: Path, edits: Sequence[PinEdit]) -> None:
    path = condameta.pinned_path(prefix)
    lines = condameta.pinned_lines(prefix)
    for edit in edits:
        if edit.replaced is not None:
            index = next((i for i, line in enumerate(lines) if line.strip() == edit.replaced), None)
            if index is not None:
                lines[index] = edit.added
                continue
        if edit.added not in (line.strip() for line in lines):
            lines.append(edit.added)
    _atomic_write(path, "".join(f"{line}\n" for line in lines))


def _undo_pin_edits(prefix: Path, edits: Sequence[dict[str, Any]], existed: bool) -> None:
    """Remove exactly the lines condafix added (putting back what they replaced); other lines stay."""
    path = condameta.pinned_path(prefix)
    if not edits or not path.is_file():
        return
    lines = condameta.pinned_lines(prefix)
    for edit in edits:
        added, replaced = str(edit.get("added")), edit.get("replaced")
        index = next((i for i, line in enumerate(lines) if line.strip() == added), None)
        if index is None:
            continue
        if isinstance(replaced, str):
            lines[index] = replaced
        else:
            del lines[index]
    if not lines and not existed:
        path.unlink()
    else:
        _atomic_write(path, "".join(f"{line}\n" for line in lines))


def _commands(text: str) -> list[str]:
    """The ``# cmd:`` of each revision ("" where it has none), credentials scrubbed."""
    return [scrub(r.command.strip()) if r.command else "" for r in condameta.parse_history(text).revisions]


def _config() -> Any:
    from condafix.env import condarc

    return condarc.load()


def _current_dists(prefix: Path, config: Any) -> dict[str, str]:
    """Record file name -> the history line conda holds for it (its replayed state, else computed)."""
    state, _revisions = history_state(_history_text(prefix))
    by_key = {s.split("::", 1)[-1]: s for s in state}
    out = {}
    for path, record in condameta.records(prefix, strict=False):
        key = f"{record.get('name')}-{record.get('version')}-{record.get('build')}"
        out[path.name] = by_key.get(key) or dist_str(record, config)
    return out
