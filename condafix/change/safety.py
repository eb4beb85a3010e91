"""Paths that stay inside the prefix, atomic writes that never follow a symlink, and no credential on disk.

Every path read from a record, snapshot or manifest goes through :func:`safe_path`; every file
condafix writes goes through :func:`atomic_write` (temp file + rename) and :func:`scrub`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from condafix.env import condameta
from condafix.errors import CondafixError, Hint

Step = Callable[[str], None]


class ApplyError(CondafixError):
    """The change (or rollback) failed; the message says what state the env is in. Exit code 4."""

    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 4)


class Refused(CondafixError):
    """condafix will not start: a conflicting pin, later changes, an unsafe path. Nothing changed; exit 2."""

    def __init__(self, summary: str, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(summary, hints, 2)


def state_dir(prefix: Path) -> Path:
    return prefix / "conda-meta" / "condafix"


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def safe_path(root: Path, rel: object, origin: str) -> Path:
    """``root / rel`` when it stays inside root (no ``..``, not absolute, no symlinked dir on the way)."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise Refused(f"{origin}: invalid path {rel!r}; nothing was changed")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise Refused(f"{origin}: path {rel!r} is outside {root}; nothing was changed")
    path = root / pure
    with contextlib.suppress(OSError):
        if not path.parent.resolve().is_relative_to(root.resolve()):
            raise Refused(f"{origin}: path {rel!r} leads outside {root} through a symlink; nothing was changed")
    return path


def check_state_dir(prefix: Path) -> None:
    """conda-meta and condafix's own folders must be real directories of this prefix."""
    for path in (prefix / "conda-meta", state_dir(prefix), state_dir(prefix) / "snapshots"):
        if path.is_symlink():
            raise Refused(f"{path} is a symlink; condafix will not write through it (nothing was changed)")


