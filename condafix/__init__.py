"""condafix: make CUDA work in conda environments.

The pipeline as rooms, imports pointing down only (``tests/test_layers.py`` keeps it): ``knowledge/``
(sourced tables), ``env/`` (conda's files, read as conda reads them), ``detect/`` (the driver, the target
CUDA), ``change/`` (lock, snapshot, journal, conda's history and pinned), ``plan/`` (the solver port and
the planner), ``diagnose/`` (verdicts, compile paths, pasted errors), ``backends/`` (the only code that
imports conda or rattler), ``files/`` (env files, manifests, lockfiles), ``cli/`` (the front ends and the
only printer). See README "Layout".

Core modules return frozen dataclasses; they are also the ``--json`` schema.
"""

from __future__ import annotations

__version__ = "0.1.0"
