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
                   help="continue from the newest complete checkpoint in --out (bit-exact on CPU); the config must "
                   "match. Ctrl-C during training saves the current step first (press it twice to abort at once)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in --out and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="make every check made before training (config, data, memory estimate), print the plan "
                   "as JSON and stop without building the model or writing anything")
    return p


def run(args) -> int:
    import sys
    from pathlib import Path

    from archlab.train import load_run_config, train
    from archlab.train.interrupt import TrainingInterrupted

    cfg = load_run_config(args.config, args.overrides)
    if getattr(args, "dry_run", False):
        from archlab.train.preflight import dry_run

        print(json.dumps(dry_run(cfg), indent=1))
        return 0
    out = Path(args.out) if args.out else Path("runs") / (cfg.name if cfg.name != "run" else Path(args.config).stem)
    try:
        res = train(cfg, out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except TrainingInterrupted as e:  # Ctrl-C: the current step was saved
        print(f"archlab train: interrupted at step {e.step}; checkpoint saved in {e.checkpoint} "
              "(continue with --resume)", file=sys.stderr)
        return 130
    print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in res.items()}, indent=1))
    return 0
