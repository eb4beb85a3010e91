"""A rollback inside conda (py-rattler 0.26 beside conda-rattler-solver) reinstalls through conda's own
transaction; one that cannot run changes nothing and leaves no journal behind (issue 22 item 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from condafix.change import snapshot

from .realconda import BROKEN_SPECS, RealConda, real_conda  # noqa: F401  (fixture)


@pytest.fixture
def plugged(real_conda: RealConda) -> RealConda:  # noqa: F811
    done = subprocess.run(
        [real_conda.python, "-c", "import condafix.conda_plugin"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"condafix is not installed in conda's venv (.ci/conda-venv does it): {done.stderr[-200:]}")
    return real_conda


def _applied_without_backup(conda: RealConda, tmp_path: Path) -> Path:
    """An env fixed with `conda cuda --apply`, whose snapshot lacks cuda-version's backup (a reinstall)."""
    prefix = conda.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba", cuda="12.4")
    conda.run("cuda", "-p", str(prefix), "--apply", "--yes", "-c", conda.channel_url)
    assert conda.installed(prefix)["cuda-version"] == "12.4"
    snap = Path(snapshot.list_snapshots(prefix)[-1].path)
    meta = json.loads((snap / "meta.json").read_text())
    meta["backed_up"] = [n for n in meta["backed_up"] if n != "cuda-version"]
    (snap / "meta.json").write_text(json.dumps(meta))
    return prefix


