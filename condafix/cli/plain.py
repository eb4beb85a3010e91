"""A small console for doctor's text: rich's markup subset, ANSI styles, a column table, no rich.

Why not rich here: importing ``rich.console`` cost doctor about a fifth of its start, and doctor's
report is lines, a few styles and one table. Markup is rich's spelling (``[bold red]...[/]``, values
escaped with :func:`escape`), so the views read the same as the rich ones. Styles follow rich's
rules: none off a terminal (pipes, CI logs; ``FORCE_COLOR`` forces them), no colours under
``NO_COLOR`` or ``TERM=dumb`` (bold and dim stay). Off a terminal nothing is wrapped; on one the
table's last column wraps at the terminal's width.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import IO

_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
_COLOURS = {"red", "green", "yellow", "cyan"}
_TAG = re.compile(r"\\\[|\[(/?)([a-z ]{0,40})\]")


def escape(text: str) -> str:
    """Make a value print as itself (rich's ``escape`` spelling: a backslash before ``[``)."""
    return text.replace("[", "\\[")


def wants_styles(stream: IO[str], env: Mapping[str, str]) -> tuple[bool, bool]:
    """(styles, colours) for a stream, by rich's rules."""
    terminal = bool(env.get("FORCE_COLOR")) or (hasattr(stream, "isatty") and stream.isatty())
    if not terminal or env.get("TERM", "").lower() in ("dumb", "unknown"):
        return False, False
    return True, not env.get("NO_COLOR")


def render(markup: str, *, styles: bool, colours: bool = True) -> str:
    """Markup to text: ANSI SGR codes where styles are on, the bare text where not."""
    out: list[str] = []
    stack: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        words = match.group(2).split() if match.group(2) is not None else []
        if match.group(0) != "\\[" and not match.group(1) and not all(w in _SGR for w in words):
            continue  # not a style tag: literal text
        out.append(markup[position : match.start()])
        position = match.end()
        if match.group(0) == "\\[":
            out.append("[")
            continue
        if match.group(1):  # [/]: close the innermost
            if stack:
                stack.pop()
        else:
            stack.append(";".join(_SGR[w] for w in words if colours or w not in _COLOURS))
        if styles:
            codes = ";".join(c for c in stack if c)
            out.append("\x1b[0m" + (f"\x1b[{codes}m" if codes else ""))
    out.append(markup[position:])
    text = "".join(out)
    return text + "\x1b[0m" if styles and stack else text


def visible(markup: str) -> str:
    return render(markup, styles=False)


class Console:
    """Writes markup lines to a stream (the renderer's redacting writer)."""

    def __init__(self, stream: IO[str], env: Mapping[str, str] | None = None) -> None:
        self.stream = stream
        self.styles, self.colours = wants_styles(stream, os.environ if env is None else env)
        self.width = _columns(os.environ if env is None else env) if self.styles else None

    def print(self, markup: str = "") -> None:
        self.stream.write(render(markup, styles=self.styles, colours=self.colours) + "\n")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], *, gap: int = 4) -> None:
        """Left-aligned columns ``gap`` apart, a bold header; the last column wraps on a terminal."""
        cells = [[visible(c) for c in row] for row in rows]
        widths = [max([len(columns[i]), *(len(r[i]) for r in cells)]) for i in range(len(columns))]
        indent = sum(widths[:-1]) + gap * (len(columns) - 1)
        room = max(20, self.width - indent) if self.width else None
        pairs = zip(columns, widths, strict=True)
        header = (" " * gap).join(f"[bold]{escape(c)}[/]" + " " * (w - len(c)) for c, w in pairs)
        self.print(header.rstrip())
        for row, shown in zip(rows, cells, strict=True):
            lead = "".join(cell + " " * (widths[i] - len(shown[i]) + gap) for i, cell in enumerate(row[:-1]))
            last, last_shown = row[-1], shown[-1]
            if room is None or len(last_shown) <= room:
                self.print(lead + last)
                continue
            lines = _wrap(last_shown, room)
            self.print(lead + escape(lines[0]))
            for line in lines[1:]:
                self.print(" " * indent + escape(line))
        self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


def _columns(env: Mapping[str, str]) -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it (without importing shutil)."""
    try:
        return max(20, int(env["COLUMNS"]))
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns
    except (OSError, ValueError):
        return 80


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap; a word longer than the line gets a line of its own."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines
