"""Invariants of the advice (issue 21 item 6), property-tested over generated envs and drivers.

The expectations are the domain rules (gpu-notes.md, NVIDIA's minor version compatibility), never the code:
- no CUDA pin (cuda-version/cudatoolkit, or a toolkit wheel) newer than the driver's CUDA;
- no driver upgrade unless the driver's CUDA is older than the CUDA that refused, and then the driver of
  NVIDIA's table for that CUDA;
- no fix that crosses a major while saying nothing else changes (or that "the env's CUDA can stay");
- every version in a finding comes from the inputs, the driver's CUDA, or a table lookup of one of those.
An nvJitLink brought up to NVVM's CUDA is not a CUDA pin: it links to SASS, which runs under minor version
compatibility (measured, gpu-notes.md); it must stay in the driver's major.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix.cli import commands
from condafix.detect.driver import DriverInfo
from condafix.diagnose import verdict
from condafix.env.envinfo import Component, EnvInfo
from condafix.knowledge.cuda import CudaVersion, knowledge, pins_for
from condafix.knowledge.pinrule import CudaRequirement, admits
from condafix.plan.planner import candidate_minors

SETTINGS = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CUDA releases 11.0-13.2 as NVIDIA shipped them (12.7 never shipped; a 12.7 driver exists in name only)
RELEASES = [CudaVersion(major=11, minor=m) for m in range(9)] + [
    CudaVersion(major=12, minor=m) for m in (0, 1, 2, 3, 4, 5, 6, 8, 9)
]
RELEASES += [CudaVersion(major=13, minor=m) for m in range(3)]
cudas = st.sampled_from(RELEASES)
FAMILY_PIN = re.compile(r"\b(cuda-version|cudatoolkit)=(\d+\.\d+)")
WHEEL_PIN = re.compile(r'"?(nvidia-[a-z0-9-]+)==(\d+\.\d+)\.\*')
UPGRADE = re.compile(r"upgrade the NVIDIA driver to >= ([\d.]+) \(CUDA (\d+\.\d+)\)")
VERSION = re.compile(r"(?<![\w.])\d+\.\d+(?:\.\d+)*(?![\w.]*\d)")

CTK = (("cuda-nvvm-impl", "nvvm"), ("cuda-nvrtc", "nvrtc"), ("libnvjitlink", "nvjitlink"), ("cuda-cudart", "runtime"))
WHEELS = (
    ("nvidia-cuda-nvrtc-cu{M}", "nvrtc"),
    ("nvidia-nvjitlink-cu{M}", "nvjitlink"),
    ("nvidia-cuda-runtime-cu{M}", "runtime"),
)
CONSUMERS = (("numba", "0.60.0"), ("numba-cuda", "0.15.2"), ("numba-cuda", "0.30.4"), ("cupy", "13.3.0"))


def full(cuda: CudaVersion, patch: int) -> str:
    return f"{cuda}.{patch}"


@st.composite
def conda_envs(draw: st.DrawFn) -> EnvInfo:
    """A conda env model: a pin (cuda-version or, for CUDA 11, cudatoolkit), some CTK parts (mixed minors
    allowed), JIT consumers, maybe pytorch with its own build's CUDA, and the records' own requirements."""
    env_cuda = draw(cudas)
    comps: list[Component] = []
    reqs: list[CudaRequirement] = []
    toolkit = env_cuda.major == 11 and draw(st.booleans())
    if toolkit:
        comps.append(
            Component(
                name="cudatoolkit",
                version=full(env_cuda, 1),
                build="h0_0",
                source="conda",
                role="toolkit",
                cuda=str(env_cuda),
            )
        )
    else:
        comps.append(
            Component(
                name="cuda-version", version=str(env_cuda), build="h0_3", source="conda", role="pin", cuda=str(env_cuda)
            )
        )
        for name, role in draw(st.lists(st.sampled_from(CTK), unique=True, max_size=4)):
            cuda = draw(st.sampled_from([env_cuda, *[c for c in RELEASES if c.major == env_cuda.major]]))
            comps.append(
                Component(name=name, version=full(cuda, 86), build="h0_0", source="conda", role=role, cuda=str(cuda))
            )  # type: ignore[arg-type]
    for name, version in draw(st.lists(st.sampled_from(CONSUMERS), unique_by=lambda c: c[0], max_size=2)):
        comps.append(Component(name=name, version=version, build="py_0", source="conda", role="consumer", cuda=None))
        if name == "numba-cuda":
            reqs.append(
                CudaRequirement(name=name, version=version, build="py_0", spec="cuda-version >=12", field="depends")
            )
    if draw(st.booleans()):
        built = draw(st.sampled_from([c for c in RELEASES if c.major == env_cuda.major and c <= env_cuda]))
        build = f"cuda{built.major}{built.minor}_py312_h0_300"
        comps.append(
            Component(name="pytorch", version="2.9.0", build=build, source="conda", role="framework", cuda=str(built))
        )
        spec = (
            f"cuda-version >={built},<{built.major + 1}"
            if not toolkit
            else f"cudatoolkit >={built},<{built.major}.{built.minor + 1}"
        )
        reqs.append(CudaRequirement(name="pytorch", version="2.9.0", build=build, spec=spec, field="depends"))
    return EnvInfo(
        prefix=None,
        name=None,
        kind="conda",
        selected_by=None,
        components=tuple(comps),
        requested_specs=(),
        channels=("conda-forge",),
        package_count=len(comps),
        cuda_requirements=tuple(reqs),
    )


@st.composite
def pip_envs(draw: st.DrawFn) -> EnvInfo:
    """A pip venv model: NVIDIA CUDA wheels of one major (mixed minors) and JIT consumers from PyPI."""
    env_cuda = draw(cudas)
    comps: list[Component] = []
    for name, role in draw(st.lists(st.sampled_from(WHEELS), unique=True, min_size=1, max_size=3)):
        cuda = draw(st.sampled_from([c for c in RELEASES if c.major == env_cuda.major]))
        wheel = name.format(M=cuda.major)
        comps.append(
            Component(
                name=wheel, version=full(cuda, 86), build="", source="pip", role=role, cuda=str(cuda), channel="pypi"
            )
        )  # type: ignore[arg-type]
    for name, version in draw(st.lists(st.sampled_from(CONSUMERS[:3]), unique_by=lambda c: c[0], max_size=2)):
        comps.append(
            Component(name=name, version=version, build="", source="pip", role="consumer", cuda=None, channel="pypi")
        )
    return EnvInfo(
        prefix=None,
        name=None,
        kind="venv",
        selected_by=None,
        components=tuple(comps),
        requested_specs=(),
        channels=("pypi",),
        package_count=len(comps),
    )


def texts(report: verdict.DoctorReport) -> list[str]:
    fix = report.fix
    return [] if fix is None else [fix.summary, *fix.commands, *fix.alternatives]


def env_major(env: EnvInfo) -> set[int]:
    return {CudaVersion.parse(c.cuda).major for c in env.components if c.cuda and c.role != "framework"}


def allowed_versions(env: EnvInfo, driver: CudaVersion, extra: Iterable[str] = ()) -> set[str]:
    """Inputs, the driver's CUDA, and table lookups of those (PTX ISA, minimum driver, conda-forge's pin)."""
    kb = knowledge()
    found = {str(driver), *extra}
    cuda_values = {driver}
    for comp in env.components:
        found.add(comp.version)
        if comp.cuda:
            found.add(comp.cuda)
            cuda_values.add(CudaVersion.parse(comp.cuda))
    for req in env.cuda_requirements:
        found |= set(VERSION.findall(req.spec)) | {req.version}
        cuda_values |= {CudaVersion.parse(v) for v in VERSION.findall(req.spec)}
        lowest = _lowest_admitted(req.spec)  # conda-forge's table read through the requirement (rattler's grammar)
        if lowest is not None:
            found.add(str(lowest))
            cuda_values.add(lowest)
    for cuda in cuda_values:
        for value in (kb.ptx_for_cuda(cuda), kb.min_driver_for(cuda), kb.newest_cuda_version_pin(cuda)):
            if value is not None:
                found.add(str(value))
    return found


def _lowest_admitted(spec: str) -> CudaVersion | None:
    from rattler import Version, VersionSpec

    family, _, version_spec = spec.partition(" ")
    table = knowledge().cuda_version_versions
    if family == "cudatoolkit":
        table = tuple(CudaVersion.parse(v) for v in knowledge().cudatoolkit_versions)
    fits = [v for v in table if VersionSpec(version_spec).matches(Version(str(v)))]
    return min(fits) if fits else None


def check_doctor(env: EnvInfo, driver: CudaVersion) -> None:
    report = verdict.diagnose(DriverInfo(cuda=str(driver), source="--cuda"), env)
    said = texts(report)
    cuda_of_env = verdict.env_cuda(env)
    for text in [*said, *(report.fix.pins if report.fix else ())]:
        for _family, pin in FAMILY_PIN.findall(text):
            assert CudaVersion.parse(pin) <= driver, (text, driver)
        for name, pin in WHEEL_PIN.findall(text):
            if "nvjitlink" in name:  # SASS through nvJitLink: newer minor allowed, never another major
                assert CudaVersion.parse(pin).major == driver.major, (text, driver)
            else:
                assert CudaVersion.parse(pin) <= driver, (text, driver)
        for need, cuda in UPGRADE.findall(text):
            refused = CudaVersion.parse(cuda)
            assert refused > driver, (text, driver)
            assert cuda in {c.cuda for c in env.components}, (text, "not the CUDA of a component")
            assert need == knowledge().min_driver_for(refused), text
        crosses = any(CudaVersion.parse(p).major not in env_major(env) for _f, p in FAMILY_PIN.findall(text))
        if crosses or (cuda_of_env is not None and cuda_of_env.major != driver.major):
            assert "nothing else changes" not in text and "can stay" not in text, (text, driver)
        if crosses and FAMILY_PIN.search(text) and "cannot be installed" not in text:
            assert "crosses a major" in text, text
    if env.kind == "venv":
        assert not any("conda install" in t or FAMILY_PIN.search(t) for t in said), said
    allowed = allowed_versions(env, driver)
    for finding in report.findings:
        for text in (finding.message, *(h.text for h in finding.hints)):
            for version in VERSION.findall(text):
                assert version in allowed, (version, text)


@SETTINGS
@given(env=conda_envs(), driver=cudas)
def test_doctor_on_conda_envs(env: EnvInfo, driver: CudaVersion) -> None:
    check_doctor(env, driver)


@SETTINGS
@given(env=pip_envs(), driver=cudas)
def test_doctor_on_pip_venvs(env: EnvInfo, driver: CudaVersion) -> None:
    check_doctor(env, driver)


@SETTINGS
@given(env=conda_envs(), driver=cudas)
def test_the_guard(env: EnvInfo, driver: CudaVersion) -> None:
    """conda's post-solve guard on the same final states (name -> version, and the records' requirements)."""
    final = {c.name: c.version for c in env.components}
    finding = commands.guard_transaction(final, str(driver), env.cuda_requirements)
    if finding is None:
        return
    pinned = {CudaVersion.parse(c.cuda) for c in env.components if c.role in ("pin", "toolkit") and c.cuda}
    for text in (finding.message, *(h.text for h in finding.hints)):
        for _family, pin in FAMILY_PIN.findall(text):
            assert CudaVersion.parse(pin) <= driver, text
        for need, cuda in UPGRADE.findall(text):
            assert CudaVersion.parse(cuda) > driver and CudaVersion.parse(cuda) in pinned, text
            assert need == knowledge().min_driver_for(CudaVersion.parse(cuda)), text
        if any(p.major != driver.major for p in pinned):
            assert "add " not in text and "nothing else changes" not in text, text
        allowed = allowed_versions(env, driver)
        for version in VERSION.findall(text):
            assert version in allowed, (version, text)


versions = st.lists(
    st.one_of(
        st.builds(lambda c, p: f"{c}.{p}" if p else str(c), cudas, st.sampled_from([0, 0, 1, 86])),
        st.sampled_from(["", "banana", "12", "12.x", "13.0a0"]),
    ),
    max_size=12,
)


@SETTINGS
@given(channel=versions, limit=cudas, installed=st.sets(st.sampled_from(["cudatoolkit", "cuda-version", "numba"])))
def test_the_planners_pin_choice(channel: list[str], limit: CudaVersion, installed: set[str]) -> None:
    """Candidates: the channel's minors of the major, none above the target, newest first; pins: conda-forge's
    newest of the target's major that is not above it."""
    got = candidate_minors(channel, major=limit.major, limit=limit)
    assert got == sorted(set(got), reverse=True)
    assert all(c.major == limit.major and c <= limit for c in got)
    expect = {
        CudaVersion(major=int(v.split(".")[0]), minor=int(v.split(".")[1]))
        for v in channel
        if re.fullmatch(r"\d+\.\d+(\.\d+)?", v)
    }
    assert set(got) == {c for c in expect if c.major == limit.major and c <= limit}
    for pin in pins_for(limit, installed):
        family, _, version = pin.partition("=")
        cuda = CudaVersion.parse(version)
        assert cuda <= limit and cuda.major == limit.major, pin
        assert family in ("cuda-version", "cudatoolkit")


