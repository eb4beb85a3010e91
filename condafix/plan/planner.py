"""Plan the fix with a real solver: the newest cuda-version/cudatoolkit minor <= the target CUDA.

Candidates come from the channel (never from a table), the whole env is re-solved with its
installed records locked, and each candidate that does not solve is recorded before the next
lower one is tried. A backend whose solver picks the newest version itself (``picks_newest``: conda's)
gets the family as one range instead (``cuda-version >=12.0,<12.5.0a0``), so the channel is loaded once,
by its solver; the channel's versions are read only when nothing in the range solves, to name the
blocker. Nothing on disk changes here except rattler's repodata cache.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from condafix import progress
from condafix.change.installer import Move
from condafix.detect.target import TargetCuda
from condafix.diagnose.verdict import env_cuda
from condafix.env import condameta, envinfo
from condafix.errors import UsageError
from condafix.knowledge import pinrule, roles
from condafix.knowledge.cuda import CudaVersion
from condafix.plan import blocking
from condafix.plan.blocking import Blocker, Family
from condafix.plan.solver import Backend, InstallRequest, Record, SolveFailed
from condafix.progress_view import plural
from condafix.schema import to_jsonable

Status = Literal["change", "nothing-to-do", "blocked"]
Step = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Change:
    action: Literal["downgrade", "upgrade", "install", "remove", "rebuild"]
    name: str
    from_version: str | None
    from_build: str | None
    to_version: str | None
    to_build: str | None
    channel: str | None
    size: int | None


@dataclass(frozen=True, kw_only=True)
class SolveAttempt:
    pin: str
    solved: bool
    detail: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    prefix: str
    status: Status
    reason: str
    target: TargetCuda
    env_cuda: str | None
    family: Family | None
    channels: tuple[str, ...]
    candidates: tuple[str, ...] = ()
    pin: str | None = None
    specs: tuple[str, ...] = ()
    attempts: tuple[SolveAttempt, ...] = ()
    changes: tuple[Change, ...] = ()
    unchanged: int = 0
    blockers: tuple[Blocker, ...] = ()
    commands: tuple[str, ...] = ()
    offline: bool = False
    cache_age_s: float | None = None
    solve_seconds: float = 0.0
    solver: str = "rattler"
    pins: tuple[str, ...] = ()
    records: tuple[Record, ...] = field(default=(), repr=False, compare=False, metadata={"json": False})


# ---------------------------------------------------------------- channels


_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/label/[A-Za-z0-9_.-]+)?$")


def normalize_channel(text: str) -> str:
    """Accept a name, an http(s) URL, a file:// URL or a local directory; one clear error otherwise."""
    value = text.strip()
    if _CHANNEL_NAME.match(value):
        return value
    if "\x00" in value or any(ch in value for ch in "\n\r"):
        raise UsageError(f"not a channel: {value!r} (control characters)")
    try:
        parsed = urlparse(value)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for http://[::1
        raise UsageError(f"not a channel URL: {value!r} ({exc})") from None
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc or " " in value:
            raise UsageError(f"not a channel URL: {value!r}")
        return value.rstrip("/")
    if parsed.scheme == "file":
        if not Path(parsed.path).is_absolute() or not Path(parsed.path).is_dir():
            raise UsageError(f"channel directory does not exist: {value!r}")
        return value.rstrip("/")
    if not parsed.scheme and (value.startswith(("/", "./", "../", "~"))):
        try:
            path = Path(value).expanduser().resolve()
        except RuntimeError:  # ~user for a user that does not exist
            raise UsageError(f"channel directory does not exist: {value!r} (no such user's home)") from None
        if not path.is_dir():
            raise UsageError(f"channel directory does not exist: {value!r}")
        return path.as_uri()
    raise UsageError(f"not a channel: {value!r} (use a name, an https:// URL, file:// URL or a directory)")


def condarc_channels(env: Mapping[str, str]) -> list[str]:
    """``channels:`` as conda merges them over every condarc it reads (``env.condarc``), ``defaults`` left out."""
    from condafix.env import condarc

    return [c for c in condarc.load(env).channels if c != "defaults"]


def pick_channels(cli: Sequence[str], env_info: envinfo.EnvInfo, env: Mapping[str, str]) -> tuple[str, ...]:
    if cli:
        return tuple(dict.fromkeys(normalize_channel(c) for c in cli))
    found = [c for c in env_info.channels if c and c != "pypi"]
    return tuple(dict.fromkeys(found or condarc_channels(env) or ["conda-forge"]))


# ---------------------------------------------------------------- the plan


def env_family(env_info: envinfo.EnvInfo) -> Family | None:
    names = {c.name for c in env_info.components if c.source == "conda"}
    if "cudatoolkit" in names:
        return "cudatoolkit"
    roles = {c.role for c in env_info.components if c.source == "conda"}
    if "cuda-version" in names or roles & {"nvvm", "nvrtc", "nvjitlink", "runtime"}:
        return "cuda-version"
    return None


