"""Put a prefix back to a snapshot: only what condafix linked or backed up is removed or restored."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condafix.change.condafiles import _commands, _history_text, _undo_pin_edits, history_state, requested_map
from condafix.change.installer import Reinstaller
from condafix.change.others import Scope, scope
from condafix.change.safety import (
    ApplyError,
    Refused,
    _check_records,
    _copy_atomic,
    _read_json,
    _record_files,
    place_at,
    prune_at,
    temp_name,
    unlink_at,
)
from condafix.change.snapshot import _drop_cache_tag, _load_snapshot, clobbered, new_build_paths
from condafix.env import condameta
from condafix.errors import Hint


@dataclass(frozen=True, kw_only=True)
class PackageMove:
    """One package a rollback moves: as it is in the env now -> as the snapshot holds it (None: absent)."""

    name: str
    from_version: str | None
    from_build: str | None
    to_version: str | None
    to_build: str | None


@dataclass(frozen=True, kw_only=True)
class RestorePlan:
    """What a rollback would do: packages to remove and put back (``packages``: each with its versions),
    those it must fetch, and what changed after condafix's change (which the rollback would revert too).

    ``already_undone``: condafix's packages are back as the snapshot holds them though the snapshot was
    never rolled back (``conda install --revision N``); what is left is the pin and requested specs."""

    snapshot: str
    remove: tuple[str, ...]
    restore: tuple[str, ...]
    missing: tuple[str, ...]
    later_changes: tuple[str, ...] = ()
    pins_removed: tuple[str, ...] = ()
    specs_restored: tuple[str, ...] = ()
    packages: tuple[PackageMove, ...] = ()
    already_undone: bool = False

    @property
    def has_work(self) -> bool:
        return bool(self.remove or self.restore or self.pins_removed or self.specs_restored)


def later_changes(prefix: Path, meta: Mapping[str, Any]) -> list[str]:
    """What happened to the env after condafix's change: other records, later history revisions."""
    after = meta.get("after")
    if not isinstance(after, dict):
        return []
    expected = set(after.get("records", []))
    current = {p.name: p for p in condameta.record_paths(prefix)}
    by_name_then = {str(condameta.dist_name(f)): f for f in expected}
    found = []
    for file, path in current.items():
        if file in expected:
            continue
        record = _read_json(path)
        was = by_name_then.get(str(record.get("name")))
        old = " ".join(was.removesuffix(".json").rsplit("-", 2)[1:]) if was else "(not installed)"
        found.append(f"{record.get('name')} {old} -> {record.get('version')} {record.get('build')}")
    names_now = {str(_read_json(p).get("name")) for p in current.values()}
    found += [
        f"{condameta.dist_name(f)} removed"
        for f in sorted(expected - set(current))
        if condameta.dist_name(f) not in names_now
    ]
    _state, revisions = history_state(_history_text(prefix))
    since = int(after.get("history_revisions", revisions))
    if revisions > since:
        requests = _commands(_history_text(prefix))[since:]
        found += [f"history revision {since + i + 1}: {cmd}" for i, cmd in enumerate(requests)]
    return found


def _own(path: Path, own: Scope) -> bool:
    return str(_read_json(path).get("name") or condameta.dist_name(path.name)) in own


