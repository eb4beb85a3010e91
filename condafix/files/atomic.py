"""Replacing a user's file safely (``condafix env --write``): a backup beside it, the new content through
a temp file and a rename, the original's mode and owner kept; a full disk changes nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from condafix.errors import CondafixError, UsageError


def write_atomically(path: Path, content: str, *, backup: bool = True) -> Path | None:
    """Replace the file's content safely; return the backup's path.

    A symlink keeps being a link: the file it points to is written. The backup sits beside that
    file and is written to a temp file first, then renamed over the old ``.bak`` (a rename replaces a
    ``.bak`` symlink itself, never what it points to); if the disk is full the old ``.bak`` stays. The
    new content goes the same way, with the original's mode and owner.
    """
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise UsageError(f"{path}: cannot resolve the file to write ({exc})") from None
    info = real.stat()
    saved: Path | None = None
    if backup:
        saved = real.with_name(real.name + ".bak")
        _replace_with(saved, real.read_bytes(), info, "the backup")
    _replace_with(real, content.encode("utf-8"), info, "the new file")
    return saved


def _replace_with(dest: Path, data: bytes, info: os.stat_result, what: str) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, info.st_mode & 0o7777)
        if hasattr(os, "chown") and (os.stat(temp).st_uid, os.stat(temp).st_gid) != (info.st_uid, info.st_gid):
            try:
                os.chown(temp, info.st_uid, info.st_gid)
            except PermissionError:
                raise CondafixError(
                    summary=f"{dest}: cannot keep the file's owner {info.st_uid}:{info.st_gid} (run as that user); "
                    "nothing changed"
                ) from None
        os.replace(temp, dest)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise CondafixError(summary=f"could not write {what} {dest}: {exc.strerror or exc}; nothing changed") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
