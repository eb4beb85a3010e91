"""The only module that prints: human text (rich, honouring NO_COLOR) or a versioned JSON envelope.

rich is imported inside the functions so that importing the CLI stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from condafix import __version__
from condafix.errors import CondafixError
from condafix.redact import redact

if TYPE_CHECKING:
    from rich.console import Console

    from condafix.envfile import EnvFileResult
    from condafix.explain import Explanation
    from condafix.planner import Plan
    from condafix.proxy import ProxyReport
    from condafix.transaction import Applied, RestorePlan, SnapshotInfo
    from condafix.verdict import DoctorReport

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160  # pipes and CI logs: do not wrap at 80 columns
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


@contextlib.contextmanager
def progress(*, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A transient rich spinner on stderr (TTY only) that core code advances with step(message)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _message: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda message: bar.update(task, description=message)


def to_jsonable(obj: object) -> Any:
    """Dataclasses -> dicts (tuples -> lists); the dataclasses are the JSON schema."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)
        }
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def print_json(kind: str, payload: object, exit_code: int) -> None:
    """One JSON document on stdout: ``{"schema": "condafix/<kind>/v1", ...}``."""
    doc = {
        "schema": f"condafix/{kind}/v1",
        "condafix_version": __version__,
        "exit_code": exit_code,
        "result": to_jsonable(payload),
    }
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def print_error(kind: str, error: CondafixError, as_json: bool) -> None:
    """One line on stderr (plus hints); in --json mode also an error document on stdout."""
    if as_json:
        doc = {
            "schema": f"condafix/{kind}/v1",
            "condafix_version": __version__,
            "exit_code": error.exit_code,
            "error": {
                "summary": redact(error.summary),
                "hints": [{"code": h.code, "text": redact(h.text)} for h in error.hints],
            },
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    err = console(stderr=True)
    err.print(f"[bold red]error:[/] {_escape(redact(error.summary))}")
    for hint in error.hints:
        err.print(f"\n[cyan]hint:[/] {_escape(redact(hint.text))}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def doctor_text(report: DoctorReport) -> None:
    """The doctor report for a human: driver, env, components, findings, fix."""
    out = console()
    e = _escape
    drv = report.driver
    if drv.cuda is not None:
        extra = f", driver {drv.driver_version}" if drv.driver_version else ""
        how = next((a.detail for a in drv.attempts if a.source == drv.source and a.ok), None)
        out.print(
            f"[bold]Driver[/]   CUDA {drv.cuda} (from {e(drv.source or '?')}{': ' + e(how) if how else ''}){e(extra)}"
        )
        for gpu in drv.gpus:
            cap = f" (compute capability {gpu.compute_capability})" if gpu.compute_capability else ""
            out.print(f"         GPU {gpu.index}: {e(gpu.name)}{cap}")
        if drv.cuda_arch:
            out.print(f"         __cuda_arch={drv.cuda_arch}")
    elif drv.override:
        out.print(f"[bold]Driver[/]   none: {e(drv.source or '')} is empty, so this host is treated as having no GPU")
    else:
        out.print("[bold red]Driver   NO NVIDIA DRIVER FOUND[/]")
    if drv.attempts:
        for attempt in drv.attempts:
            mark = "[green]ok[/]  " if attempt.ok else "[red]fail[/]" if attempt.tried else "skip"
            said = f" -> CUDA {attempt.cuda}" if attempt.cuda else ""
            out.print(f"         {mark} {attempt.source:<10} {e(attempt.detail)}{said}")
    env = report.env
    if env.prefix is None:
        out.print("[bold]Env[/]      none selected (no $CONDA_PREFIX); pass -n NAME or -p PATH")
    else:
        cuda = f", CUDA {report.env_cuda}" if report.env_cuda else ", no CUDA toolkit"
        jit = f", PTX-JIT users: {', '.join(report.jit_consumers)}" if report.jit_consumers else ""
        out.print(
            f"[bold]Env[/]      {e(env.prefix)} ({env.kind}, via {e(env.selected_by or '?')}, "
            f"{env.package_count} packages{cuda}{jit})"
        )
    if report.verdicts:
        from rich.table import Table

        table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2))
        for column in ("component", "version", "from", "CUDA", "verdict", "why"):
            table.add_column(column)
        for v in report.verdicts:
            style = _STYLE[v.severity]
            table.add_row(e(v.name), e(v.version), v.source, v.cuda or "-", f"[{style}]{v.verdict}[/]", e(v.reason))
        out.print(table)
    for finding in report.findings:
        out.print(f"[{_STYLE[finding.severity]}]{finding.severity}:[/] {e(finding.message)}")
    if report.fix is not None:
        out.print(f"\n[bold]Fix[/]: {e(report.fix.summary)}")
        for command in report.fix.commands:
            out.print(f"  [bold cyan]{e(command)}[/]")
        for alt in report.fix.alternatives:
            out.print(f"  or: {e(alt)}")
    style = {"ok": "green", "warning": "yellow", "mismatch": "bold red"}[report.status]
    out.print(f"\nstatus: [{style}]{report.status}[/]")


