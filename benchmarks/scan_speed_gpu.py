"""Mamba selective scan on CUDA: sequential reference vs chunked scan (several chunk sizes) vs a Triton kernel.

Shape: Mamba-130M's inner width (E = 2·768 = 1536, N = 16), batch 2, length 2048, fp32.
Every fast path is checked against the reference (relative error) before it is timed.
Run: PYTHONPATH=src python benchmarks/scan_speed_gpu.py [--length 2048]
"""
from __future__ import annotations

import argparse

import torch

from archlab.nn.ssm import selective_scan_chunked, selective_scan_reference
from archlab.perf.speed import time_cuda


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--inner", type=int, default=1536)
    ap.add_argument("--state", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    Bn, T, E, N = args.batch, args.length, args.inner, args.state
    u = torch.randn(Bn, T, E, device="cuda")
    delta = torch.nn.functional.softplus(torch.randn(Bn, T, E, device="cuda") - 2)
    A = -torch.exp(torch.randn(E, N, device="cuda") * 0.5)
    B, C = torch.randn(Bn, T, N, device="cuda"), torch.randn(Bn, T, N, device="cuda")
    D = torch.randn(E, device="cuda")
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; B={Bn} T={T} E={E} N={N} fp32")
    with torch.no_grad():
        ref = selective_scan_reference(u, delta, A, B, C, D)
        t_ref = time_cuda(lambda: selective_scan_reference(u, delta, A, B, C, D), warmup=1, reps=3)

        def rel(y):
            return ((y - ref).norm() / ref.norm()).item()
        rows = [("reference (sequential)", t_ref, 0.0)]
        for L in (32, 64, 128, 256):
            y = selective_scan_chunked(u, delta, A, B, C, D, chunk_size=L)
            t = time_cuda(lambda L=L: selective_scan_chunked(u, delta, A, B, C, D, chunk_size=L), warmup=2, reps=5)
            rows.append((f"chunked L={L}", t, rel(y)))
        try:
            from archlab.perf.scan_triton import selective_scan_triton

            for be in (8, 16, 32):
                y = selective_scan_triton(u, delta, A, B, C, D, block_e=be)
                t = time_cuda(lambda be=be: selective_scan_triton(u, delta, A, B, C, D, block_e=be), warmup=3, reps=10)
                rows.append((f"triton BLOCK_E={be}", t, rel(y)))
        except ImportError as e:
            print(f"triton unavailable: {e}")
    print(f"\n{'scan':26s} {'ms':>10s} {'× reference':>12s} {'rel err':>10s}")
    for name, t, err in rows:
        print(f"{name:26s} {t * 1e3:10.3f} {t_ref / t:12.1f} {err:10.2e}")
    best_chunk = min((r for r in rows if r[0].startswith("chunked")), key=lambda r: r[1])
    print(f"\nbest chunked ({best_chunk[0]}): {t_ref / best_chunk[1]:.1f}× the sequential reference (goal ≥ 30×)")
    tri = [r for r in rows if r[0].startswith("triton")]
    if tri:
        bt = min(tri, key=lambda r: r[1])
        print(f"best triton ({bt[0]}): {t_ref / bt[1]:.1f}× the reference, {best_chunk[1] / bt[1]:.1f}× the chunked")


if __name__ == "__main__":
    main()
