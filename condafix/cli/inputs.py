"""Checks of what a user typed that the command layer makes before anything runs (one line, exit 2)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from condafix.errors import UsageError


def check_channels(channels: Sequence[str]) -> None:
    """A ``-c`` URL whose port or host name no client can use is one clear line (exit 2) before any
    solver sees it (rattler would raise an internal error)."""
    from urllib.parse import urlsplit

    for channel in channels:
        if "://" not in channel:
            continue  # a channel name: conda's channel_alias makes the URL
        try:
            parts = urlsplit(channel)  # raises ValueError for a broken IPv6 host (`http://[::1/chan`)
            parts.port  # noqa: B018  (raises ValueError for a port out of range)
            host = parts.hostname or ""
            if (host and not host.replace(".", "").isascii()) or any(
                label.lower().startswith("xn--") for label in host.split(".")
            ):
                host.encode("idna").decode("idna")
        except (ValueError, UnicodeError) as exc:
            raise UsageError(f"-c {_redacted(channel)}: not a usable channel URL ({exc})") from None


def _redacted(url: str) -> str:
    from condafix.env.condarc import strip_credentials

    return strip_credentials(url)


def read_text(text: str | None, file: Path | None) -> str:
    """explain's input: TEXT, -f FILE (- for stdin) or a pipe; never a wait on a terminal."""
    if text is not None and file is not None:
        raise UsageError("pass the error as TEXT or with -f FILE, not both")
    if file is not None:
        if str(file) == "-":
            return sys.stdin.read()
        try:
            return file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    if text is not None:
        return text
    if sys.stdin.isatty():
        raise UsageError("no error text given (pass TEXT, -f FILE, or pipe it on stdin)")
    return sys.stdin.read()