def _check_records(prefix: Path, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
    for origin, record in records:
        for rel in _record_files(record):
            safe_path(prefix, rel, origin)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply to be condafix's or conda's
        return {}
    return data if isinstance(data, dict) else {}


def read_state_json(path: Path, what: str) -> dict[str, Any]:
    """condafix's own state file (journal, a snapshot's meta): {} when absent, one clear refusal when damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Refused(f"{path}: {what} cannot be read ({exc}); nothing was changed") from None
    try:
        data = json.loads(text)
    except RecursionError:
        data = None
        why = "nested too deeply"
    except ValueError as exc:
        data = None
        why = f"not JSON: {str(exc).splitlines()[0]}"
    else:
        why = "not a JSON object"
    if not isinstance(data, dict):
        raise Refused(
            f"{path}: {what} is damaged ({why}); nothing was changed",
            (Hint(code="damaged", text="move the file aside (condafix then treats it as absent)"),),
        )
    return data


def _atomic_write(path: Path, text: str) -> None:
    """Temp file + rename (mode kept) so a crash or a full disk never leaves half a file."""
    if path.is_symlink():
        raise Refused(f"{path} is a symlink; condafix will not write through it")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: object) -> None:
    """Atomic JSON with no credential in it: URLs lose theirs, anything else credential-like is redacted."""
    from condafix.redact import redact_json

    _atomic_write(path, json.dumps(redact_json(scrub(data)), indent=2, sort_keys=True))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub(data: Any) -> Any:
    """Every URL inside strings, lists and dicts without its credentials (what goes to disk)."""
    from condafix.env.condarc import strip_credentials

    if isinstance(data, str):
        return _URL_IN_TEXT.sub(lambda m: strip_credentials(m.group(0)), data) if "://" in data else data
    if isinstance(data, list | tuple):
        return [scrub(v) for v in data]
    if isinstance(data, dict):
        return {k: scrub(v) for k, v in data.items()}
    return data


def scrub_records(prefix: Path, names: Iterable[str] | None = None) -> None:
    """Strip credentials from the ``url``/``channel`` of records the installer just wrote."""
    for path in condameta.record_paths(prefix):
        if names is not None and path.name not in names:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "@" not in text and "/t/" not in text and "token" not in text.lower():
            continue
        record = _read_json(path)
        clean = {k: scrub(v) if k in ("url", "channel", "link", "requested_spec", "requested_specs") else v
                 for k, v in record.items()}  # fmt: skip
        if clean != record:
            _atomic_write(path, json.dumps(clean, indent=2, sort_keys=True))


def _record_files(record: dict[str, Any]) -> list[str]:
    paths = record.get("paths_data", {}).get("paths") if isinstance(record.get("paths_data"), dict) else None
    if isinstance(paths, list):
        return [p["_path"] for p in paths if isinstance(p, dict) and "_path" in p]
    files = record.get("files")
    return list(files) if isinstance(files, list) else []


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _copy_atomic(source: Path, target: Path) -> None:
    """A record put back whole or not at all: a kill mid-copy must not leave a truncated record."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _prune_dirs(prefix: Path, rels: Sequence[str]) -> None:
    """Remove folders our deletions emptied, never the prefix itself or anything above it."""
    top = prefix.resolve()
    parents = sorted({(prefix / r).parent for r in rels}, key=lambda p: len(p.parts), reverse=True)
    for parent in parents:
        while parent != prefix and parent.is_dir() and parent.resolve().is_relative_to(top) and parent.resolve() != top:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# ---------------------------------------------------------------- changes under the prefix, symlinks never followed
#
# A user who can write the env can swap a folder for a symlink while a rollback runs; a path checked
# with resolve() and then used is a race. So every removal and replacement walks from the root one
# folder at a time (O_NOFOLLOW|O_DIRECTORY) and acts on the last name through its folder's fd.

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _parts(rel: str, origin: str) -> tuple[str, ...]:
    pure = PurePosixPath(rel)
    if not rel or "\0" in rel or pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise Refused(f"{origin}: path {rel!r} is outside the prefix")
    return pure.parts


class _NotInside(Refused):
    """A folder on the way is a symlink (or not a folder): condafix does not follow it."""


def _open_dir(root: Path, parts: Sequence[str], origin: str, *, create: bool) -> int:
    """An fd of ``root/parts...``, each folder opened without following a symlink (``create``: mkdir on the way)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _NotInside(
                        f"{origin}: {part!r} on the way is a symlink or not a folder; condafix does not follow it"
                    ) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlink_at(root: Path, rel: str, origin: str) -> bool:
    """Remove the file or link ``root/rel`` (never a folder, never through a symlink); False when absent."""
    parts = _parts(rel, origin)
    try:
        fd = _open_dir(root, parts[:-1], origin, create=False)
    except FileNotFoundError:
        return False
    try:
        os.unlink(parts[-1], dir_fd=fd)
        return True
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        return False  # a folder where a file was: not condafix's to delete
    except PermissionError as exc:  # Linux answers EISDIR/EPERM for a folder
        if _is_dir_at(fd, parts[-1]):
            return False
        raise exc from None
    finally:
        os.close(fd)


def _is_dir_at(fd: int, name: str) -> bool:
    import stat

    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def place_at(source_root: Path, source_rel: str, root: Path, rel: str, origin: str, *, link: bool = True) -> None:
    """Put a copy (or, with ``link``, a hard link) of ``source_root/source_rel`` at ``root/rel`` atomically.

    Both sides are walked without following symlinks; the new entry replaces the old with one
    rename inside the target folder (a symlink there is replaced, never written through)."""
    import stat

    sparts, parts = _parts(source_rel, origin), _parts(rel, origin)
    sfd = _open_dir(source_root, sparts[:-1], origin, create=False)
    try:
        info = os.stat(sparts[-1], dir_fd=sfd, follow_symlinks=False)  # no source: nothing is touched
        fd = _open_dir(root, parts[:-1], origin, create=True)
        try:
            temp = temp_name(parts[-1])  # one name, not per process: a resumed restore clears a killed one's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=fd)
            with contextlib.suppress(OSError):
                there = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                if (there.st_dev, there.st_ino) == (info.st_dev, info.st_ino):
                    return  # the very file already (rename() of two links to one inode does nothing)
            try:
                if stat.S_ISLNK(info.st_mode):
                    os.symlink(os.readlink(sparts[-1], dir_fd=sfd), temp, dir_fd=fd)
                elif stat.S_ISREG(info.st_mode):
                    _link_or_copy_at(sfd, sparts[-1], fd, temp, info.st_mode, link=link)
                else:
                    raise Refused(f"{origin}: {source_rel!r} is not a file or a link")
                os.rename(temp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=fd)
                raise
        finally:
            os.close(fd)
    finally:
        os.close(sfd)


def temp_name(name: str) -> str:
    """Where ``place_at`` writes before its rename, beside the target."""
    return f".{name}.condafix-tmp"


def _link_or_copy_at(sfd: int, sname: str, fd: int, name: str, mode: int, *, link: bool) -> None:
    if link:
        try:
            os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=fd, follow_symlinks=False)
            return
        except OSError:
            pass
    src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=sfd)
    try:
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o7777, dir_fd=fd)
        try:
            while block := os.read(src, 1 << 20):
                os.write(dst, block)
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def prune_at(root: Path, rels: Sequence[str], origin: str) -> None:
    """Remove folders our deletions emptied (deepest first), never ``root`` itself, never through a symlink."""
    folders: set[tuple[str, ...]] = set()
    for rel in rels:
        with contextlib.suppress(Refused):
            parts = _parts(rel, origin)[:-1]
            folders |= {parts[:n] for n in range(1, len(parts) + 1)}
    for parts in sorted(folders, key=len, reverse=True):
        try:
            fd = _open_dir(root, parts[:-1], origin, create=False)
        except (OSError, Refused):
            continue
        try:
            os.rmdir(parts[-1], dir_fd=fd)
        except OSError:
            pass
        finally:
            os.close(fd)
