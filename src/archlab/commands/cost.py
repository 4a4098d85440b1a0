"""`archlab cost`: per-layer parameters, MACs, memory and roofline of any preset or config file."""
from __future__ import annotations

import json
import sys


def add_parser(sub):
    p = sub.add_parser(
        "cost", help="parameters, MACs/FLOPs, memory and roofline of a model, per layer",
        description="Walk a model (built on the meta device: nothing is allocated) and print per-layer parameters, "
        "MACs (1 MAC = 1 multiply-add, FLOPs = 2·MACs), activation sizes and arithmetic intensity, then totals: "
        "training FLOPs per token (6N + 12·L·H·d·T), inference FLOPs per token with and without a KV cache, "
        "KV-cache bytes. --seed003 recomputes seed 003's worked examples and explains where the seed slips.")
    p.add_argument("model", nargs="?", metavar="PRESET_OR_CONFIG", help="a preset name or a YAML/JSON model config")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="sequence length T (default: min(max_seq_len, 2048)); also the inference context")
    p.add_argument("--context", type=int, default=None,
                   help="inference context t for the per-token figures (default T)")
    p.add_argument("--image-size", type=int, default=None, help="image side for CNNs (default: the config's)")
    p.add_argument("--dtype", default="bf16", help="dtype for bytes: fp32, bf16, fp16, fp8, int8, int4 (default bf16)")
    p.add_argument("--causal-half", action="store_true",
                   help="count only the unmasked half of causal attention (default: the full square the kernels run)")
    p.add_argument("--full", action="store_true", help="one row per layer instead of grouping identical blocks")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plot", metavar="PNG", help="write a roofline plot to this PNG file")
    p.add_argument("--device", default="h100-sxm", help="roofline device: h100-sxm, a100-sxm or cpu (measured)")
    p.add_argument("--crosscheck", action="store_true",
                   help="also count the forward with torch's FlopCounterMode and compare")
    p.add_argument("--seed003", action="store_true", help="seed 003's examples, recomputed and explained")
    p.add_argument("--crosscheck-all", action="store_true",
                   help="FlopCounterMode vs analytic MACs for every preset (meta device, --batch, T = --seq-len or 16)")
    return p


def run(args) -> int:
    from archlab.cost.model_cost import cost_table, model_cost

    if args.seed003:
        from archlab.cost.seed003 import examples, report

        if args.json:
            print(json.dumps([{k: v for k, v in vars(e).items() if k != "rows"} for e in examples()], indent=2))
        else:
            print(report(), end="")
        if not args.model:
            return 0
    if args.crosscheck_all:
        from archlab.cost.crosscheck import crosscheck
        from archlab.models import preset_names

        worst = 0.0
        for name in preset_names():
            cc = crosscheck(name, args.batch, args.seq_len or 16, args.image_size)
            worst = max(worst, cc.rel_err)
            print(cc.line())
        print(f"worst relative error {100 * worst:.3f}% over {len(preset_names())} presets")
        return 0 if worst <= 0.01 else 1
    if not args.model:
        print("archlab cost: error: give a PRESET_OR_CONFIG (see `archlab presets`) or --seed003", file=sys.stderr)
        return 2
    mc = model_cost(args.model, args.batch, args.seq_len, args.image_size, args.dtype,
                    causal_half=args.causal_half, context=args.context)
    out = mc.to_dict()
    if args.crosscheck:
        from archlab.cost.crosscheck import crosscheck

        cc = crosscheck(args.model, args.batch, mc.workload.seq_len, mc.workload.image_size)
        out["crosscheck"] = {"analytic_macs": cc.analytic_macs, "counter_macs": cc.counted_macs,
                             "rel_err": cc.rel_err, "by_op": cc.by_op, "not_visible_to_counter": cc.invisible}
    if args.plot:
        from archlab.cost.roofline import get_device, model_points, plot_roofline

        dev = get_device(args.device)
        dtype = args.dtype if args.dtype in dev.peak_flops else "fp32"
        path = plot_roofline(model_points(mc, dev, dtype), dev, args.plot, dtype,
                             f"{mc.name} on {dev.name} ({dtype})")
        out["plot"] = str(path)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(cost_table(mc=mc, collapse=not args.full))
    if args.crosscheck:
        c = out["crosscheck"]
        print(f"FlopCounterMode: {c['counter_macs']:,} MACs, analytic (visible part) differs by "
              f"{100 * c['rel_err']:.3f}%" + (f"; not visible to the counter: {c['not_visible_to_counter']}"
                                               if c["not_visible_to_counter"] else ""))
    if args.plot:
        from archlab.cost.roofline import get_device, model_points

        dev = get_device(args.device)
        dtype = args.dtype if args.dtype in dev.peak_flops else "fp32"
        for pt in model_points(mc, dev, dtype):
            print(f"roofline {dev.name} {dtype}: {pt.label:<40} I={pt.intensity:9.1f} FLOP/B  {pt.bound}-bound  "
                  f"≥ {pt.time * 1e3:.3f} ms")
        print(f"wrote {out['plot']}")
    return 0
