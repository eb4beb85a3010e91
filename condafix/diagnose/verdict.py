"""Driver + environment -> per-component verdicts, findings and the fix to run.

The rule (NVIDIA minor version compatibility): SASS built with CUDA X.y runs on any driver of
major X above the MVC floor, but PTX loaded by the driver's JIT needs the toolkit's PTX ISA <= the
driver's. Who compiles decides (``condafix.diagnose.compilepath``): an env minor newer than the driver is an
*error* only when a consumer loads that PTX through the driver's JIT, *fine* when its consumers
compile to SASS (numba-cuda through nvJitLink >= NVVM, CuPy's NVRTC cubin), and a *warning* when
no consumer is there. Fixes come in order of least change: bring nvJitLink up to NVVM, then move
the env's CUDA down, then the driver; never to a newer CUDA, never across a major without saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from condafix.detect.driver import DriverInfo
from condafix.detect.libsources import Host
from condafix.diagnose import compilepath as cp
from condafix.diagnose.compilepath import CompilePath, compile_paths
from condafix.diagnose.fixes import Fix, plan_fix
from condafix.env.envinfo import Component, EnvInfo, SystemToolkit
from condafix.errors import Hint
from condafix.findings import RANK as _RANK
from condafix.findings import Finding, Severity
from condafix.knowledge import roles
from condafix.knowledge.cuda import CudaVersion, driver_version_key, knowledge

if TYPE_CHECKING:  # the probe module is imported only by `doctor --probe`
    from condafix.detect.ptxprobe import ProbeResult

Status = Literal["ok", "warning", "mismatch"]
_CTK_ROLES = frozenset({"nvvm", "nvrtc", "nvjitlink", "runtime", "toolkit"})
__all__ = ["ComponentVerdict", "DoctorReport", "Finding", "Fix", "diagnose", "env_cuda", "plan_fix"]


VerdictWord = Literal["ok", "newer-than-driver", "mixed", "unknown", "n/a"]


@dataclass(frozen=True, kw_only=True)
class ComponentVerdict:
    name: str
    version: str
    source: str
    role: str
    cuda: str | None
    verdict: VerdictWord
    severity: Severity
    reason: str


@dataclass(frozen=True, kw_only=True)
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
    compile_paths: tuple[CompilePath, ...] = ()

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
    writers = [CudaVersion.parse(c.cuda) for c in env.components if c.role in roles.table().ptx_writers and c.cuda]
    return max(writers) if writers else None


def _users(comp: Component, paths: tuple[CompilePath, ...]) -> tuple[CompilePath, ...]:
    """The consumers whose code this component writes (a pin or cudatoolkit writes for all of them)."""
    if comp.role in ("pin", "toolkit"):
        return paths
    if comp.role == "nvrtc":
        return tuple(p for p in paths if p.kind in ("cupy", "numba-cuda"))
    if comp.role == "nvvm":
        return tuple(p for p in paths if p.kind in ("numba", "numba-cuda", "jaxlib"))
    return ()


def _judge(
    comp: Component, driver: CudaVersion | None, paths: tuple[CompilePath, ...], prefix: str | None = None
) -> ComponentVerdict:
    def made(verdict: VerdictWord, severity: Severity, reason: str) -> ComponentVerdict:
        return ComponentVerdict(
            name=comp.name, version=comp.version, source=comp.source, role=comp.role, cuda=comp.cuda,
            verdict=verdict, severity=severity, reason=reason,
        )  # fmt: skip

    cuda = _v(comp.cuda)
    if cuda is None:
        return made("n/a", "ok", "no CUDA version of its own")
    if comp.role == "compat":
        return made("n/a", "info", "forward-compatibility driver libraries (data-center GPUs only)")
    if driver is None:
        return made("unknown", "warning", "no driver to compare with")
    if cuda.major > driver.major:
        why = f"CUDA {cuda} needs a CUDA {cuda.major}.x driver; this driver supports CUDA {driver}"
        return made("newer-than-driver", "error", why)
    if cuda.major < driver.major or cuda <= driver:
        return made("ok", "ok", f"CUDA {cuda} <= driver CUDA {driver}")
    kb = knowledge()
    ptx_env, ptx_drv = kb.ptx_for_cuda(cuda), kb.ptx_for_cuda(driver)
    if comp.role in roles.table().ptx_writers and ptx_env is not None and ptx_env == ptx_drv:
        why = f"CUDA {cuda} writes the same PTX ISA {ptx_env} as the driver's CUDA {driver}"
        return made("ok", "ok", why)
    users = _users(comp, paths) if comp.role in roles.table().ptx_writers else ()
    if comp.role in ("nvvm", "nvrtc") and users:
        elsewhere = [p for p in users if cp.loads_other(p, comp, prefix)]
        if len(elsewhere) == len(users):
            how = "; ".join(f"{p.consumer} {p.version} loads {cp.loaded_text(p, comp)}" for p in elsewhere)
            why = f"CUDA {cuda} > driver CUDA {driver}, but not loaded: {how}"
            return made("ok", "info", why)
    jit = [p for p in users if p.uses_driver_jit]
    if jit:
        names = ", ".join(f"{p.consumer} {p.version}" for p in jit)
        why = (
            f"writes PTX ISA {ptx_env or '?'}; the driver's JIT accepts up to {ptx_drv or '?'} "
            f"(CUDA {driver}) and {names} loads PTX through it: JIT compilation fails"
        )
        return made("newer-than-driver", "error", why)
    sass = [p for p in (users if comp.role in roles.table().ptx_writers else paths) if not p.uses_driver_jit]
    if sass:
        how = ", ".join(f"{p.consumer} ({p.path})" for p in sass)
        why = (
            f"CUDA {cuda} > driver CUDA {driver}: no PTX reaches the driver's JIT, {how} turn it into SASS, "
            "which runs under minor version compatibility"
        )
        return made("ok", "info", why)
    why = f"CUDA {cuda} > driver CUDA {driver}: SASS runs (minor version compatibility); PTX JIT would fail"
    return made("newer-than-driver", "warning", why)


def _mixed_findings(env: EnvInfo, paths: tuple[CompilePath, ...]) -> list[Finding]:
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
                    code="mixed",
                    severity="warning",
                    message=f"{comp.name} {comp.version} is CUDA {cuda} but cuda-version is {pin_cuda}: "
                    "mixed toolkit parts",
                    component=comp.name,
                )
            )
    sources = {c.source for c in env.components if c.role == "nvvm" and c.cuda}
    if len(sources) > 1:
        findings.append(
            Finding(
                code="two_nvvm",
                severity="warning",
                message="NVVM comes from both conda packages and pip wheels; "
                "which one loads depends on the search order",
            )
        )
    nvvm = [CudaVersion.parse(c.cuda) for c in env.components if c.role in ("nvvm", "toolkit") and c.cuda]
    links = [c for c in env.components if c.role == "nvjitlink" and c.cuda]
    linking = [p for p in paths if p.path == "nvjitlink"]
    if nvvm and links:
        newest_nvvm = max(nvvm)
        for link in links:
            if CudaVersion.parse(link.cuda or "0.0") < newest_nvvm:
                who = ", ".join(f"{p.consumer} {p.version}" for p in linking)
                findings.append(
                    Finding(
                        code="nvjitlink_older",
                        severity="error" if linking else "warning",
                        message=f"{link.name} {link.version} (CUDA {link.cuda}) is older than NVVM {newest_nvvm}: "
                        "linking fails with ERROR_OUTDATED_LIBRARY (ERROR_PTX_COMPILE with debug=True)"
                        + (f"; {who} links through it" if who else ""),
                        hints=(Hint(code="nvjitlink_up", text=f"bring {link.name} up to CUDA {newest_nvvm} (NVVM's)"),),
                        component=link.name,
                    )
                )
    return findings


def _driver_findings(driver: DriverInfo, env: EnvInfo, toolkit: SystemToolkit | None) -> list[Finding]:
    findings: list[Finding] = []
    has_cuda = any(c.cuda for c in env.components)
    if driver.cuda is None and driver.source == "CONDA_OVERRIDE_CUDA":
        findings.append(
            Finding(
                code="override_no_gpu",
                severity="warning",
                message="CONDA_OVERRIDE_CUDA is empty: treated as a host with no GPU",
            )
        )
    elif driver.cuda is None:
        tried = ", ".join(a.source for a in driver.attempts)
        findings.append(
            Finding(
                code="no_driver",
                severity="warning",
                message=f"no NVIDIA driver found ({tried} all failed): nothing CUDA will run here"
                + ("; to check this env for another machine pass --cuda M.m or --driver VERSION" if has_cuda else ""),
                hints=(
                    Hint(
                        code="driver_check",
                        text="on a machine with an NVIDIA GPU, `nvidia-smi` must list it; "
                        "if it does not, install or repair the NVIDIA driver",
                    ),
                    Hint(
                        code="other_machine",
                        text="for another machine (login node, CI, a Docker build): "
                        "condafix doctor -p ENV --driver 550.54.14 (or --cuda 12.4)",
                    ),
                ),
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
                    code="system_toolkit_newer",
                    severity="info",
                    message=note + f"; it is newer than the driver's CUDA {drv}, so its PTX will not JIT",
                )
            )
        else:
            findings.append(Finding(code="system_toolkit", severity="info", message=note))
    if driver.driver_version and driver.cuda_version:
        floor = knowledge().mvc_floor.get(driver.cuda_version.major)
        try:
            below = floor is not None and driver_version_key(driver.driver_version) < driver_version_key(floor[0])
        except ValueError:
            below = False
        if below and floor is not None:
            findings.append(
                Finding(
                    code="below_mvc_floor",
                    severity="warning",
                    message=f"driver {driver.driver_version} is below the minor-version-compatibility floor "
                    f"{floor[0]} of CUDA {driver.cuda_version.major}: only exact-minor builds run",
                )
            )
    return findings


def _arch_findings(driver: DriverInfo, env: EnvInfo) -> list[Finding]:
    """``__cuda_arch`` (the oldest GPU) against what the env's CUDA can still build for, and since when."""
    cuda = env_cuda(env)
    if not driver.cuda_arch or cuda is None:
        return []
    kb = knowledge()
    arch = CudaVersion.parse(driver.cuda_arch)
    oldest, newest = kb.oldest_sm(cuda.major), kb.newest_sm(cuda)
    sm = f"sm_{arch.major}{arch.minor}"
    if oldest is not None and arch < oldest:
        last = max((m for m, o in kb.oldest_sm_by_major.items() if o <= arch), default=None)
        return [
            Finding(
                code="gpu_arch_dropped",
                severity="error",
                message=f"__cuda_arch={arch}: CUDA {cuda.major} no longer builds for {sm} (its oldest is "
                f"sm_{oldest.major}{oldest.minor}): no kernel image for this GPU"
                + (f"; CUDA {last}.x is the last that supports it" if last else ""),
            )
        ]
    if newest is not None and arch > newest:
        since = next((c for c, n in kb.newest_sm_by_cuda if n >= arch), None)
        return [
            Finding(
                code="gpu_arch_newer",
                severity="warning",
                message=f"__cuda_arch={arch}: the env's CUDA {cuda} predates this GPU ({sm}); prebuilt packages "
                "need PTX to run on it" + (f", and CUDA >= {since} compiles for it" if since else ""),
            )
        ]
    return []


