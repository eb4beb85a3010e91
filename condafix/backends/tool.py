"""``--via conda|mamba|micromamba``: the env's own manager as an :class:`Installer`.

Why: some users want their own tool to do the install (its solver, its cache, its history) and
condafix only to plan, pin and keep the undo; so the tool is one more installer that ``change.apply``
wraps in its lock, snapshot and journal. The tool writes conda's history itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from condafix.change.installer import Installer, InstallRequest, Matches, Step
from condafix.errors import CondafixError

VIA_TOOLS = ("conda", "mamba", "micromamba")


def find_tool(via: str) -> str:
    """The env's own manager: $CONDA_EXE / $MAMBA_EXE first, then PATH. Exit 2 before anything starts."""
    if via not in VIA_TOOLS:
        raise CondafixError(summary=f"--via must be one of {', '.join(VIA_TOOLS)} (got {via!r})", hints=(), exit_code=2)
    variable = "CONDA_EXE" if via == "conda" else "MAMBA_EXE"  # the one variable each manager's shell hook sets
    hinted = os.environ.get(variable)
    if hinted and Path(hinted).name.startswith(via) and os.access(hinted, os.X_OK):
        return hinted
    found = shutil.which(via)
    if found is None:
        said = f"${variable} is {hinted!r}, not an executable {via}" if hinted else f"nor in ${variable}"
        raise CondafixError(summary=f"--via {via}: {via} is not on PATH ({said})", hints=(), exit_code=2)
    return found


def tool_argv(tool: str, request: InstallRequest) -> list[str]:
    """``<tool> install -p PREFIX -y --override-channels -c CH... PINS``: every channel, every pin."""
    argv = [tool, "install", "-p", str(request.prefix), "-y", "--override-channels"]
    for channel in request.channels:
        argv += ["-c", channel]
    return argv + list(request.pins)


def installer(via: str, request: InstallRequest, *, spec_matches: Matches, relay: Callable[[], TextIO]) -> Installer:
    """``via`` runs the install (through the runner: proxy and credentials handled there).

    ``spec_matches`` is the planning backend's check for pins already in ``conda-meta/pinned``.
    """
    argv = tool_argv(find_tool(via), request)

    def install(_step: Step) -> None:
        from condafix import runner

        done = runner.run(argv, timeout=3600, network=True, relay=relay())
        if not done.ok:
            raise RuntimeError(f"{via} install failed ({done.error or f'exit {done.returncode}'})")

    return Installer(label=via, install=install, writes_history=True, spec_matches=spec_matches, argv=tuple(argv))
