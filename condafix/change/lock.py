"""The prefix lock: ``conda-meta/condafix/lock`` held with ``flock``, so no stale lock to guess about."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from condafix.change.safety import ApplyError, _read_json, check_state_dir, state_dir
from condafix.errors import Hint, UsageError

LOCK_WAIT_S = 10.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_wait() -> float:
    """``CONDAFIX_LOCK_WAIT`` seconds (default 10); a value that is not a number is one clear line."""
    raw = os.environ.get("CONDAFIX_LOCK_WAIT")
    if raw is None or not raw.strip():
        return LOCK_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise UsageError(f"CONDAFIX_LOCK_WAIT={raw!r}: expected seconds to wait for the lock (e.g. 10)")
    return value


@contextlib.contextmanager
def prefix_lock(prefix: Path, *, wait: float | None = None) -> Iterator[Path]:
    """Hold ``conda-meta/condafix/lock`` with ``flock``: the kernel drops it when the holder dies,
    so there is no stale lock to guess about, and the pid inside is only for the message."""
    wait = _lock_wait() if wait is None else wait
    check_state_dir(prefix)
    lock = state_dir(prefix) / "lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplyError(f"cannot write to {prefix}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise ApplyError(f"cannot lock {prefix}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            if time.monotonic() >= deadline:
                holder = _read_json(lock)
                pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
                raise ApplyError(
                    f"{prefix} is locked by another condafix (pid {pid or '?'} on {holder.get('host', '?')})",
                    (Hint(code="wait", text="wait for it to finish (the lock goes away with its process)"),),
                ) from None
            time.sleep(0.1)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our flock
            os.close(fd)
            continue
        break
    body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, body.encode(), 0)
    except OSError:
        pass  # the pid is informative only; the flock is the lock
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


INTERRUPTED = "interrupted: stopping the downloads, then undoing the change"
INTERRUPTED_ROLLBACK = "interrupted: the rollback finishes first (stopped half-way, the env would be half restored)"
AGAIN = "interrupted again: {state}; condafix is finishing that before it exits (a kill now leaves a journal)"


@contextlib.contextmanager
def _deferred_signals(
    notify: Callable[[str], None] = lambda _m: None,
    state: Callable[[], str] = lambda: "the env is being changed",
    *,
    cancel: bool = True,
) -> Iterator[Callable[[], bool]]:
    """Ctrl-C, SIGTERM and SIGHUP are noted, not raised, while the prefix is being changed.

    Raising into the event loop would cancel the Python side while rattler's installer thread
    keeps linking, so the restore would race it. Instead condafix finishes the current step and
    then undoes the change. (SIGKILL cannot be caught: the journal covers that.) An installer that
    is still downloading stops at once (``installer.cancel_requested``). ``notify`` tells the user at
    once; the command layer lends it (nothing below ``cli/`` prints). A second signal is told what
    state the env is in (``state()``) and what condafix is still doing.
    """
    from condafix.change import installer

    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        notify((INTERRUPTED if cancel else INTERRUPTED_ROLLBACK) if not received else AGAIN.format(state=state()))
        received.append(signum)
        if cancel:
            installer._CANCEL.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield lambda: bool(received)
    finally:
        installer._CANCEL.clear()
        for sig, old in saved.items():
            signal.signal(sig, old)
