"""Run functions (and computed checks) that individual claims need beyond the shared trainer.

Each run function has the signature `run_fn(config, seed, budget, out_dir) -> {"final": {...}, "curve": [...]}`
and is registered by name (`@run_function`): a spec names it `runner: NAME`.

* `train_split` (trainer_train_split_run) — the shared trainer, then the trained weights evaluated on the *training*
  split too (`trainsplit_accuracy`, `trainsplit_error`, `trainsplit_loss`): seed 003 states the depth problem as
  training error, which the validation split cannot show.
* `teacher_forcing_curve` (teacher_forcing_curve_run) — the shared trainer on the `transduction` task (teacher
  forcing, free running or scheduled sampling on multi-digit addition with carries, where generation errors
  accumulate, or on sequence reversal); from its logged curve, how fast and how smoothly training went, not only the
  end point.
* `step_throughput` (step_throughput_run) — tokens per second of one training step (forward + backward + AdamW) at a
  sequence length: the measurement behind "a Transformer processes positions in parallel, an RNN one after another".
* `decode_throughput` (decode_throughput_run) — new tokens per second of greedy decoding after a prompt, with the
  KV / state cache or without it (every step re-runs the whole prefix): the measurement behind "KV caching makes
  the matrices smaller, so decoding is faster".
* `pool_commute_gap` — max |pool(act(x)) − act(pool(x))| over random tensors: whether the order of a pooling
  and an activation can matter at all (an identity, decided by computation like the cost claims).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.runs.registry import run_function

# ---------------------------------------------------------------- trainer + training-split evaluation


@run_function("train_split")
def trainer_train_split_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """archlab's trainer run, then the final weights evaluated on the training split (same cap as val), and the
    train–validation gaps (`generalization_gaps`)."""
    import torch

    from archlab.experiments.runs.builtin import make_run_config, trainer_run
    from archlab.train import build_run, load_checkpoint

    out = trainer_run(config, seed, budget, out_dir)
    data = {k: v for k, v in dict(config).items() if k != "posthoc"}
    task, _, model = build_run(make_run_config(data, seed), "cpu")
    load_checkpoint(out_dir, model)  # the run's newest complete checkpoint (clear error if none)
    model.eval()
    with torch.no_grad():
        ev = {k: float(v) for k, v in task.evaluate(model, "train").items()}
    final = out["final"]
    final.update({f"trainsplit_{k}": v for k, v in ev.items()})
    if "accuracy" in ev:
        final["trainsplit_error"] = 1.0 - ev["accuracy"]
    final.update(generalization_gaps(final))
    return out


def generalization_gaps(final: dict[str, Any]) -> dict[str, float]:
    """How much better the final weights do on the data they were trained on than on held-out data — the
    overfitting a seed sentence speaks of: gap_loss = val_loss − trainsplit_loss, gap_accuracy = trainsplit_accuracy
    − val_accuracy (each only when both of its numbers were reported; > 0 means the training split looks better)."""
    gaps = {}
    if isinstance(final.get("val_loss"), float) and isinstance(final.get("trainsplit_loss"), float):
        gaps["gap_loss"] = final["val_loss"] - final["trainsplit_loss"]
    if isinstance(final.get("val_accuracy"), float) and isinstance(final.get("trainsplit_accuracy"), float):
        gaps["gap_accuracy"] = final["trainsplit_accuracy"] - final["val_accuracy"]
    return gaps


# ---------------------------------------------------------------- dead units of an activation


def dead_unit_fraction(model, batch_ids, tol: float = 1e-6) -> float:
    """The fraction of the Mamba mixers' activation channels (the function after conv1d, `mixer.ssm.activation`) whose
    derivative is below `tol` at every token of `batch_ids`: units through which no gradient flows on that data —
    dead in the sense of the "dead ReLU" (for ReLU, a channel whose input is ≤ 0 everywhere; SiLU's derivative is
    zero only at isolated points). Each mixer's `act` is wrapped for one forward pass, then restored."""
    import torch

    from archlab.nn.mamba import Mamba

    mixers = [m for m in model.modules() if isinstance(m, Mamba)]
    if not mixers:
        raise ValueError("dead_unit_fraction: the model has no Mamba mixer (nothing to probe)")
    seen: list[torch.Tensor] = []

    def recording(act):
        def wrapped(x):
            with torch.enable_grad():
                xi = x.detach().requires_grad_(True)
                (deriv,) = torch.autograd.grad(act(xi).sum(), xi)
            seen.append((deriv.abs() < tol).reshape(-1, x.shape[-1]).all(0))  # per channel: dead on every token
            return act(x)
        return wrapped

    originals = [m.act for m in mixers]
    try:
        for m in mixers:
            m.act = recording(m.act)
        with torch.no_grad():
            model(batch_ids)
    finally:
        for m, act in zip(mixers, originals, strict=True):
            m.act = act
    dead = torch.cat(seen)
    return float(dead.float().mean())


