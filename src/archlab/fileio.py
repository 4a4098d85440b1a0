"""Atomic file writes, shared by every module that saves something the user keeps; the strict YAML loader.

A file is written in a temporary folder beside its target named after the target and the writer's pid
(`.<name>.tmp-<pid>/`), flushed to disk, renamed over the target (atomic on one filesystem) and the
directory entry is flushed too: a crash at any moment leaves either the old file or the new one, never a
torn file, and the next write to the same target removes what a killed writer left behind. Temporary
files and folders are created with the default permissions (0666 / 0777 less the umask), like any file the
user writes, so what is renamed into place is readable by whoever the umask allows (not 0600/0700 as
`tempfile` would make it).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


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


# ----------------------------------------------------------------------------- temporaries named per target
# A write to `dir/name` goes through the folder `dir/.name.tmp-<pid>/` (`.tmp-<pid>.<k>` for a second write
# from the same process at once). The name says which target and which process a temporary belongs to, so
# the next write to the same target removes what a killed writer (kill -9, power loss) left behind: every
# temporary of that target whose process is gone, and none of a writer that is still running.
_TEMP_RE = r"\.tmp-(\d+)(?:\.\d+)?"
_LEGACY_RE = r"\.[0-9a-f]{8}\.tmp"  # what atomic_write named its temporaries before (random, no pid)
_active: set[str] = set()  # this process's temporaries being written now
_active_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's process) or cannot tell: keep its files
    return True


def temp_path_for(target: str | os.PathLike) -> Path:
    """The temporary name a write to `target` uses: `.<name>.tmp-<pid>` beside it (claimed, not created)."""
    target = Path(target)
    base = f".{target.name}.tmp-{os.getpid()}"
    with _active_lock:
        k = 0
        while True:
            tmp = target.parent / (base if k == 0 else f"{base}.{k}")
            if str(tmp) not in _active:
                _active.add(str(tmp))
                return tmp
            k += 1


def release_temp(tmp: str | os.PathLike) -> None:
    """Forget a temporary claimed by `temp_path_for` (after it was renamed into place or removed)."""
    with _active_lock:
        _active.discard(str(tmp))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries an interrupted write to `target` left beside it; returns what was removed.

    A temporary is stale when its process no longer runs, or it carries this process's id but no write of
    this process uses it (a pid reused after a crash). Temporaries of live writers are left alone."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{target.name}") + f"(?:{_TEMP_RE}|{_LEGACY_RE})")
    removed = []
    with _active_lock:
        active = set(_active)
    for p in target.parent.iterdir():
        m = pattern.fullmatch(p.name)
        if not m:
            continue
        if m.group(1) is not None:
            pid = int(m.group(1))
            if str(p) in active or (pid != os.getpid() and _pid_alive(pid)):
                continue
        _remove(p)
        removed.append(p)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Create `path` atomically: `write(tmp)` fills a file in a temporary folder beside it, then it is renamed.

    The folder is `.<name>.tmp-<pid>` and the file in it has the target's name, so whatever `write` itself
    creates next to its file (safetensors writes through its own `.tmpXXXXXX`) lives in that folder too.
    Temporaries that an interrupted earlier write to `path` left are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = temp_path_for(path)
    try:
        remove_stale_temps(path)
        _remove(tmp_dir)  # not a live write (claimed above): a leftover of a dead process that had our pid
        tmp_dir.mkdir()
        tmp = tmp_dir / path.name
        try:
            write(str(tmp))
            honour_umask(tmp)  # whatever `write` did (safetensors re-creates files 0600)
            fsync_file(tmp)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    finally:
        release_temp(tmp_dir)
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- YAML
class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last one silently).

    Keys brought in by a merge (`<<: *base`) may be overridden; only keys written twice in one mapping fail."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r} (first on line {first.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """yaml.safe_load, except that a key given twice in one mapping raises a yaml.YAMLError naming it and its line."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
