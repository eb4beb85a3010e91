"""`condafix lock`: locked CUDA per env and platform for pixi.lock (v4-v6), conda-lock.yml and @EXPLICIT."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix.errors import UsageError
from condafix.files.lockfile import LockError, check_file
from condafix.knowledge.cuda import CudaVersion

from .conftest import FIXTURES, tree_digest

LOCKS = FIXTURES / "lockfiles"
ROOT = Path(__file__).resolve().parent.parent

# (env, platform) -> (locked CUDA, verdict), written from the fixtures by hand.
EXPECTED = {
    ("pixi-v6/pixi.lock", "12.4"): {
        ("cuda12", "linux-64"): ("12.9", "mismatch"),  # numba-cuda 0.15 JITs through the driver
        ("cuda12", "osx-arm64"): (None, "no-cuda"),
        ("default", "linux-64"): (None, "no-cuda"),
        ("default", "osx-arm64"): (None, "no-cuda"),
        ("torch", "linux-64"): ("12.8", "warning"),  # SASS only: minor version compatibility
    },
    ("pixi-v6/pixi.lock", "11.4"): {
        ("cuda12", "linux-64"): ("12.9", "mismatch"),
        ("cuda12", "osx-arm64"): (None, "no-cuda"),
        ("default", "linux-64"): (None, "no-cuda"),
        ("default", "osx-arm64"): (None, "no-cuda"),
        ("torch", "linux-64"): ("12.8", "mismatch"),  # another major: nothing runs
    },
    ("pixi-v5/pixi.lock", "12.4"): {
        ("cpu", "linux-64"): (None, "no-cuda"),
        ("cpu", "win-64"): (None, "no-cuda"),
        ("default", "linux-64"): ("11.8", "ok"),
        ("default", "win-64"): ("11.8", "ok"),
        ("gpu13", "linux-64"): ("13.0", "mismatch"),
        ("gpu13", "linux-aarch64"): ("13.0", "mismatch"),
    },
    ("pixi-v5/pixi.lock", "11.4"): {
        ("cpu", "linux-64"): (None, "no-cuda"),
        ("cpu", "win-64"): (None, "no-cuda"),
        ("default", "linux-64"): ("11.8", "mismatch"),  # numba 0.56's built-in numba.cuda JITs
        ("default", "win-64"): ("11.8", "mismatch"),
        ("gpu13", "linux-64"): ("13.0", "mismatch"),
        ("gpu13", "linux-aarch64"): ("13.0", "mismatch"),
    },
    ("conda-lock/conda-lock.yml", "12.4"): {
        ("main", "linux-64"): ("11.7", "ok"),
        ("main", "osx-64"): (None, "no-cuda"),
        ("main+dev", "linux-64"): ("11.7", "ok"),
        ("main+dev", "osx-64"): (None, "no-cuda"),
    },
    ("conda-lock/conda-lock.yml", "11.4"): {
        ("main", "linux-64"): ("11.7", "warning"),  # pytorch alone: SASS
        ("main", "osx-64"): (None, "no-cuda"),
        ("main+dev", "linux-64"): ("11.7", "mismatch"),  # the dev category adds numba
        ("main+dev", "osx-64"): (None, "no-cuda"),
    },
    ("explicit-linux-64.txt", "12.4"): {("explicit-linux-64", "linux-64"): ("12.6", "mismatch")},
    ("explicit-linux-64.txt", "11.4"): {("explicit-linux-64", "linux-64"): ("12.6", "mismatch")},
}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", "lock", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


@pytest.mark.parametrize(("name", "target"), sorted(EXPECTED))
def test_locked_cuda_per_env_and_platform(name: str, target: str) -> None:
    report = check_file(LOCKS / name, CudaVersion.parse(target))
    got = {(e.env, e.platform): (e.cuda, e.verdict) for e in report.envs}
    assert got == EXPECTED[(name, target)]
    worst = {e.verdict for e in report.envs}
    assert report.check_exit_code == (2 if "mismatch" in worst else 1 if "warning" in worst else 0)


def test_where_the_cuda_comes_from() -> None:
    report = check_file(LOCKS / "pixi-v6/pixi.lock", CudaVersion.parse("12.4"))
    sources = {e.env: e.cuda_from for e in report.envs if e.platform == "linux-64"}
    assert sources == {
        "cuda12": "cuda-version 12.9",
        "default": None,
        "torch": "pytorch 2.7.1 (cuda128 build)",
    }
    conda_lock = check_file(LOCKS / "conda-lock/conda-lock.yml", CudaVersion.parse("11.4"))
    assert {e.cuda_from for e in conda_lock.envs if e.cuda} == {"cudatoolkit 11.7.1"}


def test_pixi_lock_v4_reads_like_v5(tmp_path: Path) -> None:
    v4 = tmp_path / "pixi.lock"
    v4.write_text((LOCKS / "pixi-v5/pixi.lock").read_text().replace("version: 5\n", "version: 4\n", 1))
    report = check_file(v4, CudaVersion.parse("11.4"))
    assert {(e.env, e.platform): (e.cuda, e.verdict) for e in report.envs} == EXPECTED[("pixi-v5/pixi.lock", "11.4")]


def test_the_fix_names_the_manifest_pin_and_the_relock() -> None:
    report = check_file(LOCKS / "pixi-v6/pixi.lock", CudaVersion.parse("12.4"))
    assert report.manifest and report.manifest.endswith("pixi-v6/pixi.toml")
    assert any(
        line.endswith(
            'pixi.toml:13: [feature.cuda12.target.linux-64.dependencies] cuda-version = ">=12.4" -> ">=12.4,<=12.4"'
        )
        for line in report.fix
    ), report.fix
    assert report.relock is not None and report.relock.endswith("--cuda 12.4 --write && pixi lock")
    conda_lock = check_file(LOCKS / "conda-lock/conda-lock.yml", CudaVersion.parse("11.4"))
    assert any(line.endswith("environment.yml:7: - cudatoolkit=11.7 -> - cudatoolkit=11.4") for line in conda_lock.fix)
    assert conda_lock.relock is not None and conda_lock.relock.endswith(
        "&& conda-lock lock -f environment.yml -p linux-64"
    )
    explicit = check_file(LOCKS / "explicit-linux-64.txt", CudaVersion.parse("12.4"))
    assert explicit.relock == "conda list -p PREFIX --explicit --md5 > explicit-linux-64.txt"
    fine = check_file(LOCKS / "conda-lock/conda-lock.yml", CudaVersion.parse("12.4"))
    assert fine.status == "ok" and fine.fix == () and fine.relock is None


def test_cli_table_json_check_codes_and_files_untouched(tmp_path: Path) -> None:
    before = tree_digest(LOCKS)
    ok = run(str(LOCKS / "conda-lock/conda-lock.yml"), "--cuda", "12.4", "--check")
    assert ok.returncode == 0, ok.stderr
    assert "no-cuda" in ok.stdout and "status: ok" in ok.stdout
    assert "PyPI in main (linux-64): nvidia-cudnn-cu11 (reported, not judged)" in ok.stdout
    warn = tmp_path / "explicit.txt"
    warn.write_text(
        "# platform: linux-64\n@EXPLICIT\n"
        "https://conda.anaconda.org/conda-forge/linux-64/pytorch-2.7.1-cuda128_generic_py312_h7d1a1e3_200.conda\n"
    )
    assert run(str(warn), "--cuda", "12.4", "--check").returncode == 1
    assert run(str(warn), "--cuda", "12.4").returncode == 0  # without --check: a report, exit 0
    bad = run(
        *(str(LOCKS / n) for n in ("pixi-v5/pixi.lock", "conda-lock/conda-lock.yml")), "--cuda", "12.4", "--check"
    )
    assert bad.returncode == 2
    doc = json.loads(run(str(LOCKS / "pixi-v5/pixi.lock"), "--driver", "470.82.01", "--json", "--check").stdout)
    assert doc["schema"] == "condafix/lock/v3" and doc["exit_code"] == 2
    assert doc["result"]["target_cuda"] == "11.4"
    envs = doc["result"]["reports"][0]["envs"]
    assert {(e["env"], e["platform"], e["verdict"]) for e in envs if e["env"] == "cpu"} == {
        ("cpu", "linux-64", "no-cuda"),
        ("cpu", "win-64", "no-cuda"),
    }
    assert tree_digest(LOCKS) == before  # lockfiles (and manifests) are never rewritten


def test_fleet_target_is_the_oldest_driver(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("550.54.14  # a100 nodes\n470.82.01  # the old v100 rack\n")
    done = run(str(LOCKS / "conda-lock/conda-lock.yml"), "--drivers-file", str(nodes), "--check")
    assert done.returncode == 2 and "CUDA 11.4" in done.stdout


def test_cuda_free_lock_exits_0_with_check(tmp_path: Path) -> None:
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(
        "version: 1\nmetadata:\n  platforms: [linux-64]\npackage:\n"
        "- name: numpy\n  version: 2.1.0\n  manager: conda\n  platform: linux-64\n"
        "  url: https://conda.anaconda.org/conda-forge/linux-64/numpy-2.1.0-py312h58c1407_0.conda\n"
    )
    done = run(str(lock), "--cuda", "12.4", "--check")
    assert done.returncode == 0 and "no CUDA package in this env" in done.stdout


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("pixi.lock", "version: 6\nenvironments: {default: [\n", "pixi.lock:3:1: invalid YAML"),
        ("pixi.lock", "version: 99\nenvironments: {}\npackages: []\n", "not a pixi.lock rattler can read (version 99)"),
        ("conda-lock.yml", "version: 2\nmetadata: {}\npackage: []\n", "not a conda-lock version 1 file"),
        (
            "conda-lock.yml",
            "version: 1\nmetadata: {}\npackage:\n- name: x\n",
            "package 1: needs name, platform and url",
        ),
        ("env.txt", "@EXPLICIT\nhttps://example.org/not-a-package\n", "env.txt:2: not a package URL"),
        ("env.txt", "just some text\n", "not a lockfile"),
        ("pixi.lock", "\udcff", "not UTF-8"),
    ],
)
def test_bad_lockfiles_give_one_line_exit_2(name: str, text: str, needle: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(LockError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        check_file(path, CudaVersion.parse("12.4"))
    done = run(str(path), "--cuda", "12.4", "--check")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_pre_commit_hook_entry_runs(tmp_path: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "condafix-lock")
    assert hook["entry"].split()[:3] == ["condafix", "lock", "--check"] and hook["pass_filenames"] is True
    import re

    assert re.search(hook["files"], "pixi.lock") and re.search(hook["files"], "sub/conda-lock.yml")
    args = [*hook["entry"].split()[1:], "--cuda", "12.4", str(LOCKS / "pixi-v6/pixi.lock")]
    done = subprocess.run([sys.executable, "-m", "condafix", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 2


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=16),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    body=yaml_values,
    shape=st.sampled_from(["pixi", "conda-lock", "free"]),
    version=st.sampled_from([1, 4, 5, 6, "x"]),
    noise=st.text(max_size=60),
)
def test_fuzzed_lockfiles_give_a_report_or_one_clear_error(
    body: object, shape: str, version: object, noise: str, tmp_path: Path
) -> None:
    docs = {
        "pixi": {"version": version, "environments": body, "packages": body},
        "conda-lock": {"version": version, "metadata": {}, "package": body},
        "free": body,
    }
    path = tmp_path / "pixi.lock"
    for text in (yaml.safe_dump(docs[shape]), noise, "@EXPLICIT\n" + noise):
        path.write_text(text)
        try:
            report = check_file(path, CudaVersion.parse("12.4"))
        except (LockError, UsageError) as exc:
            assert "\n" not in exc.summary
            continue
        assert report.status in ("ok", "warning", "mismatch")


def test_relock_drift_past_the_declared_major_is_a_warning_even_when_the_driver_is_new() -> None:
    lock = LOCKS / "pixi-drift/pixi.lock"
    report = check_file(lock, CudaVersion.parse("13.4"))
    (env,) = report.envs
    assert (env.cuda, env.verdict, env.declared) == ("13.3", "warning", "12")
    assert "the manifest declares CUDA 12 but the lock holds CUDA 13.3" in env.reason
    assert env.runs == "runs only by accident" and env.resolved_cuda == "12.0"  # v6: solved with the declared CUDA
    assert report.check_exit_code == 1 and report.relock == "pixi lock"
    assert any('pin cuda-version = "12.*"' in line for line in report.fix)
    old_driver = check_file(lock, CudaVersion.parse("12.4"))
    assert old_driver.envs[0].verdict == "mismatch" and old_driver.check_exit_code == 2


def test_declared_cuda_per_environment() -> None:
    from condafix.files.pixifile import declared_cuda

    v6 = LOCKS / "pixi-v6/pixi.toml"
    assert declared_cuda(v6.read_text(), str(v6)) == {"cuda12": CudaVersion(major=12, minor=0)}
    manifest = (
        '[workspace]\nchannels = []\n[system-requirements]\ncuda = "12.2"\n'
        '[feature.new.system-requirements]\ncuda = "13"\n'
        '[environments]\nnew = ["new"]\nsolo = { features = ["new"], no-default-feature = true }\nplain = []\n'
    )
    assert declared_cuda(manifest, "pixi.toml") == {
        "default": CudaVersion(major=12, minor=2),
        "new": CudaVersion(major=13, minor=0),
        "solo": CudaVersion(major=13, minor=0),
        "plain": CudaVersion(major=12, minor=2),
    }


def test_default_files_and_no_target_without_a_driver(tmp_path: Path) -> None:
    (tmp_path / "pixi.lock").write_bytes((LOCKS / "pixi-v5/pixi.lock").read_bytes())
    (tmp_path / "pixi.toml").write_bytes((LOCKS / "pixi-v5/pixi.toml").read_bytes())
    done = run("--cuda", "12.4", cwd=tmp_path)
    assert done.returncode == 0 and "pixi.lock (pixi.lock)" in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run("--cuda", "12.4", cwd=empty)
    assert missing.returncode == 2 and "no pixi.lock or conda-lock.yml here" in missing.stderr
    env = {k: v for k, v in os.environ.items() if k != "CONDA_OVERRIDE_CUDA"} | {
        "PATH": "/usr/bin:/bin",
        "NO_COLOR": "1",
    }
    guess = subprocess.run(
        [sys.executable, "-m", "condafix", "lock"], capture_output=True, text=True, cwd=tmp_path, env=env, check=False
    )
    assert guess.returncode == 2 and "will not guess" in guess.stderr and "--cuda" in guess.stderr


@pytest.mark.parametrize("force_color", ["", "1"])
def test_lock_table_lines_end_without_padding(force_color: str) -> None:
    """rich's table padded every row to the widest line, so each ended in spaces (seen in a copied README)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "FORCE_COLOR": force_color}
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "lock", str(LOCKS / "pixi-v6/pixi.lock"), "--cuda", "12.4"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout).splitlines()
    assert done.returncode == 0 and any(line.startswith("env ") for line in lines), done.stdout
    padded = [line for line in lines if line != line.rstrip()]
    assert not padded, padded
