"""The command layer: one function per command, called by the typer app and by the conda plugin.

Why a layer of its own: the typer app and conda's plugin hooks must run the same workflow with
different front ends (typer prompts vs conda's ``confirm``; our rendering vs conda's stdout).
So nothing here parses arguments, prints, prompts, exits the process, or changes ``os.environ``:
a front end lends a :class:`Ui` (how to confirm, how to show an interim result, how to report
progress) and renders the :class:`Outcome` it gets back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from condafix.cli.inputs import check_channels
from condafix.diagnose.guard import guard_transaction as guard_transaction
from condafix.errors import CondafixError, Hint, UsageError

if TYPE_CHECKING:
    from condafix.detect.target import TargetCuda
    from condafix.env.envinfo import EnvInfo

Step = Callable[[str], None]
SolverChoice = Literal["auto", "conda", "rattler"]


@contextlib.contextmanager
def _silent_progress() -> Iterator[Step]:
    yield lambda _message: None


def _decline(question: str) -> bool:
    raise UsageError(f"refusing to change anything without consent ({question!r} needs --yes)")


def _stderr() -> TextIO:
    return sys.stderr  # looked up at each write: a front end (or a test) may swap it


def _tell(message: str) -> None:
    """What a user must hear at once, even mid-progress (a Ctrl-C noticed during a change)."""
    sys.stderr.write(f"\n{message}\n")


@dataclass(frozen=True, kw_only=True)
class Ui:
    """What a front end lends a command.

    ``confirm(question)`` returns True to go on; it may raise instead (conda's confirm raises
    ``DryRunExit`` under ``--dry-run``). ``show(kind, result)`` renders an interim result, e.g. the
    plan before asking. ``progress()`` is a context manager yielding a ``step(message)`` callback.
    ``notify(message)`` tells the user something at once (the change path's "interrupted: undoing");
    ``relay()`` is the stream a package manager's own reporters may write to (never stdout: that is
    the result's).
    """

    confirm: Callable[[str], bool] = _decline
    show: Callable[[str, object], None] = lambda _kind, _result: None
    progress: Callable[[], ContextManager[Step]] = _silent_progress
    notify: Callable[[str], None] = _tell
    relay: Callable[[], TextIO] = _stderr
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """A command's result, the JSON ``kind`` it is rendered as, and the process exit code."""

    kind: str
    result: Any
    code: int = 0
    #: for text output: which renderer (defaults to ``kind``) and whether a change happened.
    view: str | None = None


# ---------------------------------------------------------------- doctor


def doctor(
    *,
    name: str | None = None,
    prefix: str | None = None,
    cuda: str | None = None,
    driver: str | None = None,
    check: bool = False,
    all_sources: bool = False,
    probe: bool = False,
    ui: Ui | None = None,
) -> Outcome:
    """Driver CUDA vs the env's CUDA parts: verdict per component and the fix to run."""
    from condafix.detect import driver as driver_mod
    from condafix.diagnose import verdict
    from condafix.env import condarc, envinfo

    ui = ui or Ui()
    env = envinfo.inspect_env(name=name, path=prefix, env=ui.env)
    info = driver_mod.detect(cuda=cuda, driver=driver, all_sources=all_sources)
    probed = None
    if probe:
        from condafix.detect import ptxprobe

        probed = ptxprobe.probe(Path(env.prefix) if env.prefix else None, info)
    unfinished = None
    # change.safety.state_dir, unimported: without it no change ever began here, and doctor's start
    # skips snapshot's imports (lock, condafiles, shutil: a tenth of it)
    if env.prefix and env.kind == "conda" and (Path(env.prefix) / "conda-meta" / "condafix").is_dir():
        from condafix.change import snapshot

        unfinished = snapshot.pending(Path(env.prefix))
    setup = tuple(condarc.finding(e) for e in condarc.unreadable(ui.env))  # named, and doctor still runs
    report = verdict.diagnose(
        info, env, envinfo.system_toolkit(), probed, unfinished=unfinished, env_vars=ui.env, setup=setup
    )  # env_vars: CUPY_COMPILE_WITH_PTX changes CuPy's compile path
    return Outcome(kind="doctor", result=report, code=report.check_exit_code if check else 0)


# ---------------------------------------------------------------- explain


def _env_for_explain(name: str | None, prefix: str | None, env: Mapping[str, str]) -> EnvInfo | None:
    """The env named on the command line (errors are errors), else the active one (errors ignored)."""
    from condafix.env import envinfo
    from condafix.errors import InspectError

    if name or prefix:
        return envinfo.inspect_env(name=name, path=prefix, env=env)
    try:
        found = envinfo.inspect_env(name=None, path=None, env=env)
    except InspectError:
        return None
    return found if found.prefix else None


def explain(
    *,
    text: str,
    cuda: str | None = None,
    driver: str | None = None,
    no_detect: bool = False,
    name: str | None = None,
    prefix: str | None = None,
    ui: Ui | None = None,
) -> Outcome:
    """Explain a CUDA error message: which side is newer, both CUDA versions, and the fix."""
    from condafix.diagnose import explain as explain_mod

    ui = ui or Ui()
    result = explain_mod.explain(text)
    if result.recognised and result.family in explain_mod.LIVE_FAMILIES and not no_detect:
        from condafix.detect import driver as driver_mod

        result = explain_mod.with_live(result, driver_mod.detect(cuda=cuda, driver=driver))
    if result.recognised:
        env = _env_for_explain(name, prefix, ui.env)
        if env is not None:
            result = explain_mod.with_env(result, env)
    return Outcome(kind="explain", result=result, code=0 if result.recognised else 1)


# ---------------------------------------------------------------- cuda: plan, apply


@dataclass(frozen=True, kw_only=True)
class CudaResult:
    """``condafix cuda``'s JSON result when it applied: the plan and what the change did."""

    plan: Any
    applied: Any


def selected_prefix(name: str | None, prefix: str | None, env: Mapping[str, str]) -> Path:
    """The env a changing command works on; refusing to guess when none is selected."""
    from condafix.env import envinfo

    where, how = envinfo.resolve_prefix(name=name, path=prefix, env=env)
    if where is None:
        raise UsageError("no environment selected: pass -n NAME or -p PATH, or activate one")
    if how == "$CONDA_PREFIX" and _is_condas_own(where):
        raise UsageError(
            f"no environment selected: $CONDA_PREFIX is {where}, conda's own install (the one condafix runs "
            "from), not an env of yours",
            (
                Hint(code="pick_env", text="pass -n NAME or -p PATH for the env to fix, or activate it"),
                Hint(code="own_env", text=f"to change conda's own install anyway, name it: -p {where}"),
            ),
        )
    return where


def _is_condas_own(where: Path) -> bool:
    """Is ``where`` the install this Python (with conda importable) is: conda's base or venv?"""
    from condafix.backends import choice

    try:
        return where == Path(sys.prefix).resolve() and choice.conda_available()
    except OSError:
        return False


def target_cuda(
    *, cudas: Sequence[str], drivers: Sequence[str], drivers_file: Path | None, env: Mapping[str, str]
) -> TargetCuda:
    """The CUDA to plan for: overrides, a fleet's lowest, or the detected driver."""
    from condafix.detect import target

    return target.from_options(cudas=cudas, drivers=drivers, drivers_file=drivers_file, env=env)


def cuda(
    *,
    name: str | None = None,
    prefix: str | None = None,
    channels: Sequence[str] = (),
    cudas: Sequence[str] = (),
    drivers: Sequence[str] = (),
    drivers_file: Path | None = None,
    offline: bool = False,
    allow_major: bool = False,
    apply: bool = False,
    via: str | None = None,
    pin: bool = True,
    replace_pin: bool = False,
    solver: SolverChoice = "auto",
    inside_conda: bool = False,
    ui: Ui | None = None,
) -> Outcome:
    """Plan the fix with a real solver (dry run); with ``apply``, ask through ``ui`` and change the env.

    ``inside_conda``: called from a conda plugin hook, so conda's context is already configured.
    """
    from condafix.backends import choice
    from condafix.env import condarc
    from condafix.plan import planner

    check_channels(channels)
    ui = ui or Ui()
    condarc.refuse_unreadable(ui.env)  # conda's configuration: one conda cannot read is one line, exit 2
    if via is not None:
        from condafix.backends import tool

        tool.find_tool(via)  # a bad --via or a missing tool fails before any lock or snapshot
    where = selected_prefix(name, prefix, ui.env)
    target = target_cuda(cudas=cudas, drivers=drivers, drivers_file=drivers_file, env=ui.env)
    backend = choice.open_backend(
        solver, prefix=where, offline=offline, env=ui.env, configured=inside_conda, relay=ui.relay
    )
    with ui.progress() as step:
        result = planner.plan(
            prefix=where,
            target=target,
            channels=channels,
            offline=offline,
            allow_major=allow_major,
            env=ui.env,
            step=step,
            backend=backend,
        )
    code = 2 if result.status == "blocked" else 0
    if not (apply and result.status == "change"):
        return Outcome(kind="cuda", result=result, code=code, view="plan-applying" if apply else "plan")
    ui.show("plan-applying", result)
    count = len(result.changes)
    if not ui.confirm(f"Apply {'this change' if count == 1 else f'these {count} changes'} to {where}?"):
        raise CondafixError(summary="nothing was changed", hints=(), exit_code=1)
    from condafix.change import apply as apply_mod
    from condafix.detect import driver as driver_mod
    from condafix.diagnose import verdict
    from condafix.env import envinfo

    request = planner.install_request(result, via=via)
    installer = choice.installer(backend, request, via=via, relay=ui.relay)
    with ui.progress() as step:
        applied = apply_mod.apply(
            request,
            installer,
            pin=pin,
            replace_pin=replace_pin,
            step=step,
            notify=ui.notify,
            reinstaller=choice.reinstaller(configured=inside_conda, env=ui.env),
        )
    info = driver_mod.DriverInfo(cuda=target.cuda, source=target.source, override=True)
    after = verdict.diagnose(info, envinfo.read_env(where, "-p"))
    applied = dataclasses.replace(applied, after=after)
    return Outcome(kind="cuda", result=CudaResult(plan=result, applied=applied), code=code, view="applied")


# ---------------------------------------------------------------- rollback


def rollback(
    *,
    name: str | None = None,
    prefix: str | None = None,
    to: str | None = None,
    dry_run: bool = False,
    list_only: bool = False,
    force: bool = False,
    inside_conda: bool = False,
    ui: Ui | None = None,
) -> Outcome:
    """Undo a condafix change: restore the snapshot and remove the pin and specs condafix added (asks
    through ``ui``); refuses, listing them, when the env changed after the change unless ``force``.
    Inside a conda install a reinstall goes through conda's transaction (``inside_conda``: the plugin)."""
    from condafix.backends import choice
    from condafix.change import rollback as rollback_mod
    from condafix.change import snapshot

    ui = ui or Ui()
    where = selected_prefix(name, prefix, ui.env)
    if list_only:
        return Outcome(kind="rollback", result=snapshot.list_snapshots(where), view="snapshots")
    preview = rollback_mod.rollback(where, to, dry_run=True, force=force)
    if dry_run:
        return Outcome(kind="rollback", result=preview, view="restore-preview")
    if preview.later_changes and not force:
        rollback_mod.rollback(where, to, dry_run=False, force=False)  # refuses, naming the later changes
    if preview.has_work:
        ui.show("restore-preview", preview)
        if not ui.confirm(f"Restore {where} to snapshot {preview.snapshot}?"):
            raise CondafixError(summary="nothing was changed", hints=(), exit_code=1)
    done = rollback_mod.rollback(
        where,
        to,
        dry_run=False,
        force=force,
        reinstaller=choice.reinstaller(configured=inside_conda, env=ui.env),
        notify=ui.notify,
    )
    return Outcome(kind="rollback", result=done, view="restore")


# ---------------------------------------------------------------- env files


@dataclass(frozen=True, kw_only=True)
class EnvFileOutcome:
    """What ``env`` decided, plus the text to emit when the file is stdin/stdout (``-``)."""

    result: Any
    stdout_text: str | None = None


def env_file(
    *,
    path: str,
    raw: str,
    source_name: str,
    cudas: Sequence[str] = (),
    drivers: Sequence[str] = (),
    drivers_file: Path | None = None,
    write: bool = False,
    check: bool = False,
    channels: Sequence[str] = (),
    offline: bool = False,
    allow_major: bool = False,
    solver: SolverChoice = "auto",
    inside_conda: bool = False,
    ui: Ui | None = None,
) -> Outcome:
    """Move the CUDA group of an environment file or pixi manifest (a diff unless ``write``).

    The candidates are checked through the ``Backend`` port opened here without a prefix (a new env
    of the file's specs on its channels, or ``-c``, else the backend's own): inside a conda install
    that is conda's configured solver and ``.condarc``; ``offline`` checks nothing.
    Exit code: 0 fits or changed, 1 ``--check`` and it would change, 2 refused (the reason says why).
    """
    from condafix.backends import choice
    from condafix.env import condarc
    from condafix.files import envfile
    from condafix.knowledge.cuda import CudaVersion

    check_channels(channels)
    ui = ui or Ui()
    condarc.refuse_unreadable(ui.env)  # conda's configuration: one conda cannot read is one line, exit 2

    def plan(cuda: CudaVersion, backend: Any) -> tuple[Any, str]:
        if is_pixi_manifest(source_name, raw):
            from condafix.files import pixifile

            return pixifile.plan_manifest(
                raw, source_name, cuda, channels=channels, backend=backend, allow_major=allow_major
            )
        return envfile.plan_file(raw, source_name, cuda, channels=channels, backend=backend, allow_major=allow_major)

    try:
        target = target_cuda(cudas=cudas, drivers=drivers, drivers_file=drivers_file, env=ui.env)
    except UsageError:  # no driver, no --cuda: the file is read first, and one without CUDA needs neither
        read, _text = plan(CudaVersion.parse("12.0"), None)  # a bad file is reported as such, not the driver
        if read.status == "ok" and not read.changed and not read.group:
            return Outcome(kind="env", result=dataclasses.replace(read, target_cuda=""))
        raise
    cuda = CudaVersion.parse(target.cuda)
    backend = (
        None
        if offline
        else choice.open_backend(
            solver, prefix=None, offline=False, env=ui.env, configured=inside_conda, relay=ui.relay
        )
    )
    result, new_raw = plan(cuda, backend)
    if write and path == "-":
        return Outcome(kind="env", result=EnvFileOutcome(result=result, stdout_text=new_raw), view="stdout")
    if write and result.changed:
        from condafix.files.atomic import write_atomically

        backup = write_atomically(Path(path), new_raw, expected=raw.encode("utf-8"))
        result = dataclasses.replace(result, written=True, backup=str(backup) if backup else None)
    code = 2 if result.status == "refused" else 1 if check and result.changed and not result.written else 0
    return Outcome(kind="env", result=result, code=code)


def is_pixi_manifest(name: str, raw: str) -> bool:
    """pixi.toml, or a pyproject.toml with a ``[tool.pixi]`` table: TOML goes to the pixi reader."""
    return Path(name).name.endswith(".toml")  # pixifile says so when a pyproject.toml has no [tool.pixi]


# ---------------------------------------------------------------- lockfiles


def lock(
    *,
    paths: Sequence[str],
    cudas: Sequence[str] = (),
    drivers: Sequence[str] = (),
    drivers_file: Path | None = None,
    check: bool = False,
    ui: Ui | None = None,
) -> Outcome:
    """The locked CUDA of every env and platform against the target; exit as doctor's with ``check``."""
    from condafix.files import lockfile
    from condafix.knowledge.cuda import CudaVersion

    ui = ui or Ui()
    files = list(paths) or lockfile.default_files()
    for path in files:  # the files before the driver: a missing file is the error to report
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file" if not Path(path).exists() else f"{path}: not a file")
    target = target_cuda(cudas=cudas, drivers=drivers, drivers_file=drivers_file, env=ui.env)
    cuda = CudaVersion.parse(target.cuda)
    reports = tuple(lockfile.check_file(Path(p), cuda) for p in files)
    run = lockfile.LockRun(target_cuda=target.cuda, target_source=target.source, reports=reports)
    code = max((r.check_exit_code for r in reports), default=0) if check else 0
    return Outcome(kind="lock", result=run, code=code)


# ---------------------------------------------------------------- proxy


def proxy(*, channels: Sequence[str] = (), check: bool = False, connect: bool = True, ui: Ui | None = None) -> Outcome:
    """Diagnose proxy settings (variables, .condarc, CA bundles)."""
    from condafix import proxy as proxy_mod

    ui = ui or Ui()
    report = proxy_mod.diagnose(ui.env, channels, connect=connect)
    worst = max(({"error": 2, "warning": 1, "info": 0}[f.severity] for f in report.findings), default=0)
    return Outcome(kind="proxy", result=report, code=worst if check else 0)


# ---------------------------------------------------------------- conda's solve guard and error hints


def cuda_error_hints(text: str, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Hints for conda's ``__cuda`` solver errors, decided by what this machine really has."""
    from condafix.detect import driver as driver_mod
    from condafix.errors import CondafixError

    env = os.environ if env is None else env
    try:
        info = driver_mod.detect(env=env)
    except CondafixError:
        info = None
    if info is not None and info.cuda is not None:
        return [
            (
                "condafix_cuda_driver",
                f"this machine's driver supports CUDA {info.cuda} (from {info.source}): pin the toolkit to it, "
                f'e.g. "cuda-version={info.cuda}", or upgrade the driver for a newer CUDA',
            )
        ]
    return [
        (
            "condafix_cuda_override",
            "no NVIDIA driver was found here, so conda exposes no __cuda. On a GPU-less build or CI host set "
            "CONDA_OVERRIDE_CUDA to the target machines' CUDA (e.g. CONDA_OVERRIDE_CUDA=12.4); on a GPU "
            "machine install or repair the NVIDIA driver (`condafix doctor` says what failed)",
        )
    ]
