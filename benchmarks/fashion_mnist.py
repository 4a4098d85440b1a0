"""Fashion-MNIST benchmark: plain CNN (target ≥ 91% test accuracy within 10 minutes on 2 CPU cores), then
ResNet-small and MobileNet-small, all through the shared trainer (archlab.train) and configs/fashion_mnist.yaml.

    nice python benchmarks/fashion_mnist.py                       # all three, default budgets
    nice python benchmarks/fashion_mnist.py --models cnn-small --set train.steps=1300

Prints, per model: parameters, steps, epochs, wall time (data loading + training + evaluation), training time,
test accuracy, and writes confusion/prediction plots under --out. Needs Debian's dataset-fashion-mnist (or
--set task.root=DIR); exits with a message otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# per-model step budgets (batch 128): the plain CNN gets its full run, the others shorter ones
BUDGETS = {"cnn-small": 1300, "resnet-small": 300, "mobilenet-small": 400}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(BUDGETS))
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist.yaml"))
    ap.add_argument("--out", default="runs/bench_fashion_mnist")
    ap.add_argument("--set", nargs="*", default=[], help="extra run-config overrides, e.g. train.threads=2")
    args = ap.parse_args()

    from archlab.data.images import ImageDataError, find_dataset_dir
    from archlab.train import checkpoint as ckpt
    from archlab.train.run_config import load_run_config
    from archlab.train.trainer import build_run, train

    try:
        find_dataset_dir("fashion_mnist")
    except ImageDataError as e:
        print(f"skipping: {e}")
        return 0
    rows = []
    for name in args.models:
        over = [f"model.preset={name}", f"train.steps={BUDGETS.get(name, 1300)}", f"name={name}", *args.set]
        cfg = load_run_config(args.config, over)
        out = Path(args.out) / name
        t0 = time.perf_counter()
        res = train(cfg, out, overwrite=True, progress=False)
        wall = time.perf_counter() - t0  # data loading + training + periodic validation, as a user waits for it
        task, _, model = build_run(cfg)  # rebuild, then load the trained weights from the final checkpoint
        ckpt.load_checkpoint(ckpt.latest_checkpoint(out), model)
        rep = task.report(model, out, "test")
        n_train = len(task.splits["train"][1])
        row = {"model": name, "params": res["n_params"], "steps": res["step"], "batch": cfg.train.batch_size,
               "epochs": round(res["step"] * cfg.train.batch_size / n_train, 2), "threads": cfg.train.threads,
               "train_s": round(res["train_time_s"], 1), "wall_s": round(wall, 1),
               "val_acc": round(res.get("val_accuracy", float("nan")), 4), "test_acc": round(rep["accuracy"], 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nFashion-MNIST (cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'model':<16}{'params':>10}{'epochs':>8}{'train s':>9}{'wall s':>8}{'test acc':>10}")
    for r in rows:
        print(f"{r['model']:<16}{r['params']:>10,}{r['epochs']:>8}{r['train_s']:>9}{r['wall_s']:>8}{r['test_acc']:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
