"""One error type that carries guidance, rendered the same in text and JSON."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Hint:
    """A stable code (for scripts and tests) and the advice shown to the user."""

    code: str
    text: str


@dataclass
class CondafixError(Exception):
    """A failure the user can act on: one-line summary plus hints; never a traceback."""

    summary: str
    hints: tuple[Hint, ...] = field(default_factory=tuple)
    exit_code: int = 2

    def __str__(self) -> str:
        return self.summary


class InspectError(CondafixError):
    """The environment could not be read (bad prefix, broken record): exit code 3."""

    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 3)


class UsageError(CondafixError):
    """Bad input on the command line (version strings, empty text): exit code 2."""

    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 2)
