"""The one finding type every command reports: a stable code, a severity, one line, and hints.

Frozen and keyword-only so that it is also the ``--json`` schema; ``component`` names the package
a finding is about, when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from condafix.errors import Hint

Severity = Literal["ok", "info", "warning", "error"]
Status = Literal["ok", "warning", "error"]  # a command's status: its worst finding (info counts as ok)
RANK: dict[str, int] = {"ok": 0, "info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True, kw_only=True)
class Finding:
    code: str
    severity: Severity
    message: str
    hints: tuple[Hint, ...] = ()
    component: str | None = None
