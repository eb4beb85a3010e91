"""A change, the safe way round: lock -> snapshot/backup -> journal -> pin -> install -> history.

A crash or Ctrl-C during the install restores the backup before condafix exits; a SIGKILL leaves
the journal behind for ``doctor`` and ``rollback``. The install itself is an :class:`Installer` that a
backend or a tool built and the command layer handed in; nothing here imports a backend.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix import progress
from condafix.change.condafiles import (
    PinEdit,
    _apply_pin_edits,
    _config,
    _current_dists,
    _history_text,
    _records,
    append_history,
    dist_str,
    history_state,
    plan_pin_edits,
    record_others,
)
from condafix.change.installer import Installer, InstallRequest, Move, Record, Reinstaller, guarding
from condafix.change.lock import _deferred_signals, prefix_lock
from condafix.change.others import foreign_changes, foreign_records, foreign_revisions, tail_revisions
from condafix.change.restore import restore, restore_plan
from condafix.change.safety import (
    ApplyError,
    Refused,
    Step,
    _check_records,
    _no_space,
    _read_json,
    check_state_dir,
    scrub,
    scrub_records,
)
from condafix.change.snapshot import (
    _discard_partial_snapshot,
    _drop_cache_tag,
    _new_records,
    _set_state,
    _start_journal,
    _update_meta,
    create_snapshot,
    new_build_paths,
    pending,
    save_clobbered,
)
from condafix.env import condameta
from condafix.errors import CondafixError, Hint


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else repr(exc)


@dataclass(frozen=True, kw_only=True)
class Change:
    """What apply_change does besides installing: pins, history (None: the tool writes its own)."""

    pin_edits: tuple[PinEdit, ...] = ()
    history: tuple[str, Sequence[str], Sequence[str], Sequence[str]] | None = None
    linking: tuple[str, ...] = ()
    caches: tuple[str, ...] = ()
    moving: tuple[str, ...] = ()


def apply_change(
    prefix: Path,
    *,
    reason: str,
    plan: object,
    touched: Sequence[str],
    install: Callable[[], None],
    change: Change | Callable[[], Change] = Change(),
    step: Step = lambda _m: None,
    notify: Step = lambda _m: None,
    reinstaller: Reinstaller | None = None,
    moved: Callable[[], Sequence[str]] = lambda: (),
) -> Path:
    """Lock -> snapshot/backup -> journal -> pin -> install -> history; restore the backup on any failure.

    ``notify(message)``: what a user must hear at once (a Ctrl-C noticed), lent by the command layer.
    ``moved()``: the package names the installer's own transaction moved (beyond the plan's), so that
    an undo tells condafix's packages from what another tool (conda takes no lock) did meanwhile."""
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    check_state_dir(prefix)
    _check_records(prefix, ((f"conda-meta/{p.name}", r) for p, r in _records(prefix).values()))
    phase = ["nothing in the env was changed yet"]
    with _deferred_signals(notify, lambda: phase[0]) as interrupted, prefix_lock(prefix):
        leftover = pending(prefix)
        if leftover:
            raise ApplyError(
                f"an unfinished condafix change (snapshot {leftover}) is in {prefix}",
                (Hint(code="rollback", text=f"run `condafix rollback -p {prefix}` first"),),
            )
        if callable(change):  # read the prefix only while holding its lock
            change = change()
        progress.begin(step, "snapshot", "saving a snapshot")
        extra = {
            "pin_edits": [{"added": e.added, "replaced": e.replaced} for e in change.pin_edits],
            "linking": list(change.linking),
            "caches": list(change.caches),
            "moving": sorted(set(change.moving) | set(touched) | {condameta.dist_name(d) for d in change.linking}),
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
        try:  # what the new builds will overwrite, where a package cache holds them extracted already
            caches = [Path(c) for c in change.caches]
            save_clobbered(prefix, snapshot, new_build_paths(change.linking, caches))
        except OSError as exc:
            shutil.rmtree(snapshot, ignore_errors=True)
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
        others: list[str] = []
        try:
            _refuse_others(prefix, snapshot, "before condafix changed anything")
            if change.pin_edits:
                step("pinning in conda-meta/pinned")
                _apply_pin_edits(prefix, change.pin_edits)
            step("installing")
            phase[0] = "the install is stopping; then condafix puts the env back to its snapshot"
            try:
                with guarding(lambda rels: save_clobbered(prefix, snapshot, rels)):
                    install()
            finally:
                _note_moved(snapshot, moved())
            if interrupted():
                raise KeyboardInterrupt
            phase[0] = "the change is installed; condafix is finishing it (pins, conda's history)"
            found = foreign_records(prefix, snapshot, _read_json(snapshot / "meta.json"))
            others = [text for _name, text in found] + foreign_revisions(
                prefix, snapshot, _read_json(snapshot / "meta.json")
            )
            scrub_records(prefix, _new_records(prefix, snapshot))
            _drop_cache_tag(prefix, snapshot)
            if change.history is not None:
                command, removed, added, specs = change.history
                append_history(prefix, command, removed, added, update_specs=specs)
            record_others(prefix, [name for name, _text in found])  # no other tool's package reads as removed
            _state, revisions = history_state(_history_text(prefix))
            records = sorted(p.name for p in condameta.record_paths(prefix))
            after = {"records": records, "history_revisions": revisions}
            _update_meta(snapshot, state="applied", after=after, others=others, others_names=[n for n, _t in found])
        except BaseException as exc:
            phase[0] = "condafix is putting the env back to its snapshot"
            _undo_after_failure(prefix, snapshot, journal, exc, step, reinstaller)
        journal.unlink(missing_ok=True)
        if others:
            raise ApplyError(
                f"another tool changed {prefix} while condafix applied its change: {'; '.join(others)}; "
                "both changes are kept",
                (_one_at_a_time(prefix),),
            )
        return snapshot


def _one_at_a_time(prefix: Path) -> Hint:
    return Hint(
        code="check", text=f"check the env with `condafix doctor -p {prefix}`; run conda and condafix one at a time"
    )


class OtherChange(ApplyError):
    """Another tool changed the prefix between the snapshot and the install: condafix stops."""


def _refuse_others(prefix: Path, snapshot: Path, when: str) -> None:
    others = foreign_changes(prefix, snapshot, _read_json(snapshot / "meta.json"))
    if others:
        raise OtherChange(
            f"another tool changed {prefix} {when} ({'; '.join(others)}); condafix changed nothing, "
            "and the other change is kept",
            (Hint(code="replan", text="run the command again when the other tool is done"),),
        )


def _note_moved(snapshot: Path, names: Sequence[str]) -> None:
    """Add the installer's own transaction to the names condafix's change moves (kept in the snapshot)."""
    if not names:
        return
    meta = _read_json(snapshot / "meta.json")
    have = meta.get("moving")
    have = have if isinstance(have, list) else []
    _update_meta(snapshot, moving=sorted({*(str(n) for n in have), *names}))


def _undo_after_failure(
    prefix: Path, snapshot: Path, journal: Path, exc: BaseException, step: Step, reinstaller: Reinstaller | None
) -> None:
    """Undo condafix's own part only; what another tool did meanwhile (records, history) is kept."""
    if isinstance(exc, OtherChange):  # nothing of condafix's was changed yet but the snapshot itself
        shutil.rmtree(snapshot, ignore_errors=True)
        journal.unlink(missing_ok=True)
        raise exc
    step("restoring the snapshot")
    meta = _read_json(snapshot / "meta.json")
    try:
        others = foreign_changes(prefix, snapshot, meta)
        dists_before = _current_dists(prefix, _config())
    except (OSError, CondafixError):
        others, dists_before = ["(the env could not be read)"], {}
    try:
        for _attempt in range(10):
            restore(prefix, snapshot, interrupted=True, reinstaller=reinstaller)
            # a failed install can leave the installer's other link tasks running a moment longer
            time.sleep(0.2)
            left = restore_plan(prefix, snapshot)
            if not (left.remove or left.restore):
                break
        _set_state(snapshot, "restored")
        _undo_history(prefix, snapshot, meta, bool(others), dists_before)
        journal.unlink(missing_ok=True)
    except (OSError, CondafixError) as again:
        raise ApplyError(
            f"the change failed ({_first_line(exc)}) and undoing it failed too ({_first_line(again)}); "
            "the journal is kept",
            (Hint(code="rollback", text=f"free space or fix the cause, then run `condafix rollback -p {prefix}`"),),
        ) from None
    if others:
        raise ApplyError(
            f"the change failed ({_first_line(exc)}) and condafix undid its own part; another tool changed "
            f"{prefix} meanwhile ({'; '.join(others)}) and that change is kept",
            (_one_at_a_time(prefix),),
        ) from None
    if isinstance(exc, KeyboardInterrupt):
        raise ApplyError("interrupted: the environment was restored to its state before the change") from None
    if isinstance(exc, OSError) and _no_space(exc):
        raise ApplyError(f"the disk is full ({exc.filename or prefix}); the change was undone") from None
    if isinstance(exc, Refused):
        raise exc
    raise ApplyError(f"the change failed and was undone: {_first_line(exc)}") from None


def _undo_history(
    prefix: Path, snapshot: Path, meta: dict[str, Any], others: bool, dists_before: dict[str, str]
) -> None:
    """A failed change leaves no revision of its own behind, and never takes another tool's.

    When the history holds only condafix's (or its installer's) revision it goes back to its size at
    snapshot time; when another tool wrote one meanwhile it is appended to: one revision saying what
    the undo removed and put back."""
    size = meta.get("history_size")
    path = condameta.history_path(prefix)
    if not (path.is_file() and not path.is_symlink() and isinstance(size, int) and path.stat().st_size > size):
        return
    if not others and not foreign_revisions(prefix, snapshot, meta) and tail_revisions(prefix, meta) <= 1:
        with open(path, "r+b") as out:
            out.truncate(size)
        return
    dists_now = _current_dists(prefix, _config())
    removed = [d for f, d in sorted(dists_before.items()) if f not in dists_now]
    added = [d for f, d in sorted(dists_now.items()) if f not in dists_before]
    if removed or added:
        append_history(prefix, f"condafix: undo of a failed change (snapshot {snapshot.name})", removed, added)


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What --apply did; ``after`` is the doctor report on the changed env."""

    snapshot: str
    via: str
    changes: int
    after: Any = None
    pinned: tuple[str, ...] = ()
    command: tuple[str, ...] = ()


def apply(
    request: InstallRequest,
    installer: Installer,
    *,
    pin: bool = True,
    replace_pin: bool = False,
    step: Step = lambda _m: None,
    notify: Step = lambda _m: None,
    reinstaller: Reinstaller | None = None,
) -> Applied:
    """Run one installer on a planned request inside condafix's lock, snapshot, journal, pin and history.

    The installer only installs: when it writes conda's history itself (conda, mamba) condafix writes
    none, otherwise condafix writes the revision conda would have written. ``reinstaller``: for an undo
    that needs packages back which the snapshot holds no backup of.
    """
    prefix = request.prefix
    pins = request.pins
    touched = [m.name for m in request.moves if m.from_version is not None]
    edits: tuple[PinEdit, ...] = ()

    def describe() -> Change:
        """Under the lock: the plan still fits the env, the pin edits, and conda's history lines."""
        nonlocal edits
        _check_plan_current(prefix, request.moves)
        matches = installer.spec_matches
        edits = tuple(plan_pin_edits(prefix, pins, replace=replace_pin, spec_matches=matches)) if pin else ()
        config = _config()
        by_name = {r.name: r for r in request.records}
        old = {name: path.name for name, (path, _record) in _records(prefix).items()}  # the files, not the
        dists = _current_dists(prefix, config)  # contents: a 200 MB record is not held while read again
        removed = [dists[old[m.name]] for m in request.moves if m.from_version and m.name in old]
        added_records = [by_name[m.name] for m in request.moves if m.to_version and m.name in by_name]
        added = [dist_str(_record_dict(r), config) for r in added_records]
        return Change(
            pin_edits=edits,
            history=None
            if installer.writes_history
            else (request.command, removed, added, [_conda_spec(p) for p in pins]),
            linking=tuple(f"{r.name}-{r.version}-{r.build}" for r in added_records),
            caches=installer.caches,
            moving=tuple(m.name for m in request.moves),
        )

    snapshot = apply_change(
        prefix,
        reason=request.command,
        plan=request.plan,
        touched=touched,
        install=lambda: installer.install(step),
        change=describe,
        step=step,
        notify=notify,
        reinstaller=reinstaller,
        moved=installer.moved,
    )
    return Applied(
        snapshot=snapshot.name,
        via=installer.label,
        changes=len(request.moves),
        pinned=tuple(e.added for e in edits),
        command=tuple(scrub(list(installer.argv))),
    )


def _check_plan_current(prefix: Path, moves: Sequence[Move]) -> None:
    """The env must still hold what the plan was made from (another change may have landed meanwhile)."""
    present = {p.name.removesuffix(".json") for p in condameta.record_paths(prefix)}
    names = {condameta.dist_name(n) for n in present}
    stale = [
        m.name
        for m in moves
        if (m.from_version and f"{m.name}-{m.from_version}-{m.from_build}" not in present)
        or (not m.from_version and m.name in names)
    ]
    if stale:
        raise ApplyError(
            f"{prefix} changed since this plan was made ({', '.join(stale)}); nothing was changed",
            (Hint(code="replan", text="run the command again to plan against the env as it is now"),),
        )


def _conda_spec(pin: str) -> str:
    """A pin as conda's MatchSpec prints it (``cuda-version=12.4``)."""
    return pin.replace(" ", "")


def _record_dict(record: Record) -> dict[str, Any]:
    """A neutral record as the few fields conda's history lines need."""
    return {
        "name": record.name,
        "version": record.version,
        "build": record.build,
        "subdir": record.subdir,
        "url": record.url or "",
        "channel": record.channel or "",
    }
