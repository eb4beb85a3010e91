"""pixi.lock format 7 (pixi >= 0.71): aliases mapped to the manifest's platforms, and pixi's own verdicts.

Fixtures: pixi-multi-machine and pixi-v7-upstream are prefix-dev/pixi's own files (2b25fc7), pixi-cuda-depends
is pixi's test lock for its install check; pixi-v7 is hand-written in pixi's format from those (see its header).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix.files.lockfile import LockError, check_file
from condafix.knowledge.cuda import CudaVersion

from .conftest import FIXTURES

LOCKS = FIXTURES / "lockfiles"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", "lock", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "250"},
        check=False,
    )


def test_pixis_own_v7_lock_reads_with_its_aliases_named_as_the_manifest_names_them() -> None:
    """pixi writes p1, p2, p3 for the rich entries in manifest order; the manifest's names come back."""
    report = check_file(LOCKS / "pixi-multi-machine/pixi.lock", CudaVersion.parse("12.4"))
    got = {(e.lock_platform, e.platform, e.resolved_cuda) for e in report.envs}
    assert got == {
        ("linux-64", "linux-64", None),
        ("p1", "cuda-win-64", "12.0"),  # { name = "cuda-win-64", platform = "win-64", cuda = "12" }
        ("p2", "cuda-linux-64", "12.0"),
        ("p3", "osx-arm64-macos-13-5", None),  # unnamed: the name pixi synthesizes
        ("win-64", "win-64", None),
    }
    assert {e.verdict for e in report.envs} == {"no-cuda"}  # pixi's example locks the CPU pytorch


def test_a_v7_lock_without_a_manifest_keeps_its_keys_and_reads_its_cuda() -> None:
    report = check_file(LOCKS / "pixi-v7-upstream/pixi.lock", CudaVersion.parse("12.4"))
    got = {e.platform: e.resolved_cuda for e in report.envs}
    assert got == {
        "linux-64": None,
        "x86-cuda13": "13.0",
        "osx-arm64-cuda": "12.0",
        "osx-arm64-macos-14-0": None,
        "win-64": None,
    }


# env -> (platform, lock key, locked CUDA, pixi's verdict), by hand from pixi-v7/pixi.toml and its lock
V7 = {
    "12.4": {
        "a100": ("linux-64-cuda-12-9-cuda-arch-8-0", "p2", "12.9", "runs only by accident"),  # SASS, minor compat
        "gpu": ("cuda-linux-64", "p1", "12.9", "cannot run"),  # numba-cuda JITs 12.9 PTX
        "infer": ("linux-64-cuda-12-9-cuda-arch-8-0", "p2", "12.6", "runs only by accident"),
    },
    "12.6": {
        "a100": ("linux-64-cuda-12-9-cuda-arch-8-0", "p2", "12.9", "runs only by accident"),
        "gpu": ("cuda-linux-64", "p1", "12.9", "cannot run"),
        "infer": ("linux-64-cuda-12-9-cuda-arch-8-0", "p2", "12.6", "runs only by accident"),  # solved for 12.9
    },
    "12.9": {
        "a100": ("linux-64-cuda-12-9-cuda-arch-8-0", "p2", "12.9", "runs as resolved"),
        "gpu": ("cuda-linux-64", "p1", "12.9", "runs only by accident"),  # declares 12, holds 12.9: drift
        "infer": ("linux-64-cuda-12-9-cuda-arch-8-0", "p2", "12.6", "runs as resolved"),
    },
}


@pytest.mark.parametrize("target", sorted(V7))
def test_each_env_in_pixis_vocabulary(target: str) -> None:
    report = check_file(LOCKS / "pixi-v7/pixi.lock", CudaVersion.parse(target))
    got = {e.env: (e.platform, e.lock_platform, e.cuda, e.runs) for e in report.envs if e.cuda}
    assert got == V7[target]
    verdicts = {"runs as resolved": "ok", "runs only by accident": "warning", "cannot run": "mismatch"}
    assert all(e.verdict == verdicts[e.runs] for e in report.envs if e.runs)
    assert all(
        e.check == f"CONDA_OVERRIDE_CUDA={target} pixi install --frozen -e {e.env}" for e in report.envs if e.cuda
    )


