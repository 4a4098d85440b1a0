"""Where and how a run computes: its device, its RNG seeds, and whether it uses bf16 (the one rule for all)."""
from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch

from archlab.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; an explicit device that is missing is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device='mps' but MPS is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def uses_bf16(device: Any, precision: str) -> bool:
    """Whether a run computes in bf16: when train.precision asks for it, or under 'auto' on CUDA."""
    return precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda")


def autocast_context(device: Any, precision: str):
    """bf16 autocast where uses_bf16 says so, plain fp32 otherwise."""
    if not uses_bf16(device, precision):
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