def _condafix(conda: RealConda, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """condafix standalone, inside conda's own Python (beside its py-rattler 0.26)."""
    return subprocess.run(
        [conda.python, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env=conda.env(**env),
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_rollback_inside_conda_reinstalls_through_conda(plugged: RealConda, tmp_path: Path) -> None:
    prefix = _applied_without_backup(plugged, tmp_path)
    done = _condafix(plugged, "rollback", "-p", str(prefix), "--yes")
    assert done.returncode == 0, done.stderr
    assert plugged.installed(prefix)["cuda-version"] in ("12.9", "13.0")
    assert snapshot.pending(prefix) is None and not (prefix / "conda-meta" / "pinned").exists()
    assert "cuda-version" not in plugged.history(prefix).requested
    check = _condafix(plugged, "doctor", "-p", str(prefix), "--check", "--cuda", "12.4")
    assert "half-changed" not in check.stdout + check.stderr and "interrupted condafix" not in check.stdout


def test_a_rollback_that_cannot_run_leaves_no_journal_and_names_the_revision(
    plugged: RealConda, tmp_path: Path
) -> None:
    prefix = _applied_without_backup(plugged, tmp_path)
    revisions = len(plugged.history(prefix).states)
    # the embedded installer asked for where it cannot run (py-rattler 0.26): nothing changes
    done = _condafix(plugged, "rollback", "-p", str(prefix), "--yes", "--force", CONDAFIX_SOLVER="rattler")
    assert done.returncode == 4 and "nothing was changed" in done.stderr, done.stderr
    assert f"--revision {revisions - 2}" in done.stderr  # the revision before condafix's
    assert "cuda-version 12.4.*" in done.stderr and "pinned" in done.stderr  # and the pin to delete first
    assert snapshot.pending(prefix) is None and not (prefix / "conda-meta" / "condafix" / "journal.json").exists()
    check = _condafix(plugged, "doctor", "-p", str(prefix), "--check", "--cuda", "12.4")
    assert "half-changed" not in check.stdout + check.stderr and "interrupted condafix" not in check.stdout


# ---------------------------------------------------------------- the rollback's words (issue 24 item 3)


def _standalone(conda: RealConda, *args: str) -> subprocess.CompletedProcess[str]:
    """condafix with the project's Python, in the same isolated conda configuration."""
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env=conda.env(),
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def fixed(plugged: RealConda, tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """An env conda made with the bug, fixed by condafix: (prefix, conda's list before, after)."""
    prefix = plugged.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba", cuda="12.4")
    before = plugged.installed(prefix)
    done = _standalone(
        plugged, "cuda", "-p", str(prefix), "--cuda", "12.4", "--apply", "--yes", "-c", plugged.channel_url
    )
    assert done.returncode == 0, done.stderr
    return prefix, before, plugged.installed(prefix)


def test_rollback_names_each_package_with_its_versions(
    plugged: RealConda, fixed: tuple[Path, dict[str, str], dict[str, str]]
) -> None:
    prefix, before, after = fixed
    moved = sorted(n for n in before if after.get(n) != before[n])  # conda's own listing, not condafix's
    assert "cuda-version" in moved and len(moved) > 1
    preview = _standalone(plugged, "rollback", "-p", str(prefix), "--dry-run")
    assert preview.returncode == 0, preview.stderr
    for name in moved:
        assert f"  {name} {after[name]} -> {before[name]}\n" in preview.stdout, preview.stdout
    assert f"would put back {len(moved)} packages" in preview.stdout and "would remove -" not in preview.stdout
    inside = plugged.run("cuda", "--rollback", "--dry-run", "-p", str(prefix)).stdout  # conda cuda: the same words
    assert f"  cuda-version {after['cuda-version']} -> {before['cuda-version']}\n" in inside
    doc = json.loads(_standalone(plugged, "rollback", "-p", str(prefix), "--dry-run", "--json").stdout)
    listed = {p["name"]: (p["from_version"], p["to_version"]) for p in doc["result"]["packages"]}
    assert listed == {n: (after[n], before[n]) for n in moved}
    done = _standalone(plugged, "rollback", "-p", str(prefix), "--yes")
    assert done.returncode == 0 and f"put back {len(moved)} packages as before" in done.stdout, done.stderr
    result = done.stdout.rsplit("snapshot ", 1)[1]  # after the preview it asked with
    assert "would " not in result and f"  cuda-version {after['cuda-version']} -> {before['cuda-version']}" in result
    assert "removed the pin cuda-version 12.4.* from conda-meta/pinned" in result
    assert plugged.installed(prefix) == before


def test_rollback_after_conda_install_revision_is_already_undone(
    plugged: RealConda, fixed: tuple[Path, dict[str, str], dict[str, str]]
) -> None:
    """The user went back with conda itself, as the revision hint says: the pin out first, then
    `conda install --revision 0`. conda keeps condafix's requested spec, and its next install would
    bring the fix back: the rollback removes that spec only, without --force, and re-links nothing."""
    prefix, before, _after = fixed
    (prefix / "conda-meta" / "pinned").unlink()
    channel = ("--override-channels", "-c", plugged.channel_url)
    plugged.run("install", "-y", "-q", "-p", str(prefix), "--revision", "0", *channel, solver="libmamba")
    assert plugged.installed(prefix) == before
    assert plugged.history(prefix).requested["cuda-version"] == "cuda-version=12.4"  # conda kept it
    preview = _standalone(plugged, "rollback", "-p", str(prefix), "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "already undone" in preview.stdout and "would remove -" not in preview.stdout
    assert "changed after condafix's change" not in preview.stdout and "pin" not in preview.stdout
    assert "would remove cuda-version=12.4 from conda's requested specs" in preview.stdout
    doc = json.loads(_standalone(plugged, "rollback", "-p", str(prefix), "--dry-run", "--json").stdout)
    assert doc["result"]["already_undone"] is True and doc["result"]["packages"] == [] and doc["exit_code"] == 0
    records = {p.name: p.stat().st_mtime_ns for p in (prefix / "conda-meta").glob("*.json")}
    done = _standalone(plugged, "rollback", "-p", str(prefix), "--yes")  # no --force: nothing of the user's reverts
    assert done.returncode == 0, done.stderr
    assert "already undone" in done.stdout and "removed cuda-version=12.4 from conda's requested specs" in done.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (prefix / "conda-meta").glob("*.json")} == records
    assert "cuda-version" not in plugged.history(prefix).requested
    plugged.install(prefix, "libzlib", solver="libmamba")  # conda's next install leaves the CUDA parts alone
    assert plugged.installed(prefix)["cuda-version"] == before["cuda-version"]
    again = _standalone(plugged, "rollback", "-p", str(prefix), "--dry-run")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
