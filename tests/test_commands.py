"""The command layer shared by the typer app and the conda plugin: consent through the Ui, the solver choice,
the post-solve guard's rule and the hints for conda's __cuda errors (no conda needed here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.backends import choice
from condafix.cli import commands
from condafix.diagnose import compilepath
from condafix.errors import CondafixError, UsageError

from .conftest import tree_digest

BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]


def test_apply_asks_through_the_ui_and_a_no_changes_nothing(
    installed_env: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDAFIX_CACHE_DIR", str(tmp_path / "cache"))
    prefix = installed_env(BROKEN, cuda="12.9")
    before = tree_digest(prefix)
    asked: list[str] = []
    shown: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    ui = commands.Ui(confirm=no, show=lambda view, _payload: shown.append(view))
    with pytest.raises(CondafixError, match="nothing was changed"):
        commands.cuda(prefix=str(prefix), cudas=["12.4"], apply=True, solver="rattler", ui=ui)
    assert asked and "Apply these 5 changes" in asked[0]
    assert shown == ["plan-applying"]  # the plan was shown before the question
    assert tree_digest(prefix) == before


def test_the_default_ui_refuses_to_change_anything(installed_env: Callable[..., Path], tmp_path: Path) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    before = tree_digest(prefix)
    with pytest.raises(UsageError, match="without consent"):
        commands.cuda(prefix=str(prefix), cudas=["12.4"], apply=True, solver="rattler")
    assert tree_digest(prefix) == before


def test_a_dry_run_plan_names_its_solver(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    outcome = commands.cuda(prefix=str(prefix), cudas=["12.4"], solver="rattler")
    assert outcome.view == "plan" and outcome.code == 0
    assert outcome.result.solver == "rattler" and outcome.result.pins == ("cuda-version=12.4",)


def test_bad_via_fails_before_anything_else(installed_env: Callable[..., Path]) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    with pytest.raises(CondafixError, match="--via must be one of"):
        commands.cuda(prefix=str(prefix), cudas=["12.4"], apply=True, via="pip")
    assert not (prefix / "conda-meta" / "condafix").exists()


def test_solver_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choice.default_choice({"CONDAFIX_SOLVER": "rattler"}) == "rattler"
    assert choice.default_choice({"CONDAFIX_SOLVER": "conda"}) == "conda"
    expected = "conda" if choice.conda_available() else "rattler"
    assert choice.default_choice({}) == expected
    with pytest.raises(UsageError, match="conda or rattler"):
        choice.open_backend("mamba", prefix=Path("/nonexistent"), offline=False, env={})


@pytest.mark.parametrize(
    ("final", "users"),
    [
        ({"numba": "0.56.4"}, ["numba 0.56.4 (built-in numba.cuda)"]),
        ({"numba": "0.60.0", "numba-cuda": "0.15.2", "libnvjitlink": "12.9.86"}, ["numba-cuda 0.15.2"]),
        ({"numba-cuda": "0.15.2", "pynvjitlink": "0.7.0"}, []),
        ({"numba-cuda": "0.13.0", "pynvjitlink": "0.7.0"}, ["numba-cuda 0.13.0"]),
        ({"numba-cuda": "0.30.4", "libnvjitlink": "12.9.86"}, []),
        ({"numba-cuda": "0.30.4"}, ["numba-cuda 0.30.4"]),
        ({"pytorch": "2.9.0"}, []),
    ],
)
def test_who_reaches_the_driver_jit(final: dict[str, str], users: list[str]) -> None:
    assert compilepath.driver_jit_users(final) == users


def test_guard_warns_only_for_a_newer_toolkit_with_a_driver_jit_user() -> None:
    seed = {"cuda-version": "12.9", "numba-cuda": "0.15.2", "numba": "0.60.0", "libnvjitlink": "12.9.86"}
    finding = commands.guard_transaction(seed, "12.4")
    assert finding is not None
    assert "cuda-version 12.9" in finding.message and "__cuda 12.4" in finding.message
    assert finding.severity == "error" and '"cuda-version=12.4"' in finding.hints[0].text
    assert commands.guard_transaction({**seed, "cuda-version": "12.4"}, "12.4") is None
    assert commands.guard_transaction({**seed, "numba-cuda": "0.30.4"}, "12.4") is None  # nvJitLink: SASS
    old = commands.guard_transaction({"cudatoolkit": "11.7.1", "numba": "0.56.4"}, "11.4")
    assert old is not None and '"cudatoolkit=11.4"' in old.hints[0].text
    assert commands.guard_transaction({"cuda-version": "12.9", "numba": "0.60.0"}, "not-a-version") is None


def test_cuda_error_hints_follow_the_live_detection() -> None:
    (code, text), *_ = commands.cuda_error_hints("nothing provides __cuda", env={"CONDA_OVERRIDE_CUDA": "12.4"})
    assert code == "condafix_cuda_driver" and "CUDA 12.4" in text
    (code, text), *_ = commands.cuda_error_hints("nothing provides __cuda", env={"CONDA_OVERRIDE_CUDA": ""})
    assert code == "condafix_cuda_override" and "CONDA_OVERRIDE_CUDA=" in text


def test_rollback_needing_the_installer_beside_conda_rattler_solver_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside conda-rattler-solver py-rattler is 0.26, which the embedded installer cannot use: one clear line."""
    import sys

    from condafix.change import restore as restore_mod
    from condafix.change import safety

    monkeypatch.setitem(sys.modules, "condafix.backends.rattler.install", None)  # import raises ImportError
    import condafix.backends.rattler

    monkeypatch.delattr(condafix.backends.rattler, "install", raising=False)
    plan = restore_mod.RestorePlan(snapshot="s1", remove=(), restore=("cuda-nvrtc",), missing=("cuda-nvrtc",))
    reinstaller = choice.reinstaller()  # what the command layer hands the rollback
    assert reinstaller.unusable is not None and "py-rattler >= 0.28" in reinstaller.unusable
    with pytest.raises(safety.ApplyError, match="cannot reinstall cuda-nvrtc") as caught:
        restore_mod._reinstall(tmp_path, tmp_path / "s1", plan, reinstaller)
    assert "nothing was changed" in caught.value.summary
    assert "conda install --revision" in caught.value.hints[0].text
