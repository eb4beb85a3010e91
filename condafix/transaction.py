"""Change a prefix safely: lock, snapshot, back up, install, and restore on any failure.

Layout under ``<prefix>/conda-meta/condafix/``:

    lock                         pid, host and start time of the condafix holding the prefix
    journal.json                 present only while a change is in flight (its snapshot id)
    snapshots/<id>/explicit.txt  ``@EXPLICIT`` URLs with sha256, like ``conda list --explicit``
    snapshots/<id>/conda-meta/   every record as it was
    snapshots/<id>/files/        hardlinks (or copies) of the files of each package the plan touches
    snapshots/<id>/meta.json     when, why (the plan), and the state: started/applied/rolled-back

A crash or Ctrl-C during the install restores the backup before condafix exits; a SIGKILL leaves
the journal behind, which the next run reports and ``condafix rollback`` finishes. Restoring from
the snapshot's own files needs neither the package cache nor the channel.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from condafix import __version__, progress
from condafix.errors import CondafixError, Hint, UsageError

LOCK_WAIT_S = 10.0
State = Literal["started", "applied", "rolled-back", "restored"]


class ApplyError(CondafixError):
    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 4)


def state_dir(prefix: Path) -> Path:
    return prefix / "conda-meta" / "condafix"


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
    """Hold ``conda-meta/condafix/lock`` (pid inside); a stale lock (dead pid) is taken over."""
    wait = _lock_wait() if wait is None else wait
    lock = state_dir(prefix) / "lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplyError(f"cannot write to {prefix}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait
    body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_json(lock)
            pid = int(holder.get("pid", 0)) if isinstance(holder.get("pid"), int) else 0
            same_host = holder.get("host") in (None, socket.gethostname())
            if same_host and (pid <= 0 or not _pid_alive(pid)):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if time.monotonic() >= deadline:
                raise ApplyError(
                    f"{prefix} is locked by another condafix (pid {pid or '?'} on {holder.get('host', '?')})",
                    (Hint("wait", f"wait for it to finish; if it is gone, remove {lock}"),),
                ) from None
            time.sleep(0.1)
            continue
        except OSError as exc:
            raise ApplyError(f"cannot lock {prefix}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "w") as out:
            out.write(body)
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: object) -> None:
    """Write via a temp file + rename so a crash never leaves half a JSON document; no credential in it."""
    from condafix.redact import redact_json

    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(redact_json(data), indent=2, sort_keys=True))
    os.replace(temp, path)


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
        return [p["_path"] for p in paths if isinstance(p, dict) and isinstance(p.get("_path"), str)]
    files = record.get("files")
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _prefix_files(prefix: Path) -> list[str]:
    """Every file and link in the prefix except condafix's own state: what an interrupted change is judged by."""
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
        url, sha = record.get("url"), record.get("sha256")
        if isinstance(url, str):
            lines.append(f"{url}#sha256:{sha}" if isinstance(sha, str) and sha else url)
    return lines


