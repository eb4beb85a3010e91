"""``--via micromamba`` against the real micromamba 2.8.1 (``../shared/micromamba``; ``.ci/run`` unpacks it and
exports ``CONDAFIX_TEST_MICROMAMBA``): the env is micromamba's own, the install is micromamba's, and condafix
plans, pins and undoes. Skipped without it.

How it differs from conda (its README): ``python`` asked for explicitly adds a ``pip`` request (the fixture
channel has no pip, so the env asks for python only as a dependency), ``__cuda`` constrains are not enforced
(condafix's plan is what keeps the CUDA parts together), and the cache is ``$MAMBA_ROOT_PREFIX/pkgs``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MICROMAMBA = os.environ.get("CONDAFIX_TEST_MICROMAMBA", "")


@pytest.fixture(scope="module")
def micromamba() -> str:
    if not MICROMAMBA:
        pytest.skip("real micromamba not unpacked (.ci/run does it; set CONDAFIX_TEST_MICROMAMBA)")
    try:
        version = subprocess.run([MICROMAMBA, "--version"], capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        pytest.skip(f"CONDAFIX_TEST_MICROMAMBA={MICROMAMBA} does not run: {exc}")
    assert version.returncode == 0 and version.stdout.strip() == "2.8.1", version.stdout + version.stderr
    return MICROMAMBA


def records(prefix: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, build) from conda-meta, as conda and micromamba read it."""
    out = {}
    for path in (prefix / "conda-meta").glob("*.json"):
        record = json.loads(path.read_text())
        out[record["name"]] = (record["version"], record["build"])
    return out


def revisions(prefix: Path) -> list[list[str]]:
    """conda-meta/history split into its revisions (a ``==> date <==`` line starts each)."""
    out: list[list[str]] = []
    for line in (prefix / "conda-meta" / "history").read_text().splitlines():
        if line.startswith("==>"):
            out.append([])
        elif out:
            out[-1].append(line)
    return out


def test_via_micromamba_installs_the_plans_exact_pins_in_one_revision_and_rolls_back(
    micromamba: str, channel: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "MAMBA_ROOT_PREFIX": str(tmp_path / "root"), "MAMBA_EXE": micromamba}
    prefix = tmp_path / "env"
    create = [micromamba, "create", "-y", "-p", str(prefix), "--override-channels", "-c", channel.as_uri()]
    created = subprocess.run(  # micromamba reproduces the bug itself: __cuda 12.4, cuda-version 12.9
        [*create, "numba-cuda", "numpy=2.0.0"],
        capture_output=True,
        text=True,
        env={**env, "CONDA_OVERRIDE_CUDA": "12.4"},
        timeout=300,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    before = records(prefix)
    assert before["cuda-version"][0] == "12.9" and len(revisions(prefix)) == 1

    argv = [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4", "--apply", "--yes",
            "--via", "micromamba", "-c", channel.as_uri(), "--solver", "rattler", "--json"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    plan, applied = result["plan"], result["applied"]
    assert applied["via"] == "micromamba" and plan["pins"] == ["cuda-version=12.4"]
    after = records(prefix)
    wanted = {c["name"]: (c["to_version"], c["to_build"]) for c in plan["changes"]}
    assert {n for n in wanted} >= {"cuda-version", "cuda-nvrtc", "cuda-nvvm-impl", "libnvjitlink"}
    assert {n: after[n] for n in wanted} == wanted  # exactly the plan, from micromamba's own install
    assert {n: v for n, v in after.items() if n not in wanted} == {n: v for n, v in before.items() if n not in wanted}
    history = revisions(prefix)
    assert len(history) == 2  # micromamba's one revision; condafix writes none of its own
    cmd = next(line for line in history[1] if line.startswith("# cmd:"))
    assert "micromamba install -p" in cmd and "--override-channels" in cmd and cmd.endswith("cuda-version=12.4")
    linked = sorted(line[1:].split("::")[-1] for line in history[1] if line.startswith("+"))
    assert linked == sorted(f"{n}-{v}-{b}" for n, (v, b) in wanted.items())
    assert (prefix / "conda-meta" / "pinned").read_text() == "cuda-version 12.4.*\n"
    listed = subprocess.run(  # micromamba still reads the env condafix pinned
        [micromamba, "list", "-p", str(prefix), "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert {p["name"]: p["version"] for p in json.loads(listed.stdout)}["cuda-version"] == "12.4"

    rolled = subprocess.run(
        [sys.executable, "-m", "condafix", "rollback", "-p", str(prefix), "--yes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert rolled.returncode == 0, rolled.stderr
    assert records(prefix) == before
    assert not (prefix / "conda-meta" / "pinned").exists()
    listed = subprocess.run(
        [micromamba, "list", "-p", str(prefix), "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert {p["name"]: p["version"] for p in json.loads(listed.stdout)}["cuda-version"] == "12.9"
