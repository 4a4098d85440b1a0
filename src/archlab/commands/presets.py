"""`archlab presets`: list every model preset with its parameter count."""
from __future__ import annotations

import torch


def add_parser(sub):
    p = sub.add_parser("presets", help="list model presets and their parameter counts",
                       description="List every registered model preset with its family and parameter count "
                       "(counted on the meta device: nothing is allocated).")
    p.add_argument("--show", metavar="NAME", help="print one preset's full config as YAML")
    return p


def run(args) -> int:
    from archlab.config import dumps
    from archlab.models import build_model, preset, preset_names

    if args.show:
        print(dumps(preset(args.show)), end="")
        return 0
    print(f"{'preset':<22} {'family':<18} {'parameters':>15}")
    for name in preset_names():
        cfg = preset(name)
        with torch.device("meta"):
            n = build_model(cfg).num_parameters()
        family = getattr(cfg, "shape", None) or getattr(cfg, "kind", "")
        mixer = getattr(getattr(cfg, "mixer", None), "kind", "")
        if mixer and mixer != "attention":
            family = f"{family}/{mixer}"
        print(f"{name:<22} {family:<18} {n:>15,}")
    return 0
