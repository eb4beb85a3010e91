"""Error text (+ live detection) -> one diagnosis and one ordered fix for this user.

The pieces: ``facts`` reads every number in the paste with its source, ``families`` is the table of error
families (pattern, title, the component that refused), ``advice`` / ``advice_runtime`` turn a matched family
and the facts into lines and fixes. This module picks the family, fills what the paste does not say from the
live driver or the env, and checks the answer against the rules before it leaves: no pin newer than the
driver's CUDA that was read, no conda pin in a pip venv, no pin or driver upgrade for look-alikes. Text that
matches no family is reported as unknown; condafix never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from condafix.detect.driver import DriverInfo
from condafix.diagnose import advice_runtime as rt
from condafix.diagnose.advice import (
    Explanation,
    driver_from_facts,
    is_pip,
    jitify,
    nvjitlink,
    pin_lines,
    ptx_explanation,
    ptxas_arch,
    ptxas_failed,
    ptxas_old,
    triton_table,
    unsupported,
    xla,
)
from condafix.diagnose.advice_arch import nvcc_arch, nvrtc_arch
from condafix.diagnose.facts import Facts, bound, env_facts, read
from condafix.diagnose.families import BY_CODE, FAMILIES, LIVE_FAMILIES, LOOKALIKES, STATIC, Family, FixKind
from condafix.diagnose.fixes import pin_holders
from condafix.env.envinfo import Component, EnvInfo
from condafix.errors import Hint, UsageError
from condafix.findings import Finding, Severity
from condafix.knowledge import pinrule
from condafix.knowledge.cuda import CudaVersion, knowledge, pins_for

__all__ = ["FAMILIES", "LIVE_FAMILIES", "Explanation", "explain", "with_env", "with_live"]

Builder = Callable[[Family, "re.Match[str]", Facts, str], Explanation]

_BUILDERS: Final[dict[str, Builder]] = {
    "nvjitlink_outdated": nvjitlink,
    "jitify_nvjitlink": jitify,
    "xla_ptxas_newer": xla,
    "triton_ptx_table": triton_table,
    "ptxas_old": ptxas_old,
    "ptxas_arch": ptxas_arch,
    "ptxas_failed": ptxas_failed,
    "nvrtc_arch": nvrtc_arch,
    "nvcc_arch": nvcc_arch,
    "unsupported_ptx": unsupported,
    "bindings_major": rt.bindings_major,
    "torch_driver_too_old": rt.torch_too_old,
    "runtime_insufficient": rt.runtime,
    "gpu_dropped": rt.gpu_dropped,
    "no_kernel_image": rt.no_kernel,
    "loader_803": rt.loader_803,
    "compat_804": rt.compat_804,
    "library_skew": rt.library_skew,
    "classic_unsat_cuda": rt.classic_unsat,
    "solver_cuda": rt.solver,
    "pixi_virtual_missing": rt.pixi_virtual_missing,
    "pixi_no_cuda": rt.pixi_no_cuda,
    "pixi_platform_mismatch": rt.pixi_platform_mismatch,
    "build_glob": rt.build_glob,
    "solver_conflict": rt.solver_conflict,
    "proxy_dns": rt.proxy_dns,
}


def explain(text: str, live: DriverInfo | None = None) -> Explanation:
    """Recognise the error family in ``text`` and explain it; UsageError on empty input."""
    if not text or not text.strip():
        raise UsageError("no error text given (pass TEXT, -f FILE, or pipe it on stdin)")
    text = bound(text)
    facts = read(text)
    for family in FAMILIES:
        match = family.pattern.search(text)
        if match:
            return with_live(_explain_family(family, match, facts, text), live)
    flat = _unwrapped(text)  # solvers wrap long lines to the terminal, inside their box-drawing trees
    for family in FAMILIES:
        match = family.pattern.search(flat) if family.component in ("solver", "pixi") else None
        if match:
            return with_live(_explain_family(family, match, facts, flat), live)
    unknown = Explanation(
        recognised=False, family=None, title=None, newer="unknown",
        lines=("condafix does not recognise this error; it does not guess",), facts=facts,
    )  # fmt: skip
    return _finish(unknown)


_WRAP = re.compile(r"\n[ \t]{0,40}(?:[│|][ \t]{0,40})?(?=[^\s├└╰│|×])")


def _unwrapped(text: str) -> str:
    """Continuation lines joined to the line they continue (a wrapped solver message reads as one line)."""
    return _WRAP.sub(" ", text)


def _explain_family(family: Family, match: re.Match[str], facts: Facts, text: str) -> Explanation:
    if family.code == "ptx_version":
        return _finish(_compat(replace(ptx_explanation(match["ptx"], match["driver_ptx"], facts), facts=facts)))
    builder = _BUILDERS.get(family.code)
    if builder is not None:
        return _finish(_compat(_filled(builder(family, match, facts, text), facts)))
    newer, lines, fixes, kind, culprit = STATIC[family.code]
    static = Explanation(
        recognised=True, family=family.code, title=family.title, newer=newer, lines=lines, fixes=fixes,
        fix_kind=kind, component=family.component, culprit=culprit,
    )  # fmt: skip
    return _finish(_filled(static, facts))


def _filled(expl: Explanation, facts: Facts) -> Explanation:
    """Both CUDA versions from the facts where the error line itself did not give them."""
    if expl.family in LOOKALIKES:
        return replace(expl, facts=facts)
    toolkit, driver = expl.toolkit_cuda, expl.driver_cuda
    if not toolkit and facts.toolkit_cuda:
        toolkit = (facts.toolkit_cuda,)
    notes = expl.notes
    found = driver_from_facts(facts)
    if found is not None and driver in ((), (str(found),)):
        if not driver:
            driver = (str(found),)
        if expl.family != "xla_ptxas_newer":
            where = facts.driver_source if facts.driver_cuda else "conda's __cuda virtual package"
            notes = (*notes, f"driver CUDA {found} read from the paste ({where})")
    return replace(expl, toolkit_cuda=toolkit, driver_cuda=driver, facts=facts, notes=notes)


def _compat(expl: Explanation) -> Explanation:
    """On a data-center/professional/Jetson GPU with the driver as the older side, forward compatibility is a
    real alternative: through the env (activation / LD_LIBRARY_PATH), never through ldconfig."""
    facts = expl.facts
    if facts is None or expl.newer != "toolkit" or expl.culprit not in ("env", "build", "driver"):
        return expl
    if rt.compat_capable(facts.gpu_name) is not True or not expl.toolkit_cuda:
        return expl
    want = expl.toolkit_cuda[0]
    line = (
        f"or, on this {facts.gpu_name}, forward compatibility: install cuda-compat={want} in the env and put "
        "$CONDA_PREFIX/cuda-compat on LD_LIBRARY_PATH in the env's activation script (never ldconfig it: "
        "that breaks every other process on the host with error 803)"
    )
    return replace(expl, fixes=(*expl.fixes, line))


# ---------------------------------------------------------------- the rules every answer keeps

# a CUDA a fix installs: a conda pin, a pip local version (+cu121), a wheel pinned to X.Y.*
_PIN_IN = re.compile(
    r"(?:cuda-version|cudatoolkit|pytorch-cuda)=(\d{1,2}\.\d{1,2})|\+cu(\d{2})(\d)\b|==(\d{1,2}\.\d{1,2})\.\*"
)


def _pins(fix: str) -> list[CudaVersion]:
    """The CUDA versions a fix would install; nvJitLink is exempt (a newer minor links to SASS the driver runs)."""
    if "nvjitlink" in fix.lower():
        return []
    found = []
    for match in _PIN_IN.finditer(fix):
        if match.group(2):
            found.append(CudaVersion(major=int(match.group(2)), minor=int(match.group(3))))
        else:
            found.append(CudaVersion.parse(match.group(1) or match.group(4)))
    return found


def _checked(expl: Explanation) -> Explanation:
    """Drop any fix that breaks the rules; the kind of the first fix follows what is left."""
    facts = expl.facts
    drv = driver_from_facts(facts) if facts is not None else None
    live = CudaVersion.parse(expl.live_driver) if expl.live_driver else None
    limit = drv if drv is not None else live  # the paste's own driver first: it may come from another machine
    keep: list[str] = []
    too_new: list[CudaVersion] = []
    for fix in expl.fixes:
        if expl.family in LOOKALIKES and ("conda install" in fix or "upgrade the NVIDIA driver" in fix):
            continue
        if facts is not None and is_pip(facts) and fix.startswith(("conda install", "or in environment.yml")):
            continue
        pins = _pins(fix)
        if limit is not None and any(p > limit for p in pins) and expl.family not in ("nvjitlink_outdated",):
            too_new += pins
            continue
        if expl.newer not in ("toolkit", "unknown") and fix.startswith("upgrade the NVIDIA driver"):
            continue
        keep.append(fix)
    if too_new and limit is not None:
        source = facts.driver_source if facts is not None and facts.driver_source else "the live driver"
        first = (
            f"not enough information: the paste's numbers disagree (the error implies CUDA {max(too_new)}, "
            f"the driver reads CUDA {limit} from {source}): run `nvidia-smi` on the machine that failed"
        )
        keep = [first, *(f for f in keep if not f.endswith("or older:"))]
        return replace(expl, fixes=tuple(keep), fix_kind="info")
    return replace(expl, fixes=tuple(keep))


_SEVERITY: Final[dict[str, Severity]] = {"xla_ptxas_newer": "warning", "wsl_libcuda_symlink": "info"}


def _finish(expl: Explanation) -> Explanation:
    """The rules, then the one Finding this explanation reports (its hints are the fixes, first one's kind)."""
    expl = _checked(expl)
    if not expl.recognised:
        finding = Finding(code="explain-unrecognised", severity="info", message=expl.lines[0])
        return replace(expl, findings=(finding,))
    severity: Severity = _SEVERITY.get(expl.family or "", "info" if expl.family in LOOKALIKES else "error")
    hints = tuple(
        Hint(code=f"fix.{expl.fix_kind}" if i == 0 and expl.fix_kind else "fix.alternative", text=fix)
        for i, fix in enumerate(expl.fixes)
    )
    message = f"{expl.title}: {expl.lines[0]}" if expl.lines else expl.title or ""
    finding = Finding(
        code=f"explain-{expl.family}", severity=severity, message=message, hints=hints, component=expl.component
    )
    return replace(expl, findings=(finding,))


# ---------------------------------------------------------------- the live driver and the env


def with_live(expl: Explanation, live: DriverInfo | None) -> Explanation:
    """Fill what the text does not say from the live driver, and flag disagreements."""
    if live is None:
        return expl
    notes = list(expl.notes)
    drv = live.cuda_version
    lines, fixes, driver_cuda, kind = expl.lines, expl.fixes, expl.driver_cuda, expl.fix_kind
    if drv is None:
        notes.append("no driver detected on this machine: the error came from another machine, or pass --cuda")
    elif driver_cuda and str(drv) not in driver_cuda and expl.family in ("ptx_version", "torch_driver_too_old"):
        notes.append(
            f"this machine's driver supports CUDA {drv} ({live.source}), not {' or '.join(driver_cuda)}: "
            "the error came from another driver"
        )
    elif not driver_cuda and expl.family in ("unsupported_ptx", "invalid_ptx", "runtime_insufficient"):
        driver_cuda = (str(drv),)
        lines = (*lines, f"this machine's driver supports CUDA {drv} (from {live.source})")
        pins, kind = pin_lines(drv, expl.facts)
        rest = tuple(f for f in fixes if not f.startswith("not enough information"))
        fixes = (f"pin the env to CUDA {drv} or older:", *pins, *rest)
    elif not driver_cuda and expl.family == "nvjitlink_outdated":
        driver_cuda = (str(drv),)
    done = replace(
        expl, driver_cuda=driver_cuda, lines=lines, fixes=fixes, fix_kind=kind, live_driver=str(drv) if drv else None,
        live_source=live.source, notes=tuple(notes),
    )  # fmt: skip
    return _finish(done)


def _newest(components: list[Component]) -> Component | None:
    return max(components, key=lambda c: CudaVersion.parse(c.cuda or "0.0"), default=None)


def _env_nvjitlink_fix(env: EnvInfo, driver: CudaVersion | None) -> tuple[str, FixKind] | None:
    """numba-cuda >= 0.16 in this env but no nvJitLink: adding it is the smallest fix (compilepath)."""
    from condafix.diagnose import compilepath

    for path in compilepath.compile_paths(env, driver):
        writer = CudaVersion.parse(path.writer_cuda) if path.writer_cuda else None
        if path.missing != "nvjitlink" or writer is None or (driver is not None and writer.major != driver.major):
            continue
        spec = compilepath.nvjitlink_spec(env, writer)
        if spec is None:
            continue
        manager, pin = spec
        command = f'pip install "{pin}"' if manager == "pip" else f'conda install -p {env.prefix} "{pin}"'
        kind: FixKind = "pip" if manager == "pip" else "package"
        return f"add nvJitLink of NVVM's CUDA {writer} so {path.consumer} links to SASS: {command}", kind
    return None


def _pins_cuda(fix: str) -> bool:
    return "cuda-version=" in fix or "cudatoolkit=" in fix or fix.startswith("pin the env to CUDA")


def _env_rules_out_the_pin(env: EnvInfo, nvvm: Component, drv: CudaVersion) -> list[str] | None:
    """Doctor's rule for a conda env the paste's driver cannot run: across a major the driver is the fix (SASS
    never crosses one), and a pin an installed package rules out is named, not printed (``knowledge.pinrule``);
    None when the env's pin is free to move."""
    cuda = CudaVersion.parse(nvvm.cuda or "0.0")
    if cuda <= drv:
        return None
    upgrade = pinrule.driver_for(cuda)
    if cuda.major > drv.major:
        return [
            f"{upgrade}: this env's CUDA {cuda} never runs on a CUDA {drv.major} driver, and the env stays as it is",
            f"or move the env to CUDA {drv.major} (crosses a major: every CUDA package is replaced; unchecked: "
            f"condafix cuda -p {env.prefix} --cuda {drv} --allow-major checks it with a solve)",
        ]
    pins = pins_for(drv, [c.name for c in env.components if c.source == "conda"])
    held = pin_holders(env, pins)
    if not held:
        return None
    return [f"{pinrule.held_text(held, ' '.join(pins))}; {upgrade} and keep the env as it is"]


def with_env(expl: Explanation, env: EnvInfo) -> Explanation:
    """Name the env's own NVVM/nvJitLink versions, add the env's facts, and make the fix the env's commands."""
    if expl.facts is not None:
        expl = replace(expl, facts=replace(expl.facts, items=(*expl.facts.items, *env_facts(env))))
    nvvm = _newest([c for c in env.components if c.role in ("nvvm", "toolkit") and c.cuda])
    link = _newest([c for c in env.components if c.role == "nvjitlink" and c.cuda])
    if nvvm is None or expl.family not in ("nvjitlink_outdated", "unsupported_ptx", "invalid_ptx", "ptx_version"):
        return expl
    lines = (*expl.lines, f"this env's NVVM: {nvvm.name} {nvvm.version} (CUDA {nvvm.cuda}, {nvvm.source})")
    if link is not None:
        lines = (*lines, f"this env's nvJitLink: {link.name} {link.version} (CUDA {link.cuda}, {link.source})")
    fixes, kind = list(expl.fixes), expl.fix_kind
    nvvm_cuda = CudaVersion.parse(nvvm.cuda or "0.0")
    link_cuda = CudaVersion.parse(link.cuda) if link and link.cuda else None
    if expl.family == "nvjitlink_outdated" and link is not None and link_cuda is not None and link_cuda < nvvm_cuda:
        pip_up = link.source == "pip"
        up = (
            f'pip install "{link.name}=={nvvm_cuda}.*"'
            if pip_up
            else f'conda install -p {env.prefix} "libnvjitlink={nvvm_cuda}"'
        )
        down = (
            f'pip install "{nvvm.name}=={link_cuda}.*"'
            if nvvm.source == "pip"
            else f'conda install -p {env.prefix} "cuda-version={knowledge().newest_cuda_version_pin(link_cuda)}"'
        )
        fixes = [
            f"bring nvJitLink up to NVVM's CUDA {nvvm_cuda}: {up}",
            f"or bring NVVM down to nvJitLink's CUDA {link_cuda}: {down}",
        ]
        kind = "pip" if pip_up else "package"
    elif expl.family != "nvjitlink_outdated":
        drv = CudaVersion.parse(expl.driver_cuda[0]) if expl.driver_cuda else None
        link_fix = _env_nvjitlink_fix(env, drv)
        ruled = _env_rules_out_the_pin(env, nvvm, drv) if drv is not None and nvvm.source == "conda" else None
        if ruled is not None:
            fixes, kind = [*ruled, *(f for f in fixes if not _pins_cuda(f))], "driver"
        elif link_fix is not None and fixes and fixes[0].startswith("add nvJitLink"):
            fixes[0], kind = link_fix
        elif link_fix is not None:
            fixes.insert(0, link_fix[0])
            kind = link_fix[1]
        elif drv is not None and nvvm_cuda > drv:
            exact = ""
            if nvvm.source == "pip":
                exact, kind = f'pip install "{nvvm.name}=={drv}.*"', "pip"
            else:
                pin = knowledge().newest_cuda_version_pin(drv)
                if pin:
                    exact, kind = f'conda install -p {env.prefix} "cuda-version={pin}"', "pin"
            if exact:
                fixes.insert(0, f"bring NVVM down to CUDA {drv} (<= the driver): {exact}")
    newer = "toolkit" if expl.newer == "unknown" else expl.newer
    done = replace(
        expl, lines=lines, fixes=tuple(fixes), fix_kind=kind, toolkit_cuda=expl.toolkit_cuda or (nvvm.cuda or "",),
        newer=newer,
    )  # fmt: skip
    return _finish(done)


def family(code: str) -> Family:
    """The family of a code (KeyError for an unknown one)."""
    return BY_CODE[code]
