"""Changes conda keeps (issue 11): condafix against envs made by real conda, with each solver.

Every claim is checked with conda itself: ``conda.history.History`` replays the history,
``conda list --revisions``, ``conda install --revision N``, ``conda env export --from-history``,
``conda update --all`` and a later ``conda install`` in the changed env.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .realconda import ALL_SOLVERS, BROKEN_SPECS, LATEST_SPECS, SOLVERS, RealConda


def condafix(conda: RealConda, *args: str, cuda: str = "12.4", **env: str) -> subprocess.CompletedProcess[str]:
    """Run condafix (the project's python) in the same isolated conda configuration."""
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env=conda.env(cuda=cuda, **env),
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def apply(
    conda: RealConda, prefix: Path, *extra: str, cuda: str = "12.4", **env: str
) -> subprocess.CompletedProcess[str]:
    return condafix(conda, "cuda", "-p", str(prefix), "--cuda", cuda, "--apply", "--yes", *extra, cuda=cuda, **env)


def rollback(conda: RealConda, prefix: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return condafix(conda, "rollback", "-p", str(prefix), "--yes", *extra, **env)


def tree(prefix: Path) -> dict[str, bytes]:
    """Every file of the env except condafix's own state and conda's history (appended to)."""
    return {
        p.relative_to(prefix).as_posix(): p.read_bytes()
        for p in sorted(prefix.rglob("*"))
        if p.is_file() and "conda-meta/condafix" not in p.as_posix() and p.name != "history"
    }


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_conda_reproduces_the_bug_and_condafix_reads_it(real_conda: RealConda, tmp_path: Path, solver: str) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver=solver)
    installed = real_conda.installed(prefix)
    # conda's own solvers put a toolkit newer than the CUDA 12.4 driver into the env: the bug.
    assert installed["cuda-version"] == ("13.0" if solver == "classic" else "12.9")
    done = condafix(real_conda, "doctor", "-p", str(prefix), "--cuda", "12.4", "--json")
    report = json.loads(done.stdout)["result"]
    assert report["status"] == "mismatch", done.stdout
    if solver != "classic":  # 13.0 -> 12.4 crosses a major: planned only with --allow-major
        plan = condafix(real_conda, "cuda", "-p", str(prefix), "--cuda", "12.4", "--json")
        result = json.loads(plan.stdout)["result"]
        assert result["status"] == "change" and result["pin"] == "cuda-version=12.4", plan.stdout
        assert result["channels"] == [real_conda.channel_url]


@pytest.mark.parametrize("solver", SOLVERS)
def test_round_trip_in_condas_own_terms(real_conda: RealConda, tmp_path: Path, solver: str) -> None:
    """apply -> conda reads and replays it -> update --all keeps it -> rollback -> conda is as before."""
    prefix = real_conda.create(tmp_path / "e1", LATEST_SPECS, solver=solver)
    before = tree(prefix)
    chan = real_conda.channel_url
    done = apply(real_conda, prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pinned cuda-version 12.4.*" in done.stdout
    assert (prefix / "conda-meta" / "pinned").read_text() == "cuda-version 12.4.*\n"
    history = real_conda.history(prefix)
    assert len(history.requests) == 2 and history.requests[-1]["update_specs"] == ["cuda-version=12.4"]
    assert history.requested["cuda-version"] == "cuda-version=12.4"
    state = set(history.states[-1])
    # conda's replay drops the old builds (exact channel/subdir::name-version-build lines)
    assert (
        f"{chan}/noarch::cuda-version-12.4-h0_3" in state
        and f"{chan}/linux-64::cuda-nvrtc-12.4.131-h5888daf_0" in state
    )
    assert not [s for s in state if "12.9" in s]
    assert {s.split("::")[1].rsplit("-", 2)[0] for s in state} == set(real_conda.installed(prefix))
    revisions = real_conda.run("list", "-p", str(prefix), "--revisions").stdout
    assert "(rev 1)" in revisions and "<unknown>" not in revisions and "cuda-version  {12.9" in revisions
    exported = real_conda.run("env", "export", "-p", str(prefix), "--from-history", "--json").stdout
    assert "cuda-version=12.4" in json.loads(exported)["dependencies"]

    real_conda.run("update", "--all", "-y", "-q", "-p", str(prefix), "--override-channels", "-c", chan, solver=solver)
    assert real_conda.installed(prefix)["cuda-version"] == "12.4"  # the pin keeps the fix

    undone = rollback(real_conda, prefix)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert tree(prefix) == before  # pinned gone, every record and file as conda made it
    history = real_conda.history(prefix)
    assert "cuda-version" not in history.requested and history.requests[-1]["remove_specs"] == ["cuda-version"]
    assert history.states[-1] == history.states[0]
    revisions = real_conda.run("list", "-p", str(prefix), "--revisions").stdout
    assert "(rev 2)" in revisions and "<unknown>" not in revisions
    exported = real_conda.run("env", "export", "-p", str(prefix), "--from-history", "--json").stdout
    assert not [d for d in json.loads(exported)["dependencies"] if "cuda-version" in d]
    # any later install leaves the CUDA parts alone: the fix is not re-applied from the history
    real_conda.install(prefix, "libzlib", solver=solver)
    assert real_conda.installed(prefix)["cuda-version"] == "12.9"
    again = rollback(real_conda, prefix)  # already undone: the later install stays
    assert again.returncode == 0 and "nothing to do" in again.stdout and "libzlib" in real_conda.installed(prefix)
    # and conda can still go back to condafix's revision
    real_conda.run("install", "-y", "-q", "-p", str(prefix), "--revision", "1", "--override-channels", "-c", chan,
                   solver=solver)  # fmt: skip
    assert real_conda.installed(prefix)["cuda-version"] == "12.4" and "libzlib" not in real_conda.installed(prefix)


@pytest.mark.parametrize("solver", SOLVERS)
def test_conda_install_revision_after_apply(real_conda: RealConda, tmp_path: Path, solver: str) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver=solver)
    assert apply(real_conda, prefix, "--no-pin").returncode == 0
    assert not (prefix / "conda-meta" / "pinned").exists()
    channel = ("--override-channels", "-c", real_conda.channel_url)  # the revision's packages come from there
    real_conda.run("install", "-y", "-q", "-p", str(prefix), "--revision", "0", *channel, solver=solver)
    assert real_conda.installed(prefix)["cuda-version"] == "12.9"
    real_conda.run("install", "-y", "-q", "-p", str(prefix), "--revision", "1", *channel, solver=solver)
    assert real_conda.installed(prefix)["cuda-version"] == "12.4"


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_update_all_undoes_an_unpinned_fix_and_keeps_a_pinned_one(
    real_conda: RealConda, tmp_path: Path, solver: str
) -> None:
    template = real_conda.create(tmp_path / "t", BROKEN_SPECS, solver="libmamba")
    pinned, unpinned = tmp_path / "pinned", tmp_path / "unpinned"
    for prefix, extra in ((pinned, ()), (unpinned, ("--no-pin",))):
        subprocess.run(["cp", "-a", str(template), str(prefix)], check=True)
        assert apply(real_conda, prefix, *extra).returncode == 0
        real_conda.run("update", "--all", "-y", "-q", "-p", str(prefix), "--override-channels", "-c",
                       real_conda.channel_url, solver=solver)  # fmt: skip
    assert real_conda.installed(pinned)["cuda-version"] == "12.4"
    assert real_conda.installed(unpinned)["cuda-version"] != "12.4"  # what the issue saw without the pin


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_conflicting_pin_blocks_until_replaced(real_conda: RealConda, tmp_path: Path, solver: str) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver=solver)
    pinned = prefix / "conda-meta" / "pinned"
    pinned.write_text("numpy 2.0.*\ncuda-version 12.9.*\n")
    before = tree(prefix)
    blocked = apply(real_conda, prefix)
    assert blocked.returncode == 2 and f"{pinned}:2: cuda-version 12.9.*" in blocked.stderr, blocked.stderr
    assert "--replace-pin" in blocked.stderr and tree(prefix) == before
    assert not (prefix / "conda-meta" / "condafix" / "snapshots").exists()
    done = apply(real_conda, prefix, "--replace-pin")
    assert done.returncode == 0, done.stderr
    assert pinned.read_text() == "numpy 2.0.*\ncuda-version 12.4.*\n"
    real_conda.install(prefix, "libzlib", solver=solver)  # satisfiable: the env and its pins agree
    assert real_conda.installed(prefix)["cuda-version"] == "12.4"
    assert rollback(real_conda, prefix, "--force").returncode == 0
    assert pinned.read_text() == "numpy 2.0.*\ncuda-version 12.9.*\n"  # the user's pin is back


