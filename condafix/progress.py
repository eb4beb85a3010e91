"""What long work is doing, as data: phases, transfers with byte counts, rates, ETA and stalls.

The model is fed by the backends (rattler's install reporter and request hook, the snapshot
step) from any thread, and read by ``render`` (the only printer), which either draws it live or
prints one line per finished phase. Nothing here prints, imports rich or knows about rattler.

Core code takes a ``step`` callable (``step("solving with …")``); a :class:`Reporter` is such a
callable, so the same call sites work with a plain function and with the full model.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from condafix.progress_view import PhaseKind, PhaseSummary, Stall, Transfer, View

Step = Callable[[str], None]

STALL_SECONDS = 10.0
"""Say which URL is silent after this long: well before the HTTP client's request timeout."""

RATE_WINDOW_S = 5.0


def stall_seconds(env: dict[str, str] | None = None) -> float:
    """``$CONDAFIX_STALL_SECONDS`` (a positive number), else :data:`STALL_SECONDS`."""
    value = (os.environ if env is None else env).get("CONDAFIX_STALL_SECONDS", "")
    try:
        seconds = float(value)
    except ValueError:
        return STALL_SECONDS
    return seconds if seconds > 0 else STALL_SECONDS


# ---------------------------------------------------------------- the model


@dataclass
class _Phase:
    kind: PhaseKind
    label: str
    started: float
    detail: str = ""
    result: str | None = None
    ok: bool = True
    linked: int = 0
    unlinked: int = 0
    operations: int = 0
    files: int = 0
    file_bytes: int = 0
    first_download: float | None = None
    last_download: float | None = None


@dataclass
class _Stalled:
    url: str
    reported: int = 0  # how many multiples of stall_after were reported


@dataclass
class _State:
    phase: _Phase | None = None
    transfers: dict[str, Transfer] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    source_bytes: int = 0
    stalled: _Stalled | None = None
    finished: list[PhaseSummary] = field(default_factory=list)


Listener = Callable[[object], None]


