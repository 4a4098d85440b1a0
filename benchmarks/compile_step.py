"""Does torch.compile pay for a claim's training runs? CPU time per step and fixed cost, eager vs compiled.

    nice .venv/bin/python benchmarks/compile_step.py SPEC.yaml [SHORT LONG]   (default 20 80 steps)

The spec's first standard-profile run is trained twice per mode (short and long, one torch thread, no evaluation);
per-step CPU time = the difference / the step difference, fixed cost = the rest (model build, and for compiled
runs the compilation: cold the first time, then mostly read from inductor's on-disk cache — every claims run is a
fresh process, so what matters is the warm number). CPU time includes waited-for child processes (inductor's
compiler calls). Each mode is measured twice, interleaved, because a shared machine is noisy.

Measured on the shared 2-core CPU machine (2026-11-29, torch 2.13, heavily loaded):
  mamba_selective (mamba-tiny d64, 2 layers, selective copy T=32, batch 64): eager 98-147 ms/step, compiled
    20-76 ms/step; first compile ≈ 50 s CPU (≈ 100 s wall), later runs 0.3-4.6 s fixed  → pays (≥ 1.4×)
  no_residual (char-gpt d64, 4 layers, block 64, batch 16): eager 33 ms/step, compiled 28 ms/step; first
    compile ≈ 30 s CPU (≈ 85 s wall)  → does not pay at the standard budgets
  mamba_selective_induction (mixer-mamba-tiny d32, 2 layers, induction T=32): 60 steps 9.8 s wall eager vs 5.9 s
    compiled (warm), ≈ 40 vs 24 ms/step CPU; first compile ≈ 61 s CPU (135 s wall) per distinct graph
    → pays for the Mamba specs' 1000-step runs over several seeds and lrs once inductor's cache is warm
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def cpu_and_wall(cfg: dict, steps: int, compile_: bool) -> tuple[float, float]:
    from archlab.experiments.runs.builtin import trainer_run

    cfg = json.loads(json.dumps(cfg))
    cfg.setdefault("train", {}).update(compile=compile_, eval_every=0, threads=1, steps=steps)
    with tempfile.TemporaryDirectory() as d:
        w0, c0, ch0 = time.perf_counter(), time.process_time(), os.times()
        trainer_run(cfg, 0, {"steps": steps}, d)
        ch1 = os.times()
        child = ch1.children_user - ch0.children_user + ch1.children_system - ch0.children_system
        return time.process_time() - c0 + child, time.perf_counter() - w0


def main() -> None:
    import torch

    from archlab.experiments.spec import load_spec, resolve

    torch.set_num_threads(1)
    spec = load_spec(sys.argv[1])
    short, long = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (20, 80)
    plan = resolve(spec, "standard")[0]
    for comp in (False, True, False, True):
        (ca, wa), (cb, wb) = cpu_and_wall(plan.config, short, comp), cpu_and_wall(plan.config, long, comp)
        per = (cb - ca) / (long - short)
        print(f"{spec.name} compile={comp}: cpu {per * 1000:.1f} ms/step, fixed {ca - per * short:.1f} s "
              f"(wall {wa:.1f} s / {wb:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
