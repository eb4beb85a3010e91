"""The typer app: parse arguments, call the core, hand the result to ``render``.

Exit codes: the one table in ``cli/helptext.py`` (every ``--help`` ends with its rows; the README shows it).

No ``from __future__ import annotations`` here, on purpose: typer reads every command's signature
on each start, and string annotations cost it an eval apiece (~5x slower command building).
"""

import functools
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer

from condafix import __version__
from condafix.cli import guard, helptext
from condafix.errors import CondafixError, UsageError

if TYPE_CHECKING:
    from condafix.cli import commands as commands_mod

app = typer.Typer(
    name="condafix",
    help="Make CUDA work in conda environments: diagnose, explain, and fix driver/toolkit mismatches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    epilog="\b\n" + helptext.epilog("", width=76),
)

T = TypeVar("T")

NameOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "-n", "--name", metavar="ENV", help="Environment name, found as conda finds it (default: the active env)."
    ),
]
PrefixOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("-p", "--prefix", metavar="PATH", help="Environment path (default: the active env, $CONDA_PREFIX)."),
]
CudaOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--cuda",
        metavar="X.Y",
        help="Assume the driver supports this CUDA version, for hosts without a GPU (default: detected).",
    ),
]
DriverOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--driver",
        metavar="VERSION",
        help="Assume this NVIDIA driver version (e.g. 535.104.05); mapped to its max CUDA.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
# Target options shared by the commands that plan for a driver (cuda, env, lock): one spelling, one help text.
TargetCudasOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--cuda", metavar="X.Y", help="Target CUDA version (repeatable: the lowest wins; default: the driver's)."
    ),
]
TargetDriversOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--driver", metavar="VERSION", help="Target driver version (repeatable: the lowest CUDA wins)."),
]
DriversFileOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--drivers-file",
        metavar="FILE",
        help="One driver version per line, e.g. from every node of a cluster (oldest wins).",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed without a terminal).")]