class Reporter:
    """Thread-safe progress model; callable as a ``step(message)`` that sets the current detail.

    ``listener`` receives a :class:`PhaseSummary` when a phase ends, a :class:`Stall` when a
    transfer has been silent for a multiple of ``stall_after`` seconds, and ``("resumed", Stall)``
    when bytes flow again.
    """

    def __init__(
        self,
        *,
        stall_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        listener: Listener | None = None,
    ) -> None:
        self.stall_after = stall_seconds() if stall_after is None else stall_after
        self.clock = clock
        self.listener = listener
        self._lock = threading.RLock()
        self._state = _State()
        self._pollers: list[Callable[[], None]] = []

    # -- step compatibility

    def __call__(self, message: str) -> None:
        with self._lock:
            if self._state.phase is None:
                self._state.phase = _Phase("other", message, self.clock())
            self._state.phase.detail = message

    # -- phases

    def begin(self, kind: PhaseKind, label: str) -> None:
        """Start a phase; a phase still open is ended first (phases do not nest)."""
        if self._state.phase is not None:
            self.end()
        with self._lock:
            self._state.phase = _Phase(kind, label, self.clock())
            self._state.transfers.clear()
            self._state.order.clear()
            self._state.samples.clear()
            self._state.source_bytes = 0
            self._state.stalled = None

    def result(self, text: str) -> None:
        """What the phase ended with (``solved with cuda-version=12.4``), for its summary line."""
        with self._lock:
            if self._state.phase is not None:
                self._state.phase.result = text

    def end(self, *, ok: bool = True) -> PhaseSummary | None:
        with self._lock:
            phase = self._state.phase
            if phase is None:
                return None
            now = self.clock()
            transfers = [self._state.transfers[k] for k in self._state.order]
            downloads = [t for t in transfers if t.key.startswith("pkg:")]
            sources = [t for t in transfers if t.key.startswith("src:")]
            summary = PhaseSummary(
                kind=phase.kind,
                label=phase.label,
                seconds=now - phase.started,
                ok=ok and phase.ok,
                result=phase.result,
                downloads=sum(1 for t in downloads if t.finished),
                download_bytes=sum(t.done for t in downloads),
                download_seconds=(phase.last_download or now) - (phase.first_download or now),
                sources=tuple(t.label for t in sources),
                requests=sum(t.requests for t in sources),
                request_bytes=max(self._state.source_bytes, sum(t.done for t in sources)),
                linked=phase.linked,
                unlinked=phase.unlinked,
                files=phase.files,
                file_bytes=phase.file_bytes,
            )
            self._state.phase = None
            self._state.stalled = None
            self._state.finished.append(summary)
        self._emit(summary)
        return summary

    @contextlib.contextmanager
    def phase(self, kind: PhaseKind, label: str) -> Iterator[Reporter]:
        self.begin(kind, label)
        try:
            yield self
        except BaseException:
            self.end(ok=False)
            raise
        self.end()

    @property
    def summaries(self) -> tuple[PhaseSummary, ...]:
        with self._lock:
            return tuple(self._state.finished)

    # -- transfers

    def download_start(self, name: str, *, url: str, total: int | None) -> None:
        now = self.clock()
        with self._lock:
            key = f"pkg:{name}"
            if key not in self._state.transfers:
                self._state.order.append(key)
            self._state.transfers[key] = Transfer(key=key, label=name, url=url, total=total, started=now, last_byte=now)
            phase = self._state.phase
            if phase is not None and phase.first_download is None:
                phase.first_download = now
            self._sample(now)  # the rate counts from the first request, not the first byte

    def download_progress(self, name: str, done: int, total: int | None = None) -> None:
        now = self.clock()
        with self._lock:
            key = f"pkg:{name}"
            old = self._state.transfers.get(key)
            if old is None:
                return
            grew = done > old.done
            self._state.transfers[key] = replace(
                old, done=max(done, old.done), total=total or old.total, last_byte=now if grew else old.last_byte
            )
            if grew:
                self._sample(now)
        if grew:
            self._resumed()

    def download_done(self, name: str) -> None:
        now = self.clock()
        with self._lock:
            key = f"pkg:{name}"
            old = self._state.transfers.get(key)
            if old is None:
                return
            self._state.transfers[key] = replace(
                old, finished=True, done=max(old.done, old.total or 0), total=old.total or old.done, last_byte=now
            )
            if self._state.phase is not None:
                self._state.phase.last_download = now
            self._sample(now)

    def request(self, url: str) -> None:
        """An HTTP request for repodata went out (repodata.json, a shard index or a shard)."""
        now = self.clock()
        source, _file = source_of(url)
        with self._lock:
            key = f"src:{source}"
            old = self._state.transfers.get(key)
            if old is None:
                self._state.order.append(key)
                old = Transfer(key=key, label=source_label(source), url=url, started=now)
            self._state.transfers[key] = replace(old, url=url, requests=old.requests + 1, finished=False, last_byte=now)
        self._resumed()

    def source_done(self, url: str, nbytes: int) -> None:
        """A subdir's repodata arrived in full (``nbytes`` as stored)."""
        with self._lock:
            key = f"src:{source_of(url)[0]}"
            old = self._state.transfers.get(key)
            if old is not None and not old.finished:
                self._state.transfers[key] = replace(old, done=nbytes, total=nbytes, finished=True)

    def source_bytes(self, nbytes: int) -> None:
        """Bytes of repodata received so far in this phase (all sources together)."""
        now = self.clock()
        with self._lock:
            grew = nbytes > self._state.source_bytes
            if grew:
                self._state.source_bytes = nbytes
                for key, t in self._state.transfers.items():
                    if key.startswith("src:") and not t.finished:
                        self._state.transfers[key] = replace(t, last_byte=now)
        if grew:
            self._resumed()

    def sources_settled(self) -> None:
        """The query that made the requests returned: every source is in."""
        with self._lock:
            for key, t in self._state.transfers.items():
                if key.startswith("src:") and not t.finished:
                    self._state.transfers[key] = replace(t, finished=True)
            self._state.stalled = None

    # -- link / unlink / snapshot

    def operations(self, total: int) -> None:
        with self._lock:
            if self._state.phase is not None:
                self._state.phase.operations = total

    def linked(self, _name: str) -> None:
        with self._lock:
            if self._state.phase is not None:
                self._state.phase.linked += 1

    def unlinked(self, _name: str) -> None:
        with self._lock:
            if self._state.phase is not None:
                self._state.phase.unlinked += 1

    def file_saved(self, nbytes: int) -> None:
        with self._lock:
            if self._state.phase is not None:
                self._state.phase.files += 1
                self._state.phase.file_bytes += nbytes

    # -- time

    @contextlib.contextmanager
    def polling(self, poll: Callable[[], None]) -> Iterator[None]:
        """Call ``poll`` on every tick while the block runs (e.g. to watch a cache directory)."""
        with self._lock:
            self._pollers.append(poll)
        try:
            yield
        finally:
            with self._lock:
                self._pollers.remove(poll)
            poll()

    def tick(self) -> Stall | None:
        """Run the pollers, then check for a stall; the renderer calls this a few times a second."""
        with self._lock:
            pollers = list(self._pollers)
        for poll in pollers:
            with contextlib.suppress(Exception):  # a watcher must never break the work it watches
                poll()
        stall = self.stall()
        if stall is None:
            return None
        with self._lock:
            current = self._state.stalled
            if current is None or current.url != stall.url:
                current = self._state.stalled = _Stalled(stall.url)
            multiple = int(stall.seconds // self.stall_after)
            if multiple <= current.reported:
                return stall
            current.reported = multiple
        self._emit(stall)
        return stall

    def stall(self) -> Stall | None:
        """The in-flight transfer silent for longest, if that is at least ``stall_after`` seconds."""
        now = self.clock()
        with self._lock:
            waiting = [t for t in self._state.transfers.values() if not t.finished]
            if not waiting:
                return None
            last_any = max(t.last_byte for t in self._state.transfers.values())
            oldest = min(waiting, key=lambda t: t.last_byte)
        silent = now - last_any  # any byte anywhere counts: a stall is the whole phase standing still
        return Stall(url=oldest.url, seconds=silent) if silent >= self.stall_after else None

    def view(self) -> View:
        now = self.clock()
        with self._lock:
            phase = self._state.phase
            transfers = tuple(self._state.transfers[k] for k in self._state.order)
            downloads = [t for t in transfers if t.key.startswith("pkg:")]
            sources = [t for t in transfers if t.key.startswith("src:")]
            done = sum(t.done for t in downloads) if downloads else self._state.source_bytes
            totals = [t.total for t in downloads]
            total = sum(t for t in totals if t is not None) if downloads and None not in totals else None
            rate = self._rate(now)
            eta = (total - done) / rate if total is not None and rate else None
            return View(
                kind=phase.kind if phase else None,
                label=phase.label if phase else "",
                detail=phase.detail if phase else "",
                elapsed=now - phase.started if phase else 0.0,
                transfers=tuple(downloads) + tuple(sources),
                done_bytes=done,
                total_bytes=total,
                rate=rate,
                eta=eta,
                operations=phase.operations if phase else 0,
                linked=phase.linked if phase else 0,
                unlinked=phase.unlinked if phase else 0,
                files=phase.files if phase else 0,
                file_bytes=phase.file_bytes if phase else 0,
                stall=self.stall(),
                finished=tuple(self._state.finished),
            )

    # -- internals

    def _sample(self, now: float) -> None:
        done = sum(t.done for k, t in self._state.transfers.items() if k.startswith("pkg:"))
        samples = self._state.samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
            samples.popleft()

    def _rate(self, now: float) -> float | None:
        samples = self._state.samples
        if len(samples) < 2:
            return None
        (t0, b0), (_t1, b1) = samples[0], samples[-1]
        span = now - t0
        return (b1 - b0) / span if span > 0 and b1 > b0 else None

    def _resumed(self) -> None:
        with self._lock:
            stalled = self._state.stalled
            self._state.stalled = None
        if stalled is not None and stalled.reported:
            self._emit(("resumed", Stall(url=stalled.url, seconds=stalled.reported * self.stall_after)))

    def _emit(self, event: object) -> None:
        if self.listener is not None:
            with contextlib.suppress(Exception):
                self.listener(event)


# ---------------------------------------------------------------- helpers for core code

_CURRENT: list[Reporter] = []


def current() -> Reporter | None:
    """The Reporter of the progress session now showing, for events that arrive outside any call
    that was handed a ``step`` (rattler's HTTP hook runs on its own threads)."""
    return _CURRENT[-1] if _CURRENT else None


@contextlib.contextmanager
def active(reporter: Reporter) -> Iterator[Reporter]:
    _CURRENT.append(reporter)
    try:
        yield reporter
    finally:
        _CURRENT.remove(reporter)


def reporter_of(step: object) -> Reporter | None:
    return step if isinstance(step, Reporter) else None


@contextlib.contextmanager
def phase(step: Step, kind: PhaseKind, label: str) -> Iterator[Step]:
    """A phase on a Reporter; on a plain step callable, just ``step(label)``."""
    reporter = reporter_of(step)
    if reporter is None:
        step(label)
        yield step
        return
    with reporter.phase(kind, label):
        reporter(label)
        yield reporter


def begin(step: Step, kind: PhaseKind, label: str) -> None:
    """Open a phase that :func:`end` (or the next phase, or the session's end) closes."""
    reporter = reporter_of(step)
    if reporter is None:
        step(label)
    else:
        reporter.begin(kind, label)


def end(step: Step, result: str | None = None, *, ok: bool = True) -> None:
    """Close the open phase with what it came to (``solved with cuda-version=12.4``)."""
    reporter = reporter_of(step)
    if reporter is not None:
        if result is not None:
            reporter.result(result)
        reporter.end(ok=ok)


def file_counter(step: Step) -> Callable[[int], None]:
    """``on_file(nbytes)`` for a step that copies files (the snapshot's backup)."""
    reporter = reporter_of(step)
    return reporter.file_saved if reporter is not None else lambda _nbytes: None


def source_of(url: str) -> tuple[str, str]:
    """``https://h/conda-forge/linux-64/shards/ab.msgpack.zst`` -> (``…/conda-forge/linux-64``, file)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # the key never holds credentials
    head, _, file = parts.path.rstrip("/").rpartition("/")
    if head.endswith("/shards"):
        head = head[: -len("/shards")]
    return f"{parts.scheme}://{netloc}{head}" if parts.scheme else f"{netloc}{head}", file


def source_label(source: str) -> str:
    """The last two path parts (``conda-forge/linux-64``), or host/subdir for a bare host."""
    parts = urlsplit(source)
    path = [p for p in parts.path.split("/") if p]
    if len(path) >= 2:
        return "/".join(path[-2:])
    return f"{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/{'/'.join(path)}"
