"""Checks made before a run builds its model or trains a step: threads, data split, memory; and the
non-finite-loss stop made during training. Each failure is one line naming the field to change.

Memory estimate (training, AdamW, one micro-batch of train.batch_size × the task's sequence length):

    weights 4 B/param (fp32 master weights) + gradients 4 B/param + AdamW exp_avg and exp_avg_sq 8 B/param
    + buffers (RoPE / position caches, BatchNorm statistics) + activations

where activations are ACTIVATION_FACTOR × archlab.cost's Σ of every priced layer's output over one forward
(fp32, or bf16 under autocast). That Σ is a lower bound on what backward keeps (it misses attention
probabilities, norm and SwiGLU intermediates, the gradients being formed); measured peak RSS growth of a
CPU training step (char-llama shapes, d 128–2048, T 64–1024, batch 8–64) was 1.8–2.8 × the Σ above the
16 B/param, hence 2.5: the whole estimate then came out at 0.85–1.13 × the measured growth (five
shapes, /proc RSS, torch 2.13 CPU). The model is walked on the meta device, so nothing is allocated; a
deep stack (> 32 layers) is priced from two shallower copies and extrapolated linearly.
The total is compared with the memory available now (MemAvailable and any cgroup limit on CPU, free
device memory on CUDA); a run whose estimate exceeds it is refused before anything is built.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from archlab.config import ConfigError
from archlab.cost.analytic import dtype_bytes
from archlab.cost.model_cost import (
    example_run,
    human_bytes,
    is_image_config,
    is_sequence_config,
    meta_model,
    workload_for,
)
from archlab.cost.walk import record_calls, walk
from archlab.errors import UserError, one_line
from archlab.tasks import build_task
from archlab.train.checkpoint import notice
from archlab.train.runtime import pick_device, seed_everything, uses_bf16

THREADS_PER_CORE = 4  # train.threads above THREADS_PER_CORE × os.cpu_count() is refused
ACTIVATION_FACTOR = 2.5  # what a training step keeps / Σ priced layer outputs (measured, see above)
DEEP_STACK = 32  # deeper stacks are priced from two copies of DEEP_STACK // 2 and DEEP_STACK layers


class PreflightError(ConfigError):
    """A run that cannot work on this machine (too big for memory, too many threads, data too small)."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


# ------------------------------------------------------------------------------------------- threads
def max_threads() -> int:
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def check_threads(threads: int) -> None:
    """Refuse train.threads above THREADS_PER_CORE × the CPU count (torch crashes on absurd counts)."""
    cap = max_threads()
    if threads > cap:
        raise PreflightError(f"train.threads={threads} is more than {THREADS_PER_CORE} × the {os.cpu_count()} CPU "
                             f"cores of this machine (at most {cap}); use 0 for torch's default")


# ------------------------------------------------------------------------------------------- memory
def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """Memory left under a cgroup limit (v2, then v1), or None when there is no limit."""
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_f).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:
                continue
            return max(int(limit) - int(Path(usage_f).read_text().strip()), 0)
        except (OSError, ValueError):
            continue
    return None


