"""condafix inside conda: conda's hooks only (like conda-libmamba-solver's ``plugin.py``).

``conda cuda``, a ``cuda`` check for ``conda doctor`` with a fixer, a post-solve guard, hints for
conda's ``__cuda`` errors and the guard's setting. conda imports this module on every command, so it
imports nothing heavy: each action lives in ``cli/conda_cuda.py`` or ``cli/conda_guard.py`` and loads
what it needs when it runs. Every hook plans with conda's own configured solver and channels,
through the same command layer as the ``condafix`` app.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from conda import plugins

from condafix.cli import conda_cuda, conda_guard

GUARD_SETTING = conda_guard.GUARD_SETTING


@plugins.hookimpl
def conda_subcommands() -> Iterator[plugins.types.CondaSubcommand]:
    yield plugins.types.CondaSubcommand(
        name="cuda",
        summary="Fix a CUDA toolkit newer than the driver (condafix; conda's solver and channels).",
        action=conda_cuda.cuda_action,
        configure_parser=conda_cuda.configure_cuda_parser,
    )


@plugins.hookimpl
def conda_health_checks() -> Iterator[plugins.types.CondaHealthCheck]:
    yield plugins.types.CondaHealthCheck(
        name="cuda",
        action=conda_cuda.check_action,
        fixer=conda_cuda.check_fixer,
        summary="CUDA toolkit vs the NVIDIA driver (condafix)",
        fix="Pin cuda-version/cudatoolkit to the driver's CUDA with conda's solver",
    )


@plugins.hookimpl
def conda_settings() -> Iterator[plugins.types.CondaSetting]:
    from conda.common.configuration import PrimitiveParameter

    yield plugins.types.CondaSetting(
        name=GUARD_SETTING,
        description=(
            "condafix's check before conda links a CUDA toolkit newer than the driver for a package that "
            "JIT-compiles PTX through the driver: warn (default), error, or off."
        ),
        parameter=PrimitiveParameter("warn", element_type=str),
    )


def post_solve(repodata_fn: str, unlink_precs: Iterable[Any], link_precs: Iterable[Any]) -> None:
    """conda's post-solve hook: the guard (``cli.conda_guard.post_solve``)."""
    conda_guard.post_solve(repodata_fn, unlink_precs, link_precs)


@plugins.hookimpl
def conda_post_solves() -> Iterator[plugins.types.CondaPostSolve]:
    yield plugins.types.CondaPostSolve(name="condafix-cuda-guard", action=post_solve)


@plugins.hookimpl
def conda_error_hints(error: Any) -> Iterator[plugins.types.CondaErrorHint]:
    for code, hint in conda_guard.error_hints(error):
        yield plugins.types.CondaErrorHint(text=hint, hint_code=code)