def _command(name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command whose whole summary shows in the app's list (click cuts a docstring off at ~45
    characters) and whose ``--help`` ends with its exit codes (``helptext``: the README's table)."""

    def register(func: Callable[..., None]) -> Callable[..., None]:
        command = name or func.__name__
        summary = (func.__doc__ or "").strip().splitlines()[0]
        epilog = "\b\n" + helptext.epilog(command, width=76)  # \b: click keeps the lines as they are
        app.command(command, short_help=summary, epilog=epilog)(func)
        return func

    return register


def _guard(
    kind: str, as_json: Callable[[dict[str, object]], bool]
) -> Callable[[Callable[..., int]], Callable[..., None]]:
    """Turn CondafixError into one line + exit code; Ctrl-C into 130; never a traceback for bad input."""

    def wrap(func: Callable[..., int]) -> Callable[..., None]:
        @functools.wraps(func)
        def inner(**kwargs: object) -> None:
            raise typer.Exit(guard.guarded(kind, as_json(kwargs), lambda: func(**kwargs)))

        return inner

    return wrap


def _json_flag(kwargs: dict[str, object]) -> bool:
    return bool(kwargs.get("as_json"))


def _ui(as_json: bool, yes: bool = False) -> "commands_mod.Ui":
    """The typer app's front end: terminal prompts, text views and the rich spinner on stderr."""
    from condafix.cli import commands, render

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError("refusing to change the environment without --yes (no terminal to ask)")
        return bool(typer.confirm(question, default=False))

    def show(view: str, payload: object) -> None:
        if not as_json:
            render.show(view, payload)

    return commands.Ui(
        confirm=confirm,
        show=show,
        progress=render.progress,  # stderr only: --json keeps stdout one document
        env=os.environ,
    )


def _emit(outcome: "commands_mod.Outcome", as_json: bool) -> int:
    from condafix.cli import render

    render.outcome(outcome, as_json=as_json)
    return outcome.code


@_command()
@_guard("doctor", _json_flag)
def doctor(
    name: NameOpt = None,
    prefix: PrefixOpt = None,
    cuda: CudaOpt = None,
    driver: DriverOpt = None,
    as_json: JsonOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 0 ok, 1 warnings, 2 mismatch (for CI).")] = False,
    all_sources: Annotated[
        bool, typer.Option("--all-sources", help="Ask NVML, libcuda and nvidia-smi, not just the first that answers.")
    ] = False,
    probe: Annotated[
        bool, typer.Option("--probe", help="Compile a kernel with the env's NVVM, compare its PTX with the driver.")
    ] = False,
) -> int:
    """Driver CUDA vs the env's CUDA parts: verdict per component and the fix to run."""
    from condafix.cli import commands

    outcome = commands.doctor(
        name=name,
        prefix=prefix,
        cuda=cuda,
        driver=driver,
        check=check,
        all_sources=all_sources,
        probe=probe,
        ui=_ui(as_json),
    )
    return _emit(outcome, as_json)


@_command()
@_guard("explain", _json_flag)
def explain(
    text: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(metavar="[MESSAGE]", help="The error message (else -f FILE or stdin)."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("-f", "--file", metavar="FILE", help="Read the error from FILE (- for stdin).")
    ] = None,
    cuda: CudaOpt = None,
    driver: DriverOpt = None,
    no_detect: Annotated[bool, typer.Option("--no-detect", help="Do not look at this machine's driver.")] = False,
    name: NameOpt = None,
    prefix: PrefixOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Explain a CUDA error message: which side is newer, both CUDA versions, and the fix."""
    from condafix.cli import commands, inputs

    outcome = commands.explain(
        text=inputs.read_text(text, file),
        cuda=cuda,
        driver=driver,
        no_detect=no_detect,
        name=name,
        prefix=prefix,
        ui=_ui(as_json),
    )
    return _emit(outcome, as_json)


SolverOpt = Annotated[
    str,
    typer.Option(
        "--solver",
        metavar="[auto|conda|libmamba|classic|rattler]",
        help=(
            "auto: conda inside a conda install, else rattler; conda: conda's configured solver; libmamba or "
            "classic: conda with that solver; rattler: the embedded py-rattler. Same words as `conda cuda`."
        ),
    ),
]


def _solver(word: str) -> str:
    """``--solver``'s words (``cli.conda_cuda.SOLVER_WORDS``, shared with ``conda cuda``) to a backend
    choice; conda's own solvers are set as conda's CLI sets them (``CONDA_SOLVER``) for conda's context."""
    from condafix.cli.conda_cuda import SOLVER_WORDS

    if word != "auto" and word not in SOLVER_WORDS:
        raise UsageError(f"--solver must be one of {', '.join(SOLVER_WORDS)}, not {word!r}")
    if word in ("libmamba", "classic"):
        os.environ["CONDA_SOLVER"] = word
        return "conda"
    return word


@_command()
@_guard("cuda", _json_flag)
def cuda(
    name: NameOpt = None,
    prefix: PrefixOpt = None,
    channel: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "-c",
            "--channel",
            metavar="CHANNEL",
            help="Channel name, https:// or file:// URL (repeatable; default: the env's channels, else .condarc's).",
        ),
    ] = None,
    cuda: TargetCudasOpt = None,
    driver: TargetDriversOpt = None,
    drivers_file: DriversFileOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Plan from the repodata cache only.")] = False,
    allow_major: Annotated[
        bool, typer.Option("--allow-major", help="Allow moving the env to an older CUDA major.")
    ] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Change the env as planned (asks first).")] = False,
    yes: YesOpt = False,
    via: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--via",
            metavar="[conda|mamba|micromamba]",
            help="Let this tool install the plan (default: as --solver picks: conda, or the embedded rattler).",
        ),
    ] = None,
    no_pin: Annotated[
        bool, typer.Option("--no-pin", help="Do not write the pin to conda-meta/pinned (conda may undo the fix).")
    ] = False,
    replace_pin: Annotated[
        bool,
        typer.Option("--replace-pin", help="Replace a conflicting pin in conda-meta/pinned (rollback puts it back)."),
    ] = False,
    solver: SolverOpt = "auto",
    as_json: JsonOpt = False,
) -> int:
    """Plan the fix with a real solver: newest cuda-version/cudatoolkit <= the driver (dry run)."""
    from condafix.cli import commands

    solver = _solver(solver)
    outcome = commands.cuda(
        name=name,
        prefix=prefix,
        channels=channel or [],
        cudas=cuda or [],
        drivers=driver or [],
        drivers_file=drivers_file,
        offline=offline,
        allow_major=allow_major,
        apply=apply,
        via=via,
        pin=not no_pin,
        replace_pin=replace_pin,
        solver=solver,  # type: ignore[arg-type]
        ui=_ui(as_json, yes),
    )
    return _emit(outcome, as_json)


