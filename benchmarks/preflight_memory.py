"""The preflight memory estimate (archlab.train.preflight) against the measured memory of a training step.

Each shape runs in a fresh process: build the char-llama task, estimate, then build the model and AdamW
and run two training steps; "measured" is the growth of peak RSS (ru_maxrss) over the RSS before the
model was built. CPU, fp32, one thread. Run: PYTHONPATH=src python benchmarks/preflight_memory.py
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

SHAPES = [(1024, 4, 12, 64), (2048, 2, 12, 64), (512, 4, 64, 64), (256, 4, 16, 256), (128, 2, 8, 1024)]
CONFIG = "configs/shakespeare_char_llama.yaml"


def measure(d: int, layers: int, batch: int, T: int) -> dict:
    import torch

    from archlab.models import build_model
    from archlab.tasks import build_task
    from archlab.train import load_run_config
    from archlab.train.optim import build_optimizer
    from archlab.train.preflight import estimate_training_memory, task_seq_len

    torch.set_num_threads(1)
    cfg = load_run_config(CONFIG, [f"model.max_seq_len={T}", f"model.d_model={d}", f"model.n_layers={layers}",
                                   f"train.batch_size={batch}"])
    task = build_task(cfg)
    model_cfg = cfg.model_config(task.model_overrides())
    est = estimate_training_memory(model_cfg, batch, task_seq_len(task))
    before = max(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE"),
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    model = build_model(model_cfg)
    opt = build_optimizer(model, cfg.train, torch.device("cpu"))
    for step in range(2):
        loss, _ = task.loss(model, task.train_batch(step))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"d_model": d, "n_layers": layers, "batch": batch, "T": T, "params": est.params,
            "estimate_gib": est.total / 2**30, "measured_gib": (peak - before) / 2**30}


def main() -> None:
    if len(sys.argv) == 5:
        print(json.dumps(measure(*map(int, sys.argv[1:]))))
        return
    print(f"{'d_model':>7} {'layers':>6} {'batch':>5} {'T':>5} {'params':>11} {'estimate':>9} {'measured':>9} "
          f"{'ratio':>6}")
    for shape in SHAPES:
        out = subprocess.run([sys.executable, __file__, *map(str, shape)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['d_model']:>7} {r['n_layers']:>6} {r['batch']:>5} {r['T']:>5} {r['params']:>11,} "
              f"{r['estimate_gib']:>7.3f}Gi {r['measured_gib']:>7.3f}Gi {r['estimate_gib'] / r['measured_gib']:>6.2f}")


if __name__ == "__main__":
    main()
