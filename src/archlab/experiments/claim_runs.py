"""Run functions (and computed checks) that individual claims need beyond the shared trainer.

Each run function has the signature `run_fn(config, seed, budget, out_dir) -> {"final": {...}, "curve": [...]}`
and is named in a spec as `runner: archlab.experiments.claim_runs:NAME`.

* `trainer_train_split_run` — the shared trainer, then the trained weights evaluated on the *training* split
  too (`trainsplit_accuracy`, `trainsplit_error`, `trainsplit_loss`): seed 003 states the depth problem as
  training error, which the validation split cannot show.
* `teacher_forcing_curve_run` — a decoder trained with teacher forcing, free running or scheduled sampling on a
  task where generation errors accumulate (multi-digit addition with carries, emitted least-significant digit
  first, or sequence reversal); it records how fast and how smoothly training goes, not only the end point.
* `step_throughput_run` — tokens per second of one training step (forward + backward + AdamW) at a sequence
  length: the measurement behind "a Transformer processes positions in parallel, an RNN one after another".
* `pool_commute_gap` — max |pool(act(x)) − act(pool(x))| over random tensors: whether the order of a pooling
  and an activation can matter at all (an identity, decided by computation like the cost claims).
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from archlab.config import ConfigError

# ---------------------------------------------------------------- trainer + training-split evaluation


def trainer_train_split_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """archlab's trainer run, then the final weights evaluated on the training split (same cap as val)."""
    import torch

    from archlab.experiments.runner import make_run_config, trainer_run
    from archlab.train import build_run, load_checkpoint
    from archlab.train.checkpoint import latest_checkpoint

    out = trainer_run(config, seed, budget, out_dir)
    data = {k: v for k, v in dict(config).items() if k != "posthoc"}
    task, _, model = build_run(make_run_config(data, seed), "cpu")
    load_checkpoint(latest_checkpoint(out_dir), model)
    model.eval()
    with torch.no_grad():
        ev = {k: float(v) for k, v in task.evaluate(model, "train").items()}
    out["final"].update({f"trainsplit_{k}": v for k, v in ev.items()})
    if "accuracy" in ev:
        out["final"]["trainsplit_error"] = 1.0 - ev["accuracy"]
    return out


# ---------------------------------------------------------------- teacher forcing: speed and stability

BOS, PLUS, EQ = 10, 11, 12  # addition tokens: digits 0-9, then '+', '=', BOS (vocab 13)


