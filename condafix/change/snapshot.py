"""Snapshots and the journal under ``<prefix>/conda-meta/condafix/`` (a real directory: a symlink is refused).

    lock                         held with flock (see ``lock``)
    journal.json                 present only while a change or a rollback is in flight
    snapshots/<id>/explicit.txt  ``@EXPLICIT`` URLs with sha256, like ``conda list --explicit``
    snapshots/<id>/conda-meta/   every record as it was
    snapshots/<id>/files/        hardlinks (or copies) of the files of each package the plan touches
    snapshots/<id>/meta.json     when, why (the plan), the pin and spec edits, the state after the change

A SIGKILL leaves the journal behind, which ``doctor`` reports and ``condafix rollback`` finishes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from condafix import __version__
from condafix.change.condafiles import _records, requested_map
from condafix.change.lock import _pid_alive
from condafix.change.safety import (
    Refused,
    _check_records,
    _link_or_copy,
    _read_json,
    _record_files,
    _write_json,
    read_state_json,
    safe_path,
    scrub,
    state_dir,
)
from condafix.env import condameta

State = Literal["started", "applied", "rolled-back", "restored"]


@dataclass(frozen=True, kw_only=True)
class SnapshotInfo:
    id: str
    path: str
    created: str
    state: str
    reason: str
    packages: int
    backed_up: tuple[str, ...]


def _prefix_files(prefix: Path) -> list[str]:
    """Every file and link in the prefix except condafix's own state (the snapshot's manifest)."""
    own = state_dir(prefix)
    found = []
    for root, dirs, files in os.walk(prefix):
        if Path(root) == own.parent:
            dirs[:] = [d for d in dirs if d != own.name]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append(os.path.relpath(os.path.join(root, name), prefix))
    return sorted(found)


def explicit_lines(records: Iterable[dict[str, Any]]) -> list[str]:
    lines = [
        "# This file may be used to create an environment using:",
        "# $ conda create --name <env> --file <this>",
        f"# platform: written by condafix {__version__}",
        "@EXPLICIT",
    ]
    for record in records:
        url, sha = scrub(record.get("url")), record.get("sha256")
        if isinstance(url, str):
            lines.append(f"{url}#sha256:{sha}" if isinstance(sha, str) and sha else url)
    return lines


def create_snapshot(
    prefix: Path,
    *,
    reason: str,
    plan: object,
    touched: Sequence[str],
    extra: dict[str, Any],
    on_file: Callable[[int], None] = lambda _nbytes: None,
) -> Path:
    """Save records (credentials stripped), explicit URLs, the plan, and a backup of the touched packages.

    ``on_file(nbytes)`` is called per file backed up (progress)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    root = state_dir(prefix) / "snapshots" / stamp
    (root / "conda-meta").mkdir(parents=True)
    records = _records(prefix)
    for path, record in records.values():
        clean = scrub(record)
        if clean == record:
            shutil.copy2(path, root / "conda-meta" / path.name)  # byte for byte, so a rollback is too
        else:
            (root / "conda-meta" / path.name).write_text(json.dumps(clean, indent=2, sort_keys=True))
    (root / "explicit.txt").write_text("\n".join(explicit_lines(r for _p, r in records.values())) + "\n")
    (root / "manifest.txt").write_text("".join(f"{rel}\n" for rel in _prefix_files(prefix)))
    pinned = condameta.pinned_path(prefix)
    if pinned.is_file():
        shutil.copy2(pinned, root / "pinned")
    backed: list[str] = []
    for name in touched:
        if name not in records:
            continue
        for rel in _record_files(records[name][1]):
            source = safe_path(prefix, rel, f"conda-meta/{records[name][0].name}")
            if source.exists() or source.is_symlink():
                _link_or_copy(source, root / "files" / rel)
                on_file(source.lstat().st_size)
        backed.append(name)
    meta = {
        "id": stamp,
        "created": stamp,
        "reason": reason,
        "state": "started",
        "condafix": __version__,
        "backed_up": backed,
        "plan": plan,
        "pinned_existed": pinned.is_file(),
        "requested_before": requested_map(prefix),
        "history_size": (condameta.history_path(prefix)).stat().st_size
        if (condameta.history_path(prefix)).is_file()
        else 0,
        "history_revisions": len(condameta.read_history(prefix).revisions),
        **extra,
    }
    _write_json(root / "meta.json", meta)
    return root


CLOBBERED = "clobbered.txt"


def new_build_paths(linking: Iterable[object], caches: Iterable[Path]) -> set[str]:
    """The paths the new builds write, from each one's ``info/paths.json`` in a package cache where it
    is extracted already (the others are read as the installer links them: ``before_writing``)."""
    found: set[str] = set()
    caches = list(caches)
    for dist in linking:
        if not isinstance(dist, str) or "/" in dist or dist in ("", ".", ".."):
            continue
        for cache in caches:
            paths = _read_json(cache / dist / "info" / "paths.json").get("paths")
            if isinstance(paths, list):
                found |= {p["_path"] for p in paths if isinstance(p, dict) and isinstance(p.get("_path"), str)}
                break
    return found


