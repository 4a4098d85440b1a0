"""A pool of persistent local worker processes: each imports torch and archlab once and runs many runs.

`PoolExecutor(jobs)` is `--executor local`'s pool (archlab.experiments.sweep.executors.make_executor). A fresh
process per run (`LocalExecutor`) pays a process start, the imports and the data loading on every run — seconds
per run, most of a smoke run's time. A persistent worker pays them once; what a run builds from its data (a
corpus's token ids, an image set) stays cached in the worker for the next run that asks for the same data.

Isolation is kept where it matters:
* a worker that dies (killed, out of memory, a crash in a kernel) loses only the run it was executing; the
  driver sees a lost worker and retries that run (`Outcome.lost`), the other workers and their runs go on, and
  the next submission starts a fresh worker in its place;
* a run's numbers depend only on its run key: every run seeds every RNG itself (the trainer's seed_everything),
  and before each run the worker puts back what a run may change process-wide (torch's thread count, default
  dtype, grad mode, deterministic-algorithms flag), so a run gives bit-identical final metrics in a used worker
  and in a fresh process (tests/experiments/test_pool_executor.py);
* a worker is replaced after `max_runs` runs, which bounds what a leak in one run could pile up.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from typing import Any

from archlab.experiments.sweep.executor_base import (
    Executor,
    Outcome,
    Task,
    become_worker,
    execute_run,
    local_resources,
    start_sigint_blocked,
)

MAX_RUNS_PER_WORKER = 64


def _process_state() -> tuple:
    import torch

    return (torch.get_default_dtype(), torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled())


def _restore(state: tuple) -> None:
    """Put back the process-wide torch settings a previous run may have changed (threads are set per run)."""
    import torch

    dtype, grad, deterministic = state
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)


def _worker(conn, parent: int) -> None:
    """Entry point of a pool worker: receive a run's arguments, run it, send the result; None ends the loop.

    Like LocalExecutor's child it leaves the driver's process group (a terminal's Ctrl-C reaches the driver only,
    which stops its workers itself) and exits when the driver is gone."""
    become_worker(parent)
    state = _process_state()
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        if args is None:
            return
        _restore(state)
        conn.send(execute_run(*args))


@dataclass
class _Worker:
    proc: Any
    conn: Any
    key: int | None = None  # the run it is executing, or None when idle
    runs: int = 0
    started: float = field(default_factory=time.monotonic)


class PoolExecutor(Executor):
    """`jobs` persistent spawned processes on this machine; each runs many runs, one at a time."""

    name = "local"

    def __init__(self, jobs: int = 2, max_runs: int = MAX_RUNS_PER_WORKER) -> None:
        self.jobs = max(1, int(jobs))
        self.max_runs = max(1, int(max_runs))
        self.ctx = mp.get_context("spawn")
        self.workers: list[_Worker] = []
        self.started = 0  # worker processes started so far (a replaced or crashed worker counts again)

    def capacity(self) -> int:
        return self.jobs

    def resources(self, profile: str, config: Mapping[str, Any]) -> tuple[float, float]:
        return local_resources(self.jobs)

    def _start(self) -> _Worker:
        mine, theirs = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker, args=(theirs, os.getpid()), name="archlab-pool-worker", daemon=True)
        start_sigint_blocked(proc)
        theirs.close()  # the worker holds the only other end: its death reads as EOF
        worker = _Worker(proc, mine)
        self.workers.append(worker)
        self.started += 1
        return worker

    def submit(self, task: Task) -> None:
        worker = next((w for w in self.workers if w.key is None), None)
        if worker is None:
            if len(self.workers) >= self.jobs:
                raise RuntimeError(f"PoolExecutor: {self.jobs} runs already in flight")
            worker = self._start()
        worker.key = task.key
        try:
            worker.conn.send(task.args())
        except (BrokenPipeError, OSError):  # died while idle: its replacement takes the run
            self._drop(worker)
            self.submit(task)

    def _drop(self, worker: _Worker, kill: bool = False) -> None:
        if kill and worker.proc.is_alive():
            worker.proc.kill()
        worker.proc.join(5)
        worker.conn.close()
        self.workers.remove(worker)

    def poll(self, timeout: float) -> list[Outcome]:
        busy = [w for w in self.workers if w.key is not None]
        if not busy:
            return []
        wait_for([h for w in busy for h in (w.conn, w.proc.sentinel)], timeout)
        out = []
        for w in busy:
            result, lost = None, ""
            if w.conn.poll():
                try:
                    result = w.conn.recv()
                except (EOFError, OSError):
                    lost = "worker process died"
            elif not w.proc.is_alive():
                lost = "worker process died"
            else:
                continue
            key, w.key = w.key, None
            if lost:
                self._drop(w)
                lost = f"{lost} (exit code {w.proc.exitcode})"
            else:
                w.runs += 1
                if w.runs >= self.max_runs:
                    self._retire(w)
            out.append(Outcome(key, result, lost))
        return out

    def _retire(self, worker: _Worker) -> None:
        try:
            worker.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._drop(worker, kill=False)

    def cancel(self) -> None:
        """Kill the workers that are executing a run (their outcomes are never delivered); idle ones stay."""
        for w in [w for w in self.workers if w.key is not None]:
            self._drop(w, kill=True)

    def close(self) -> None:
        self.cancel()
        for w in list(self.workers):
            self._retire(w)

    def describe(self) -> str:
        return f"{self.jobs} local worker process(es), each running many runs"
