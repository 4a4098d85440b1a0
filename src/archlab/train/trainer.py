"""The training loop: AdamW + warm-up/cosine, clipping, accumulation, autocast, eval, checkpoints, resume."""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from archlab.config import ConfigError, config_diff, flatten, to_dict
from archlab.errors import MissingFileError
from archlab.fileio import atomic_write_text
from archlab.models import build_model, model_config_from_dict
from archlab.tasks import batch_tokens, build_task, to_device
from archlab.train import checkpoint as ckpt_mod
from archlab.train.interrupt import StopOnInterrupt, TrainingInterrupted
from archlab.train.metrics_log import MetricsLog, plot_losses, read_metrics, throughput  # noqa: F401 - re-exported
from archlab.train.optim import build_optimizer, lr_at, set_lr
from archlab.train.preflight import check_before_build, check_finite_loss, check_task_model, check_threads
from archlab.train.run_config import RESUMABLE_FIELDS, RunConfig, run_config_from_dict
from archlab.train.run_folder import RunFinished, RunLock, check_writable, set_aside_damaged, start_fresh
from archlab.train.runtime import autocast_context, seed_everything
from archlab.train.strategy import SingleProcess


def build_run(run_cfg: RunConfig, device: torch.device | str = "cpu"):
    """(task, model config, model) for a run config, seeded by train.seed (the same model every time)."""
    check_task_model(run_cfg)  # a text task on a CNN (or the reverse) is refused before the data is read
    seed_everything(run_cfg.train.seed)
    task = build_task(run_cfg)
    overrides = task.model_overrides()
    model_cfg = run_cfg.model_config(overrides)
    check_before_build(run_cfg, task, model_cfg, device)  # split and memory estimate, before any allocation
    seed_everything(run_cfg.train.seed)  # model init does not depend on how much RNG the task used
    model = build_model(model_cfg).to(device)
    return task, model_cfg, model


def _with_defaults(saved: dict, normalise) -> dict:
    """A config dict saved by older code, with the fields added to archlab since then filled in by their
    defaults (so such a run still resumes); a dict that no longer parses is compared as it was saved."""
    try:
        return normalise(saved)
    except (ConfigError, ValueError, TypeError, KeyError):
        return saved


def _check_resume(saved: dict, current: dict, saved_model: dict, current_model: dict, where: str) -> None:
    """Refuse a resume whose config differs from the checkpoint's in anything but RESUMABLE_FIELDS."""
    saved = _with_defaults(saved, lambda d: run_config_from_dict(d).to_dict()) if saved else saved
    saved_model = _with_defaults(saved_model, lambda d: to_dict(model_config_from_dict(d)))
    diff = {k: v for k, v in config_diff(saved, current).items()
            if k not in RESUMABLE_FIELDS and k != "train.steps"}  # train.steps may grow: _check_not_finished
    diff.update({f"model.{k}": v for k, v in config_diff(saved_model, current_model).items()
                 if f"model.{k}" not in diff})
    if diff:
        flat_saved = {**flatten(saved), **{f"model.{k}": v for k, v in flatten(saved_model).items()}}
        parts = [f"{k}: checkpoint has {flat_saved.get(k)!r}, config has {v!r}" for k, v in list(diff.items())[:6]]
        more = f" (and {len(diff) - 6} more)" if len(diff) > 6 else ""
        raise ConfigError(f"cannot resume from {where}: the config differs in {', '.join(diff)}{more} — "
                          + "; ".join(parts))


