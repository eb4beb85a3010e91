"""Change a prefix safely, in conda's own terms: lock, snapshot, pin, install, history, rollback.

Layout under ``<prefix>/conda-meta/condafix/`` (a real directory: a symlink there is refused):

    lock                         held with flock; pid, host and start time of the holder inside
    journal.json                 present only while a change or a rollback is in flight
    snapshots/<id>/explicit.txt  ``@EXPLICIT`` URLs with sha256, like ``conda list --explicit``
    snapshots/<id>/conda-meta/   every record as it was
    snapshots/<id>/files/        hardlinks (or copies) of the files of each package the plan touches
    snapshots/<id>/meta.json     when, why (the plan), the pin and spec edits, the state after the change

What conda owns is written the way conda writes it: ``conda-meta/history`` revisions with
``+channel/subdir::name-version-build`` lines and ``# update specs:`` / ``# remove specs:``, and
``conda-meta/pinned`` (one match spec a line), so ``conda list --revisions``, ``conda install
--revision N`` and ``conda update --all`` keep working and keep the fix. A rollback removes exactly
the pin and specs condafix added and refuses when the env changed after condafix's change.

A crash or Ctrl-C during the install restores the backup before condafix exits; a SIGKILL leaves
the journal behind, which ``doctor`` reports and ``condafix rollback`` finishes (a rollback is
journaled the same way). Every path read from a record, snapshot or manifest is resolved and
refused if it leaves the prefix; only files of packages the change linked are ever deleted. No
file condafix writes holds a credential.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from condafix import __version__, progress
from condafix.errors import CondafixError, Hint, UsageError

LOCK_WAIT_S = 10.0
State = Literal["started", "applied", "rolled-back", "restored"]
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


# ---------------------------------------------------------------- paths that stay inside the prefix


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


# ---------------------------------------------------------------- lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_wait() -> float:
    """``CONDAFIX_LOCK_WAIT`` seconds (default 10); a value that is not a number is one clear line."""
    raw = os.environ.get("CONDAFIX_LOCK_WAIT")
    if raw is None or not raw.strip():
        return LOCK_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise UsageError(f"CONDAFIX_LOCK_WAIT={raw!r}: expected seconds to wait for the lock (e.g. 10)")
    return value


@contextlib.contextmanager
def prefix_lock(prefix: Path, *, wait: float | None = None) -> Iterator[Path]:
    """Hold ``conda-meta/condafix/lock`` with ``flock``: the kernel drops it when the holder dies,
    so there is no stale lock to guess about, and the pid inside is only for the message."""
    wait = _lock_wait() if wait is None else wait
    check_state_dir(prefix)
    lock = state_dir(prefix) / "lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplyError(f"cannot write to {prefix}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise ApplyError(f"cannot lock {prefix}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            if time.monotonic() >= deadline:
                holder = _read_json(lock)
                pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
                raise ApplyError(
                    f"{prefix} is locked by another condafix (pid {pid or '?'} on {holder.get('host', '?')})",
                    (Hint("wait", "wait for it to finish (the lock goes away with its process)"),),
                ) from None
            time.sleep(0.1)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our flock
            os.close(fd)
            continue
        break
    body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, body.encode(), 0)
    except OSError:
        pass  # the pid is informative only; the flock is the lock
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


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


# ---------------------------------------------------------------- credentials

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub(data: Any) -> Any:
    """Every URL inside strings, lists and dicts without its credentials (what goes to disk)."""
    from condafix.condarc import strip_credentials

    if isinstance(data, str):
        return _URL_IN_TEXT.sub(lambda m: strip_credentials(m.group(0)), data) if "://" in data else data
    if isinstance(data, list | tuple):
        return [scrub(v) for v in data]
    if isinstance(data, dict):
        return {k: scrub(v) for k, v in data.items()}
    return data


def scrub_records(prefix: Path, names: Iterable[str] | None = None) -> None:
    """Strip credentials from the ``url``/``channel`` of records the installer just wrote."""
    for path in sorted((prefix / "conda-meta").glob("*.json")):
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


# ---------------------------------------------------------------- records and conda's history lines


def _records(prefix: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """conda-meta record file and its contents, per package name."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        record = _read_json(path)
        if isinstance(record.get("name"), str):
            out[record["name"]] = (path, record)
    return out


