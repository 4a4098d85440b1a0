"""MLM pretraining then classification fine-tuning vs the same encoder trained from scratch.

    nice python benchmarks/mlm_finetune.py [--mlm-steps 3000] [--cls-steps 1000]

1. Pretrain configs/mlm_shakespeare.yaml (BERT masking on Shakespeare, BPE 2048).
2. Fine-tune configs/classification_genre.yaml from those weights and that tokenizer (train.init_from).
3. Train the same classifier from scratch with the same tokenizer, steps and seed.
Prints test accuracy (comedy / history / tragedy, chance ≈ majority class share) of both.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlm-steps", type=int, default=3000)
    ap.add_argument("--cls-steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench-mlm")
    args = ap.parse_args()
    import torch

    from archlab.commands._load import load_for_inference
    from archlab.data.corpora import source_classification
    from archlab.tasks import build_task
    from archlab.train import load_run_config, train

    out = Path(args.out)
    th = f"train.threads={args.threads}"
    mlm = load_run_config(ROOT / "configs" / "mlm_shakespeare.yaml", [f"train.steps={args.mlm_steps}", th])
    r_mlm = train(mlm, out / "mlm", progress=False, overwrite=True)
    print(f"MLM pretraining: {args.mlm_steps} steps, val masked-token loss {r_mlm['val_loss']:.3f}, "
          f"accuracy {r_mlm.get('val_accuracy', float('nan')):.3f}, {r_mlm['train_time_s']:.0f} s", flush=True)
    tok = out / "mlm" / "tokenizer.json"
    results = {}
    for name, extra in (("fine-tuned from MLM", [f"train.init_from={out / 'mlm'}"]), ("from scratch", [])):
        cfg = load_run_config(ROOT / "configs" / "classification_genre.yaml",
                              [f"train.steps={args.cls_steps}", th, f"task.tokenizer={tok}", *extra])
        res = train(cfg, out / name.split()[0].replace("-", ""), progress=False, overwrite=True)
        model, _, _ = load_for_inference(res["checkpoint"])
        task = build_task(cfg)
        with torch.no_grad():
            test = task.evaluate(model, "test")
        results[name] = (res["val_accuracy"], test["accuracy"], res["train_time_s"])
        print(f"{name}: val acc {res['val_accuracy']:.4f}, test acc {test['accuracy']:.4f}", flush=True)
    labels = Counter(y for _, y in source_classification("test")[0])
    majority = max(labels.values()) / sum(labels.values())
    print(f"\n{'classifier':<22} {'val acc':>8} {'test acc':>9} {'train s':>8}")
    for name, (va, te, s) in results.items():
        print(f"{name:<22} {va:>8.4f} {te:>9.4f} {s:>8.0f}")
    print(f"(majority-class test accuracy {majority:.4f}; {args.cls_steps} classification steps each, same seed, "
          f"same tokenizer; MLM pretraining {args.mlm_steps} steps)")


if __name__ == "__main__":
    main()
