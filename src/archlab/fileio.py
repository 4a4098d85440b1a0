"""Atomic file writes, shared by every module that saves something the user keeps.

A file is written to a temporary name in its own directory, flushed to disk, renamed over the
target (atomic on one filesystem) and the directory entry is flushed too: a crash at any moment
leaves either the old file or the new one, never a torn file. Temporary files and folders are created
with the default permissions (0666 / 0777 less the umask), like any file the user writes, so what is
renamed into place is readable by whoever the umask allows (not 0600/0700 as `tempfile` would make it).
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (rename durability) where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush one file's contents to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def current_umask() -> int:
    """The process's umask (read from /proc where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def honour_umask(path: str | os.PathLike) -> None:
    """Give a file that a library created with fixed permissions (safetensors writes 0600) the default mode."""
    os.chmod(path, 0o666 & ~current_umask())


def _temp_name(parent: Path, prefix: str, suffix: str = "") -> Path:
    return parent / f"{prefix}{secrets.token_hex(4)}{suffix}"


def make_temp_file(parent: str | os.PathLike, prefix: str, suffix: str = ".tmp") -> Path:
    """Create a new empty file with a unique name in `parent`, mode 0666 less the umask (as `open` would)."""
    parent = Path(parent)
    while True:
        tmp = _temp_name(parent, prefix, suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """Create a new empty folder with a unique name in `parent`, mode 0777 less the umask (as `mkdir` would)."""
    parent = Path(parent)
    while True:
        tmp = _temp_name(parent, prefix)
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Create `path` atomically: `write(tmp)` fills a temporary file beside it, which is fsynced and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(make_temp_file(path.parent, f".{path.name}."))
    try:
        write(tmp)
        honour_umask(tmp)  # whatever `write` did (safetensors re-creates files 0600)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
