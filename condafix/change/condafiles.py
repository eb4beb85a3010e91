"""The files conda owns, written the way conda writes them: ``conda-meta/history`` revisions and
``conda-meta/pinned`` lines, so ``conda list --revisions``, ``conda install --revision N`` and ``conda
update --all`` keep working and keep the fix.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix import __version__
from condafix.change.installer import Matches
from condafix.change.safety import Refused, _atomic_write, _read_json, scrub
from condafix.errors import Hint


def _records(prefix: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """conda-meta record file and its contents, per package name."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        record = _read_json(path)
        if isinstance(record.get("name"), str):
            out[record["name"]] = (path, record)
    return out


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
    state: set[str] = set()
    revisions = 0
    block: list[str] = []

    def close() -> None:
        nonlocal state
        if not block:
            return
        if any(s.startswith(("-", "+")) for s in block):
            for s in block:
                if s.startswith("-"):
                    state.discard(s[1:])
                elif s.startswith("+"):
                    state.add(s[1:])
        else:
            state = set(block)

    for raw in text.splitlines():
        line = raw.strip()
        if re.match(r"==>\s*(.+?)\s*<==", line):
            close()
            block = []
            revisions += 1
        elif line and not line.startswith("#") and revisions:
            block.append(line)
    close()
    return state, revisions


def _history_text(prefix: Path) -> str:
    try:
        return (prefix / "conda-meta" / "history").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def requested_map(prefix: Path) -> dict[str, str]:
    """The user's requested specs by package name, as conda's history replay leaves them."""
    from condafix.env import envinfo

    return {envinfo.spec_name(s): s for s in envinfo.parse_history(_history_text(prefix))}


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
    lines = [f"==> {stamp} <==", f"# cmd: {scrub(command)}", f"# condafix version: {__version__}"]
    lines += [f"-{r}" for r in sorted(removed)] + [f"+{a}" for a in sorted(added)]
    if remove_specs:
        lines.append(f"# remove specs: {list(remove_specs)!r}")
    if update_specs:
        lines.append(f"# update specs: {list(update_specs)!r}")
    path = prefix / "conda-meta" / "history"
    if path.is_symlink():
        raise Refused(f"{path} is a symlink; condafix will not write through it")
    from condafix.redact import redact

    with open(path, "a", encoding="utf-8") as out:
        out.write(redact("\n".join(lines)) + "\n")  # no credential in a file condafix writes
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
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
    from condafix.env import envinfo

    path = prefix / "conda-meta" / "pinned"
    try:
        existing = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror or exc}") from None
    edits: list[PinEdit] = []
    for wanted in pin_lines(pins):
        name, version = wanted.split(" ", 1)[0], wanted.split(" ", 1)[1].rstrip(".*")
        same = [(n, line.strip()) for n, line in enumerate(existing, 1)
                if line.strip() and not line.strip().startswith("#") and envinfo.spec_name(line) == name]  # fmt: skip
        conflicts = [(n, line) for n, line in same if not spec_matches(line, name, version)]
        if conflicts and not replace:
            where = "; ".join(f"{path}:{n}: {line}" for n, line in conflicts)
            raise Refused(
                f"a pin excludes {name} {version}: {where}; nothing was changed",
                (Hint("replace_pin", f"pass --replace-pin to replace it with `{wanted}` (rollback restores it)"),),
            )
        if same and not conflicts:
            continue  # already pinned to something the target satisfies
        edits += [PinEdit(wanted, line) for _n, line in conflicts] or [PinEdit(wanted)]
    return edits


def _apply_pin_edits(prefix: Path, edits: Sequence[PinEdit]) -> None:
    path = prefix / "conda-meta" / "pinned"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
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
    path = prefix / "conda-meta" / "pinned"
    if not edits or not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
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
    out: list[str] = []
    for line in text.splitlines():
        if re.match(r"==>\s*(.+?)\s*<==", line.strip()):
            out.append("")
        elif out and line.startswith("# cmd:"):
            out[-1] = scrub(line[len("# cmd:") :].strip())
    return out


def _config() -> Any:
    from condafix.env import condarc

    return condarc.load()


def _current_dists(prefix: Path, config: Any) -> dict[str, str]:
    """Record file name -> the history line conda holds for it (its replayed state, else computed)."""
    state, _revisions = history_state(_history_text(prefix))
    by_key = {s.split("::", 1)[-1]: s for s in state}
    out = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        record = _read_json(path)
        key = f"{record.get('name')}-{record.get('version')}-{record.get('build')}"
        out[path.name] = by_key.get(key) or dist_str(record, config)
    return out
