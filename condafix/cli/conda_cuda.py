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
#: ``--via`` words (``backends.tool.VIA_TOOLS`` checks the same three for ``condafix cuda``)
VIA_WORDS = ("conda", "mamba", "micromamba")


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
    from condafix.cli import helptext

    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-n", "--name", metavar="ENV", help="Environment name (conda's envs dirs; default: the active env)."
    )
    where.add_argument("-p", "--prefix", metavar="PATH", help="Environment path (default: the active env).")
    parser.add_argument(
        "-c", "--channel", action="append", default=[], metavar="CHANNEL",
        help="Channel name or URL (repeatable; default: your .condarc's channels).",
    )  # fmt: skip
    parser.add_argument(
        "--cuda", action="append", default=[], metavar="X.Y",
        help="Target CUDA version (repeatable: the lowest wins; default: the driver's).",
    )  # fmt: skip
    parser.add_argument(
        "--driver", action="append", default=[], metavar="VERSION",
        help="Target driver version (repeatable: the lowest CUDA wins).",
    )  # fmt: skip
    parser.add_argument(
        "--drivers-file", metavar="FILE", help="One driver version per line, e.g. a fleet's (oldest wins)."
    )
    parser.add_argument("--offline", action="store_true", help="Plan from conda's cache only.")
    parser.add_argument("--allow-major", action="store_true", help="Allow moving to an older CUDA major.")
    parser.add_argument("--apply", action="store_true", help="Change the env as planned (asks first).")
    parser.add_argument("-y", "--yes", action="store_true", help="Do not ask (needed without a terminal).")
    parser.add_argument(
        "--via", choices=VIA_WORDS, help="Let this tool install the plan (default: conda's own transaction)."
    )
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
            "conda: your configured `solver` (the default); libmamba, classic or rattler: conda with that "
            "solver (as `conda install --solver`)."
        ),
    )
    parser.add_argument("--rollback", action="store_true", help="Undo condafix's last change instead.")
    parser.add_argument(
        "--to", metavar="SNAPSHOT", help="With --rollback: the snapshot id, as --list shows it (default: the newest)."
    )
    parser.add_argument("--dry-run", action="store_true", help="With --rollback: say what would be restored.")
    parser.add_argument("--list", dest="list_", action="store_true", help="With --rollback: list the snapshots.")
    parser.add_argument(
        "--force", action="store_true", help="With --rollback: roll back even though the env changed after."
    )
    parser.add_argument("--json", action="store_true", help="One JSON document on stdout.")
    parser.epilog = helptext.epilog("conda cuda")  # conda's parsers keep an epilog's lines (RawDescription)
    _one_line_errors(parser)


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """A usage error is one line and a "try --help" line, exit 2 (argparse prints the whole usage first).

    conda's root parser, not ours, would reject an unknown option (``unrecognized arguments``, after
    its own usage): ours rejects the leftovers itself, so the message is the same shape."""
    prog = parser.prog

    def error(message: str) -> Any:
        parser.exit(2, f"{prog}: error: {message}\ntry `{prog} --help`\n")

    parse_known_args = parser.parse_known_args

    def known_args(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = parse_known_args(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = known_args  # type: ignore[method-assign,assignment]


def _prefix_of(args: argparse.Namespace) -> str:
    """``-n``/``-p`` resolved by conda itself (envs_dirs, CONDA_ENVS_PATH), else the active env."""
    from conda.base.context import context, locate_prefix_by_name

    if getattr(args, "prefix", None):
        return str(args.prefix)
    if getattr(args, "name", None):
        from conda.exceptions import EnvironmentNameNotFound

        try:
            return str(locate_prefix_by_name(args.name))
        except EnvironmentNameNotFound:
            raise _no_such_env(args.name, [str(d) for d in context.envs_dirs]) from None
    return str(context.target_prefix)


def _no_such_env(name: str, envs_dirs: list[str]) -> Exception:
    """conda's ``EnvironmentNameNotFound`` is three lines and exit 1; condafix says it in one, exit 3
    (could not inspect the env), naming close matches among the envs conda's envs dirs hold."""
    import difflib

    from condafix.errors import InspectError

    known = sorted(
        {p.name for d in envs_dirs if Path(d).is_dir() for p in Path(d).iterdir() if (p / "conda-meta").is_dir()}
    )
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    guess = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "; `conda info --envs` lists them"
    return InspectError(f"no environment named {name!r} in conda's envs dirs ({', '.join(envs_dirs)}){guess}")


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
