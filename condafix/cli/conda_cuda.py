"""``conda cuda`` and ``conda doctor cuda`` (with its fixer): parse conda's arguments, call the one
command layer (``cli.commands``), render. conda imports the plugin on every command, so everything
heavy is imported when an action runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _ui(*, confirm: Callable[[str], Any] | None = None, show: bool = True) -> Any:
    from condafix.cli import commands, render

    def ask(question: str) -> bool:
        if confirm is None:
            return False
        confirm(question)  # conda's confirm raises when the user declines or under --dry-run
        return True

    return commands.Ui(confirm=ask, show=render.show if show else (lambda _v, _p: None))


def _needs_terminal(yes: bool) -> None:
    """Asking without a terminal reads nothing and changes nothing: say so (exit 2), never exit 0.
    Under conda's ``--dry-run`` conda's own confirm ends the command (``DryRunExit``), as conda does."""
    import sys

    from conda.base.context import context

    from condafix.errors import UsageError

    if yes or context.always_yes or context.dry_run or sys.stdin.isatty():
        return
    raise UsageError("refusing to change the environment without --yes (no terminal to ask)")


def _print_error(kind: str, exc: Exception, as_json: bool) -> int:
    from condafix.cli import render
    from condafix.errors import CondafixError

    assert isinstance(exc, CondafixError)
    render.print_error(kind, exc, as_json)
    return exc.exit_code


#: ``--solver`` words, the same in ``condafix cuda`` and ``conda cuda``: ``conda`` is conda's configured
#: solver (your ``solver`` setting); ``libmamba``, ``classic``, ``rattler`` name a solver (in ``conda cuda``
#: conda's solver of that name, as ``conda install --solver`` picks it; in ``condafix cuda`` ``rattler`` is
#: the embedded py-rattler, the others conda's).
SOLVER_WORDS = ("conda", "libmamba", "classic", "rattler")


class _SolverAction(argparse.Action):
    """``--solver WORD``: a solver's name goes to ``args.solver`` (conda's context reads it, as for
    ``conda install --solver``); ``conda`` leaves conda's own setting alone (conda knows no solver of
    that name, so it must stay off ``args.solver``)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        if values != "conda":
            namespace.solver = values
        elif hasattr(namespace, "solver"):
            delattr(namespace, "solver")