def restore_plan(
    prefix: Path, snapshot: Path, meta: Mapping[str, Any] | None = None, *, force: bool = False
) -> RestorePlan:
    """Compare record files (by file name: a half-done install can hold two builds of one name).

    Only packages condafix's change moves are removed or put back: the prefix is shared with conda,
    and what another tool installed or removed meanwhile stays as it left it (``force``: a rollback
    the user forced past later changes acts on those too)."""
    meta = _load_snapshot(prefix, snapshot) if meta is None else meta
    own = scope(meta, force=force)
    saved = {p.name: p for p in condameta.record_paths(snapshot)}
    current = {p.name: p for p in condameta.record_paths(prefix)}
    backed = set(meta.get("backed_up", []))
    remove = sorted({str(_read_json(p).get("name")) for f, p in current.items() if f not in saved and _own(p, own)})
    restore = sorted({str(_read_json(p).get("name")) for f, p in saved.items() if f not in current and _own(p, own)})
    missing = tuple(n for n in restore if n not in backed)
    pinned = {line.strip() for line in condameta.pinned_lines(prefix)}  # a pin the user deleted stays deleted
    pins = tuple(
        str(e.get("added")) for e in meta.get("pin_edits", []) if isinstance(e, dict) and e.get("added") in pinned
    )
    specs = tuple(_spec_changes(prefix, meta, own))
    gone = [_read_json(p) for f, p in current.items() if f not in saved and _own(p, own)]
    back = [_read_json(p) for f, p in saved.items() if f not in current and _own(p, own)]
    return RestorePlan(
        snapshot=snapshot.name,
        remove=tuple(remove),
        restore=tuple(restore),
        missing=missing,
        later_changes=(),
        pins_removed=pins,
        specs_restored=specs,
        packages=_moves(gone, back),
    )


def _moves(gone: list[dict[str, Any]], back: list[dict[str, Any]]) -> tuple[PackageMove, ...]:
    """Records leaving the env and records coming back, paired by package name."""
    now = {str(r.get("name")): r for r in gone}
    then = {str(r.get("name")): r for r in back}

    def field(record: dict[str, Any] | None, key: str) -> str | None:
        return None if record is None else str(record.get(key))

    return tuple(
        PackageMove(
            name=name,
            from_version=field(now.get(name), "version"),
            from_build=field(now.get(name), "build"),
            to_version=field(then.get(name), "version"),
            to_build=field(then.get(name), "build"),
        )
        for name in sorted(now.keys() | then.keys())
    )


def _spec_changes(prefix: Path, meta: Mapping[str, Any], own: Scope) -> list[str]:
    before = meta.get("requested_before")
    if not isinstance(before, dict):
        return []
    now = requested_map(prefix)
    out = [f"remove {now[n]}" for n in sorted(now) if n not in before and n in own]
    out += [f"restore {before[n]}" for n in sorted(before) if n in now and now[n] != before[n] and n in own]
    return out


def _linked_files(prefix: Path, meta: Mapping[str, Any]) -> set[str]:
    """Files of the packages the change was to link (from their extracted copy in a package cache).

    After a kill mid-install a package can be half linked with no record yet: these are the only
    unrecorded files a rollback may delete.
    """
    from condafix.env import condarc

    caches = [Path(p) for p in meta.get("caches", []) if isinstance(p, str)]
    caches += list(condarc.load().pkgs_dirs)
    linking = meta.get("linking", [])
    return new_build_paths(linking if isinstance(linking, list) else [], caches)


def _installer_leftovers(prefix: Path) -> set[str]:
    """What the installer itself writes besides packages: half-written records, its cache tag."""
    found = {f"conda-meta/{p.name}" for p in (prefix / "conda-meta").glob("prefix_record_*") if p.is_file()}
    found |= {f"conda-meta/{p.name}" for p in (prefix / "conda-meta").glob(".*.tmp") if p.is_file()}
    for probe in prefix.glob(".refprobe-*"):  # rattler's reflink probe folder
        if probe.is_dir() and not probe.is_symlink():
            found |= {f"{probe.name}/{p.name}" for p in probe.iterdir() if p.is_file() or p.is_symlink()}
    return found | ({"CACHEDIR.TAG"} if (prefix / "CACHEDIR.TAG").is_file() else set())


