"""Drawing the progress model (owned by ``render``, the only printer; nothing else imports this).

Two faces of one :class:`~condafix.progress.Reporter`:

* live (stderr is a terminal, ``CI`` unset): a transient rich view with the phase and its
  spinner, one bar per package download, the total with rate and ETA, repodata sources, link and
  unlink counts, and a stall line; each finished phase leaves one line above it.
* plain (CI, pipes, log files): no bars, one line per finished phase with its figures, and a
  line when a transfer stalls or resumes.

Every line goes through the redactor. rich is imported only when the live view is used.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, TextIO

from condafix import progress
from condafix.progress import Reporter
from condafix.progress_view import PhaseSummary, Stall, View, duration, plural, size
from condafix.redact import redact

if TYPE_CHECKING:
    from rich.console import RenderableType

Mode = Literal["off", "plain", "live"]
TICK_S = 0.25
MAX_ROWS = 8


def choose_mode(stream: TextIO, *, enabled: bool, env: dict[str, str] | None = None) -> Mode:
    """Live bars only on a real terminal outside CI; ``TERM=dumb`` gets plain lines."""
    env = dict(os.environ) if env is None else env
    if not enabled:
        return "off"
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if env.get("CI") or not tty or env.get("TERM") == "dumb":
        return "plain"
    return "live"


def stall_text(stall: Stall) -> str:
    return f"waiting: no data for {duration(stall.seconds)} from {redact(stall.url)}"


def summary_lines(event: object) -> list[str]:
    """The plain lines for one model event (phase summary, stall, resumed)."""
    if isinstance(event, PhaseSummary):  # a failed phase: its error says it, once
        return [redact(line) for line in event.lines()] if event.ok else []
    if isinstance(event, Stall):
        return [stall_text(event)]
    if isinstance(event, tuple) and len(event) == 2 and event[0] == "resumed" and isinstance(event[1], Stall):
        return [f"resumed: data flows again from {redact(event[1].url)}"]
    return []


@contextlib.contextmanager
def session(stream: TextIO, mode: Mode) -> Iterator[Reporter]:
    """A Reporter wired to ``stream`` (and the active one while the block runs)."""
    with _session(stream, mode) as reporter, progress.active(reporter):
        yield reporter


@contextlib.contextmanager
def _session(stream: TextIO, mode: Mode) -> Iterator[Reporter]:
    """A ticker thread drives stall checks and pollers."""
    if mode == "off":
        yield Reporter()
        return
    if mode == "plain":
        lock = threading.Lock()

        def write(event: object) -> None:
            lines = summary_lines(event)
            if lines:
                with lock:
                    stream.write("".join(line + "\n" for line in lines))
                    stream.flush()

        reporter = Reporter(listener=write)
        with _ticking(reporter):
            yield reporter
        return
    with _live(stream) as (reporter, _live_obj):
        yield reporter


@contextlib.contextmanager
def _ticking(reporter: Reporter) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(TICK_S):
            reporter.tick()

    thread = threading.Thread(target=run, name="condafix-progress", daemon=True)
    thread.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        thread.join(timeout=1)
        reporter.end(ok=ok)  # a phase left open (early return, error) still gets its line


@contextlib.contextmanager
def _live(stream: TextIO) -> Iterator[tuple[Reporter, Any]]:
    from rich.console import Console
    from rich.live import Live

    # live mode was chosen because the stream is a terminal; rich must not ask again while the rattler
    # installer's fd 2 goes through a pipe (backends.rattler.install.rust_panics_held)
    console = Console(file=stream, highlight=False, soft_wrap=False, force_terminal=True)
    holder: list[Live] = []

    def on_event(event: object) -> None:
        if isinstance(event, PhaseSummary) and holder:
            for line in summary_lines(event):
                holder[0].console.print(f"[green]✓[/] {_escape(line)}")

    reporter = Reporter(listener=on_event)
    view = _LiveView(reporter)
    with Live(view, console=console, transient=True, refresh_per_second=8, redirect_stdout=False) as live:
        holder.append(live)
        with _ticking(reporter):
            yield reporter, live


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class _LiveView:
    """A rich renderable rebuilt from ``reporter.view()`` on every refresh."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        from rich.spinner import Spinner

        self.spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        view = self.reporter.view()
        if view.kind is None:
            return Text("")
        head = Table.grid(padding=(0, 1))
        head.add_column()
        head.add_column()
        label = view.detail or view.label  # the detail is the whole sentence ("solving with cuda-version=12.4 (2/5)")
        self.spinner.update(text=Text(f"{redact(label)}  {duration(view.elapsed)}"))
        head.add_row(self.spinner, "")
        parts: list[RenderableType] = [head]
        rows = _transfer_table(view)
        if rows is not None:
            parts.append(rows)
        extra = _counts_line(view)
        if extra:
            parts.append(Text(f"  {extra}", style="dim"))
        if view.stall is not None:
            parts.append(Text(f"  {stall_text(view.stall)}", style="yellow"))
        return Group(*parts)


def _transfer_table(view: View) -> Any:
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    downloads = [t for t in view.transfers if t.key.startswith("pkg:")]
    sources = [t for t in view.transfers if t.key.startswith("src:")]
    if not downloads and not sources:
        return None
    table = Table.grid(padding=(0, 2))
    for _ in range(4):
        table.add_column()
    active = [t for t in downloads if not t.finished] + [t for t in downloads if t.finished]
    for t in active[:MAX_ROWS]:
        total = t.total or None
        figures = f"{size(t.done)} / {size(total)}" if total else size(t.done)
        mark = "[green]✓[/]" if t.finished else ""
        bar = ProgressBar(total=total, completed=t.done, width=30)
        table.add_row(f"  {_escape(redact(t.label))}", bar, figures, mark)
    if len(active) > MAX_ROWS:
        table.add_row(f"  … {len(active) - MAX_ROWS} more", "", "", "")
    if downloads:
        done = sum(1 for t in downloads if t.finished)
        figures = f"{size(view.done_bytes)} / {size(view.total_bytes)}" if view.total_bytes else size(view.done_bytes)
        speed = f"{size(view.rate)}/s" if view.rate else ""
        eta = f"ETA {_clock(view.eta)}" if view.eta is not None else "ETA -:--"
        table.add_row(
            f"  [bold]total[/] {done}/{plural(len(downloads), 'package')}",
            ProgressBar(total=view.total_bytes, completed=view.done_bytes, width=30),
            figures,
            f"{speed}  {eta}".strip(),
        )
    for t in sources[:MAX_ROWS]:
        what = plural(t.requests, "request")
        got = f", {size(t.done)}" if t.done else ""
        mark = "[green]✓[/]" if t.finished else ""
        table.add_row(f"  repodata {_escape(redact(t.label))}", "", f"{what}{got}", mark)
    if sources and view.done_bytes and not downloads:
        table.add_row("  [bold]received[/]", "", size(view.done_bytes), "")
    return table


def _counts_line(view: View) -> str:
    if view.kind == "install" and (view.linked or view.unlinked or view.operations):
        return f"linked {view.linked}, unlinked {view.unlinked} ({view.operations} operations)"
    if view.kind == "snapshot" and view.files:
        return f"backed up {plural(view.files, 'file')} ({size(view.file_bytes)})"
    return ""


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
