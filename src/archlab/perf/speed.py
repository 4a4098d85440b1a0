"""Fast-math switches, SDPA backend selection and activation checkpointing."""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def enable_tf32(on: bool = True) -> None:
    """Let fp32 matmuls and convolutions use TF32 tensor cores (Ampere+); bf16 autocast regions are unaffected."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    torch.set_float32_matmul_precision("high" if on else "highest")


def _backend_enum(name: str):
    from torch.nn.attention import SDPBackend

    table = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
             "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    if name not in table:
        raise ValueError(f"SDPA backend {name!r} unknown (expected one of {list(table)})")
    return table[name]


def sdpa_backend(*names: str):
    """Context manager restricting scaled_dot_product_attention to the named backends ('flash', 'cudnn', ...)."""
    from torch.nn.attention import sdpa_kernel

    if not names:
        return contextlib.nullcontext()
    return sdpa_kernel([_backend_enum(n) for n in names])


def checkpoint_blocks(model: nn.Module, every: int = 1) -> int:
    """Recompute every `every`-th residual block's activations in backward (saves memory, costs ~1 forward).

    Wraps each block's forward in place with non-reentrant torch.utils.checkpoint, so parameter names and
    state_dict keys do not change. Returns how many blocks were wrapped.
    """
    stacks = [getattr(model, n, None) for n in ("encoder", "decoder")]
    blocks = [b for s in stacks if s is not None for b in s.blocks]
    if not blocks and hasattr(model, "blocks"):
        blocks = list(model.blocks)
    wrapped = 0
    for i, block in enumerate(blocks):
        if i % every or getattr(block, "_archlab_checkpointed", False):
            continue
        inner = block.forward

        @functools.wraps(inner)
        def fwd(*args, _inner=inner, **kwargs):
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = fwd
        block._archlab_checkpointed = True
        wrapped += 1
    return wrapped


def time_cuda(fn, *, warmup: int = 3, reps: int = 10) -> float:
    """Median seconds per call of fn() on the current CUDA device (CUDA events around each call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def copy_bandwidth(n_bytes: int = 1 << 30) -> float:
    """Measured device-memory bandwidth in bytes/s: a device-to-device copy, counting bytes read + written."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    t = time_cuda(lambda: dst.copy_(src), warmup=3, reps=10)
    return 2 * src.numel() * 4 / t
