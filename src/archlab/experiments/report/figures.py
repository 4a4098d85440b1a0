"""The figures of a claims report (matplotlib, Agg backend, PNG bytes). Per claim, first the key figure: the paired
per-seed differences of each comparison with their mean, its 95 % interval and the ±m band of the minimum effect
(a dot plot); then the training and validation curves (mean over seeds with markers, min–max band, log-x when the
steps span decades); then the final metric per variant (every seed a dot, mean ± sd). Cost claims get a dot plot
of the seed's figure against the computed one. Re-exported by archlab.experiments.report."""
from __future__ import annotations

import io
import math

from archlab.experiments.judge.results import ComparisonResult, ExperimentResult
from archlab.experiments.judge.stats import summarize

VERDICT_COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "inconclusive": "#9a6700"}
TRAIN_METRICS = ("train_loss", "loss")


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


def _logged(result: ExperimentResult) -> set[str]:
    names: set[str] = set()
    for runs in result.runs.values():
        for r in runs:
            for pt in r["curve"]:
                names.update(k for k in pt if k != "step")
    return names


def curve_metric(result: ExperimentResult) -> str | None:
    """The main curve: the spec's metric if it was logged during training, else a validation or training loss."""
    names = _logged(result)
    for cand in (result.spec.metric, "val_loss", "train_loss", "loss", "eval_loss"):
        if cand in names:
            return cand
    return sorted(names)[0] if names else None


def curve_metrics(result: ExperimentResult) -> list[str]:
    """The curves to draw, training first then validation (each at most once)."""
    names = _logged(result)
    train = next((m for m in TRAIN_METRICS if m in names), None)
    val = next((m for m in (result.spec.metric, "val_loss", "eval_loss") if m in names and m != train), None)
    out = [m for m in (train, val) if m]
    return out or ([curve_metric(result)] if curve_metric(result) else [])


def _by_step(runs: list[dict], metric: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in runs:
        for pt in r["curve"]:
            v = pt.get(metric)
            if v is not None and math.isfinite(v):
                out.setdefault(int(pt["step"]), []).append(float(v))
    return out


def _log_x(ax, steps: list[int]) -> None:
    """Log-scaled steps when they span more than ~1.5 decades (step 0 kept on a linear stretch)."""
    pos = [s for s in steps if s > 0]
    if len(pos) >= 3 and max(pos) / min(pos) >= 30:
        ax.set_xscale("symlog", linthresh=min(pos)) if min(steps) <= 0 else ax.set_xscale("log")


def figure_curves(result: ExperimentResult) -> bytes | None:
    """Training and validation curves per variant: mean over seeds with markers and a min–max band."""
    metrics = curve_metrics(result)
    if not metrics:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        every: list[int] = []
        for variant, runs in result.runs.items():
            by_step = _by_step(runs, metric)
            if not by_step:
                continue
            steps = sorted(by_step)
            every += steps
            mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
            line = ax.plot(steps, mean, marker="o", ms=3, lw=1.4, label=variant)[0]
            ax.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                            color=line.get_color(), alpha=0.15, lw=0)
        _log_x(ax, every)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(("training" if metric in TRAIN_METRICS else "validation") + f": {metric}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result.spec.name}: mean over seeds (min–max band)", fontsize=9)
    return _png(fig)


def paired_differences(result: ExperimentResult, cr: ComparisonResult) -> list[float]:
    """Per seed, variant − baseline signed so that > 0 is the direction the claim predicts (as the verdict does)."""
    c = cr.comparison
    worse = c.expect in ("worse", "same", "noninferior")
    sign = (1.0 if c.goal == "min" else -1.0) * (1.0 if worse else -1.0)
    seeds = sorted(s for s in cr.variant_values if s in cr.baseline_values)
    vals = [sign * (cr.variant_values[s] - cr.baseline_values[s]) for s in seeds]
    return [v for v in vals if math.isfinite(v)]


