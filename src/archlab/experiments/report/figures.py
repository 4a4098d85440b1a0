"""The figures of a claims report (matplotlib, Agg backend, PNG bytes): loss curves per variant (mean over seeds,
min–max band), a bar chart of the final metric, and claimed-vs-computed bars for cost experiments.
Re-exported by archlab.experiments.report."""
from __future__ import annotations

import io
import math

from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.judge.stats import summarize


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def curve_metric(result: ExperimentResult) -> str | None:
    """The curve to plot: the spec's metric if it was logged during training, else a training loss."""
    names: set[str] = set()
    for runs in result.runs.values():
        for r in runs:
            for pt in r["curve"]:
                names.update(k for k in pt if k != "step")
    for cand in (result.spec.metric, "val_loss", "train_loss", "loss", "eval_loss"):
        if cand in names:
            return cand
    return sorted(names)[0] if names else None


def figure_curves(result: ExperimentResult) -> bytes | None:
    """Mean curve per variant over seeds, with a min–max band."""
    metric = curve_metric(result)
    if metric is None:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for variant, runs in result.runs.items():
        by_step: dict[int, list[float]] = {}
        for r in runs:
            for pt in r["curve"]:
                if metric in pt and pt[metric] is not None and math.isfinite(pt[metric]):
                    by_step.setdefault(int(pt["step"]), []).append(float(pt[metric]))
        if not by_step:
            continue
        steps = sorted(by_step)
        mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
        line = ax.plot(steps, mean, label=variant, lw=1.6)[0]
        ax.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                        color=line.get_color(), alpha=0.18, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{result.spec.name}: {metric} (mean over seeds, min–max band)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def figure_bars(result: ExperimentResult) -> bytes | None:
    """Final metric per variant: mean ± sd bars with every seed as a dot."""
    metric = result.spec.metric
    variants = [v for v in result.runs if result.values(v, metric)]
    if not variants:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.6, 1.1 * len(variants) + 1.5), 3.4))
    means, sds = [], []
    for i, v in enumerate(variants):
        vals = result.values(v, metric)
        s = summarize(vals)
        means.append(s.mean)
        sds.append(s.std if s.n > 1 else 0.0)
        ax.scatter([i] * len(vals), vals, color="black", s=10, zorder=3)
    ax.bar(range(len(variants)), means, yerr=sds, capsize=4, color="#4c78a8", alpha=0.75)
    ax.set_xticks(range(len(variants)), variants, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(f"final {metric} ({'lower' if result.spec.goal == 'min' else 'higher'} is better)")
    ax.set_title(f"{result.spec.name}: mean ± sd over seeds", fontsize=9)
    lo = min(min(result.values(v, metric)) for v in variants)
    hi = max(max(result.values(v, metric)) for v in variants)
    if lo > 0 and hi > 0 and lo > 0.5 * hi:  # zoom in when bars would all look equal
        ax.set_ylim(lo - 0.15 * (hi - lo + 1e-9) - 0.02 * hi, hi + 0.15 * (hi - lo + 1e-9) + 0.02 * hi)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def figure_checks(result: ExperimentResult) -> bytes | None:
    """Cost experiments: seed's claimed number vs the cost model's figure, per check."""
    checks = [c for c in result.checks if c.get("claimed") is not None and c.get("computed") is not None]
    if not checks:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(checks) + 1.5), 3.4))
    xs = range(len(checks))
    ax.bar([x - 0.2 for x in xs], [c["claimed"] for c in checks], width=0.4, label="seed says", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [c["computed"] for c in checks], width=0.4, label="archlab.cost", color="#4c78a8")
    ax.set_xticks(list(xs), [c["name"] for c in checks], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(f"{result.spec.name}: claimed vs computed", fontsize=9)
    return _png(fig)


def figures(result: ExperimentResult) -> list[tuple[str, bytes]]:
    """(name, png) for every figure of an experiment."""
    out = []
    if result.spec.kind == "cost":
        f = figure_checks(result)
        if f:
            out.append((f"{result.spec.name}_checks", f))
        return out
    for name, fn in (("curves", figure_curves), ("bars", figure_bars)):
        f = fn(result)
        if f:
            out.append((f"{result.spec.name}_{name}", f))
    return out
