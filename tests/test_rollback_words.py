"""The words of --apply and rollback (issue 24 item 3): every package with its versions, one plural rule.

Real envs and real conda: tests/test_conda_rollback.py; here the shapes a real fixture channel does not
produce (a package the change added, a rebuild of the same version) and the counts of one.
"""

from __future__ import annotations

import io

import pytest

from condafix.change.apply import Applied
from condafix.change.restore import PackageMove, RestorePlan
from condafix.cli import render, summary


def move(name: str, before: tuple[str, str] | None, after: tuple[str, str] | None) -> PackageMove:
    return PackageMove(
        name=name,
        from_version=before[0] if before else None,
        from_build=before[1] if before else None,
        to_version=after[0] if after else None,
        to_build=after[1] if after else None,
    )


@pytest.mark.parametrize(
    ("package", "words"),
    [
        (move("cuda-cudart", ("12.4.131", "h5888daf_0"), ("12.9.86", "h5888daf_0")), "cuda-cudart 12.4.131 -> 12.9.86"),
        (move("numba-cuda", ("0.4.0", "pyh1_0"), None), "numba-cuda 0.4.0 (removed)"),
        (move("libzlib", None, ("1.3.1", "hb9d3cd8_2")), "libzlib 1.3.1 (put back)"),
        (move("cuda-nvrtc", ("12.4.131", "h1_0"), ("12.4.131", "h2_0")), "cuda-nvrtc 12.4.131 h1_0 -> 12.4.131 h2_0"),
    ],
)
def test_a_package_move_says_both_versions(package: PackageMove, words: str) -> None:
    assert summary.move_text(package) == words


def shown(call: object, *args: object, **kwargs: object) -> str:
    buffer = io.StringIO()
    call(*args, **kwargs, out=render.Output(buffer, buffer))  # type: ignore[operator]
    return buffer.getvalue()


def test_one_package_back_is_one_package() -> None:
    plan = RestorePlan(
        snapshot="S",
        remove=("numba-cuda",),
        restore=(),
        missing=(),
        packages=(move("numba-cuda", ("0.4.0", "pyh1_0"), None),),
    )
    text = shown(render.restore_text, plan, dry_run=True)
    assert text.splitlines()[:2] == [
        "snapshot S: would put back 1 package as before the change:",
        "  numba-cuda 0.4.0 (removed)",
    ]
    findings = summary.findings_for("restore", plan)
    assert [(f.code, f.message) for f in findings] == [("rollback-remove", "rolled back numba-cuda 0.4.0 (removed)")]


@pytest.mark.parametrize(
    ("changes", "words"), [(1, "applied 1 change with rattler"), (2, "applied 2 changes with rattler")]
)
def test_applied_counts_its_changes(changes: int, words: str) -> None:
    applied = Applied(snapshot="S", via="rattler", changes=changes)
    assert shown(render.applied_text, applied, "/tmp/env").startswith(f"{words}; snapshot S\n")
    (finding,) = summary.findings_for("applied", type("Done", (), {"applied": applied})())
    assert finding.message.startswith(f"changed {changes} package{'s' if changes > 1 else ''} through rattler")


def test_already_undone_with_nothing_left_is_nothing_to_do() -> None:
    plan = RestorePlan(snapshot="S", remove=(), restore=(), missing=(), already_undone=True)
    assert shown(render.restore_text, plan, dry_run=True) == (
        "snapshot S: already undone: every package condafix changed is back as it was; nothing to do\n"
    )
    assert [f.code for f in summary.findings_for("restore-preview", plan)] == ["rollback-already-undone"]
