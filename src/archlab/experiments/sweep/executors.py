"""Where the runs of a sweep execute: this machine's processes (LocalExecutor) or a Ray cluster (RayExecutor).

An executor takes `Task`s (one run each), runs `execute_run` for each somewhere, and hands back `Outcome`s as
they arrive. It never touches the results store: the driver (`archlab.experiments.sweep.driver.run_plans`) is its
single writer. A worker that dies (killed, out of memory, node lost) gives an outcome with `lost` set, which
the driver retries; a run that raises is an ordinary failed result (its traceback), recorded once.

- `InlineExecutor`: each run in this process, one at a time (tests, `archlab demo`).
- `PoolExecutor` (sweep/pool.py): `--jobs N` persistent spawned processes, each running many runs (the default
  for `--executor local`; start-up and data loading paid once per worker, not once per run).
- `LocalExecutor`: `--jobs N` spawned processes, a fresh one per run (`ARCHLAB_FRESH_PROCESS=1`).
- `RayExecutor`: one Ray task per run with its resource request (`num_cpus`, `num_gpus`), on a running
  cluster (`--ray-address` / `RAY_ADDRESS`) or on a local Ray instance started for the sweep. Ray is an
  optional extra, imported only here and only when asked for.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import socket
from collections.abc import Mapping
from multiprocessing.connection import wait as wait_for
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.spec.identity import code_hash
from archlab.experiments.sweep.executor_base import (  # noqa: F401  (re-exported: the executors' public names)
    Executor,
    Outcome,
    RunFn,
    Task,
    become_worker,
    execute_run,
    local_resources,
    start_sigint_blocked,
    versions,
)
from archlab.experiments.sweep.pool import PoolExecutor

RAY_INSTALL = "pip install 'archlab[ray]'"


class InlineExecutor(Executor):
    """Each run in this process, one at a time (a Ctrl-C interrupts the run itself)."""

    name = "inline"
    background = False

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads  # None: leave this process's torch thread count as it is
        self.queue: list[Task] = []

    def capacity(self) -> int:
        return 1

    def resources(self, profile: str, config: Mapping[str, Any]) -> tuple[float, float]:
        if self.threads:
            return float(self.threads), 0.0
        import torch

        return float(torch.get_num_threads()), 0.0

    def submit(self, task: Task) -> None:
        self.queue.append(task)

    def poll(self, timeout: float) -> list[Outcome]:
        if not self.queue:
            return []
        task = self.queue.pop(0)
        return [Outcome(task.key, execute_run(*task.args()))]

    def cancel(self) -> None:
        self.queue.clear()

    def describe(self) -> str:
        return "in this process"



def _child(conn, args: tuple, parent: int) -> None:
    """Entry point of a local worker process: run, send the result.

    It leaves the driver's process group, so a terminal's Ctrl-C reaches the driver only (which then stops its
    workers itself), and exits when the driver is gone (even after kill -9).
    """
    become_worker(parent)
    out = execute_run(*args)
    conn.send(out)
    conn.close()


class LocalExecutor(Executor):
    """`jobs` spawned processes on this machine, a fresh process per run (no state leaks between runs)."""

    name = "local"

    def __init__(self, jobs: int = 2) -> None:
        self.jobs = max(1, int(jobs))
        self.ctx = mp.get_context("spawn")
        self.running: dict[int, tuple[Any, Any]] = {}  # key -> (process, receiving end)

    def capacity(self) -> int:
        return self.jobs

    def resources(self, profile: str, config: Mapping[str, Any]) -> tuple[float, float]:
        return local_resources(self.jobs)

    def submit(self, task: Task) -> None:
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_child, args=(send, task.args(), os.getpid()),
                                name=f"archlab-run-{task.key}")
        start_sigint_blocked(proc)
        send.close()  # the child holds the only sending end: its death reads as EOF
        self.running[task.key] = (proc, recv)

    def poll(self, timeout: float) -> list[Outcome]:
        if not self.running:
            return []
        handles = [h for proc, recv in self.running.values() for h in (recv, proc.sentinel)]
        wait_for(handles, timeout)
        out = []
        for key, (proc, recv) in list(self.running.items()):
            result, lost = None, ""
            if recv.poll():
                try:
                    result = recv.recv()
                except (EOFError, OSError):
                    proc.join(5)
                    lost = f"worker process died (exit code {proc.exitcode})"
            elif not proc.is_alive():
                lost = f"worker process died (exit code {proc.exitcode})"
            else:
                continue
            proc.join(5)
            recv.close()
            del self.running[key]
            out.append(Outcome(key, result, lost))
        return out

    def cancel(self) -> None:
        for proc, _ in self.running.values():
            proc.kill()
        for proc, recv in self.running.values():
            proc.join(5)
            recv.close()
        self.running.clear()

    def describe(self) -> str:
        return f"{self.jobs} local process(es)"


class RayExecutor(Executor):
    """One Ray task per run, with its resource request, on a Ray cluster or a local Ray started for the sweep.

    Each task runs in a fresh worker process (`max_calls=1`, as the local pool does) and Ray does not retry it
    itself (`max_retries=0`): the driver sees a lost worker, counts the attempt and resubmits.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, jobs: int | None = None, cpus_per_run: float | None = None,
                 gpus_per_run: float | None = None) -> None:
        ray = import_ray()
        self.ray = ray
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.jobs = jobs
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.started = not ray.is_initialized()
        if self.started:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, configure_logging=False,
                         log_to_driver=False)
            except Exception as e:  # noqa: BLE001 - a wrong address is a user mistake: one line
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"--executor ray: cannot start or reach Ray at "
                                  f"{self.address or 'a local instance'}: {msg}") from None
        self.remote = ray.remote(max_calls=1, max_retries=0)(_ray_run)
        self.running: dict[Any, int] = {}  # object ref -> key

    def cluster(self) -> dict[str, float]:
        return dict(self.ray.cluster_resources())

    def resources(self, profile: str, config: Mapping[str, Any]) -> tuple[float, float]:
        """1 CPU per run unless --cpus-per-run; a GPU per run for the full profile when the cluster has GPUs
        (and the run's train.device is not 'cpu'), or --gpus-per-run."""
        cpus = float(self.cpus_per_run) if self.cpus_per_run else 1.0
        res = self.cluster()
        if self.gpus_per_run is not None:
            gpus = float(self.gpus_per_run)
        else:
            device = str((config.get("train") or {}).get("device", "auto"))
            gpus = 1.0 if profile == "full" and device != "cpu" and res.get("GPU", 0) > 0 else 0.0
        for name, want, flag in (("CPU", cpus, "--cpus-per-run"), ("GPU", gpus, "--gpus-per-run")):
            if want > res.get(name, 0):  # Ray would keep such a task pending for ever
                raise ConfigError(f"{flag} {want:g}: the Ray cluster has {res.get(name, 0):g} {name}s in all")
        return cpus, gpus

    def capacity(self) -> int:
        if self.jobs:
            return max(1, int(self.jobs))
        res = self.cluster()
        cpus = float(self.cpus_per_run or 1.0)
        n = int(res.get("CPU", 1) // cpus)
        if self.gpus_per_run:
            n = min(n, int(res.get("GPU", 0) // float(self.gpus_per_run)))
        return max(1, n)

    def submit(self, task: Task) -> None:
        # a run that asked for no GPU must not use one booked by another run
        ref = self.remote.options(num_cpus=task.num_cpus, num_gpus=task.num_gpus, name=f"archlab-run-{task.key}"
                                  ).remote(*task.args(), hide_gpus=not task.num_gpus)
        self.running[ref] = task.key

    def poll(self, timeout: float) -> list[Outcome]:
        if not self.running:
            return []
        refs = list(self.running)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        exc = self.ray.exceptions
        out = []
        for ref in ready:
            key = self.running.pop(ref)
            try:
                out.append(Outcome(key, _same_code(self.ray.get(ref))))
            except exc.RayTaskError as e:  # execute_run itself raised (it catches Exception): a failed run
                out.append(Outcome(key, {"ok": False, "error": str(e), "wall": 0.0}))
            except exc.RayError as e:  # worker crashed, node died, out of memory, object lost: retry
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                out.append(Outcome(key, lost=f"Ray worker lost ({type(e).__name__}: {first})"))
        return out

    def cancel(self) -> None:
        for ref in self.running:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        self.running.clear()

    def describe(self) -> str:
        res = self.cluster()
        where = f"Ray cluster at {self.address}" if self.address else "a local Ray instance"
        return (f"{where} ({res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, "
                f"{len(self.ray.nodes())} node(s)), up to {self.capacity()} runs at once")

    def close(self) -> None:
        self.cancel()
        if self.started:
            self.ray.shutdown()


def _ray_run(*args: Any, hide_gpus: bool = False) -> dict:
    """execute_run on a Ray worker, reporting the code hash of the archlab that worker runs."""
    return {**execute_run(*args, hide_gpus=hide_gpus), "code_hash": code_hash()}


def _same_code(res: dict) -> dict:
    """A run a worker executed with other archlab code than the driver's (whose hash is in its run key) is a
    failed run: its numbers would be recorded under a code hash that did not produce them."""
    theirs, ours = res.pop("code_hash", None), code_hash()
    if res.get("ok") and theirs and theirs != ours:
        return {"ok": False, "wall": res.get("wall", 0.0), "host": res.get("host"),
                "error": f"the Ray worker on {res.get('host')} runs archlab code {theirs}, the driver {ours}: install "
                         "the same archlab (the same source) on every node"}
    return res


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT address where nothing answers is one line now, not minutes of Ray retrying to connect."""
    m = re.fullmatch(r"([\w.\-]+):(\d+)", address or "")
    if not m:  # None (a local Ray), 'auto', 'ray://...': left to Ray
        return
    host, port = m.group(1), int(m.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"--ray-address {address}: no Ray head answers there ({e.strerror or e}); start one with "
                          f"`ray start --head --port={port}` on that machine") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        return
    # ray.init replaces a localhost address by this machine's own address (services.resolve_ip_for_localhost): a
    # head bound to 127.0.0.1 only (`ray start --node-ip-address=127.0.0.1`) is then never reached and ray.init
    # retries for ever
    try:
        from ray._private.services import get_node_ip_address

        mine = get_node_ip_address()
    except (ImportError, AttributeError, OSError):  # a Ray without this private helper: left to Ray
        return
    if mine and mine != host:
        try:
            socket.create_connection((mine, port), timeout=timeout).close()
        except OSError:
            raise ConfigError(f"--ray-address {address}: Ray connects to this machine's address {mine}:{port} "
                              f"instead of {host}, and no Ray head answers there; start the head on that address "
                              f"(`ray start --head --port={port}`, without --node-ip-address=127.0.0.1)") from None


def import_ray():
    """The ray module, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", *, jobs: int | None = None, ray_address: str | None = None,
                  cpus_per_run: float | None = None, gpus_per_run: float | None = None,
                  fresh_process: bool | None = None) -> Executor:
    """An executor by name: 'local' (`jobs` persistent worker processes, or a fresh process per run with
    `fresh_process` / ARCHLAB_FRESH_PROCESS=1; 0 = in this process) or 'ray'."""
    if kind == "local":
        if ray_address or cpus_per_run or gpus_per_run is not None:
            raise ConfigError("--ray-address, --cpus-per-run and --gpus-per-run need --executor ray")
        jobs = 2 if jobs is None else jobs
        if jobs <= 0:
            return InlineExecutor()
        fresh = fresh_process if fresh_process is not None else os.environ.get("ARCHLAB_FRESH_PROCESS") == "1"
        return LocalExecutor(jobs) if fresh else PoolExecutor(jobs)
    if kind == "ray":
        if jobs is not None and jobs <= 0:
            raise ConfigError(f"--jobs {jobs}: with --executor ray it must be at least 1 (or left out)")
        for flag, v in (("--cpus-per-run", cpus_per_run), ("--gpus-per-run", gpus_per_run)):
            if v is not None and not v >= 0:
                raise ConfigError(f"{flag} {v}: must be ≥ 0")
        if cpus_per_run is not None and cpus_per_run <= 0:
            raise ConfigError(f"--cpus-per-run {cpus_per_run}: must be > 0")
        return RayExecutor(ray_address, jobs=jobs, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    raise ConfigError(f"--executor {kind!r} is not allowed; expected one of {list(EXECUTORS)}")
