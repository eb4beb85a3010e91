"""pixi.lock in pixi's own words: which manifest platform each lock key is, and pixi's verdict for a driver.

Lock format 7 (pixi >= 0.71) keys rich platforms by aliases (``p1``, ``p2``, numbered in the manifest's
order) and records the virtual packages each was solved with (``__cuda=12``); pixi maps an alias back to
the manifest platform by identity (subdir and declared virtual packages), and so does this module, by
subdir and virtual packages. pixi's check of a machine (``classify_run_platform``) has three outcomes, and so
has each env here, judged against the target driver:

- runs as resolved: the locked CUDA runs on this driver and the lock was solved for no more than it gives;
- runs only by accident: it runs here, but not as resolved: the lock was solved for a newer ``__cuda`` than
  this driver provides, only minor version compatibility carries it, or it holds a CUDA the manifest's
  declared CUDA could not run (relock drift, within a major or past it);
- cannot run: a locked package depends on a newer ``__cuda`` (pixi install stops:
  ``Virtual package '__cuda >=12.8' does not match …``), or condafix's judgement (another major, PTX JIT).

``pixi lock`` solves with the declared virtual packages only, never the machine's (pixi's
``get_minimal_virtual_packages``), so ``CONDA_OVERRIDE_CUDA`` changes what ``pixi install`` checks, not what
``pixi lock`` solves: the command given per env is pixi's own check for this driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from condafix.errors import CondafixError
from condafix.knowledge.cuda import CudaVersion

if TYPE_CHECKING:
    from condafix.backends.rattler.grammar import LockPlatform, PixiLock
    from condafix.files.lockfile import LockedEnv
    from condafix.files.pixiplatforms import DeclaredPlatform


def _version(text: str) -> CudaVersion | None:
    text = text.strip()
    try:
        return CudaVersion.parse(text if "." in text else f"{text}.0") if text else None
    except CondafixError:
        return None


def platform_cuda(platform: LockPlatform) -> CudaVersion | None:
    """The ``__cuda`` a lock platform was solved with (format 7); None before 7 or without one."""
    for package in platform.virtual_packages:
        name, _, rest = package.partition("=")
        if name.strip() == "__cuda":
            return _version(rest.split("=", 1)[0])
    return None


def lock_names(platforms: Sequence[LockPlatform], declared: Sequence[DeclaredPlatform]) -> dict[str, str]:
    """Lock key -> the manifest's name for it, only where exactly one declared platform has its identity
    (subdir and virtual packages beyond the subdir's defaults), as pixi's ``align_platform_names`` renames."""
    from condafix.files.pixiplatforms import lock_identity

    names = {d.name for d in declared}
    keys = {p.name for p in platforms}
    out: dict[str, str] = {}
    for platform in platforms:
        if platform.name in names:
            continue
        mine = lock_identity(platform.subdir, platform.virtual_packages)
        same = [d for d in declared if d.subdir == platform.subdir and d.identity == mine]
        if len(same) == 1 and same[0].name not in keys:
            out[platform.name] = same[0].name
    return out


def unmet_cuda(depends: Sequence[tuple[str, str]], target: CudaVersion) -> tuple[str, str] | None:
    """The first (package, spec) whose ``__cuda`` requirement a ``target`` driver does not meet: pixi's
    ``unmet_requirements``, the match done by rattler's version spec (``>=12.8``, ``>=12,<13``; bare: any)."""
    from condafix.backends.rattler.grammar import version_matches

    for package, spec in depends:
        wanted = spec.strip()[len("__cuda") :].strip()
        if wanted and not version_matches(wanted, str(target)):
            return package, spec
    return None


def _shown(cuda: CudaVersion) -> str:
    return str(cuda.major) if cuda.minor == 0 else str(cuda)


def pixi_verdicts(
    judged: Sequence[LockedEnv],
    lock: PixiLock,
    manifest: Path | None,
    target: CudaVersion,
    judge: Callable[[str, str, list[tuple[str, str, str]], list[str], CudaVersion], LockedEnv],
) -> tuple[LockedEnv, ...]:
    """Each env in pixi's vocabulary, its platform under the manifest's name (see the module docstring).

    ``judge`` is lockfile's: the lock judged again against the CUDA the manifest declares (drift).
    """
    declared: dict[str, CudaVersion] = {}
    platforms: list[DeclaredPlatform] = []
    if manifest is not None:
        from condafix.files.pixifile import declared_cuda, manifest_platforms

        try:
            raw = manifest.read_text(encoding="utf-8")
            declared = declared_cuda(raw, str(manifest))
            platforms = manifest_platforms(raw, str(manifest))
        except (CondafixError, OSError):
            pass
    names = lock_names(lock.platforms, platforms)
    by_key = {p.name: p for p in lock.platforms}
    records = {(env, platform): (conda, pypi) for env, platform, conda, pypi in lock.envs}
    out = []
    for env in judged:
        key = env.platform
        name = names.get(key, key)
        if by_key.get(key) is not None and by_key[key].virtual_packages:  # format 7: the lock says what it used
            mine = next((p for p in platforms if p.name == name), None)
            resolved = platform_cuda(by_key[key])
            said = mine.cuda if mine is not None else declared.get(env.env)  # the platform's own, when known
        else:  # before 7 the key is a subdir: pixi solved the env with its declared CUDA (system-requirements)
            resolved = said = declared.get(env.env)
        conda, pypi = records.get((env.env, key), ([], []))
        need = unmet_cuda(lock.cuda_depends.get((env.env, key), ()), target)
        at_declared = judge(env.env, key, conda, pypi, said) if said is not None and env.cuda else None
        out.append(
            _verdict(env, name=name, resolved=resolved, said=said, need=need, at_declared=at_declared, target=target)
        )
    return tuple(out)


def _verdict(
    env: LockedEnv,
    *,
    name: str,
    resolved: CudaVersion | None,
    said: CudaVersion | None,
    need: tuple[str, str] | None,
    at_declared: LockedEnv | None,
    target: CudaVersion,
) -> LockedEnv:
    key = env.platform
    base = replace(
        env,
        platform=name,
        lock_platform=key,
        resolved_cuda=str(resolved) if resolved is not None else None,
        check=f"CONDA_OVERRIDE_CUDA={target} pixi install --frozen -e {env.env}",
    )
    if need is not None:
        why = (
            f"{need[0]} depends on '{need[1]}' and this driver provides __cuda {target}: pixi install stops "
            f"(\"Virtual package '{need[1]}' does not match any of the available virtual packages\")"
        )
        if env.verdict == "mismatch":
            why += f"; {env.reason}"
        return replace(base, verdict="mismatch", runs="cannot run", reason=why)
    if env.verdict == "no-cuda":
        return replace(base, check=None)
    if env.verdict == "mismatch":
        why = (
            f"{env.reason}; pixi's own check passes (no locked package depends on a newer __cuda): it fails at run time"
        )
        return replace(base, runs="cannot run", reason=why)
    if env.verdict == "warning":
        return replace(base, runs="runs only by accident", reason=env.reason)
    if resolved is not None and resolved > target:
        why = (
            f"solved for __cuda {_shown(resolved)} ({key} in pixi.lock) and this driver provides {target}: "
            f"{env.reason} because the locked packages need no more, but the next `pixi lock` may bring ones that do"
        )
        return replace(base, verdict="warning", runs="runs only by accident", reason=why)
    if at_declared is not None and said is not None and at_declared.verdict == "mismatch":
        why = (
            f"the manifest declares CUDA {_shown(said)} but the lock holds CUDA {env.cuda}: it runs on this driver, "
            f"not on every driver the manifest accepts (on CUDA {_shown(said)}: {at_declared.reason})"
        )
        return replace(base, verdict="warning", runs="runs only by accident", reason=why, declared=_shown(said))
    return replace(base, runs="runs as resolved")