def restore(
    prefix: Path,
    snapshot: Path,
    *,
    interrupted: bool,
    reinstaller: Reinstaller | None = None,
    force: bool = False,
    checked: bool = False,
) -> RestorePlan:
    """Put the prefix back to the snapshot from the snapshot's own backup; idempotent.

    Packages the snapshot holds no backup of come from the package cache first and the channel
    second; if any of them is in neither, nothing changes and they are named. ``interrupted``:
    the change may have stopped half-way, so files of the packages it was linking that were not
    in the prefix before are removed too; nothing else unrecorded is ever deleted. ``reinstaller``
    fetches what the backup lacks (the command layer hands it in; without one such a restore refuses);
    ``checked``: the caller asked ``reinstall_blocker`` already (it may ask the channel).
    """
    meta = _load_snapshot(prefix, snapshot)
    current_records = [(f"conda-meta/{p.name}", _read_json(p)) for p in condameta.record_paths(prefix)]
    _check_records(prefix, current_records)
    plan = restore_plan(prefix, snapshot, meta, force=force)
    own = scope(meta, force=force)
    if plan.missing:
        return _reinstall(prefix, snapshot, plan, reinstaller, own, checked=checked)
    changed: list[str] = []  # what was already done when a refusal comes: it is told as it is
    try:
        _put_back(prefix, snapshot, meta, own, interrupted=interrupted, changed=changed)
    except Refused as exc:
        if not changed:
            raise
        raise ApplyError(
            f"{_unsaid(exc.summary)}: the restore stopped part-way ({len(changed)} "
            f"{'file or record' if len(changed) == 1 else 'files and records'} already removed or put back), "
            "so the env is half restored; the journal is kept",
            (Hint(code="rollback", text=f"remove the symlink, then run `condafix rollback -p {prefix}` again"),),
        ) from None
    _undo_pin_edits(prefix, meta.get("pin_edits", []), bool(meta.get("pinned_existed")))
    return plan


def _unsaid(summary: str) -> str:
    """A refusal's text without its "nothing was changed" (said before anything changed)."""
    for tail in ("; nothing was changed", "; nothing changed", " (nothing was changed)"):
        summary = summary.removesuffix(tail)
    return summary


def _put_back(
    prefix: Path, snapshot: Path, meta: Mapping[str, Any], own: Scope, *, interrupted: bool, changed: list[str]
) -> None:
    """The file work of a restore; every removal and replacement walks without following a symlink."""
    origin = f"snapshot {snapshot.name}"

    def unlink(rel: str) -> None:
        if unlink_at(prefix, rel, origin):
            changed.append(rel)

    def place(root: Path, source: str, rel: str, *, link: bool = True) -> None:
        try:
            place_at(root, source, prefix, rel, origin, link=link)
        except FileNotFoundError:
            return  # no backup of it (or of its folder): left as it is
        changed.append(rel)

    saved = {p.name: p for p in condameta.record_paths(snapshot)}
    removed: list[str] = []
    kept: set[str] = set()  # files of records another tool owns: never deleted as leftovers
    for record_path in condameta.record_paths(prefix):
        if record_path.name in saved:
            continue
        if not _own(record_path, own):
            kept |= set(_record_files(_read_json(record_path)))
            continue
        files = _record_files(_read_json(record_path))
        for rel in files:
            unlink(rel)
        removed += files
        unlink(f"conda-meta/{record_path.name}")
    backed = set(meta.get("backed_up", []))
    for record_path in saved.values():
        record = _read_json(record_path)
        if record.get("name") not in backed:
            continue
        for rel in _record_files(record):
            place(snapshot / "files", rel, rel)
    for rel in clobbered(snapshot):  # what the new builds overwrote of other packages (or the user's)
        place(snapshot / "files", rel, rel)
    for name, record_path in saved.items():
        current = prefix / "conda-meta" / name
        if not current.is_file() and not _own(record_path, own):
            continue  # another tool removed it meanwhile: its removal stays
        unlink_at(prefix, f"conda-meta/{temp_name(name)}", origin)  # a killed restore's half copy
        if not current.is_file() or current.read_bytes() != record_path.read_bytes():
            # also records the installer rewrote in place; a copy, byte for byte
            place(snapshot, f"conda-meta/{name}", f"conda-meta/{name}", link=False)
    manifest = snapshot / "manifest.txt"
    known = set(manifest.read_text().splitlines()) if manifest.is_file() else set()
    if interrupted and known:  # an empty or missing manifest is no licence to delete anything
        owned = {rel for path in saved.values() for rel in _record_files(_read_json(path))} | kept
        candidates = _linked_files(prefix, meta) | _installer_leftovers(prefix)
        orphans = sorted(rel for rel in candidates if rel not in known and rel not in owned)
        for rel in orphans:
            unlink(rel)
        removed += orphans
    prune_at(prefix, removed, origin)


