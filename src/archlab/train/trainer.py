"""The training loop: AdamW + warm-up/cosine, clipping, accumulation, autocast, eval, checkpoints, resume."""
from __future__ import annotations

import contextlib
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.config import ConfigError, config_diff, to_dict
from archlab.fileio import atomic_write_text
from archlab.train import checkpoint as ckpt_mod
from archlab.train.interrupt import StopOnInterrupt, TrainingInterrupted
from archlab.train.optim import build_optimizer, lr_at, set_lr
from archlab.train.preflight import check_before_build, check_finite_loss, check_threads
from archlab.train.run_config import RESUMABLE_FIELDS, RunConfig
from archlab.train.run_folder import RunLock, check_writable, set_aside_damaged, start_fresh


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; an explicit device that is missing is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device='mps' but MPS is not available")
    return torch.device(name)


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast on CUDA (or when asked for), plain fp32 otherwise."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_run(run_cfg: RunConfig, device: torch.device | str = "cpu"):
    """(task, model config, model) for a run config, seeded by train.seed (the same model every time)."""
    from archlab.models import build_model
    from archlab.tasks import build_task

    seed_everything(run_cfg.train.seed)
    task = build_task(run_cfg)
    overrides = task.model_overrides() if hasattr(task, "model_overrides") else {}
    model_cfg = run_cfg.model_config(overrides)
    check_before_build(run_cfg, task, model_cfg, device)  # split and memory estimate, before any allocation
    seed_everything(run_cfg.train.seed)  # model init does not depend on how much RNG the task used
    model = build_model(model_cfg).to(device)
    return task, model_cfg, model


class MetricsLog:
    """Append-only JSONL metrics file (plus TensorBoard scalars when tensorboard is installed)."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None) -> None:
        self.path = path
        self.f = open(path, "a", encoding="utf-8")
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(tensorboard_dir))
            except Exception:  # tensorboard not installed: JSONL only
                self.tb = None

    def write(self, record: dict) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step",):
                    self.tb.add_scalar(f"{record.get('kind', 'train')}/{k}", v, record["step"])

    def close(self) -> None:
        self.f.close()
        if self.tb is not None:
            self.tb.close()

    @staticmethod
    def truncate(path: Path, step: int) -> None:
        """Drop records after `step` (written by a run that was then interrupted), atomically."""
        if not path.is_file():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut by the crash
                continue
        atomic_write_text(path, "".join(line + "\n" for line in keep))


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a metrics.jsonl file."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_losses(metrics_path: Path, out_png: Path, title: str = "") -> Path | None:
    """Train and validation loss against step, as a PNG (None if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recs = read_metrics(metrics_path)
    tr = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "train" and "loss" in r]
    ev = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "eval" and "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot(*zip(*tr), label="train", lw=1)
    if ev:
        ax.plot(*zip(*ev), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png


def _check_resume(saved: dict, current: dict, saved_model: dict, current_model: dict, where: str) -> None:
    diff = {k: v for k, v in config_diff(saved, current).items() if k not in RESUMABLE_FIELDS}
    diff.update({f"model.{k}": v for k, v in config_diff(saved_model, current_model).items()
                 if f"model.{k}" not in diff})
    if diff:
        flat_saved = {**ckpt_flat(saved), **{f"model.{k}": v for k, v in ckpt_flat(saved_model).items()}}
        parts = [f"{k}: checkpoint has {flat_saved.get(k)!r}, config has {v!r}" for k, v in list(diff.items())[:6]]
        more = f" (and {len(diff) - 6} more)" if len(diff) > 6 else ""
        raise ConfigError(f"cannot resume from {where}: the config differs in {', '.join(diff)}{more} — "
                          + "; ".join(parts))


def ckpt_flat(d: dict) -> dict:
    from archlab.config import flatten

    return flatten(d)


def _eval(task, model, split: str) -> dict:
    """Evaluate without disturbing any training RNG stream (so evaluation never changes training)."""
    rng = ckpt_mod.rng_state()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in task.evaluate(model, split).items()}
    finally:
        model.train(was_training)
        ckpt_mod.set_rng_state(rng)