def configure_cuda_parser(parser: argparse.ArgumentParser) -> None:
    """The options of ``condafix cuda`` and ``condafix rollback`` (one vocabulary), for ``conda cuda``."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-n", "--name", help="Environment name (conda's envs dirs).")
    where.add_argument("-p", "--prefix", help="Environment path.")
    parser.add_argument("-c", "--channel", action="append", default=[], help="Channel (default: your .condarc).")
    parser.add_argument("--cuda", action="append", default=[], help="Target CUDA M.m (repeatable: lowest wins).")
    parser.add_argument("--driver", action="append", default=[], help="Target driver version (repeatable).")
    parser.add_argument("--drivers-file", help="One driver version per line (a fleet).")
    parser.add_argument("--offline", action="store_true", help="Plan from conda's cache only.")
    parser.add_argument("--allow-major", action="store_true", help="Allow moving to an older CUDA major.")
    parser.add_argument("--apply", action="store_true", help="Change the env as planned (asks first).")
    parser.add_argument("-y", "--yes", action="store_true", help="Do not ask (needed without a terminal).")
    parser.add_argument("--via", choices=("conda", "mamba", "micromamba"), help="Let this tool install the pin.")
    parser.add_argument(
        "--no-pin", action="store_true", help="Do not write the pin to conda-meta/pinned (conda may undo the fix)."
    )
    parser.add_argument(
        "--replace-pin",
        action="store_true",
        help="Replace a conflicting pin in conda-meta/pinned (rollback puts it back).",
    )
    parser.add_argument(  # conda's own solvers land in args.solver, which conda's context reads
        "--solver",
        action=_SolverAction,
        choices=SOLVER_WORDS,
        default=argparse.SUPPRESS,  # absent, not None: conda would read None as a solver named "none"
        help=(
            "conda: your configured `solver` (default); libmamba, classic or rattler: conda with that solver "
            "(as `conda install --solver`)."
        ),
    )
    parser.add_argument("--rollback", action="store_true", help="Undo condafix's last change instead.")
    parser.add_argument("--to", help="With --rollback: the snapshot id (default: the newest).")
    parser.add_argument("--dry-run", action="store_true", help="With --rollback: say what would be restored.")
    parser.add_argument("--list", dest="list_", action="store_true", help="With --rollback: list the snapshots.")
    parser.add_argument(
        "--force", action="store_true", help="With --rollback: roll back even though the env changed after."
    )
    parser.add_argument("--json", action="store_true", help="One JSON document on stdout.")


def _prefix_of(args: argparse.Namespace) -> str:
    """``-n``/``-p`` resolved by conda itself (envs_dirs, CONDA_ENVS_PATH), else the active env."""
    from conda.base.context import context, locate_prefix_by_name

    if getattr(args, "prefix", None):
        return str(args.prefix)
    if getattr(args, "name", None):
        return str(locate_prefix_by_name(args.name))
    return str(context.target_prefix)


def cuda_action(args: argparse.Namespace) -> int:
    """``conda cuda``: plan (dry run), ``--apply`` or ``--rollback`` with conda's solver."""
    from conda.base.context import context
    from conda.reporters import confirm_yn

    from condafix.cli import commands, render
    from condafix.errors import CondafixError

    as_json = bool(args.json)

    def confirm(question: str) -> Any:
        if args.yes or context.always_yes:
            return True
        _needs_terminal(False)
        return confirm_yn(question, default="no", dry_run=False)

    try:
        prefix = _prefix_of(args)
        ui = _ui(confirm=confirm, show=not as_json)
        if args.rollback:
            outcome = commands.rollback(
                prefix=prefix, to=args.to, dry_run=args.dry_run, list_only=args.list_, force=args.force,
                inside_conda=True, ui=ui,
            )  # fmt: skip
        else:
            outcome = commands.cuda(
                prefix=prefix,
                channels=args.channel,
                cudas=args.cuda,
                drivers=args.driver,
                drivers_file=None if args.drivers_file is None else Path(args.drivers_file),
                offline=args.offline,
                allow_major=args.allow_major,
                apply=args.apply,
                via=args.via,
                pin=not args.no_pin,
                replace_pin=args.replace_pin,
                solver="conda",
                inside_conda=True,
                ui=ui,
            )
    except CondafixError as exc:
        return _print_error("cuda", exc, as_json)
    render.outcome(outcome, as_json=as_json)
    return int(outcome.code)


def check_action(prefix: str, verbose: bool) -> None:
    """``conda doctor``: the compact verdict of ``condafix doctor`` for this env."""
    from condafix.cli import commands, render
    from condafix.errors import CondafixError

    try:
        outcome = commands.doctor(prefix=prefix)
    except CondafixError as exc:
        render.print_error("doctor", exc, False)
        return
    render.doctor_compact(outcome.result, verbose=verbose, fixer="conda doctor --fix cuda")


def check_fixer(prefix: str, args: argparse.Namespace, confirm: Callable[[str], Any]) -> int:
    """``conda doctor --fix cuda``: plan with conda's solver, ask through conda's confirm, apply."""
    from condafix.cli import commands, render
    from condafix.errors import CondafixError

    def ask(question: str) -> Any:
        _needs_terminal(bool(getattr(args, "yes", False)))
        return confirm(question)

    try:
        outcome = commands.cuda(prefix=prefix, apply=True, solver="conda", inside_conda=True, ui=_ui(confirm=ask))
    except CondafixError as exc:
        return _print_error("cuda", exc, False)
    render.outcome(outcome, as_json=False)
    return int(outcome.code)
