"""`quick_comparison`: the small live comparison `archlab demo` ends with (one spec through the one engine)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from archlab.experiments.engine import run_specs
from archlab.experiments.spec import spec_from_dict
from archlab.experiments.sweep.driver import RunOptions
from archlab.experiments.sweep.executors import make_executor
from archlab.experiments.sweep.store import Store


def quick_comparison(base: Mapping[str, Any], variants: Mapping[str, Mapping[str, Any]], *, steps: int = 100,
                     seeds: Sequence[int] = (0,), metric: str = "val_loss", goal: str = "min", name: str = "demo",
                     quote: str = "", seed_ref: str = "", out_dir: str | Path = "runs/demo/comparison",
                     db: str | Path = ":memory:", jobs: int = 0, log: Callable[[str], None] | None = print):
    """Train `base` and each variant (dotted-key diffs) for `steps` steps per seed and print the comparison.

    Runs in this process when jobs=0. Returns the ExperimentResult (with verdicts, inconclusive for 1 seed).
    """
    spec = spec_from_dict({
        "name": name, "title": f"{name}: " + ", ".join(variants), "seed": seed_ref,
        "quote": quote or "a quick comparison", "base": dict(base),
        "variants": {"base": {}, **{k: dict(v) for k, v in variants.items()}},
        "seeds": list(seeds), "budget": {"steps": steps}, "metric": metric, "goal": goal,
        "compare": [{"variant": v, "baseline": "base", "expect": "worse"} for v in variants],
    })
    with Store(db) as store:
        with make_executor("local", jobs=jobs) as executor:
            [res] = run_specs([spec], store, executor, RunOptions(profile="quick", out_dir=out_dir, log=None))
    if log:
        log(f"{'variant':<16} {'params':>9} {metric:>12}   (mean over {len(seeds)} seed(s), {steps} steps each)")
        params = {p.variant: p.n_params for p in res.plans}
        for v in spec.variants:
            vals = res.values(v, metric)
            shown = f"{sum(vals) / len(vals):.4f}" if vals else "failed"
            n = params.get(v)
            log(f"{v:<16} {n if n is not None else '-':>9} {shown:>12}")
    return res
