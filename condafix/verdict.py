"""Driver + environment -> per-component verdicts, findings and the fix to run.

The rule (NVIDIA minor version compatibility): SASS built with CUDA X.y runs on any driver of
major X above the MVC floor, but PTX JIT (Numba, CuPy NVRTC/RawKernel, JAX's ptxas path) needs
the toolkit's PTX ISA <= the driver's. So an env minor newer than the driver is an *error* when a
JIT consumer is present and a *warning* otherwise. Fixes never move an env to a newer CUDA and
never cross a major without saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from condafix.driver import DriverInfo
from condafix.envinfo import PTX_WRITERS, Component, EnvInfo, SystemToolkit
from condafix.knowledge import CudaVersion, driver_version_key, knowledge
from condafix.ptxprobe import ProbeResult

Severity = Literal["ok", "info", "warning", "error"]
Status = Literal["ok", "warning", "mismatch"]
_RANK = {"ok": 0, "info": 0, "warning": 1, "error": 2}
_CTK_ROLES = frozenset({"nvvm", "nvrtc", "nvjitlink", "runtime", "toolkit"})


@dataclass(frozen=True)
class ComponentVerdict:
    name: str
    version: str
    source: str
    role: str
    cuda: str | None
    verdict: Literal["ok", "newer-than-driver", "mixed", "unknown", "n/a"]
    severity: Severity
    reason: str


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    component: str | None = None


@dataclass(frozen=True)
class Fix:
    """What to run: the pins and the exact command, plus alternatives the user may prefer."""

    summary: str
    pins: tuple[str, ...]
    commands: tuple[str, ...]
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class DoctorReport:
    driver: DriverInfo
    env: EnvInfo
    system_toolkit: SystemToolkit | None
    env_cuda: str | None
    jit_consumers: tuple[str, ...]
    verdicts: tuple[ComponentVerdict, ...]
    findings: tuple[Finding, ...]
    fix: Fix | None
    status: Status
    probe: ProbeResult | None = None

    @property
    def check_exit_code(self) -> int:
        return {"ok": 0, "warning": 1, "mismatch": 2}[self.status]


def _v(text: str | None) -> CudaVersion | None:
    return CudaVersion.parse(text) if text else None


def env_cuda(env: EnvInfo) -> CudaVersion | None:
    """The env's CUDA as far as PTX goes: its cuda-version pin, else cudatoolkit, else the newest NVVM."""
    for name in ("cuda-version", "cudatoolkit"):
        comp = env.component(name)
        if comp and comp.cuda:
            return CudaVersion.parse(comp.cuda)
    writers = [CudaVersion.parse(c.cuda) for c in env.components if c.role in PTX_WRITERS and c.cuda]
    return max(writers) if writers else None


def _judge(comp: Component, driver: CudaVersion | None, jit: bool) -> ComponentVerdict:
    base = (comp.name, comp.version, comp.source, comp.role, comp.cuda)
    cuda = _v(comp.cuda)
    if cuda is None:
        return ComponentVerdict(*base, "n/a", "ok", "no CUDA version of its own")
    if comp.role == "compat":
        return ComponentVerdict(*base, "n/a", "info", "forward-compatibility driver libraries (data-center GPUs only)")
    if driver is None:
        return ComponentVerdict(*base, "unknown", "warning", "no driver to compare with")
    if cuda.major > driver.major:
        why = f"CUDA {cuda} needs a CUDA {cuda.major}.x driver; this driver supports CUDA {driver}"
        return ComponentVerdict(*base, "newer-than-driver", "error", why)
    if cuda.major < driver.major or cuda <= driver:
        return ComponentVerdict(*base, "ok", "ok", f"CUDA {cuda} <= driver CUDA {driver}")
    kb = knowledge()
    ptx_env, ptx_drv = kb.ptx_for_cuda(cuda), kb.ptx_for_cuda(driver)
    if comp.role in PTX_WRITERS and ptx_env is not None and ptx_env == ptx_drv:
        why = f"CUDA {cuda} writes the same PTX ISA {ptx_env} as the driver's CUDA {driver}"
        return ComponentVerdict(*base, "ok", "ok", why)
    if comp.role in PTX_WRITERS and jit:
        why = (
            f"writes PTX ISA {ptx_env or '?'}; the driver's JIT accepts up to {ptx_drv or '?'} "
            f"(CUDA {driver}): JIT compilation fails"
        )
        return ComponentVerdict(*base, "newer-than-driver", "error", why)
    why = f"CUDA {cuda} > driver CUDA {driver}: SASS runs (minor version compatibility); PTX JIT would fail"
    return ComponentVerdict(*base, "newer-than-driver", "warning", why)


