"""The built-in run functions: the toy stand-in, the shared trainer (with post-hoc re-evaluation), teacher forcing
vs free running; and how a run config's parameters are counted for parameter matching."""
from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from archlab.config import ConfigError, flatten
from archlab.experiments.runs.registry import run_function

# ---------------------------------------------------------------- run functions


@run_function("toy")
def toy_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """A deterministic stand-in for training (tests, dry runs): loss = toy.quality + 1/(1+step/10) + noise.

    `toy.seed_effect: S` adds S·g(seed), the same for every variant of a seed (what pairing by seed removes);
    `toy.lr_optimum: LR` adds (log10(train.lr / LR))² · 0.1 (so an lr sweep has a best point per variant).
    `toy.sleep` seconds make it slow; `toy.crash_once: PATH` kills its own process mid-run unless PATH exists
    (creating it), as a worker killed by the system would die. Neither changes a number.
    """
    toy = config.get("toy", {})
    quality, noise = float(toy.get("quality", 1.0)), float(toy.get("noise", 0.01))
    quality += float(toy.get("seed_effect", 0.0)) * random.Random(f"seed-effect|{seed}").gauss(0.0, 1.0)
    if toy.get("lr_optimum"):
        lr = float(config.get("train", {}).get("lr", toy["lr_optimum"]))
        quality += 0.1 * math.log10(lr / float(toy["lr_optimum"])) ** 2
    steps = int(budget.get("steps", config.get("train", {}).get("steps", 50)))
    ident = {**config, "toy": {k: v for k, v in toy.items() if k not in ("sleep", "crash_once")}}
    rng = random.Random(f"{seed}|{json.dumps(ident, sort_keys=True)}")
    if toy.get("sleep"):
        time.sleep(float(toy["sleep"]))
    if toy.get("crash_once"):
        try:  # O_EXCL: of two workers racing on the marker, exactly one creates it and dies ("once")
            fd = os.open(toy["crash_once"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(17)
    curve, loss = [], math.nan
    for step in range(0, steps + 1, max(1, steps // 10)):
        loss = quality + 1.0 / (1.0 + step / 10.0) + noise * rng.gauss(0.0, 1.0)
        curve.append({"step": step, "train_loss": loss})
    final = {"val_loss": loss + noise * rng.gauss(0.0, 1.0), "train_loss": loss}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return {"final": final, "curve": curve, "n_params": int(toy.get("params", 1000))}


# bookkeeping and throughput fields of a metrics.jsonl record: not learning curves
_NOT_CURVES = ("step", "kind", "tokens", "tokens_per_s", "images", "images_per_s", "time", "lr")


def read_jsonl_curve(path: str | Path) -> list[dict[str, Any]]:
    """Curve points from the trainer's metrics JSONL: train records give train_loss, eval records val_*."""
    pts: dict[int, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or "step" not in rec:
            continue
        kind = rec.get("kind", "train")
        pt = pts.setdefault(int(rec["step"]), {"step": int(rec["step"])})
        for k, v in rec.items():
            if k in _NOT_CURVES or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if kind == "eval":
                pt[f"val_{k}"] = v
            elif kind == "train":
                pt["train_loss" if k == "loss" else k] = v
            else:
                pt[f"{kind}_{k}"] = v
    return [pts[k] for k in sorted(pts)]


def grad_norm_stability(curve: list[dict[str, Any]], after_step: int) -> dict[str, float]:
    """How steady the gradient norm was, from the `grad_norm`s the trainer logged (the global norm before
    clipping, every train.log_every steps, only when train.grad_clip > 0) at steps after `after_step` (the warm-up):
    grad_norm_cv (population std / mean; 0 = the same norm at every logged step) and grad_norm_max_ratio
    (largest / median: one spike shows here). {} when fewer than two norms were logged or their median is 0
    (neither ratio is defined then)."""
    norms = [float(pt["grad_norm"]) for pt in curve if "grad_norm" in pt and pt["step"] > after_step]
    if len(norms) < 2 or statistics.median(norms) <= 0:
        return {}
    return {"grad_norm_cv": statistics.pstdev(norms) / statistics.fmean(norms),
            "grad_norm_max_ratio": max(norms) / statistics.median(norms)}


@run_function("trainer")
def trainer_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Train through archlab.train (the shared trainer); return its final metrics and logged curve.

    An optional `posthoc: {NAME: {model.dotted.key: value}}` section re-evaluates the trained weights in
    a changed model (e.g. the causal mask switched back on) and reports NAME_<metric> for each.
    With gradient clipping on (train.grad_clip > 0, the default), final also has grad_norm_cv and
    grad_norm_max_ratio (`grad_norm_stability` of the logged grad norms after train.warmup_steps).
    """
    from archlab.train import train

    config = dict(config)
    posthoc = config.pop("posthoc", None) or {}
    run_cfg = make_run_config(config, seed)
    final = train(run_cfg, out_dir, resume=False, progress=False, overwrite=True)
    curve = read_jsonl_curve(Path(out_dir) / "metrics.jsonl")
    final = {k: v for k, v in dict(final or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    final.update(grad_norm_stability(curve, run_cfg.train.warmup_steps))
    for name, overrides in posthoc.items():
        final.update({f"{name}_{k}": v for k, v in posthoc_eval(config, seed, out_dir, overrides).items()})
    return {"final": final, "curve": curve, "n_params": final.get("n_params")}


def posthoc_eval(config: Mapping[str, Any], seed: int, out_dir: str, overrides: Mapping[str, Any]) -> dict:
    """Validation metrics of a trained run's final weights loaded into the model with `overrides` applied."""
    import torch

    from archlab.train import build_run, load_checkpoint

    data = json.loads(json.dumps(dict(config)))
    for k, v in flatten(overrides).items():  # {model.attn.causal: true} may arrive nested by the spec loader
        section, _, rest = k.partition(".")
        if section != "model" or not rest:
            raise ConfigError(f"posthoc override {k!r} must start with 'model.'")
        data.setdefault("model", {})[rest] = v
    task, _, model = build_run(make_run_config(data, seed), "cpu")
    load_checkpoint(out_dir, model)  # the run's newest complete checkpoint (clear error if none)
    model.eval()
    with torch.no_grad():
        return {k: float(v) for k, v in task.evaluate(model, "val").items()}


def make_run_config(config: Mapping[str, Any], seed: int):
    """archlab.train.RunConfig from a plain nested mapping plus the seed (no plots, quiet)."""
    from archlab.train import run_config_from_dict

    data = json.loads(json.dumps(config))
    data.pop("posthoc", None)
    data.setdefault("train", {})["seed"] = int(seed)
    data["train"].setdefault("plot", False)
    return run_config_from_dict(data)


_TASK_OVERRIDES: dict[str, dict] = {}


def task_model_overrides(config: Mapping[str, Any]) -> dict:
    """The model fields a run's task imposes (vocab size, classes), computed once per task section."""
    key = json.dumps({"task": config.get("task"), "seed": 0}, sort_keys=True)
    if key not in _TASK_OVERRIDES:
        try:
            from archlab.tasks import build_task

            task = build_task(make_run_config(config, 0))
            _TASK_OVERRIDES[key] = task.model_overrides()
        except ImportError:
            _TASK_OVERRIDES[key] = {}
    return _TASK_OVERRIDES[key]


def count_params(config: Mapping[str, Any]) -> int:
    """Parameter count of the model a trainer run config builds (meta device: nothing is allocated)."""
    import torch

    from archlab.models import build_model

    run_cfg = make_run_config(config, 0)
    model_cfg = run_cfg.model_config(task_model_overrides(config))
    with torch.device("meta"):
        model = build_model(model_cfg)
    return int(sum(p.numel() for p in model.parameters()))


def count_model_params(config: Mapping[str, Any]) -> int:
    """Parameter count of the `model` section alone (for run functions that do not use a trainer task)."""
    import torch

    from archlab.dotted import unflatten
    from archlab.models import build_model, model_config_from_dict

    flat = flatten(dict(config.get("model", {})), keep_empty=True)
    cfg = model_config_from_dict(flat if "preset" in flat else unflatten(flat))
    with torch.device("meta"):
        model = build_model(cfg)
    return int(sum(p.numel() for p in model.parameters()))


def param_counter_for(runner: str) -> Callable[[Mapping[str, Any]], int] | None:
    """How a runner's configs are counted for parameter matching: the trainer's model+task config, a bare model
    config for the other run functions, nothing for the toy runner (it builds no model)."""
    if runner == "toy":
        return None
    return count_params if runner == "trainer" else count_model_params



# ---------------------------------------------------------------- teacher forcing vs free running


@run_function("teacher_forcing")
def teacher_forcing_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Sequence reversal trained by the one trainer (task `transduction`, archlab.tasks.transduction);
    exact-match greedy generation on 256 held-out sequences, the task's evaluation.

    `teacher_forcing.mode` — teacher: the decoder's inputs are the gold previous tokens (seed 000/004's
    shifted targets); free: its inputs are its own greedy outputs (generated without gradient), targets gold;
    scheduled: each input token is its own output with probability `sampling_prob`.
    The model's `shape` picks how the same task is posed: decoder (one stream [BOS src SEP tgt]),
    encoder_decoder (src to the encoder, [SEP tgt] to the decoder), encoder (bidirectional over
    [BOS src SEP MASK…], every target predicted at once — BERT-style, no autoregression).
    AdamW at a constant lr without weight decay, betas (0.9, 0.999), gradients clipped at 1, unless `train` says.
    """
    steps = int(budget.get("steps", config.get("train", {}).get("steps", 300)))
    run = {k: v for k, v in config.items() if k != "teacher_forcing"}
    run["task"] = {"length": 8, "vocab": 12, **config.get("task", {}), **config.get("teacher_forcing", {}),
                   "name": "transduction", "kind": "reversal"}
    run["train"] = {"batch_size": 32, "lr": 3e-3, "schedule": "constant", "weight_decay": 0.0, "betas": [0.9, 0.999],
                    "grad_clip": 1.0, "eval_every": 0, "checkpoint_every": 0, "log_every": max(1, steps // 20),
                    "device": "cpu", **config.get("train", {}), "steps": steps}
    out = trainer_run(run, seed, budget, out_dir)
    out["final"] = {k.removeprefix("val_") if k.startswith("val_gen_") else k: v for k, v in out["final"].items()}
    return out
