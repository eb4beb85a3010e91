"""``condafix rollback``: restore a snapshot, remove exactly the pin and specs condafix added, journaled."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from condafix.change.condafiles import _config, _current_dists, _undo_pin_edits, append_history, requested_map
from condafix.change.installer import Reinstaller
from condafix.change.lock import _deferred_signals, prefix_lock
from condafix.change.others import foreign_changes, scope
from condafix.change.restore import RestorePlan, later_changes, reinstall_blocker, restore, restore_plan
from condafix.change.safety import ApplyError, Refused, _read_json, _write_json, check_state_dir
from condafix.change.snapshot import (
    _journal,
    _load_snapshot,
    _set_state,
    _start_journal,
    _update_meta,
    list_snapshots,
    pending,
)
from condafix.errors import Hint


def rollback(
    prefix: Path,
    snapshot_id: str | None,
    *,
    dry_run: bool,
    force: bool = False,
    reinstaller: Reinstaller | None = None,
    notify: Callable[[str], None] = lambda _m: None,
) -> RestorePlan:
    """Undo condafix's change: restore the snapshot, remove the pin and specs it added.

    Refuses when the env changed after condafix's change (unless ``force``); a rollback that was
    interrupted is finished without asking. Journaled like a change. ``reinstaller`` (from the command
    layer) fetches packages the snapshot holds no backup of; ``notify`` tells the user of a Ctrl-C at once.
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
        return RestorePlan(snapshot=chosen.id, remove=(), restore=(), missing=())
    journal_op = _journal(prefix).get("op") if pending(prefix) == chosen.id else None
    resuming = journal_op == "rollback"
    if resuming:
        later: list[str] = []
    elif chosen.state == "applied":
        later = later_changes(prefix, meta)
    else:  # an unfinished (killed) change: what another tool did since its snapshot counts the same
        later = foreign_changes(prefix, root, meta)
    preview = restore_plan(prefix, root, meta, force=force)
    if chosen.state == "applied" and not resuming and not (preview.remove or preview.restore):
        # undone already (conda install --revision N): the later changes are that undo, nothing to revert
        preview = replace(preview, already_undone=True)
        return preview if dry_run else _finish_undone(prefix, root, chosen.id, meta, preview, force=force)
    preview = replace(preview, later_changes=tuple(later))
    if dry_run:
        return preview
    if later and not force:
        raise Refused(
            f"{prefix} changed after condafix's change, and rolling back would revert that too: " + "; ".join(later),
            (
                Hint(
                    code="force",
                    text="pass --force to roll back anyway (those changes are undone as well)",
                ),
            ),
        )
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    with (
        _deferred_signals(notify, lambda: "the env is being restored to the snapshot", cancel=False),
        prefix_lock(prefix),
    ):
        unfinished = pending(prefix) == chosen.id or chosen.state == "started"
        config = _config()
        try:
            if not resuming:
                pre = {"dists": _current_dists(prefix, config), "requested": requested_map(prefix)}
                _update_meta(root, pre_rollback=pre)
            plan = restore_plan(prefix, root, meta, force=force)
            if plan.missing:  # a reinstall that cannot run refuses before the journal: the env stays unmarked
                reinstall_blocker(prefix, root, plan, reinstaller)
            before = _journal(prefix)
            journal = _start_journal(prefix, root, "rollback")
            try:
                done = restore(prefix, root, interrupted=unfinished, reinstaller=reinstaller, force=force, checked=True)
            except Refused:  # raised before anything changed (a later refusal is an ApplyError)
                _put_journal_back(journal, before)
                raise
        except OSError as exc:
            raise ApplyError(
                f"rollback stopped: {exc.strerror or exc} ({exc.filename or prefix}); the journal is kept",
                (
                    Hint(
                        code="rollback",
                        text=f"free space or fix the cause, then run `condafix rollback -p {prefix}` again",
                    ),
                ),
            ) from None
        try:
            reinstalled = bool(done.missing) and reinstaller is not None and reinstaller.writes_history
            _write_rollback_history(prefix, root, chosen.id, config, force=force, packages=not reinstalled)
            _set_state(root, "rolled-back")
            journal.unlink(missing_ok=True)
        except OSError as exc:
            raise ApplyError(
                f"the packages were restored but writing conda's history failed: {exc.strerror or exc}; "
                "the journal is kept",
                (Hint(code="rollback", text=f"free space, then run `condafix rollback -p {prefix}` again"),),
            ) from None
    return replace(done, later_changes=tuple(later))


def _finish_undone(
    prefix: Path, root: Path, snapshot_id: str, meta: dict[str, Any], plan: RestorePlan, *, force: bool
) -> RestorePlan:
    """The packages are back already; what condafix added besides them goes: its pin, and its requested
    spec, which ``conda install --revision`` keeps in conda's history (and conda's next install would
    bring the fix back for it). Nothing is re-linked; the snapshot is marked rolled back."""
    if not plan.has_work:
        return plan
    if not os.access(prefix / "conda-meta", os.W_OK):
        raise ApplyError(f"{prefix} is read-only for this user; nothing was changed")
    try:
        with prefix_lock(prefix):
            _update_meta(root, pre_rollback={"requested": requested_map(prefix)})
            _undo_pin_edits(prefix, meta.get("pin_edits", []), bool(meta.get("pinned_existed")))
            _write_rollback_history(prefix, root, snapshot_id, _config(), force=force, packages=False)
            _set_state(root, "rolled-back")
    except OSError as exc:
        raise ApplyError(
            f"rollback stopped: {exc.strerror or exc} ({exc.filename or prefix})",
            (Hint(code="rollback", text=f"fix the cause, then run `condafix rollback -p {prefix}` again"),),
        ) from None
    return plan


def _put_journal_back(journal: Path, before: dict[str, Any]) -> None:
    """A rollback that changed nothing leaves the journal as it found it (none, or a killed change's)."""
    if before:
        _write_json(journal, before)
    else:
        journal.unlink(missing_ok=True)


def _write_rollback_history(
    prefix: Path, snapshot: Path, snapshot_id: str, config: Any, *, force: bool, packages: bool = True
) -> None:
    """The rollback as a conda revision: what went and came back, and the requested specs as they were.

    ``packages=False``: the reinstaller (conda's transaction) wrote the package lines itself."""
    meta = _read_json(snapshot / "meta.json")
    pre: dict[str, Any] = meta["pre_rollback"] if isinstance(meta.get("pre_rollback"), dict) else {}
    dists_before: dict[str, Any] = pre["dists"] if isinstance(pre.get("dists"), dict) else {}
    dists_now = _current_dists(prefix, config)
    removed = [str(d) for f, d in sorted(dists_before.items()) if f not in dists_now]
    added = [d for f, d in sorted(dists_now.items()) if f not in dists_before]
    before: dict[str, Any] = meta["requested_before"] if isinstance(meta.get("requested_before"), dict) else {}
    now: dict[str, Any] = pre["requested"] if isinstance(pre.get("requested"), dict) else requested_map(prefix)
    own = scope(meta, force=force)  # another tool's requested specs stay as it left them (unless forced)
    remove_specs = [n for n in sorted(now) if n not in before and n in own]
    update_specs = [str(before[n]) for n in sorted(before) if n in now and now[n] != before[n] and n in own]
    if not packages:
        removed, added = [], []
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
