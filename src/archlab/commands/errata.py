"""`archlab errata`: every seed slip archlab has found, with the computed value and how it was computed."""
from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser(
        "errata", help="seed slips: the seed's text, the value archlab computes, and how",
        description="List every place a seed's text disagrees with a computation: each value is recomputed now "
        "with archlab's own components (RMSNorm, sinusoidal table, attention, cost model, conv).")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def run(args) -> int:
    from archlab.errata import errata, report

    if args.json:
        print(json.dumps([e.__dict__ for e in errata()], indent=2, ensure_ascii=False))
    else:
        print(report(), end="")
    return 0
