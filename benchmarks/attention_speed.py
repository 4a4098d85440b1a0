"""archlab attention vs scaled_dot_product_attention's best backend (flash / efficient / cudnn), bf16, on CUDA.

Rows: forward and forward+backward at several (B, H, Hkv, T, d) shapes, causal.
  archlab fn        archlab.nn.attention.attention_sdpa as the model now calls it (is_causal=True, default dispatch)
  archlab fn+mask   the same with an explicit (1,1,T,T) bool causal mask, which the decoder passed before it
                    left plain causal masks to is_causal (shows why that change was made)
  module            archlab Attention module (projections + attention) vs the same module forced to the best backend
Ratio = best backend time / archlab time (≥ 1 means archlab is as fast).
Run: PYTHONPATH=src python benchmarks/attention_speed.py
"""
from __future__ import annotations

import argparse

import torch

from archlab.nn.attention import Attention, AttentionConfig, attention_sdpa, build_mask
from archlab.nn.mixer import MixerInputs
from archlab.perf.speed import sdpa_backend, time_cuda
from archlab.registry import Context

SHAPES = [(16, 12, 12, 1024, 64), (16, 12, 4, 1024, 64), (8, 16, 16, 2048, 128), (4, 32, 8, 4096, 128),
          (1, 32, 32, 8192, 128)]
BACKENDS = ("flash", "efficient", "cudnn")


def bench_fn(fn, q, k, v, backward: bool) -> float:
    if not backward:
        with torch.no_grad():
            return time_cuda(fn, warmup=5, reps=40)
    grad = torch.randn_like(q)

    def fb():
        q.grad = k.grad = v.grad = None
        fn().backward(grad)
    return time_cuda(fb, warmup=5, reps=40)


def run_shape(B: int, H: int, Hkv: int, T: int, d: int, dtype) -> list[tuple]:
    """Forward and forward+backward rows for one shape."""
    q = torch.randn(B, H, T, d, device="cuda", dtype=dtype, requires_grad=True)
    k = torch.randn(B, Hkv, T, d, device="cuda", dtype=dtype, requires_grad=True)
    v = torch.randn(B, Hkv, T, d, device="cuda", dtype=dtype, requires_grad=True)
    mask = build_mask(T, T, causal=True, device="cuda")
    causal = lambda: attention_sdpa(q, k, v, is_causal=True)
    masked_fn = lambda: attention_sdpa(q, k, v, mask=mask)
    rows = []
    for backward in (False, True):
        times = {}
        for name in BACKENDS:
            try:
                with sdpa_backend(name):
                    times[name] = bench_fn(causal, q, k, v, backward)
            except RuntimeError:
                times[name] = float("nan")
        valid = {n: t for n, t in times.items() if t == t}
        best_name = min(valid, key=valid.get)
        ours = bench_fn(causal, q, k, v, backward)
        try:
            masked = bench_fn(masked_fn, q, k, v, backward)
        except RuntimeError:
            masked = float("nan")
        mode = "fwd+bwd" if backward else "fwd"
        rows.append((f"B{B} H{H}/{Hkv}{' gqa' if H != Hkv else ''} T{T} d{d}", mode, times, best_name, ours, masked))
    return rows


def module_bench(Hkv: int) -> tuple[float, str, float]:
    """archlab Attention module fwd+bwd under bf16 autocast: default dispatch vs each forced backend."""
    mod = Attention(AttentionConfig(n_heads=12, n_kv_heads=Hkv, head_dim=64, bias=Hkv == 12), Context(768)).cuda()
    x = torch.randn(16, 1024, 768, device="cuda", requires_grad=True)
    g = torch.randn_like(x)

    def fb():
        with torch.autocast("cuda", torch.bfloat16):
            y = mod(x, MixerInputs(causal=True))
        y.backward(g)
    t_default = time_cuda(fb, warmup=5, reps=40)
    best = {}
    for name in BACKENDS:
        try:
            with sdpa_backend(name):
                best[name] = time_cuda(fb, warmup=5, reps=40)
        except RuntimeError:
            pass
    bn = min(best, key=best.get)
    return t_default, bn, best[bn]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}; torch {torch.__version__}; dtype {args.dtype}; causal; median of 40 after 5 warm-ups")
    rows = [row for shape in SHAPES for row in run_shape(*shape, dtype=dtype)]
    print(f"\n{'shape':30s} {'mode':8s} " + " ".join(f"{b + ' ms':>12s}" for b in BACKENDS)
          + f" {'best':>9s} {'archlab ms':>11s} {'ratio':>6s} {'mask ms':>9s} {'ratio':>6s}")
    for shape, mode, times, best, ours, masked in rows:
        cells = " ".join(f"{times[b] * 1e3:12.3f}" for b in BACKENDS)
        print(f"{shape:30s} {mode:8s} {cells} {best:>9s} {ours * 1e3:11.3f} {times[best] / ours:6.3f} "
              f"{masked * 1e3:9.3f} {times[best] / masked:6.3f}")

    print("\nmodule: archlab Attention (D=768, 12 heads; projections included), B16 T1024, fwd+bwd")
    for Hkv in (12, 4):
        t_default, bn, t_best = module_bench(Hkv)
        print(f"  Hkv={Hkv:2d}: default dispatch {t_default * 1e3:.3f} ms, forced {bn} {t_best * 1e3:.3f} ms, "
              f"ratio {t_best / t_default:.3f}")


if __name__ == "__main__":
    main()
