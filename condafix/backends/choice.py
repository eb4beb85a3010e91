"""Which backend plans, which installer applies, which reinstaller a rollback gets.

Why a module of its own: choosing imports the backends, and the rooms below them (``plan/``,
``change/``) must not; the command layer asks here and hands the result down.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TextIO

from condafix.change.installer import Installer, InstallRequest, Reinstaller
from condafix.errors import Hint, UsageError
from condafix.plan.solver import Backend

Choice = Literal["auto", "conda", "rattler"]


def conda_available() -> bool:
    """Is conda's Python API importable here (condafix installed into a conda install)?"""
    return importlib.util.find_spec("conda") is not None and importlib.util.find_spec("conda.base") is not None


def default_choice(env: Mapping[str, str] | None = None) -> Literal["conda", "rattler"]:
    """conda when condafix runs inside a conda install (``$CONDAFIX_SOLVER`` overrides), else rattler."""
    env = os.environ if env is None else env
    wanted = env.get("CONDAFIX_SOLVER", "").strip().lower()
    if wanted in ("conda", "rattler"):
        return "conda" if wanted == "conda" else "rattler"
    return "conda" if conda_available() else "rattler"


def _no_rattler(exc: ImportError) -> UsageError:
    return UsageError(
        f"the embedded solver needs py-rattler >= 0.28 ({exc})",
        (Hint(code="use_conda", text="inside a conda install, plan with conda's solver: --solver conda"),),
    )


def open_backend(
    choice: str,
    *,
    prefix: Path | None,
    offline: bool,
    env: Mapping[str, str] | None = None,
    configured: bool = False,
    relay: Callable[[], TextIO] | None = None,
) -> Backend:
    """The backend for ``--solver``; ``configured`` means conda's context is already set up (plugin).

    ``prefix=None``: no environment; the backend solves files (``condafix env``) with nothing installed.
    ``relay``: where conda's reporters may write when standalone (stdout stays condafix's own result);
    the command layer lends it.
    """
    picked = default_choice(env) if choice == "auto" else choice
    if picked == "conda":
        if not conda_available():
            raise UsageError(
                "--solver conda: conda's Python API is not importable from this Python",
                (),
            )
        from condafix.backends.conda import CondaBackend

        return CondaBackend(prefix=prefix, offline=offline, configured=configured, relay=relay)
    if picked == "rattler":
        try:
            from condafix.backends.rattler.backend import RattlerBackend
        except ImportError as exc:  # e.g. py-rattler 0.26, kept beside conda for conda-rattler-solver
            raise _no_rattler(exc) from None
        return RattlerBackend(prefix=prefix, offline=offline)
    raise UsageError(f"--solver must be conda or rattler, not {choice!r}")


def installer(backend: Backend, request: InstallRequest, *, via: str | None, relay: Callable[[], TextIO]) -> Installer:
    """The backend's own installer, or ``--via`` TOOL checked by the backend's match-spec rules; ``relay``
    is where the tool's own output goes (the command layer's stream)."""
    if via is not None:
        from condafix.backends import tool

        return tool.installer(via, request, spec_matches=backend.spec_matches, relay=relay)
    return backend.installer(request)


def reinstaller(*, configured: bool = False, env: Mapping[str, str] | None = None) -> Reinstaller:
    """What a rollback reinstalls with: inside a conda install conda's own transaction (it works beside
    conda-rattler-solver's py-rattler 0.26); else the embedded installer (a package cache, else the channel).

    Without conda and without a usable py-rattler: a reinstaller that says so, and a restore that needs
    it changes nothing. ``configured``: conda's context is set up already (the plugin).
    """
    if default_choice(env) == "conda" and conda_available():
        from condafix.backends import conda as conda_backend

        return conda_backend.reinstaller(configured=configured)
    try:
        from condafix.backends.rattler import install as install_rb
        from condafix.backends.rattler import solve as _solve  # noqa: F401  (its reinstall reads the prefix with it)
    except ImportError as exc:
        return Reinstaller(
            label="rattler",
            unavailable=_nothing,
            reinstall=_never,
            unusable=f"the embedded installer needs py-rattler >= 0.28 ({exc})",
        )
    return install_rb.reinstaller()


def _nothing(_records_dir: Path, _names: Sequence[str]) -> list[str]:
    return []


def _never(_prefix: Path, _records_dir: Path) -> None:
    raise AssertionError("an unusable reinstaller was asked to reinstall")
