"""archlab's char-LM training step vs a plain nanoGPT-style model at nanoGPT's CPU recipe shape, same run.

    nice .venv/bin/python benchmarks/nanogpt_step.py [--steps 40] [--repeats 5] [--threads 1]

Shape (nanoGPT README, "I only have a macbook"): 4 layers, 4 heads, width 128, context 64, batch 12, vocab 65,
no dropout. The reference is written here in nanoGPT's model.py style (one fused q/k/v Linear, SDPA with
is_causal, LayerNorm, GELU MLP, tied head, F.cross_entropy on the logits) with archlab's biases so both have the
same arithmetic; both train with the same AdamW (lr 1e-3, β 0.9/0.99, wd 0.1, the trainer's CPU setting) and
clip 1.0. Rows, timed interleaved (median CPU seconds per step over `repeats` blocks of `steps` steps):

  nanogpt            the reference model, F.cross_entropy
  archlab            archlab's `char-gpt` preset with the trainer's loss (objectives.causal_lm_loss)
  archlab old loss   the same with token_cross_entropy as it was before (masked copy of the logits for the
                     accuracy, an explicit label-range check): the before/after of this change
  archlab+plain-ce   archlab's model with the reference's loss line: what the model costs by itself
  nanogpt split-qkv  the reference with three q, k, v Linears as archlab has (one GEMM each instead of one fused)

The ratio nanogpt / archlab is the share of nanoGPT's speed archlab reaches (1.0 = as fast).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

V, D, L, H, T, B = 65, 128, 4, 4, 64, 12


class _Block(nn.Module):
    def __init__(self, split_qkv: bool) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.c_proj = nn.Linear(D, D)
        self.qkv = nn.ModuleList(nn.Linear(D, D) for _ in range(3)) if split_qkv else None
        self.c_attn = None if split_qkv else nn.Linear(D, 3 * D)
        self.fc, self.proj = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.ln_1(x)
        q, k, v = self.c_attn(h).split(D, dim=2) if self.c_attn is not None else (f(h) for f in self.qkv)
        q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, D))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    """nanoGPT's GPT at the CPU recipe's shape (biases on, as archlab's char-gpt)."""

    def __init__(self, split_qkv: bool = False) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        self.h = nn.ModuleList(_Block(split_qkv) for _ in range(L))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)
        self.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for blk in self.h:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


def _archlab_model() -> nn.Module:
    from archlab import registry
    from archlab.models import build_model

    return build_model(registry.build("preset", "char-gpt"))


def _stepper(model: nn.Module, loss_of):
    from archlab.train.optim import build_optimizer
    from archlab.train.run_config import TrainConfig

    opt = build_optimizer(model, TrainConfig(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1), torch.device("cpu"))

    def step(batch: dict) -> float:
        loss = loss_of(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def _plain_ce(model, batch) -> torch.Tensor:
    logits = model(batch["input_ids"])
    return F.cross_entropy(logits.view(-1, V), batch["labels"].view(-1))


def _archlab_ce(model, batch) -> torch.Tensor:
    from archlab.objectives import causal_lm_loss

    return causal_lm_loss(model, batch)[0]


def _archlab_old_ce(model, batch) -> torch.Tensor:
    from claims_throughput import _legacy_token_cross_entropy  # the loss line before the fast path (benchmarks/)

    return _legacy_token_cross_entropy(model(batch["input_ids"]), batch["labels"])[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps):
        ids = torch.randint(0, V, (B, T + 1), generator=g)
        batches.append({"input_ids": ids[:, :-1].contiguous(), "labels": ids[:, 1:].contiguous()})
    rows = {"nanogpt": _stepper(NanoGPT(), _plain_ce), "archlab": _stepper(_archlab_model(), _archlab_ce),
            "archlab old loss": _stepper(_archlab_model(), _archlab_old_ce),
            "archlab+plain-ce": _stepper(_archlab_model(), _plain_ce),
            "nanogpt split-qkv": _stepper(NanoGPT(split_qkv=True), _plain_ce)}
    for step in rows.values():  # warm-up
        for b in batches[:5]:
            step(b)
    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.repeats):
        for name, step in rows.items():
            t0 = time.process_time()  # this process's CPU time: less disturbed by other jobs on a shared machine
            for b in batches:
                step(b)
            times[name].append((time.process_time() - t0) / len(batches))
    ref = statistics.median(times["nanogpt"])
    print(f"{'row':<18} {'CPU ms/step':>11} {'min':>7} {'nanogpt/row':>12}   (threads={args.threads}, "
          f"{args.repeats}×{args.steps} steps, interleaved, median)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<18} {med * 1e3:11.2f} {min(ts) * 1e3:7.2f} {ref / med:12.3f}")


if __name__ == "__main__":
    main()
