"""The one exit-code table: both front ends' ``--help`` epilogs and the README's "### Exit codes" render it.

Pure data and ``textwrap``: conda builds every plugin's parser on each of its commands, and the typer
app imports this beside typer, so nothing here may cost a start-up (``tests/test_startup.py``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

#: what ``applies`` names: the typer app's commands, ``conda cuda`` / ``conda doctor``, and these two
ANY = "*"  # every ``condafix`` command and ``conda cuda`` (the same command layer)
APP = "condafix"  # every ``condafix`` command (conda runs ``conda cuda``: a bug or Ctrl-C is conda's to report)


@dataclass(frozen=True, kw_only=True)
class ExitRow:
    """One row: the command cell and the ``when`` cell as the README shows them (markdown), and the
    commands whose ``--help`` lists it (``ANY``, ``APP`` or command names)."""

    command: str
    exit: str
    when: str
    applies: tuple[str, ...]


EXIT_CODES: tuple[ExitRow, ...] = (
    ExitRow(
        command="any `condafix` command",
        exit="0",
        when="done: planned, nothing to do, applied, or (without `--check`) a report of any verdict",
        applies=(ANY,),
    ),
    ExitRow(
        command="any `condafix` command",
        exit="2",
        when="bad input, one line saying why: a flag (an unknown option, a value not among the choices, a "
        "missing value), a file that is missing or not an environment file, an env that is not selected "
        "(`$CONDA_PREFIX` is conda's own install), no driver and no `--cuda`",
        applies=(ANY,),
    ),
    ExitRow(
        command="any `condafix` command",
        exit="3",
        when="the env could not be inspected (no such env: the known ones are listed)",
        applies=(ANY,),
    ),
    ExitRow(
        command="any `condafix` command",
        exit="70",
        when="a bug in condafix, said in one line (`CONDAFIX_DEBUG=1` shows the traceback)",
        applies=(APP,),
    ),
    ExitRow(
        command="any `condafix` command",
        exit="130",
        when="interrupted (Ctrl-C); a change in progress is undone first",
        applies=(APP,),
    ),
    ExitRow(
        command="`condafix doctor --check`, `condafix lock --check`, `condafix proxy --check`",
        exit="0 / 1 / 2",
        when="ok / warnings / mismatch (errors)",
        applies=("doctor", "lock", "proxy"),
    ),
    ExitRow(
        command="`condafix env --check`",
        exit="1",
        when="the file would change",
        applies=("env",),
    ),
    ExitRow(
        command="`condafix cuda`",
        exit="2",
        when="blocked: no CUDA the driver runs is on the channels (the reason says why)",
        applies=("cuda", "conda cuda"),
    ),
    ExitRow(
        command="`condafix cuda --apply`, `condafix rollback`",
        exit="1",
        when="asked, and the answer was no: nothing was changed",
        applies=("cuda", "rollback", "conda cuda"),
    ),
    ExitRow(
        command="`condafix cuda --apply`, `condafix rollback`",
        exit="2",
        when="no terminal to ask and no `--yes`: nothing was changed",
        applies=("cuda", "rollback", "conda cuda"),
    ),
    ExitRow(
        command="`condafix cuda --apply`, `condafix rollback`",
        exit="4",
        when="the change or the rollback failed; the message says the env's state (put back as it was, or "
        "a journal that `condafix rollback` finishes)",
        applies=("cuda", "rollback", "conda cuda"),
    ),
    ExitRow(
        command="`condafix explain`",
        exit="0 / 1",
        when="the error was recognised / not",
        applies=("explain",),
    ),
    ExitRow(
        command="`conda cuda` (also with `--rollback`)",
        exit="same as `condafix cuda` / `condafix rollback`",
        when="the same command layer, the same codes",
        applies=("conda cuda",),
    ),
    ExitRow(
        command="`conda doctor`",
        exit="0",
        when="conda's own rule: the report is printed and conda exits 0 whatever the `cuda` check found "
        "(use `condafix doctor --check` in CI)",
        applies=("conda doctor",),
    ),
    ExitRow(
        command="`conda doctor --fix cuda`",
        exit="2",
        when="no terminal and no `--yes`: nothing was changed",
        applies=("conda doctor",),
    ),
    ExitRow(
        command="`conda doctor --fix cuda`",
        exit="0",
        when="applied, nothing to do, `--dry-run`, or declined at conda's prompt (conda's rule)",
        applies=("conda doctor",),
    ),
)

#: the section title every ``--help`` epilog starts with (the help test looks for it)
TITLE = "Exit codes"


def markdown_table() -> str:
    """The README's table, exactly (``tests/test_help.py`` compares it with the README)."""
    lines = ["| command | exit | when |", "|---|---|---|"]
    lines += [f"| {r.command} | {r.exit} | {r.when} |" for r in EXIT_CODES]
    return "\n".join(lines) + "\n"


def _plain(text: str) -> str:
    return text.replace("`", "")


def rows_for(command: str) -> tuple[ExitRow, ...]:
    """The rows one command's ``--help`` lists (``""``: the app's own help, every ``condafix`` row)."""
    if not command:
        return tuple(r for r in EXIT_CODES if not r.applies[0].startswith("conda "))
    wanted = {ANY, command} if command.startswith("conda ") else {ANY, APP, command}
    return tuple(r for r in EXIT_CODES if wanted & set(r.applies))


def epilog(command: str, *, width: int = 78) -> str:
    """Plain text for a help epilog: one row a paragraph, ``EXIT  command: when``, wrapped to ``width``."""
    rows = rows_for(command)
    codes = [r for r in rows if len(_plain(r.exit)) <= 12]
    column = max(len(r.exit) for r in codes) + 2
    out = [f"{TITLE}:"]
    for row in rows:
        code = _plain(row.exit)
        if row not in codes:  # "same as ...": a sentence of its own
            body, head, rest = f"{_plain(row.command)}: {code}: {_plain(row.when)}", "  ", "    "
        else:
            body, head, rest = f"{_plain(row.command)}: {_plain(row.when)}", f"  {code:<{column}}", " " * (column + 2)
        out += textwrap.wrap(body, width=width, initial_indent=head, subsequent_indent=rest, break_on_hyphens=False)
    return "\n".join(out)
