"""The sweep driver: run every pending plan on an executor and record each result as it arrives.

The driver is the single writer of the results store: executors (archlab.experiments.sweep.executors) only run
runs and hand back outcomes. A run is identified by its `run_key`, so a sweep resumes by skipping every run
already done and reuses a finished run with the same key (the same baseline in two experiments trains once).
A worker that dies mid-run is retried (`max_retries` times); a run that fails for its own reasons is recorded
as failed with its error, once. Ctrl-C records every run that has finished, marks the unfinished ones
`interrupted` and stops within a few seconds; a second Ctrl-C aborts at once.
"""
from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archlab.experiments.runs import RunFn
from archlab.experiments.spec import RunPlan
from archlab.experiments.sweep.executor_base import Executor, Outcome, Task
from archlab.experiments.sweep.store import Store

MAX_RETRIES = 2  # a run whose worker died is started at most 1 + MAX_RETRIES times


@dataclass
class Sweep:
    """What one call of run_plans did."""

    ran: int = 0
    reused: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0  # restarts of runs whose worker died
    interrupted: int = 0
    left: int = 0  # not started because the time limit (max_minutes) was reached: the next sweep runs them
    errors: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # experiment -> why its remaining runs were not started

    def add(self, other: Sweep) -> None:
        """Count another call's runs into this one (a sweep run in several passes)."""
        for k in ("ran", "reused", "skipped", "failed", "retried", "interrupted", "left"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.errors += other.errors
        self.refused.update(other.refused)

    def summary(self) -> str:
        left = f", {self.left} left for the next invocation (time limit)" if self.left else ""
        return (f"ran {self.ran}, reused {self.reused}, already done {self.skipped}, failed {self.failed}, "
                f"retried {self.retried} (worker lost; at most {MAX_RETRIES} retries per run){left}")


class Progress:
    """One progress bar for the sweep: done / running / failed / remaining, with tqdm's ETA."""

    def __init__(self, total: int, log: Callable[[str], None] | None, enabled: bool, file: Any = None) -> None:
        self.log = log or (lambda s: None)
        self.bar = None
        if enabled and log is not None and total:
            from tqdm.auto import tqdm

            # disable=None: no bar when stderr is not a terminal (a given file always gets one)
            bar = tqdm(total=total, desc="sweep", unit="run", dynamic_ncols=True, mininterval=0,
                       smoothing=0.1, file=file, disable=None if file is None else False)
            self.bar = None if bar.disable else bar  # not drawn: run lines go to the log, with their count

    def update(self, *, done: int, running: int, failed: int, remaining: int, finished: int = 0) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"done {done} · running {running} · failed {failed} · left {remaining}",
                                     refresh=False)
            self.bar.update(finished)

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        else:
            self.log(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _CtrlC:
    """First Ctrl-C sets a flag the driver checks between polls; the second raises KeyboardInterrupt at once."""

    def __init__(self, active: bool) -> None:
        self.hit = False
        self.active = active and threading.current_thread() is threading.main_thread()
        self.previous: Any = None

    def __enter__(self) -> _CtrlC:
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.previous)


def _reuse(store: Store, rid: int, prev: dict[str, Any]) -> None:
    store.finish_run(rid, {**store.result(prev["id"]), "n_params": prev.get("n_params")},
                     prev["wall_time_s"] or 0.0, json.loads(prev["versions_json"] or "{}"), reused_from=prev["id"],
                     host=prev.get("host"), attempts=0)


@dataclass(frozen=True)
class RunOptions:
    """How a sweep runs (not what: that is the specs): the same options for `archlab claims`, `archlab experiment`,
    calibrations and the demo's comparison."""

    profile: str = "quick"
    out_dir: str | Path = "runs/claims"
    steps: int | None = None  # a smoke run: every training run takes this many steps instead of its budget
    max_new_runs: int | None = None  # start at most this many runs (then stop: no follow-up passes)
    max_minutes: float | None = None  # start no run after this long; the rest stays pending for the next call
    progress: bool = False
    log: Callable[[str], None] | None = print
    run_fn: str | RunFn | None = None  # run every plan with this run function instead of its spec's runner
    max_retries: int = MAX_RETRIES


FirstRunCheck = Callable[[RunPlan, Mapping[str, Any]], str]


