"""Pretrain, then fine-tune: translation BLEU after T5 span-corruption pretraining vs from scratch.

    nice python benchmarks/span_corruption.py [--pretrain-steps 1500] [--finetune-steps 600] [--limit 200]
        [--pretrained RUN] [--arms scratch,pretrained]   (reuse a pretraining run; run the arms one per process)

Seed 002: an encoder-decoder is pretrained on unlabelled text, then fine-tuned for a task. Both arms use the
same model (configs/translation_en_es.yaml's encoder-decoder), the same tokenizer (joint BPE trained on the
pretraining text: the shipped Shakespeare and the training verses, English and Spanish) with the same 100
sentinel ids, and the same fine-tuning budget and seed; one arm starts from the span-corruption checkpoint,
the other from random weights. Prints val loss, BLEU and chrF (beam search on the first --limit test verses).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--finetune-steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--limit", type=int, default=200, help="score the first N test verses (0 = all 990)")
    ap.add_argument("--out", default="runs/bench-span")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="overrides for every run")
    ap.add_argument("--pretrained", default=None,
                    help="a finished span-corruption run folder to fine-tune from (skips pretraining)")
    ap.add_argument("--arms", default="scratch,pretrained", help="which fine-tuning arms to run (comma-separated)")
    args = ap.parse_args()
    wanted = args.arms.split(",")
    if unknown := [a for a in wanted if a not in ("scratch", "pretrained")]:
        ap.error(f"--arms: unknown arm(s) {unknown} (expected scratch and/or pretrained, comma-separated)")
    if args.pretrained and not (Path(args.pretrained) / "tokenizer.json").is_file():
        ap.error(f"--pretrained {args.pretrained}: not a finished span-corruption run (no tokenizer.json in it)")
    from archlab.commands._load import load_for_inference
    from archlab.config import read_mapping
    from archlab.tasks import build_task
    from archlab.train import apply_run_overrides, load_run_config, train
    from archlab.train.run_config import run_config_from_dict

    out = Path(args.out)
    base = read_mapping(ROOT / "configs" / "translation_en_es.yaml")
    common = [f"train.threads={args.threads}", "train.checkpoint_every=0", "train.warmup_steps=100",
              "train.eval_every=0", *args.overrides]
    t0 = time.perf_counter()
    pre_dir = Path(args.pretrained) if args.pretrained else out / "pretrain"
    if args.pretrained is None:
        pre_cfg = apply_run_overrides(run_config_from_dict({**base, "task": {
            "name": "span_corruption", "corpus": "shakespeare+verses", "tokenizer": "bpe", "bpe_vocab": 6000,
            "block_size": 64, "extra_ids": 100}}), [f"train.steps={args.pretrain_steps}", *common])
        pre = train(pre_cfg, pre_dir, progress=True, overwrite=True)
        print(f"pretraining: {pre['step']} steps, val loss {pre.get('val_loss', float('nan')):.3f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    tokenizer = pre_dir / "tokenizer.json"
    rows = []
    arms = {"scratch": ("from scratch", []), "pretrained": ("after span corruption", [f"train.init_from={pre_dir}"])}
    for arm, init in (arms[a] for a in wanted):
        cfg = load_run_config(ROOT / "configs" / "translation_en_es.yaml", [
            f"task.tokenizer={tokenizer}", "task.extra_ids=100", f"train.steps={args.finetune_steps}", *init,
            *common])
        t1 = time.perf_counter()
        res = train(cfg, out / arm.replace(" ", "-"), progress=True, overwrite=True)
        model, _, _ = load_for_inference(res["checkpoint"])
        task = build_task(cfg)
        score = task.translate_and_score(model, "test", limit=args.limit, beam_size=args.beam)
        rows.append((arm, res.get("val_loss", float("nan")), score["bleu"], score["chrf"], score["n"],
                     time.perf_counter() - t1))
        print(f"{arm}: BLEU {score['bleu']:.2f}", flush=True)
    pretrained = f"pretrained: {pre_dir}" if args.pretrained else f"pretraining {args.pretrain_steps} steps"
    print(f"\n{pretrained}; fine-tuning {args.finetune_steps} steps; beam {args.beam}")
    print(f"{'arm':<24} {'val loss':>9} {'BLEU':>6} {'chrF':>6} {'test n':>6} {'wall s':>7}")
    for arm, vl, bleu, chrf, n, wall in rows:
        print(f"{arm:<24} {vl:>9.3f} {bleu:>6.2f} {chrf:>6.2f} {n:>6} {wall:>7.0f}")


if __name__ == "__main__":
    main()
