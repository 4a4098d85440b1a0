"""Every sequence mixer at (about) equal parameter budget on the synthetic recall tasks.

    nice .venv/bin/python benchmarks/mixers_recall.py                  # CPU default (≈80 min on 1 core)
    #   two processes: --tasks mqar and --tasks selective_copy,induction_heads, then --merge DIR DIR
    .venv/bin/python benchmarks/mixers_recall.py --device cuda --full  # the GPU setting

Same shell for all (pre-norm RMSNorm blocks of mixer + GELU FFN, tied embeddings, 2 layers); only
the mixer differs, and each mixer's own width knob (attention head size, RNN hidden size, conv
kernel, number of token-mixing matrices) is set so that its parameter count is closest to the
Mamba mixer's. Training: AdamW, warm-up + cosine, fixed steps, loss on the answer positions only.
Accuracy is measured on a fixed held-out set, only where the answer is determined. Prints a
Markdown table (mean ± std over seeds) and writes results.json, results.md and results.png.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from archlab.data.synthetic import IGNORE, generate, masked_accuracy
from archlab.models import build_model
from archlab.models.mamba import mixer_tiny

MIXERS = ["attention", "mamba", "mamba-lti", "token_mixing", "rnn", "lstm", "gru", "dilated_conv", "hybrid"]
# knob searched per mixer to match the Mamba mixer's parameter count
KNOBS = {
    "attention": ("attn.head_dim", [8, 16, 24, 32, 40, 48, 64]),
    "rnn": ("mixer.rnn.hidden", list(range(32, 257, 8))),
    "lstm": ("mixer.rnn.hidden", list(range(16, 257, 8))),
    "gru": ("mixer.rnn.hidden", list(range(16, 257, 8))),
    "dilated_conv": ("mixer.conv.kernel_size", list(range(2, 17))),
    "token_mixing": ("mixer.token_mixing.per_head", [1, 2, 4, 8, 16, 32]),
    "hybrid": ("attn.head_dim", [8, 16, 24, 32, 40, 48, 64]),
}


def mixer_params(model) -> int:
    return sum(p.numel() for b in model.decoder.blocks for p in b.sub["mixer"].parameters())


def matched_config(kind: str, d_model: int, n_layers: int, vocab: int, seq_len: int, budget: int | None):
    """The tiny mixer config whose mixer parameter count is closest to `budget` (None: the preset as is)."""
    base = dict(d_model=d_model, n_layers=n_layers, vocab_size=vocab, max_seq_len=seq_len)
    if budget is None or kind not in KNOBS:
        return mixer_tiny(kind, **base)
    from archlab.config import apply_overrides

    key, values = KNOBS[kind]
    best = None
    for v in values:
        if key.endswith("per_head") and d_model % v:
            continue
        cfg = apply_overrides(mixer_tiny(kind, **base), {key: v})
        n = mixer_params(build_model(cfg))
        if best is None or abs(n - budget) < best[0]:
            best = (abs(n - budget), cfg)
    return best[1]


def run_one(cfg, task: dict, seed: int, steps: int, batch: int, lr: float, device: str, eval_n: int) -> dict:
    torch.manual_seed(seed)
    model = build_model(cfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "A_log" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "A_log" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))))
    name, opts = task["kind"], task.get("options", {})
    T, V = task["seq_len"], cfg.vocab_size
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        b = generate(name, batch, T, V, generator=seed * 1_000_003 + step, **opts)
        x, y = b["input_ids"].to(device), b["targets"].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    train_s = time.perf_counter() - t0
    model.eval()
    b = generate(name, eval_n, T, V, generator=999_999_937, **opts)  # the same held-out set for every run
    with torch.no_grad():
        accs = [masked_accuracy(model(b["input_ids"][i:i + 256].to(device)), b["targets"][i:i + 256].to(device))
                for i in range(0, eval_n, 256)]
    return {"acc": float(torch.stack(accs).mean()), "final_loss": float(loss.detach()), "train_s": train_s}


def task_label(t: dict) -> str:
    o = t.get("options", {})
    extra = "".join(f" {k[2:] if k.startswith('n_') else k}={v}" for k, v in o.items())
    return f"{t['kind']} T={t['seq_len']}{extra}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="the larger GPU setting (longer sequences, more pairs, steps)")
    ap.add_argument("--mixers", default=",".join(MIXERS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--d-model", type=int, default=None, help="model width (default 64 on CPU, 128 with --full)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the CPU is shared)")
    ap.add_argument("--out", default="benchmarks/results/mixers_recall")
    ap.add_argument("--tasks", default=None, help="comma-separated subset of task labels' kinds (e.g. mqar)")
    ap.add_argument("--merge", nargs="+", metavar="DIR", help="only merge these result folders into --out")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out))
    torch.set_num_threads(args.threads)
    if args.full:
        d_model, n_layers, vocab, batch, steps, eval_n = args.d_model or 128, 2, 8192, 64, args.steps or 20000, 1024
        tasks = [{"kind": "mqar", "seq_len": T, "options": {"n_pairs": P}} for T, P in
                 ((64, 4), (128, 8), (256, 16), (256, 32), (512, 64))]
        tasks += [{"kind": "selective_copy", "seq_len": 256, "options": {"n_tokens": 16}},
                  {"kind": "induction_heads", "seq_len": 256}, {"kind": "program_log", "seq_len": 256}]
    else:
        d_model, n_layers, vocab, batch, steps, eval_n = args.d_model or 64, 2, 64, 32, args.steps or 1000, 512
        tasks = [{"kind": "mqar", "seq_len": 16, "options": {"n_pairs": 2}},
                 {"kind": "mqar", "seq_len": 32, "options": {"n_pairs": 4}},
                 {"kind": "selective_copy", "seq_len": 32, "options": {"n_tokens": 4}},
                 {"kind": "induction_heads", "seq_len": 32},
                 {"kind": "program_log", "seq_len": 48}]  # seed 001's battery log: the answer 38 tokens back
    if args.tasks:
        keep = set(args.tasks.split(","))
        tasks = [t for t in tasks if t["kind"] in keep]
    mixers = args.mixers.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    t_start = time.perf_counter()
    for task in tasks:
        T = task["seq_len"]
        budget = mixer_params(build_model(mixer_tiny("mamba", d_model=d_model, n_layers=n_layers, vocab_size=vocab,
                                                     max_seq_len=T)))
        for kind in mixers:
            cfg = matched_config(kind, d_model, n_layers, vocab, T, budget)
            model = build_model(cfg)
            n_mixer, n_total = mixer_params(model), model.num_parameters()
            accs, secs = [], []
            for seed in range(args.seeds):
                r = run_one(cfg, task, seed, steps, batch, args.lr, args.device, eval_n)
                accs.append(r["acc"])
                secs.append(r["train_s"])
                results.append({"task": task_label(task), "mixer": kind, "seed": seed, "mixer_params": n_mixer,
                                "params": n_total, "steps": steps, "lr": args.lr, **r})
            mean, std = statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
            print(f"[{time.perf_counter() - t_start:7.0f}s] {task_label(task):32s} {kind:13s} mixer params {n_mixer:6d}"
                  f"  acc {mean:.3f} ± {std:.3f}", file=sys.stderr, flush=True)
            (out / "results.json").write_text(json.dumps({"settings": vars(args) | {"d_model": d_model,
                                                           "n_layers": n_layers, "vocab": vocab, "batch": batch,
                                                           "steps": steps, "eval_n": eval_n},
                                                          "runs": results}, indent=1))
    write_summary(results, out)
    print(f"\nwrote {out}/results.json, results.md, results.png in {time.perf_counter() - t_start:.0f}s",
          file=sys.stderr)
    return 0


def summarise(runs: list[dict]) -> tuple[list[tuple], list[str], list[str]]:
    """(rows (task, mixer, mixer params, mean acc, std acc, mean train s), task labels, mixers) from run records."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["mixer"]), []).append(r)
    rows = []
    for (task, mixer), rs in groups.items():
        accs = [r["acc"] for r in rs]
        rows.append((task, mixer, rs[0]["mixer_params"], statistics.mean(accs),
                     statistics.stdev(accs) if len(accs) > 1 else 0.0, statistics.mean(r["train_s"] for r in rs)))
    labels = list(dict.fromkeys(r["task"] for r in runs))
    mixers = list(dict.fromkeys(r["mixer"] for r in runs))
    return rows, labels, mixers