def _record_files(record: dict[str, Any]) -> list[str]:
    paths = record.get("paths_data", {}).get("paths") if isinstance(record.get("paths_data"), dict) else None
    if isinstance(paths, list):
        return [p["_path"] for p in paths if isinstance(p, dict) and "_path" in p]
    files = record.get("files")
    return list(files) if isinstance(files, list) else []


def dist_str(record: Mapping[str, Any], config: Any = None) -> str:
    """conda's ``channel/subdir::name-version-build`` for a record (conda's or rattler's)."""
    from condafix import condarc

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
    from condafix import envinfo

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


# ---------------------------------------------------------------- conda-meta/pinned


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


Matches = Callable[[str, str, str], bool]


def plan_pin_edits(
    prefix: Path, pins: Sequence[str], *, replace: bool, spec_matches: Matches | None = None
) -> list[PinEdit]:
    """What to write into ``conda-meta/pinned``; a pin there that excludes the target blocks (file:line).

    ``spec_matches`` is the solver backend's own match-spec check (conda's inside conda, else rattler's).
    """
    from condafix import envinfo

    if spec_matches is None:
        from condafix.rattler_backend import spec_matches as rattler_matches

        spec_matches = rattler_matches

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


# ---------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    path: str
    created: str
    state: str
    reason: str
    packages: int
    backed_up: tuple[str, ...]


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
    pinned = prefix / "conda-meta" / "pinned"
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
        "history_size": (prefix / "conda-meta" / "history").stat().st_size
        if (prefix / "conda-meta" / "history").is_file()
        else 0,
        **extra,
    }
    _write_json(root / "meta.json", meta)
    return root


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
                root.name,
                str(root),
                str(meta.get("created", root.name)),
                str(meta.get("state", "?")),
                str(meta.get("reason", "")),
                len(list((root / "conda-meta").glob("*.json"))),
                tuple(str(b) for b in meta.get("backed_up", []) if isinstance(b, str))
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
    for path in sorted((snapshot / "conda-meta").glob("*.json")):
        record = _read_json(path)
        if not all(isinstance(record.get(k), str) for k in ("name", "version", "build")) or path.is_symlink():
            raise Refused(f"snapshot {snapshot.name}: conda-meta/{path.name} is not a package record; nothing changed")
        saved.append((f"snapshot {snapshot.name}: conda-meta/{path.name}", record))
    _check_records(prefix, saved)
    files = snapshot / "files"
    if files.is_symlink():
        raise Refused(f"snapshot {snapshot.name}: files/ is a symlink; nothing was changed")
    return meta


# ---------------------------------------------------------------- journal


def _journal(prefix: Path) -> dict[str, Any]:
    return _read_json(state_dir(prefix) / "journal.json")


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


# ---------------------------------------------------------------- restore


@dataclass(frozen=True)
class RestorePlan:
    """What a rollback would do: packages to remove and put back, those it must fetch, and what
    changed after condafix's change (which the rollback would revert too)."""

    snapshot: str
    remove: tuple[str, ...]
    restore: tuple[str, ...]
    missing: tuple[str, ...]
    later_changes: tuple[str, ...] = ()
    pins_removed: tuple[str, ...] = ()
    specs_restored: tuple[str, ...] = ()


def later_changes(prefix: Path, meta: Mapping[str, Any]) -> list[str]:
    """What happened to the env after condafix's change: other records, later history revisions."""
    after = meta.get("after")
    if not isinstance(after, dict):
        return []
    expected = set(after.get("records", []))
    current = {p.name: p for p in sorted((prefix / "conda-meta").glob("*.json"))}
    by_name_then = {str(_name_of(f)): f for f in expected}
    found = []
    for file, path in current.items():
        if file in expected:
            continue
        record = _read_json(path)
        was = by_name_then.get(str(record.get("name")))
        old = " ".join(was.removesuffix(".json").rsplit("-", 2)[1:]) if was else "(not installed)"
        found.append(f"{record.get('name')} {old} -> {record.get('version')} {record.get('build')}")
    names_now = {str(_read_json(p).get("name")) for p in current.values()}
    found += [f"{_name_of(f)} removed" for f in sorted(expected - set(current)) if _name_of(f) not in names_now]
    _state, revisions = history_state(_history_text(prefix))
    since = int(after.get("history_revisions", revisions))
    if revisions > since:
        requests = _commands(_history_text(prefix))[since:]
        found += [f"history revision {since + i + 1}: {cmd}" for i, cmd in enumerate(requests)]
    return found