def figure_effects(result: ExperimentResult) -> bytes | None:
    """The key figure: per comparison, every seed's paired difference (dots), their mean with its 95 % interval,
    and the band ±m of the minimum effect around zero."""
    rows = [(cr, paired_differences(result, cr)) for cr in result.comparisons]
    rows = [(cr, d) for cr, d in rows if d]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.75 * len(rows)))
    m = max(cr.verdict.min_effect for cr, _ in rows)
    if m > 0:
        ax.axvspan(-m, m, color="#d0d7de", alpha=0.6, lw=0, label=f"±m = ±{m:.3g} (minimum effect)")
    ax.axvline(0, color="#57606a", lw=1)
    for i, (cr, d) in enumerate(rows):
        y = len(rows) - 1 - i
        jitter = [y + 0.25 * ((k % 5) - 2) / 4 for k in range(len(d))]
        ax.scatter(d, jitter, s=16, color="#57606a", alpha=0.8, zorder=3, label="one seed" if i == 0 else None)
        v = cr.verdict
        colour = VERDICT_COLOURS.get(v.verdict, "#57606a")
        if v.outcome == "continuous" and math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi):
            ax.plot([v.ci_lo, v.ci_hi], [y - 0.32] * 2, color=colour, lw=3, solid_capstyle="butt", zorder=4,
                    label="95 % interval" if i == 0 else None)
        mean = sum(d) / len(d)
        ax.scatter([mean], [y - 0.32], marker="D", s=36, color=colour, zorder=5, label="mean" if i == 0 else None)
    ax.set_yticks(range(len(rows)), [cr.label for cr, _ in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.8, len(rows) - 0.4)
    ax.set_xlabel(f"paired difference in {rows[0][0].comparison.metric} (> 0: as the claim predicts)", fontsize=8)
    ax.set_title(f"{result.spec.name}: per-seed differences, mean, 95 % interval", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.5 / len(rows) - 0.25), ncol=4, frameon=False)
    return _png(fig)


def _rows_figure(n: int, per_row: float):
    """(figure, axes) for a dot plot of n rows, the first row at the top."""
    return _plt().subplots(figsize=(6.4, 0.9 + per_row * n))


def figure_finals(result: ExperimentResult) -> bytes | None:
    """Final metric per variant: every seed a dot, the mean ± sd a line (no bars, no truncated axis)."""
    metric = result.spec.metric
    variants = [v for v in result.runs if result.values(v, metric)]
    if not variants:
        return None
    fig, ax = _rows_figure(len(variants), 0.6)
    for y, v in zip(reversed(range(len(variants))), variants):
        i = len(variants) - 1 - y
        vals = result.values(v, metric)
        s = summarize(vals)
        ax.scatter(vals, [y + 0.12] * len(vals), s=14, color="#57606a", alpha=0.8, zorder=3,
                   label="one seed" if i == 0 else None)
        sd = s.std if s.n > 1 else 0.0
        ax.errorbar([s.mean], [y - 0.12], xerr=[sd], fmt="D", ms=5, color="#0969da", capsize=3, zorder=4,
                    label="mean ± sd" if i == 0 else None)
    ax.set_yticks(range(len(variants)), list(reversed(variants)), fontsize=8)
    ax.set_ylim(-0.6, len(variants) - 0.4)
    ax.set_xlabel(f"final {metric} ({'lower' if result.spec.goal == 'min' else 'higher'} is better)", fontsize=8)
    ax.set_title(f"{result.spec.name}: final {metric} per variant", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def figure_checks(result: ExperimentResult) -> bytes | None:
    """Cost experiments: the seed's figure and the cost model's, per check (a dot plot; log scale when all > 0)."""
    checks = [c for c in result.checks if isinstance(c.get("claimed"), (int, float))
              and isinstance(c.get("computed"), (int, float))]
    if not checks:
        return None
    fig, ax = _rows_figure(len(checks), 0.5)
    for y, c in zip(reversed(range(len(checks))), checks):
        i = len(checks) - 1 - y
        ax.plot([c["claimed"], c["computed"]], [y, y], color="#d0d7de", lw=2, zorder=1)
        ax.scatter([c["claimed"]], [y], s=40, facecolors="none", edgecolors="#57606a", zorder=3,
                   label="stated by the seed" if i == 0 else None)
        ax.scatter([c["computed"]], [y], s=22, color="#0969da", zorder=4, label="computed" if i == 0 else None)
    if all(c["claimed"] > 0 and c["computed"] > 0 for c in checks):
        ax.set_xscale("log")
    ax.set_yticks(range(len(checks)), [c["name"] for c in reversed(checks)], fontsize=7)
    ax.set_ylim(-0.6, len(checks) - 0.4)
    ax.set_title(f"{result.spec.name}: stated vs computed", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def figures(result: ExperimentResult) -> list[tuple[str, bytes]]:
    """(name, png) for every figure of an experiment, the key figure first."""
    makers = (("checks", figure_checks),) if result.spec.kind == "cost" else (
        ("effects", figure_effects), ("curves", figure_curves), ("finals", figure_finals))
    out = []
    for name, fn in makers:
        f = fn(result)
        if f:
            out.append((f"{result.spec.name}_{name}", f))
    return out