def explain_text(expl: Explanation) -> None:
    """An explanation in two or three lines, then the fix."""
    out = console()
    e = _escape
    if not expl.recognised:
        out.print(f"[yellow]unknown:[/] {e(expl.lines[0])}")
        return
    out.print(f"[bold]{e(expl.title or '')}[/] [dim]({expl.family})[/]")
    for line in expl.lines:
        out.print(f"  {e(line)}")
    if expl.newer in ("toolkit", "driver"):
        tk = " or ".join(expl.toolkit_cuda) or "?"
        dr = " or ".join(expl.driver_cuda) or "?"
        out.print(f"  newer side: [bold]{expl.newer}[/] (toolkit CUDA {tk}, driver CUDA {dr})")
    for note in expl.notes:
        out.print(f"  [cyan]note:[/] {e(note)}")
    if expl.fixes:
        out.print("[bold]Fix[/]:")
        for fix in expl.fixes:
            out.print(f"  {e(fix)}")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return "-"


def plan_text(plan: Plan, *, applying: bool = False) -> None:
    """The reviewable dry-run: target, table of changes, the pin, and the equivalent command."""
    from rich.table import Table

    out = console()
    e = _escape
    inputs = f" ({'; '.join(plan.target.inputs)})" if len(plan.target.inputs) > 1 else ""
    out.print(f"[bold]Target[/]   CUDA {plan.target.cuda} (from {e(plan.target.source)}){e(inputs)}")
    out.print(f"[bold]Env[/]      {e(plan.prefix)}: CUDA {plan.env_cuda or '-'} ({plan.family or 'no CUDA toolkit'})")
    out.print(f"[bold]Channels[/] {e(', '.join(plan.channels))}")
    if plan.offline:
        age = f"{plan.cache_age_s / 3600:.1f} h old" if plan.cache_age_s is not None else "local channels only"
        out.print(f"[bold]Offline[/]  from the repodata cache ({age})")
    if plan.candidates:
        out.print(f"[bold]Candidates[/] {plan.family} {', '.join(plan.candidates)} (from the channel, newest first)")
    failed = [a for a in plan.attempts if not a.solved]
    if failed:
        out.print(f"  [yellow]{e(failed[0].pin)} does not solve:[/] {e(failed[0].detail)}")
    if len(failed) > 1:
        out.print(f"  [yellow]nor do[/] {e(', '.join(a.pin for a in failed[1:]))} (details in --json)")
    if plan.changes:
        table = Table(show_edge=False, box=None, padding=(0, 2), pad_edge=False)
        for column in ("", "package", "from", "to", "channel", "download"):
            table.add_column(column)
        for c in plan.changes:
            before = f"{c.from_version} {c.from_build}" if c.from_version else "-"
            after = f"{c.to_version} {c.to_build}" if c.to_version else "-"
            style = {"downgrade": "yellow", "upgrade": "cyan", "install": "green", "remove": "red"}.get(c.action, "")
            table.add_row(
                f"[{style}]{c.action}[/]" if style else c.action,
                e(c.name),
                e(before),
                e(after),
                e(c.channel or "-"),
                _size(c.size),
            )
        out.print(table)
        out.print(f"{plan.unchanged} other packages stay as they are")
    style = {"change": "bold", "nothing-to-do": "green", "blocked": "bold red"}[plan.status]
    out.print(f"\n[{style}]{plan.status}[/]: {e(plan.reason)}")
    if plan.pin:
        out.print(f"spec added: [bold]{e(plan.pin)}[/]")
    for command in plan.commands:
        out.print(f"  [bold cyan]{e(command)}[/]")
    if plan.status == "change" and not applying:
        out.print("dry run: nothing was changed (pass --apply to change the env)")


