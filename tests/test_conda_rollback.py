"""A rollback inside conda (py-rattler 0.26 beside conda-rattler-solver) reinstalls through conda's own
transaction; one that cannot run changes nothing and leaves no journal behind (issue 22 item 5)."""

from __future__ import annotations

import json
import subprocess
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
