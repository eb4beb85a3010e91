"""The only module that prints: human text (rich, honouring NO_COLOR) or a versioned JSON envelope.

It is also the one place where credentials are removed: models keep raw URLs, and everything that
leaves the process here (every text line, every JSON string and key, every error, hint, progress
message and log record) goes through :func:`condafix.redact.redact` first. An :class:`Output`
binds the two streams a command writes to, so the conda plugin can print through conda's streams
and still be redacted; the module-level functions take ``out=`` and default to this process's
stdout and stderr.

rich is imported inside the functions so that importing the CLI stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

from condafix import __version__
from condafix.cli import summary
from condafix.errors import CondafixError
from condafix.progress_view import plural
from condafix.redact import RedactingWriter, redact, redact_json
from condafix.schema import to_jsonable

#: the version of every ``--json`` document (v2: ``status`` and ``findings`` in the envelope)
SCHEMA_VERSION = "v3"

if TYPE_CHECKING:
    from rich.console import Console

    from condafix.change.apply import Applied
    from condafix.change.restore import RestorePlan
    from condafix.change.snapshot import SnapshotInfo
    from condafix.diagnose.explain import Explanation
    from condafix.diagnose.verdict import DoctorReport
    from condafix.files.edits import EnvFileResult
    from condafix.files.lockfile import LockRun
    from condafix.findings import Finding
    from condafix.plan.planner import Plan
    from condafix.progress import Reporter
    from condafix.proxy import ProxyReport

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}


class Output:
    """Where one command's output goes: ``stdout``/``stderr`` streams (default: this process's, looked
    up at each write so pytest's capture and conda's streams work). Everything written is redacted."""

    def __init__(self, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.stdout = RedactingWriter(stdout if stdout is not None else lambda: sys.stdout)
        self.stderr = RedactingWriter(stderr if stderr is not None else lambda: sys.stderr)

    def text(self, line: str = "", *, err: bool = False) -> None:
        """One plain line (no markup), redacted."""
        stream = self.stderr if err else self.stdout
        stream.write(line if line.endswith("\n") else line + "\n")
        stream.flush()

    def console(self, *, err: bool = False) -> Console:
        """A rich console that writes through the redactor (width 160 off a terminal: no wrapping)."""
        from rich.console import Console

        stream = self.stderr if err else self.stdout
        width = None if stream.isatty() else 160  # pipes and CI logs: do not wrap at 80 columns
        return Console(file=cast(IO[str], stream), highlight=False, soft_wrap=True, width=width)

    def json(self, kind: str, payload: object, exit_code: int, findings: tuple[Finding, ...] = ()) -> None:
        """One JSON document on stdout: ``{"schema": "condafix/<kind>/v3", ...}``, every string redacted.

        v2: every document carries ``status`` (ok, warning, error: its worst finding) and ``findings``.
        """
        doc = {
            "schema": f"condafix/{kind}/{SCHEMA_VERSION}",
            "condafix_version": __version__,
            "exit_code": exit_code,
            "status": summary.status_of(findings),
            "findings": redact_json(to_jsonable(findings)),
            "result": redact_json(to_jsonable(payload)),
        }
        self.stdout.write(json.dumps(doc, indent=2) + "\n")
        self.stdout.flush()

    def error(self, kind: str, error: CondafixError, as_json: bool = False) -> None:
        """One line on stderr (plus hints); in --json mode also an error document on stdout."""
        if as_json:
            doc = {
                "schema": f"condafix/{kind}/{SCHEMA_VERSION}",
                "condafix_version": __version__,
                "exit_code": error.exit_code,
                "status": "error",
                "error": {
                    "summary": redact(error.summary),
                    "hints": [{"code": h.code, "text": redact(h.text)} for h in error.hints],
                },
            }
            self.stdout.write(json.dumps(doc, indent=2) + "\n")
            self.stdout.flush()
        err = self.console(err=True)
        err.print(f"[bold red]error:[/] {_escape(error.summary)}")
        for hint in error.hints:
            err.print(f"\n[cyan]hint:[/] {_escape(hint.text)}")

    def internal_error(self, exc: BaseException) -> None:
        """A bug, not bad input: one line, redacted (the message may quote a URL)."""
        self.text(f"condafix: internal error: {type(exc).__name__}: {exc} (set CONDAFIX_DEBUG=1 for details)", err=True)


def _out(out: Output | None) -> Output:
    return out if out is not None else Output()


def console(stderr: bool = False, *, out: Output | None = None) -> Console:
    return _out(out).console(err=stderr)


_QUIET = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: results and errors only, no progress and no notes."""
    global _QUIET
    _QUIET = quiet


