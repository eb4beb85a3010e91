"""How the condafix app runs one command: bad input is one line and an exit code, never a traceback.

Shared by both ways the app reads its arguments (``cli.start`` for doctor, typer in ``cli.app``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from condafix.errors import CondafixError


def say_dropped_proxies() -> None:
    """Sanitizing is never silent: name what was dropped (on stderr, so --json stays clean)."""
    from condafix.cli import render

    proxy = sys.modules.get("condafix.proxy")  # never imported = nothing sanitized (start-up)
    if proxy is not None and proxy.POLICY.dropped and not render.quiet():
        sys.stderr.write(
            f"note: ignored broken proxy settings {', '.join(proxy.POLICY.dropped)} for condafix's requests "
            "(see `condafix proxy`; `condafix --keep-proxy …` uses them as set)\n"
        )


def guarded(kind: str, as_json: bool, call: Callable[[], int]) -> int:
    """Run one command: CondafixError becomes one line and its exit code, Ctrl-C 130, never a traceback."""
    from condafix.cli import render

    try:
        code = call()
        say_dropped_proxies()
    except CondafixError as exc:
        say_dropped_proxies()
        render.print_error(kind, exc, as_json)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return code


def finish(run: Callable[[], int]) -> NoReturn:
    """Run the app and leave with its code; a bug (not bad input) is one line and exit 70."""
    if os.environ.get("CONDAFIX_DEBUG"):
        code = run()
    else:
        try:
            code = run()
        except Exception as exc:  # a bug, not bad input: say so in one line
            from condafix.cli import render

            render.Output().internal_error(exc)
            code = 70
    if "rattler" in sys.modules:
        # py-rattler's runtime threads can crash interpreter finalization (seen here: SIGSEGV and
        # "PyGILState_Release: thread state must be current" after all output was written), so once
        # it is loaded we flush and leave without finalizing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
