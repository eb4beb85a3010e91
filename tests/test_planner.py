"""`condafix cuda`: planning with the real solver against a real local channel (file:// and HTTP)."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from condafix.backends import choice
from condafix.cli import render
from condafix.detect import target as target_mod
from condafix.errors import CondafixError, UsageError
from condafix.plan import blocking, planner
from condafix.schema import to_jsonable

from .conftest import tree_digest

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]


def rattler_plan(**kwargs: Any) -> planner.Plan:
    """The planner with the embedded solver (the command layer picks a backend; the planner never does)."""
    backend = choice.open_backend("rattler", prefix=kwargs["prefix"], offline=kwargs.get("offline", False))
    return planner.plan(backend=backend, **kwargs)


def target(cuda: str) -> target_mod.TargetCuda:
    return target_mod.TargetCuda(cuda=cuda, source="--cuda", inputs=(f"--cuda {cuda}",))


def by_name(plan: planner.Plan) -> dict[str, planner.Change]:
    return {c.name: c for c in plan.changes}


def test_seed_situation_downgrades_exactly_the_cuda_parts(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = tree_digest(prefix)
    plan = rattler_plan(prefix=prefix, target=target("12.4"))
    assert plan.status == "change" and plan.pin == "cuda-version=12.4" and plan.env_cuda == "12.9"
    changes = by_name(plan)
    assert set(changes) == {"cuda-version", "cuda-nvvm-impl", "cuda-nvrtc", "cuda-cudart", "libnvjitlink"}
    assert all(c.action == "downgrade" for c in changes.values())
    assert changes["cuda-version"].to_version == "12.4" and changes["cuda-nvvm-impl"].to_version == "12.4.131"
    assert plan.unchanged == 4  # numpy stays 2.0.0 and python 3.12.3 although newer ones exist
    assert plan.candidates[0] == "12.4"
    assert plan.commands and plan.commands[-1].endswith('"cuda-version=12.4"')
    assert tree_digest(prefix) == before  # a dry run changes nothing


def test_target_12_7_uses_12_6_from_the_channel(installed_env: Callable[..., Path]) -> None:
    plan = rattler_plan(prefix=installed_env(BROKEN, cuda="12.9"), target=target("12.7"))
    assert plan.pin == "cuda-version=12.6" and "12.7" not in plan.candidates


def test_fleet_mode_picks_the_lowest() -> None:
    fleet = target_mod.resolve_target(cudas=["12.6"], drivers=["570.26", "535.104.05", "550.54.14"])
    assert fleet.cuda == "12.2" and len(fleet.inputs) == 4 and fleet.source.startswith("fleet")


def test_drivers_file(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("# gpu partition\n550.54.14\n\n535.104.05  # old rack\n")
    assert target_mod.read_drivers_file(nodes) == ["550.54.14", "535.104.05"]
    nodes.write_text("550.54.14\nbanana\n")
    with pytest.raises(UsageError, match=r"nodes\.txt:2"):
        target_mod.read_drivers_file(nodes)


def test_blocked_case_names_the_blocker(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env([*BROKEN, "pytorch"], cuda="12.9")
    plan = rattler_plan(prefix=prefix, target=target("12.4"))
    assert plan.status == "blocked"
    assert [a.solved for a in plan.attempts] == [False] * len(plan.candidates)
    (blocker,) = plan.blockers
    assert (blocker.name, blocker.needs_cuda, blocker.needs_driver) == ("pytorch", "12.8", "570.26")
    assert "pytorch" in plan.reason and "570.26" in plan.reason


def test_cudatoolkit_env(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(["cudatoolkit", "numba", "python 3.12.3.*", "numpy 2.0.0.*"], cuda="11.8")
    plan = rattler_plan(prefix=prefix, target=target("11.4"))
    assert plan.pin == "cudatoolkit=11.4" and by_name(plan)["cudatoolkit"].to_version == "11.4.3"
    assert set(by_name(plan)) == {"cudatoolkit"}


def test_cuda11_env_on_cuda12_driver_needs_nothing(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(["cudatoolkit", "python 3.12.3.*"], cuda="11.8")
    plan = rattler_plan(prefix=prefix, target=target("12.4"))
    assert plan.status == "nothing-to-do" and plan.changes == () and plan.attempts == ()


def test_compatible_env_stays_byte_for_byte(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env([*BROKEN, "cuda-version 12.4.*"], cuda="12.4")
    before = tree_digest(prefix)
    plan = rattler_plan(prefix=prefix, target=target("12.8"))
    assert plan.status == "nothing-to-do" and "never moves it up" in plan.reason
    assert tree_digest(prefix) == before


def test_newer_major_is_not_crossed_unasked(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(["cuda-version 13.*", "cuda-cudart", "python 3.12.3.*"], cuda="13.0")
    plan = rattler_plan(prefix=prefix, target=target("12.4"))
    assert plan.status == "blocked" and "--allow-major" in plan.reason and "580.65.06" in plan.reason
    crossed = rattler_plan(prefix=prefix, target=target("12.4"), allow_major=True)
    assert crossed.pin == "cuda-version=12.4" and by_name(crossed)["cuda-cudart"].to_version == "12.4.131"


def test_json_plan_validates_against_the_dataclasses(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    doc = json.loads(done.stdout)
    assert doc["schema"] == "condafix/cuda/v3" and done.returncode == 0
    result = doc["result"]
    fields = {f.name for f in dataclasses.fields(planner.Plan) if f.metadata.get("json", True)}
    assert set(result) == fields
    rebuilt = planner.Plan(
        **{
            **result,
            "target": target_mod.TargetCuda(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in result["target"].items()}
            ),
            "changes": tuple(planner.Change(**c) for c in result["changes"]),
            "attempts": tuple(planner.SolveAttempt(**a) for a in result["attempts"]),
            "blockers": tuple(blocking.Blocker(**b) for b in result["blockers"]),
            **{k: tuple(result[k]) for k in ("channels", "candidates", "specs", "commands")},
        }
    )
    assert to_jsonable(rebuilt) == result
    assert {c.name for c in rebuilt.changes} >= {"cuda-version"}


def test_http_channel_and_offline_cache(
    installed_env: Callable[..., Path], http_channel: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONDAFIX_CACHE_DIR", str(tmp_path / "cache"))
    prefix = installed_env(BROKEN, cuda="12.9")
    with pytest.raises(CondafixError, match="no cached repodata"):
        rattler_plan(prefix=prefix, target=target("12.4"), channels=[http_channel], offline=True)
    online = rattler_plan(prefix=prefix, target=target("12.4"), channels=[http_channel])
    assert online.pin == "cuda-version=12.4" and online.channels == (http_channel,)
    offline = rattler_plan(prefix=prefix, target=target("12.4"), channels=[http_channel], offline=True)
    assert offline.changes == online.changes and offline.cache_age_s is not None and offline.cache_age_s >= 0


@pytest.mark.parametrize(
    ("channel", "needle"),
    [
        ("file:///no/such/dir", "channel directory does not exist"),
        ("ftp://example.com/x", "not a channel"),
        ("https://", "not a channel URL"),
        ("https://user:s3cret@mirror.example/ch with space", "not a channel URL"),
        ("http://[::1", "not a channel URL"),  # urlparse raises ValueError (found by tests/test_fuzz.py)
        ("/label/7\x00", "control characters"),  # a null byte made Path.is_dir raise ValueError
    ],
)
def test_bad_channels(channel: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle) as info:
        planner.normalize_channel(channel)
    shown = io.StringIO()
    render.print_error("cuda", info.value, True, out=render.Output(shown, shown))
    assert "s3cret" not in shown.getvalue() and needle in shown.getvalue()  # redacted at the edge


def test_channel_forms(tmp_path: Path) -> None:
    assert planner.normalize_channel("conda-forge") == "conda-forge"
    assert planner.normalize_channel("nvidia/label/cuda-12.4.0") == "nvidia/label/cuda-12.4.0"
    assert planner.normalize_channel(str(tmp_path)) == tmp_path.as_uri()
    assert (
        planner.normalize_channel("https://conda.anaconda.org/conda-forge/") == "https://conda.anaconda.org/conda-forge"
    )


def test_cli_refuses_to_guess_without_a_driver(installed_env: Callable[..., Path], tmp_path: Path) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
    )
    if "CUDA" in done.stdout and done.returncode == 0:
        pytest.skip("this machine has a driver")
    assert done.returncode == 2 and "will not guess" in done.stderr and "--cuda" in done.stderr


def test_cli_plan_table_and_blocked_exit(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env([*BROKEN, "pytorch"], cuda="12.9", name="torch")
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--driver", "550.54.14"],
        capture_output=True,
        text=True,
        check=False,
        env={"NO_COLOR": "1", "PATH": "/usr/bin"},
    )
    assert done.returncode == 2 and "blocked" in done.stdout and "pytorch" in done.stdout


def test_group_members_requested_with_a_version_move_with_the_pin(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(["python 3.12.*", "numba-cuda", "cuda=12.9.1", "libcurand=10.3.10.19"], cuda="12.9")
    plan = rattler_plan(prefix=prefix, target=target("12.4"))
    assert plan.status == "change" and plan.pin == "cuda-version=12.4", plan.reason
    changes = by_name(plan)
    assert changes["cuda"].to_version == "12.4.1" and changes["libcurand"].to_version == "10.3.5.147"
    assert "cuda" in plan.specs and "libcurand" in plan.specs  # requested without their old versions


def test_a_package_the_history_does_not_request_is_never_removed(installed_env: Callable[..., Path]) -> None:
    """conda's history names only what was asked for; libzlib here came another way and nothing needs it."""
    prefix = installed_env([*BROKEN, "libzlib"], cuda="12.9")
    (prefix / "conda-meta" / "history").write_text(
        "==> 2026-01-01 00:00:00 <==\n# cmd: conda create -n gpu numba-cuda python=3.12.3 numpy=2.0.0\n"
        "# conda version: 26.7.1\n# update specs: ['numba-cuda', 'python=3.12.3', 'numpy=2.0.0']\n"
    )
    plan = rattler_plan(prefix=prefix, target=target("12.4"))
    assert plan.status == "change"
    assert set(by_name(plan)) == {"cuda-version", "cuda-nvvm-impl", "cuda-nvrtc", "cuda-cudart", "libnvjitlink"}
    assert all(c.action != "remove" for c in plan.changes)


@pytest.mark.parametrize("channel", ["http://user:s3cret@[::1/chan", "https://[::1", "http://[v1.x/chan"])
def test_cli_channel_check_refuses_a_broken_ipv6_host_in_one_line(channel: str) -> None:
    """`-c http://user:pw@[::1/chan`: urlsplit's ValueError was outside the check's try, so `condafix cuda` ended in
    an internal error (found by the full leak matrix, CONDAFIX_LEAK_FULL=1)."""
    from condafix.cli.inputs import check_channels

    with pytest.raises(UsageError, match="not a usable channel URL") as info:
        check_channels([channel])
    assert "s3cret" not in info.value.summary