def quiet() -> bool:
    return _QUIET


@contextlib.contextmanager
def progress(*, enabled: bool = True, out: Output | None = None) -> Iterator[Reporter]:
    """Progress of long work on stderr: live bars on a terminal, one line per finished phase in CI
    and pipes, nothing with ``--quiet``. Yields a Reporter, which core code also takes as ``step``."""
    from condafix.cli import render_progress

    # the stream resolved now: rich's Live points sys.stderr at itself while it runs (other stderr
    # writes then show above the bars), so a writer that looks sys.stderr up would loop
    stream = cast(TextIO, RedactingWriter(_out(out).stderr.target))
    mode = render_progress.choose_mode(stream, enabled=enabled and not _QUIET)
    with render_progress.session(stream, mode) as reporter:
        yield reporter


class _RedactingHandler(logging.Handler):
    """Log records (ours, rattler's, Python warnings) as redacted lines on the output's stderr."""

    def __init__(self, out: Output) -> None:
        super().__init__(logging.WARNING)
        self.out = out
        self.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ours = record.name == "condafix" or record.name.startswith("condafix.")
            self.out.text(f"note: {record.getMessage()}" if ours else self.format(record), err=True)
        except Exception:  # logging must never break the command
            self.handleError(record)


def capture_logs(out: Output | None = None) -> None:
    """Route logging and ``warnings`` through the redactor (no other handler writes to our streams)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _RedactingHandler):
            root.removeHandler(handler)
    root.addHandler(_RedactingHandler(_out(out)))
    logging.captureWarnings(True)


def print_json(
    kind: str, payload: object, exit_code: int, *, findings: tuple[Finding, ...] = (), out: Output | None = None
) -> None:
    """One JSON document on stdout, every string redacted (see :meth:`Output.json`)."""
    _out(out).json(kind, payload, exit_code, findings)


def print_error(kind: str, error: CondafixError, as_json: bool, *, out: Output | None = None) -> None:
    """One line on stderr (plus hints); in --json mode also an error document on stdout."""
    _out(out).error(kind, error, as_json)


def print_data(text: str, *, out: Output | None = None) -> None:
    """The user's own file content (``env - --write``): passed through verbatim, it is data, not a report."""
    target = _out(out).stdout.target
    target.write(text)
    target.flush()


def _escape(text: object) -> str:
    """Redacted, then escaped for rich markup: every value that goes into a line passes here."""
    from rich.markup import escape

    return escape(redact(str(text)))