def save_clobbered(prefix: Path, snapshot: Path, rels: Iterable[str]) -> None:
    """Copy (never hard-link: an installer may write into the inode) what is at each path the new builds
    will write, unless the snapshot holds it already; listed in ``clobbered.txt`` for the restore."""
    files = snapshot / "files"
    listed = snapshot / CLOBBERED
    saved: list[str] = []
    for rel in sorted(set(rels)):
        try:
            source = safe_path(prefix, rel, "a new package's paths.json")
        except Refused:
            continue  # the installer refuses such a path itself; nothing of ours to save
        target = files / rel
        if os.path.lexists(target) or not os.path.lexists(source) or (source.is_dir() and not source.is_symlink()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
        saved.append(rel)
    if saved:
        with open(listed, "a", encoding="utf-8") as out:
            out.write("".join(f"{rel}\n" for rel in saved))
            out.flush()
            os.fsync(out.fileno())


def clobbered(snapshot: Path) -> list[str]:
    """The paths ``save_clobbered`` saved (each one a line of ``clobbered.txt``)."""
    listed = snapshot / CLOBBERED
    if not listed.is_file() or listed.is_symlink():
        return []
    return [line for line in listed.read_text(encoding="utf-8", errors="replace").splitlines() if line]


def list_snapshots(prefix: Path) -> list[SnapshotInfo]:
    base = state_dir(prefix) / "snapshots"
    found = []
    for root in sorted(base.iterdir()) if base.is_dir() and not base.is_symlink() else []:
        meta = _read_json(root / "meta.json")
        if root.is_symlink() or not root.is_dir():
            continue
        if not meta:  # listed, so that rollback names it as damaged instead of ignoring it
            meta = {"state": "damaged" if (root / "meta.json").exists() else "incomplete"}
        found.append(
            SnapshotInfo(
                id=root.name,
                path=str(root),
                created=str(meta.get("created", root.name)),
                state=str(meta.get("state", "?")),
                reason=str(meta.get("reason", "")),
                packages=len(list(condameta.record_paths(root))),
                backed_up=tuple(str(b) for b in meta.get("backed_up", []) if isinstance(b, str))
                if isinstance(meta.get("backed_up"), list)
                else (),
            )
        )
    return found


def _update_meta(snapshot: Path, **changes: Any) -> None:
    meta = _read_json(snapshot / "meta.json")
    meta.update(changes)
    _write_json(snapshot / "meta.json", meta)


def _set_state(snapshot: Path, state: State) -> None:
    _update_meta(snapshot, state=state)


def _load_snapshot(prefix: Path, snapshot: Path) -> dict[str, Any]:
    """The snapshot's meta, checked: a tampered snapshot is one clear error, never a write outside."""
    meta_path = snapshot / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except RecursionError:
        raise Refused(
            f"snapshot {snapshot.name} is damaged ({meta_path}: nested too deeply); nothing changed"
        ) from None
    except (OSError, ValueError) as exc:
        raise Refused(f"snapshot {snapshot.name} is damaged ({meta_path}: {exc}); nothing was changed") from None
    problems = []
    if not isinstance(meta, dict):
        problems.append("meta.json is not an object")
        meta = {}
    backed = meta.get("backed_up", [])
    if not isinstance(backed, list) or not all(isinstance(b, str) for b in backed):
        problems.append("backed_up is not a list of names")
    if not isinstance(meta.get("pin_edits", []), list):
        problems.append("pin_edits is not a list")
    if not (snapshot / "conda-meta").is_dir() or (snapshot / "conda-meta").is_symlink():
        problems.append("conda-meta/ is missing")
    if problems:
        raise Refused(f"snapshot {snapshot.name} is damaged: {'; '.join(problems)}; nothing was changed")
    saved = []
    for path in condameta.record_paths(snapshot):
        record = _read_json(path)
        if not all(isinstance(record.get(k), str) for k in ("name", "version", "build")) or path.is_symlink():
            raise Refused(f"snapshot {snapshot.name}: conda-meta/{path.name} is not a package record; nothing changed")
        saved.append((f"snapshot {snapshot.name}: conda-meta/{path.name}", record))
    _check_records(prefix, saved)
    files = snapshot / "files"
    if files.is_symlink():
        raise Refused(f"snapshot {snapshot.name}: files/ is a symlink; nothing was changed")
    return meta


def _journal(prefix: Path) -> dict[str, Any]:
    """The journal; a damaged one (not an object, nested too deeply) is one clear refusal, never ignored."""
    return read_state_json(state_dir(prefix) / "journal.json", "condafix's journal")


def pending(prefix: Path) -> str | None:
    """The snapshot id of an unfinished change or rollback whose process is gone, else None."""
    journal = _journal(prefix)
    if not journal:
        return None
    pid = journal.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
        return None
    return str(journal.get("snapshot"))


def _start_journal(prefix: Path, snapshot: Path, op: str) -> Path:
    journal = state_dir(prefix) / "journal.json"
    _write_json(journal, {"snapshot": snapshot.name, "op": op, "pid": os.getpid(), "started": time.time()})
    return journal


def _drop_cache_tag(prefix: Path, snapshot: Path) -> None:
    """rattler tags the prefix as a cache (backup tools then skip the env); keep a conda env untagged."""
    tag = prefix / "CACHEDIR.TAG"
    manifest = snapshot / "manifest.txt"
    if tag.is_file() and manifest.is_file() and "CACHEDIR.TAG" not in manifest.read_text().splitlines():
        tag.unlink()


def _new_records(prefix: Path, snapshot: Path) -> set[str]:
    """Record files the change wrote (the others are the user's, left as they are)."""
    saved = {p.name for p in condameta.record_paths(snapshot)}
    return {p.name for p in condameta.record_paths(prefix) if p.name not in saved}


def _discard_partial_snapshot(prefix: Path) -> None:
    base = state_dir(prefix) / "snapshots"
    for root in sorted(base.iterdir()) if base.is_dir() else []:
        if not (root / "meta.json").is_file():
            shutil.rmtree(root, ignore_errors=True)