@_command()
@_guard("rollback", _json_flag)
def rollback(
    name: NameOpt = None,
    prefix: PrefixOpt = None,
    to: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--to", metavar="SNAPSHOT", help="Snapshot id, as --list shows it (default: the newest)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be restored; change nothing.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the snapshots.")] = False,
    yes: YesOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Roll back even though the env changed after condafix's change.")
    ] = False,
    as_json: JsonOpt = False,
) -> int:
    """Undo a condafix change: restore the snapshot, remove the pin and specs condafix added."""
    from condafix.cli import commands

    outcome = commands.rollback(
        name=name, prefix=prefix, to=to, dry_run=dry_run, list_only=list_, force=force, ui=_ui(as_json, yes)
    )
    return _emit(outcome, as_json)


@_command("env")
@_guard("env", _json_flag)
def env_file(
    files: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            metavar="[FILE]...",
            help="environment.yml or pixi.toml/pyproject.toml files (default ./environment.yml; - for stdin).",
        ),
    ] = None,
    cuda: TargetCudasOpt = None,
    driver: TargetDriversOpt = None,
    drivers_file: DriversFileOpt = None,
    write: Annotated[bool, typer.Option("--write", help="Replace the file (keeps FILE.bak).")] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the file would change (pre-commit, CI).")] = False,
    channel: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "-c", "--channel", metavar="CHANNEL", help="Check the pin on this channel (default: the file's channels)."
        ),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not check the pin against a channel.")] = False,
    allow_major: Annotated[
        bool, typer.Option("--allow-major", help="Allow moving the file's CUDA group to an older major.")
    ] = False,
    solver: SolverOpt = "auto",
    as_json: JsonOpt = False,
) -> int:
    """Move the CUDA pins of environment.yml or a pixi manifest as one group (a diff unless --write).

    Several files (pre-commit passes every staged one): one verdict each, in order, and the worst exit."""
    from condafix.cli import commands, render
    from condafix.files import envfile

    solver = _solver(solver)
    paths = files or [envfile.default_file()]
    if len(paths) > 1 and as_json:
        raise UsageError(f"--json takes one file (got {len(paths)}): run condafix env --json once per file")
    if len(paths) > 1 and "-" in paths:
        raise UsageError("- (stdin) cannot be combined with other files")
    if len(paths) > 1:  # a bad -c, --cuda or --driver is said once, not once per file
        from condafix.cli.inputs import check_channels

        check_channels(channel or [])
        if cuda or driver or drivers_file:
            commands.target_cuda(cudas=cuda or [], drivers=driver or [], drivers_file=drivers_file, env=os.environ)

    def one(path: str) -> int:
        raw, source_name = envfile.read_source(path)
        outcome = commands.env_file(
            path=path,
            raw=raw,
            source_name=source_name,
            cudas=cuda or [],
            drivers=driver or [],
            drivers_file=drivers_file,
            write=write,
            check=check,
            channels=channel or [],
            offline=offline,
            allow_major=allow_major,
            solver=solver,  # type: ignore[arg-type]
            ui=_ui(as_json),
        )
        return _emit(outcome, as_json)

    worst = 0
    for path in paths:
        try:
            worst = max(worst, one(path))
        except CondafixError as exc:  # this file's problem (missing, not an env file, a template): the next one runs
            if len(paths) == 1:
                raise
            named = exc.summary if exc.summary.startswith(path) else f"{path}: {exc.summary}"
            render.print_error("env", CondafixError(summary=named, hints=exc.hints, exit_code=exc.exit_code), False)
            worst = max(worst, exc.exit_code)
    return worst