def create_snapshot(
    prefix: Path,
    *,
    reason: str,
    plan: object,
    touched: Sequence[str],
    on_file: Callable[[int], None] = lambda _nbytes: None,
) -> Path:
    """Save records, explicit URLs, the plan, and a backup of the touched packages' files.

    ``on_file(nbytes)`` is called per file backed up (progress)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    root = state_dir(prefix) / "snapshots" / stamp
    (root / "conda-meta").mkdir(parents=True)
    records = _records(prefix)
    for path, _record in records.values():
        shutil.copy2(path, root / "conda-meta" / path.name)
    (root / "explicit.txt").write_text("\n".join(explicit_lines(r for _p, r in records.values())) + "\n")
    (root / "manifest.txt").write_text("".join(f"{rel}\n" for rel in _prefix_files(prefix)))
    backed: list[str] = []
    for name in touched:
        if name not in records:
            continue
        for rel in _record_files(records[name][1]):
            source = prefix / rel
            if source.exists() or source.is_symlink():
                _link_or_copy(source, root / "files" / rel)
                on_file(source.lstat().st_size)
        backed.append(name)
    _write_json(
        root / "meta.json",
        {
            "id": stamp,
            "created": stamp,
            "reason": reason,
            "state": "started",
            "condafix": __version__,
            "backed_up": backed,
            "plan": plan,
        },
    )
    return root


def list_snapshots(prefix: Path) -> list[SnapshotInfo]:
    base = state_dir(prefix) / "snapshots"
    found = []
    for root in sorted(base.iterdir()) if base.is_dir() else []:
        meta = _read_json(root / "meta.json")
        if not meta:
            continue
        found.append(
            SnapshotInfo(
                root.name,
                str(root),
                str(meta.get("created", root.name)),
                str(meta.get("state", "?")),
                str(meta.get("reason", "")),
                len(list((root / "conda-meta").glob("*.json"))),
                tuple(str(b) for b in meta.get("backed_up", [])),
            )
        )
    return found


def _set_state(snapshot: Path, state: State) -> None:
    meta = _read_json(snapshot / "meta.json")
    meta["state"] = state
    _write_json(snapshot / "meta.json", meta)


# ---------------------------------------------------------------- journal


def pending(prefix: Path) -> str | None:
    """The snapshot id of an unfinished change whose process is gone, else None."""
    journal = _read_json(state_dir(prefix) / "journal.json")
    if not journal:
        return None
    pid = journal.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
        return None
    return str(journal.get("snapshot"))


# ---------------------------------------------------------------- restore


@dataclass(frozen=True)
class RestorePlan:
    """What a rollback would do: package names to remove, put back, and the ones it cannot restore."""

    snapshot: str
    remove: tuple[str, ...]
    restore: tuple[str, ...]
    missing: tuple[str, ...]


def restore_plan(prefix: Path, snapshot: Path) -> RestorePlan:
    """Compare record files (by file name: a half-done install can hold two builds of one name)."""
    saved = {p.name: p for p in sorted((snapshot / "conda-meta").glob("*.json"))}
    current = {p.name: p for p in sorted((prefix / "conda-meta").glob("*.json"))}
    backed = set(_read_json(snapshot / "meta.json").get("backed_up", []))
    remove = sorted({str(_read_json(p).get("name")) for f, p in current.items() if f not in saved})
    restore = sorted({str(_read_json(p).get("name")) for f, p in saved.items() if f not in current})
    missing = tuple(n for n in restore if n not in backed)
    return RestorePlan(snapshot.name, tuple(remove), tuple(restore), missing)


def _prune_dirs(prefix: Path, rels: Sequence[str]) -> None:
    parents = sorted({(prefix / r).parent for r in rels}, key=lambda p: len(p.parts), reverse=True)
    for parent in parents:
        while parent != prefix and parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def restore(prefix: Path, snapshot: Path, *, interrupted: bool) -> RestorePlan:
    """Put the prefix back to the snapshot from the snapshot's own backup; idempotent.

    Packages the snapshot holds no backup of come from the package cache first and the channel
    second; if any of them is in neither, nothing changes and they are named.
    ``interrupted``: the change may have stopped half-way, so files that were not in the prefix when
    the snapshot was taken (a half-linked new package) are removed too.
    """
    plan = restore_plan(prefix, snapshot)
    if plan.missing:
        return _reinstall(prefix, snapshot, plan)
    saved = {p.name: p for p in sorted((snapshot / "conda-meta").glob("*.json"))}
    removed: list[str] = []
    for record_path in sorted((prefix / "conda-meta").glob("*.json")):
        if record_path.name in saved:
            continue
        files = _record_files(_read_json(record_path))
        for rel in files:
            _unlink(prefix / rel)
        removed += files
        record_path.unlink()
    backed = set(_read_json(snapshot / "meta.json").get("backed_up", []))
    for record_path in saved.values():
        record = _read_json(record_path)
        if record.get("name") not in backed:
            continue
        for rel in _record_files(record):
            backup = snapshot / "files" / rel
            if backup.exists() or backup.is_symlink():
                _unlink(prefix / rel)
                _link_or_copy(backup, prefix / rel)
    for name, record_path in saved.items():
        current = prefix / "conda-meta" / name
        if not current.is_file() or current.read_bytes() != record_path.read_bytes():
            shutil.copy2(record_path, current)  # also records the installer rewrote in place
    manifest = snapshot / "manifest.txt"
    if interrupted and manifest.is_file():
        known = set(manifest.read_text().splitlines())
        orphans = [rel for rel in _prefix_files(prefix) if rel not in known and rel != "conda-meta/history"]
        for rel in orphans:
            _unlink(prefix / rel)
        removed += orphans
    _prune_dirs(prefix, removed)
    return plan


def _reinstall(prefix: Path, snapshot: Path, plan: RestorePlan) -> RestorePlan:
    """Restore with the installer: the snapshot's records from the package cache or the channel."""
    from condafix import rattler_backend as rb

    wanted = rb.records_from_dir(snapshot / "conda-meta")
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
        shutil.copy2(saved, prefix / "conda-meta" / saved.name)
    return plan


