"""The built-in claims suite: run every seed claim (specs/*.yaml), decide verdicts, write the report.

Also here: the special run functions some claims need (teacher forcing vs free running), the cost
checks that verify seed 003's numbers with archlab.cost instead of training, and `quick_comparison`,
the small live comparison `archlab demo` ends with.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.spec import ExperimentSpec, builtin_specs, resolve, spec_from_dict
from archlab.experiments.stats import combine
from archlab.experiments.store import Store

# ---------------------------------------------------------------- cost claims (no training)


def _conv_macs(layer: Mapping[str, Any]) -> int:
    """MACs of one conv layer given as {H, W, C, M, R[, S, U, padding, groups]} via archlab.cost."""
    from archlab.cost.analytic import conv2d_macs, conv_out_size

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
        from archlab.cost import analytic

        fn = getattr(analytic, str(check["formula"]), None)
        if fn is None:
            raise ConfigError(f"cost check {check.get('name')!r}: archlab.cost.analytic has no {check['formula']!r}")
        return float(fn(**check.get("args", {})))
    raise ConfigError(f"cost check {check.get('name')!r} needs 'layers', 'ratio' or 'formula'")


def run_cost_checks(spec: ExperimentSpec, store: Store, profile: str = "quick"):
    """Verify a cost claim: each check's computed figure against the seed's number (within tolerance),
    or against another check (`less_than: NAME`). The claim's verdict combines the checks marked primary."""
    from archlab.experiments.runner import ExperimentResult

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


# ---------------------------------------------------------------- teacher forcing vs free running


def _reverse_batch(gen, batch: int, length: int, vocab: int):
    """Reverse task: [BOS, x_1..x_L, SEP, x_L..x_1]; tokens 0 = BOS, 1 = SEP, content 2..vocab-1."""
    import torch

    src = torch.randint(2, vocab, (batch, length), generator=gen)
    bos = torch.zeros(batch, 1, dtype=torch.long)
    sep = torch.ones(batch, 1, dtype=torch.long)
    return torch.cat([bos, src, sep, src.flip(1)], dim=1)


