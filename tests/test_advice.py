"""One advice (issue 21 item 5): doctor, conda's guard and ``condafix cuda`` say the same thing about an env
whose installed package pins its CUDA, and about an env a major above the driver.

Expectations come from the fixture channel (``channel_factory``: pytorch 2.9.0 depends on
``cuda-version >=12.8,<13``; numba-cuda 0.15.2 on ``cuda-version >=12``) and from NVIDIA's driver table
(CUDA 12.8 needs a Linux driver >= 570.26, 12.9 >= 575.51.03; cuda-toolkit release notes, Table 3).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from condafix.backends import choice
from condafix.cli import commands
from condafix.detect import driver
from condafix.detect import target as target_mod
from condafix.diagnose import verdict
from condafix.env import condameta, envinfo
from condafix.knowledge.pinrule import requirements_of
from condafix.plan import planner

from .channel_factory import Spec, build_package, conda_forge_like, index

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]
#: the channel's pytorch record and the driver table, in the words all three commands must use
PYTORCH_HOLDS = "pytorch 2.9.0 needs cuda-version >=12.8,<13 (CUDA 12.8: driver >= 570.26)"
DRIVER_FOR_12_9 = "upgrade the NVIDIA driver to >= 575.51.03 (CUDA 12.9)"


def plan_for(prefix: Path, cuda: str, **kwargs: object) -> planner.Plan:
    backend = choice.open_backend("rattler", prefix=prefix, offline=False)
    goal = target_mod.TargetCuda(cuda=cuda, source="--cuda", inputs=(f"--cuda {cuda}",))
    return planner.plan(prefix=prefix, target=goal, backend=backend, env={}, **kwargs)  # type: ignore[arg-type]


def doctor_for(prefix: Path, cuda: str) -> verdict.DoctorReport:
    return verdict.diagnose(driver.DriverInfo(cuda=cuda, source="--cuda"), envinfo.read_env(prefix, "-p"))


def guard_for(prefix: Path, cuda: str) -> object:
    """The guard's function on the env's final state, with the records' own requirements (as conda hands them)."""
    records = [r for _p, r in condameta.records(prefix)]
    final = {str(r["name"]): str(r["version"]) for r in records}
    reqs = [
        q
        for r in records
        for q in requirements_of(r["name"], r["version"], r["build"], r["depends"], r.get("constrains", []))
    ]
    return commands.guard_transaction(final, cuda, reqs)


def fix_texts(report: verdict.DoctorReport) -> str:
    assert report.fix is not None
    return " | ".join([report.fix.summary, *report.fix.commands, *report.fix.alternatives])


def test_doctor_the_guard_and_cuda_name_pytorch_and_its_requirement(installed_env: Callable[..., Path]) -> None:
    """On b1aaa3b doctor said "move the env's CUDA down to 12.4 … nothing else changes", the guard said
    "add cuda-version=12.4" and condafix cuda said blocked: three answers for one env."""
    prefix = installed_env([*BROKEN, "pytorch"], cuda="12.9")
    report = doctor_for(prefix, "12.4")
    assert report.fix is not None and PYTORCH_HOLDS in report.fix.summary
    assert report.fix.pins == () and report.fix.commands == ()  # no pin it knows conda must refuse
    assert "nothing else changes" not in fix_texts(report)
    finding = guard_for(prefix, "12.4")
    assert finding is not None
    hint = " ".join(h.text for h in finding.hints)  # type: ignore[attr-defined]
    assert PYTORCH_HOLDS in hint and "add " not in hint
    plan = plan_for(prefix, "12.4")
    assert plan.status == "blocked" and PYTORCH_HOLDS in plan.reason
    assert "remove/replace" not in plan.reason
    for said in (report.fix.summary, hint, plan.reason):  # the same driver upgrade everywhere: the env as it is
        assert DRIVER_FOR_12_9 in said


def test_a_warning_only_env_is_nothing_to_do_for_condafix_cuda(
    installed_env: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    """pytorch alone has no JIT consumer: SASS runs under minor version compatibility (doctor: warning).
    ``condafix cuda`` exited 2 (blocked) for it on b1aaa3b."""
    prefix = installed_env(["pytorch", "python 3.12.3.*"], cuda="12.9")
    assert doctor_for(prefix, "12.4").status == "warning"
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4", "--json"],
        capture_output=True, text=True, env=cli_env, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads(done.stdout)["result"]
    assert plan["status"] == "nothing-to-do" and plan["attempts"] == [] and plan["changes"] == []
    assert PYTORCH_HOLDS in plan["reason"]


def test_eleven_four_driver_and_a_12_9_env_agree_on_the_driver(installed_env: Callable[..., Path]) -> None:
    """SASS never crosses a major: doctor offered "upgrade numba-cuda … the env's CUDA can stay" on b1aaa3b."""
    prefix = installed_env(BROKEN, cuda="12.9")
    report = doctor_for(prefix, "11.4")
    assert report.fix is not None and report.fix.summary == DRIVER_FOR_12_9 and report.fix.pins == ()
    texts = fix_texts(report)
    assert "can stay" not in texts and "nothing else changes" not in texts
    assert all("crosses a major" in alt for alt in report.fix.alternatives if "cuda-version=11" in alt)
    # the CUDA 11 env is held by numba-cuda's own requirement: the same rule names it
    assert "numba-cuda 0.15.2 needs cuda-version >=12 (CUDA 12.0: driver >= 525.60.13)" in texts
    finding = guard_for(prefix, "11.4")
    assert finding is not None and DRIVER_FOR_12_9 in finding.hints[0].text  # type: ignore[attr-defined]
    plan = plan_for(prefix, "11.4")
    assert plan.status == "blocked" and DRIVER_FOR_12_9 in plan.reason and "crosses a major" in plan.reason


def test_a_pip_venv_across_a_major_gets_pip_advice_only(tmp_path: Path) -> None:
    """A venv has no conda: b1aaa3b offered it `conda install "cuda-version=11.4"`."""
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for dist, version in (("nvidia_cuda_nvrtc_cu12", "12.9.86"), ("numba_cuda", "0.15.2")):
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "INSTALLER").write_text("pip\n")
    report = doctor_for(venv, "11.4")
    assert report.fix is not None
    texts = fix_texts(report)
    assert "conda " not in texts and "cuda-version=" not in texts
    assert "upgrade the NVIDIA driver to >= 575.51.03 (CUDA 12.9)" in report.fix.summary


