"""Real conda 26.7.1 (../shared/wheels) for tests: run it isolated, create envs, read what it reads.

``.ci/conda-venv`` installs conda with its libmamba, classic and rattler solvers into a venv of its
own and ``.ci/run`` exports ``CONDAFIX_TEST_CONDA_PYTHON``; without it every test that asks for
``real_conda`` skips. conda runs as ``python -m conda`` (the pip console script refuses most
commands) with its package cache, envs dirs, condarc and home under one temp dir, so nothing
touches the developer's ``~/.conda``. Envs are created once per (solver, specs, CUDA) and copied.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CONDA_PYTHON = os.environ.get("CONDAFIX_TEST_CONDA_PYTHON", "")
SOLVERS = ("libmamba", "rattler")  # conda's default and the rattler solver; classic where it reproduces the case
ALL_SOLVERS = (*SOLVERS, "classic")
BROKEN_SPECS = ("numba-cuda", "python=3.12.3", "numpy=2.0.0")  # CONDA_OVERRIDE_CUDA=12.4 -> cuda-version 12.9
# the same bug with every other package at its newest: `conda update --all` has nothing else to change
LATEST_SPECS = ("numba-cuda", "python=3.12.7", "numpy=2.1.0")

_HISTORY_PROBE = """
import json, sys
from conda.history import History
h = History(sys.argv[1])
print(json.dumps({
    "requested": {k: str(v) for k, v in h.get_requested_specs_map().items()},
    "states": [sorted(s) for _date, s in h.construct_states()],
    "requests": [{k: list(v) if isinstance(v, (list, tuple, set)) else v for k, v in r.items()}
                 for r in h.get_user_requests()],
}))
"""


@dataclass(frozen=True)
class CondaHistory:
    """``conda-meta/history`` as conda itself reads it."""

    requested: dict[str, str]
    states: list[list[str]]
    requests: list[dict[str, Any]]


@dataclass
class RealConda:
    """One isolated conda installation: cache, envs dirs, condarc, home and a ``conda`` wrapper on PATH."""

    python: str
    root: Path
    channel: Path
    _templates: dict[tuple[str, tuple[str, ...], str], Path] = field(default_factory=dict)

    @property
    def channel_url(self) -> str:
        return self.channel.as_uri()

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def pkgs_dir(self) -> Path:
        return self.root / "pkgs"

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def condarc(self) -> Path:
        return self.root / "condarc"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, *, cuda: str | None = "12.4", solver: str | None = None, **extra: str) -> dict[str, str]:
        """The environment for conda (and for condafix beside it): isolated, offline-friendly."""
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith(("CONDA", "MAMBA"))}
        env.update(
            HOME=str(self.home),
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            CONDA_PKGS_DIRS=str(self.pkgs_dir),
            CONDA_ENVS_PATH=str(self.envs_dir),
            CONDARC=str(self.condarc),
            CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY="false",
            CONDA_EXE=str(self.bin / "conda"),
            CONDA_NUMBER_CHANNEL_NOTICES="0",
            CONDA_REPORT_ERRORS="false",
            NO_COLOR="1",
        )
        if cuda is not None:
            env["CONDA_OVERRIDE_CUDA"] = cuda
        if solver is not None:
            env["CONDA_SOLVER"] = solver
        env.update(extra)
        return env

    def run(
        self,
        *args: str,
        cuda: str | None = "12.4",
        solver: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """``python -m conda ARGS``; ``check`` fails the test with conda's own output."""
        full = {**self.env(cuda=cuda, solver=solver), **(env or {})}
        for _attempt in range(2):
            done = subprocess.run(
                [self.python, "-m", "conda", *args],
                capture_output=True,
                text=True,
                env=full,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
            )
            # py-rattler's runtime threads (the rattler solver) can crash conda's interpreter finalization
            # with SIGSEGV after the command finished (seen here once in ~300 runs); our commands are
            # idempotent, so run it once more rather than fail on a crash at exit
            if done.returncode >= 0:
                break
        if check and done.returncode != 0:
            pytest.fail(f"conda {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def install(
        self, prefix: Path, *specs: str, solver: str, cuda: str | None = "12.4", extra: Sequence[str] = ()
    ) -> None:
        self.run(
            "install",
            "-y",
            "-q",
            "-p",
            str(prefix),
            "--override-channels",
            "-c",
            self.channel_url,
            *extra,
            *specs,
            cuda=cuda,
            solver=solver,
        )

    def create(self, prefix: Path, specs: Sequence[str], *, solver: str, cuda: str = "12.4") -> Path:
        """A fresh env, or a copy of one made earlier with the same solver, specs and CUDA."""
        key = (solver, tuple(specs), cuda)
        template = self._templates.get(key)
        if template is None:
            template = self.root / "templates" / f"{len(self._templates)}-{solver}"
            self.run(
                "create",
                "-y",
                "-q",
                "-p",
                str(template),
                "--override-channels",
                "-c",
                self.channel_url,
                *specs,
                cuda=cuda,
                solver=solver,
            )
            self._templates[key] = template
        shutil.copytree(template, prefix, symlinks=True)
        return prefix

    def history(self, prefix: Path) -> CondaHistory:
        """What ``conda.history.History`` makes of the prefix's history (fails the test if conda cannot)."""
        done = subprocess.run(
            [self.python, "-c", _HISTORY_PROBE, str(prefix)],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"conda cannot read {prefix}/conda-meta/history:\n{done.stderr}")
        data = json.loads(done.stdout)
        return CondaHistory(data["requested"], data["states"], data["requests"])

    def installed(self, prefix: Path) -> dict[str, str]:
        """name -> version of every package, from ``conda list --json``."""
        done = self.run("list", "-p", str(prefix), "--json")
        return {p["name"]: p["version"] for p in json.loads(done.stdout)}


def _wrapper(bin_dir: Path, python: str) -> None:
    """A ``conda`` executable on PATH (for ``--via conda``): the pip console script cannot install."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "conda"
    script.write_text(f'#!/bin/sh\nexec "{python}" -m conda "$@"\n')
    script.chmod(0o755)


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> Iterator[RealConda]:
    """Real conda with the fixture channel; skips when ``CONDAFIX_TEST_CONDA_PYTHON`` is not set."""
    if not CONDA_PYTHON:
        pytest.skip("real conda not installed (run .ci/conda-venv and set CONDAFIX_TEST_CONDA_PYTHON)")
    if not os.access(CONDA_PYTHON, os.X_OK):
        pytest.skip(f"CONDAFIX_TEST_CONDA_PYTHON={CONDA_PYTHON} is not runnable")
    root = tmp_path_factory.mktemp("conda")
    for sub in ("pkgs", "envs", "home"):
        (root / sub).mkdir()
    (root / "condarc").write_text("channels: []\n")
    _wrapper(root / "bin", CONDA_PYTHON)
    yield RealConda(CONDA_PYTHON, root, channel)