def candidate_minors(versions: Sequence[str], *, major: int, limit: CudaVersion) -> list[CudaVersion]:
    """Distinct major.minor of the channel's records, same major, <= limit, newest first."""
    found = set()
    for text in versions:
        try:
            version = CudaVersion.parse(text)
        except UsageError:
            continue
        if version.major == major and version <= limit:
            found.add(version)
    return sorted(found, reverse=True)


def request_specs(env_info: envinfo.EnvInfo, installed_names: Sequence[str], pins: Sequence[str]) -> list[str]:
    """The user's requested specs (CUDA parts unpinned, so they can move), every other installed name, the pins.

    Every installed package is asked for by name, not only the history's requests: a solve from the
    requests alone drops whatever the history does not name and nothing depends on (a package added
    by another tool, or by `conda install --no-deps`), and a CUDA fix must never remove a user's package.
    """
    requested = list(env_info.requested_specs)
    named = {condameta.spec_name(spec) for spec in requested}
    specs = requested + [name for name in installed_names if name not in named]
    pinned = {condameta.spec_name(p) for p in pins}
    out: list[str] = []
    for spec in specs:
        name = condameta.spec_name(spec)
        if name in pinned:
            continue
        out.append(name if roles.moves_with_pin(name) else spec.split("::")[-1])
    return list(dict.fromkeys(out)) + list(pins)


def diff(installed: Sequence[Record], solved: Sequence[Record], backend: Backend) -> tuple[list[Change], int]:
    """What the change would do, by name: version/build changes, installs and removals."""
    before = {r.name: r for r in installed}
    after = {r.name: r for r in solved}
    changes: list[Change] = []
    unchanged = 0
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and old.version == new.version and old.build == new.build:
            unchanged += 1
            continue
        if new is None:
            action: Any = "remove"
        elif old is None:
            action = "install"
        elif backend.version_less(new.version, old.version):
            action = "downgrade"
        elif backend.version_less(old.version, new.version):
            action = "upgrade"
        else:
            action = "rebuild"
        changes.append(
            Change(
                action=action,
                name=name,
                from_version=old.version if old else None,
                from_build=old.build if old else None,
                to_version=new.version if new else None,
                to_build=new.build if new else None,
                channel=envinfo.channel_name(new.channel) if new is not None and new.channel else None,
                size=new.size if new is not None else None,
            )
        )
    return changes, unchanged


def equivalent_commands(
    env_info: envinfo.EnvInfo, channels: Sequence[str], pins: Sequence[str], env: Mapping[str, str]
) -> tuple[str, ...]:
    """The same change for the user's own manager(s), as ``--via`` runs it: every channel (and only
    those: ``--override-channels``), every pin, and ``-n`` only where conda's ``-n`` finds this env."""
    import shlex
    import shutil

    from condafix.env import condarc

    managers = [m for m in ("conda", "mamba", "micromamba") if shutil.which(m)]
    if env.get("MAMBA_EXE") and "micromamba" not in managers:
        managers.append("micromamba")
    managers = managers or ["conda"]
    where = condarc.target_args(Path(env_info.prefix or "."), condarc.load(env))
    chans = " ".join(f"-c {shlex.quote(c)}" for c in channels)
    quoted = " ".join(f'"{p}"' for p in pins)  # pins are plain match specs: no $ or " inside
    return tuple(f"{m} install {where} --override-channels {chans} {quoted}" for m in managers)


