"""Rooflines (Williams et al. 2009): attainable FLOP/s = min(peak, intensity × bandwidth); MFU.

Device presets are dense (no 2:4 sparsity) peaks from NVIDIA's datasheets:
- H100 SXM5 80 GB — "NVIDIA H100 Tensor Core GPU" datasheet (nvidia.com/en-us/data-center/h100):
  BF16/FP16 tensor 989.4 TFLOP/s (the datasheet's 1,979 is *with sparsity*), TF32 tensor 494.7,
  FP32 (CUDA cores) 66.9 TFLOP/s, FP8 1,978.9; HBM3 3.35 TB/s.
- A100 SXM4 80 GB — "NVIDIA A100 Tensor Core GPU" datasheet (nvidia.com/en-us/data-center/a100):
  BF16/FP16 tensor 312 TFLOP/s, TF32 tensor 156, FP32 19.5 TFLOP/s; HBM2e 2,039 GB/s.
- cpu — measured on this machine at first use (cached for the process): fp32 matmul GFLOP/s of a
  1024² torch.mm, and copy bandwidth of a 64 MiB tensor copy (bytes read + written per second).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from archlab.cost.analytic import dtype_bytes
from archlab.errors import ConfigError
from archlab.fileio import atomic_write_bytes


@dataclass(frozen=True)
class Device:
    """Peak dense FLOP/s per dtype and memory bandwidth (bytes/s) of one accelerator."""

    name: str
    peak_flops: dict[str, float]
    mem_bw: float
    source: str = ""
    extra: dict = field(default_factory=dict)

    def peak(self, dtype: str = "bf16") -> float:
        """Peak FLOP/s for a dtype (bfloat16 = bf16, float32 = fp32)."""
        key = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(dtype, dtype)
        if key not in self.peak_flops:
            raise ConfigError(f"device {self.name!r} has no peak for dtype {dtype!r}; known: {sorted(self.peak_flops)}")
        return self.peak_flops[key]

    def ridge(self, dtype: str = "bf16") -> float:
        """Ridge point: the intensity (FLOP/B) where compute and memory time are equal, peak / bandwidth."""
        return self.peak(dtype) / self.mem_bw


H100_SXM = Device("h100-sxm", {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12,
                               "fp8": 1978.9e12}, 3.35e12,
                  "NVIDIA H100 Tensor Core GPU datasheet, SXM5 column, dense (sparsity figures halved)")
A100_SXM = Device("a100-sxm", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12}, 2.039e12,
                  "NVIDIA A100 Tensor Core GPU datasheet, 80 GB SXM column, dense")
DEVICES = {"h100-sxm": H100_SXM, "h100": H100_SXM, "a100-sxm": A100_SXM, "a100": A100_SXM}


def _timeit(fn, min_time: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n


@functools.cache
def measure_cpu(min_time: float = 0.15, size: int = 1024, copy_mib: int = 64) -> Device:
    """This CPU's fp32 matmul FLOP/s (size² · size torch.mm, 2·size³ FLOPs) and copy bandwidth (2 × bytes / s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    t_mm = _timeit(lambda: torch.mm(a, b), min_time)
    src = torch.empty(copy_mib * 2**20 // 4)
    dst = torch.empty_like(src)
    t_cp = _timeit(lambda: dst.copy_(src), min_time)
    flops = 2 * size**3 / t_mm
    bw = 2 * src.numel() * 4 / t_cp
    return Device("cpu", {"fp32": flops, "tf32": flops}, bw,
                  f"measured here: {size}² fp32 torch.mm, {copy_mib} MiB copy, {torch.get_num_threads()} threads",
                  {"threads": torch.get_num_threads()})


def get_device(device: str | Device) -> Device:
    """A Device from a preset name (h100-sxm, a100-sxm, cpu) or a Device."""
    if isinstance(device, Device):
        return device
    if device == "cpu":
        return measure_cpu()
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; expected one of {sorted(DEVICES) + ['cpu']}")
    return DEVICES[device]


@dataclass
class RooflinePoint:
    """Where one workload sits on a device's roofline."""

    label: str
    flops: float
    bytes: float
    intensity: float  # FLOP/B
    attainable: float  # FLOP/s = min(peak, I·bw)
    t_compute: float  # s at peak
    t_memory: float  # s at full bandwidth
    bound: str  # "compute" or "memory"

    @property
    def time(self) -> float:
        """Lower bound on run time: max(FLOPs/peak, bytes/bandwidth)."""
        return max(self.t_compute, self.t_memory)


def roofline(flops: float, bytes_moved: float, device: str | Device = "h100-sxm", dtype: str = "bf16",
             label: str = "") -> RooflinePoint:
    """Attainable FLOP/s = min(peak, I·bw) with I = FLOPs / bytes; time ≥ max(FLOPs/peak, bytes/bw)."""
    dev = get_device(device)
    peak = dev.peak(dtype)
    i = flops / bytes_moved if bytes_moved else float("inf")
    tc, tm = flops / peak, bytes_moved / dev.mem_bw
    return RooflinePoint(label, flops, bytes_moved, i, min(peak, i * dev.mem_bw), tc, tm,
                         "compute" if tc >= tm else "memory")


def mfu(tokens_per_s: float, flops_per_token: float, device: str | Device = "h100-sxm", dtype: str = "bf16",
        peak_flops: float | None = None) -> float:
    """Model FLOPs utilisation = tokens/s × FLOPs/token / peak FLOP/s (PaLM app. B); the peak is the
    device's for dtype unless peak_flops is given."""
    return tokens_per_s * flops_per_token / (peak_flops or get_device(device).peak(dtype))


def model_points(mc, device: str | Device = "h100-sxm", dtype: str | None = None) -> list[RooflinePoint]:
    """Roofline points of a ModelCost: the whole forward, each distinct layer kind, and (LMs) one decode step."""
    dtype = dtype or mc.dtype
    b = dtype_bytes(dtype)
    pts = [roofline(mc.flops, mc.flops / mc.intensity if mc.intensity else 1.0, device, dtype,
                    f"{mc.name} forward")]
    by_kind: dict[str, list] = {}
    for r in mc.rows:
        if r.macs:
            by_kind.setdefault(r.kind, []).append(r)
    for kind, rs in by_kind.items():
        fl = sum(r.flops for r in rs)
        by = sum((r.params + r.in_elems + r.out_elems) * b for r in rs)
        pts.append(roofline(fl, by, device, dtype, kind))
    if mc.seq.get("decode_step_bytes"):
        pts.append(roofline(mc.seq["decode_step_flops"], mc.seq["decode_step_bytes"], device, dtype,
                            f"decode step (batch {mc.workload.batch}, KV cache)"))
    return pts


def plot_roofline(points: list[RooflinePoint], device: str | Device, path: str | Path, dtype: str = "bf16",
                  title: str = "") -> Path:
    """Log-log roofline PNG: the roof min(peak, I·bw) and each point at (intensity, attainable)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dev = get_device(device)
    peak = dev.peak(dtype)
    xs = [p.intensity for p in points if p.intensity > 0 and p.intensity != float("inf")]
    lo = min([dev.ridge(dtype) / 100, *xs]) / 2
    hi = max([dev.ridge(dtype) * 100, *xs]) * 2
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.loglog(grid, [min(peak, g * dev.mem_bw) for g in grid], "k-", lw=2,
              label=f"{dev.name} {dtype}: {peak / 1e12:.3g} TFLOP/s, {dev.mem_bw / 1e9:.4g} GB/s")
    ax.axvline(dev.ridge(dtype), color="grey", ls=":", lw=1)
    ax.text(dev.ridge(dtype), peak * 1.15, f"ridge {dev.ridge(dtype):.0f} FLOP/B", ha="center", fontsize=8)
    for p in points:
        if p.intensity <= 0 or p.intensity == float("inf"):
            continue
        ax.plot(p.intensity, p.attainable, "o", ms=7, label=f"{p.label} ({p.bound}-bound, I={p.intensity:.3g})")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("attainable FLOP/s")
    ax.set_title(title or f"roofline on {dev.name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