@pytest.mark.parametrize("solver", SOLVERS)
def test_rollback_refuses_to_revert_later_changes(real_conda: RealConda, tmp_path: Path, solver: str) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver=solver)
    assert apply(real_conda, prefix).returncode == 0
    real_conda.install(prefix, "numpy=2.1.0", solver=solver)
    after = tree(prefix)
    history = (prefix / "conda-meta" / "history").read_text()
    refused = rollback(real_conda, prefix)
    assert refused.returncode == 2 and "numpy" in refused.stderr and "2.1.0" in refused.stderr, refused.stderr
    assert "history revision 3" in refused.stderr and "--force" in refused.stderr
    assert tree(prefix) == after and (prefix / "conda-meta" / "history").read_text() == history
    dry = condafix(real_conda, "rollback", "-p", str(prefix), "--dry-run")
    assert dry.returncode == 0 and "changed after condafix's change" in dry.stdout
    forced = rollback(real_conda, prefix, "--force")
    assert forced.returncode == 0, forced.stderr
    assert real_conda.installed(prefix)["numpy"] == "2.0.0"
    requested = real_conda.history(prefix).requested
    assert requested["numpy"] == "numpy=2.0.0" and "cuda-version" not in requested
    real_conda.install(prefix, "libzlib", solver=solver)  # conda agrees with the restored history
    assert real_conda.installed(prefix)["numpy"] == "2.0.0"