def plan(
    *,
    prefix: Path,
    target: TargetCuda,
    channels: Sequence[str] = (),
    offline: bool = False,
    allow_major: bool = False,
    env: Mapping[str, str] | None = None,
    step: Step = lambda _msg: None,
    backend: Backend,
) -> Plan:
    """Plan the smallest solver-checked change that makes the env's CUDA <= the target.

    ``backend``: the solver (``backends.choice.open_backend``); the planner never picks one itself."""
    env = os.environ if env is None else env
    env_info = envinfo.read_env(prefix, "-p")
    chosen_channels = backend.channels([normalize_channel(c) for c in channels], pick_channels((), env_info, env))
    target_cuda = CudaVersion.parse(target.cuda)
    current = env_cuda(env_info)
    family = env_family(env_info)
    base = Plan(
        prefix=str(prefix),
        status="nothing-to-do",
        reason="",
        target=target,
        env_cuda=str(current) if current else None,
        family=family,
        channels=tuple(chosen_channels),
        offline=offline,
        solver=getattr(backend, "label", backend.name),
    )
    if family is None or current is None:
        return replace(base, reason="no conda CUDA toolkit in this env")
    if current <= target_cuda or current.major < target_cuda.major:
        why = f"the env's CUDA {current} already runs on a CUDA {target_cuda} driver; condafix never moves it up"
        return replace(base, reason=why)
    if current.major > target_cuda.major and not allow_major:
        why = (
            f"the env is CUDA {current} and the target is CUDA {target_cuda}: that crosses a major (SASS never "
            f"runs across one); {pinrule.driver_for(current)}, or pass --allow-major to plan a CUDA "
            f"{target_cuda.major} env (every CUDA package is replaced)"
        )
        return replace(base, status="blocked", reason=why)

    quiet = blocking.nothing_fails(env_info, target, env)
    if quiet is not None:
        return replace(base, reason=quiet)
    age = backend.cache_age(chosen_channels)
    installed = backend.installed()
    platform = _platform(installed)
    major = target_cuda.major if allow_major else current.major
    names = [r.name for r in installed]
    attempts: list[SolveAttempt] = []
    started = time.perf_counter()
    base = replace(base, cache_age_s=age)

    def solved_plan(reason: str, pins: list[str], specs: list[str], solved: list[Record]) -> Plan:
        """The plan of a solve that worked, whichever way it was found (one range solve or a candidate)."""
        changes, unchanged = diff(installed, solved, backend)
        return replace(
            base,
            status="change" if changes else "nothing-to-do",
            reason=reason,
            pin=pins[0],
            pins=tuple(pins),
            specs=tuple(specs),
            attempts=tuple(attempts),
            changes=tuple(changes),
            unchanged=unchanged,
            commands=equivalent_commands(env_info, chosen_channels, pins, env),
            solve_seconds=time.perf_counter() - started,
            records=tuple(solved),
        )

    if getattr(backend, "picks_newest", False):
        # the solver picks the minor in one solve: the channel is loaded once, by the solver
        ranged, attempt = _solve_range(
            backend, env_info, installed, family, major, target, chosen_channels, platform, step
        )
        attempts.append(attempt)
        if ranged is not None:
            pins, specs, solved = ranged
            reason = (
                f"newest {family} <= CUDA {target_cuda} that solves with the rest of the env "
                f"({backend.name} picked it in one solve): {pins[0].split('=', 1)[1]}"
            )
            return solved_plan(reason, pins, specs, solved)
    with progress.phase(step, "repodata", f"repodata for {family} from {', '.join(chosen_channels)}"):
        versions = [r.version for r in backend.query(chosen_channels, [family], platform=platform)]
    candidates = candidate_minors(versions, major=major, limit=target_cuda)
    base = replace(base, candidates=tuple(str(c) for c in candidates))
    if not candidates:
        return replace(
            base, status="blocked", reason=f"the channel has no {family} for CUDA {major}.x <= {target_cuda}"
        )
    # after a failed range solve no candidate solves: only the blockers are left to name
    to_try = [] if attempts else candidates
    if to_try:
        progress.begin(step, "solve", f"solving with {backend.name}")
    for number, candidate in enumerate(to_try, 1):
        pins = [f"{family}={candidate}"]
        if family == "cudatoolkit" and "cuda-version" in names:
            pins.append(f"cuda-version={candidate}")
        specs = request_specs(env_info, names, pins)
        step(f"solving with {pins[0]} ({number}/{len(candidates)}, {backend.name})")
        try:
            solved = backend.solve(
                channels=chosen_channels,
                platform=platform,
                cuda=str(target_cuda),
                cuda_arch=target.cuda_arch,
                pins=pins,
                specs=specs,
            )
        except SolveFailed as failed:
            attempts.append(SolveAttempt(pin=pins[0], solved=False, detail=_first_lines(failed.message)))
            continue
        attempts.append(SolveAttempt(pin=pins[0], solved=True, detail="solved"))
        progress.end(step, f"solved with {pins[0]} ({number} of {plural(len(candidates), 'candidate')} tried)")
        reason = f"newest {family} <= CUDA {target_cuda} that solves with the rest of the env: {candidate}"
        return solved_plan(reason, pins, specs, solved)
    if to_try:
        progress.end(step, f"no candidate solves ({len(candidates)} tried)")
    blockers = blocking.find_blockers(installed, family, candidates[0], versions, backend.spec_matches)
    why = f"no {family} <= {target_cuda} solves with this env (see the attempts)"
    if blockers:
        who = ", ".join(dict.fromkeys(b.name for b in blockers))
        sentence = pinrule.held_text([blocking.holder(b) for b in blockers], f"{family}={candidates[0]}")
        upgrade = pinrule.driver_for(current)
        why = f"no {family} <= {target_cuda} solves: {sentence}; {upgrade} and keep the env as it is, or replace {who}"
    else:
        movers = sorted({r.name for r in installed if roles.moves_with_pin(r.name) and r.name != family})
        offered = backend.query(chosen_channels, movers, platform=platform) if movers else []
        missing = blocking.missing_builds(installed, family, candidates, offered, backend.spec_matches)
        if missing:
            blockers = missing
            which = ", ".join(b.name for b in missing)
            solver_said = attempts[0].detail if attempts else ""
            why = (
                f"no {family} <= {target_cuda} solves: the channel has no build of {which} for {family} "
                f"{', '.join(str(c) for c in candidates)}; these parts move with the pin, so that is the "
                f"channel's gap, not this env's (the solver: {solver_said})"
            )
    return replace(
        base,
        status="blocked",
        reason=why,
        attempts=tuple(attempts),
        blockers=tuple(blockers),
        solve_seconds=time.perf_counter() - started,
    )