def run_plans(plans: list[RunPlan], store: Store, executor: Executor, options: RunOptions = RunOptions(),
              max_minutes: float | None = None, check: FirstRunCheck | None = None) -> Sweep:
    """Execute every plan not already done (resume) on `executor`, reusing finished runs with the same run key.

    No run is started after `max_minutes` (default options.max_minutes); the runs in progress finish, the rest
    stay pending (`Sweep.left`) and the next call with the same plans continues with them.
    `check(plan, final)` sees the final metrics of each experiment's first run finished in this call: a message
    (not '') stops that experiment's queued runs (`Sweep.refused`); those in flight finish and are recorded.
    Raises KeyboardInterrupt after recording what finished when the sweep is interrupted.
    """
    sweep = Sweep()
    todo = _pending(plans, store, options.profile, sweep)
    if options.max_new_runs is not None:
        todo = todo[:options.max_new_runs]
    if not todo:
        return sweep
    # two runs with the same key in this batch (e.g. a variant equal to the base) run once
    first_of: dict[str, int] = {}
    unique: list[tuple[int, RunPlan]] = []
    dupes: list[tuple[int, RunPlan]] = []
    for rid, plan in todo:
        (dupes if plan.run_key in first_of else unique).append((rid, plan))
        first_of.setdefault(plan.run_key, rid)
    minutes = options.max_minutes if max_minutes is None else max_minutes
    deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
    experiments_of: dict[str, set[str]] = {}
    for _, plan in todo:
        experiments_of.setdefault(plan.run_key, set()).add(plan.experiment)
    shared = {k for k, names in experiments_of.items() if len(names) > 1}  # never dropped: another needs it
    _Driver(unique, store, executor, root=Path(options.out_dir).resolve(), options=options, sweep=sweep,
            check=check, shared=shared).run(deadline)
    for rid, plan in dupes:
        prev = store.done_run_with_key(plan.run_key)
        if prev is not None:
            _reuse(store, rid, prev)
            sweep.reused += 1
    return sweep


def _pending(plans: list[RunPlan], store: Store, profile: str, sweep: Sweep) -> list[tuple[int, RunPlan]]:
    """Record every plan in the store; those neither done nor reusable from a finished run with the same key."""
    todo: list[tuple[int, RunPlan]] = []
    for plan in plans:
        rid = store.ensure_run(experiment=plan.experiment, spec_hash=plan.spec_hash, variant=plan.variant,
                               seed=plan.seed, run_key=plan.run_key, profile=profile, runner=str(plan.runner),
                               config=plan.config, budget=plan.budget, n_params=plan.n_params,
                               code_hash=plan.code_hash or None, lr=plan.lr)
        if store.run(rid)["status"] == "done":
            sweep.skipped += 1
            continue
        prev = store.done_run_with_key(plan.run_key)
        if prev is not None:  # the same run finished for another experiment (or an earlier spec version)
            _reuse(store, rid, prev)
            sweep.reused += 1
            continue
        todo.append((rid, plan))
    return todo


