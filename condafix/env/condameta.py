"""The one reader of what conda keeps in ``<prefix>/conda-meta/``: package records, ``history``, ``pinned``.

Why one: five readers once disagreed (one replayed ``remove`` specs, one did not; one read a
broken record as ``{}``, one as an error). This module reads each file the way conda 26.7 does
(``conda/history.py`` ``History.parse``/``_parse_comment_line``/``construct_states``,
``conda/core/prefix_data.py`` ``get_pinned_specs``) and nothing else. Writers stay in
``change/condafiles.py``. Reads are linear, never follow a symlink out of the prefix, and a
file that is not UTF-8 or not what conda writes is one :class:`~condafix.errors.InspectError`.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix.errors import Hint, InspectError

META = "conda-meta"
_SEPARATOR = re.compile(r"==>\s*(.+?)\s*<==")  # conda's sep_pat, matched at the line start
_CMD = re.compile(r"#\s*cmd:\s*(.+)")
_CONDA_VERSION = re.compile(r"#\s*conda version:\s*(.+)")
_SPECS = re.compile(r"#\s*(\w+)\s*specs:\s*(.+)?")
_RELATION = re.compile(r"^(=|==|!=|<=|>=|<|>|~=)")  # conda's version_relation_re, for old-style lists


# ---------------------------------------------------------------- paths that stay in the prefix


def meta_dir(prefix: Path) -> Path:
    """``<prefix>/conda-meta``; refused when it is a symlink leading out of the prefix."""
    path = prefix / META
    _inside(prefix, path, f"{META}/")
    return path


def _inside(prefix: Path, path: Path, origin: str) -> None:
    if not path.is_symlink():
        return
    try:
        ok = path.resolve().is_relative_to(prefix.resolve())
    except (OSError, RuntimeError):
        ok = False
    if not ok:
        raise InspectError(f"{origin}: a symlink leading outside {prefix}; condafix does not follow it")


def _read_text(prefix: Path, path: Path, origin: str) -> str | None:
    """The file's text (strict UTF-8), None when it does not exist; any other failure is one clear error."""
    _inside(prefix, path, origin)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InspectError(f"{origin}: a directory, not a file") from None
    except PermissionError:
        raise InspectError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise InspectError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InspectError(
            f"{origin}: not UTF-8 text (byte {exc.start}); conda cannot read it either",
            (Hint(code="broken_file", text="move the file aside or restore it from a backup"),),
        ) from None


# ---------------------------------------------------------------- package records


