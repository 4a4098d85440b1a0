"""What every executor shares (archlab.experiments.sweep.executors re-exports it): `execute_run`, the body of one run
wherever it executes (timed, its error caught, versions and host reported); `Task`, one run to execute;
`Outcome`, what came back; and the `Executor` interface."""
from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.experiments.runs import RunFn, resolve_run_fn


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, Any]:
    """Versions that can change a result: archlab (and its git commit), torch, numpy, python."""
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for mod in ("archlab", "torch", "numpy"):
        try:  # from the installed metadata: reporting torch's version does not import torch
            out[mod] = importlib.metadata.version(mod)
        except importlib.metadata.PackageNotFoundError:  # a missing optional module is just not reported
            pass
    try:
        root = Path(__file__).resolve().parents[4]
        out["git"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout: the commit is not reported
        out["git"] = None
    return out


def execute_run(runner: str | RunFn, config: dict, seed: int, budget: dict, out_dir: str, threads: int,
                hide_gpus: bool = False) -> dict:
    """Body of one run, wherever it executes: time it, catch its error, report versions and host.

    `hide_gpus`: the run was given no GPU (a Ray task that asked for none) and must not use one.
    Returns plain data only: {"ok", "result" | "error", "wall", "versions", "host"}.
    """
    if hide_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # read when CUDA first initialises, which has not happened yet

    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))  # torch imported later by the run uses this many
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    host = socket.gethostname()
    try:
        fn = resolve_run_fn(runner)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        result = fn(config, seed, budget, out_dir)
        if not isinstance(result, Mapping) or "final" not in result:
            raise TypeError(f"run function {runner!r} must return a mapping with 'final' (and 'curve')")
        result = json.loads(json.dumps(result, default=float))  # only plain data crosses back
        return {"ok": True, "result": result, "wall": time.perf_counter() - t0, "versions": dict(versions()),
                "host": host}
    except Exception:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return {"ok": False, "error": traceback.format_exc(), "wall": time.perf_counter() - t0, "host": host}


@dataclass(frozen=True)
class Task:
    """One run to execute; `key` is its run id in the store."""

    key: int
    runner: str | RunFn
    config: dict
    seed: int
    budget: dict
    out_dir: str
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @property
    def threads(self) -> int:
        env = os.environ.get("ARCHLAB_THREADS")
        return int(env) if env else max(1, int(self.num_cpus))

    def args(self) -> tuple:
        return self.runner, self.config, self.seed, self.budget, self.out_dir, self.threads


@dataclass(frozen=True)
class Outcome:
    """What came back for a task: execute_run's dict, or `lost` = why its worker died (retry it)."""

    key: int
    result: dict | None = None
    lost: str = ""


class Executor:
    """Interface: submit tasks, poll outcomes, cancel the unfinished ones, close."""

    name = "executor"
    background = True  # runs execute outside the driver's main thread (Ctrl-C is handled between polls)

    def capacity(self) -> int:
        """How many runs may be in flight at once."""
        raise NotImplementedError

    def resources(self, profile: str, config: Mapping[str, Any]) -> tuple[float, float]:
        """(num_cpus, num_gpus) one run asks for."""
        raise NotImplementedError

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[Outcome]:
        """Outcomes that arrived (waiting at most `timeout` seconds for the first)."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop every unfinished run at once (their outcomes are never delivered)."""

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        self.cancel()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_sigint_blocked(proc) -> None:
    """Start a worker process with SIGINT blocked: a Ctrl-C while it boots (still in the driver's process group)
    must not kill it with a traceback; it leaves the group and ignores SIGINT before unblocking it."""
    masked = hasattr(signal, "pthread_sigmask")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masked else None
    try:
        proc.start()
    finally:
        if masked:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def local_resources(jobs: int) -> tuple[float, float]:
    """(CPUs, GPUs) of one run when `jobs` local runs share this machine: the cores split evenly, no GPU."""
    return float(max(1, (os.cpu_count() or 1) // jobs)), 0.0


def _exit_with(parent: int) -> None:
    """Exit (at once, without cleanup) when the driver process `parent` is gone, even after a kill -9."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def become_worker(parent: int) -> None:
    """Set up a local worker process: leave the driver's process group (a terminal's Ctrl-C reaches the driver
    only, which stops its workers itself), ignore SIGINT (blocked by the driver until now, see
    start_sigint_blocked), and exit when the driver is gone."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
