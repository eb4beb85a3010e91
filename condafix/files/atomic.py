"""Replacing a user's file safely (``condafix env --write``): a backup beside it, the new content through
a temp file and a rename, the original's mode and owner kept; a full disk changes nothing.

Compare-and-swap: the file must still hold the bytes condafix read when it planned (an edit saved
meanwhile is never reverted); and a backup never replaces a file already there (a user's own
``environment.yml.bak``, or an earlier backup): it takes the first free ``.bak``, ``.bak.1``, ... name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from condafix.errors import CondafixError, Hint, UsageError

MAX_BACKUPS = 100


class ChangedMeanwhile(CondafixError):
    """The file changed after condafix read it: nothing is written (exit 2)."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} changed after condafix read it (saved in an editor meanwhile?); nothing was written",
            (Hint(code="rerun", text="run the command again to plan against the file as it is now"),),
            2,
        )


def write_atomically(path: Path, content: str, *, backup: bool = True, expected: bytes | None = None) -> Path | None:
    """Replace the file's content safely; return the backup's path.

    A symlink keeps being a link: the file it points to is written. ``expected``: the bytes read when
    the change was planned; if the file holds anything else at write time nothing is written. The
    backup (those bytes) goes to the first free name beside the file, created exclusively, so no file
    is ever replaced by it; if the disk is full nothing is left behind. The new content goes through a
    temp file and a rename, with the original's mode and owner.
    """
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise UsageError(f"{path}: cannot resolve the file to write ({exc})") from None
    info = real.stat()
    current = real.read_bytes()
    if expected is not None and current != expected:
        raise ChangedMeanwhile(path)
    saved = _new_backup(real, current, info) if backup else None
    try:
        _replace_with(real, content.encode("utf-8"), info, "the new file", expected=current)
    except BaseException:
        if saved is not None:
            saved.unlink(missing_ok=True)
        raise
    return saved


def _new_backup(real: Path, data: bytes, info: os.stat_result) -> Path:
    """``data`` in the first free backup name (O_EXCL: an existing file or link there is never touched)."""
    for n in range(MAX_BACKUPS):
        candidate = real.with_name(f"{real.name}.bak" + (f".{n}" if n else ""))
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, info.st_mode & 0o7777)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _unwritten(candidate, exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            _keep_owner(candidate, info)
        except OSError as exc:
            candidate.unlink(missing_ok=True)
            raise _unwritten(candidate, exc) from None
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate
    raise CondafixError(
        f"{real}: {real.name}.bak and {MAX_BACKUPS - 1} numbered backups beside it exist already; nothing changed",
        (Hint(code="backups", text="move old backups away, or write with `-` to get the new file on stdout"),),
        2,
    )


def _unwritten(backup: Path, exc: OSError) -> CondafixError:
    return CondafixError(f"could not write the backup {backup}: {exc.strerror or exc}; nothing changed")


def _keep_owner(path: Path, info: os.stat_result) -> None:
    os.chmod(path, info.st_mode & 0o7777)
    if hasattr(os, "chown") and (os.stat(path).st_uid, os.stat(path).st_gid) != (info.st_uid, info.st_gid):
        try:
            os.chown(path, info.st_uid, info.st_gid)
        except PermissionError:
            raise CondafixError(
                f"{path}: cannot keep the file's owner {info.st_uid}:{info.st_gid} (run as that user); nothing changed"
            ) from None


def _replace_with(dest: Path, data: bytes, info: os.stat_result, what: str, *, expected: bytes) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        _keep_owner(Path(temp), info)
        with contextlib.suppress(FileNotFoundError):
            if dest.read_bytes() != expected:  # the last look before the rename: an edit saved meanwhile wins
                raise ChangedMeanwhile(dest)
        os.replace(temp, dest)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise CondafixError(summary=f"could not write {what} {dest}: {exc.strerror or exc}; nothing changed") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
