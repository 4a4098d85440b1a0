"""Cost model: parameters, MACs/FLOPs, memory, arithmetic intensity, rooflines and MFU for any archlab model.

Entry points: `model_cost(preset_or_cfg, batch, seq_len, image_size)` (totals and per-token figures),
`cost_table(...)` (the per-layer table `archlab cost` prints), `crosscheck(...)` (analytic vs
FlopCounterMode), `roofline.mfu(...)` (for benchmarks). Conventions: see archlab.cost.analytic.
"""
from __future__ import annotations

from archlab.cost.analytic import LayerCost, dtype_bytes
from archlab.cost.model_cost import ModelCost, cost_table, model_cost

__all__ = ["LayerCost", "ModelCost", "cost_table", "crosscheck", "dtype_bytes", "mfu", "model_cost", "roofline"]


def __getattr__(name: str):
    # roofline / crosscheck load lazily (roofline may import matplotlib for plots)
    if name in ("mfu", "roofline"):
        from archlab.cost import roofline as _r

        return _r.mfu if name == "mfu" else _r.roofline
    if name == "crosscheck":
        from archlab.cost.crosscheck import crosscheck as _c

        return _c
    raise AttributeError(name)