def envfile_text(result: EnvFileResult) -> None:
    """The unified diff (coloured on a TTY), the pin and how it was checked, and what was only reported."""
    out = console()
    e = _escape
    if result.diff:
        if out.is_terminal:
            from rich.syntax import Syntax

            out.print(Syntax(result.diff, "diff", theme="ansi_dark", background_color="default"))
        else:
            sys.stdout.write(result.diff if result.diff.endswith("\n") else result.diff + "\n")
    for note in result.notes:
        where = f"line {note.line}: " if note.line else ""
        out.print(f"[yellow]note:[/] {e(where + (note.spec + ': ' if note.spec else '') + note.message)}")
    if result.pin:
        out.print(f"target CUDA {result.target_cuda}: {e(result.pin)} ({e(result.checked)})")
    if result.written:
        out.print(f"[green]wrote[/] {e(result.path)} (backup: {e(result.backup or '')})")
    elif result.changed:
        out.print("dry run: nothing was written (pass --write)")
    elif result.pin:
        out.print(f"{e(result.path)} is already right for CUDA {result.target_cuda}")


def proxy_text(report: ProxyReport) -> None:
    """Each setting (redacted), then one line per problem with what to do."""
    out = console()
    e = _escape
    if not report.settings:
        out.print("no proxy or CA-bundle settings found (environment and .condarc files)")
    for setting in report.settings:
        out.print(f"  {e(setting.name):<26} {e(setting.value)}  [dim]({e(setting.source)})[/]")
    for finding in report.findings:
        out.print(f"[{_STYLE[finding.severity]}]{finding.severity}:[/] {e(finding.message)}")
        out.print(f"  [cyan]hint:[/] {e(finding.fix)}")
    if report.broken:
        out.print(f"condafix drops {', '.join(report.broken)} for its own requests (--keep-proxy to keep them)")
    if report.ok and not report.findings and report.settings:
        out.print("[green]all settings look usable[/]")


def applied_text(applied: Applied, prefix: str) -> None:
    out = console()
    out.print(f"[green]applied[/] {applied.changes} changes with {applied.via}; snapshot {applied.snapshot}")
    out.print(f"undo with: [bold cyan]condafix rollback -p {_escape(prefix)}[/]")
    if applied.after is not None:
        out.print("\n[bold]doctor, after the change[/]:")
        doctor_text(applied.after)


def restore_text(plan: RestorePlan, *, dry_run: bool) -> None:
    out = console()
    verb = "would" if dry_run else "did"
    if not plan.remove and not plan.restore:
        out.print(f"the environment already matches snapshot {plan.snapshot}: nothing to do")
        return
    out.print(
        f"snapshot {plan.snapshot}: {verb} remove {', '.join(plan.remove) or '-'}; "
        f"{verb} restore {', '.join(plan.restore) or '-'}"
    )
    if plan.missing:
        out.print(f"not in the snapshot's backup: {', '.join(plan.missing)} (from the package cache, else the channel)")


def snapshots_text(snapshots: list[SnapshotInfo]) -> None:
    out = console()
    if not snapshots:
        out.print("no condafix snapshots in this environment")
    for snap in snapshots:
        out.print(f"{snap.id}  {snap.state:<12} {snap.packages} packages  {_escape(snap.reason)}")


def outcome(result: Any, *, as_json: bool) -> None:
    """Render a ``commands.Outcome``: its JSON document, or the text view it names."""
    if result.view == "stdout":  # `env - --write`: the file itself is the output
        sys.stdout.write(result.result.stdout_text or "")
    elif as_json:
        print_json(result.kind, result.result, result.code)
    else:
        show(result.view or result.kind, result.result)


def show(view: str, payload: Any) -> None:
    """The text view of one result; also the ``Ui.show`` of the typer app (the plan before asking)."""
    if view == "doctor":
        doctor_text(payload)
    elif view == "explain":
        explain_text(payload)
    elif view in ("plan", "plan-applying"):
        plan_text(payload, applying=view == "plan-applying")
    elif view == "applied":
        applied_text(payload.applied, payload.plan.prefix)
    elif view == "env":
        envfile_text(payload)
    elif view == "proxy":
        proxy_text(payload)
    elif view == "snapshots":
        snapshots_text(payload)
    elif view in ("restore-preview", "restore"):
        restore_text(payload, dry_run=view == "restore-preview")
    else:
        raise ValueError(f"no text view {view!r}")
