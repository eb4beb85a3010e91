"""What the renderer reads of a :class:`condafix.progress.Reporter`: frozen snapshots of phases,
transfers and stalls, and the figures (sizes, durations, plurals) as text. Kept apart from the
model so the printer imports data, not the threads that fill it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PhaseKind = Literal["repodata", "solve", "install", "snapshot", "restore", "other"]


# ---------------------------------------------------------------- what the renderer reads


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """One download (a package) or one repodata source (a channel subdir)."""

    key: str
    label: str
    url: str
    done: int = 0
    total: int | None = None
    requests: int = 0
    finished: bool = False
    started: float = 0.0
    last_byte: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Stall:
    """No byte for ``seconds`` while ``url`` is still being fetched."""

    url: str
    seconds: float


@dataclass(frozen=True, kw_only=True)
class PhaseSummary:
    """A finished phase with its figures; ``lines()`` is what a log or CI shows."""

    kind: PhaseKind
    label: str
    seconds: float
    ok: bool = True
    result: str | None = None
    downloads: int = 0
    download_bytes: int = 0
    download_seconds: float = 0.0
    sources: tuple[str, ...] = ()
    requests: int = 0
    request_bytes: int = 0
    linked: int = 0
    unlinked: int = 0
    files: int = 0
    file_bytes: int = 0

    def lines(self) -> list[str]:
        took = f"in {duration(self.seconds)}"
        failed = "" if self.ok else " (failed)"
        if self.kind == "repodata":
            if not self.requests:  # file:// channels and a fresh cache make no request
                return [f"read {self.label} {took}{failed}"]
            got = f", {size(self.request_bytes)}" if self.request_bytes else ""
            subdirs = f"{plural(len(self.sources), 'subdir')}, " if self.sources else ""
            return [f"fetched {self.label}: {subdirs}{plural(self.requests, 'request')}{got} {took}{failed}"]
        if self.kind == "install":
            out = []
            if self.downloads:
                out.append(
                    f"downloaded {plural(self.downloads, 'package')}, {size(self.download_bytes)} "
                    f"in {duration(self.download_seconds)}"
                )
            out.append(f"linked {plural(self.linked, 'package')}, unlinked {self.unlinked} {took}{failed}")
            return out
        if self.kind == "snapshot":
            saved = f"backed up {plural(self.files, 'file')} ({size(self.file_bytes)})"
            return [f"saved the snapshot: {saved} {took}{failed}"]
        if self.kind == "other" and self.result is None:
            return []  # a bare step("…") message: shown live, not worth a log line
        return [f"{self.result or self.label} {took}{failed}"]


@dataclass(frozen=True, kw_only=True)
class View:
    """Everything the live view draws, taken under the model's lock."""

    kind: PhaseKind | None
    label: str
    detail: str
    elapsed: float
    transfers: tuple[Transfer, ...]
    done_bytes: int
    total_bytes: int | None
    rate: float | None
    eta: float | None
    operations: int
    linked: int
    unlinked: int
    files: int
    file_bytes: int
    stall: Stall | None
    finished: tuple[PhaseSummary, ...]


# ---------------------------------------------------------------- figures as text


def size(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


def duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