spec_versions = st.builds(
    lambda major, minor, tail: f"{major}.{minor}{tail}",
    st.integers(10, 13),
    st.integers(0, 10),
    st.sampled_from(["", "", ".0", ".0a0", ".1", ".*"]),
)
terms = st.builds(
    lambda op, v: f"{op}{v}" if not v.endswith("*") or op in ("", "==") else f"{op}{v[:-2]}",
    st.sampled_from([">=", "<=", ">", "<", "==", "!=", ""]),
    spec_versions,
)
version_specs = st.lists(st.lists(terms, min_size=1, max_size=3).map(",".join), min_size=1, max_size=2).map("|".join)


@SETTINGS
@given(spec=version_specs, version=st.builds(lambda c, p: f"{c}{p}", cudas, st.sampled_from(["", ".0", ".2", "0"])))
def test_the_pure_matcher_agrees_with_condas_grammar(spec: str, version: str) -> None:
    """Doctor reads requirements without a solver; rattler's VersionSpec (conda's grammar) is the oracle."""
    from rattler import Version, VersionSpec

    try:
        oracle = VersionSpec(spec).matches(Version(version))
    except Exception:  # a spec rattler refuses is not one repodata carries
        return
    assert admits(f"cuda-version {spec}", "cuda-version", version) == oracle, (spec, version)
