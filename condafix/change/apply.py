"""A change, the safe way round: lock -> snapshot/backup -> journal -> pin -> install -> history.

A crash or Ctrl-C during the install restores the backup before condafix exits; a SIGKILL leaves
the journal behind for ``doctor`` and ``rollback``. The install itself is the backend's or a tool's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix import progress
from condafix.change.condafiles import (
    Matches,
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
)
from condafix.change.lock import _deferred_signals, prefix_lock
from condafix.change.restore import restore, restore_plan
from condafix.change.safety import (
    ApplyError,
    Refused,
    Step,
    _atomic_write,
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
    pending,
)
from condafix.env import condameta
from condafix.errors import CondafixError, Hint


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
            records = sorted(p.name for p in condameta.record_paths(prefix))
            _update_meta(snapshot, state="applied", after={"records": records, "history_revisions": revisions})
        except BaseException as exc:
            _undo_after_failure(prefix, snapshot, journal, exc, step)
        journal.unlink(missing_ok=True)
        return snapshot


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
    path = condameta.history_path(prefix)
    if isinstance(size, int) and path.is_file() and not path.is_symlink() and path.stat().st_size > size:
        with open(path, "r+b") as out:
            out.truncate(size)


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
            from condafix.backends.rattler import install as install_rb

            caches = (str(install_rb.pkgs_dir()),)
        return Change(
            pin_edits=edits,
            history=None if writes_history else (command, removed, added, [_conda_spec(p) for p in pins]),
            linking=tuple(f"{r['name']}-{r['version']}-{r['build']}" for r in added_records),
            caches=caches,
        )

    from condafix.schema import to_jsonable

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
        from condafix.backends.rattler import install as install_rb
        from condafix.backends.rattler import solve as solve_rb

        originals = {f"{r.name.normalized}-{r.version}-{r.build}.json": str(r.url) for r in plan.records}
        try:
            install_rb.install(
                install_rb.prefer_cached(plan.records), prefix, solve_rb.read_prefix_records(prefix), plan.specs, step
            )
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
    present = {p.name.removesuffix(".json") for p in condameta.record_paths(prefix)}
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
    for path in condameta.record_paths(prefix):
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