def test_named_envs_resolve_like_conda(real_conda: RealConda, tmp_path: Path) -> None:
    named = real_conda.create(real_conda.envs_dir / "e1", BROKEN_SPECS, solver="libmamba")
    plan = json.loads(condafix(real_conda, "cuda", "-n", "e1", "--cuda", "12.4", "--json").stdout)["result"]
    assert plan["prefix"] == str(named) and plan["commands"][0].startswith("conda install -n e1 --override-channels")
    outside = real_conda.create(tmp_path / "my envs" / "e1", BROKEN_SPECS, solver="libmamba")
    plan = json.loads(condafix(real_conda, "cuda", "-p", str(outside), "--cuda", "12.4", "--json").stdout)["result"]
    command = plan["commands"][0]
    assert f"-p {shlex.quote(str(outside))} " in command  # conda's -n e1 would pick the other env
    where = shlex.split(command)[2:4]
    listed = real_conda.run("list", *where, "--json")
    assert {p["name"] for p in json.loads(listed.stdout)} >= {"cuda-version", "numba-cuda"}
    # a folder name from environments.txt is not an env name for conda, nor for condafix
    real_conda.run("create", "-y", "-q", "-p", str(tmp_path / "elsewhere" / "e2"), "--override-channels",
                   "-c", real_conda.channel_url, "libzlib")  # fmt: skip
    assert str(tmp_path / "elsewhere" / "e2") in (real_conda.home / ".conda" / "environments.txt").read_text()
    assert real_conda.run("list", "-n", "e2", check=False).returncode != 0
    done = condafix(real_conda, "doctor", "-n", "e2", "--cuda", "12.4")
    assert done.returncode == 3 and "no environment named 'e2'" in done.stderr


