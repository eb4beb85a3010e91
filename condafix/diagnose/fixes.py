"""Doctor's fixes, least change first: bring nvJitLink up to NVVM, then move the env's CUDA down, then the
driver; never to a newer CUDA, never across a major without saying so, never over a package that holds
the pin (``knowledge.pinrule``). A fix says what checked it (a table rule covering the case); one that
nothing checked is printed "unchecked": doctor never solves (it must stay fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from condafix.detect.driver import DriverInfo
from condafix.diagnose.compilepath import CompilePath, nvjitlink_spec
from condafix.env.envinfo import Component, EnvInfo
from condafix.knowledge import pinrule, roles
from condafix.knowledge.cuda import CudaVersion, knowledge, pins_for

if TYPE_CHECKING:  # verdicts are handed in by the doctor (diagnose.verdict imports this module)
    from condafix.diagnose.verdict import ComponentVerdict

_CTK_ROLES = frozenset({"nvvm", "nvrtc", "nvjitlink", "runtime", "toolkit"})


def _v(text: str | None) -> CudaVersion | None:
    return CudaVersion.parse(text) if text else None


@dataclass(frozen=True, kw_only=True)
class Fix:
    """What to run: the pins and the exact command, plus alternatives the user may prefer."""

    summary: str
    pins: tuple[str, ...]
    commands: tuple[str, ...]
    alternatives: tuple[str, ...] = ()
    #: what checked the fix (a table rule that covers the case); None: unchecked (printed so)
    checked: str | None = None


def manager_target(env: EnvInfo) -> str:
    """``-n NAME`` where conda's own ``-n`` finds this env, else the shell-quoted ``-p PATH``."""
    if env.prefix is None:
        return ""
    from condafix.env import condarc

    return condarc.target_args(Path(env.prefix), condarc.load()) + " "


def _pip_pin(comp: Component, target: CudaVersion) -> str:
    return f'"{comp.name}=={target}.*"'


def _conda_channel(env: EnvInfo, names: tuple[str, ...]) -> str:
    return next((c.channel for c in env.components if c.name in names and c.channel), "conda-forge")


def _nvjitlink_fix(env: EnvInfo, paths: tuple[CompilePath, ...], target: CudaVersion | None) -> Fix | None:
    """First fix when nvJitLink is the blocker: it is older than NVVM, or numba-cuda would link with it."""
    for path in paths:
        writer = _v(path.writer_cuda)
        if writer is None or (target is not None and writer.major > target.major):
            continue
        older = path.outcome == "link-fails"
        absent = (
            path.missing == "nvjitlink" and path.outcome == "jit-fails" and writer >= CudaVersion(major=12, minor=3)
        )
        if not (older or absent):
            continue
        spec = nvjitlink_spec(env, writer)
        if spec is None:
            continue
        manager, pin = spec
        if manager == "pip":
            command = f'pip install "{pin}"'
        else:
            channel = _conda_channel(env, ("libnvjitlink", "cuda-version", "cuda-nvvm-impl", "cuda-nvcc-impl"))
            command = f'conda install {manager_target(env)}-c {channel} "{pin}"'
        what = "up to" if older else "of the same CUDA as"
        summary = (
            f"bring nvJitLink {what} NVVM's CUDA {writer}: {path.consumer} {path.version} then links to SASS, "
            "which this driver runs (minor version compatibility)"
        )
        link = _v(path.linker_cuda)
        where = "nvJitLink's CUDA"
        if link is not None and target is not None and link > target:  # never a pin above the driver's CUDA
            link, where = target, "the driver's CUDA (below nvJitLink's)"
        alternatives = (_nvvm_down(env, link, where),) if older and link is not None else ()
        return Fix(summary=summary, pins=(pin,), commands=(command,), alternatives=tuple(a for a in alternatives if a))
    return None


