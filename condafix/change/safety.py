"""Paths that stay inside the prefix, atomic writes that never follow a symlink, and no credential on disk.

Every path read from a record, snapshot or manifest goes through :func:`safe_path`; every file
condafix writes goes through :func:`atomic_write` (temp file + rename) and :func:`scrub`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from condafix.env import condameta
from condafix.errors import CondafixError, Hint

Step = Callable[[str], None]


class ApplyError(CondafixError):
    """The change (or rollback) failed; the message says what state the env is in. Exit code 4."""

    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 4)


class Refused(CondafixError):
    """condafix will not start: a conflicting pin, later changes, an unsafe path. Nothing changed; exit 2."""

    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 2)


def state_dir(prefix: Path) -> Path:
    return prefix / "conda-meta" / "condafix"


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def safe_path(root: Path, rel: object, origin: str) -> Path:
    """``root / rel`` when it stays inside root (no ``..``, not absolute, no symlinked dir on the way)."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise Refused(f"{origin}: invalid path {rel!r}; nothing was changed")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise Refused(f"{origin}: path {rel!r} is outside {root}; nothing was changed")
    path = root / pure
    with contextlib.suppress(OSError):
        if not path.parent.resolve().is_relative_to(root.resolve()):
            raise Refused(f"{origin}: path {rel!r} leads outside {root} through a symlink; nothing was changed")
    return path


def check_state_dir(prefix: Path) -> None:
    """conda-meta and condafix's own folders must be real directories of this prefix."""
    for path in (prefix / "conda-meta", state_dir(prefix), state_dir(prefix) / "snapshots"):
        if path.is_symlink():
            raise Refused(f"{path} is a symlink; condafix will not write through it (nothing was changed)")


def _check_records(prefix: Path, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
    for origin, record in records:
        for rel in _record_files(record):
            safe_path(prefix, rel, origin)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _atomic_write(path: Path, text: str) -> None:
    """Temp file + rename (mode kept) so a crash or a full disk never leaves half a file."""
    if path.is_symlink():
        raise Refused(f"{path} is a symlink; condafix will not write through it")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: object) -> None:
    """Atomic JSON with no credential in it: URLs lose theirs, anything else credential-like is redacted."""
    from condafix.redact import redact_json

    _atomic_write(path, json.dumps(redact_json(scrub(data)), indent=2, sort_keys=True))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub(data: Any) -> Any:
    """Every URL inside strings, lists and dicts without its credentials (what goes to disk)."""
    from condafix.env.condarc import strip_credentials

    if isinstance(data, str):
        return _URL_IN_TEXT.sub(lambda m: strip_credentials(m.group(0)), data) if "://" in data else data
    if isinstance(data, list | tuple):
        return [scrub(v) for v in data]
    if isinstance(data, dict):
        return {k: scrub(v) for k, v in data.items()}
    return data


def scrub_records(prefix: Path, names: Iterable[str] | None = None) -> None:
    """Strip credentials from the ``url``/``channel`` of records the installer just wrote."""
    for path in condameta.record_paths(prefix):
        if names is not None and path.name not in names:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "@" not in text and "/t/" not in text and "token" not in text.lower():
            continue
        record = _read_json(path)
        clean = {k: scrub(v) if k in ("url", "channel", "link", "requested_spec", "requested_specs") else v
                 for k, v in record.items()}  # fmt: skip
        if clean != record:
            _atomic_write(path, json.dumps(clean, indent=2, sort_keys=True))


def _record_files(record: dict[str, Any]) -> list[str]:
    paths = record.get("paths_data", {}).get("paths") if isinstance(record.get("paths_data"), dict) else None
    if isinstance(paths, list):
        return [p["_path"] for p in paths if isinstance(p, dict) and "_path" in p]
    files = record.get("files")
    return list(files) if isinstance(files, list) else []


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _copy_atomic(source: Path, target: Path) -> None:
    """A record put back whole or not at all: a kill mid-copy must not leave a truncated record."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _prune_dirs(prefix: Path, rels: Sequence[str]) -> None:
    """Remove folders our deletions emptied, never the prefix itself or anything above it."""
    top = prefix.resolve()
    parents = sorted({(prefix / r).parent for r in rels}, key=lambda p: len(p.parts), reverse=True)
    for parent in parents:
        while parent != prefix and parent.is_dir() and parent.resolve().is_relative_to(top) and parent.resolve() != top:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
