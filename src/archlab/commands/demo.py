"""`archlab demo`: the first thing a newcomer runs."""
from __future__ import annotations

import time

import torch


def add_parser(sub):
    p = sub.add_parser("demo", help="a few-minute tour on CPU",
                       description="Build each tiny preset, print parameter counts and forward-pass timings.")
    p.add_argument("--out", default="runs/demo", help="where the demo writes its outputs")
    return p


def run(args) -> int:
    from archlab.models import build_model

    torch.manual_seed(0)
    print("== archlab demo: every Transformer shape, built from named parts ==")
    for name in ("gpt-tiny", "llama-tiny", "bert-tiny", "transformer-tiny"):
        model = build_model(name).eval()
        x = torch.randint(0, model.cfg.vocab_size, (4, 64))
        kw = {"decoder_input_ids": x} if model.cfg.shape == "encoder_decoder" else {}
        with torch.no_grad():
            model(x, **kw)
            t0 = time.perf_counter()
            for _ in range(5):
                model(x, **kw)
            dt = (time.perf_counter() - t0) / 5
        print(f"{name:<18} {model.cfg.shape:<16} {model.num_parameters():>10,} params   forward(4x64) {dt * 1e3:6.1f} ms")
    return 0