def _target_records(prefix: Path, snapshot: Path, own: Scope) -> Path:
    """The records a reinstall must leave: the snapshot's for condafix's packages, the prefix's own
    for every other package (what another tool installed or removed meanwhile stays so)."""
    target = snapshot / "reinstall-target"
    shutil.rmtree(target, ignore_errors=True)
    (target / "conda-meta").mkdir(parents=True)
    current = {p.name: p for p in condameta.record_paths(prefix)}
    for path in condameta.record_paths(snapshot):
        if _own(path, own) or path.name in current:  # the saved copy: an installer may have rewritten it
            shutil.copy2(path, target / "conda-meta" / path.name)
    for name, path in current.items():
        if not _own(path, own) and not (target / "conda-meta" / name).exists():
            shutil.copy2(path, target / "conda-meta" / name)
    return target


def reinstall_blocker(prefix: Path, snapshot: Path, plan: RestorePlan, reinstaller: Reinstaller | None) -> None:
    """Refuse (nothing changed) when the packages the backup lacks cannot be reinstalled here."""
    if reinstaller is None or reinstaller.unusable is not None:
        why = reinstaller.unusable if reinstaller is not None else "no installer was handed to the restore"
        raise ApplyError(
            f"cannot reinstall {', '.join(plan.missing)} (not in the snapshot's backup): {why}; nothing was changed",
            (revision_hint(prefix, snapshot),),
        )
    gone = reinstaller.unavailable(snapshot / "conda-meta", plan.missing)
    if gone:
        raise ApplyError(
            f"cannot restore {', '.join(gone)}: not in the snapshot's backup, the package cache or the channel "
            "(the build left the channel); nothing was changed",
            (Hint(code="reinstall", text="pick another build of those packages with conda, or keep the env as it is"),),
        )


def revision_hint(prefix: Path, snapshot: Path) -> Hint:
    """conda's own way back: the revision before condafix's change, with the pin condafix added out first
    (``conda install --revision`` keeps ``conda-meta/pinned``, and the pin would hold the fix in place)."""
    from condafix.change.others import revisions_before

    meta = _read_json(snapshot / "meta.json")
    number = revisions_before(meta, condameta.history_text(prefix)) - 1
    pins = [str(e.get("added")) for e in meta.get("pin_edits", []) if isinstance(e, dict) and e.get("added")]
    unpin = (
        f"first delete the line{'s' if len(pins) > 1 else ''} {', '.join(f'`{p}`' for p in pins)} condafix added "
        f"to {condameta.pinned_path(prefix)} (conda keeps pins, and this one holds the fix), then "
        if pins
        else ""
    )
    where = f"`conda install -p {prefix} --revision {number}`" if number >= 0 else "`conda install --revision N`"
    return Hint(
        code="conda_revision",
        text=f"let conda restore the env as it was before condafix's change: {unpin}run {where} "
        f"(`conda list -p {prefix} --revisions` lists them)",
    )


def _reinstall(
    prefix: Path,
    snapshot: Path,
    plan: RestorePlan,
    reinstaller: Reinstaller | None,
    own: Scope | None = None,
    *,
    checked: bool = False,
) -> RestorePlan:
    """Restore with the reinstaller the command layer handed in: the snapshot's records from a package cache,
    else the channel (``checked``: the caller ran ``reinstall_blocker`` already)."""
    if not checked:
        reinstall_blocker(prefix, snapshot, plan, reinstaller)
    assert reinstaller is not None  # reinstall_blocker refused otherwise
    meta = _read_json(snapshot / "meta.json")
    target = _target_records(prefix, snapshot, scope(meta) if own is None else own)
    try:
        reinstaller.reinstall(prefix, target / "conda-meta")
        for saved in condameta.record_paths(target):  # the installer writes fresh records
            _copy_atomic(saved, prefix / "conda-meta" / saved.name)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    _drop_cache_tag(prefix, snapshot)
    _undo_pin_edits(prefix, meta.get("pin_edits", []), bool(meta.get("pinned_existed")))
    return plan