@_command("lock")
@_guard("lock", _json_flag)
def lock(
    files: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            metavar="[FILE]...",
            help="pixi.lock, conda-lock.yml or @EXPLICIT files (default: ./pixi.lock, ./conda-lock.yml).",
        ),
    ] = None,
    cuda: TargetCudasOpt = None,
    driver: TargetDriversOpt = None,
    drivers_file: DriversFileOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 0 every env fits, 1 warnings, 2 an env needs a newer CUDA.")
    ] = False,
    as_json: JsonOpt = False,
) -> int:
    """The CUDA each locked env holds, per platform, against the driver (lockfiles are never rewritten)."""
    from condafix.cli import commands

    outcome = commands.lock(
        paths=files or [],
        cudas=cuda or [],
        drivers=driver or [],
        drivers_file=drivers_file,
        check=check,
        ui=_ui(as_json),
    )
    return _emit(outcome, as_json)


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"condafix {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = False,
    no_proxy: Annotated[
        bool, typer.Option("--no-proxy", help="Drop every proxy setting for condafix's requests.")
    ] = False,
    proxy: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--proxy", metavar="URL", help="Use this proxy (http://host:port) for every request condafix makes."
        ),
    ] = None,
    keep_proxy: Annotated[
        bool, typer.Option("--keep-proxy", help="Use the proxy settings exactly as set, even broken ones.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only results and errors (no progress, no notes).")
    ] = False,
) -> None:
    """condafix: make CUDA work in conda environments."""
    from condafix.cli.render import set_quiet

    set_quiet(quiet)
    if not (no_proxy or proxy or keep_proxy) and "condafix.proxy" not in sys.modules:
        return  # the default policy already (keep valid proxies); proxy.py loads with the first network use
    from condafix import proxy as proxy_mod
    from condafix.cli.render import print_error

    try:
        proxy_mod.set_policy(no_proxy=no_proxy, proxy=proxy, keep=keep_proxy)
    except CondafixError as exc:
        print_error("condafix", exc, False)
        raise typer.Exit(exc.exit_code) from None


@_command("proxy")
@_guard("proxy", _json_flag)
def proxy_command(
    channel: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "-c", "--channel", metavar="CHANNEL", help="Check no_proxy against this channel's host (repeatable)."
        ),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 0 ok, 1 warnings, 2 errors.")] = False,
    connect: Annotated[
        bool, typer.Option("--connect/--no-connect", help="Probe each proxy host:port (TCP, <= 2 s, concurrent).")
    ] = True,
    as_json: JsonOpt = False,
) -> int:
    """Diagnose proxy settings (variables, .condarc, CA bundles): what is wrong and what to do."""
    from condafix.cli import commands

    outcome = commands.proxy(channels=channel or [], check=check, connect=connect, ui=_ui(as_json))
    return _emit(outcome, as_json)


def usage_error(exc: Exception, stream: io.TextIOBase) -> None:
    """click's usage error as one line and a "try --help" line (click prints the usage, a "Try" line,
    a blank line, then the error). ``condafix`` alone (``no_args_is_help``) still prints the help."""
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message()  # type: ignore[attr-defined]
    if type(exc).__name__ == "NoArgsIsHelpError":
        stream.write(f"{message}\n")
        return
    stream.write(f"error: {' '.join(message.split())}\n")
    if ctx is not None:
        stream.write(f"try `{ctx.command_path} --help`\n")


def _run_app() -> int:
    """Run typer and return the exit code; typer's own usage errors go through the redactor too."""
    from condafix.cli import render

    # click's base exception, whether typer vendors click (>= 0.27) or depends on it
    click_exception: type[Exception] = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException" and issubclass(c, Exception)
    )

    render.capture_logs()
    try:
        code = app(standalone_mode=False)
    except click_exception as exc:  # usage errors quote the arguments, URLs included
        stderr = render.Output().stderr
        usage_error(exc, stderr)
        stderr.flush()
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        render.Output().text("Aborted!", err=True)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code if isinstance(code, int) else 0


def main() -> None:
    """The typer app as an entry point (the console script is ``cli.start.main``: doctor without typer)."""
    guard.finish(_run_app)