@run_function("dead_units")
def trainer_dead_units_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """archlab's trainer run, then `dead_unit_fraction` of the final weights on the first held-out batch."""
    import torch

    from archlab.experiments.runs.builtin import make_run_config, trainer_run
    from archlab.train import build_run, load_checkpoint

    out = trainer_run(config, seed, budget, out_dir)
    data = {k: v for k, v in dict(config).items() if k != "posthoc"}
    task, _, model = build_run(make_run_config(data, seed), "cpu")
    load_checkpoint(out_dir, model)
    model.eval()
    batch = next(iter(task.eval_batches("val")))
    with torch.no_grad():
        out["final"]["dead_unit_fraction"] = dead_unit_fraction(model, batch["input_ids"])
    return out


# ---------------------------------------------------------------- teacher forcing: speed and stability

def steps_to_reach(curve: list[dict[str, Any]], key: str, level: float, never: float) -> float:
    """The first logged step whose `key` is at least `level`; `never` when no point reaches it."""
    for pt in curve:
        if key in pt and pt[key] >= level:
            return float(pt["step"])
    return float(never)


def upticks(values: list[float]) -> float:
    """Sum of the increases of a curve that should fall (0 for a monotone curve): how unsteady training was."""
    return float(sum(max(0.0, b - a) for a, b in zip(values, values[1:])))


def step_spread(values: list[float]) -> float:
    """Population std of the step-to-step changes of a curve (0 for fewer than two changes)."""
    diffs = [b - a for a, b in zip(values, values[1:])]
    return statistics.pstdev(diffs) if len(diffs) > 1 else 0.0