def test_the_reasons_say_why_in_pixis_terms() -> None:
    lock = LOCKS / "pixi-v7/pixi.lock"
    at = {
        t: {e.env: e for e in check_file(lock, CudaVersion.parse(t)).envs if e.cuda} for t in ("12.4", "12.6", "12.9")
    }
    assert "pixi's own check passes (no locked package depends on a newer __cuda): it fails at run time" in (
        at["12.4"]["gpu"].reason
    )
    assert at["12.6"]["infer"].reason.startswith(
        "solved for __cuda 12.9 (p2 in pixi.lock) and this driver provides 12.6"
    )
    drift = at["12.9"]["gpu"]
    assert drift.declared == "12" and drift.reason.startswith(
        "the manifest declares CUDA 12 but the lock holds CUDA 12.9"
    )
    report = check_file(lock, CudaVersion.parse("12.9"))
    assert report.fix == (
        f'{lock.with_name("pixi.toml")}: pin cuda-version = "12.0.*" in the dependencies of gpu to keep the declared '
        "CUDA 12.0, or raise the CUDA the manifest declares (the platform's cuda, or [system-requirements] cuda) to "
        "the one the lock now holds",
    )


def test_a_package_that_depends_on_a_newer_cuda_is_what_pixi_install_refuses() -> None:
    """pixi's test lock: cuda-version depends on `__cuda >=12`; pixi checks depends (not constrains) at install."""
    report = check_file(LOCKS / "pixi-cuda-depends/pixi.lock", CudaVersion.parse("11.8"))
    (env,) = report.envs
    assert (env.runs, env.verdict) == ("cannot run", "mismatch")
    assert env.reason.startswith(
        "cuda-version depends on '__cuda >=12' and this driver provides __cuda 11.8: pixi install stops "
        "(\"Virtual package '__cuda >=12' does not match any of the available virtual packages\")"
    )
    fine = check_file(LOCKS / "pixi-cuda-depends/pixi.lock", CudaVersion.parse("12.6"))
    assert fine.envs[0].runs == "runs as resolved"


def test_cli_names_the_platform_its_alias_and_pixis_check(tmp_path: Path) -> None:
    done = run(str(LOCKS / "pixi-v7/pixi.lock"), "--cuda", "12.4")
    assert done.returncode == 0, done.stderr
    assert "cuda-linux-64 (p1)" in done.stdout and "cannot run" in done.stdout
    assert "pixi's own check for CUDA 12.4, on any machine:" in done.stdout
    assert "  CONDA_OVERRIDE_CUDA=12.4 pixi install --frozen -e gpu" in done.stdout
    doc = json.loads(run(str(LOCKS / "pixi-v7/pixi.lock"), "--cuda", "12.4", "--json").stdout)
    gpu = next(e for e in doc["result"]["reports"][0]["envs"] if e["env"] == "gpu")
    assert (gpu["platform"], gpu["lock_platform"], gpu["resolved_cuda"], gpu["runs"]) == (
        "cuda-linux-64",
        "p1",
        "12.0",
        "cannot run",
    )


def test_a_lock_newer_than_py_rattler_reads_is_one_line_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "pixi.lock"
    path.write_text((LOCKS / "pixi-v7-upstream/pixi.lock").read_text().replace("version: 7\n", "version: 8\n", 1))
    with pytest.raises(LockError) as caught:
        check_file(path, CudaVersion.parse("12.4"))
    assert "\n" not in caught.value.summary
    assert (
        "(version 8): py-rattler 0.28" in caught.value.summary and "up to including version 7" in caught.value.summary
    )


def test_manifest_platforms_migrate_system_requirements_as_pixi_does() -> None:
    """The manifests of pixi's own migration tests (crates/pixi_manifest/src/toml/manifest.rs), named by its rules."""
    from condafix.files.pixifile import manifest_platforms

    workspace = (
        '[workspace]\nchannels = []\nplatforms = ["linux-64", "osx-64", "win-64"]\n\n'
        '[system-requirements]\nlinux = "5.10"\nlibc = "2.28"\ncuda = "12.0"\n'
    )
    names = {p.name: p.cuda for p in manifest_platforms(workspace, "pixi.toml")}
    assert set(names) == {"linux-64-cuda-12-0-linux-5-10", "osx-64", "win-64-cuda-12-0"}  # cuda is off osx
    assert names["win-64-cuda-12-0"] == CudaVersion(major=12, minor=0) and names["osx-64"] is None
    feature = (
        '[workspace]\nchannels = []\nplatforms = ["linux-64", "osx-64"]\n\n'
        '[feature.cuda]\nplatforms = ["linux-64"]\nsystem-requirements = { cuda = "12.0" }\n\n'
        '[environments]\ncuda = ["cuda"]\n'
    )
    assert {p.name for p in manifest_platforms(feature, "pixi.toml")} == {"linux-64-cuda-12-0", "osx-64", "linux-64"}
    macos = '[workspace]\nplatforms = ["linux-64", "osx-arm64"]\n\n[system-requirements]\nmacos = "12.0"\n'
    # crates/pixi/tests/integration_rust/lock_v6_platform_tests.rs: "osx-arm64-macos-12-0", linux-64 stays bare
    assert {p.name for p in manifest_platforms(macos, "pixi.toml")} == {"linux-64", "osx-arm64-macos-12-0"}