def _check_not_finished(run_cfg: RunConfig, found: tuple, out: Path) -> None:
    """Before any work: a resume that has nothing left to do raises RunFinished (the run is left as it is);
    train.steps may only grow on resume (a finished run is extended by a larger train.steps)."""
    (where, doc, _), tc = found, run_cfg.train
    step = int(doc["step"])
    _check_resume(doc.get("run_config", {}), run_cfg.to_dict(), {}, {}, str(where))  # the model's fields: later
    saved_steps = ((doc.get("run_config") or {}).get("train") or {}).get("steps", tc.steps)
    if isinstance(saved_steps, int) and tc.steps < saved_steps:
        raise ConfigError(f"train.steps={tc.steps} is smaller than the run's train.steps={saved_steps}: a resumed "
                          f"run keeps its length or extends it (train.steps > {saved_steps}); use train.stop_at to "
                          "stop earlier")
    if step < _stop(tc):
        return
    if step >= tc.steps:
        raise RunFinished(f"run {str(out)!r} is finished (step {step} of train.steps={tc.steps}); nothing to "
                          f"resume. To train it further, pass --set train.steps=N with N > {step}")
    raise RunFinished(f"run {str(out)!r} already stands at step {step} (train.stop_at={tc.stop_at}); raise "
                      "train.stop_at, or clear it with --set train.stop_at=0, to continue it")


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
          overwrite: bool = False, strategy: SingleProcess | None = None,
          tensorboard: bool | None = None) -> dict[str, Any]:
    """Train run_cfg's model on its task, writing checkpoints and metrics under out_dir; return final metrics.

    The output folder is checked for writability first and locked (OUT/run.lock) for the run's whole life:
    a second run on the same folder is refused. Ctrl-C saves a checkpoint of the current step and raises
    TrainingInterrupted (a KeyboardInterrupt); a second Ctrl-C aborts at once.
    `strategy` (archlab.train.strategy) runs this same loop as one rank of a DDP / FSDP2 job
    (archlab.train.distributed); the default is one process. `tensorboard` (default: `progress`) writes
    OUT/tensorboard event files when tensorboard is installed.
    """
    strategy = strategy or SingleProcess()
    out = Path(out_dir)
    check_threads(run_cfg.train.threads)
    with contextlib.ExitStack() as held:  # the main process's lock on the folder, for the run's whole life
        strategy.on_main(lambda: _open_run_folder(out, resume, overwrite, strategy, held))
        return _train_locked(run_cfg, out, resume, progress, strategy, progress if tensorboard is None else tensorboard)


def _open_run_folder(out: Path, resume: bool, overwrite: bool, strategy: SingleProcess,
                     held: contextlib.ExitStack) -> None:
    """Check the folder is writable, lock it, and clear what a fresh run must not inherit."""
    if resume and not out.is_dir():
        raise MissingFileError(f"nothing to resume: {str(out)!r} does not exist")
    check_writable(out)
    held.enter_context(RunLock(out))  # before looking at the folder's contents: another run may be writing them
    if resume:
        if not strategy.has_checkpoint(out):
            raise MissingFileError(f"nothing to resume: no checkpoint under {str(strategy.checkpoint_dir(out))!r}")
        return
    if strategy.has_checkpoint(out):
        if not overwrite:
            raise ConfigError(f"output directory {str(out)!r} already holds a run; pass --resume to continue it, "
                              "--overwrite to discard it, or choose another --out")
        strategy.discard_checkpoints(out)
    start_fresh(out)  # a run that died before its first checkpoint leaves metrics that are not this run's


@dataclass
class _Run:
    """What the loop works on."""

    cfg: RunConfig
    out: Path
    strategy: SingleProcess
    device: torch.device
    task: Any
    model: torch.nn.Module  # the plain model: evaluation, clipping, the optimizer, checkpoints
    fwd: Any  # what training steps call: the model as the strategy wraps it (compiled if asked)
    optimizer: torch.optim.Optimizer
    run_dict: dict
    model_dict: dict
    n_params: int


@dataclass
class _Progress:
    """Where the loop stands."""

    step: int
    saved: Path | None  # the newest checkpoint of this run
    last: dict = field(default_factory=dict)
    final_val: dict | None = None  # the evaluation of the model as it ends, when one is made
    tokens: int = 0  # since step 0, across resumes (saved in each checkpoint's "counters")
    train_time: float = 0.0  # seconds spent in training steps since step 0, across resumes
    span: int = 0  # the steps the lr schedule's decay spans: the run's first train.steps (optim.lr_at)


def _stop(tc) -> int:
    return min(tc.stop_at, tc.steps) if tc.stop_at else tc.steps


def _build(run_cfg: RunConfig, out: Path, resume: bool, strategy: SingleProcess) -> _Run:
    tc = run_cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = strategy.device(tc)
    task, model_cfg, model = build_run(run_cfg, device)
    if tc.init_from and not resume:
        init_weights(model, tc.init_from)
    n_params = (model.num_parameters() if hasattr(model, "num_parameters")
                else sum(p.numel() for p in model.parameters()))
    wrapped = strategy.wrap(model, tc)
    optimizer = build_optimizer(model, tc, device)
    fwd = torch.compile(wrapped) if tc.compile else wrapped
    return _Run(run_cfg, out, strategy, device, task, model, fwd, optimizer, run_cfg.to_dict(), to_dict(model_cfg),
                n_params)