def record_paths(prefix: Path) -> list[Path]:
    """Every ``conda-meta/*.json`` file, sorted by name (what conda's PrefixData loads); none when absent.

    One ``scandir``: names sorted as strings and the directory entries' own types, so a 20,000-record env
    costs no stat per record (sorting Path objects and three stats each were most of doctor's time there);
    only a symlink is resolved, to refuse one leading out of the prefix.
    """
    directory = meta_dir(prefix)
    try:
        with os.scandir(directory) as listing:
            entries = sorted((e for e in listing if e.name.endswith(".json")), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise InspectError(f"{directory}: not a directory") from None
    except PermissionError:
        raise InspectError(f"cannot read {directory}: permission denied") from None
    found = []
    for entry in entries:
        path = directory / entry.name
        if entry.is_symlink():
            _inside(prefix, path, f"{META}/{entry.name}")
        if entry.is_file():
            found.append(path)
    return found


def parse_record(text: str, origin: str) -> dict[str, Any]:
    """One record's JSON, checked: an object with non-empty ``name``, ``version`` and ``build``."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise InspectError(f"{origin}: not a valid package record (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise InspectError(
            f"{origin}: not a valid package record (invalid JSON at line {exc.lineno} column {exc.colno})",
            (Hint(code="broken_record", text="move the file aside or reinstall that package with conda"),),
        ) from None
    if not isinstance(data, dict):
        raise InspectError(f"{origin}: not a valid package record (expected a JSON object)")
    for key in ("name", "version", "build"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InspectError(f"{origin}: not a valid package record (missing {key!r})")
    return data


def read_record(prefix: Path, path: Path) -> dict[str, Any]:
    """One record file under ``prefix`` (``prefix/conda-meta/x.json``), checked as :func:`parse_record`."""
    origin = f"{META}/{path.name}"
    text = _read_text(prefix, path, origin)
    if text is None:
        raise InspectError(f"{origin}: disappeared while it was read")
    return parse_record(text, origin)


def records(prefix: Path, *, strict: bool = True) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) for every record of the prefix, in file-name order.

    ``strict=False`` is for the change path's bookkeeping, which must go on past a broken record
    it is about to replace: such a record reads as ``{}`` there (a symlink out is still refused).
    """
    out = []
    for path in record_paths(prefix):
        try:
            out.append((path, read_record(prefix, path)))
        except InspectError:
            if strict:
                raise
            out.append((path, {}))
    return out


def records_by_name(prefix: Path, *, strict: bool = True) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Record file and contents per package name (the last file wins, as in file-name order)."""
    return {str(r["name"]): (p, r) for p, r in records(prefix, strict=strict) if isinstance(r.get("name"), str)}


# ---------------------------------------------------------------- history


@dataclass(frozen=True, kw_only=True, slots=True)
class Revision:
    """One ``==> date <==`` block of ``conda-meta/history``, read as conda's ``History.parse`` reads it."""

    date: str
    lines: frozenset[str]  # the package lines: ``+dist``/``-dist`` in a diff, else the full state
    command: str | None  # the text after ``# cmd:`` (conda splits it into argv)
    conda_version: str | None
    action: str | None  # ``install``/``update``/``create``/``remove``/``uninstall``/``neutered``...
    update_specs: tuple[str, ...] = ()
    remove_specs: tuple[str, ...] = ()
    neutered_specs: tuple[str, ...] = ()

    @property
    def is_diff(self) -> bool:
        return any(s.startswith(("-", "+")) for s in self.lines)

    @property
    def argv(self) -> tuple[str, ...]:
        """conda's ``item["cmd"]``: the command split on whitespace, ``.../conda`` shown as ``conda``."""
        argv = (self.command or "").split()
        if argv and argv[0].endswith("conda"):
            argv[0] = "conda"
        return tuple(argv)


@dataclass(frozen=True, kw_only=True)
class History:
    """The parsed ``conda-meta/history``: its revisions in file order."""

    revisions: tuple[Revision, ...]

    def user_requests(self) -> tuple[Revision, ...]:
        """conda's ``get_user_requests``: only revisions that carry a ``# cmd:`` line."""
        return tuple(r for r in self.revisions if r.command is not None)

    def states(self) -> list[frozenset[str]]:
        """conda's ``construct_states``: the package set after each revision."""
        out: list[frozenset[str]] = []
        self._replay(lambda current: out.append(frozenset(current)))
        return out

    def state(self) -> frozenset[str]:
        """The package set the last revision leaves (empty without revisions): one replay in place, not
        a set per revision (250k revisions that each add a package would hold 31 billion entries)."""
        return frozenset(self._replay(lambda _current: None))

    def _replay(self, each: Callable[[set[str]], None]) -> set[str]:
        current: set[str] = set()
        for rev in self.revisions:
            if not rev.is_diff:
                current = set(rev.lines)
            else:
                for line in rev.lines:
                    if line.startswith("-"):
                        current.discard(line[1:])
                    elif line.startswith("+"):
                        current.add(line[1:])
                    else:
                        raise InspectError(f"{META}/history, revision {rev.date}: did not expect {line!r}")
            each(current)
        return current

    def requested_specs(self, installed: Sequence[str] | None = None) -> dict[str, str]:
        """conda's ``get_requested_specs_map``: spec per package name after replaying every request;
        ``installed`` (names): keep only those, as conda does (it drops names no longer in the env)."""
        specs: dict[str, str] = {}
        for request in self.user_requests():
            for spec in request.remove_specs:
                specs.pop(spec_name(spec), None)
            specs.update((spec_name(s), s.strip()) for s in request.update_specs)
            specs.update((spec_name(s), s.strip()) for s in request.neutered_specs)
        if installed is not None:
            keep = set(installed)
            specs = {k: v for k, v in specs.items() if k in keep}
        return specs


def dist_name(stem: str) -> str:
    """Package name of a record's ``name-version-build`` (a conda-meta file name, ``.json`` optional, or a
    history dist without its channel): names may hold dashes, version and build never do."""
    return stem.removesuffix(".json").rsplit("-", 2)[0]


def spec_name(spec: str) -> str:
    """Package name of a MatchSpec string (``conda-forge::cuda-version=12.4`` -> cuda-version)."""
    text = spec.strip().split("::")[-1]
    return re.split(r"[\s=<>!~\[]", text, maxsplit=1)[0].lower()


def _old_format_specs(text: str) -> list[str]:
    """conda < 4.5's ``python>=3.5.1,jupyter >=1.0.0,<2.0``: a piece starting with a relation joins the last."""
    specs: list[str] = []
    for piece in text.split(","):
        if _RELATION.match(piece) and specs:
            specs[-1] = f"{specs[-1]},{piece}"
        else:
            specs.append(piece)
    return specs


_QUOTED = re.compile(r"""[ \t]*(?:'([^'\\\n\x00\ud800-\udfff]*)'|"([^"\\\n\x00\ud800-\udfff]*)")[ \t]*([,\]])""")
_CLOSE = re.compile(r"[ \t]*\]")


def _quoted_list(text: str) -> list[str] | None:
    """The list conda writes (``repr`` of plain strings, no escapes) read without building an AST:
    ``ast.literal_eval`` of 250k specs peaks near 90 times the line's size. None for anything else
    (prefixes, escapes, concatenation, a lone surrogate...): ``literal_eval`` reads those exactly as conda does."""
    if not text.endswith("]"):
        return None
    items: list[str] = []
    pos, end = 1, len(text)
    if _CLOSE.fullmatch(text, pos):
        return items
    while pos < end:
        m = _QUOTED.match(text, pos)
        if m is None:
            return None
        items.append(m.group(1) if m.group(1) is not None else m.group(2))
        pos = m.end()
        if m.group(3) == "]":
            return items if pos == end else None
        if _CLOSE.fullmatch(text, pos):  # a trailing comma
            return items
    return None


def _spec_list(text: str, origin: str) -> list[str]:
    quoted = _quoted_list(text) if text.startswith("[") else None
    if quoted is not None:
        specs = quoted
    elif text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            raise InspectError(f"{origin}: not a spec list conda can read: {text[:80]!r}") from None
        if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
            raise InspectError(f"{origin}: not a list of specs: {text[:80]!r}")
        specs = list(value)
    elif "[" not in text:
        specs = _old_format_specs(text)
    else:
        raise InspectError(f"{origin}: not a spec list conda can read: {text[:80]!r}")
    return [s for s in specs if s and not s.endswith("@")]


def _revision(date: str, lines: set[str], comments: list[str], number: int) -> Revision:
    origin = f"{META}/history, revision {number} ({date})"
    fields: dict[str, Any] = {"command": None, "conda_version": None, "action": None}
    for line in comments:
        if m := _CMD.match(line):
            fields["command"] = m.group(1)
        if m := _CONDA_VERSION.match(line):
            fields["conda_version"] = m.group(1)
        if m := _SPECS.match(line):
            action, text = m.group(1), m.group(2) or ""
            fields["action"] = action
            specs = tuple(_spec_list(text, origin))
            if specs and action in ("update", "install", "create"):
                fields["update_specs"] = specs
            elif specs and action in ("remove", "uninstall"):
                fields["remove_specs"] = specs
            elif specs and action == "neutered":
                fields["neutered_specs"] = specs
    return Revision(date=date, lines=frozenset(lines), **fields)  # the comment lines are read, not kept


@functools.lru_cache(maxsize=1)
def parse_history(text: str) -> History:
    """``conda-meta/history`` text as conda reads it: lines stripped, blanks skipped, anything before
    the first ``==> date <==`` ignored, ``#`` lines are a revision's comments, the rest its packages.

    Cached by the text (the result is frozen): an apply reads the history some eight times, and a
    history of 250k revisions took seconds each; a changed file is a different text, parsed anew."""
    revisions: list[Revision] = []
    block: tuple[str, set[str], list[str]] | None = None  # the revision being read: made one when it ends
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if m := _SEPARATOR.match(line):
            if block is not None:
                revisions.append(_revision(*block, len(revisions) + 1))
            block = (m.group(1), set(), [])
        elif line.startswith("#") and block is not None:
            block[2].append(line)
        elif block is not None:
            block[1].add(line)
    if block is not None:
        revisions.append(_revision(*block, len(revisions) + 1))
    return History(revisions=tuple(revisions))


def history_path(prefix: Path) -> Path:
    return meta_dir(prefix) / "history"


def history_text(prefix: Path) -> str:
    """The raw history text ("" when there is none), UTF-8 checked and inside the prefix."""
    return _read_text(prefix, history_path(prefix), f"{META}/history") or ""


def read_history(prefix: Path) -> History:
    """The prefix's history, parsed (no revisions when there is no file)."""
    return parse_history(history_text(prefix))


# ---------------------------------------------------------------- pinned


def pinned_path(prefix: Path) -> Path:
    return meta_dir(prefix) / "pinned"


def parse_pinned(text: str) -> tuple[str, ...]:
    """conda's ``get_pinned_specs``: the non-empty lines that are not ``#`` comments, as written."""
    return tuple(line for line in text.strip().splitlines() if line and not line.strip().startswith("#"))


def pinned_lines(prefix: Path) -> list[str]:
    """Every line of ``conda-meta/pinned`` (comments too: the writer keeps them); [] when absent."""
    text = _read_text(prefix, pinned_path(prefix), f"{META}/pinned")
    return text.splitlines() if text is not None else []


def read_pinned(prefix: Path) -> tuple[str, ...]:
    """The pins conda applies from ``conda-meta/pinned``."""
    return parse_pinned(_read_text(prefix, pinned_path(prefix), f"{META}/pinned") or "")


def record_or_empty(path: Path) -> dict[str, Any]:
    """A record file from :func:`record_paths` read leniently: ``{}`` when broken or unreadable.

    For the change path's bookkeeping only (it must go on past a record it is about to replace)."""
    if path.is_symlink():
        return {}
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