def _channel_without_old_libcusparse(root: Path) -> Path:
    """The fixture channel plus libcusparse built for CUDA 12.4 and 12.5 only (conda-forge pins each CTK
    library to its own cuda-version X.Y, like the real 12.x libcusparse builds)."""
    channel = root / "channel"
    specs = [*conda_forge_like(), Spec("cuda-version", "12.5", "h0_3", "noarch", constrains=("__cuda >=12",))]
    for minor, full in (("12.4", "12.3.1.170"), ("12.5", "12.5.1.3")):
        low = int(minor.split(".")[1])
        specs.append(Spec("libcusparse", full, "h0_0", depends=(f"cuda-version >={minor},<12.{low + 1}.0a0",)))
    for spec in specs:
        build_package(channel, spec)
    index(channel)
    return channel


def test_a_missing_build_of_a_part_that_moves_with_the_pin_is_the_channels_gap(
    tmp_path: Path, pkgs_cache: Path
) -> None:
    """On real conda-forge records, `--cuda 12.3` named the env's own CUDA 12.5 libraries as blockers and
    advised "remove/replace that package"; the solver's reason was that no libcusparse build exists for the
    lower cuda-versions. A part that moves with the pin is never the env's fault."""
    from .envs import install_env

    channel = _channel_without_old_libcusparse(tmp_path)
    prefix = install_env(
        channel, tmp_path / "envs" / "gpu", [*BROKEN, "libcusparse", "cuda-version 12.5.*"], cuda="12.5",
        cache=pkgs_cache,
    )  # fmt: skip
    plan = plan_for(prefix, "12.3", channels=[channel.as_uri()])
    assert plan.status == "blocked", plan.reason
    assert [(b.name, b.kind) for b in plan.blockers] == [("libcusparse", "missing-build")]
    assert "the channel has no build of libcusparse for cuda-version 12.3, 12.2, 12.1, 12.0" in plan.reason
    assert "remove" not in plan.reason and "replace" not in plan.reason


def numba_paste(ptx: str, driver_ptx: str) -> str:
    """numba-cuda's LinkerError as users paste it (the driver's JIT refused the env's PTX)."""
    return (
        "numba.cuda.cudadrv.driver.LinkerError: [222] Call to cuLinkAddData results in "
        "CUDA_ERROR_UNSUPPORTED_PTX_VERSION\n"
        "ptxas application ptx input, line 9; fatal   : "
        f"Unsupported .version {ptx}; current version is '{driver_ptx}'\n"
    )


def explain_for(prefix: Path, paste: str) -> str:
    done = commands.explain(text=paste, no_detect=True, prefix=str(prefix), ui=commands.Ui(env={}))
    result = done.result
    assert result.recognised  # type: ignore[attr-defined]
    return " | ".join(result.fixes)  # type: ignore[attr-defined]


def test_explain_joins_the_pin_rule_on_the_pytorch_env(installed_env: Callable[..., Path]) -> None:
    """explain -p ENV told the user `conda install "cuda-version=12.4"`, which conda refuses while pytorch
    2.9.0 (cuda-version >=12.8,<13) is installed; doctor, the guard and condafix cuda name pytorch instead.
    PTX ISA 8.8 is CUDA 12.9's, 8.4 is CUDA 12.4's (the PTX ISA release notes' table)."""
    prefix = installed_env([*BROKEN, "pytorch"], cuda="12.9")
    fixes = explain_for(prefix, numba_paste("8.8", "8.4"))
    assert PYTORCH_HOLDS in fixes and DRIVER_FOR_12_9 in fixes
    assert '"cuda-version=12.4"' not in fixes


def test_explain_never_pins_across_a_major(installed_env: Callable[..., Path]) -> None:
    """A CUDA 12.9 env on an 11.4 driver (PTX ISA 7.4): the fix is the driver, as doctor says; a CUDA 11 pin
    would replace every CUDA package and is never offered as "bring NVVM down"."""
    prefix = installed_env(BROKEN, cuda="12.9")
    fixes = explain_for(prefix, numba_paste("8.8", "7.4"))
    assert DRIVER_FOR_12_9 in fixes
    assert "bring NVVM down to CUDA 11" not in fixes and '"cuda-version=11' not in fixes.split(" | ")[0]