def available_memory(device: Any = "cpu") -> tuple[int | None, str]:
    """(bytes available now, what was measured) for a torch device; None where it cannot be told (MPS)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free), f"free memory on {torch.cuda.get_device_name(dev)}"
    if dev.type != "cpu":
        return None, f"{dev.type} memory"
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    return (min(found) if found else None), "CPU memory"


@dataclass
class MemoryEstimate:
    """Bytes a training run needs, by part (see the module docstring for the convention)."""

    params: int
    weights: float
    gradients: float
    optimizer: float
    buffers: float
    activations: float
    batch: int
    seq_len: int | None
    image_size: int | None
    eval_data: float = 0.0  # held-out windows a text task keeps in memory (train.eval_batches × batch × T)
    shards: int = 1  # processes of a distributed run: each holds its share of the batch (and, with FSDP, state)
    unpriced: str = ""  # why the activations could not be priced (then counted as 0: the total is a lower bound)

    @property
    def total(self) -> float:
        """Bytes per process. Distributed: a lower bound that holds for DDP and FSDP alike (every process
        builds the whole model; gradients, AdamW state and activations are counted at 1/shards)."""
        shared = (self.gradients + self.optimizer + self.activations) / self.shards
        return self.weights + self.buffers + self.eval_data + shared

    def describe(self) -> str:
        shape = f"{self.batch} × {self.seq_len} tokens" if self.seq_len else (
            f"{self.batch} images of {self.image_size}²" if self.image_size else f"batch {self.batch}")
        return (f"weights {human_bytes(self.weights)} for {self.params:,} parameters, gradients "
                f"{human_bytes(self.gradients)}, AdamW state {human_bytes(self.optimizer)}, buffers "
                f"{human_bytes(self.buffers)}, activations {human_bytes(self.activations)} for {shape}"
                + (f", evaluation windows {human_bytes(self.eval_data)}" if self.eval_data >= 2**20 else ""))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total": self.total}


def _layer_fields(cfg: Any) -> dict[str, int]:
    """The depth fields of a sequence config that scale the model linearly ({} for other configs)."""
    out = {}
    for name in ("n_layers", "n_decoder_layers"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and not isinstance(v, bool):
            out[name] = v
    return out


def _price(cfg: Any, batch: int, seq_len: int | None, image_size: int | None, act_dtype: str
           ) -> tuple[int, float, float, str]:
    """(parameters, buffer bytes, activation bytes, why the activations are unpriced or "") of cfg, walked on
    the meta device."""
    wl = workload_for(cfg, batch, seq_len, image_size)
    try:
        model = meta_model(cfg)
    except (RuntimeError, OverflowError) as e:  # a tensor of more than 2^63 bytes cannot even be described
        if isinstance(e, RuntimeError) and "overflow" not in str(e).lower():
            raise
        raise PreflightError(f"the model is too large to build: {str(e).splitlines()[0]}; use a smaller model "
                             "(model.d_model, model.n_layers, ffn.d_ff, vocabulary)") from None
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    try:
        rows = walk(model, record_calls(model, example_run(cfg, wl)), cfg=cfg)
    except (RuntimeError, NotImplementedError) as e:  # an op with no meta kernel, or a data-dependent one
        why = f"the cost walk cannot run this model on the meta device ({type(e).__name__}: {one_line(e)[:160]})"
        return params, float(buffers), 0.0, why
    return params, float(buffers), sum(r.out_elems for r in rows) * dtype_bytes(act_dtype), ""


def estimate_training_memory(model_cfg: Any, batch: int, seq_len: int | None = None,
                             image_size: int | None = None, act_dtype: str = "fp32") -> MemoryEstimate:
    """Memory to train model_cfg with AdamW on micro-batches of `batch` (see the module docstring)."""
    if is_sequence_config(model_cfg):
        seq_len = seq_len or model_cfg.max_seq_len
        image_size = None
    elif is_image_config(model_cfg):
        image_size = image_size or model_cfg.image_size
        seq_len = None
    depth = _layer_fields(model_cfg)
    deepest = max(depth.values(), default=0)
    if deepest <= DEEP_STACK:
        params, buffers, acts, unpriced = _price(model_cfg, batch, seq_len, image_size, act_dtype)
    else:  # price two shallower copies and extrapolate (a homogeneous or cycled stack is linear in depth)
        k = DEEP_STACK // 2

        def shallow(n: int):  # stacks no deeper than k keep their depth (an over-estimate when between)
            changes = {name: n for name, v in depth.items() if v > k}
            return _price(dataclasses.replace(model_cfg, **changes), batch, seq_len, image_size, act_dtype)

        a, b = shallow(k), shallow(2 * k)
        scale = (deepest - k) / k
        params, buffers, acts = (int(a[0] + scale * (b[0] - a[0])), a[1] + scale * (b[1] - a[1]),
                                 a[2] + scale * (b[2] - a[2]))
        unpriced = a[3] or b[3]
    return MemoryEstimate(params=params, weights=4.0 * params, gradients=4.0 * params, optimizer=8.0 * params,
                          buffers=buffers, activations=ACTIVATION_FACTOR * acts, batch=batch, seq_len=seq_len,
                          image_size=image_size, unpriced=unpriced)


def task_seq_len(task: Any) -> int | None:
    """The sequence length a task trains on (block_size, seq_len or max_len), None if it does not say."""
    for name in ("block_size", "seq_len", "max_len"):
        v = getattr(task, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def eval_window_bytes(task: Any) -> float:
    """Bytes of the evaluation windows a text task builds up front (archlab.data.lm_data.eval_batches):
    max_eval_batches × batch_size windows of block_size int64 inputs and labels, plus their offsets."""
    T, n = getattr(task, "block_size", None), getattr(task, "max_eval_batches", None)
    if getattr(task, "train_ids", None) is None or not isinstance(T, int) or not isinstance(n, int):
        return 0.0
    return float(n) * task.batch_size * (16 * T + 16)


def _world() -> tuple[int, int]:
    """(processes in the run, processes on this host): (1, 1) unless torch.distributed is initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 1
    world = dist.get_world_size()
    return world, int(os.environ.get("LOCAL_WORLD_SIZE", world))


