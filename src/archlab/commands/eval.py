"""`archlab eval CKPT`: evaluate a checkpoint on its task's validation or test split (or a text file)."""
from __future__ import annotations

import json

from archlab.commands._machine import add_inference_options, load_model, with_progress
from archlab.errors import ConfigError


def add_parser(sub):
    p = sub.add_parser(
        "eval", help="evaluate a checkpoint on its task (loss, perplexity, accuracy) or on a text file",
        description="Rebuild the task a checkpoint was trained on (from its saved run config and tokenizer) and "
        "report its metrics on --split; or, with --text FILE, the causal-LM loss/perplexity of any decoder "
        "(archlab checkpoint or Hugging Face folder) on that file.")
    p.add_argument("checkpoint", help="run dir, checkpoint dir, or Hugging Face folder")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="split to evaluate (default val)")
    p.add_argument("--text", help="evaluate causal-LM loss on this text file instead of the task")
    p.add_argument("--batches", type=int, default=50, help="evaluation batches (default 50)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="task overrides, e.g. task.corpus=FILE")
    add_inference_options(p)
    return p


def run(args) -> int:
    from pathlib import Path

    import torch


    model, tok, doc = load_model("eval", args)
    if args.text:
        from archlab.data.corpora import read_text
        from archlab.data.lm_data import eval_batches
        from archlab.objectives import causal_lm_loss

        if tok is None:
            raise ConfigError(f"no tokenizer.json found with {args.checkpoint!r}")
        import numpy as np

        ids = np.asarray(tok.encode(read_text(args.text)), dtype=np.int64)
        T = min(model.cfg.max_seq_len, max(len(ids) - 1, 1))
        total, n = 0.0, 0
        with torch.no_grad():
            for b in with_progress(lambda _: eval_batches(ids, T, 8, args.batches), "eval")(None):
                loss, m = causal_lm_loss(model, {k: v.to(args.device) for k, v in b.items()})
                w = m.get("n_tokens", m.get("tokens", b["labels"].numel()))
                total, n = total + float(loss) * w, n + w
        res = {"loss": total / n, "ppl": float(torch.tensor(total / n).exp()), "tokens": int(n)}
        print(json.dumps(res, indent=1))
        return 0
    if not doc:
        raise ConfigError("a Hugging Face folder has no archlab task; pass --text FILE to evaluate it")
    from archlab.tasks import build_task
    from archlab.train import apply_run_overrides, run_config_from_dict

    over = [f"train.eval_batches={args.batches}", *args.overrides]
    tokfile = Path(doc["path"]) / "tokenizer.json"
    cfg = run_config_from_dict(doc["run_config"])
    if tokfile.is_file() and "tokenizer" in _task_options(cfg):
        over.append(f"task.tokenizer={tokfile}")
    cfg = apply_run_overrides(cfg, over)
    task = build_task(cfg)
    task.eval_batches = with_progress(task.eval_batches, f"eval {args.split}")
    with torch.no_grad():
        if hasattr(task, "report"):  # evaluates, and writes confusion matrix + sample predictions beside the checkpoint
            full = task.report(model, Path(doc["path"]), args.split)
            res = {k: full[k] for k in ("loss", "accuracy")}
            res["report"] = str(Path(doc["path"]) / f"confusion_{args.split}.png")
        else:
            res = task.evaluate(model, args.split)
    print(json.dumps({"checkpoint": doc["path"], "step": doc["step"], "split": args.split, **res}, indent=1))
    return 0


def _task_options(cfg) -> set:
    import importlib

    from archlab import registry

    builder = registry.get("task", cfg.task_name)
    mod = importlib.import_module(builder.__module__)
    return set(getattr(mod, "OPTIONS", ()))