@pytest.mark.parametrize(
    ("target", "unmet"),
    [("11.8", "c"), ("12.4", "d"), ("12.8", None), ("13.0", "c")],
)
def test_pixis_install_check_matches_the_whole_spec(target: str, unmet: str | None) -> None:
    """A bound either way counts, as rattler matches it; a bare `__cuda` asks only for a driver."""
    from condafix.files.pixilock import unmet_cuda

    depends = [("a", "__cuda <14"), ("b", "__cuda"), ("c", "__cuda >=12,<13"), ("d", "__cuda >=12.8")]
    found = unmet_cuda(depends, CudaVersion.parse(target))
    assert (found[0] if found else None) == unmet


platform_entries = st.lists(
    st.sampled_from(["linux-64", "osx-arm64", "win-64"])
    | st.fixed_dictionaries(
        {"platform": st.sampled_from(["linux-64", "osx-arm64", "", "nonsense"])},
        optional={
            "name": st.sampled_from(["cuda-linux-64", "p1", "linux-64", ""]),
            "cuda": st.sampled_from(["12", "12.9", "13", "x", ""])
            | st.fixed_dictionaries({}, optional={"driver": st.sampled_from(["12.9", "q"]), "arch": st.just("8.0")}),
            "__cuda": st.sampled_from(["12", "12.9=0", "bad"]),
        },
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(platforms=platform_entries, sysreq=st.sampled_from([None, "12", "13.0", "x"]))
def test_fuzzed_manifests_beside_a_v7_lock_give_a_report(
    tmp_path: Path, platforms: list[object], sysreq: str | None
) -> None:
    import tomlkit

    doc: dict[str, object] = {"workspace": {"channels": ["conda-forge"], "platforms": platforms}}
    if sysreq is not None:
        doc["system-requirements"] = {"cuda": sysreq}
    (tmp_path / "pixi.toml").write_text(tomlkit.dumps(doc))
    (tmp_path / "pixi.lock").write_bytes((LOCKS / "pixi-v7/pixi.lock").read_bytes())
    report = check_file(tmp_path / "pixi.lock", CudaVersion.parse("12.4"))
    assert {e.lock_platform for e in report.envs} == {"linux-64", "p1", "p2", "p3"}
    assert all(e.runs in (None, "runs as resolved", "runs only by accident", "cannot run") for e in report.envs)


def test_aliases_match_on_every_virtual_package_not_only_cuda(tmp_path: Path) -> None:
    """Two linux-64 platforms with __cuda 12.9, one with __cuda_arch 8.0: p2 is the one with the arch."""
    manifest = (LOCKS / "pixi-v7/pixi.toml").read_text()
    twin = '  { name = "h100", platform = "linux-64", cuda = "12.9" },\n'
    (tmp_path / "pixi.toml").write_text(manifest.replace('  "linux-64",\n', '  "linux-64",\n' + twin, 1))
    (tmp_path / "pixi.lock").write_bytes((LOCKS / "pixi-v7/pixi.lock").read_bytes())
    report = check_file(tmp_path / "pixi.lock", CudaVersion.parse("12.9"))
    assert {e.platform for e in report.envs if e.lock_platform == "p2"} == {"linux-64-cuda-12-9-cuda-arch-8-0"}
    assert {e.platform for e in report.envs if e.lock_platform == "p1"} == {"cuda-linux-64"}


def test_before_format_7_the_env_was_solved_with_its_declared_cuda() -> None:
    """A v6 key is the subdir; pixi solved `cuda12` with its feature's `[system-requirements] cuda = "12"`."""
    report = check_file(LOCKS / "pixi-v6/pixi.lock", CudaVersion.parse("12.4"))
    got = {(e.env, e.platform): (e.lock_platform, e.resolved_cuda) for e in report.envs}
    assert got[("cuda12", "linux-64")] == ("linux-64", "12.0")
    assert got[("torch", "linux-64")] == ("linux-64", None)  # no CUDA declared for it