def teacher_forcing_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Train a Transformer on sequence reversal; score exact-match greedy generation on held-out sequences.

    `teacher_forcing.mode` — teacher: the decoder's inputs are the gold previous tokens (seed 000/004's
    shifted targets); free: its inputs are its own greedy outputs (generated without gradient), targets gold;
    scheduled: each input token is its own output with probability `sampling_prob`.
    The model's `shape` picks how the same task is posed: decoder (one stream [BOS src SEP tgt]),
    encoder_decoder (src to the encoder, [SEP tgt] to the decoder), encoder (bidirectional over
    [BOS src SEP MASK…], every target predicted at once — BERT-style, no autoregression).
    """
    import torch
    import torch.nn.functional as F

    from archlab.experiments.runner import count_model_params
    from archlab.models import build_model, model_config_from_dict

    task = config.get("task", {})
    length, vocab = int(task.get("length", 8)), int(task.get("vocab", 12))
    tr = config.get("train", {})
    steps = int(budget.get("steps", tr.get("steps", 300)))
    bs, lr = int(tr.get("batch_size", 32)), float(tr.get("lr", 3e-3))
    tf = config.get("teacher_forcing", {})
    mode = str(tf.get("mode", "teacher"))
    if mode not in ("teacher", "free", "scheduled"):
        raise ConfigError(f"teacher_forcing.mode={mode!r} is not allowed; expected teacher, free or scheduled")
    p_sample = {"teacher": 0.0, "free": 1.0}.get(mode, float(tf.get("sampling_prob", 0.5)))
    model_data = {**config.get("model", {}), "vocab_size": vocab + 1, "max_seq_len": 2 * length + 2}
    torch.manual_seed(seed)
    model = build_model(model_config_from_dict(model_data))
    shape = model.cfg.shape
    if shape == "encoder" and p_sample > 0:
        raise ConfigError("teacher_forcing.mode must be 'teacher' for shape='encoder' (it does not generate)")
    MASK = vocab  # an extra token id for the encoder-only formulation
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1000 + seed)
    tgt0 = length + 2  # first target position in the full sequence [BOS src SEP tgt]

    def logits_for(seq, tgt_inputs):
        """Logits (B, L, V) for the L target positions, given the target-side inputs (B, L-1)."""
        if shape == "decoder":
            return model(torch.cat([seq[:, :tgt0], tgt_inputs], 1))[:, tgt0 - 1:]
        if shape == "encoder_decoder":
            dec = torch.cat([seq[:, tgt0 - 1:tgt0], tgt_inputs], 1)  # [SEP, tgt...]
            return model(seq[:, :tgt0 - 1], decoder_input_ids=dec)
        masks = torch.full((seq.shape[0], length), MASK, dtype=torch.long)
        return model(torch.cat([seq[:, :tgt0], masks], 1))[:, tgt0:]

    @torch.no_grad()
    def greedy(seq):
        if shape == "encoder":
            return logits_for(seq, None).argmax(-1)
        out = seq[:, :0]
        for j in range(length):
            nxt = logits_for(seq, out)[:, j].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], 1)
        return out

    curve = []
    t0 = time.perf_counter()
    loss = torch.tensor(float("nan"))
    for step in range(1, steps + 1):
        seq = _reverse_batch(gen, bs, length, vocab)
        tgt = seq[:, tgt0:]
        inp = tgt[:, :-1].clone()
        if p_sample > 0:
            model.eval()
            own = greedy(seq)
            model.train()
            use = torch.rand(inp.shape, generator=gen) < p_sample
            inp = torch.where(use, own[:, :-1], inp)
        logits = logits_for(seq, inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % max(1, steps // 20) == 0 or step == steps:
            curve.append({"step": step, "train_loss": float(loss.detach())})
    model.eval()
    seq = _reverse_batch(torch.Generator().manual_seed(999_999), 256, length, vocab)  # one held-out set for all
    tgt = seq[:, tgt0:]
    out = greedy(seq)
    with torch.no_grad():
        lg = logits_for(seq, tgt[:, :-1])
        val_loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1)).item()
    final = {"gen_seq_acc": (out == tgt).all(1).float().mean().item(),
             "gen_token_acc": (out == tgt).float().mean().item(),
             "val_loss": val_loss, "train_loss": float(loss.detach()), "train_time_s": time.perf_counter() - t0}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "final_metrics.json").write_text(json.dumps(final, indent=1))
    return {"final": final, "curve": curve, "n_params": count_model_params({"model": model_data})}


# ---------------------------------------------------------------- the suite


def select_specs(only: Sequence[str] | None = None, specs: list[ExperimentSpec] | None = None) -> list[ExperimentSpec]:
    """Built-in specs, filtered by name or family (`--only`); an unknown name is a clear error."""
    specs = specs if specs is not None else builtin_specs()
    if not only:
        return specs
    known = {s.name for s in specs} | {s.family for s in specs if s.family}
    for n in only:
        if n not in known:
            raise ConfigError(f"--only {n!r} names no claim; claims: {sorted(s.name for s in specs)}; "
                              f"families: {sorted({s.family for s in specs if s.family})}")
    return [s for s in specs if s.name in only or s.family in only]


def run_suite(specs: Sequence[ExperimentSpec], store: Store, *, profile: str = "quick", out_dir: str | Path,
              jobs: int = 2, inline: bool = False, max_new_runs: int | None = None,
              log: Callable[[str], None] | None = print, executor=None, progress: bool = False) -> list:
    """Run (resuming) every experiment's runs as one sweep on one executor, then decide every verdict."""
    from archlab.experiments.executors import InlineExecutor, LocalExecutor
    from archlab.experiments.runner import analyze, count_model_params, count_params
    from archlab.experiments.sweep import run_plans

    log = log or (lambda s: None)
    results, plans_of = [], {}
    all_plans = []
    for spec in specs:
        store.put_experiment(spec.name, spec.title, spec.spec_hash, spec.raw)
        if spec.kind == "cost":
            continue
        counter = count_params if spec.runner == "trainer" else None if spec.runner == "toy" else count_model_params
        plans_of[spec.name] = resolve(spec, profile, counter)
        all_plans += plans_of[spec.name]
    n_unique = len({p.run_key for p in all_plans})
    own = executor is None
    executor = executor or (InlineExecutor() if inline or jobs <= 0 else LocalExecutor(jobs))
    log(f"archlab claims ({profile}): {len(specs)} experiments, {len(all_plans)} runs ({n_unique} distinct), "
        f"on {executor.describe()}")
    t0 = time.perf_counter()
    try:
        sweep = run_plans(all_plans, store, profile=profile, out_dir=out_dir, max_new_runs=max_new_runs, log=log,
                          executor=executor, progress=progress)
    finally:
        if own:
            executor.close()
    log(f"{sweep.summary()} in {time.perf_counter() - t0:.0f}s")
    for spec in specs:
        if spec.kind == "cost":
            results.append(run_cost_checks(spec, store, profile))
        else:
            r = analyze(spec, store, plans_of[spec.name], profile)
            r.sweep = sweep
            results.append(r)
    return results


