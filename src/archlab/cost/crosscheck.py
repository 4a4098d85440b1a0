"""Analytic MACs vs `torch.utils.flop_counter.FlopCounterMode` on a real forward pass.

The counter prices the aten ops it knows (mm, addmm, bmm, baddbmm, convolution, the SDPA kernels) by their
shapes and returns FLOPs = 2·MACs; it does not count elementwise ops (activations, norms, softmax, residual
adds, the SSM scan's elementwise recurrence) nor ops it has no formula for (on a real CPU forward:
aten.lstm/gru/rnn_tanh and the fused `_scaled_dot_product_flash_attention_for_cpu`).
We run the forward on the *meta* device:
no memory is allocated (llama2-7b checks in about a second) and SDPA decomposes into two bmm calls the
counter sees. Rows the walk marks `counter_visible=False` are excluded from the comparison and listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from archlab.cost.model_cost import example_run, model_cost, resolve_config, workload_for
from archlab.cost.walk import _meta_safe


@dataclass
class CrossCheck:
    """One model's comparison: analytic visible MACs vs counted MACs."""

    name: str
    analytic_macs: int  # all MACs the walk counts
    visible_macs: int  # the part the counter can see
    counted_macs: int  # FlopCounterMode FLOPs / 2
    by_op: dict[str, int] = field(default_factory=dict)  # counter MACs per aten op
    invisible: dict[str, int] = field(default_factory=dict)  # row kind -> MACs the counter cannot see
    device: str = "meta"

    @property
    def rel_err(self) -> float:
        """|visible − counted| / counted."""
        return abs(self.visible_macs - self.counted_macs) / max(self.counted_macs, 1)

    def ok(self, tol: float = 0.01) -> bool:
        return self.rel_err <= tol

    def line(self) -> str:
        inv = ", ".join(f"{k} {v:,}" for k, v in self.invisible.items())
        return (f"{self.name:<24} analytic {self.analytic_macs:>17,}  counter {self.counted_macs:>17,}  "
                f"rel.err {100 * self.rel_err:6.3f}%" + (f"  (not visible to the counter: {inv})" if inv else ""))


def count_macs(model: torch.nn.Module, run) -> tuple[int, dict[str, int]]:
    """FlopCounterMode over one forward: (total MACs, MACs per aten op)."""
    with torch.no_grad(), _meta_safe(), FlopCounterMode(display=False) as fc:
        run(model)
    return fc.get_total_flops() // 2, _by_op(fc)


def _by_op(fc: FlopCounterMode) -> dict[str, int]:
    return {str(k).removeprefix("aten."): int(v) // 2 for k, v in fc.get_flop_counts().get("Global", {}).items()}


def crosscheck(spec: Any, batch: int = 1, seq_len: int | None = 32, image_size: int | None = None,
               device: str = "meta") -> CrossCheck:
    """Compare the walk's MACs with FlopCounterMode on one forward (meta device by default)."""
    cfg = resolve_config(spec)
    wl = workload_for(cfg, batch, seq_len, image_size)
    got: dict[str, Any] = {}
    if device == "meta":
        # one meta forward both records the shapes for the walk and runs under the counter
        def counted(model, run):
            with FlopCounterMode(display=False) as fc:
                run(model)
            got["fc"] = fc

        mc = model_cost(cfg, batch, wl.seq_len, wl.image_size, wrap_forward=counted)
        counted_total = got["fc"].get_total_flops() // 2
        by_op = _by_op(got["fc"])
    else:
        from archlab.models import build_model

        mc = model_cost(cfg, batch, wl.seq_len, wl.image_size)
        model = build_model(cfg).to(device).eval()
        counted_total, by_op = count_macs(model, example_run(cfg, wl, device))
    counted = counted_total
    invisible: dict[str, int] = {}
    rows = mc.rows
    if device != "meta" and torch.device(device).type == "cpu":
        # on CPU, SDPA runs a fused flash kernel FlopCounterMode has no formula for
        impl = getattr(getattr(cfg, "attn", None), "impl", "sdpa")
        for r in rows:
            if r.kind == "attn-core" and impl == "sdpa":
                r.counter_visible = False
            # aten.lstm / gru / rnn_tanh run as one opaque kernel on CPU (on meta they decompose into mm)
            if r.kind in ("rnn", "lstm", "gru"):
                r.counter_visible = False
    for r in rows:
        if not r.counter_visible and r.macs:
            invisible[r.kind] = invisible.get(r.kind, 0) + r.macs
    visible = sum(r.macs for r in rows if r.counter_visible)
    return CrossCheck(mc.name, mc.macs, visible, counted, by_op, invisible, device)