def addition_batch(gen, batch: int, digits: int):
    """[BOS a + b =] then a+b's digits least-significant first (digits+1 of them): each output digit needs the
    carry out of the one before it, so a wrong digit fed back as input misleads the next one."""
    import torch

    a = torch.randint(0, 10, (batch, digits), generator=gen)
    b = torch.randint(0, 10, (batch, digits), generator=gen)
    pw = 10 ** torch.arange(digits - 1, -1, -1)
    s = (a * pw).sum(1) + (b * pw).sum(1)
    out = torch.stack([(s // 10 ** i) % 10 for i in range(digits + 1)], 1)  # LSB first
    col = torch.full((batch, 1), 0, dtype=torch.long)
    src = torch.cat([col + BOS, a, col + PLUS, b, col + EQ], 1)
    return src, out


def reversal_batch(gen, batch: int, length: int, vocab: int):
    """[BOS x SEP] then reverse(x); content tokens 2..vocab-1, BOS 0, SEP 1 (as claims.teacher_forcing_run)."""
    import torch

    x = torch.randint(2, vocab, (batch, length), generator=gen)
    col = torch.zeros(batch, 1, dtype=torch.long)
    return torch.cat([col, x, col + 1], 1), x.flip(1)


def steps_to_reach(curve: list[dict[str, Any]], key: str, level: float, never: float) -> float:
    """The first logged step whose `key` is at least `level`; `never` when no point reaches it."""
    for pt in curve:
        if key in pt and pt[key] >= level:
            return float(pt["step"])
    return float(never)


def upticks(values: list[float]) -> float:
    """Sum of the increases of a curve that should fall (0 for a monotone curve): how unsteady training was."""
    return float(sum(max(0.0, b - a) for a, b in zip(values, values[1:])))


def teacher_forcing_curve_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Train a decoder on `task.kind` (addition | reversal) in `teacher_forcing.mode` (teacher | free | scheduled);
    every `train.eval_every` steps score greedy generation on one held-out set.

    final: gen_seq_acc / gen_token_acc (end of training), val_loss (teacher-forced likelihood of the gold
    answers, the same quantity for every mode), steps_to_threshold (first evaluation at which greedy
    gen_token_acc >= task.threshold; steps + eval_every when never reached within the budget),
    val_loss_upticks (sum of the rises of the held-out loss between evaluations) and train_loss_spread (std of
    the step-to-step change of the training loss over the second half of training).
    """
    import torch
    import torch.nn.functional as F

    from archlab.experiments.runner import count_model_params
    from archlab.models import build_model, model_config_from_dict

    task = dict(config.get("task", {}))
    kind = str(task.get("kind", "addition"))
    if kind not in ("addition", "reversal"):
        raise ConfigError(f"task.kind={kind!r} is not allowed for teacher_forcing_curve_run; expected addition "
                          "or reversal")
    tr = dict(config.get("train", {}))
    steps = int(budget.get("steps", tr.get("steps", 1000)))
    bs, lr = int(tr.get("batch_size", 64)), float(tr.get("lr", 1e-3))
    every = max(1, int(tr.get("eval_every", max(1, steps // 20))))
    threads = int(tr.get("threads", 0))
    if threads:
        torch.set_num_threads(threads)
    threshold = float(task.get("threshold", 0.9))
    tf = dict(config.get("teacher_forcing", {}))
    mode = str(tf.get("mode", "teacher"))
    if mode not in ("teacher", "free", "scheduled"):
        raise ConfigError(f"teacher_forcing.mode={mode!r} is not allowed; expected teacher, free or scheduled")
    p_sample = {"teacher": 0.0, "free": 1.0}.get(mode, float(tf.get("sampling_prob", 0.5)))
    if kind == "addition":
        digits = int(task.get("digits", 4))
        vocab, src_len, tgt_len = 13, 2 * digits + 3, digits + 1

        def batch(gen, n):
            return addition_batch(gen, n, digits)
    else:
        length, vocab = int(task.get("length", 12)), int(task.get("vocab", 20))
        src_len, tgt_len = length + 2, length

        def batch(gen, n):
            return reversal_batch(gen, n, length, vocab)
    model_data = {**config.get("model", {}), "vocab_size": vocab, "max_seq_len": src_len + tgt_len}
    torch.manual_seed(seed)
    model = build_model(model_config_from_dict(model_data))
    if model.cfg.shape != "decoder":
        raise ConfigError("teacher_forcing_curve_run needs a decoder-only model (model.shape: decoder)")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1000 + seed)
    held_src, held_tgt = batch(torch.Generator().manual_seed(999_999), 256)  # one held-out set for every run

    def logits_for(src, tgt_inputs):  # (B, L, V) for the L answer positions
        return model(torch.cat([src, tgt_inputs], 1))[:, src_len - 1:]

    @torch.no_grad()
    def greedy(src):
        out = src[:, :0]
        for j in range(tgt_len):
            out = torch.cat([out, logits_for(src, out)[:, j].argmax(-1, keepdim=True)], 1)
        return out

    @torch.no_grad()
    def evaluate():
        model.eval()
        out = greedy(held_src)
        lg = logits_for(held_src, held_tgt[:, :-1])
        vl = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), held_tgt.reshape(-1)).item()
        model.train()
        return {"val_loss": vl, "gen_token_acc": (out == held_tgt).float().mean().item(),
                "gen_seq_acc": (out == held_tgt).all(1).float().mean().item()}

    curve, losses = [], []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        src, tgt = batch(gen, bs)
        inp = tgt[:, :-1].clone()
        if p_sample > 0:
            model.eval()
            own = greedy(src)
            model.train()
            use = torch.rand(inp.shape, generator=gen) < p_sample
            inp = torch.where(use, own[:, :-1], inp)
        logits = logits_for(src, inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % every == 0 or step == steps:
            curve.append({"step": step, "train_loss": losses[-1], **evaluate()})
    last = curve[-1]
    half = losses[len(losses) // 2:]
    diffs = [b - a for a, b in zip(half, half[1:])]
    final = {"gen_seq_acc": last["gen_seq_acc"], "gen_token_acc": last["gen_token_acc"], "val_loss": last["val_loss"],
             "train_loss": losses[-1],
             "steps_to_threshold": steps_to_reach(curve, "gen_token_acc", threshold, steps + every),
             "val_loss_upticks": upticks([pt["val_loss"] for pt in curve]),
             "train_loss_spread": statistics.pstdev(diffs) if len(diffs) > 1 else 0.0,
             "train_time_s": time.perf_counter() - t0}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "final_metrics.json").write_text(json.dumps(final, indent=1))
    return {"final": final, "curve": curve, "n_params": count_model_params({"model": model_data})}


# ---------------------------------------------------------------- parallelism: training-step throughput


def step_throughput_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Median tokens/s of a training step (forward + backward + AdamW) of `model` at `task.seq_len`, on a batch of
    `task.tokens` tokens (B = tokens // T), after `task.warmup` untimed steps; `budget.steps` timed repeats.
    Also the same at `task.short_len` and their ratio (how throughput holds up as T grows)."""
    import torch
    import torch.nn.functional as F

    from archlab.experiments.runner import count_model_params
    from archlab.models import build_model, model_config_from_dict

    task = dict(config.get("task", {}))
    T, short = int(task.get("seq_len", 256)), int(task.get("short_len", 32))
    tokens, warm = int(task.get("tokens", 4096)), int(task.get("warmup", 2))
    repeats = int(budget.get("steps", 5))
    threads = int(config.get("train", {}).get("threads", 0))
    if threads:
        torch.set_num_threads(threads)
    vocab = 64
    model_data = {**config.get("model", {}), "vocab_size": vocab, "max_seq_len": max(T, short) + 1}
    torch.manual_seed(seed)
    model = build_model(model_config_from_dict(model_data))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)

    def rate(t: int) -> float:
        ids = torch.randint(0, vocab, (max(1, tokens // t), t + 1), generator=gen)
        times = []
        for i in range(warm + repeats):
            t0 = time.perf_counter()
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= warm:
                times.append(time.perf_counter() - t0)
        return ids.shape[0] * t / statistics.median(times)

    long_rate, short_rate = rate(T), rate(short)
    final = {"tokens_per_s": long_rate, "tokens_per_s_short": short_rate, "long_over_short": long_rate / short_rate}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return {"final": final, "curve": [], "n_params": count_model_params({"model": model_data})}


# ---------------------------------------------------------------- pooling / activation order (an identity)


def pool_commute_gap(pool: str, activation: str, *, trials: int = 8, seed: int = 0) -> float:
    """max |pool(act(x)) − act(pool(x))| over `trials` random (4, 8, 12, 12) tensors, 2×2 pooling.

    0 exactly when the pair commutes: max-pooling commutes with every monotone non-decreasing activation
    (ReLU, tanh, sigmoid, leaky ReLU), since act(max(a, b)) = max(act(a), act(b)); average pooling does not commute
    with ReLU (relu(mean) ≠ mean(relu) once a window mixes signs), nor max-pooling with a non-monotone GELU/SiLU.
    """
    import torch
    import torch.nn.functional as F

    pools = {"max": lambda x: F.max_pool2d(x, 2), "avg": lambda x: F.avg_pool2d(x, 2)}
    acts = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "silu": F.silu,
            "leaky_relu": F.leaky_relu}
    if pool not in pools or activation not in acts:
        raise ConfigError(f"pool_commute_gap: pool={pool!r} (expected {sorted(pools)}), activation={activation!r} "
                          f"(expected {sorted(acts)})")
    g = torch.Generator().manual_seed(seed)
    p, a = pools[pool], acts[activation]
    gap = 0.0
    for _ in range(trials):
        x = torch.randn(4, 8, 12, 12, generator=g, dtype=torch.float64)
        gap = max(gap, float((p(a(x)) - a(p(x))).abs().max()))
    return gap
