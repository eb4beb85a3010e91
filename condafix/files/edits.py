"""What ``condafix env`` reports for an environment file or a pixi manifest: its edits, notes and verdict.

Shared by the environment.yml and pixi readers (``envfile``, ``pixifile``, ``pixiplatforms``) and the
renderer; frozen and keyword-only, so they are also the ``env`` part of the ``--json`` schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "change", "refused"]


@dataclass(frozen=True, kw_only=True)
class Edit:
    line: int
    old: str
    new: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Note:
    line: int | None
    spec: str
    message: str


@dataclass(frozen=True, kw_only=True)
class GroupMember:
    """One CUDA-bearing spec of the file and its part in the group."""

    line: int | None
    spec: str
    kind: str


@dataclass(frozen=True, kw_only=True)
class EnvFileResult:
    path: str
    target_cuda: str
    family: str | None
    pin: str | None
    checked: str
    edits: tuple[Edit, ...]
    notes: tuple[Note, ...]
    diff: str
    changed: bool
    written: bool = False
    backup: str | None = None
    status: Status = "ok"
    reason: str = ""
    group: tuple[GroupMember, ...] = ()
    attempts: tuple[str, ...] = ()
    solver: str | None = None  # what checked the candidates (``conda (libmamba)``, ``rattler``); None: not checked