def _mixed_findings(env: EnvInfo, jit_names: tuple[str, ...]) -> list[Finding]:
    findings: list[Finding] = []
    pin = env.component("cuda-version")
    pin_cuda = _v(pin.cuda) if pin else None
    for comp in env.components:
        cuda = _v(comp.cuda)
        if pin_cuda is None or cuda is None or comp.role not in _CTK_ROLES:
            continue
        if cuda != pin_cuda and comp.source == "conda":
            findings.append(
                Finding(
                    "mixed",
                    "warning",
                    f"{comp.name} {comp.version} is CUDA {cuda} but cuda-version is {pin_cuda}: mixed toolkit parts",
                    comp.name,
                )
            )
    sources = {c.source for c in env.components if c.role == "nvvm" and c.cuda}
    if len(sources) > 1:
        findings.append(
            Finding(
                "two_nvvm",
                "warning",
                "NVVM comes from both conda packages and pip wheels; which one loads depends on the search order",
            )
        )
    nvvm = [CudaVersion.parse(c.cuda) for c in env.components if c.role in ("nvvm", "toolkit") and c.cuda]
    links = [c for c in env.components if c.role == "nvjitlink" and c.cuda]
    if nvvm and links:
        newest_nvvm = max(nvvm)
        for link in links:
            if CudaVersion.parse(link.cuda or "0.0") < newest_nvvm:
                severity: Severity = "error" if "numba-cuda" in jit_names else "warning"
                findings.append(
                    Finding(
                        "nvjitlink_older",
                        severity,
                        f"{link.name} {link.version} (CUDA {link.cuda}) is older than NVVM {newest_nvvm}: "
                        "linking fails with ERROR_OUTDATED_LIBRARY",
                        link.name,
                    )
                )
    return findings


def manager_target(env: EnvInfo) -> str:
    if env.prefix is None:
        return ""
    prefix = Path(env.prefix)
    if prefix.parent.name == "envs" and env.name:
        return f"-n {env.name} "
    return f"-p {env.prefix} "


def _pip_pin(comp: Component, target: CudaVersion) -> str:
    return f'"{comp.name}=={target}.*"'


def plan_fix(env: EnvInfo, driver: DriverInfo, verdicts: tuple[ComponentVerdict, ...]) -> Fix | None:
    """The smallest change that makes the env's CUDA <= the driver's, without crossing a major."""
    target = driver.cuda_version
    bad = [v for v in verdicts if v.verdict == "newer-than-driver"]
    if target is None or not bad:
        return None
    kb = knowledge()
    cuda = env_cuda(env) or max(CudaVersion.parse(v.cuda or "0.0") for v in bad)
    upgrade = kb.min_driver_for(cuda)
    upgrade_text = "upgrade the NVIDIA driver" + (f" to >= {upgrade} (CUDA {cuda})" if upgrade else "")
    if cuda.major > target.major:
        alternative = kb.newest_cuda_version_pin(target)
        alts: tuple[str, ...] = ()
        if alternative is not None:
            alts = (
                f"move the env to CUDA {target.major} (crosses a major: every CUDA package is replaced): "
                f'conda install {manager_target(env)}-c conda-forge "cuda-version={alternative}"',
            )
        return Fix(upgrade_text, (), (), alts)
    pins: list[str] = []
    conda_names = {c.name for c in env.components if c.source == "conda"}
    pin = kb.newest_cuda_version_pin(target)
    if "cudatoolkit" in conda_names:
        toolkit = kb.newest_cudatoolkit(target)
        if toolkit is not None:
            pins.append(f"cudatoolkit={CudaVersion.parse(toolkit)}")
        if "cuda-version" in conda_names and pin is not None:
            pins.append(f"cuda-version={pin}")
    elif conda_names & {c.name for c in env.components if c.role in _CTK_ROLES | {"pin"}} and pin is not None:
        pins.append(f"cuda-version={pin}")
    commands: list[str] = []
    if pins:
        channel = next(
            (c.channel for c in env.components if c.name in ("cuda-version", "cudatoolkit") and c.channel),
            "conda-forge",
        )
        quoted = " ".join(f'"{p}"' for p in pins)
        commands.append(f"conda install {manager_target(env)}-c {channel} {quoted}")
    bad_names = {v.name for v in bad}
    pip_wheels = [c for c in env.components if c.source == "pip" and c.name in bad_names and c.role != "framework"]
    if pip_wheels:
        commands.append("pip install " + " ".join(_pip_pin(c, target) for c in pip_wheels))
        pins += [f"{c.name}=={target}.*" for c in pip_wheels]
    if not commands:
        return Fix(upgrade_text, (), ())
    chosen = pin if pin is not None and "cudatoolkit" not in conda_names else target
    summary = f"move the env's CUDA down to {chosen} (the driver supports CUDA {target}; nothing else changes)"
    others = [upgrade_text + " and keep the env as it is"]
    if pins and env.prefix and env.kind == "conda":
        others.insert(
            0,
            f"condafix cuda {manager_target(env)}--cuda {target} checks the pin with a full solve on the "
            "channel first (add --apply to make the change, with a snapshot to roll back)",
        )
    if any(c.name == "numba-cuda" for c in env.components):
        others.append(
            "numba-cuda can compile through nvJitLink instead of the driver's JIT (its minor version "
            "compatibility mode): libnvjitlink of the same CUDA as NVVM, "
            "NUMBA_CUDA_ENABLE_MINOR_VERSION_COMPATIBILITY=1"
        )
    return Fix(summary, tuple(pins), tuple(commands), tuple(others))


