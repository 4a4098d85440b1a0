"""Chunked selective scan vs the sequential reference, timed side by side in one run.

    nice .venv/bin/python benchmarks/scan_speed.py                 # CPU
    .venv/bin/python benchmarks/scan_speed.py --device cuda        # GPU when available

For each shape (batch B, length T, inner width E, state N) both scans run on the same inputs,
interleaved, and the best of `--repeat` timings is kept; the ratio reference / chunked is printed.
Forward only (inference); `--backward` times forward + backward instead.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from archlab.nn.ssm import selective_scan_chunked, selective_scan_reference

SHAPES = [  # (B, T, E, N)
    (1, 1024, 64, 16),  # E = 2·32
    (1, 1024, 128, 16),  # mamba-tiny (d_model 64, expand 2)
    (1, 2048, 128, 16),
    (4, 1024, 128, 16),
    (1, 1024, 1536, 16),  # mamba-130m (d_model 768)
    (1, 4096, 64, 16),  # longer sequences: the reference's T steps grow, the chunked scan's ≈ 2√T + √T
    (1, 4096, 128, 16),
    (1, 8192, 64, 16),
]


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--chunk", type=int, default=32, help="chunk-length cap (the scan uses ≈√T under it)")
    ap.add_argument("--backward", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    print(f"device {device}, torch threads {torch.get_num_threads()}, {'fwd+bwd' if args.backward else 'forward'}")
    print("| B | T | E | N | reference ms | chunked ms | speed-up |\n|---|---|---|---|---|---|---|")
    for bsz, T, E, N in SHAPES:
        g = torch.Generator().manual_seed(0)
        u = torch.randn(bsz, T, E, generator=g).to(device)
        delta = F.softplus(torch.randn(bsz, T, E, generator=g)).to(device)
        A = (-torch.rand(E, N, generator=g) * 4).to(device)
        B, C = torch.randn(bsz, T, N, generator=g).to(device), torch.randn(bsz, T, N, generator=g).to(device)
        D = torch.randn(E, generator=g).to(device)
        if args.backward:
            for t in (u, delta, B, C):
                t.requires_grad_(True)

        def run(fn, inputs=(u, delta, A, B, C, D), **kw):
            def go():
                y = fn(*inputs, **kw)
                if args.backward:
                    y.square().sum().backward()
            return go

        ref, chk = run(selective_scan_reference), run(selective_scan_chunked, chunk_size=args.chunk)
        with torch.set_grad_enabled(args.backward):
            y_ref = selective_scan_reference(u, delta, A, B, C, D).detach()
            y_chk = selective_scan_chunked(u, delta, A, B, C, D, chunk_size=args.chunk).detach()
            err = float((y_ref - y_chk).abs().max() / y_ref.abs().max())
            ref(), chk()  # warm-up
            best = {"reference": float("inf"), "chunked": float("inf")}
            for _ in range(args.repeat):
                best["reference"] = min(best["reference"], timed(ref, device))
                best["chunked"] = min(best["chunked"], timed(chk, device))
        ratio = best["reference"] / best["chunked"]
        rows.append({"B": bsz, "T": T, "E": E, "N": N, "reference_s": best["reference"], "chunked_s": best["chunked"],
                     "speedup": ratio, "max_rel_err": err, "device": str(device)})
        print(f"| {bsz} | {T} | {E} | {N} | {best['reference'] * 1e3:.1f} | {best['chunked'] * 1e3:.1f} | "
              f"{ratio:.1f}× |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
