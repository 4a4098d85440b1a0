"""`archlab translate CKPT`: beam-search translation with an encoder-decoder checkpoint (and BLEU/chrF)."""
from __future__ import annotations

import json
import sys

from archlab.commands._machine import add_inference_options, load_model, progress_bar
from archlab.errors import ConfigError


def add_parser(sub):
    p = sub.add_parser(
        "translate", help="translate sentences with an encoder-decoder checkpoint (beam search), or score BLEU",
        description="Translate with an encoder-decoder checkpoint trained by the seq2seq task. Sentences come from "
        "--text (repeatable), --file, or standard input (one per line). With --score SPLIT, translate the "
        "shipped held-out verses and report sacreBLEU and chrF. Example: archlab translate runs/mt "
        "--text 'In the beginning God created the heaven and the earth.' --beam 4")
    p.add_argument("checkpoint", help="run dir or checkpoint dir of a seq2seq run")
    p.add_argument("--text", action="append", default=[], help="a sentence to translate (repeatable)")
    p.add_argument("--file", help="a file of sentences, one per line")
    p.add_argument("--beam", type=int, default=4, help="beam size (1 = greedy; default 4)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="score = log p / length**alpha; larger favours longer output (default 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest output (default: task max_len)")
    p.add_argument("--score", choices=["val", "test"], help="translate a held-out split and print BLEU and chrF")
    p.add_argument("--limit", type=int, default=0, help="with --score: first N pairs only")
    add_inference_options(p)
    return p


def run(args) -> int:
    from pathlib import Path

    from archlab.tasks import build_task
    from archlab.train import apply_run_overrides, run_config_from_dict

    model, tok, doc = load_model("translate", args)
    if not doc or doc["run_config"]["task"].get("name") != "seq2seq":
        raise ConfigError(f"{args.checkpoint!r} is not a seq2seq (translation) checkpoint")
    if args.beam < 1:
        raise ConfigError(f"--beam={args.beam} must be at least 1")
    cfg = apply_run_overrides(run_config_from_dict(doc["run_config"]),
                              [f"task.tokenizer={Path(doc['path']) / 'tokenizer.json'}"])
    task = build_task(cfg)
    kw = {"beam_size": args.beam, "length_penalty": args.length_penalty, "max_new_tokens": args.max_new_tokens}
    if args.score:
        n = len(task.pairs["validation" if args.score == "val" else "test"])
        with progress_bar(min(n, args.limit) if args.limit else n, f"translate {args.score}", "verse") as bar:
            res = task.translate_and_score(model, args.score, limit=args.limit, progress=bar.update, **kw)
        hyps = res.pop("hypotheses")
        for (src, ref), hyp in list(zip(task.pairs["validation" if args.score == "val" else "test"], hyps))[:3]:
            print(f"EN  {src}\nREF {ref}\nOUT {hyp}\n")
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}))
        return 0
    sents = list(args.text)
    if args.file:
        sents += Path(args.file).read_text(encoding="utf-8").splitlines()
    if not sents:
        sents = [line.rstrip("\n") for line in sys.stdin]
    for out in task.translate(model, [s for s in sents if s.strip()], **kw):
        print(out)
    return 0
