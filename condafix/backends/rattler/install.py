"""py-rattler's installer: makes a prefix equal to a record list, watched for silence (not total
time), preferring conda's package cache so an offline rollback works.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rattler import (
    MatchSpec,
    PrefixRecord,
)

from condafix import progress, proxy
from condafix.backends.rattler.net import cache_dir, client, net_limits
from condafix.change.installer import Reinstaller, before_writing, cancel_requested
from condafix.change.safety import _atomic_write, _read_json
from condafix.env import condameta
from condafix.errors import CondafixError, Hint


def pkgs_dir() -> Path:
    """The package cache condafix installs from: ``$CONDAFIX_PKGS_DIR`` or ``<cache>/pkgs``."""
    return Path(os.environ.get("CONDAFIX_PKGS_DIR") or cache_dir() / "pkgs")


class _InstallEvents:
    """rattler's install reporter -> the progress model (downloads with bytes, link/unlink counts);
    with a plain ``step`` callable, the old one-line messages."""

    def __init__(self, step: Any, records: Sequence[Any]) -> None:
        self.step = step
        self.reporter = progress.reporter_of(step)
        self.records = {r.name.normalized: r for r in records}
        self.names: dict[int, str] = {}
        self.tokens = itertools.count(1)
        self.total = 0
        self.done = 0
        self.in_flight = 0  # links and unlinks begun and not ended: a cancel must wait for them

    def _token(self, name: str) -> int:
        token = next(self.tokens)
        self.names[token] = name
        return token

    def on_transaction_start(self, total: int) -> None:
        self.total = total
        if self.reporter is not None:
            self.reporter.operations(total)

    def on_transaction_operation_complete(self, _index: int) -> None:
        self.done += 1
        if self.reporter is None:
            self.step(f"installing: {self.done}/{self.total} operations")

    def on_populate_cache_start(self, _operation: int, name: str) -> int:
        return self._token(name)

    def on_download_start(self, cache_entry: int) -> int:
        name = self.names.get(cache_entry, "?")
        if self.reporter is None:
            self.step("downloading packages")
        else:
            record = self.records.get(name)
            size = int(record.size) if record is not None and record.size else None
            self.reporter.download_start(name, url=str(record.url) if record is not None else name, total=size)
        return self._token(name)

    def on_download_progress(self, index: int, done: int, total: int | None) -> None:
        if self.reporter is not None:
            self.reporter.download_progress(self.names.get(index, "?"), done, total)

    def on_download_completed(self, index: int) -> None:
        if self.reporter is not None:
            self.reporter.download_done(self.names.get(index, "?"))

    def on_link_start(self, _operation: int, name: str) -> int:
        self.in_flight += 1
        record = self.records.get(name)
        if record is not None:  # the package is extracted now: what it writes is backed up before it links
            stem = f"{record.name.normalized}-{record.version}-{record.build}"
            paths = _read_json(pkgs_dir() / stem / "info" / "paths.json").get("paths")
            if isinstance(paths, list):
                before_writing(p["_path"] for p in paths if isinstance(p, dict) and isinstance(p.get("_path"), str))
        return self._token(name)

    def on_link_complete(self, index: int) -> None:
        self.in_flight -= 1
        if self.reporter is not None:
            self.reporter.linked(self.names.get(index, "?"))

    def on_unlink_start(self, _operation: int, name: str) -> int:
        self.in_flight += 1
        return self._token(name)

    def on_unlink_complete(self, index: int) -> None:
        self.in_flight -= 1
        if self.reporter is not None:
            self.reporter.unlinked(self.names.get(index, "?"))

    def __getattr__(self, name: str) -> Any:  # every other on_* event is accepted and ignored
        if name.startswith("on_"):
            return lambda *args, **kwargs: 0
        raise AttributeError(name)


# A package download may take hours (CUDA parts are GB); what must not pass unnoticed is silence.
INSTALL_REQUEST_TIMEOUT_S = 24 * 3600.0


INSTALL_SILENCE_FLOOR_S = 300.0  # linking one large package sends no event for a while


class _Heartbeat:
    """Forwards rattler's install events and notes when the last one came (silence = a stalled install)."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.last = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.events, name)
        if not name.startswith("on_"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.last = time.monotonic()
            return target(*args, **kwargs)

        return call


def install_silence_s() -> float:
    """How long an install may go without any download or link event: 5x CONDAFIX_HTTP_TIMEOUT, >= 300 s."""
    return max(net_limits().timeout_s * 5, INSTALL_SILENCE_FLOOR_S)


async def _until_silent(coro: Any, beat: _Heartbeat, silence_s: float) -> None:
    """Run the install; stop it when it goes silent, or at once on Ctrl-C while it has changed nothing."""
    task = asyncio.ensure_future(coro)
    while True:
        done, _pending = await asyncio.wait({task}, timeout=min(0.1, silence_s / 4))
        if done:
            task.result()
            return
        if cancel_requested() and getattr(beat.events, "in_flight", 1) <= 0:
            task.cancel()  # no link or unlink half-done: the downloads stop, and nothing races the undo
            await asyncio.wait({task}, timeout=2.0)
            raise KeyboardInterrupt
        if time.monotonic() - beat.last > silence_s:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)
            raise CondafixError(
                summary=f"the install stalled: no download or link progress for {silence_s:g} s",
                hints=(
                    Hint(
                        code="timeout",
                        text="check the channel and proxy (`condafix proxy`); CONDAFIX_HTTP_TIMEOUT=SECONDS "
                        "allows 5x that much silence",
                    ),
                ),
            )