def _range_pin(family: str, major: int, limit: CudaVersion) -> str:
    """Every ``major.x`` release <= ``limit`` (12.4.1 included, as :func:`candidate_minors` counts it)."""
    return f"{family} >={major}.0,<{major}.{limit.minor + 1}.0a0" if major == limit.major else f"{family} >={major}.0"


def _solve_range(
    backend: Backend,
    env_info: envinfo.EnvInfo,
    installed: Sequence[Record],
    family: Family,
    major: int,
    target: TargetCuda,
    channels: Sequence[str],
    platform: str,
    step: Step,
) -> tuple[tuple[list[str], list[str], list[Record]] | None, SolveAttempt]:
    """One solve with the family ranged (newest first is the solver's own preference), then the exact pins
    of its pick; ``None`` with the failed attempt when nothing in the range solves."""
    limit = CudaVersion.parse(target.cuda)
    ranged = [_range_pin(family, major, limit)]
    if family == "cudatoolkit" and any(r.name == "cuda-version" for r in installed):
        ranged.append(_range_pin("cuda-version", major, limit))
    specs = request_specs(env_info, [r.name for r in installed], ranged)
    progress.begin(step, "solve", f"solving with {backend.name}")
    step(f"solving with {ranged[0]} ({backend.name} picks the newest)")
    try:
        solved = backend.solve(
            channels=channels, platform=platform, cuda=str(limit), cuda_arch=target.cuda_arch, pins=ranged, specs=specs
        )
    except SolveFailed as failed:
        progress.end(step, f"nothing in {ranged[0]} solves")
        return None, SolveAttempt(pin=ranged[0], solved=False, detail=_first_lines(failed.message))
    picked = {r.name: r.version for r in solved}
    if family not in picked:  # not seen from conda's solvers; a wrong answer is not a plan
        progress.end(step, f"the solver's answer holds no {family}")
        return None, SolveAttempt(pin=ranged[0], solved=False, detail=f"the solver's answer holds no {family}")
    chosen = CudaVersion.parse(picked[family])
    pins = [f"{family}={chosen}"] + ([f"cuda-version={chosen}"] if len(ranged) > 1 else [])
    progress.end(step, f"solved: {backend.name} picked {pins[0]} in {ranged[0]}")
    exact = [p for p in specs if p not in ranged] + pins
    return (pins, exact, solved), SolveAttempt(
        pin=pins[0], solved=True, detail=f"solved: the solver's pick in {ranged[0]}"
    )


def _first_lines(text: str, count: int = 6) -> str:
    return " / ".join([line.strip() for line in text.splitlines() if line.strip()][:count])


def _platform(installed: Sequence[Record]) -> str:
    """The env's subdir from its installed records (linux-64 etc.), else this machine's."""
    for record in installed:
        if record.subdir and record.subdir != "noarch":
            return record.subdir
    import platform
    import sys

    machine = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le"}
    system = {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    return f"{system}-{machine.get(platform.machine().lower(), platform.machine().lower())}"


def install_request(plan: Plan, *, via: str | None = None) -> InstallRequest:
    """A plan as ``change.apply`` and an installer take it: the solved records, the moves, the pins, and
    the command conda's history records (``via``: the tool named on the command line, if any)."""
    pins = plan.pins or ((plan.pin,) if plan.pin else ())
    command = f"condafix cuda -p {plan.prefix} --apply --cuda {plan.target.cuda}" + (f" --via {via}" if via else "")
    return InstallRequest(
        prefix=Path(plan.prefix),
        cuda=plan.target.cuda,
        channels=plan.channels,
        pins=tuple(pins),
        specs=plan.specs,
        records=plan.records,
        moves=tuple(
            Move(
                name=c.name,
                from_version=c.from_version,
                from_build=c.from_build,
                to_version=c.to_version,
                to_build=c.to_build,
            )
            for c in plan.changes
        ),
        command=command,
        plan=to_jsonable(plan),
    )