def doctor_text(report: DoctorReport, *, out: Output | None = None) -> None:
    """The doctor report for a human: driver, env, components, findings, fix (``cli.plain``: no rich)."""
    from condafix.cli import plain

    con = plain.Console(cast(IO[str], _out(out).stdout))

    def e(text: object) -> str:
        return plain.escape(redact(str(text)))

    drv = report.driver
    if drv.cuda is not None:
        extra = f", driver {drv.driver_version}" if drv.driver_version else ""
        how = next((a.detail for a in drv.attempts if a.source == drv.source and a.ok), None)
        con.print(
            f"[bold]Driver[/]   CUDA {drv.cuda} (from {e(drv.source or '?')}{': ' + e(how) if how else ''}){e(extra)}"
        )
        for gpu in drv.gpus:
            cap = f" (compute capability {gpu.compute_capability})" if gpu.compute_capability else ""
            con.print(f"         GPU {gpu.index}: {e(gpu.name)}{cap}")
        if drv.cuda_arch:
            con.print(f"         __cuda_arch={drv.cuda_arch}")
    elif drv.override:
        con.print(f"[bold]Driver[/]   none: {e(drv.source or '')} is empty, so this host is treated as having no GPU")
    else:
        con.print("[bold red]Driver   NO NVIDIA DRIVER FOUND[/]")
    if drv.attempts:
        for attempt in drv.attempts:
            mark = "[green]ok[/]  " if attempt.ok else "[red]fail[/]" if attempt.tried else "skip"
            said = f" -> CUDA {attempt.cuda}" if attempt.cuda else ""
            con.print(f"         {mark} {attempt.source:<10} {e(attempt.detail)}{said}")
    env = report.env
    if env.prefix is None:
        con.print("[bold]Env[/]      none selected (no $CONDA_PREFIX); pass -n NAME or -p PATH")
    else:
        cuda = f", CUDA {report.env_cuda}" if report.env_cuda else ", no CUDA toolkit"
        users = [p.consumer for p in report.compile_paths if p.uses_driver_jit]  # who hands PTX to the driver
        jit = f", PTX-JIT users: {e(', '.join(users))}" if users else ""
        con.print(
            f"[bold]Env[/]      {e(env.prefix)} ({env.kind}, via {e(env.selected_by or '?')}, "
            f"{plural(env.package_count, 'package')}{cuda}{jit})"
        )
    for path in report.compile_paths:
        style = _STYLE[path.severity]
        con.print(f"[bold]Compile[/]  {e(path.consumer)} {e(path.version)}: {path.path} -> [{style}]{path.outcome}[/]")
    if report.verdicts:
        # each reason once: a component with a finding is explained by that finding's line below
        explained = {f.component for f in report.findings if f.component}
        rows = [
            (
                e(v.name), e(v.version), v.source, v.cuda or "-", f"[{_STYLE[v.severity]}]{v.verdict}[/]",
                "see below" if v.name in explained else e(v.reason),
            )
            for v in report.verdicts
        ]  # fmt: skip
        con.table(("component", "version", "from", "CUDA", "verdict", "why"), rows)
    for finding in report.findings:
        con.print(f"[{_STYLE[finding.severity]}]{finding.severity}:[/] {e(finding.message)}")
        for hint in finding.hints:
            con.print(f"  [cyan]hint:[/] {e(hint.text)}")
    if report.fix is not None:
        label = "" if report.fix.checked else " [yellow](unchecked)[/]"
        con.print(f"\n[bold]Fix[/]: {e(report.fix.summary)}{label}")
        if report.fix.checked:
            con.print(f"  [dim]checked: {e(report.fix.checked)}[/]")
        for command in report.fix.commands:
            con.print(f"  [bold cyan]{e(command)}[/]")
        for alt in report.fix.alternatives:
            con.print(f"  or: {e(alt)}")
    style = {"ok": "green", "warning": "yellow", "mismatch": "bold red"}[report.status]
    con.print(f"\nstatus: [{style}]{report.status}[/]")
    con.flush()


def explain_text(expl: Explanation, *, out: Output | None = None) -> None:
    """An explanation in two or three lines, then the fix."""
    con = console(out=out)
    e = _escape
    if not expl.recognised:
        con.print(f"[yellow]unknown:[/] {e(expl.lines[0])}")
        return
    con.print(f"[bold]{e(expl.title or '')}[/] [dim]({expl.family})[/]")
    if expl.component or expl.culprit:
        con.print(f"  refused by: [bold]{e(expl.component or '?')}[/]; to change: [bold]{e(expl.culprit or '?')}[/]")
    for line in expl.lines:
        con.print(f"  {e(line)}")
    if expl.newer in ("toolkit", "driver"):
        tk = " or ".join(expl.toolkit_cuda) or "?"
        dr = " or ".join(expl.driver_cuda) or "?"
        con.print(f"  newer side: [bold]{expl.newer}[/] (toolkit CUDA {tk}, driver CUDA {dr})")
    shown = [d for d in (f.describe() for f in (expl.facts.items if expl.facts else ())) if d][:8]
    for fact in shown:
        con.print(f"  [dim]read:[/] {e(fact)}")
    for note in expl.notes:
        con.print(f"  [cyan]note:[/] {e(note)}")
    if expl.fixes:
        con.print(f"[bold]Fix[/] [dim]({expl.fix_kind})[/]:" if expl.fix_kind else "[bold]Fix[/]:")
        for fix in expl.fixes:
            con.print(f"  {e(fix)}")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return "-"