def check_memory(run_cfg: Any, task: Any, model_cfg: Any, device: Any = "cpu",
                 available: int | None = None) -> MemoryEstimate:
    """Refuse a run whose estimated training memory exceeds the memory available (None: cannot tell)."""
    tc = run_cfg.train
    act_dtype = "bf16" if uses_bf16(device, tc.precision) else "fp32"
    est = estimate_training_memory(model_cfg, tc.batch_size, task_seq_len(task), None, act_dtype)
    est.eval_data = eval_window_bytes(task)
    est.shards, local = _world()
    if est.unpriced:  # said, not hidden: the check below then compares weights and optimizer state only
        notice(f"memory preflight: activations not counted: {est.unpriced}; the estimate covers weights, "
               "gradients and AdamW state only")
    where = "memory"
    if available is None:
        available, where = available_memory(device)
    need = est.total * (local if torch.device(device).type == "cpu" else 1)  # CPU processes share one host
    if available is not None and need > available:
        per = f" ({local} processes on this host)" if need != est.total else ""
        raise PreflightError(
            f"this run needs about {human_bytes(need)}{per} to train ({est.describe()}) but only "
            f"{human_bytes(available)} of {where} is available; " + (
                "use fewer train.eval_batches" if est.eval_data > est.total / 2 else
                "use a smaller model (model.d_model, model.n_layers) or a smaller train.batch_size "
                "(train.grad_accum keeps the effective batch)"))
    return est


# ------------------------------------------------------------------------------------------- data
def check_split(task: Any) -> None:
    """A text task's corpus must leave a full window (block_size + 1 tokens) in both of its splits."""
    T = getattr(task, "block_size", None)
    train_ids, val_ids = getattr(task, "train_ids", None), getattr(task, "val_ids", None)
    if not isinstance(T, int) or train_ids is None or val_ids is None:
        return
    n_train, n_val = len(train_ids), len(val_ids)
    if min(n_train, n_val) >= T + 1:
        return
    frac = task.option("val_fraction", 0.1) if hasattr(task, "option") else "?"
    fits = min(n_train, n_val) - 1
    hint = f"task.block_size={fits} or less" if fits >= 1 else "a larger task.val_fraction"
    raise PreflightError(
        f"task.corpus is too small for the split: its {n_train + n_val:,} tokens give {n_train:,} for training "
        f"and {n_val:,} for validation (task.val_fraction={frac}), but task.block_size={T} needs at least "
        f"{T + 1} in each; use a longer corpus or {hint}")


IMAGE_TASKS = ("image_classification",)


def check_task_model(run_cfg: Any) -> None:
    """A text task needs a sequence model (vocab_size, max_seq_len), an image task an image model."""
    cfg = run_cfg.model_config()
    name, arch = run_cfg.task_name, getattr(cfg, "arch", type(cfg).__name__)
    if name in IMAGE_TASKS and not is_image_config(cfg):
        raise PreflightError(f"task {name!r} needs an image model (a CNN preset such as resnet-small) but the "
                             f"model is a {arch} sequence model")
    if name not in IMAGE_TASKS and not is_sequence_config(cfg) and is_image_config(cfg):
        raise PreflightError(f"task {name!r} needs a sequence model (a preset such as char-llama) but the model "
                             f"is a {arch} image model")


def check_before_build(run_cfg: Any, task: Any, model_cfg: Any, device: Any = "cpu") -> MemoryEstimate:
    """Every check that needs the task and the model config but not the model: the split, then memory."""
    check_split(task)
    return check_memory(run_cfg, task, model_cfg, device)


# ------------------------------------------------------------------------------------------- divergence
def check_finite_loss(loss: float, step: int, lr: float, tc: Any) -> None:
    """Stop a run whose training loss is NaN or infinite, with the step, the lr and what to change."""
    if math.isfinite(loss):
        return
    clip = (f"gradients are already clipped at train.grad_clip={tc.grad_clip:g}, a smaller value "
            f"(--set train.grad_clip={tc.grad_clip / 2:g}) may also help" if tc.grad_clip
            else "or clip gradients (--set train.grad_clip=1.0)")
    raise TrainingDiverged(
        f"training loss became {loss} at step {step} (learning rate {lr:.3g}, train.lr={tc.lr:g}); lower the "
        f"learning rate (--set train.lr={tc.lr / 10:.3g}){';' if tc.grad_clip else ''} {clip}")


# ------------------------------------------------------------------------------------------- dry run
def dry_run(run_cfg: Any) -> dict[str, Any]:
    """Make every check `archlab train` makes before training, build nothing, and describe the run."""
    tc = run_cfg.train
    check_threads(tc.threads)
    device = pick_device(tc.device)
    check_task_model(run_cfg)
    seed_everything(tc.seed)
    task = build_task(run_cfg)
    overrides = task.model_overrides()
    model_cfg = run_cfg.model_config(overrides)
    est = check_before_build(run_cfg, task, model_cfg, device)
    available, _ = available_memory(device)
    return {"name": run_cfg.name, "task": run_cfg.task_name, "model": getattr(model_cfg, "name", "?"),
            "device": str(device), "params": est.params, "memory_estimate": human_bytes(est.total),
            "memory_available": human_bytes(available) if available is not None else None,
            "steps": tc.steps, "batch_size": tc.batch_size, "seq_len": est.seq_len}
