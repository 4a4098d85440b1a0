"""`archlab train CONFIG`: train a model on a task from a run-config YAML."""
from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser(
        "train", help="train a model on a task from a run config (YAML)",
        description="Train the model and task a run config describes. The config has three sections: "
        "model ({preset: NAME, dotted.key: value} or full fields), task ({name: causal_lm | mlm | prefix_lm | "
        "seq2seq | classification | ..., options}) and train (steps, batch_size, lr, warmup_steps, ...). "
        "Writes OUT/metrics.jsonl, OUT/loss.png, OUT/run.yaml and atomic checkpoints in OUT/checkpoints/. "
        "Examples: archlab train configs/shakespeare_char_llama.yaml --set model.pos.kind=none --out runs/nopos; "
        "archlab train configs/shakespeare_char_llama.yaml --out runs/a --resume")
    p.add_argument("config", help="run config file (YAML or JSON)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable: train.lr=3e-4, model.block.norm=post, task.corpus=FILE")
    p.add_argument("--out", help="output directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (bit-exact on CPU); the config must match")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in --out and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from pathlib import Path

    from archlab.train import load_run_config, train

    cfg = load_run_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / (cfg.name if cfg.name != "run" else Path(args.config).stem)
    res = train(cfg, out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in res.items()}, indent=1))
    return 0