def train(run_cfg: RunConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          overwrite: bool = False) -> dict[str, Any]:
    """Train run_cfg's model on its task, writing checkpoints and metrics under out_dir; return final metrics.

    The output folder is checked for writability first and locked (OUT/run.lock) for the run's whole life:
    a second run on the same folder is refused. Ctrl-C saves a checkpoint of the current step and raises
    TrainingInterrupted (a KeyboardInterrupt); a second Ctrl-C aborts at once.
    """
    out = Path(out_dir)
    check_threads(run_cfg.train.threads)
    if resume and not out.is_dir():
        raise FileNotFoundError(f"nothing to resume: {str(out)!r} does not exist")
    check_writable(out)
    with RunLock(out):  # before looking at the folder's contents: another run may be writing them
        if resume and not ckpt_mod.step_dirs(out):
            raise FileNotFoundError(f"nothing to resume: no checkpoint under {str(out / 'checkpoints')!r}")
        return _train_locked(run_cfg, out, resume, progress, overwrite)


def _train_locked(run_cfg: RunConfig, out: Path, resume: bool, progress: bool, overwrite: bool) -> dict[str, Any]:
    from archlab.tasks import batch_tokens, to_device

    tc = run_cfg.train
    ckpt_root = out / "checkpoints"
    metrics_path = out / "metrics.jsonl"
    if not resume:
        if ckpt_mod.step_dirs(out):
            if not overwrite:
                raise ValueError(f"output directory {str(out)!r} already holds a run; pass --resume to continue it, "
                                 "--overwrite to discard it, or choose another --out")
            shutil.rmtree(ckpt_root, ignore_errors=True)
        start_fresh(out)  # a run that died before its first checkpoint leaves metrics that are not this run's
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc.device)
    task, model_cfg, model = build_run(run_cfg, device)
    if tc.init_from and not resume:
        init_weights(model, tc.init_from)
    optimizer = build_optimizer(model, tc, device)
    n_params = (model.num_parameters() if hasattr(model, "num_parameters")
                else sum(p.numel() for p in model.parameters()))
    run_dict, model_dict = run_cfg.to_dict(), to_dict(model_cfg)

    start = 0
    if resume:
        found, doc, skipped = ckpt_mod.find_checkpoint(out)  # falls back past incomplete ones, with a notice
        _check_resume(doc.get("run_config", {}), run_dict, doc.get("model_config", {}), model_dict, str(found))
        doc = ckpt_mod.load_checkpoint(found, model, optimizer, device=device, state=doc)
        set_aside_damaged(skipped)  # so they are never taken for this run's newest, nor pruned in its place
        start = int(doc["step"])
        MetricsLog.truncate(metrics_path, start)
        ckpt_mod.set_rng_state(doc["rng"])
    else:
        seed_everything(tc.seed + 1)  # the training stream (dropout) starts from a known state

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.yaml", _yaml(run_dict))
    atomic_write_text(out / "model.yaml", _yaml(model_dict))
    if getattr(task, "tokenizer", None) is not None and hasattr(task.tokenizer, "save"):
        task.tokenizer.save(str(out / "tokenizer.json"))
    log = MetricsLog(metrics_path, out / "tensorboard" if progress else None)

    fwd_model = torch.compile(model) if tc.compile else model
    stop = min(tc.stop_at, tc.steps) if tc.stop_at else tc.steps
    amp = lambda: autocast_context(device, tc.precision)  # noqa: E731

    def save(step: int) -> Path:
        state = {"run_config": run_dict, "model_config": model_dict, "rng": ckpt_mod.rng_state(),
                 "scheduler": {"kind": tc.schedule, "lr": lr_at(max(step - 1, 0), tc), "next_step": step},
                 "data_position": {"step": step, "micro_batch": step * tc.grad_accum},
                 "n_params": n_params, "last_metrics": last}
        return ckpt_mod.save_checkpoint(ckpt_root, step, model, optimizer, state, getattr(task, "tokenizer", None),
                                        keep=tc.keep_checkpoints)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop, initial=start, desc=run_cfg.name, dynamic_ncols=True, leave=True, mininterval=1.0)
    last: dict[str, Any] = {}
    tokens, train_time = 0, 0.0
    model.train()
    step, final_val = start, None  # final_val: the evaluation of the model as it ends, when one is made
    saved = found if resume else None  # the newest checkpoint of this run
    stopper = StopOnInterrupt().__enter__()  # Ctrl-C: finish this step, save it, stop (TrainingInterrupted)
    try:
        for step in range(start + 1, stop + 1):
            t0 = time.perf_counter()
            lr = lr_at(step - 1, tc)
            set_lr(optimizer, lr)
            total_loss, metrics_sum = 0.0, {}
            for micro in range(tc.grad_accum):
                batch = to_device(task.train_batch((step - 1) * tc.grad_accum + micro), device)
                with amp():
                    loss, metrics = task.loss(fwd_model, batch)
                (loss / tc.grad_accum).backward()
                total_loss += float(loss.detach()) / tc.grad_accum
                tokens += batch_tokens(batch)
                for k, v in (metrics or {}).items():
                    if k not in ("loss", "n_tokens", "tokens"):
                        metrics_sum[k] = metrics_sum.get(k, 0.0) + float(v) / tc.grad_accum
            grad_norm = None
            if tc.grad_clip:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_time += time.perf_counter() - t0
            check_finite_loss(total_loss, step, lr, tc)  # NaN/inf: stop with the step, the lr and a hint
            last = {"train_loss": total_loss, "lr": lr}
            if step % max(tc.log_every, 1) == 0 or step == stop:
                rec = {"kind": "train", "step": step, "loss": total_loss, "lr": lr, **metrics_sum,
                       "tokens": tokens, "tokens_per_s": tokens / max(train_time, 1e-9)}
                if grad_norm is not None:
                    rec["grad_norm"] = grad_norm
                log.write(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss:.4f}", lr=f"{lr:.2e}")
            if (tc.eval_every and step % tc.eval_every == 0) or step == tc.steps:
                ev = _eval(task, model, "val")
                final_val = ev if step == stop else None
                if ev:
                    log.write({"kind": "eval", "step": step, "split": "val", **ev})
                    last.update({f"val_{k}": v for k, v in ev.items()})
                    if bar is not None:
                        bar.write(f"step {step}: " + "  ".join(f"val_{k} {v:.4f}" for k, v in ev.items()))
            if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or step == stop or stopper.requested:
                saved = save(step)
                if stopper.requested and step < stop:
                    raise TrainingInterrupted(step, str(saved))
    finally:
        stopper.__exit__()
        if bar is not None:
            bar.close()
        log.close()
    if start >= stop:  # nothing left to run (resumed a finished run): report the evaluation
        final_val = _eval(task, model, "val")
        last.update({f"val_{k}": v for k, v in final_val.items()})
    if tc.plot and metrics_path.is_file():
        plot_losses(metrics_path, out / "loss.png", run_cfg.name)
    if tc.plot and hasattr(task, "report"):  # task-specific figures (confusion matrix, sample predictions)
        with torch.no_grad():
            task.report(model, out, "val", metrics=final_val)  # reuses the final evaluation when there was one
    result = {"step": step, "n_params": n_params, **last, "train_time_s": train_time,
              "tokens_per_s": tokens / train_time if train_time else 0.0, "out_dir": str(out),
              "checkpoint": str(saved or "")}
    atomic_write_text(out / "final_metrics.json", json.dumps(result, indent=1))
    return result


def init_weights(model: torch.nn.Module, path: str) -> dict:
    """Copy every same-named, same-shaped tensor of a checkpoint into model (fine-tuning from pretraining)."""
    ck, _ = ckpt_mod.open_checkpoint(path)  # verified; a run dir falls back to its newest complete checkpoint
    saved = ckpt_mod.read_model_tensors(ck / ckpt_mod.MODEL_FILE)
    own = model.state_dict()
    take = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    if not take:
        raise ckpt_mod.CheckpointError(f"train.init_from={path!r}: no tensor of {str(ck)!r} fits this model")
    model.load_state_dict(take, strict=False)
    return {"loaded": sorted(take), "new": sorted(k for k in own if k not in take)}


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
