"""A training run's folder: writable before training starts, locked for the run's whole life.

`RunLock(out)` holds an OS file lock (`fcntl.flock`) on `OUT/run.lock` while a run trains. The OS releases
it on any exit (even kill -9), so a second `archlab train` / `--resume` on the same folder is refused at
once instead of mixing metrics and checkpoints. The lock file names the holder (pid, host, start time);
a file that names a holder while the lock itself is free was left by a process that died: it is taken over
with a one-line notice. Where `fcntl` is missing (Windows) the lock is skipped.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
from pathlib import Path

from archlab.errors import UserError
from archlab.fileio import make_temp_file
from archlab.train.checkpoint import notice

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = "run.lock"


class RunFolderError(UserError):
    """The run folder cannot be used: not writable, or in use by another run."""


class RunFinished(Exception):
    """`--resume` of a run that has nothing left to do (finished, or already at train.stop_at): the run is left
    exactly as it is; `archlab train` says so in one line and exits 0."""


def check_writable(out: str | Path, what: str = "--out") -> None:
    """Refuse, before any training, an output folder (or its checkpoints/ folder) that cannot be written.

    Walks up to the first existing ancestor: a file there, or a folder where nothing can be created, is an
    error naming it. Existing folders are probed by creating and removing a file (os.access is wrong for root
    and for read-only mounts).
    """
    out = Path(out)
    for target in (out, out / "checkpoints"):
        probe = target
        while not probe.exists():
            if probe.is_symlink():
                raise RunFolderError(f"{what} {str(out)!r}: {str(probe)!r} is a broken symbolic link")
            probe = probe.parent
        if not probe.is_dir():
            if probe == out:
                raise RunFolderError(f"{what} {str(out)!r} is a file, not a folder")
            raise RunFolderError(f"{what} {str(out)!r} cannot be created: {str(probe)!r} is a file, not a folder")
        try:
            make_temp_file(probe, ".archlab-write-test-").unlink()
        except OSError as e:
            raise RunFolderError(f"{what} {str(out)!r} is not writable: cannot create files in {str(probe)!r} "
                                 f"({e.strerror or e})") from None


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('started', '?')}"


class RunLock:
    """Context manager: exclusive lock on OUT/run.lock for the run's life (created with OUT if needed)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self.fd: int | None = None
        self.created_dir = False

    def _read(self) -> dict:
        try:
            text = os.pread(self.fd, 4096, 0).decode("utf-8", "replace").strip()
            info = json.loads(text) if text else {}
            return info if isinstance(info, dict) else {"holder": text[:80]}
        except (OSError, ValueError):
            return {"holder": "unreadable lock file"}

    def acquire(self) -> RunLock:
        self.created_dir = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = self._read()
            os.close(self.fd)
            self.fd = None
            raise RunFolderError(f"run folder {str(self.out)!r} is in use by another archlab run "
                                 f"({_describe(info)}); wait for it to finish or choose another --out") from None
        stale = self._read()
        if stale:
            notice(f"taking over the stale lock of {str(self.out)!r} (left by {_describe(stale)}, "
                   "which is no longer running)")
        data = json.dumps(_holder()).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data + b"\n", 0)
        os.fsync(self.fd)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # an empty lock file: nobody holds it (a clean exit leaves no "stale" lock)
            if self.created_dir and [p.name for p in self.out.iterdir()] == [LOCK_FILE]:
                self.path.unlink()  # a run that failed before writing anything leaves no folder behind
                self.out.rmdir()
        except OSError:
            pass
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# Files a run writes into its folder that belong to that run only (a new run must not inherit them).
RUN_OUTPUTS = ("metrics.jsonl", "loss.png", "final_metrics.json")


def start_fresh(out: str | Path) -> None:
    """Remove what an earlier run that died before its first checkpoint left: metrics, plot, TensorBoard
    events, half-written checkpoints. Called (under the lock) only when the folder holds no checkpoint."""
    out = Path(out)
    for name in RUN_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "tensorboard", ignore_errors=True)
    for p in (out / "checkpoints").glob(".tmp-step_*"):
        shutil.rmtree(p, ignore_errors=True)


def set_aside_damaged(skipped: list[tuple[Path, str]]) -> None:
    """Rename incomplete checkpoints that a resume skipped to `.damaged-step_N` (kept for inspection, but no
    longer a step_* dir: never again taken as the newest, never pruned in place of a good one)."""
    for p, _why in skipped:
        dest = p.with_name(f".damaged-{p.name}")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(p, dest)
        notice(f"moved the incomplete checkpoint {p.name} aside to {str(dest)!r}")