def _driver_findings(driver: DriverInfo, env: EnvInfo, toolkit: SystemToolkit | None) -> list[Finding]:
    findings: list[Finding] = []
    has_cuda = any(c.cuda for c in env.components)
    if driver.cuda is None and driver.source == "CONDA_OVERRIDE_CUDA":
        findings.append(
            Finding("override_no_gpu", "warning", "CONDA_OVERRIDE_CUDA is empty: treated as a host with no GPU")
        )
    elif driver.cuda is None:
        tried = ", ".join(a.source for a in driver.attempts)
        findings.append(
            Finding(
                "no_driver",
                "warning",
                f"no NVIDIA driver found ({tried} all failed): nothing CUDA will run here"
                + ("; to check this env for another machine pass --cuda M.m or --driver VERSION" if has_cuda else ""),
            )
        )
    if toolkit is not None and toolkit.cuda:
        note = f"system toolkit CUDA {toolkit.cuda} at {toolkit.path} ({toolkit.source}) is not the driver"
        if toolkit.has_version_json:
            note += f"; micromamba >= 2.0.6 reports __cuda={toolkit.cuda} from its version.json even so"
        tk, drv = CudaVersion.parse(toolkit.cuda), driver.cuda_version
        if drv is not None and tk > drv and tk.major >= drv.major:
            findings.append(
                Finding(
                    "system_toolkit_newer",
                    "info",
                    note + f"; it is newer than the driver's CUDA {drv}, so its PTX will not JIT",
                )
            )
        else:
            findings.append(Finding("system_toolkit", "info", note))
    if driver.driver_version and driver.cuda_version:
        floor = knowledge().mvc_floor.get(driver.cuda_version.major)
        try:
            below = floor is not None and driver_version_key(driver.driver_version) < driver_version_key(floor[0])
        except ValueError:
            below = False
        if below and floor is not None:
            findings.append(
                Finding(
                    "below_mvc_floor",
                    "warning",
                    f"driver {driver.driver_version} is below the minor-version-compatibility floor "
                    f"{floor[0]} of CUDA {driver.cuda_version.major}: only exact-minor builds run",
                )
            )
    return findings


def _probe_findings(probe: ProbeResult | None) -> list[Finding]:
    if probe is None:
        return []
    if probe.verdict == "ptx-newer-than-driver":
        return [Finding("probe_ptx_newer", "error", f"probe: {probe.message}")]
    return [Finding("probe", "info", f"probe ({probe.halves}): {probe.message}")]


def diagnose(
    driver: DriverInfo,
    env: EnvInfo,
    toolkit: SystemToolkit | None = None,
    probe: ProbeResult | None = None,
    *,
    unfinished: str | None = None,
) -> DoctorReport:
    """Compare every CUDA part of the env with the driver and decide what to do."""
    jit_names = tuple(c.name for c in env.jit_consumers)
    target = driver.cuda_version
    verdicts = tuple(_judge(c, target, bool(jit_names)) for c in env.components)
    findings = _driver_findings(driver, env, toolkit) + _probe_findings(probe)
    if unfinished:
        findings.append(
            Finding(
                "unfinished_change",
                "error",
                f"an interrupted condafix change (snapshot {unfinished}) "
                f"left this env half-changed: run `condafix rollback -p {env.prefix}`",
            )
        )
    for verdict in verdicts:
        if verdict.severity in ("warning", "error") and verdict.verdict != "unknown":
            findings.append(
                Finding(
                    f"newer_than_driver_{verdict.severity}",
                    verdict.severity,
                    f"{verdict.name} {verdict.version}: {verdict.reason}",
                    verdict.name,
                )
            )
        elif verdict.severity == "info":
            findings.append(
                Finding(verdict.role, "info", f"{verdict.name} {verdict.version}: {verdict.reason}", verdict.name)
            )
    mixed = _mixed_findings(env, jit_names)
    findings += mixed
    mixed_names = {f.component for f in mixed if f.code == "mixed"}
    verdicts = tuple(
        ComponentVerdict(v.name, v.version, v.source, v.role, v.cuda, "mixed", "warning", "differs from cuda-version")
        if v.name in mixed_names and v.verdict == "ok"
        else v
        for v in verdicts
    )
    if env.components and not jit_names and any(v.verdict == "newer-than-driver" for v in verdicts):
        findings.append(
            Finding(
                "no_jit_consumer",
                "info",
                "no PTX-JIT user (numba, numba-cuda, cupy, jax) in this env, so newer minors are warnings, not errors",
            )
        )
    worst = max((_RANK[f.severity] for f in findings), default=0)
    status: Status = ("ok", "warning", "mismatch")[worst]
    cuda = env_cuda(env)
    return DoctorReport(
        driver=driver,
        env=env,
        system_toolkit=toolkit,
        env_cuda=str(cuda) if cuda else None,
        jit_consumers=jit_names,
        verdicts=verdicts,
        findings=tuple(findings),
        fix=plan_fix(env, driver, verdicts),
        status=status,
        probe=probe,
    )
