"""Training throughput: archlab vs transformers on the same GPT-2-124M / LLaMA-153M shape, same run, same settings.

Settings for both sides: random init, fp32 master weights, bf16 autocast, torch.compile of (model + loss),
fused AdamW (lr 6e-4, wd 0.1), grad-norm clip 1.0, TF32 on, context 1024, random tokens, no dropout.
Reports tokens/s, MFU and peak memory. MFU = tokens/s × F / peak, with F = 6·N_matmul + 12·L·D·T
(archlab.perf.flops; the same F for both sides since the shapes are equal) and peak = 989 TFLOP/s, the
H100 SXM dense bf16 tensor-core figure.
Run: PYTHONPATH=src python benchmarks/train_speed.py [--models gpt2,llama-153m] [--batch 16]
"""
from __future__ import annotations

import argparse
import gc
import time

import torch
import torch.nn.functional as F

from archlab.models import build_model, preset
from archlab.perf.flops import H100_SXM_BF16_DENSE_PEAK, mfu, model_training_flops_per_token
from archlab.perf.speed import checkpoint_blocks, enable_tf32


def hf_model(name: str, vocab: int):
    """transformers' model of the same shape as archlab preset `name`."""
    if name.startswith("gpt2"):
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=768, n_layer=12, n_head=12, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="sdpa")
        return GPT2LMHeadModel(cfg)
    from transformers import LlamaConfig, LlamaForCausalLM

    c = preset(name)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=c.d_model, intermediate_size=c.d_ff,
                      num_hidden_layers=c.n_layers, num_attention_heads=c.attn.n_heads,
                      num_key_value_heads=c.attn.kv_heads, max_position_embeddings=c.max_seq_len,
                      rms_norm_eps=c.norm.eps, rope_theta=c.pos.rope_theta, tie_word_embeddings=c.head.tie,
                      attn_implementation="sdpa")
    return LlamaForCausalLM(cfg)


def n_params(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def bench(model, *, batch: int, seq: int, steps: int, warmup: int, compile: bool) -> dict:
    model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95), fused=True)
    vocab = model.get_output_embeddings().weight.shape[0] if hasattr(model, "get_output_embeddings") else \
        model.cfg.vocab_size

    def loss_fn(x, y):
        out = model(x)
        logits = out.logits if hasattr(out, "logits") else out
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1))

    fn = torch.compile(loss_fn) if compile else loss_fn
    g = torch.Generator(device="cuda").manual_seed(0)
    data = torch.randint(0, vocab, (4, batch, seq + 1), device="cuda", generator=g)

    def step(i):
        xy = data[i % 4]
        with torch.autocast("cuda", torch.bfloat16):
            loss = fn(xy[:, :-1], xy[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(warmup):
        loss = step(i)
    torch.cuda.synchronize()
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"tok_s": batch * seq * steps / dt, "step_ms": dt / steps * 1e3, "mem_gib": torch.cuda.max_memory_allocated()
            / 2**30, "loss": loss.item(), "warmup_s": t_warm}


def free() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch._dynamo.reset()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gpt2,llama-153m", help="archlab presets; NAME@VOCAB overrides the vocab")
    ap.add_argument("--impls", default="archlab,hf")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--ckpt", action="store_true", help="also run archlab with activation checkpointing")
    ap.add_argument("--peak", type=float, default=H100_SXM_BF16_DENSE_PEAK)
    args = ap.parse_args()
    enable_tf32()
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; batch {args.batch} x {args.seq}; "
          f"compile={not args.no_compile}; bf16 autocast; fused AdamW; {args.steps} timed steps after "
          f"{args.warmup} warm-up; MFU vs {args.peak / 1e12:.0f} TFLOP/s (H100 SXM dense bf16)")
    rows = []
    for spec in args.models.split(","):
        name, _, vocab = spec.partition("@")
        cfg = preset(name, vocab_size=int(vocab)) if vocab else preset(name)
        ref = build_model(cfg)
        fpt = model_training_flops_per_token(ref, args.seq)
        variants = [v for v in args.impls.split(",")]
        if args.ckpt:
            variants.append("archlab+ckpt")
        res = {}
        for impl in variants:
            torch.manual_seed(0)
            model = build_model(cfg) if impl.startswith("archlab") else hf_model(name, cfg.vocab_size)
            if impl == "archlab+ckpt":
                checkpoint_blocks(model)
            try:
                r = bench(model, batch=args.batch, seq=args.seq, steps=args.steps, warmup=args.warmup,
                          compile=not args.no_compile)
            except torch.OutOfMemoryError:
                r = None
            if r is not None:
                r["mfu"] = mfu(r["tok_s"], fpt, peak_flops=args.peak)
                r["params"] = n_params(model)
                res[impl] = r
                print(f"{spec:16s} {impl:13s} params {r['params']:,} tok/s {r['tok_s']:,.0f} "
                      f"step {r['step_ms']:.1f} ms MFU {r['mfu'] * 100:.1f}% mem {r['mem_gib']:.1f} GiB "
                      f"loss {r['loss']:.3f} "
                      f"(warm-up {r['warmup_s']:.0f} s)", flush=True)
            else:
                print(f"{spec:16s} {impl:13s} out of memory", flush=True)
            del model
            free()
        rows.append((spec, fpt, res))
    print(f"\n{'model':16s} {'impl':13s} {'tok/s':>10s} {'MFU':>6s} {'peak GiB':>9s} {'× hf':>6s}")
    for spec, fpt, res in rows:
        hf = res.get("hf")
        for impl, r in res.items():
            ratio = f"{r['tok_s'] / hf['tok_s']:6.2f}" if hf else "   n/a"
            print(f"{spec:16s} {impl:13s} {r['tok_s']:10,.0f} {r['mfu'] * 100:5.1f}% {r['mem_gib']:9.1f} {ratio}")
        print(f"{'':16s} FLOPs/token = {fpt / 1e9:.3f} GFLOP (6·N_matmul + 12·L·D·T)")


if __name__ == "__main__":
    main()