def plan_text(plan: Plan, *, applying: bool = False, out: Output | None = None) -> None:
    """The reviewable dry-run: target, table of changes, the pin, and the equivalent command (no rich)."""
    from condafix.cli import plain

    con = plain.Console(cast(IO[str], _out(out).stdout))

    def e(text: object) -> str:
        return plain.escape(redact(str(text)))

    inputs = f" ({'; '.join(plan.target.inputs)})" if len(plan.target.inputs) > 1 else ""
    con.print(f"[bold]Target[/]   CUDA {plan.target.cuda} (from {e(plan.target.source)}){e(inputs)}")
    con.print(f"[bold]Env[/]      {e(plan.prefix)}: CUDA {plan.env_cuda or '-'} ({plan.family or 'no CUDA toolkit'})")
    con.print(f"[bold]Channels[/] {e(', '.join(plan.channels))}")
    con.print(f"[bold]Solver[/]   {e(plan.solver)}")
    if plan.offline:
        age = f"{plan.cache_age_s / 3600:.1f} h old" if plan.cache_age_s is not None else "local channels only"
        con.print(f"[bold]Offline[/]  from the repodata cache ({age})")
    if plan.candidates:
        con.print(f"[bold]Candidates[/] {plan.family} {e(', '.join(plan.candidates))} (from the channel, newest first)")
    failed = [a for a in plan.attempts if not a.solved]
    if failed:
        con.print(f"  [yellow]{e(failed[0].pin)} does not solve:[/] {e(failed[0].detail)}")
    if len(failed) > 1:
        con.print(f"  [yellow]nor do[/] {e(', '.join(a.pin for a in failed[1:]))} (details in --json)")
    if plan.changes:
        rows = []
        for c in plan.changes:
            before = f"{c.from_version} {c.from_build}" if c.from_version else "-"
            after = f"{c.to_version} {c.to_build}" if c.to_version else "-"
            style = {"downgrade": "yellow", "upgrade": "cyan", "install": "green", "remove": "red"}.get(c.action, "")
            action = f"[{style}]{c.action}[/]" if style else c.action
            rows.append((action, e(c.name), e(before), e(after), e(c.channel or "-"), _size(c.size)))
        con.table(("", "package", "from", "to", "channel", "download"), rows)
        stay = "stays as it is" if plan.unchanged == 1 else "stay as they are"
        con.print(f"{plural(plan.unchanged, 'other package')} {stay}")
    style = {"change": "bold", "nothing-to-do": "green", "blocked": "bold red"}[plan.status]
    con.print(f"\n[{style}]{plan.status}[/]: {e(plan.reason)}")
    if plan.pin:
        con.print(f"spec added: [bold]{e(plan.pin)}[/]")
    for command in plan.commands:
        con.print(f"  [bold cyan]{e(command)}[/]")
    if plan.status == "change" and not applying:
        con.print("dry run: nothing was changed (pass --apply to change the env)")
    con.flush()


def envfile_text(result: EnvFileResult, *, out: Output | None = None) -> None:
    """The unified diff (coloured on a TTY), the group's pin and how it was checked, what was only reported."""
    con = console(out=out)
    e = _escape
    if result.diff:
        if con.is_terminal:
            from rich.syntax import Syntax

            con.print(Syntax(result.diff, "diff", theme="ansi_dark", background_color="default"))
        else:
            con.file.write(result.diff if result.diff.endswith("\n") else result.diff + "\n")
            con.file.flush()
    for edit in result.edits:
        con.print(f"  line {edit.line}: {e(edit.reason)}")
    for note in result.notes:
        where = f"line {note.line}: " if note.line else ""
        con.print(f"[yellow]note:[/] {e(where + (note.spec + ': ' if note.spec else '') + note.message)}")
    if result.status == "refused":
        con.print(f"[bold red]refused:[/] {e(result.path)}: {e(result.reason)}")
        for attempt in result.attempts[1:4]:
            con.print(f"  also: {e(attempt)}")
        con.print("nothing changed")
        return
    if result.pin:
        con.print(f"target CUDA {result.target_cuda}: {e(result.pin)} ({e(result.checked)})")
    if result.written:
        con.print(f"[green]wrote[/] {e(result.path)} (backup: {e(result.backup or '-')})")
    elif result.changed:
        con.print("dry run: nothing was written (pass --write)")
    else:
        lead = f"nothing to change for CUDA {result.target_cuda}: " if result.target_cuda else ""  # "": no CUDA needed
        con.print(f"{e(result.path)}: {lead}{e(result.reason)}")


