"""The compiled selective scan vs the eager chunked scan (and the reference recurrence), forward + backward, one CPU
thread, at the claims' Mamba shapes, measured in one run; the compile time of each shape is printed apart.

    nice .venv/bin/python benchmarks/scan_compiled_cpu.py [--reps 20]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from archlab.nn.ssm import selective_scan_chunked, selective_scan_compiled, selective_scan_reference

SHAPES = {"induction claims (B 32, T 32, E 64, N 16)": (32, 32, 64, 16),
          "text claims (B 16, T 64, E 128, N 16)": (16, 64, 128, 16)}


def inputs(bsz: int, T: int, E: int, N: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return [t.requires_grad_() for t in (r(bsz, T, E), torch.rand(bsz, T, E, generator=g) * 0.1, -torch.rand(E, N,
            generator=g), r(bsz, T, N), r(bsz, T, N), torch.ones(E))]


def timed(fn, args, reps: int) -> float:
    """Median seconds of one forward + backward."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*args).sum().backward()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| shape | reference ms | chunked ms | compiled ms | compiled / chunked | first call (compile) s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, shape in SHAPES.items():
        x = inputs(*shape)
        t0 = time.perf_counter()
        selective_scan_compiled(*x).sum().backward()
        first = time.perf_counter() - t0
        ms = {label: 1e3 * timed(fn, x, args.reps) for label, fn in (
            ("reference", selective_scan_reference), ("chunked", selective_scan_chunked),
            ("compiled", selective_scan_compiled))}
        print(f"| {name} | {ms['reference']:.1f} | {ms['chunked']:.1f} | {ms['compiled']:.1f} | "
              f"{ms['chunked'] / ms['compiled']:.2f}× | {first:.1f} |", flush=True)


if __name__ == "__main__":
    main()