def print_verdicts(results: Sequence[Any], log: Callable[[str], None] = print) -> None:
    """A plain-text verdict table, one line per claim."""
    width = max((len(r.spec.name) for r in results), default=10)
    for r in results:
        detail = "; ".join(f"{c.label}: {c.verdict.verdict}" for c in r.comparisons) or "; ".join(
            f"{c['name']}: {c['verdict']}" for c in r.checks)
        log(f"{r.spec.name:<{width}}  {r.verdict:<13} {detail}")


# ---------------------------------------------------------------- a small live comparison (make demo)


def quick_comparison(base: Mapping[str, Any], variants: Mapping[str, Mapping[str, Any]], *, steps: int = 100,
                     seeds: Sequence[int] = (0,), metric: str = "val_loss", goal: str = "min", name: str = "demo",
                     quote: str = "", seed_ref: str = "", out_dir: str | Path = "runs/demo/comparison",
                     db: str | Path = ":memory:", jobs: int = 0, log: Callable[[str], None] | None = print):
    """Train `base` and each variant (dotted-key diffs) for `steps` steps per seed and print the comparison.

    Runs in this process when jobs=0. Returns the ExperimentResult (with verdicts, inconclusive for 1 seed).
    """
    from archlab.experiments.runner import run_experiment

    spec = spec_from_dict({
        "name": name, "title": f"{name}: " + ", ".join(variants), "seed": seed_ref,
        "quote": quote or "a quick comparison", "base": dict(base),
        "variants": {"base": {}, **{k: dict(v) for k, v in variants.items()}},
        "seeds": list(seeds), "budget": {"steps": steps}, "metric": metric, "goal": goal,
        "compare": [{"variant": v, "baseline": "base", "expect": "worse"} for v in variants],
    })
    with Store(db) as store:
        res = run_experiment(spec, store, profile="quick", out_dir=out_dir, jobs=jobs, inline=jobs <= 0, log=None)
    if log:
        log(f"{'variant':<16} {'params':>9} {metric:>12}   (mean over {len(seeds)} seed(s), {steps} steps each)")
        params = {p.variant: p.n_params for p in res.plans}
        for v in spec.variants:
            vals = res.values(v, metric)
            shown = f"{sum(vals) / len(vals):.4f}" if vals else "failed"
            n = params.get(v)
            log(f"{v:<16} {n if n is not None else '-':>9} {shown:>12}")
    return res