def _nvvm_down(env: EnvInfo, link: CudaVersion, where: str = "nvJitLink's CUDA") -> str | None:
    """The other way round: NVVM down to the nvJitLink's CUDA."""
    nvvm = [c for c in env.components if c.role == "nvvm" and c.cuda and CudaVersion.parse(c.cuda) > link]
    pip = [c for c in nvvm if c.source == "pip"]
    if pip:
        return f"bring NVVM down to {where} {link}: pip install " + " ".join(_pip_pin(c, link) for c in pip)
    pin = knowledge().newest_cuda_version_pin(link)
    if nvvm and pin is not None:
        channel = _conda_channel(env, ("cuda-version",))
        command = f'conda install {manager_target(env)}-c {channel} "cuda-version={pin}"'
        return f"bring NVVM down to {where} {link}: {command}"
    return None


def _old_numba_cuda_alternative(paths: tuple[CompilePath, ...], target: CudaVersion) -> str | None:
    """numba-cuda >= 0.16 links to SASS, which runs on an older minor of the same major only (SASS never
    crosses a major: an 11.4 driver runs no CUDA 12 SASS)."""
    for path in paths:
        writer = _v(path.writer_cuda)
        if writer is None or writer.major != target.major:
            continue
        if path.kind == "numba-cuda" and path.uses_driver_jit and path.missing != "nvjitlink":
            return (
                f"upgrade numba-cuda to >= 0.16 with nvJitLink of CUDA {writer}: it then links through "
                "nvJitLink into SASS and the env's CUDA can stay (unchecked)"
            )
    return None


def plan_fix(
    env: EnvInfo,
    driver: DriverInfo,
    verdicts: tuple[ComponentVerdict, ...],
    paths: tuple[CompilePath, ...] = (),
) -> Fix | None:
    """Least change first: bring nvJitLink up to NVVM, then move the env's CUDA down, then the driver."""
    link = _nvjitlink_fix(env, paths, driver.cuda_version)
    down = _down_fix(env, driver, verdicts)
    if link is None:
        if down is not None and driver.cuda_version is not None:
            extra = _old_numba_cuda_alternative(paths, driver.cuda_version)
            if extra:
                down = Fix(
                    summary=down.summary,
                    pins=down.pins,
                    commands=down.commands,
                    alternatives=(*down.alternatives, extra),
                    checked=down.checked,
                )
        return down
    if down is None:
        return link
    moved = down.summary + (f": {'; '.join(down.commands)}" if down.commands else "")
    return Fix(summary=link.summary, pins=link.pins, commands=link.commands, alternatives=(moved, *down.alternatives))


def pin_holders(env: EnvInfo, pins: tuple[str, ...]) -> list[pinrule.Holder]:
    """Installed packages whose own depends/constrains (conda-meta) rule out one of ``pins``."""
    found: list[pinrule.Holder] = []
    for pin in pins:
        family, _, version = pin.partition("=")
        found += pinrule.holders(
            env.cuda_requirements,
            family,
            CudaVersion.parse(version),
            pinrule.table_versions(family),
            skip=roles.moves_with_pin,
        )
    return found


def _major_fix(env: EnvInfo, target: CudaVersion, upgrade_text: str) -> Fix:
    """Across a major the only fixes are a driver for the env's CUDA or an env of the driver's major."""
    kb = knowledge()
    alts: list[str] = []
    if env.kind == "venv" or not any(c.source == "conda" for c in env.components):
        alts.append(
            f"move the venv's CUDA wheels to CUDA {target.major} (crosses a major: replace each "
            f"-cu{target.major + 1} wheel with its -cu{target.major} build; unchecked)"
        )
    else:
        alternative = kb.newest_cuda_version_pin(target)
        if alternative is not None:
            pin = f"cuda-version={alternative}"
            held = pin_holders(env, (pin,))
            text = (
                f"move the env to CUDA {target.major} (crosses a major: every CUDA package is replaced; unchecked: "
                f"condafix cuda {manager_target(env)}--cuda {target} --allow-major checks it with a solve): "
                f'conda install {manager_target(env)}-c {_conda_channel(env, ("cuda-version",))} "{pin}"'
            )
            alts.append(text + (f"; but {pinrule.held_text(held, pin)}" if held else ""))
    return Fix(
        summary=upgrade_text,
        pins=(),
        commands=(),
        alternatives=tuple(alts),
        checked="the driver table (data/cuda.json min_driver)",
    )