@run_function("teacher_forcing_curve")
def teacher_forcing_curve_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """The one trainer on the `transduction` task (archlab.tasks.transduction), then speed/stability summaries
    of its logged curve.

    `task.kind` (addition | reversal, default addition) and its options pass through to the task;
    `teacher_forcing.mode` / `teacher_forcing.sampling_prob` (or `task.mode` / `task.sampling_prob`) pick the
    decoder inputs (teacher | free | scheduled). `task.threshold` (default 0.9) is this function's own.
    The trainer evaluates every `train.eval_every` steps (default budget/20) and logs every step's training loss.
    AdamW at a constant lr without weight decay, gradients clipped at 1, unless `train` says otherwise.

    final: the trainer's final metrics with gen_seq_acc / gen_token_acc (greedy generation on the held-out val
    set) and val_loss (teacher-forced loss of the gold answers, the same quantity for every mode), plus
    steps_to_threshold (first evaluation at which gen_token_acc >= task.threshold; steps + eval_every when never
    reached), val_loss_upticks (sum of the rises of val_loss between evaluations) and train_loss_spread (std of
    the step-to-step change of the training loss over the second half of training).
    curve: the evaluation points (step, val_*, train_loss); every step is in out_dir/metrics.jsonl.
    """
    from archlab.experiments.runs.builtin import read_jsonl_curve, trainer_run

    task = {"kind": "addition", **config.get("task", {}), **config.get("teacher_forcing", {})}
    threshold = float(task.pop("threshold", 0.9))
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"task.threshold={threshold!r} must be in (0, 1]")
    tr = dict(config.get("train", {}))
    steps = int(budget.get("steps", tr.get("steps", 1000)))
    every = int(tr.get("eval_every") or max(1, steps // 20))
    run = {k: v for k, v in config.items() if k not in ("teacher_forcing", "task")}
    run["task"] = {**task, "name": "transduction"}
    run["train"] = {"batch_size": 64, "lr": 1e-3, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0,
                    "betas": [0.9, 0.999], "grad_clip": 1.0, "checkpoint_every": 0, "device": "cpu", **tr,
                    "eval_every": every, "log_every": 1, "steps": steps}
    out = trainer_run(run, seed, {**budget, "steps": steps}, out_dir)
    points = read_jsonl_curve(Path(out_dir) / "metrics.jsonl")
    evals = [pt for pt in points if "val_gen_token_acc" in pt]
    losses = [pt["train_loss"] for pt in points if "train_loss" in pt]
    final = {k.removeprefix("val_") if k.startswith("val_gen_") else k: v for k, v in out["final"].items()}
    final.update({"steps_to_threshold": steps_to_reach(evals, "val_gen_token_acc", threshold, steps + every),
                  "val_loss_upticks": upticks([pt["val_loss"] for pt in evals]),
                  "train_loss_spread": step_spread(losses[len(losses) // 2:])})
    return {"final": final, "curve": evals, "n_params": out.get("n_params")}


# ---------------------------------------------------------------- parallelism: training-step throughput


@run_function("step_throughput")
def step_throughput_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Median tokens/s of a training step (forward + backward + AdamW) of `model` at `task.seq_len`, on a batch of
    `task.tokens` tokens (B = tokens // T), after `task.warmup` untimed steps; `budget.steps` timed repeats.
    Also the same at `task.short_len` and their ratio (how throughput holds up as T grows)."""
    import torch
    import torch.nn.functional as F

    from archlab.experiments.runs.builtin import count_model_params
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


# ---------------------------------------------------------------- KV caching: decoding throughput

# the keys decode_throughput reads, per config section (None: any key, the model config checks its own);
# train.steps is the sweep's copy of budget.steps, which sets the number of timed generations
DECODE_KEYS = {"model": None, "task": ("prompt_len", "new_tokens", "warmup", "batch"), "decode": ("use_cache",),
               "train": ("threads", "steps")}


def decode_settings(config: dict) -> dict[str, Any]:
    """decode_throughput's checked settings; a ConfigError names the unknown or bad field."""
    for section, value in config.items():
        if section not in DECODE_KEYS:
            raise ConfigError(f"decode_throughput: unknown config section {section!r} (expected {sorted(DECODE_KEYS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"decode_throughput: {section} must be a mapping, got {value!r}")
        extra = sorted(set(value) - set(DECODE_KEYS[section] or value))
        if extra:
            raise ConfigError(f"decode_throughput: unknown key(s) {', '.join(f'{section}.{k}' for k in extra)} "
                              f"(expected {', '.join(f'{section}.{k}' for k in DECODE_KEYS[section])})")
    use_cache = config.get("decode", {}).get("use_cache", True)
    if not isinstance(use_cache, bool):
        raise ConfigError(f"decode.use_cache={use_cache!r} must be true or false")
    task = config.get("task", {})
    out: dict[str, Any] = {"use_cache": use_cache}
    for key, default, lo in (("prompt_len", 256, 1), ("new_tokens", 32, 1), ("warmup", 1, 0), ("batch", 1, 1)):
        v = task.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"decode_throughput: task.{key}={v!r} must be an integer >= {lo}")
        out[key] = v
    threads = config.get("train", {}).get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"decode_throughput: train.threads={threads!r} must be an integer >= 0 (0: leave it)")
    out["threads"] = threads
    return out


def decode_setup(config: dict, seed: int):
    """What decode_throughput times: (model in eval mode, prompt ids (batch, prompt_len), settings, model config).
    The model (`model`, vocab 64, context prompt_len + new_tokens) and the prompt are drawn from the seed."""
    import torch

    from archlab.models import build_model, model_config_from_dict

    st = decode_settings(config)
    if st["threads"]:
        torch.set_num_threads(st["threads"])
    vocab = 64
    model_data = {**config.get("model", {}), "vocab_size": vocab, "max_seq_len": st["prompt_len"] + st["new_tokens"]}
    torch.manual_seed(seed)
    model = build_model(model_config_from_dict(model_data)).eval()
    prompt = torch.randint(0, vocab, (st["batch"], st["prompt_len"]), generator=torch.Generator().manual_seed(seed))
    return model, prompt, st, model_data


@run_function("decode_throughput")
def decode_throughput_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Median new tokens/s of greedy decoding (`archlab.generate.generate`, temperature 0) of `task.new_tokens`
    tokens after a random prompt of `task.prompt_len` token ids (`task.batch` rows, default 1), with
    `decode.use_cache` true (the KV / state cache: each step feeds one token) or false (each step re-runs the whole
    prefix); `task.warmup` untimed generations, then `budget.steps` timed ones. The model is initialised from the
    seed and never trained: the speed does not depend on the weights, and greedy tokens are the same either way
    (tests/experiments/test_decode_throughput.py checks that on the model and prompt `decode_setup` builds)."""
    import torch

    from archlab.experiments.runs.builtin import count_model_params
    from archlab.generate import generate

    repeats = budget.get("steps", 5)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"decode_throughput: budget.steps={repeats!r} must be an integer >= 1 (timed generations)")
    model, prompt, st, model_data = decode_setup(config, seed)
    n_new, times = st["new_tokens"], []
    with torch.inference_mode():
        for i in range(st["warmup"] + repeats):
            t0 = time.perf_counter()
            out = generate(model, prompt, n_new, temperature=0.0, use_cache=st["use_cache"])
            if i >= st["warmup"]:
                times.append(time.perf_counter() - t0)
    if out.shape[1] != prompt.shape[1] + n_new:  # no stop tokens are given, so every step must produce a token
        raise RuntimeError(f"decode_throughput: generated {out.shape[1] - prompt.shape[1]} tokens, not {n_new}")
    sec = statistics.median(times)
    final = {"tokens_per_s": st["batch"] * n_new / sec, "ms_per_token": 1000.0 * sec / n_new}
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
