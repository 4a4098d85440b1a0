"""`archlab train CONFIG`: train a model on a task from a run config; `archlab train RUN --resume` continues it."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from archlab.commands._machine import warn_if_oversubscribed
from archlab.errors import ConfigError


def add_parser(sub):
    p = sub.add_parser(
        "train", help="train a model on a task from a run config (YAML)",
        description="Train the model and task a run config describes. The config has three sections: "
        "model ({preset: NAME, dotted.key: value} or full fields), task ({name: causal_lm | mlm | prefix_lm | "
        "seq2seq | classification | ..., options}) and train (steps, batch_size, lr, warmup_steps, ...). "
        "Writes OUT/metrics.jsonl, OUT/loss.png (at every checkpoint), OUT/run.yaml and atomic checkpoints in "
        "OUT/checkpoints/. With --resume, CONFIG may be the run folder itself (its saved run.yaml is used), and "
        "--set train.steps=N extends a finished run. "
        "Examples: archlab train configs/shakespeare_char_llama.yaml --set model.pos.kind=none --out runs/nopos; "
        "archlab train configs/shakespeare_char_llama.yaml --out runs/a --resume")
    p.add_argument("config", nargs="?",
                   help="run config file (YAML or JSON); with --resume, a run folder (its saved run.yaml is used)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable: train.lr=3e-4, model.block.norm=post, task.corpus=FILE; on "
                   "--resume from a run folder only train.steps (to extend), train.stop_at and the logging, "
                   "evaluation and checkpoint cadences may change")
    p.add_argument("--out", help="output directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest complete checkpoint in --out (bit-exact on CPU); the config must "
                   "match (without a config file the run's saved run.yaml is used). A finished run is left as it "
                   "is unless --set train.steps=N extends it. Ctrl-C during training saves the current step first "
                   "(press it twice to abort at once)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in --out and start again")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar, no TensorBoard note and no warm-up warning")
    p.add_argument("--wandb", action="store_true",
                   help="also log every metric to Weights & Biases (pip install 'archlab[wandb]'); offline, in "
                   "OUT/wandb, unless WANDB_MODE is set (upload later with `wandb sync OUT/wandb/offline-run-*`)")
    p.add_argument("--dry-run", action="store_true",
                   help="make every check made before training (config, data, memory estimate), print the plan "
                   "as JSON and stop without building the model or writing anything")
    return p


def resolve(args):
    """(run config, output folder) from the command line: a config file, or with --resume a run folder."""
    from archlab.train import load_run_config, resumed_run_config

    src = Path(args.config) if args.config else None
    if args.resume and (src is None or src.is_dir()):
        out = Path(args.out) if args.out else src
        if out is None:
            raise ConfigError("--resume needs the run to continue: archlab train RUN --resume, or --out RUN")
        if src is not None and args.out and src.resolve() != out.resolve():
            raise ConfigError(f"two run folders given: {str(src)!r} and --out {args.out!r}; give one")
        return resumed_run_config(out, args.overrides), out
    if src is None:
        raise ConfigError("a run config file is required: archlab train CONFIG (or archlab train RUN --resume to "
                          "continue a run)")
    if src.is_dir():
        raise ConfigError(f"{str(src)!r} is a folder, not a run config file; pass --resume to continue the run in it")
    cfg = load_run_config(src, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / (cfg.name if cfg.name != "run" else src.stem)
    return cfg, out


def warn_schedule(tc, err=None) -> bool:
    """One line when the warm-up covers the whole run (the lr never reaches its peak's decay). True if it warned."""
    if tc.warmup_steps and tc.warmup_steps >= tc.steps:
        print(f"archlab train: warning: warm-up {tc.warmup_steps} ≥ steps {tc.steps}: the lr never leaves warm-up "
              "and no decay happens (lower train.warmup_steps)", file=err or sys.stderr)
        return True
    return False


def run(args) -> int:
    from archlab.train import RunFinished, train
    from archlab.train.interrupt import TrainingInterrupted

    cfg, out = resolve(args)
    if getattr(args, "dry_run", False):
        from archlab.train.preflight import dry_run

        print(json.dumps(dry_run(cfg), indent=1))
        return 0
    warn_if_oversubscribed("train", "--set train.threads=1", cfg.train.threads)
    if not (args.resume or args.quiet):  # a resumed run was warned when it started
        warn_schedule(cfg.train)
    try:
        with _wandb(cfg, out) if getattr(args, "wandb", False) else contextlib.nullcontext():
            res = train(cfg, out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite,
                        tensorboard=True)  # event files even with --quiet, when tensorboard is installed
    except RunFinished as e:  # nothing left to do: the run is left exactly as it is
        print(f"archlab train: {e}", file=sys.stderr)
        return 0
    except TrainingInterrupted as e:  # Ctrl-C: the current step was saved
        print(f"archlab train: interrupted at step {e.step}; checkpoint saved in {e.checkpoint} "
              "(continue with --resume)", file=sys.stderr)
        return 130
    print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in res.items()}, indent=1))
    return 0


class WandbSink:
    """Every metrics record to a Weights & Biases run, started at the first record (once the trainer has
    checked and locked the run folder); offline unless the user set WANDB_MODE."""

    def __init__(self, wandb, cfg, out: Path) -> None:
        self.wandb, self.cfg, self.out, self.run = wandb, cfg, out, None

    def __call__(self, record: dict) -> None:
        from archlab.train.metrics_log import NOT_A_CURVE

        if self.run is None:
            os.environ.setdefault("WANDB_MODE", "offline")
            self.run = self.wandb.init(project=os.environ.get("WANDB_PROJECT", "archlab"), name=self.cfg.name,
                                       dir=str(self.out), config=self.cfg.to_dict())
            print(f"wandb: logging ({os.environ['WANDB_MODE']}) to {self.out / 'wandb'}", file=sys.stderr)
        kind = record.get("kind", "train")
        self.run.log({f"{kind}/{k}": v for k, v in record.items() if k not in NOT_A_CURVE
                      and isinstance(v, (int, float)) and not isinstance(v, bool)}, step=int(record["step"]))

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()


@contextlib.contextmanager
def _wandb(cfg, out: Path):
    """`--wandb`: a metrics sink for the training run (a clear error when wandb is not installed)."""
    from archlab.train.metrics_log import sink

    try:
        import wandb
    except ImportError:
        raise ConfigError("--wandb needs the wandb package: pip install 'archlab[wandb]' (or pip install wandb)") \
            from None
    w = WandbSink(wandb, cfg, out)
    try:
        with sink(w):
            yield w
    finally:
        w.finish()