def _down_fix(env: EnvInfo, driver: DriverInfo, verdicts: tuple[ComponentVerdict, ...]) -> Fix | None:
    """The smallest change that makes the env's CUDA <= the driver's, without crossing a major.

    A driver upgrade is for the newest CUDA that refused (always newer than the driver's); a pin is
    checked against conda-forge's table and every installed record's own CUDA requirement (conda-meta):
    a package that rules it out is named, never run over with "nothing else changes"."""
    target = driver.cuda_version
    bad = [v for v in verdicts if v.verdict == "newer-than-driver"]
    if target is None or not bad:
        return None
    refused = max(CudaVersion.parse(v.cuda or "0.0") for v in bad)
    upgrade_text = pinrule.driver_for(refused)
    if refused.major > target.major:
        return _major_fix(env, target, upgrade_text)
    pins: list[str] = []
    conda_names = {c.name for c in env.components if c.source == "conda"}
    # PTX shipped inside a package (a framework's own build) gets no env pin: the pin does not rebuild it
    pinnable = [v for v in bad if v.source == "conda" and v.role != "framework"]
    if pinnable and (
        "cudatoolkit" in conda_names or conda_names & {c.name for c in env.components if c.role in _CTK_ROLES | {"pin"}}
    ):
        pins = list(pins_for(target, conda_names))
    held = pin_holders(env, tuple(pins))
    if held:
        names = ", ".join(dict.fromkeys(h.name for h in held))
        summary = f"{pinrule.held_text(held, ' '.join(pins))}; {upgrade_text} and keep the env as it is"
        others = [
            f"replace {names} with a build for CUDA <= {target}, then pin {' '.join(pins)} (unchecked: "
            f"condafix cuda {manager_target(env)}--cuda {target} checks it with a full solve)"
        ]
        return Fix(
            summary=summary,
            pins=(),
            commands=(),
            alternatives=tuple(others),
            checked="conda-meta: the installed records' own requirements",
        )
    commands: list[str] = []
    if pins:
        channel = _conda_channel(env, ("cuda-version", "cudatoolkit"))
        quoted = " ".join(f'"{p}"' for p in pins)
        commands.append(f"conda install {manager_target(env)}-c {channel} {quoted}")
    bad_names = {v.name for v in bad}
    pip_wheels = [c for c in env.components if c.source == "pip" and c.name in bad_names and c.role != "framework"]
    if pip_wheels:
        commands.append("pip install " + " ".join(_pip_pin(c, target) for c in pip_wheels))
        pins += [f"{c.name}=={target}.*" for c in pip_wheels]
    if not commands:
        return Fix(
            summary=upgrade_text,
            pins=(),
            commands=(),
            alternatives=(),
            checked="the driver table (data/cuda.json min_driver)",
        )
    pin = knowledge().newest_cuda_version_pin(target)
    chosen = pin if pin is not None and "cudatoolkit" not in conda_names else target
    summary = f"move the env's CUDA down to {chosen} (the driver supports CUDA {target})"
    others = [upgrade_text + " and keep the env as it is"]
    if pins and env.prefix and env.kind == "conda":
        others.insert(
            0,
            f"condafix cuda {manager_target(env)}--cuda {target} checks the pin with a full solve on the "
            "channel first (add --apply to make the change, with a snapshot to roll back)",
        )
    checked = (
        "conda-forge's cuda-version table has the pin and no installed record's own requirement rules it out "
        "(conda-meta); not solved"
        if not pip_wheels
        else None
    )
    return Fix(summary=summary, pins=tuple(pins), commands=tuple(commands), alternatives=tuple(others), checked=checked)