def _name_of(file: str) -> str:
    return file.removesuffix(".json").rsplit("-", 2)[0]


def _commands(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        if re.match(r"==>\s*(.+?)\s*<==", line.strip()):
            out.append("")
        elif out and line.startswith("# cmd:"):
            out[-1] = scrub(line[len("# cmd:") :].strip())
    return out


def restore_plan(prefix: Path, snapshot: Path, meta: Mapping[str, Any] | None = None) -> RestorePlan:
    """Compare record files (by file name: a half-done install can hold two builds of one name)."""
    meta = _load_snapshot(prefix, snapshot) if meta is None else meta
    saved = {p.name: p for p in sorted((snapshot / "conda-meta").glob("*.json"))}
    current = {p.name: p for p in sorted((prefix / "conda-meta").glob("*.json"))}
    backed = set(meta.get("backed_up", []))
    remove = sorted({str(_read_json(p).get("name")) for f, p in current.items() if f not in saved})
    restore = sorted({str(_read_json(p).get("name")) for f, p in saved.items() if f not in current})
    missing = tuple(n for n in restore if n not in backed)
    pins = tuple(str(e.get("added")) for e in meta.get("pin_edits", []) if isinstance(e, dict))
    specs = tuple(_spec_changes(prefix, meta))
    return RestorePlan(snapshot.name, tuple(remove), tuple(restore), missing, (), pins, specs)


def _spec_changes(prefix: Path, meta: Mapping[str, Any]) -> list[str]:
    before = meta.get("requested_before")
    if not isinstance(before, dict):
        return []
    now = requested_map(prefix)
    out = [f"remove {now[n]}" for n in sorted(now) if n not in before]
    out += [f"restore {before[n]}" for n in sorted(before) if n in now and now[n] != before[n]]
    return out


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


def _linked_files(prefix: Path, meta: Mapping[str, Any]) -> set[str]:
    """Files of the packages the change was to link (from their extracted copy in a package cache).

    After a kill mid-install a package can be half linked with no record yet: these are the only
    unrecorded files a rollback may delete.
    """
    from condafix import condarc

    caches = [Path(p) for p in meta.get("caches", []) if isinstance(p, str)]
    caches += list(condarc.load().pkgs_dirs)
    found: set[str] = set()
    for dist in meta.get("linking", []):
        if not isinstance(dist, str) or "/" in dist or dist in ("", ".", ".."):
            continue
        for cache in caches:
            paths = _read_json(cache / dist / "info" / "paths.json").get("paths")
            if isinstance(paths, list):
                found |= {p["_path"] for p in paths if isinstance(p, dict) and isinstance(p.get("_path"), str)}
                break
    return found


def _installer_leftovers(prefix: Path) -> set[str]:
    """What the installer itself writes besides packages: half-written records, its cache tag."""
    found = {f"conda-meta/{p.name}" for p in (prefix / "conda-meta").glob("prefix_record_*") if p.is_file()}
    found |= {f"conda-meta/{p.name}" for p in (prefix / "conda-meta").glob(".*.tmp") if p.is_file()}
    for probe in prefix.glob(".refprobe-*"):  # rattler's reflink probe folder
        if probe.is_dir() and not probe.is_symlink():
            found |= {f"{probe.name}/{p.name}" for p in probe.iterdir() if p.is_file() or p.is_symlink()}
    return found | ({"CACHEDIR.TAG"} if (prefix / "CACHEDIR.TAG").is_file() else set())


def restore(prefix: Path, snapshot: Path, *, interrupted: bool) -> RestorePlan:
    """Put the prefix back to the snapshot from the snapshot's own backup; idempotent.

    Packages the snapshot holds no backup of come from the package cache first and the channel
    second; if any of them is in neither, nothing changes and they are named. ``interrupted``:
    the change may have stopped half-way, so files of the packages it was linking that were not
    in the prefix before are removed too; nothing else unrecorded is ever deleted.
    """
    meta = _load_snapshot(prefix, snapshot)
    current_records = [(f"conda-meta/{p.name}", _read_json(p)) for p in sorted((prefix / "conda-meta").glob("*.json"))]
    _check_records(prefix, current_records)
    plan = restore_plan(prefix, snapshot, meta)
    if plan.missing:
        return _reinstall(prefix, snapshot, plan)
    saved = {p.name: p for p in sorted((snapshot / "conda-meta").glob("*.json"))}
    removed: list[str] = []
    for record_path in sorted((prefix / "conda-meta").glob("*.json")):
        if record_path.name in saved:
            continue
        files = _record_files(_read_json(record_path))
        for rel in files:
            _unlink(safe_path(prefix, rel, f"conda-meta/{record_path.name}"))
        removed += files
        record_path.unlink()
    backed = set(meta.get("backed_up", []))
    for record_path in saved.values():
        record = _read_json(record_path)
        if record.get("name") not in backed:
            continue
        for rel in _record_files(record):
            backup = safe_path(snapshot / "files", rel, f"snapshot {snapshot.name}")
            if backup.exists() or backup.is_symlink():
                target = safe_path(prefix, rel, f"snapshot {snapshot.name}")
                _unlink(target)
                _link_or_copy(backup, target)
    for name, record_path in saved.items():
        current = prefix / "conda-meta" / name
        if not current.is_file() or current.read_bytes() != record_path.read_bytes():
            _copy_atomic(record_path, current)  # also records the installer rewrote in place
    manifest = snapshot / "manifest.txt"
    known = set(manifest.read_text().splitlines()) if manifest.is_file() else set()
    if interrupted and known:  # an empty or missing manifest is no licence to delete anything
        owned = {rel for path in saved.values() for rel in _record_files(_read_json(path))}
        candidates = _linked_files(prefix, meta) | _installer_leftovers(prefix)
        orphans = sorted(rel for rel in candidates if rel not in known and rel not in owned)
        for rel in orphans:
            _unlink(safe_path(prefix, rel, f"snapshot {snapshot.name}"))
        removed += orphans
    _prune_dirs(prefix, removed)
    _undo_pin_edits(prefix, meta.get("pin_edits", []), bool(meta.get("pinned_existed")))
    return plan


def _reinstall(prefix: Path, snapshot: Path, plan: RestorePlan) -> RestorePlan:
    """Restore with the installer: the snapshot's records from conda's or condafix's package cache, else the channel."""
    try:
        from condafix import rattler_backend as rb
    except ImportError as exc:  # beside conda-rattler-solver, py-rattler is 0.26: the installer is not usable
        raise ApplyError(
            f"cannot reinstall {', '.join(plan.missing)} (not in the snapshot's backup): the embedded installer "
            f"needs py-rattler >= 0.28 ({exc}); nothing was changed",
            (
                Hint(
                    "conda_revision",
                    "let conda restore the revision before the change: `conda list --revisions`, "
                    "then `conda install --revision N`",
                ),
            ),
        ) from None

    meta = _read_json(snapshot / "meta.json")
    wanted = rb.prefer_cached(rb.records_from_dir(snapshot / "conda-meta"))
    gone = [
        f"{r.name.normalized} {r.version} {r.build}"
        for r in wanted
        if r.name.normalized in plan.missing and rb.package_source(r) is None
    ]
    if gone:
        raise ApplyError(
            f"cannot restore {', '.join(gone)}: not in the snapshot's backup, the package cache or the channel "
            "(the build left the channel); nothing was changed",
            (Hint("reinstall", "pick another build of those packages with conda, or keep the env as it is"),),
        )
    rb.install(wanted, prefix, rb.read_prefix_records(prefix), [])
    for saved in sorted((snapshot / "conda-meta").glob("*.json")):  # the installer writes fresh records
        _copy_atomic(saved, prefix / "conda-meta" / saved.name)
    _drop_cache_tag(prefix, snapshot)
    _undo_pin_edits(prefix, meta.get("pin_edits", []), bool(meta.get("pinned_existed")))
    return plan


# ---------------------------------------------------------------- the transaction


@contextlib.contextmanager
def _deferred_signals() -> Iterator[Callable[[], bool]]:
    """Ctrl-C, SIGTERM and SIGHUP are noted, not raised, while the prefix is being changed.

    Raising into the event loop would cancel the Python side while rattler's installer thread
    keeps linking, so the restore would race it. Instead condafix finishes the current step and
    then undoes the change. (SIGKILL cannot be caught: the journal covers that.)
    """
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not received:
            import sys

            sys.stderr.write("\ninterrupted: undoing the change as soon as the current step ends\n")
        received.append(signum)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield lambda: bool(received)
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else repr(exc)


@dataclass(frozen=True)
class Change:
    """What apply_change does besides installing: pins, history (None: the tool writes its own)."""

    pin_edits: tuple[PinEdit, ...] = ()
    history: tuple[str, Sequence[str], Sequence[str], Sequence[str]] | None = None
    linking: tuple[str, ...] = ()
    caches: tuple[str, ...] = ()


def apply_change(
    prefix: Path,
    *,
    reason: str,
    plan: object,
    touched: Sequence[str],
    install: Callable[[], None],
    change: Change | Callable[[], Change] = Change(),
    step: Step = lambda _m: None,
) -> Path:
    """Lock -> snapshot/backup -> journal -> pin -> install -> history; restore the backup on any failure."""
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    check_state_dir(prefix)
    _check_records(prefix, ((f"conda-meta/{p.name}", r) for p, r in _records(prefix).values()))
    with _deferred_signals() as interrupted, prefix_lock(prefix):
        leftover = pending(prefix)
        if leftover:
            raise ApplyError(
                f"an unfinished condafix change (snapshot {leftover}) is in {prefix}",
                (Hint("rollback", f"run `condafix rollback -p {prefix}` first"),),
            )
        if callable(change):  # read the prefix only while holding its lock
            change = change()
        progress.begin(step, "snapshot", "saving a snapshot")
        extra = {
            "pin_edits": [{"added": e.added, "replaced": e.replaced} for e in change.pin_edits],
            "linking": list(change.linking),
            "caches": list(change.caches),
        }
        try:
            snapshot = create_snapshot(
                prefix, reason=reason, plan=plan, touched=touched, extra=extra, on_file=progress.file_counter(step)
            )
        except OSError as exc:
            _discard_partial_snapshot(prefix)
            raise ApplyError(
                f"cannot write the snapshot in {prefix}: {exc.strerror or exc}; nothing was changed"
            ) from None
        progress.end(step)
        if interrupted():
            raise ApplyError("interrupted before any change; nothing was changed")
        try:
            journal = _start_journal(prefix, snapshot, "apply")
        except OSError as exc:
            shutil.rmtree(snapshot, ignore_errors=True)
            raise ApplyError(f"cannot write the journal in {prefix}: {exc.strerror or exc}; nothing changed") from None
        try:
            if change.pin_edits:
                step("pinning in conda-meta/pinned")
                _apply_pin_edits(prefix, change.pin_edits)
            step("installing")
            install()
            if interrupted():
                raise KeyboardInterrupt
            scrub_records(prefix, _new_records(prefix, snapshot))
            _drop_cache_tag(prefix, snapshot)
            if change.history is not None:
                command, removed, added, specs = change.history
                append_history(prefix, command, removed, added, update_specs=specs)
            _state, revisions = history_state(_history_text(prefix))
            records = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
            _update_meta(snapshot, state="applied", after={"records": records, "history_revisions": revisions})
        except BaseException as exc:
            _undo_after_failure(prefix, snapshot, journal, exc, step)
        journal.unlink(missing_ok=True)
        return snapshot


def _drop_cache_tag(prefix: Path, snapshot: Path) -> None:
    """rattler tags the prefix as a cache (backup tools then skip the env); keep a conda env untagged."""
    tag = prefix / "CACHEDIR.TAG"
    manifest = snapshot / "manifest.txt"
    if tag.is_file() and manifest.is_file() and "CACHEDIR.TAG" not in manifest.read_text().splitlines():
        tag.unlink()


def _new_records(prefix: Path, snapshot: Path) -> set[str]:
    """Record files the change wrote (the others are the user's, left as they are)."""
    saved = {p.name for p in (snapshot / "conda-meta").glob("*.json")}
    return {p.name for p in (prefix / "conda-meta").glob("*.json") if p.name not in saved}


def _discard_partial_snapshot(prefix: Path) -> None:
    base = state_dir(prefix) / "snapshots"
    for root in sorted(base.iterdir()) if base.is_dir() else []:
        if not (root / "meta.json").is_file():
            shutil.rmtree(root, ignore_errors=True)


def _undo_after_failure(prefix: Path, snapshot: Path, journal: Path, exc: BaseException, step: Step) -> None:
    step("restoring the snapshot")
    try:
        for _attempt in range(10):
            restore(prefix, snapshot, interrupted=True)
            # a failed install can leave the installer's other link tasks running a moment longer
            time.sleep(0.2)
            left = restore_plan(prefix, snapshot)
            if not (left.remove or left.restore):
                break
        _set_state(snapshot, "restored")
        _truncate_history(prefix, snapshot)
        journal.unlink(missing_ok=True)
    except (OSError, CondafixError) as again:
        raise ApplyError(
            f"the change failed ({_first_line(exc)}) and undoing it failed too ({_first_line(again)}); "
            "the journal is kept",
            (Hint("rollback", f"free space or fix the cause, then run `condafix rollback -p {prefix}`"),),
        ) from None
    if isinstance(exc, KeyboardInterrupt):
        raise ApplyError("interrupted: the environment was restored to its state before the change") from None
    if isinstance(exc, OSError) and _no_space(exc):
        raise ApplyError(f"the disk is full ({exc.filename or prefix}); the change was undone") from None
    if isinstance(exc, Refused):
        raise exc
    raise ApplyError(f"the change failed and was undone: {_first_line(exc)}") from None


def _truncate_history(prefix: Path, snapshot: Path) -> None:
    """A failed change leaves no revision behind: history goes back to its size at snapshot time."""
    size = _read_json(snapshot / "meta.json").get("history_size")
    path = prefix / "conda-meta" / "history"
    if isinstance(size, int) and path.is_file() and not path.is_symlink() and path.stat().st_size > size:
        with open(path, "r+b") as out:
            out.truncate(size)


def rollback(prefix: Path, snapshot_id: str | None, *, dry_run: bool, force: bool = False) -> RestorePlan:
    """Undo condafix's change: restore the snapshot, remove the pin and specs it added.

    Refuses when the env changed after condafix's change (unless ``force``); a rollback that was
    interrupted is finished without asking. Journaled like a change.
    """
    check_state_dir(prefix)
    snapshots = list_snapshots(prefix)
    if not snapshots:
        raise ApplyError(f"no condafix snapshots in {prefix}; nothing to roll back")
    wanted = (
        snapshot_id
        or pending(prefix)
        or next((s.id for s in reversed(snapshots) if s.state in ("applied", "started")), snapshots[-1].id)
    )
    chosen = next((s for s in snapshots if s.id == wanted), None)
    if chosen is None:
        raise ApplyError(f"no snapshot {wanted!r} in {prefix} (have: {', '.join(s.id for s in snapshots)})")
    root = Path(chosen.path)
    meta = _load_snapshot(prefix, root)
    if chosen.state in ("rolled-back", "restored") and pending(prefix) != chosen.id:
        # already undone: restoring it again would revert whatever the user did since
        return RestorePlan(chosen.id, (), (), ())
    journal_op = _journal(prefix).get("op") if pending(prefix) == chosen.id else None
    resuming = journal_op == "rollback"
    later = [] if resuming or chosen.state != "applied" else later_changes(prefix, meta)
    preview = restore_plan(prefix, root, meta)
    preview = RestorePlan(**{**preview.__dict__, "later_changes": tuple(later)})
    if dry_run:
        return preview
    if later and not force:
        raise Refused(
            f"{prefix} changed after condafix's change, and rolling back would revert that too: " + "; ".join(later),
            (Hint("force", "pass --force to roll back anyway (those changes are undone as well)"),),
        )
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    with _deferred_signals(), prefix_lock(prefix):
        unfinished = pending(prefix) == chosen.id or chosen.state == "started"
        config = _config()
        try:
            if not resuming:
                pre = {"dists": _current_dists(prefix, config), "requested": requested_map(prefix)}
                _update_meta(root, pre_rollback=pre)
            journal = _start_journal(prefix, root, "rollback")
            done = restore(prefix, root, interrupted=unfinished)
        except OSError as exc:
            raise ApplyError(
                f"rollback stopped: {exc.strerror or exc} ({exc.filename or prefix}); the journal is kept",
                (Hint("rollback", f"free space or fix the cause, then run `condafix rollback -p {prefix}` again"),),
            ) from None
        try:
            _write_rollback_history(prefix, root, chosen.id, config)
            _set_state(root, "rolled-back")
            journal.unlink(missing_ok=True)
        except OSError as exc:
            raise ApplyError(
                f"the packages were restored but writing conda's history failed: {exc.strerror or exc}; "
                "the journal is kept",
                (Hint("rollback", f"free space, then run `condafix rollback -p {prefix}` again"),),
            ) from None
    return RestorePlan(**{**done.__dict__, "later_changes": tuple(later)})


def _config() -> Any:
    from condafix import condarc

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


def _write_rollback_history(prefix: Path, snapshot: Path, snapshot_id: str, config: Any) -> None:
    """The rollback as a conda revision: what went and came back, and the requested specs as they were."""
    meta = _read_json(snapshot / "meta.json")
    pre: dict[str, Any] = meta["pre_rollback"] if isinstance(meta.get("pre_rollback"), dict) else {}
    dists_before: dict[str, Any] = pre["dists"] if isinstance(pre.get("dists"), dict) else {}
    dists_now = _current_dists(prefix, config)
    removed = [str(d) for f, d in sorted(dists_before.items()) if f not in dists_now]
    added = [d for f, d in sorted(dists_now.items()) if f not in dists_before]
    before: dict[str, Any] = meta["requested_before"] if isinstance(meta.get("requested_before"), dict) else {}
    now: dict[str, Any] = pre["requested"] if isinstance(pre.get("requested"), dict) else requested_map(prefix)
    remove_specs = [n for n in sorted(now) if n not in before]
    update_specs = [str(before[n]) for n in sorted(before) if n in now and now[n] != before[n]]
    if not (removed or added or remove_specs or update_specs):
        return
    append_history(
        prefix,
        f"condafix rollback -p {prefix} --to {snapshot_id}",
        removed,
        added,
        update_specs=update_specs,
        remove_specs=remove_specs,
    )


# ---------------------------------------------------------------- applying a plan

VIA_TOOLS = ("conda", "mamba", "micromamba")


@dataclass(frozen=True)
class Applied:
    """What --apply did; ``after`` is the doctor report on the changed env."""

    snapshot: str
    via: str
    changes: int
    after: Any = None
    pinned: tuple[str, ...] = ()
    command: tuple[str, ...] = ()


def find_tool(via: str) -> str:
    """The env's own manager: $CONDA_EXE / $MAMBA_EXE first, then PATH. Exit 2 before anything starts."""
    if via not in VIA_TOOLS:
        raise CondafixError(f"--via must be one of {', '.join(VIA_TOOLS)} (got {via!r})", (), 2)
    hinted = os.environ.get("CONDA_EXE") if via == "conda" else os.environ.get("MAMBA_EXE")
    if hinted and Path(hinted).name.startswith(via) and os.access(hinted, os.X_OK):
        return hinted
    found = shutil.which(via)
    if found is None:
        raise CondafixError(f"--via {via}: {via} is not on PATH (nor in $CONDA_EXE/$MAMBA_EXE)", (), 2)
    return found


def plan_pins(plan: Any) -> tuple[str, ...]:
    """Every pin of the plan (cudatoolkit plans can pin cuda-version too)."""
    pins = tuple(getattr(plan, "pins", ()) or ())
    if pins:
        return pins
    return (plan.pin,) if plan.pin else ()


def tool_argv(tool: str, plan: Any) -> list[str]:
    """``<tool> install -p PREFIX -y --override-channels -c CH... PINS``: every channel, every pin."""
    argv = [tool, "install", "-p", str(plan.prefix), "-y", "--override-channels"]
    for channel in plan.channels:
        argv += ["-c", channel]
    return argv + list(plan_pins(plan))


def apply_with(
    plan: Any,
    *,
    install: Callable[[], None],
    via: str,
    writes_history: bool,
    step: Step = lambda _m: None,
    pin: bool = True,
    replace_pin: bool = False,
    argv: Sequence[str] = (),
    spec_matches: Matches | None = None,
) -> Applied:
    """Run one installer on a planner.Plan inside condafix's lock, snapshot, journal and pin.

    ``writes_history``: the installer (conda, mamba) writes its own revision, so condafix writes
    none; otherwise condafix writes the revision conda would have written.
    """
    prefix = Path(plan.prefix)
    pins = plan_pins(plan)
    touched = [c.name for c in plan.changes if c.action != "install"]
    command = f"condafix cuda -p {prefix} --apply --cuda {plan.target.cuda}" + (
        f" --via {via}" if via in VIA_TOOLS else ""
    )
    edits: tuple[PinEdit, ...] = ()

    def describe() -> Change:
        """Under the lock: the plan still fits the env, the pin edits, and conda's history lines."""
        nonlocal edits
        _check_plan_current(prefix, plan)
        edits = tuple(plan_pin_edits(prefix, pins, replace=replace_pin, spec_matches=spec_matches)) if pin else ()
        config = _config()
        by_name = {_record_dict(r)["name"]: r for r in plan.records}
        old = _records(prefix)
        dists = _current_dists(prefix, config)
        removed = [dists[old[c.name][0].name] for c in plan.changes if c.from_version and c.name in old]
        added_records = [_record_dict(by_name[c.name]) for c in plan.changes if c.to_version and c.name in by_name]
        added = [dist_str(r, config) for r in added_records]
        caches: tuple[str, ...] = ()
        with contextlib.suppress(ImportError):
            from condafix import rattler_backend as rb

            caches = (str(rb.pkgs_dir()),)
        return Change(
            pin_edits=edits,
            history=None if writes_history else (command, removed, added, [_conda_spec(p) for p in pins]),
            linking=tuple(f"{r['name']}-{r['version']}-{r['build']}" for r in added_records),
            caches=caches,
        )

    from condafix.render import to_jsonable

    snapshot = apply_change(
        prefix,
        reason=command,
        plan=to_jsonable(plan),
        touched=touched,
        install=install,
        change=describe,
        step=step,
    )
    return Applied(snapshot.name, via, len(plan.changes), None, tuple(e.added for e in edits), tuple(scrub(list(argv))))


def apply_plan(
    plan: Any,
    *,
    via: str | None = None,
    pin: bool = True,
    replace_pin: bool = False,
    step: Step = lambda _m: None,
    spec_matches: Matches | None = None,
) -> Applied:
    """Execute a planner.Plan: rattler installs the solved records (default) or the env's own tool runs."""
    prefix = Path(plan.prefix)
    tool = find_tool(via) if via else None  # bad --via / missing tool: exit 2 before any lock or snapshot
    argv = tool_argv(tool, plan) if tool else []

    def with_rattler() -> None:
        from condafix import rattler_backend as rb

        originals = {f"{r.name.normalized}-{r.version}-{r.build}.json": str(r.url) for r in plan.records}
        try:
            rb.install(rb.prefer_cached(plan.records), prefix, rb.read_prefix_records(prefix), plan.specs, step)
        finally:
            for record in plan.records:
                record.url = originals[f"{record.name.normalized}-{record.version}-{record.build}.json"]
        _keep_channel_urls(prefix, originals)

    def with_tool() -> None:
        from condafix import runner

        done = runner.run(argv, timeout=3600, network=True, capture=False)
        if not done.ok:
            raise RuntimeError(f"{via} install failed ({done.error or f'exit {done.returncode}'})")

    return apply_with(
        plan,
        install=with_tool if tool else with_rattler,
        via=via or "rattler",
        writes_history=tool is not None,
        step=step,
        pin=pin,
        replace_pin=replace_pin,
        argv=argv,
        spec_matches=spec_matches,
    )


def _check_plan_current(prefix: Path, plan: Any) -> None:
    """The env must still hold what the plan was made from (another change may have landed meanwhile)."""
    present = {p.name.removesuffix(".json") for p in (prefix / "conda-meta").glob("*.json")}
    names = {n.rsplit("-", 2)[0] for n in present}
    stale = [
        c.name
        for c in plan.changes
        if (c.from_version and f"{c.name}-{c.from_version}-{c.from_build}" not in present)
        or (not c.from_version and c.name in names)
    ]
    if stale:
        raise ApplyError(
            f"{prefix} changed since this plan was made ({', '.join(stale)}); nothing was changed",
            (Hint("replan", "run the command again to plan against the env as it is now"),),
        )


def _conda_spec(pin: str) -> str:
    """A pin as conda's MatchSpec prints it (``cuda-version=12.4``)."""
    return pin.replace(" ", "")


def _keep_channel_urls(prefix: Path, urls: Mapping[str, str]) -> None:
    """Records installed from conda's package cache keep their channel URL (conda reads the channel from it)."""
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        record = _read_json(path)
        url = urls.get(path.name)
        if url and record.get("url") != url:
            record["url"] = url
            _atomic_write(path, json.dumps(record, indent=2, sort_keys=True))


def _record_dict(record: Any) -> dict[str, Any]:
    """A native record (rattler's or conda's) as the few fields history lines need."""
    return {
        "name": str(getattr(record.name, "normalized", record.name)),
        "version": str(record.version),
        "build": str(record.build),
        "subdir": str(record.subdir),
        "url": str(record.url),
        "channel": str(getattr(record.channel, "base_url", None) or record.channel or ""),
    }
