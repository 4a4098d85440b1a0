"""Seed 003's claim, measured: BLEU by source length for the RNN encoder-decoder, RNN + attention, Transformer.

    nice python benchmarks/seq2seq_by_length.py [--steps 300] [--per-bucket 70] [--beam 4]
                                                [--models rnn,rnn_attention,transformer] [--report]

"The plain encoder-decoder squeezes the source into its last hidden state, so it struggles with long sentences;
attention fixes it." Each model is trained on the shipped EN→ES verses by the same seq2seq task and trainer, with
the same joint BPE settings, batch, learning-rate schedule and number of steps (configs/translation_en_es_rnn.yaml,
configs/translation_en_es_rnn_attention.yaml, configs/translation_en_es.yaml; about 4.2–4.5M parameters each),
then decodes the same test verses with the same beam search. The test verses are bucketed by the English source
length in words (≤10, 11–20, 21–30, 31–40, >40; at most --per-bucket verses each, taken in split order) and
sacreBLEU is computed per bucket. Each model's result is saved as OUT/<model>.json when it finishes, so the models
can run one per process (--models) and `--report` prints the table of whatever has finished.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"rnn": "translation_en_es_rnn.yaml", "rnn_attention": "translation_en_es_rnn_attention.yaml",
           "transformer": "translation_en_es.yaml"}
BUCKETS = [("≤10", 0, 10), ("11–20", 11, 20), ("21–30", 21, 30), ("31–40", 31, 40), (">40", 41, 10**9)]


def bucket_of(n_words: int) -> str:
    return next(name for name, lo, hi in BUCKETS if lo <= n_words <= hi)


def test_verses(per_bucket: int) -> list[tuple[str, str]]:
    """Up to per_bucket test pairs of each source-length bucket, in split order."""
    from archlab.data.corpora import bible_pairs

    taken: dict[str, list] = {name: [] for name, _, _ in BUCKETS}
    for src, ref in bible_pairs("test"):
        b = taken[bucket_of(len(src.split()))]
        if len(b) < per_bucket:
            b.append((src, ref))
    return [p for name, _, _ in BUCKETS for p in taken[name]]


def run_one(name: str, args) -> dict:
    import sacrebleu

    from archlab.commands._load import load_for_inference
    from archlab.tasks import build_task
    from archlab.train import apply_run_overrides, load_run_config, train

    warmup = max(1, min(300, args.steps // 10))
    cfg = load_run_config(ROOT / "configs" / CONFIGS[name],
                          [f"train.steps={args.steps}", f"train.warmup_steps={warmup}", f"train.threads={args.threads}",
                           "train.eval_every=0", "train.checkpoint_every=0", f"train.eval_batches={args.eval_batches}",
                           *args.overrides])
    out = Path(args.out) / name
    t0 = time.perf_counter()
    res = train(cfg, out, progress=False, overwrite=True)
    train_s = time.perf_counter() - t0
    model, _, doc = load_for_inference(res["checkpoint"])
    task = build_task(apply_run_overrides(cfg, [f"task.tokenizer={Path(doc['path']) / 'tokenizer.json'}"]))
    pairs = test_verses(args.per_bucket)
    t1 = time.perf_counter()
    hyps = task.translate(model, [s for s, _ in pairs], beam_size=args.beam)
    decode_s = time.perf_counter() - t1
    by_bucket = {}
    for bname, _, _ in BUCKETS:
        idx = [i for i, (s, _) in enumerate(pairs) if bucket_of(len(s.split())) == bname]
        if idx:
            by_bucket[bname] = {"n": len(idx), "bleu": sacrebleu.corpus_bleu([hyps[i] for i in idx],
                                                                              [[pairs[i][1] for i in idx]]).score}
    result = {"model": name, "config": f"configs/{CONFIGS[name]}", "params": res["n_params"], "steps": res["step"],
              "val_loss": res.get("val_loss"), "train_s": train_s, "decode_s": decode_s,
              "bleu_all": sacrebleu.corpus_bleu(hyps, [[r for _, r in pairs]]).score, "buckets": by_bucket,
              "examples": [{"src": s, "ref": r, "hyp": h} for (s, r), h in list(zip(pairs, hyps))[-2:]]}
    from archlab.fileio import atomic_write_text

    atomic_write_text(Path(args.out) / f"{name}.json", json.dumps(result, indent=1, ensure_ascii=False))
    return result


def report(out: str) -> str:
    rows = [json.loads(p.read_text()) for name in CONFIGS if (p := Path(out) / f"{name}.json").is_file()]
    if not rows:
        return f"no results under {out} yet"
    head = ("| model | params | steps | train s | " + " | ".join(f"BLEU {b} (n)" for b, _, _ in BUCKETS)
            + " | BLEU all |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [f"{r['buckets'][b]['bleu']:.2f} ({r['buckets'][b]['n']})" if b in r["buckets"] else "–"
                 for b, _, _ in BUCKETS]
        lines.append(f"| {r['model']} | {r['params']:,} | {r['steps']} | {r['train_s']:.0f} | " + " | ".join(cells)
                     + f" | {r['bleu_all']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--per-bucket", type=int, default=70, help="test verses per source-length bucket (at most)")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-batches", type=int, default=2)
    ap.add_argument("--models", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    ap.add_argument("--out", default="runs/bench-seq2seq-length")
    ap.add_argument("--report", action="store_true", help="only print the table of the saved results")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="run-config override (all models)")
    args = ap.parse_args()
    if not args.report:
        for name in args.models.split(","):
            if name not in CONFIGS:
                raise SystemExit(f"seq2seq_by_length.py: error: --models names {name!r}; expected {list(CONFIGS)}")
            r = run_one(name, args)
            print(f"{name}: {r['params']:,} params, {r['steps']} steps in {r['train_s']:.0f} s, "
                  f"BLEU {r['bleu_all']:.2f}", flush=True)
    import sacrebleu

    print(report(args.out))
    print(f"(English source length in words; beam {args.beam}, length penalty 1.0; sacreBLEU {sacrebleu.__version__} "
          "default 13a tokenization)")


if __name__ == "__main__":
    main()