def _probe_findings(probe: ProbeResult | None, paths: tuple[CompilePath, ...]) -> list[Finding]:
    """The probe's PTX is what the driver's JIT would see: a failure counts only for consumers that use it."""
    if probe is None:
        return []
    if probe.verdict != "ptx-newer-than-driver":
        return [Finding(code="probe", severity="info", message=f"probe ({probe.halves}): {probe.message}")]
    jit = [p for p in paths if p.uses_driver_jit and p.kind in ("numba", "numba-cuda", "jaxlib")]
    sass = [p for p in paths if not p.uses_driver_jit and p.kind in ("numba", "numba-cuda", "jaxlib")]
    if jit:
        who = ", ".join(f"{p.consumer} {p.version}" for p in jit)
        return [
            Finding(
                code="probe_ptx_newer",
                severity="error",
                message=f"probe: {probe.message}; would JIT-fail for {who} (it loads PTX through the driver's JIT)",
            )
        ]
    if sass:
        who = ", ".join(f"{p.consumer} {p.version} ({p.path})" for p in sass)
        return [
            Finding(
                code="probe_ptx_newer_unused",
                severity="info",
                message=f"probe: {probe.message}; the driver's JIT would reject this PTX, but {who} compiles to "
                "SASS without it",
            )
        ]
    return [
        Finding(
            code="probe_ptx_newer",
            severity="warning",
            message=f"probe: {probe.message}; PTX from this NVVM would JIT-fail wherever the driver loads it "
            "(prebuilt PTX, tools without nvJitLink)",
        )
    ]