class _Driver:
    """One sweep's submission loop: the queue of runs, those in flight, their attempts and the progress bar."""

    def __init__(self, unique: list[tuple[int, RunPlan]], store: Store, executor: Executor, *, root: Path,
                 options: RunOptions, sweep: Sweep, check: FirstRunCheck | None = None,
                 shared: set[str] | None = None) -> None:
        self.store, self.executor, self.root, self.profile = store, executor, root, options.profile
        self.run_fn, self.sweep, self.log, self.max_retries = options.run_fn, sweep, options.log, options.max_retries
        self.plans = {rid: plan for rid, plan in unique}
        self.queue = [rid for rid, _ in unique]
        self.in_flight: dict[int, Task] = {}
        self.attempts: dict[int, int] = {}
        self.bar = Progress(len(unique), self.log, options.progress)
        self.check, self.checked, self.shared = check, set(), shared or set()
        self.total, self.started = len(unique), time.monotonic()

    def pace(self) -> str:
        """' [k/N, ~M min left]' after a run line when no progress bar shows it (output to a file or a pipe)."""
        if self.bar.bar is not None:
            return ""
        k = self.sweep.ran + self.sweep.failed
        left = (time.monotonic() - self.started) / max(k, 1) * (self.total - k) / 60
        return f" [{k}/{self.total}, ~{left:.0f} min left]" if k < self.total else f" [{k}/{self.total}]"

    def record(self, out: Outcome) -> int:
        """Store one outcome; the number of runs it finished (0 when its worker died and it is resubmitted)."""
        rid, plan, sweep, attempts = out.key, self.plans[out.key], self.sweep, self.attempts
        tag = f"  [{plan.experiment}] {plan.variant} seed={plan.seed}"
        if out.lost:
            if attempts[rid] <= self.max_retries:
                self.in_flight.pop(rid)
                sweep.retried += 1
                self.bar.write(f"{tag}: {out.lost}; retrying (attempt {attempts[rid] + 1} of {self.max_retries + 1})")
                self.queue.insert(0, rid)
                return 0
            res = {"ok": False, "error": f"{out.lost}, {attempts[rid]} times; not retried again", "wall": 0.0}
        else:
            res = out.result or {}
        if res.get("ok"):
            self.store.finish_run(rid, res["result"], res["wall"], res["versions"], host=res.get("host"),
                                  attempts=attempts[rid])
            sweep.ran += 1
            fin = res["result"].get("final", {})
            shown = ", ".join(f"{k}={v:.4g}" for k, v in list(fin.items())[:3] if isinstance(v, (int, float)))
            host = f" on {res['host']}" if res.get("host") and self.executor.name == "ray" else ""
            self.bar.write(f"{tag}: {shown} ({res['wall']:.1f}s{host}){self.pace()}")
            self.check_first(plan, fin)
        else:
            err = str(res.get("error", "error"))
            self.store.fail_run(rid, err, res.get("wall"), host=res.get("host"), attempts=attempts[rid])
            sweep.failed += 1
            last = err.strip().splitlines()[-1] if err.strip() else "error"
            sweep.errors.append(f"{plan.experiment}/{plan.variant}/seed{plan.seed}: {last}")
            self.bar.write(f"{tag}: FAILED: {last}{self.pace()}")
        self.in_flight.pop(rid)  # only once it is stored: an abort before leaves it to be marked interrupted
        return 1

    def check_first(self, plan: RunPlan, final: Mapping[str, Any]) -> None:
        """The first finished run of an experiment: when `check` refuses it, its queued runs are not started."""
        if self.check is None or plan.experiment in self.checked:
            return
        self.checked.add(plan.experiment)
        msg = self.check(plan, final)
        if not msg:
            return
        self.sweep.refused[plan.experiment] = msg
        keep = [r for r in self.queue if self.plans[r].experiment != plan.experiment or
                self.plans[r].run_key in self.shared]
        self.bar.write(f"{msg}; {len(self.queue) - len(keep)} queued run(s) of it not started")
        self.queue = keep

    def show(self, finished: int = 0) -> None:
        self.bar.update(done=self.sweep.ran, running=len(self.in_flight), failed=self.sweep.failed,
                        remaining=len(self.queue), finished=finished)

    def stop_starting(self) -> None:
        """The time limit is reached: what is queued stays pending for the next call."""
        self.sweep.left = len(self.queue)
        self.bar.write(f"time limit reached: {len(self.queue)} run(s) left pending, waiting for "
                       f"{len(self.in_flight)} in progress; run the same command again to continue")
        self.queue.clear()

    def submit(self) -> None:
        """Start queued runs while the executor has room."""
        cap = self.executor.capacity()
        while self.queue and len(self.in_flight) < cap:
            rid = self.queue.pop(0)
            plan = self.plans[rid]
            cpus, gpus = self.executor.resources(self.profile, plan.config)
            task = Task(rid, self.run_fn or plan.runner, plan.config, plan.seed, plan.budget,
                        str(self.root / "runs" / plan.run_key), cpus, gpus)
            self.attempts[rid] = self.attempts.get(rid, 0) + 1
            self.in_flight[rid] = task
            self.store.mark_running(rid, task.out_dir)
            self.executor.submit(task)

    def run(self, deadline: float | None) -> None:
        executor = self.executor
        with _CtrlC(executor.background) as ctrl_c:
            try:
                while (self.queue or self.in_flight) and not ctrl_c.hit:
                    if deadline is not None and self.queue and time.monotonic() >= deadline:
                        self.stop_starting()
                        if not self.in_flight:
                            break
                    self.submit()
                    self.show()
                    finished = sum(self.record(out) for out in executor.poll(0.5))
                    self.show(finished)
                if ctrl_c.hit:  # record what finished meanwhile, stop the rest
                    for out in executor.poll(0.0):
                        if not out.lost:
                            self.record(out)
                    raise KeyboardInterrupt
            except BaseException as e:  # Ctrl-C (or the driver failing): nothing is left 'running' in the store
                executor.cancel()
                self.store.mark_interrupted(self.in_flight)
                self.sweep.interrupted = len(self.in_flight)
                self.bar.close()
                if self.log and isinstance(e, KeyboardInterrupt):
                    self.log(f"interrupted: {self.sweep.ran} run(s) recorded, {self.sweep.interrupted} unfinished "
                             f"marked 'interrupted', {len(self.queue)} not started; the same command resumes the sweep")
                raise
            finally:
                self.bar.close()