# ---------------------------------------------------------------- the transaction


def append_history(
    prefix: Path, command: str, removed: Sequence[str], added: Sequence[str], specs: Sequence[str]
) -> None:
    """A conda-style revision so ``conda list --revisions`` still makes sense."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"==> {stamp} <==", f"# cmd: {command}", f"# condafix version: {__version__}"]
    lines += [f"-{r}" for r in removed] + [f"+{a}" for a in added]
    lines.append(f"# update specs: {list(specs)!r}")
    from condafix.redact import redact

    with open(prefix / "conda-meta" / "history", "a", encoding="utf-8") as out:
        out.write(redact("\n".join(lines)) + "\n")  # no credential in a file condafix writes


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


def apply_change(
    prefix: Path,
    *,
    reason: str,
    plan: object,
    touched: Sequence[str],
    install: Callable[[], None],
    history: tuple[str, Sequence[str], Sequence[str], Sequence[str]] | None,
    step: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Lock -> snapshot/backup -> journal -> install -> history; restore the backup on any failure."""
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    with _deferred_signals() as interrupted, prefix_lock(prefix):
        leftover = pending(prefix)
        if leftover:
            raise ApplyError(
                f"an unfinished condafix change (snapshot {leftover}) is in {prefix}",
                (Hint("rollback", f"run `condafix rollback -p {prefix}` first"),),
            )
        progress.begin(step, "snapshot", "saving a snapshot")
        try:
            snapshot = create_snapshot(
                prefix, reason=reason, plan=plan, touched=touched, on_file=progress.file_counter(step)
            )
        except OSError as exc:
            raise ApplyError(
                f"cannot write the snapshot in {prefix}: {exc.strerror or exc}; nothing was changed"
            ) from None
        progress.end(step)
        if interrupted():
            raise ApplyError("interrupted before any change; nothing was changed")
        journal = state_dir(prefix) / "journal.json"
        _write_json(journal, {"snapshot": snapshot.name, "pid": os.getpid(), "started": time.time()})
        try:
            step("installing")
            install()
            if interrupted():
                raise KeyboardInterrupt
        except BaseException as exc:
            step("restoring the snapshot")
            restore(prefix, snapshot, interrupted=True)
            _set_state(snapshot, "restored")
            journal.unlink(missing_ok=True)
            if isinstance(exc, KeyboardInterrupt):
                raise ApplyError("interrupted: the environment was restored to its state before the change") from None
            raise ApplyError(
                f"the change failed and was undone: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            ) from None
        if history is not None:  # None: the installer (conda) wrote its own revision
            append_history(prefix, *history)
        _set_state(snapshot, "applied")
        journal.unlink(missing_ok=True)
        return snapshot


def rollback(prefix: Path, snapshot_id: str | None, *, dry_run: bool) -> RestorePlan:
    """Restore the newest (or the named) snapshot; with a pending journal, that snapshot."""
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
    if dry_run:
        return restore_plan(prefix, root)
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    with _deferred_signals(), prefix_lock(prefix):
        unfinished = pending(prefix) == chosen.id or chosen.state == "started"
        done = restore(prefix, root, interrupted=unfinished)
        _set_state(root, "rolled-back")
        (state_dir(prefix) / "journal.json").unlink(missing_ok=True)
        append_history(
            prefix,
            f"condafix rollback --to {chosen.id}",
            [f"{n}" for n in done.remove],
            [f"{n}" for n in done.restore],
            [],
        )
    return done


# ---------------------------------------------------------------- applying a plan

VIA_TOOLS = ("conda", "mamba", "micromamba")


@dataclass(frozen=True)
class Applied:
    """What --apply did; ``after`` is the doctor report on the changed env."""

    snapshot: str
    via: str
    changes: int
    after: Any = None


def find_tool(via: str) -> str:
    """The env's own manager: $CONDA_EXE / $MAMBA_EXE first, then PATH."""
    if via not in VIA_TOOLS:
        raise CondafixError(f"--via must be one of {', '.join(VIA_TOOLS)}", (), 2)
    hinted = os.environ.get("CONDA_EXE") if via == "conda" else os.environ.get("MAMBA_EXE")
    if hinted and Path(hinted).name.startswith(via) and os.access(hinted, os.X_OK):
        return hinted
    found = shutil.which(via)
    if found is None:
        raise CondafixError(f"--via {via}: {via} is not on PATH (nor in $CONDA_EXE/$MAMBA_EXE)", (), 2)
    return found


def apply_with(
    plan: Any,
    *,
    install: Callable[[], None],
    via: str,
    writes_history: bool,
    step: Callable[[str], None] = lambda _m: None,
) -> Applied:
    """Run one installer on a planner.Plan inside condafix's lock, snapshot and journal."""
    prefix = Path(plan.prefix)
    touched = [c.name for c in plan.changes if c.action != "install"]
    removed = [f"{c.name}-{c.from_version}-{c.from_build}" for c in plan.changes if c.from_version]
    added = [f"{c.name}-{c.to_version}-{c.to_build}" for c in plan.changes if c.to_version]
    command = f"condafix cuda --apply (target CUDA {plan.target.cuda})" + (f" --via {via}" if via in VIA_TOOLS else "")
    from condafix.render import to_jsonable

    snapshot = apply_change(
        prefix,
        reason=command,
        plan=to_jsonable(plan),
        touched=touched,
        install=install,
        history=None if writes_history else (command, removed, added, [plan.pin]),
        step=step,
    )
    return Applied(snapshot.name, via, len(plan.changes))


def apply_plan(plan: Any, *, via: str | None = None, step: Callable[[str], None] = lambda _m: None) -> Applied:
    """Execute a planner.Plan: rattler installs the solved records (default) or the env's own tool runs."""
    prefix = Path(plan.prefix)

    def with_rattler() -> None:
        from condafix import rattler_backend as rb

        rb.install(plan.records, prefix, rb.read_prefix_records(prefix), plan.specs, step)

    def with_tool() -> None:
        from condafix import runner

        assert via is not None
        argv = [find_tool(via), "install", "-p", str(prefix), "-y", "-c", plan.channels[0], plan.pin]
        done = runner.run(argv, timeout=3600, network=True, capture=False)
        if not done.ok:
            raise RuntimeError(f"{via} install failed ({done.error or f'exit {done.returncode}'})")

    return apply_with(
        plan, install=with_tool if via else with_rattler, via=via or "rattler", writes_history=False, step=step
    )