def install(
    records: Sequence[Any],
    prefix: Path,
    installed: Sequence[PrefixRecord],
    specs: Sequence[str],
    step: Any = lambda _m: None,
    *,
    silence_s: float | None = None,
) -> None:
    """Make the prefix equal to ``records`` (rattler unlinks/links only what differs).

    Not bounded by a total time: a steady multi-GB download is fine; silence longer than
    ``silence_s`` (default ``install_silence_s()``) stops it.
    """
    from rattler import install as rattler_install
    from rattler.exceptions import InstallerError, LinkError, TransactionError

    beat = _Heartbeat(_InstallEvents(step, records))
    panic: list[str] = []
    try:
        with progress.phase(step, "install", f"installing into {prefix}"), rust_panics_held() as panic:
            asyncio.run(
                _until_silent(
                    rattler_install(
                        list(records),
                        target_prefix=prefix,
                        cache_dir=pkgs_dir(),
                        installed_packages=list(installed),
                        show_progress=False,
                        client=client(timeout_s=INSTALL_REQUEST_TIMEOUT_S),
                        requested_specs=[MatchSpec(s)._match_spec for s in specs],
                        reporter=beat,
                    ),
                    beat,
                    install_silence_s() if silence_s is None else silence_s,
                )
            )
    except (InstallerError, LinkError, TransactionError) as exc:
        raise CondafixError(summary=str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    except BaseException as exc:
        # pyo3's PanicException is a BaseException; a worker thread's panic reaches Python as "rust future
        # panicked: unknown error" (pyo3-async-runtimes' RustPanic): either way the held report says what
        rust = type(exc).__name__ in ("PanicException", "RustPanic") or "rust future panicked" in str(exc)
        if isinstance(exc, KeyboardInterrupt) or not (rust or panic):
            raise
        said = next((line.strip() for line in (*panic[1:2], str(exc)) if line.strip()), "no message")
        raise CondafixError(
            summary=f"py-rattler's installer stopped on an internal error, a Rust panic: {said}"
        ) from exc


_PANIC_START = re.compile(rb"^thread '[^'\n]{0,200}'(?: \(\d+\))? panicked at ")


@contextlib.contextmanager
def rust_panics_held() -> Iterator[list[str]]:
    """Rust's panic hook writes straight to fd 2, so a panic inside py-rattler (one was seen when conda
    changed the prefix mid-install) printed a multi-line Rust report under condafix's one-line error. While
    the installer runs, fd 2 goes through a pipe: everything is passed on at once except a panic report,
    which is held (yielded, its lines) for the caller's one line."""
    held: list[str] = []
    try:
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:  # no fd 2 to take (a daemon): nothing to hold
        yield held
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    relay = threading.Thread(target=_relay, args=(read_end, saved, held), daemon=True)
    relay.start()
    try:
        yield held
    finally:
        os.dup2(saved, 2)  # the pipe's last write end closes: the relay reads EOF
        relay.join(timeout=5)
        os.close(saved)


def _relay(read_end: int, out: int, held: list[str]) -> None:
    """Pass bytes from ``read_end`` to ``out`` unchanged; from a panic's first line on, keep them in ``held``."""
    pending, panicking = b"", False
    with contextlib.suppress(OSError):
        while chunk := os.read(read_end, 65536):
            pending += chunk
            while not panicking and (cut := pending.find(b"\n") + 1):
                line, pending = pending[:cut], pending[cut:]
                if _PANIC_START.match(line):
                    panicking, pending = True, line + pending
                else:
                    os.write(out, line)
            start = b"thread '"
            if not panicking and pending and not (start.startswith(pending) or pending.startswith(start)):
                os.write(out, pending)  # a progress bar redraws with \r, never waiting for a newline
                pending = b""
            if panicking:
                held.extend(pending.decode(errors="replace").splitlines())
                pending = b""
        if pending:
            os.write(out, pending)
    os.close(read_end)


def conda_archive(record: Any) -> Path | None:
    """The package's archive in conda's package cache (``CONDA_PKGS_DIRS``/``pkgs_dirs``), checksum-checked."""
    import hashlib

    from condafix.env import condarc

    name = str(record.file_name) if record.file_name else ""
    if not name or "/" in name:
        return None
    sha = record.sha256.hex() if record.sha256 else None
    for cache in condarc.load().pkgs_dirs:
        archive = cache / name
        if not archive.is_file():
            continue
        if sha is None:
            return archive
        digest = hashlib.sha256()
        with open(archive, "rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() == sha:
            return archive
    return None


def prefer_cached(records: Sequence[Any]) -> list[Any]:
    """Install from conda's package cache where it holds the same archive (offline, no download)."""
    out = []
    for record in records:
        archive = conda_archive(record)
        stem = f"{record.name.normalized}-{record.version}-{record.build}"
        if archive is not None and not (pkgs_dir() / stem).is_dir():
            record.url = archive.as_uri()
        out.append(record)
    return out


def package_source(record: Any) -> str | None:
    """Where a package can be had again: ``cache`` (conda's or condafix's), ``channel``, or None."""
    import urllib.request
    from urllib.parse import unquote

    stem = f"{record.name.normalized}-{record.version}-{record.build}"
    cache = pkgs_dir()
    if (cache / stem / "info").is_dir() or any((cache / f"{stem}{ext}").is_file() for ext in (".conda", ".tar.bz2")):
        return "cache"
    if conda_archive(record) is not None:
        return "cache"
    url = str(record.url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "channel" if Path(unquote(parts.path)).is_file() else None
    if parts.scheme in ("http", "https"):
        with proxy.applied():
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15) as answer:
                    return "channel" if answer.status < 400 else None
            except OSError:
                return None
    return None


def records_from_dir(directory: Path) -> list[PrefixRecord]:
    return [PrefixRecord.from_path(p) for p in sorted(directory.glob("*.json"))]


def reinstaller() -> Reinstaller:
    """The embedded installer for a restore: saved records from conda's or condafix's package cache, else the
    channel (the command layer hands it to ``change.rollback``)."""

    def unavailable(records_dir: Path, names: Sequence[str]) -> list[str]:
        wanted = prefer_cached(records_from_dir(records_dir))
        return [
            f"{r.name.normalized} {r.version} {r.build}"
            for r in wanted
            if r.name.normalized in names and package_source(r) is None
        ]

    def reinstall(prefix: Path, records_dir: Path) -> None:
        from condafix.backends.rattler.solve import read_prefix_records

        install(prefer_cached(records_from_dir(records_dir)), prefix, read_prefix_records(prefix), [])

    return Reinstaller(label="rattler", unavailable=unavailable, reinstall=reinstall)


def record_stamps(prefix: Path) -> dict[str, tuple[int, int]]:
    """Record file name -> (size, mtime ns): which records an install wrote, without reading any."""
    stamps = {}
    for path in condameta.record_paths(prefix):
        with contextlib.suppress(OSError):
            info = path.stat()
            stamps[path.name] = (info.st_size, info.st_mtime_ns)
    return stamps


def keep_channel_urls(prefix: Path, urls: Mapping[str, str], before: Mapping[str, tuple[int, int]]) -> None:
    """Records installed from conda's package cache keep their channel URL (conda reads the channel from it).

    ``urls``: record file name -> the channel URL; only those files the install wrote (their stamp is
    not ``before``'s) are read, so a 200 MB record of a package the change leaves is never parsed."""
    now = record_stamps(prefix)
    for name, url in sorted(urls.items()):
        path = prefix / "conda-meta" / name
        if not path.is_file() or name not in now or now[name] == before.get(name):
            continue
        record = _read_json(path)
        if url and record.get("url") != url:
            record["url"] = url
            _atomic_write(path, json.dumps(record, indent=2, sort_keys=True))
