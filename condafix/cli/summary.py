"""Every command's result as :class:`~condafix.findings.Finding`\\ s in the one severity vocabulary.

doctor and proxy already report findings; the other results keep their own shapes (a plan, a file
edit, a lock verdict per env) because those are what their text views print. This is the one place
that reads each of them as findings, so that every ``--json`` document carries ``status`` (the worst
severity: ok, warning, error) and ``findings`` with the same codes whichever front end ran it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from condafix.findings import RANK, Finding, Severity, Status
from condafix.progress_view import plural


def status_of(findings: Iterable[Finding]) -> Status:
    """The worst severity (info counts as ok): the one vocabulary every command's status uses."""
    worst = max((RANK[f.severity] for f in findings), default=0)
    return ("ok", "warning", "error")[worst]


def _f(code: str, severity: Severity, message: str, component: str | None = None) -> Finding:
    return Finding(code=code, severity=severity, message=message, component=component)


def _plan(plan: Any) -> tuple[Finding, ...]:
    if plan.status == "nothing-to-do":
        return (_f("plan-nothing-to-do", "ok", plan.reason),)
    if plan.status == "change":
        head = _f("plan-change", "warning", f"{plan.reason} (pin {plan.pin})" if plan.pin else plan.reason)
        moves = tuple(
            _f(
                f"plan-{c.action}",
                "info",
                f"{c.name} {c.from_version or '-'} -> {c.to_version or '-'}",
                component=c.name,
            )
            for c in plan.changes
        )
        return (head, *moves)
    blockers = tuple(
        _f("plan-blocker", "error", f"{b.name} {b.version} requires {b.requirement}", component=b.name)
        for b in plan.blockers
    )
    return (_f("plan-blocked", "error", plan.reason), *blockers)


def _env_file(result: Any) -> tuple[Finding, ...]:
    severities: dict[str, Severity] = {"ok": "ok", "change": "warning", "refused": "error"}
    severity = severities[result.status]
    head = _f(f"env-file-{result.status}", severity, result.reason or f"{result.path}: {result.status}")
    notes = tuple(_f("env-file-note", "info", f"{result.path}:{n.line}: {n.message}") for n in result.notes)
    return (head, *notes)


def _lock(run: Any) -> tuple[Finding, ...]:
    out: list[Finding] = []
    severity: dict[str, Severity] = {"ok": "ok", "no-cuda": "info", "warning": "warning", "mismatch": "error"}
    for report in run.reports:
        for env in report.envs:
            where = f"{report.path}: {env.env} on {env.platform}"
            out.append(_f(f"lock-{env.verdict}", severity[env.verdict], f"{where}: {env.reason}"))
    return tuple(out)


def move_text(move: Any) -> str:
    """One package a rollback moves, with its versions: ``cuda-cudart 12.4.131 -> 12.9.86``,
    ``numba-cuda 0.4.0 (removed)``, ``libfoo 1.2 (put back)``; builds too when the version stays."""
    if move.to_version is None:
        return f"{move.name} {move.from_version} (removed)"
    if move.from_version is None:
        return f"{move.name} {move.to_version} (put back)"
    same = move.from_version == move.to_version
    before = f"{move.from_version} {move.from_build}" if same else move.from_version
    after = f"{move.to_version} {move.to_build}" if same else move.to_version
    return f"{move.name} {before} -> {after}"


UNDONE = "already undone: every package condafix changed is back as it was"
#: why a requested spec still goes after ``conda install --revision N`` (real conda 26.7.1 keeps it,
#: and its next ``conda install`` moves the env back to it: tests/test_conda_rollback.py)
KEPT_SPEC = "conda keeps it through `conda install --revision`, and its next install {} the fix back"