def _resume_or_seed(run: _Run, found: tuple | None) -> _Progress:
    """A resume (`found`: the strategy's find_checkpoint) loads weights, optimizer state, the RNG state, the
    token and time counters and the schedule's span saved with the checkpoint; a fresh run starts the training
    stream (dropout) from train.seed + 1."""
    if found is None:
        seed_everything(run.cfg.train.seed + 1)
        return _Progress(0, None, span=run.cfg.train.steps)
    st = run.strategy
    found, doc, skipped = found
    _check_resume(doc.get("run_config", {}), run.run_dict, doc.get("model_config", run.model_dict), run.model_dict,
                  str(found))
    doc = st.load_checkpoint(found, run.model, run.optimizer, run.device, doc)
    set_aside_damaged(skipped)  # so they are never taken for this run's newest, nor pruned in its place
    start = int(doc["step"])
    if st.is_main:
        MetricsLog.truncate(run.out / "metrics.jsonl", start)
    if "rng" in doc:
        ckpt_mod.set_rng_state(doc["rng"])
    else:  # a distributed checkpoint written before the RNG state was saved with it
        seed_everything(run.cfg.train.seed + 1 + start)
    counters = doc.get("counters") or {}  # absent in checkpoints of older archlab: counted from this resume
    span = ((doc.get("scheduler") or {}).get("span")
            or ((doc.get("run_config") or {}).get("train") or {}).get("steps") or run.cfg.train.steps)
    return _Progress(start, found, last=dict(doc.get("last_metrics") or {}), tokens=int(counters.get("tokens", 0)),
                     train_time=float(counters.get("train_time_s", 0.0)), span=int(span))


def _write_run_files(run: _Run) -> None:
    out = run.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.yaml", _yaml(run.run_dict))
    atomic_write_text(out / "model.yaml", _yaml(run.model_dict))
    if getattr(run.task, "tokenizer", None) is not None and hasattr(run.task.tokenizer, "save"):
        run.task.tokenizer.save(str(out / "tokenizer.json"))


def _train_locked(run_cfg: RunConfig, out: Path, resume: bool, progress: bool,
                  strategy: SingleProcess, tensorboard: bool = False) -> dict[str, Any]:
    found = strategy.find_checkpoint(out) if resume else None  # falls back past incomplete ones, with a notice
    if found is not None:
        _check_not_finished(run_cfg, found, out)  # before building anything
    run = _build(run_cfg, out, resume, strategy)
    pos = _resume_or_seed(run, found)
    start, log, bar = pos.step, None, None
    if strategy.is_main:
        _write_run_files(run)
        log = MetricsLog(out / "metrics.jsonl", out / "tensorboard" if tensorboard else None, announce=progress)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=_stop(run_cfg.train), initial=start, desc=run_cfg.name, dynamic_ncols=True, leave=True,
                       mininterval=1.0)
    run.model.train()
    try:
        _loop(run, pos, log, bar)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    return _finish(run, pos)


