"""Training throughput vs sequence length: a Transformer trains in parallel over positions, an LSTM must step.

    nice .venv/bin/python benchmarks/parallelism.py                      # CPU, T = 64 … 1024
    .venv/bin/python benchmarks/parallelism.py --device cuda --lengths 256,1024,4096 --d-model 256

Seeds 002 and 003: "the Transformer processes all positions at once, where an RNN must process them one after
another". Same shell for both models (pre-norm RMSNorm blocks of mixer + GELU FFN, tied embeddings), the LSTM's
hidden size chosen so its mixer has about as many parameters as the attention mixer (as in
benchmarks/mixers_recall.py). For each length T, one training step (forward + backward + AdamW) on a batch of
`--tokens` tokens (B = tokens // T, so every row of the table trains on the same number of tokens) is timed for
both models, alternating, median of `--repeats`. Prints tokens/s for each and the ratio attention / LSTM,
measured side by side in the same run, and writes results.json and a plot of tokens/s vs T.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from archlab.config import apply_overrides
from archlab.models import build_model
from archlab.models.mamba import mixer_tiny


def mixer_params(model) -> int:
    return sum(p.numel() for b in model.decoder.blocks for p in b.sub["mixer"].parameters())


def models(d_model: int, n_layers: int, vocab: int, max_len: int):
    """The attention model and the LSTM model whose mixer parameter count is closest to it."""
    base = dict(d_model=d_model, n_layers=n_layers, vocab_size=vocab, max_seq_len=max_len)
    attn = mixer_tiny("attention", **base)
    budget = mixer_params(build_model(attn))
    best = min((abs(mixer_params(build_model(c)) - budget), h, c) for h in range(8, 4 * d_model + 1, 8)
               for c in [apply_overrides(mixer_tiny("lstm", **base), {"mixer.rnn.hidden": h})])
    return {"attention": attn, "lstm": best[2]}


def step_time(model, opt, ids: torch.Tensor) -> float:
    t0 = time.perf_counter()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if ids.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="64,128,256,512,1024")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per training step (B = tokens // T)")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/parallelism")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    cfgs = models(args.d_model, args.layers, args.vocab, max(lengths) + 1)
    built = {}
    for name, cfg in cfgs.items():
        torch.manual_seed(0)
        m = build_model(cfg).to(args.device).train()
        built[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-3))
        print(f"{name:<10} {sum(p.numel() for p in m.parameters()):>9,} params "
              f"({mixer_params(m):,} in the mixers)", flush=True)
    rows = []
    print(f"\n{'T':>6} {'batch':>6} {'attention tok/s':>16} {'LSTM tok/s':>12} {'attention / LSTM':>17}", flush=True)
    for T in lengths:
        B = max(1, args.tokens // T)
        ids = torch.randint(0, args.vocab, (B, T + 1), device=args.device)
        times = {name: [] for name in built}
        for m, opt in built.values():  # warm-up (allocations, lazy init)
            step_time(m, opt, ids)
        for _ in range(args.repeats):
            for name, (m, opt) in built.items():  # alternate so drifting machine load hits both alike
                times[name].append(step_time(m, opt, ids))
        tps = {name: B * T / statistics.median(ts) for name, ts in times.items()}
        rows.append({"T": T, "batch": B, **{f"{k}_tokens_per_s": v for k, v in tps.items()},
                     "ratio": tps["attention"] / tps["lstm"]})
        print(f"{T:>6} {B:>6} {tps['attention']:>16,.0f} {tps['lstm']:>12,.0f} {rows[-1]['ratio']:>16.2f}×",
              flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "threads": torch.get_num_threads(), "d_model": args.d_model,
            "layers": args.layers, "tokens_per_step": args.tokens, "rows": rows}
    (out / "results.json").write_text(json.dumps(meta, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in built:
        ax.plot([r["T"] for r in rows], [r[f"{name}_tokens_per_s"] for r in rows], marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="training tokens / s",
           title=f"training throughput, {args.device}, equal mixer parameters")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=120)
    print(f"\nwrote {out / 'results.json'} and {out / 'results.png'}")


if __name__ == "__main__":
    main()