def lock_text(run: LockRun, *, out: Output | None = None) -> None:
    """Per lockfile: a table of env, platform, locked CUDA and verdict; then the manifest pin and the re-lock.
    ``cli.plain``'s table, as doctor's and the plan's: rich's padded every line to its widest."""
    from condafix.cli import plain

    con = plain.Console(cast(IO[str], _out(out).stdout))

    def e(text: object) -> str:
        return plain.escape(redact(str(text)))

    con.print(f"[bold]Target[/]   CUDA {run.target_cuda} (from {e(run.target_source)})")
    styles = {"ok": "green", "no-cuda": "dim", "warning": "yellow", "mismatch": "bold red"}
    for report in run.reports:
        con.print(f"\n[bold]{e(report.path)}[/] ({e(report.format)})")
        rows = []
        for env in report.envs:  # pixi: its verdict in pixi's words, its platform as the manifest names it
            where = env.platform + (f" ({env.lock_platform})" if env.lock_platform not in (None, env.platform) else "")
            verdict = f"[{styles[env.verdict]}]{e(env.runs or env.verdict)}[/]"
            rows.append((e(env.env), e(where), env.cuda or "-", e(env.cuda_from or "-"), verdict, e(env.reason)))
        con.table(("env", "platform", "CUDA", "from", "verdict", "why"), rows)
        if checks := dict.fromkeys(e(env.check) for env in report.envs if env.check and env.runs != "runs as resolved"):
            con.print(f"pixi's own check for CUDA {e(report.target_cuda)}, on any machine:\n  " + "\n  ".join(checks))
        for env in report.envs:
            if env.pypi_cuda and env.cuda:
                con.print(
                    f"  PyPI in {e(env.env)} ({e(env.platform)}): {e(', '.join(env.pypi_cuda))} (reported, not judged)"
                )
        if report.fix:
            con.print("lockfiles are not rewritten; change the manifest pin, then re-lock:")
            for line in report.fix:
                con.print(f"  {e(line)}")
        if report.relock:
            con.print(f"  [bold cyan]{e(report.relock)}[/]")
        style = {"ok": "green", "warning": "yellow", "mismatch": "bold red"}[report.status]
        con.print(f"status: [{style}]{report.status}[/]")
    con.flush()


def proxy_text(report: ProxyReport, *, out: Output | None = None) -> None:
    """Each setting (redacted), then one line per problem with what to do."""
    con = console(out=out)
    e = _escape
    if not report.settings:
        con.print("no proxy or CA-bundle settings found (environment and .condarc files)")
    for setting in report.settings:
        con.print(f"  {e(setting.name):<26} {e(setting.value)}  [dim]({e(setting.source)})[/]")
    for finding in report.findings:
        con.print(f"[{_STYLE[finding.severity]}]{finding.severity}:[/] {e(finding.message)}")
        for hint in finding.hints:
            con.print(f"  [cyan]hint:[/] {e(hint.text)}")
    if report.broken:
        con.print(f"condafix drops {e(', '.join(report.broken))} for its requests (`condafix --keep-proxy …` keeps)")
    if report.ok and not report.findings and report.settings:
        con.print("[green]all settings look usable[/]")


def applied_text(applied: Applied, prefix: str, *, out: Output | None = None) -> None:
    con = console(out=out)
    con.print(
        f"[green]applied[/] {plural(applied.changes, 'change')} with {_escape(applied.via)}; "
        f"snapshot {_escape(applied.snapshot)}"
    )
    for line in applied.pinned:
        con.print(f"pinned [bold]{_escape(line)}[/] in conda-meta/pinned: conda keeps it (skip with --no-pin)")
    import shlex

    con.print(f"undo with: [bold cyan]condafix rollback -p {_escape(shlex.quote(prefix))}[/]")
    if applied.after is not None:
        con.print("\n[bold]doctor, after the change[/]:")
        doctor_text(applied.after, out=out)


