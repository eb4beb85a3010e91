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


def _restore(plan: Any, *, done: bool) -> tuple[Finding, ...]:
    verb = ("removed", "restored") if done else ("would remove", "would restore")
    out = [_f("rollback-remove", "info", f"{verb[0]} {name}", component=name) for name in plan.remove] + [
        _f("rollback-restore", "info", f"{verb[1]} {name}", component=name) for name in plan.restore
    ]
    out += [
        _f("rollback-missing", "error", f"{name}: no backup and not in any cache", component=name)
        for name in plan.missing
    ]
    out += [_f("rollback-later-change", "warning", f"changed after condafix's change: {c}") for c in plan.later_changes]
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
        message = f"changed {applied.changes} package(s) through {applied.via}; snapshot {applied.snapshot}"
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
