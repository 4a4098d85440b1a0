"""AdamW with decoupled weight-decay groups, and the warm-up + cosine learning-rate schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

from archlab.train.run_config import TrainConfig


def _is_embedding(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, nn.Embedding) or name.endswith("Embedding") or name in ("LearnedPositions",)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into decay / no-decay groups.

    Rule: a parameter is decayed iff it has ≥2 dimensions, is not owned by an embedding table
    (token, segment, learned-position; a tied LM head shares the embedding's tensor and so is not
    decayed either), and is not flagged `_no_weight_decay` (Mamba's A_log, D). Biases, norm gains and
    other vectors are never decayed. Tied tensors appear once, named by their first owner.
    """
    embedding_params = {id(p) for m in model.modules() if _is_embedding(m) for p in m.parameters(recurse=False)}
    decay, no_decay, seen = [], [], set()
    decay_names, no_decay_names = [], []
    for name, p in model.named_parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        if p.dim() >= 2 and id(p) not in embedding_params and not getattr(p, "_no_weight_decay", False):
            decay.append(p)
            decay_names.append(name)
        else:
            no_decay.append(p)
            no_decay_names.append(name)
    groups = [{"params": decay, "weight_decay": weight_decay, "names": decay_names},
              {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names}]
    return [g for g in groups if g["params"]]


def fused_supported(device: torch.device) -> bool:
    """Fused AdamW kernels exist for CUDA (and recent CPU builds, which we leave on foreach for speed parity)."""
    return device.type == "cuda"


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over param_groups(model); fused where supported unless cfg.fused says otherwise."""
    fused = fused_supported(device) if cfg.fused is None else cfg.fused
    groups = param_groups(model, cfg.weight_decay)
    kwargs = {"fused": True} if fused else {"foreach": device.type != "cpu" or None}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    opt = torch.optim.AdamW([{k: v for k, v in g.items()} for g in groups], lr=cfg.lr, betas=tuple(cfg.betas),
                            eps=cfg.eps, **kwargs)
    return opt


def lr_at(step: int, cfg: TrainConfig, span: int | None = None) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warm-up, then cosine/linear decay to min_lr.

    `span`: the steps the decay spans (default train.steps). A finished run extended with a larger train.steps
    keeps its original span, so every step past it runs at min_lr (docs/training.md, "Extending a finished run").
    """
    peak = cfg.lr
    floor = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return peak
    span = max((cfg.steps if span is None else span) - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.schedule == "linear":
        return peak + (floor - peak) * progress
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate."""
    for g in optimizer.param_groups:
        g["lr"] = lr
