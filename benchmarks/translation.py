"""English→Spanish translation with the encoder-decoder: sacreBLEU and chrF on held-out verses, beam search.

    nice python benchmarks/translation.py [--steps 6000] [--minutes 0] [--limit 0] [--beam 4]

Trains configs/translation_en_es.yaml (pre-norm encoder-decoder, joint BPE) for --steps (or stops after
--minutes of training, as if interrupted, then scores), then decodes the test verses with beam search.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--stop-at", type=int, default=0, help="stop after this many steps (schedule still spans --steps)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--limit", type=int, default=0, help="score only the first N test verses (0 = all 990)")
    ap.add_argument("--out", default="runs/bench-mt")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    from archlab.commands._load import load_for_inference
    from archlab.tasks import build_task
    from archlab.train import apply_run_overrides, load_run_config, train

    cfg = load_run_config(ROOT / "configs" / "translation_en_es.yaml",
                          [f"train.steps={args.steps}", f"train.threads={args.threads}",
                           f"train.stop_at={args.stop_at}", *args.overrides])
    t0 = time.perf_counter()
    res = train(cfg, args.out, progress=False, overwrite=True)
    train_wall = time.perf_counter() - t0
    model, _, doc = load_for_inference(res["checkpoint"])
    task = build_task(apply_run_overrides(cfg, [f"task.tokenizer={Path(doc['path']) / 'tokenizer.json'}"]))
    t1 = time.perf_counter()
    score = task.translate_and_score(model, "test", limit=args.limit, beam_size=args.beam)
    decode_wall = time.perf_counter() - t1
    for (src, ref), hyp in list(zip(task.pairs["test"], score["hypotheses"]))[:3]:
        print(f"EN  {src}\nREF {ref}\nOUT {hyp}\n")
    print(f"{'params':>9} {'steps':>6} {'val loss':>9} {'train s':>8} {'tokens/s':>9} {'BLEU':>6} {'chrF':>6} "
          f"{'test n':>6} {'decode s':>8}")
    print(f"{res['n_params']:>9,} {res['step']:>6} {res.get('val_loss', float('nan')):>9.3f} {train_wall:>8.0f} "
          f"{res['tokens_per_s']:>9,.0f} {score['bleu']:>6.2f} {score['chrf']:>6.2f} {score['n']:>6} "
          f"{decode_wall:>8.0f}")
    print(f"(beam {args.beam}, length penalty 1.0; sacreBLEU {__import__('sacrebleu').__version__} default 13a "
          "tokenization; chrF default)")


if __name__ == "__main__":
    main()