@pytest.mark.parametrize("via_solver", SOLVERS)
def test_via_conda_runs_the_whole_plan_with_one_revision(
    real_conda: RealConda, tmp_path: Path, via_solver: str
) -> None:
    other = tmp_path / "other-channel"
    from .channel_factory import Spec, build_package, index

    # a channel from .condarc that would win if --override-channels were missing (higher build number)
    build_package(other, Spec("cuda-version", "11.4", "h0_9", "noarch", constrains=("__cuda >=11",)))
    index(other)
    # numba's built-in target hands the toolkit's PTX to the driver's JIT: an 11.4 driver refuses 11.8's
    specs = ("cudatoolkit=11.8", "cuda-version=11.8", "numba", "python=3.12.3", "numpy=2.0.0")
    prefix = real_conda.create(tmp_path / "e1", specs, solver="libmamba", cuda="11.8")
    real_conda.condarc.write_text(f"channels:\n  - {other.as_uri()}\n")
    try:
        revisions = len(real_conda.history(prefix).requests)
        done = apply(real_conda, prefix, "--via", "conda", "-c", real_conda.channel_url, cuda="11.4",
                     CONDA_SOLVER=via_solver)  # fmt: skip
    finally:
        real_conda.condarc.write_text("channels: []\n")
    assert done.returncode == 0, done.stdout + done.stderr
    installed = real_conda.installed(prefix)
    assert installed["cudatoolkit"] == "11.4.3" and installed["cuda-version"] == "11.4"  # both pins ran
    records = {
        json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")
    }
    assert records["cuda-version"]["build"] == "h0_3"  # not from the .condarc channel
    history = real_conda.history(prefix)
    assert len(history.requests) == revisions + 1  # conda's revision only
    assert sorted(history.requests[-1]["update_specs"]) == ["cuda-version=11.4", "cudatoolkit=11.4"]
    assert "--override-channels" in history.requests[-1]["cmd"]
    snapshots = json.loads(condafix(real_conda, "rollback", "-p", str(prefix), "--list", "--json").stdout)["result"]
    assert snapshots[-1]["state"] == "applied"
    assert (prefix / "conda-meta" / "pinned").read_text() == "cudatoolkit 11.4.*\ncuda-version 11.4.*\n"
    exported = real_conda.run("env", "export", "-p", str(prefix), "--from-history", "--json").stdout
    deps = json.loads(exported)["dependencies"]
    assert any(d.startswith("cudatoolkit=11.4") for d in deps) and any(d.startswith("cuda-version=11.4") for d in deps)
    undone = rollback(real_conda, prefix)
    assert undone.returncode == 0, undone.stderr
    assert real_conda.installed(prefix)["cudatoolkit"] == "11.8.0"
    listing = real_conda.run("list", "-p", str(prefix), "--revisions").stdout
    assert f"(rev {revisions + 1})" in listing and "<unknown>" not in listing  # conda's revision, then ours
    exported = real_conda.run("env", "export", "-p", str(prefix), "--from-history", "--json").stdout
    deps = json.loads(exported)["dependencies"]
    assert any(d.startswith("cudatoolkit=11.8") for d in deps) and not any("11.4" in d for d in deps)
    requested = real_conda.history(prefix).requested
    assert requested == {s.partition("=")[0]: s for s in specs}  # what the user asked for, as created


def test_bad_via_or_missing_tool_stops_before_any_lock(real_conda: RealConda, tmp_path: Path) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver="libmamba")
    before = tree(prefix)
    bad = apply(real_conda, prefix, "--via", "pip")
    assert bad.returncode == 2 and "--via must be one of conda, mamba, micromamba" in bad.stderr
    missing = apply(real_conda, prefix, "--via", "micromamba")
    assert missing.returncode == 2 and "micromamba is not on PATH" in missing.stderr
    assert tree(prefix) == before and not (prefix / "conda-meta" / "condafix").exists()


def test_offline_rollback_uses_condas_package_cache(real_conda: RealConda, tmp_path: Path) -> None:
    copy = tmp_path / "channel-copy"
    shutil.copytree(real_conda.channel, copy)
    prefix = tmp_path / "e1"
    real_conda.run("create", "-y", "-q", "-p", str(prefix), "--override-channels", "-c", copy.as_uri(), *BROKEN_SPECS)
    before = tree(prefix)
    fresh = {"CONDAFIX_PKGS_DIR": str(tmp_path / "condafix-pkgs")}  # condafix's own cache has nothing of 12.9
    assert apply(real_conda, prefix, **fresh).returncode == 0
    snap = next((prefix / "conda-meta" / "condafix" / "snapshots").iterdir())
    meta = json.loads((snap / "meta.json").read_text())
    meta["backed_up"].remove("libnvjitlink")  # no backup: the package must come from a cache
    (snap / "meta.json").write_text(json.dumps(meta))
    (copy / "linux-64" / "libnvjitlink-12.9.86-h5888daf_0.tar.bz2").unlink()  # and the channel lost it
    assert (real_conda.pkgs_dir / "libnvjitlink-12.9.86-h5888daf_0.tar.bz2").is_file()
    done = rollback(real_conda, prefix, **fresh)
    assert done.returncode == 0, done.stderr
    assert tree(prefix) == before


def test_channel_names_follow_condas_channel_alias(real_conda: RealConda, tmp_path: Path) -> None:
    prefix = real_conda.create(tmp_path / "e1", BROKEN_SPECS, solver="libmamba")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "forge").symlink_to(real_conda.channel)
    condarc = tmp_path / "condarc"
    condarc.write_text(f"channel_alias: {mirror.as_uri()}\n")
    done = condafix(real_conda, "cuda", "-p", str(prefix), "-c", "forge", "--cuda", "12.4", "--json",
                    CONDARC=str(condarc))  # fmt: skip
    result = json.loads(done.stdout)["result"]
    assert result["status"] == "change" and result["channels"] == [f"{mirror.as_uri()}/forge"], done.stdout
