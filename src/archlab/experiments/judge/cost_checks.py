"""Cost claims, verified without training: each check's figure computed with archlab.cost (the MACs of a layer
list, a ratio of two lists, or an analytic formula) against the seed's number."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from archlab.config import ConfigError
from archlab.cost.analytic import SPEC_FORMULAS, conv2d_macs, conv_out_size
from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.judge.verdict import combine
from archlab.experiments.spec import ExperimentSpec
from archlab.experiments.sweep.store import Store


def _conv_macs(layer: Mapping[str, Any]) -> int:
    """MACs of one conv layer given as {H, W, C, M, R[, S, U, padding, groups]} via archlab.cost."""
    h, w, c, m = int(layer["H"]), int(layer.get("W", layer["H"])), int(layer["C"]), int(layer["M"])
    r = int(layer["R"])
    s = int(layer.get("S", r))
    u = int(layer.get("U", 1))
    pad = int(layer.get("padding", r // 2))
    e, f = conv_out_size(h, r, u, pad), conv_out_size(w, s, u, pad)
    return conv2d_macs(int(layer.get("N", 1)), c, m, r, s, e, f, int(layer.get("groups", 1)))


def _check_value(check: Mapping[str, Any]) -> float:
    """The figure a cost check computes: the MACs of a layer list, a ratio of two lists, or a formula."""
    if "layers" in check:
        return float(sum(_conv_macs(layer) for layer in check["layers"]))
    if "ratio" in check:
        num = sum(_conv_macs(layer) for layer in check["ratio"]["numerator"])
        den = sum(_conv_macs(layer) for layer in check["ratio"]["denominator"])
        return num / den
    if "formula" in check:
        fn = SPEC_FORMULAS.get(str(check["formula"]))
        if fn is None:
            raise ConfigError(f"cost check {check.get('name')!r}: formula {check['formula']!r} is not one of "
                              f"{sorted(SPEC_FORMULAS)} (archlab.cost.analytic.SPEC_FORMULAS)")
        return float(fn(**check.get("args", {})))
    raise ConfigError(f"cost check {check.get('name')!r} needs 'layers', 'ratio' or 'formula'")


def run_cost_checks(spec: ExperimentSpec, store: Store, profile: str = "quick"):
    """Verify a cost claim: each check's computed figure against the seed's number (within tolerance),
    or against another check (`less_than: NAME`). The claim's verdict combines the checks marked primary."""
    values: dict[str, float] = {}
    checks: list[dict[str, Any]] = []
    for chk in spec.checks:
        name = str(chk["name"])
        v = _check_value(chk)
        values[name] = v
        row: dict[str, Any] = {"name": name, "computed": v, "unit": chk.get("unit", "MACs"),
                               "primary": bool(chk.get("primary", True)), "explain": chk.get("explain", "")}
        if "claimed" in chk:
            claimed = float(chk["claimed"])
            rel = abs(v - claimed) / abs(claimed) if claimed else abs(v)
            row.update(claimed=claimed, rel_error=rel,
                       verdict="supported" if rel <= float(chk.get("tolerance", 0.005)) else "contradicted")
        elif "less_than" in chk:
            other = values[str(chk["less_than"])]
            row.update(claimed=other, rel_error=v / other if other else math.nan,
                       verdict="supported" if v < other else "contradicted")
            row["explain"] = row["explain"] or f"{v:.4g} < {other:.4g} ({chk['less_than']})"
        else:
            raise ConfigError(f"{spec.name}: cost check {name!r} needs 'claimed' or 'less_than'")
        checks.append(row)
        store.put_verdict(spec.name, profile, name, row["verdict"], row)
    verdict = combine([c["verdict"] for c in checks if c["primary"]])
    return ExperimentResult(spec, profile, [], {}, [], verdict, checks=checks)