def _loop(run: _Run, pos: _Progress, log: MetricsLog | None, bar) -> None:
    """Steps pos.step+1 .. stop: train, log, evaluate and checkpoint at the configured cadences."""
    tc, strategy = run.cfg.train, run.strategy
    stop = _stop(tc)
    stopper = StopOnInterrupt().__enter__()  # Ctrl-C: finish this step, save it, stop (TrainingInterrupted)
    try:
        for step in range(pos.step + 1, stop + 1):
            pos.step = step
            loss, lr, metrics, grad_norm = _train_step(run, step, pos)
            strategy.losses.append(loss)
            check_finite_loss(loss, step, lr, tc)  # NaN/inf: stop with the step, the lr and a hint
            pos.last = {"train_loss": loss, "lr": lr}
            if log is not None and (step % max(tc.log_every, 1) == 0 or step == stop):
                rec = {"kind": "train", "step": step, "loss": loss, "lr": lr, **metrics,
                       **throughput(pos.tokens, step * tc.batch_size * tc.grad_accum, pos.train_time)}
                if grad_norm is not None:
                    rec["grad_norm"] = grad_norm
                log.write(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            if (tc.eval_every and step % tc.eval_every == 0) or step == tc.steps:
                _evaluate(run, pos, log, bar, final=step == stop)
            interrupted = strategy.any(stopper.requested)  # every rank stops at the same step
            if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or step == stop or interrupted:
                pos.saved = _save(run, pos)
                if strategy.is_main and tc.plot:  # the plot follows every checkpoint (and a Ctrl-C)
                    plot_losses(run.out / "metrics.jsonl", run.out / "loss.png", run.cfg.name)
                if interrupted and step < stop:
                    raise TrainingInterrupted(step, str(pos.saved))
    finally:
        stopper.__exit__()


def _train_step(run: _Run, step: int, pos: _Progress) -> tuple[float, float, dict, float | None]:
    """One optimiser step over train.grad_accum micro-batches of the global batch:
    (loss, lr, other metrics — both averaged over micro-batches and processes —, grad norm before clipping)."""
    tc, strategy = run.cfg.train, run.strategy
    t0 = time.perf_counter()
    lr = lr_at(step - 1, tc, pos.span)
    set_lr(run.optimizer, lr)
    total_loss, metrics_sum = 0.0, {}
    for micro in range(tc.grad_accum):
        batch = run.task.train_batch((step - 1) * tc.grad_accum + micro)
        pos.tokens += batch_tokens(batch)  # the global batch's
        batch = to_device(strategy.shard(batch), run.device)
        with strategy.accumulating(run.fwd, last=micro == tc.grad_accum - 1):
            with autocast_context(run.device, tc.precision):
                loss, metrics = run.task.loss(run.fwd, batch)
            (loss / tc.grad_accum).backward()
        total_loss += float(loss.detach()) / tc.grad_accum
        for k, v in (metrics or {}).items():
            if k not in ("loss", "n_tokens", "tokens"):
                metrics_sum[k] = metrics_sum.get(k, 0.0) + float(v) / tc.grad_accum
    grad_norm = None
    if tc.grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
        grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP2: a DTensor
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    pos.train_time += time.perf_counter() - t0
    metrics = strategy.mean({"loss": total_loss, **metrics_sum})
    return metrics.pop("loss"), lr, metrics, grad_norm


def _evaluate(run: _Run, pos: _Progress, log: MetricsLog | None, bar, final: bool) -> None:
    ev = _eval(run.task, run.model, "val")
    pos.final_val = ev if final else None
    if ev:
        if log is not None:
            log.write({"kind": "eval", "step": pos.step, "split": "val", **ev})
        pos.last.update({f"val_{k}": v for k, v in ev.items()})
        if bar is not None:
            bar.write(f"step {pos.step}: " + "  ".join(f"val_{k} {v:.4f}" for k, v in ev.items()))


def _save(run: _Run, pos: _Progress) -> Path:
    tc, step = run.cfg.train, pos.step
    state = {"run_config": run.run_dict, "model_config": run.model_dict, "rng": ckpt_mod.rng_state(),
             "scheduler": {"kind": tc.schedule, "lr": lr_at(max(step - 1, 0), tc, pos.span), "next_step": step,
                           "span": pos.span},
             "counters": {"tokens": pos.tokens, "train_time_s": pos.train_time},
             "data_position": {"step": step, "micro_batch": step * tc.grad_accum},
             "n_params": run.n_params, "last_metrics": pos.last}
    return run.strategy.save_checkpoint(run.out, step, run.model, run.optimizer, state,
                                        getattr(run.task, "tokenizer", None), tc.keep_checkpoints)


def _finish(run: _Run, pos: _Progress) -> dict[str, Any]:
    """Plots, task figures and final_metrics.json (main process); the result dict (every process)."""
    tc, out, main = run.cfg.train, run.out, run.strategy.is_main
    if main and tc.plot and hasattr(run.task, "report") and run.strategy.can_report():
        with torch.no_grad():  # task-specific figures (confusion matrix, sample predictions)
            run.task.report(run.model, out, "val", metrics=pos.final_val)  # reuses the final evaluation
    result = {"step": pos.step, "n_params": run.n_params, **pos.last, "tokens": pos.tokens,
              "train_time_s": pos.train_time,  # tokens and time: cumulative since step 0, across resumes
              "tokens_per_s": pos.tokens / pos.train_time if pos.train_time else 0.0, "out_dir": str(out),
              "checkpoint": str(pos.saved or ""), **run.strategy.describe()}
    if main:
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