def write_summary(runs: list[dict], out: Path) -> None:
    rows, labels, mixers = summarise(runs)
    md = table(rows, labels, mixers)
    print(md)
    (out / "results.md").write_text(md + "\n")
    plot(rows, labels, mixers, out / "results.png")


def merge(dirs: list[str], out: Path) -> int:
    """One table and plot from several result folders (e.g. task subsets run in parallel processes)."""
    docs = [json.loads((Path(d) / "results.json").read_text()) for d in dirs]
    out.mkdir(parents=True, exist_ok=True)
    runs = [r for d in docs for r in d["runs"]]
    (out / "results.json").write_text(json.dumps({"settings": [d["settings"] for d in docs], "runs": runs}, indent=1))
    write_summary(runs, out)
    return 0


def table(rows, labels, mixers) -> str:
    by = {(r[0], r[1]): r for r in rows}
    head = "| mixer | mixer params | " + " | ".join(labels) + " |"
    lines = [head, "|" + "---|" * (len(labels) + 2)]
    for m in mixers:
        cells = [f"{by[(lab, m)][3]:.2f} ± {by[(lab, m)][4]:.2f}" if (lab, m) in by else "" for lab in labels]
        n = next((by[(lab, m)][2] for lab in labels if (lab, m) in by), 0)
        lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, labels, mixers, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r[0], r[1]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(labels) * len(mixers) / 4), 4.5))
    w = 0.8 / len(mixers)
    for j, m in enumerate(mixers):
        xs = [i + (j - len(mixers) / 2 + 0.5) * w for i in range(len(labels))]
        ys = [by[(lab, m)][3] if (lab, m) in by else 0 for lab in labels]
        es = [by[(lab, m)][4] if (lab, m) in by else 0 for lab in labels]
        ax.bar(xs, ys, w, yerr=es, label=m, capsize=2)
    ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    ax.set_ylabel("accuracy on determined positions")
    ax.set_ylim(0, 1.05)
    ax.legend(ncol=5, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
