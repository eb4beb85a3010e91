"""What blocks a plan, and when an env needs no plan: the installed packages whose own requirement holds the
pin (the one rule, ``knowledge.pinrule``), the parts that move with the pin whose build the channel lacks (the
channel's gap, not the env's), and the warning-only env that is nothing to do."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from condafix.detect.target import TargetCuda
from condafix.env import envinfo
from condafix.knowledge import pinrule, roles
from condafix.knowledge.cuda import CudaVersion, pins_for
from condafix.plan.solver import Record

Family = Literal["cuda-version", "cudatoolkit"]


@dataclass(frozen=True, kw_only=True)
class Blocker:
    """What rules out every candidate: an installed package's own requirement (``kind`` requirement, the
    env's), or a part that moves with the pin whose build the channel lacks (``missing-build``: the
    channel's gap, not the env's fault; ``requirement`` then says which builds are missing)."""

    name: str
    version: str
    build: str
    requirement: str
    needs_cuda: str | None
    needs_driver: str | None
    kind: Literal["requirement", "missing-build"] = "requirement"


def find_blockers(
    installed: Sequence[Record],
    family: Family,
    best: CudaVersion,
    channel_versions: Sequence[str],
    spec_matches: Callable[[str, str, str], bool],
) -> list[Blocker]:
    """Installed packages whose own requirement on the family package excludes ``best`` (the one rule,
    ``knowledge.pinrule``). Parts that move with the pin (``roles.moves_with_pin``: CTK components and
    libraries too, not only the pin movers) are skipped: other builds of them follow the pin."""
    requirements = [
        req
        for record in installed
        for req in pinrule.requirements_of(record.name, record.version, record.build, record.depends, record.constrains)
    ]
    found = pinrule.holders(requirements, family, best, channel_versions, spec_matches, skip=roles.moves_with_pin)
    return [
        Blocker(
            name=h.name,
            version=h.version,
            build=h.build,
            requirement=h.requirement,
            needs_cuda=h.needs_cuda,
            needs_driver=h.needs_driver,
        )
        for h in found
    ]


def missing_builds(
    installed: Sequence[Record],
    family: Family,
    candidates: Sequence[CudaVersion],
    offered: Sequence[Record],
    spec_matches: Callable[[str, str, str], bool],
) -> list[Blocker]:
    """Installed parts that move with the pin for which the channel (``offered``: its records of those names)
    has no build that takes any candidate: the solver's reason, and the channel's gap, not the env's."""
    out: list[Blocker] = []
    for record in installed:
        if not roles.moves_with_pin(record.name) or record.name == family:
            continue
        builds = [r for r in offered if r.name == record.name]
        lacking = [
            c
            for c in candidates
            if not any(all(spec_matches(d, family, str(c)) for d in (*r.depends, *r.constrains)) for r in builds)
        ]
        if len(lacking) == len(candidates):
            which = ", ".join(str(c) for c in lacking)
            out.append(
                Blocker(
                    name=record.name,
                    version=record.version,
                    build=record.build,
                    requirement=f"a build for {family} {which}",
                    needs_cuda=None,
                    needs_driver=None,
                    kind="missing-build",
                )
            )
    return out


def warning_only(env_info: envinfo.EnvInfo, target: TargetCuda, env: Mapping[str, str]) -> tuple[str, ...] | None:
    """The doctor's verdict on this env for the target: None when something fails (an error), else the
    warnings. A warning-only env is nothing to do: no consumer hands its PTX to the driver's JIT, and SASS
    runs under minor version compatibility; an env pin would not rebuild PTX shipped inside a package."""
    from condafix.detect.driver import DriverInfo
    from condafix.diagnose.verdict import diagnose

    report = diagnose(DriverInfo(cuda=target.cuda, source=target.source, override=True), env_info, env_vars=env)
    if report.status == "mismatch":
        return None
    return tuple(f.message for f in report.findings if f.severity == "warning")


def nothing_fails(env_info: envinfo.EnvInfo, target: TargetCuda, env: Mapping[str, str]) -> str | None:
    """The reason a warning-only env is nothing to do (naming any package that holds the pin), else None."""
    if warning_only(env_info, target, env) is None:
        return None
    cuda = CudaVersion.parse(target.cuda)
    pins = pins_for(cuda, [c.name for c in env_info.components if c.source == "conda"])
    held = [
        h
        for pin in pins
        for h in pinrule.holders(
            env_info.cuda_requirements,
            pin.partition("=")[0],
            CudaVersion.parse(pin.partition("=")[2]),
            pinrule.table_versions(pin.partition("=")[0]),
            skip=roles.moves_with_pin,
        )
    ]
    why = (
        f"nothing fails on a CUDA {cuda} driver: no consumer hands this env's PTX to the driver's JIT, "
        "and SASS runs under minor version compatibility (doctor: warnings only)"
    )
    return why + (f"; {pinrule.held_text(held, ' '.join(pins))}" if held else "")


def holder(blocker: Blocker) -> pinrule.Holder:
    return pinrule.Holder(
        name=blocker.name,
        version=blocker.version,
        build=blocker.build,
        requirement=blocker.requirement,
        needs_cuda=blocker.needs_cuda,
        needs_driver=blocker.needs_driver,
    )
