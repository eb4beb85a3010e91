"""The console script: ``condafix doctor`` without typer, every other command through the typer app.

Why: doctor is the command people run first and in loops (CI, shell prompts, ``conda doctor``), and
importing typer and click was about a third of its start. Its arguments are few and flat, so this
module reads them itself when it can and hands anything else (``--help``, an unknown option, a value
that looks like an option, ``--opt=value`` forms typer would read differently) to typer untouched.
Both paths call the one command layer (``cli.commands``) and the same renderer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from condafix.cli.guard import finish, guarded

#: doctor's options that take a value, and the keyword they fill (``-n X``, ``--name X``, ``--name=X``)
_VALUES = {"-n": "name", "--name": "name", "-p": "prefix", "--prefix": "prefix", "--cuda": "cuda", "--driver": "driver"}
#: doctor's flags
_FLAGS = {"--json": "as_json", "--check": "check", "--all-sources": "all_sources", "--probe": "probe"}
_QUIET = ("-q", "--quiet")


def doctor_args(argv: Sequence[str]) -> tuple[bool, dict[str, object]] | None:
    """``(quiet, doctor's keywords)`` for a plain doctor command line; None: let typer parse it."""
    position = 0
    quiet = False
    while position < len(argv) and argv[position] in _QUIET:
        quiet, position = True, position + 1
    if position >= len(argv) or argv[position] != "doctor":
        return None
    kwargs: dict[str, object] = {}
    rest = list(argv[position + 1 :])
    while rest:
        arg = rest.pop(0)
        key, eq, value = arg.partition("=")
        if eq and key.startswith("--") and key in _VALUES:
            kwargs[_VALUES[key]] = value
        elif arg in _VALUES:
            if not rest or rest[0].startswith("-"):
                return None  # typer says what is missing
            kwargs[_VALUES[arg]] = rest.pop(0)
        elif arg in _FLAGS:
            kwargs[_FLAGS[arg]] = True
        else:
            return None  # --help, a typo, a positional: typer's own message
    return quiet, kwargs


def _doctor(quiet: bool, kwargs: dict[str, object]) -> int:
    from condafix.cli import commands, render

    render.set_quiet(quiet)
    render.capture_logs()
    as_json = bool(kwargs.pop("as_json", False))

    def show(view: str, payload: object) -> None:
        if not as_json:
            render.show(view, payload)

    def call() -> int:
        ui = commands.Ui(show=show, progress=render.progress, env=os.environ)
        outcome = commands.doctor(**kwargs, ui=ui)  # type: ignore[arg-type]
        render.outcome(outcome, as_json=as_json)
        return outcome.code

    return guarded("doctor", as_json, call)


def _run(argv: Sequence[str]) -> int:
    parsed = doctor_args(argv)
    if parsed is not None:
        return _doctor(*parsed)
    from condafix.cli import app

    return app._run_app()


def main() -> None:
    """Console-script entry point."""
    finish(lambda: _run(sys.argv[1:]))
