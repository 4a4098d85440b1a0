"""Screenshots of a toy claims report (two toy claims, one supported and one contradicted, plus seed 003's cost
claims) at 1280 px and 390 px, and whether the page scrolls sideways at each width.

Run: .venv/bin/python benchmarks/report_screenshots.py --label after   (needs Debian's chromium)
Writes benchmarks/results/report_<label>_<width>.png and prints the measured layout.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from archlab.experiments.engine import RunOptions, run_specs
from archlab.experiments.judge.cost_checks import run_cost_checks
from archlab.experiments.report import browser
from archlab.experiments.report.html import write_report
from archlab.experiments.spec import spec_from_dict
from archlab.experiments.suite.claims import select_specs
from archlab.experiments.sweep.executors import make_executor
from archlab.experiments.sweep.store import Store

RESULTS = Path(__file__).parent / "results"


def toy(name: str, worse: float):
    return spec_from_dict({
        "name": name, "seed": "000", "quote": f"the {name} claim", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01}},
        "variants": {"base": {}, "ablated": {"toy.quality": worse}}, "seeds": list(range(6)), "budget": {"steps": 30},
        "compare": [{"variant": "ablated", "expect": "worse"}], "rule": {"min_effect": 0.05}})


def toy_report(out: Path) -> Path:
    """The toy report of tests/experiments/test_claims_report.py, written under `out`."""
    with Store(out / "r.sqlite") as st:
        with make_executor("local", jobs=0) as ex:
            results = run_specs([toy("toy_win", 1.5), toy("toy_loss", 0.5)], st, ex, RunOptions(out_dir=out))
        results += [run_cost_checks(s, st) for s in select_specs(["cost"])]
    return write_report(results, out, title="toy report", command="benchmarks/report_screenshots.py")["html"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--label", default="after")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = toy_report(Path(tmp))
        for width in (1280, 390):
            shot = browser.screenshot(page, RESULTS / f"report_{args.label}_{width}.png", width, 1600)
            lay = browser.layout(page, width)
            print(f"{width:>5} px: scrollWidth {lay['scrollWidth']} (window {lay['innerWidth']}), "
                  f"verdict cell {lay['verdict']}, past the right edge: {lay['wide']} -> {shot}")


if __name__ == "__main__":
    main()
