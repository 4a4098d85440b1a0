"""Threads on a CPU: train-step and evaluation time of the shipped configs with 1 thread vs every core,
on an idle machine and with every core already busy (one busy-loop process per core).

    nice python benchmarks/threads.py [--steps 4] [--eval-batches 2] [--configs NAME ...] [--threads-max N]

For each config (configs/*.yaml, the task built at its own settings, batch size as configured), it times
`--steps` optimiser steps (after one warm-up step) and one evaluation pass of `--eval-batches` batches, under
four conditions: {1 thread, all cores} × {idle, busy}. "busy" starts one `while True: pass` process per core
(what other jobs on a shared machine look like). Prints ms per step and per evaluation, and the ratio
all-cores / 1-thread under each load (> 1: more threads were slower). On a shared machine every figure is noisy;
compare the ratios measured side by side, not the absolute times.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _spin() -> None:
    while True:
        pass


class Busy:
    """One busy-loop process per core while open."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self):
        ctx = mp.get_context("spawn")
        self.procs = [ctx.Process(target=_spin, daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join()


def build(name: str, eval_batches: int):
    """(task, model, optimizer, train config) for a shipped config."""
    from archlab.train import build_run, load_run_config
    from archlab.train.optim import build_optimizer

    cfg = load_run_config(ROOT / "configs" / f"{name}.yaml", [f"train.eval_batches={eval_batches}"])
    task, _, model = build_run(cfg)
    return task, model, build_optimizer(model, cfg.train, torch.device("cpu")), cfg.train


def time_train(task, model, opt, steps: int) -> float:
    """Seconds per optimiser step (after one warm-up step)."""
    model.train()
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss, _ = task.loss(model, task.train_batch(i))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / steps


def time_eval(task, model) -> float:
    """Seconds for one evaluation pass (the batches built beforehand where the task caches them)."""
    model.eval()
    with torch.no_grad():
        list(task.eval_batches("val"))  # build (and cache) the batches outside the timing
        t0 = time.perf_counter()
        task.evaluate(model, "val")
    return time.perf_counter() - t0


def measure(name: str, args, cores: int) -> dict:
    task, model, opt, _ = build(name, args.eval_batches)
    row = {"config": name, "params": sum(p.numel() for p in model.parameters())}
    for load in ("idle", "busy"):
        with Busy(cores if load == "busy" else 0):
            for threads in (1, cores):
                torch.set_num_threads(threads)
                row[f"train_{load}_{threads}"] = time_train(task, model, opt, args.steps)
                row[f"eval_{load}_{threads}"] = time_eval(task, model)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--eval-batches", type=int, default=2)
    ap.add_argument("--threads-max", type=int, default=os.cpu_count() or 1, help="'all cores' (default: cpu count)")
    ap.add_argument("--configs", nargs="+", default=sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))
    args = ap.parse_args()
    cores = args.threads_max
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cores} cores; load average {load:.1f} at the start; {args.steps} timed steps, "
          f"{args.eval_batches} eval batches", flush=True)
    head = (f"| config | params | train ms/step idle 1 / {cores} thr | busy 1 / {cores} thr | "
            f"eval ms idle 1 / {cores} thr | busy 1 / {cores} thr | {cores} thr ÷ 1 thr (train idle, busy) |")
    rows = []
    for name in args.configs:
        r = measure(name, args, cores)
        rows.append(r)
        print(_line(r, cores), flush=True)
    print("\n" + head + "\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(_line(r, cores))


def _line(r: dict, c: int) -> str:
    ms = {k: v * 1000 for k, v in r.items() if k.startswith(("train_", "eval_"))}
    return (f"| {r['config']} | {r['params']:,} | {ms['train_idle_1']:.0f} / {ms[f'train_idle_{c}']:.0f} | "
            f"{ms['train_busy_1']:.0f} / {ms[f'train_busy_{c}']:.0f} | {ms['eval_idle_1']:.0f} / "
            f"{ms[f'eval_idle_{c}']:.0f} | {ms['eval_busy_1']:.0f} / {ms[f'eval_busy_{c}']:.0f} | "
            f"{r[f'train_idle_{c}'] / r['train_idle_1']:.2f}×, {r[f'train_busy_{c}'] / r['train_busy_1']:.2f}× |")


if __name__ == "__main__":
    main()