def restore_lines(plan: Any, *, done: bool) -> list[str]:
    """The rollback's words, for the text view (after the later changes it names itself)."""
    if plan.already_undone and not plan.has_work:
        return [f"snapshot {plan.snapshot}: {UNDONE}; nothing to do"]
    if not plan.has_work:
        return [f"the environment already matches snapshot {plan.snapshot}: nothing to do"]
    out = []
    if plan.already_undone:
        out.append(f"snapshot {plan.snapshot}: {UNDONE}; what is left of condafix's change:")
    elif plan.packages:
        verb = "put back" if done else "would put back"
        out.append(f"snapshot {plan.snapshot}: {verb} {plural(len(plan.packages), 'package')} as before the change:")
        out += [f"  {move_text(m)}" for m in plan.packages]
    else:
        out.append(f"snapshot {plan.snapshot}:")
    out += [_pin_words(pin, done) for pin in plan.pins_removed]
    for spec in plan.specs_restored:
        kept = KEPT_SPEC.format("would have brought" if done else "would bring")
        out.append(_spec_words(spec, done) + (f": {kept}" if plan.already_undone else ""))
    if plan.missing:
        missing = ", ".join(plan.missing)
        out.append(f"not in the snapshot's backup: {missing} (from the package cache, else the channel)")
    return out


def _pin_words(pin: str, done: bool) -> str:
    return f"{'removed' if done else 'would remove'} the pin {pin} from conda-meta/pinned"


def _spec_words(spec: str, done: bool) -> str:
    """``remove X`` / ``restore X`` (``RestorePlan.specs_restored``) in words."""
    action, _sp, what = spec.partition(" ")
    verb = {"remove": "removed", "restore": "restored"}.get(action, action) if done else f"would {action}"
    where = "from" if action == "remove" else "in"
    return f"{verb} {what} {where} conda's requested specs (history)"


def _restore(plan: Any, *, done: bool) -> tuple[Finding, ...]:
    verb = "rolled back" if done else "would roll back"
    out = [
        _f(
            "rollback-remove" if m.to_version is None else "rollback-restore",
            "info",
            f"{verb} {move_text(m)}",
            component=m.name,
        )
        for m in plan.packages
    ]
    out += [_f("rollback-pin", "info", _pin_words(pin, done)) for pin in plan.pins_removed]
    out += [_f("rollback-spec", "info", _spec_words(spec, done)) for spec in plan.specs_restored]
    out += [
        _f("rollback-missing", "error", f"{name}: no backup and not in any cache", component=name)
        for name in plan.missing
    ]
    out += [_f("rollback-later-change", "warning", f"changed after condafix's change: {c}") for c in plan.later_changes]
    if plan.already_undone:
        out.insert(0, _f("rollback-already-undone", "ok", UNDONE + ("" if plan.has_work else "; nothing to do")))
    return tuple(out) or (_f("rollback-nothing", "ok", "nothing to roll back"),)


def findings_for(view: str, result: Any) -> tuple[Finding, ...]:
    """The findings of one command's result, by the text view it is rendered as."""
    own = getattr(result, "findings", None)
    if isinstance(own, tuple) and all(isinstance(f, Finding) for f in own):
        return own  # doctor, proxy (and explain where it reports its own)
    if view in ("plan", "plan-applying"):
        return _plan(result)
    if view == "applied":
        applied = result.applied
        message = f"changed {plural(applied.changes, 'package')} through {applied.via}; snapshot {applied.snapshot}"
        return (_f("applied", "ok", message),)
    if view == "env":
        return _env_file(result)
    if view == "lock":
        return _lock(result)
    if view in ("restore-preview", "restore"):
        return _restore(result, done=view == "restore")
    if view == "snapshots":
        return tuple(_f("snapshot", "info", f"{s.id} {s.state}: {s.reason}") for s in result)
    if view == "explain":
        severity: Severity = "error" if result.recognised and result.newer in ("toolkit", "driver") else "info"
        message = result.title or ("not recognised" if not result.recognised else result.family or "")
        return (_f(f"explain-{result.family or 'unrecognised'}", severity, message),)
    return ()