def _path_findings(
    paths: tuple[CompilePath, ...], target: CudaVersion | None, env_newer: bool, reported: bool = False
) -> list[Finding]:
    findings: list[Finding] = []
    for path in paths:
        if path.outcome == "link-fails":  # once: as nvjitlink_older of the env's packages, else of the loaded files
            findings += [] if reported else [cp.link_finding(path)]
            continue
        if path.severity in ("warning", "error"):
            codes = {"jit-fails": "driver_jit_fails", "slow-compile": "xla_ptxas_newer"}
            code = codes.get(path.outcome, "compile_path")
            findings.append(Finding(code=code, severity=path.severity, message=path.message, component=path.consumer))
        elif path.outcome == "ok" and env_newer and target is not None:
            findings.append(Finding(code="sass_path", severity="info", message=path.message, component=path.consumer))
    return findings


def diagnose(
    driver: DriverInfo,
    env: EnvInfo,
    toolkit: SystemToolkit | None = None,
    probe: ProbeResult | None = None,
    *,
    unfinished: str | None = None,
    env_vars: Mapping[str, str] | None = None,
    host: Host | None = None,
    setup: tuple[Finding, ...] = (),
) -> DoctorReport:
    """Compare every CUDA part of the env with the driver, through each consumer's compile path; with
    ``env_vars`` or ``host``, through the files each consumer loads (``cp.loaded_libraries``). ``setup``:
    what is wrong outside the env that the report must still name (a condarc conda cannot read)."""
    jit_names = tuple(c.name for c in env.jit_consumers)
    target = driver.cuda_version
    libraries = cp.loaded_libraries(env, env_vars, probe.libraries if probe else (), host)
    paths = compile_paths(env, target, gpu_arch=driver.cuda_arch, env_vars=env_vars, libraries=libraries)
    verdicts = tuple(_judge(c, target, paths, env.prefix) for c in env.components)
    findings = _driver_findings(driver, env, toolkit) + _arch_findings(driver, env) + _probe_findings(probe, paths)
    findings += setup
    if unfinished:
        findings.append(
            Finding(
                code="unfinished_change",
                severity="error",
                message=f"an interrupted condafix change (snapshot {unfinished}) "
                f"left this env half-changed: run `condafix rollback -p {env.prefix}`",
            )
        )
    for verdict in verdicts:
        if verdict.severity in ("warning", "error") and verdict.verdict != "unknown":
            findings.append(
                Finding(
                    code=f"newer_than_driver_{verdict.severity}",
                    severity=verdict.severity,
                    message=f"{verdict.name} {verdict.version}: {verdict.reason}",
                    component=verdict.name,
                )
            )
        elif verdict.severity == "info" and verdict.role == "compat":
            findings.append(
                Finding(
                    code=verdict.role,
                    severity="info",
                    message=f"{verdict.name} {verdict.version}: {verdict.reason}",
                    component=verdict.name,
                )
            )
    env_newer = any(v.severity == "info" and v.verdict == "ok" and v.role != "compat" for v in verdicts)
    mixed = _mixed_findings(env, paths)
    older = {f.component for f in mixed if f.code == "nvjitlink_older" and f.severity == "error"}
    findings += _path_findings(paths, target, env_newer, reported=bool(older)) + mixed
    mixed_names = {f.component for f in mixed if f.code == "mixed"}
    older |= cp.failing_linkers(env, paths)
    verdicts = tuple(
        replace(v, verdict="mixed", severity="error", reason="older than NVVM: link fails")
        if v.name in older
        else replace(v, verdict="mixed", severity="warning", reason="differs from cuda-version")
        if v.name in mixed_names and v.verdict == "ok"
        else v
        for v in verdicts
    )
    if env.components and not paths and any(v.verdict == "newer-than-driver" for v in verdicts):
        findings.append(
            Finding(
                code="no_jit_consumer",
                severity="info",
                message="no consumer that compiles kernels at run time (numba, numba-cuda, cupy, jax) in this env, "
                "so newer minors are warnings, not errors",
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
        fix=plan_fix(env, driver, verdicts, paths),
        status=status,
        probe=probe,
        compile_paths=paths,
    )