def restore_text(plan: RestorePlan, *, dry_run: bool, out: Output | None = None) -> None:
    """What a rollback would do or did, each package with its versions (words: ``summary.restore_lines``)."""
    con = console(out=out)
    for change in plan.later_changes:
        con.print(f"[yellow]changed after condafix's change[/] (rollback reverts it): {_escape(change)}")
    for line in summary.restore_lines(plan, done=not dry_run):
        con.print(_escape(line))


def snapshots_text(snapshots: list[SnapshotInfo], *, out: Output | None = None) -> None:
    con = console(out=out)
    if not snapshots:
        con.print("no condafix snapshots in this environment")
    for snap in snapshots:
        con.print(f"{_escape(snap.id)}  {snap.state:<12} {plural(snap.packages, 'package')}  {_escape(snap.reason)}")


def outcome(result: Any, *, as_json: bool, out: Output | None = None) -> None:
    """Render a ``commands.Outcome``: its JSON document, or the text view it names."""
    if result.view == "stdout":  # `env - --write`: the file itself is the output
        print_data(result.result.stdout_text or "", out=out)
    elif as_json:
        findings = summary.findings_for(result.view or result.kind, result.result)
        print_json(result.kind, result.result, result.code, findings=findings, out=out)
    else:
        show(result.view or result.kind, result.result, out=out)


def show(view: str, payload: Any, *, out: Output | None = None) -> None:
    """The text view of one result; also the ``Ui.show`` of the typer app (the plan before asking)."""
    if view == "doctor":
        doctor_text(payload, out=out)
    elif view == "explain":
        explain_text(payload, out=out)
    elif view in ("plan", "plan-applying"):
        plan_text(payload, applying=view == "plan-applying", out=out)
    elif view == "applied":
        applied_text(payload.applied, payload.plan.prefix, out=out)
    elif view == "env":
        envfile_text(payload, out=out)
    elif view == "lock":
        lock_text(payload, out=out)
    elif view == "proxy":
        proxy_text(payload, out=out)
    elif view == "snapshots":
        snapshots_text(payload, out=out)
    elif view in ("restore-preview", "restore"):
        restore_text(payload, dry_run=view == "restore-preview", out=out)
    else:
        raise ValueError(f"no text view {view!r}")


def doctor_compact(
    report: DoctorReport, *, verbose: bool = False, fixer: str | None = None, out: Output | None = None
) -> None:
    """A few lines for ``conda doctor``: the verdict, the worst findings, and how to fix it."""
    con = console(out=out)
    e = _escape
    mark = {"ok": "[green]✅[/]", "warning": "[yellow]⚠️[/] ", "mismatch": "[red]❌[/]"}[report.status]
    drv = report.driver
    driver = f"driver CUDA {drv.cuda} (from {drv.source})" if drv.cuda else "no NVIDIA driver found"
    env = f"env CUDA {report.env_cuda}" if report.env_cuda else "no CUDA toolkit in the env"
    con.print(f"{mark} CUDA (condafix): {report.status}: {e(env)}, {e(driver)}")
    shown = [f for f in report.findings if verbose or f.severity in ("warning", "error")]
    for finding in shown:
        con.print(f"  [{_STYLE[finding.severity]}]{finding.severity}:[/] {e(finding.message)}")
    if report.status != "ok" and report.fix is not None:
        if fixer:
            con.print(f"  fix: [bold cyan]{e(fixer)}[/] (plans with conda's solver and asks first)")
        for command in report.fix.commands:
            con.print(f"  or: {e(command)}")
    con.print("")


def guard_warning(finding: Finding, *, out: Output | None = None) -> None:
    """conda's post-solve guard: a warning block on stderr, between conda's own solve and plan output."""
    target = _out(out)
    target.text("", err=True)
    target.text(f"Warning (condafix): {finding.message}", err=True)
    for hint in finding.hints:
        target.text(f"  {hint.text}", err=True)
    target.text("", err=True)
