"""The preset table behind `archlab presets`: every preset's family, parameter count (its model built on the meta
device: nothing is allocated) and a one-line description. Stored by archlab.preset_index so that listing presets
does not import torch."""
from __future__ import annotations

import fnmatch
from typing import Any

import torch

from archlab import preset_index
from archlab.models import build_model, preset, preset_names
from archlab.models.presets import DEPRECATED_ALIASES

# where a preset comes from, when it reproduces a published model (first match wins; the shape follows)
NOTES = (
    ("gpt2", "GPT-2 small (OpenAI 2019)"), ("gpt2-medium", "GPT-2 medium"), ("gpt2-large", "GPT-2 large"),
    ("gpt2-xl", "GPT-2 XL"), ("bert-base", "BERT-base (Devlin et al. 2019), pooler, no MLM head"),
    ("bert-base-mlm", "BERT-base with its MLM head"), ("bert-large", "BERT-large, pooler"),
    ("minilm-l6", "all-MiniLM-L6-v2's BERT encoder"), ("smollm2-135m", "SmolLM2-135M (Hugging Face)"),
    ("llama2-7b", "Llama 2 7B"), ("llama3.2-1b", "Llama 3.2 1B (llama3 RoPE scaling)"),
    ("llama-153m", "LLaMA blocks at GPT-2-small's width and depth, untied 50,304-token head (was llama-124m)"),
    ("transformer-base", "'Attention is all you need' base"), ("transformer-big", "'Attention is all you need' big"),
    ("char-gpt", "nanoGPT's CPU character-level Shakespeare shape"), ("char-llama", "the `make demo` model"),
    ("mamba-*-*", "tiny Mamba for tests"), ("mamba-*", "state-spaces Mamba (HF checkpoint sizes)"),
    ("mixer-*-tiny", "tiny mixer-zoo model for the recall tasks (seed 001)"), ("*-tiny", "tiny, for tests"),
    ("resnet18", "ResNet-18 (torchvision)"), ("resnet34", "ResNet-34 (torchvision)"),
    ("resnet50", "ResNet-50 (torchvision)"), ("googlenet", "GoogLeNet (Szegedy et al. 2015), 5×5 branches"),
    ("googlenet-tv", "GoogLeNet as torchvision builds it (3×3 in the '5×5' branch)"),
    ("mobilenet-v1", "MobileNet v1 (Howard et al. 2017)"), ("alexnet", "AlexNet (torchvision)"),
    ("vgg16", "VGG-16 (torchvision)"), ("*-small", "small, for 28×28 grey images (Fashion-MNIST)"),
)


def family(cfg: Any) -> str:
    """'decoder', 'encoder_decoder', 'decoder/mamba', 'resnet', ... as the table shows it."""
    fam = getattr(cfg, "shape", None) or getattr(cfg, "kind", "")
    mixer = getattr(getattr(cfg, "mixer", None), "kind", "")
    return f"{fam}/{mixer}" if mixer and mixer != "attention" else fam


def _transformer_shape(cfg: Any) -> str:
    mixer = cfg.mixer.kind if not cfg.mixer.pattern else "+".join(cfg.mixer.pattern)
    parts = [f"{cfg.n_layers} layers", f"d {cfg.d_model}"]
    if "attention" in (mixer, *cfg.mixer.pattern):
        kv = cfg.attn.n_kv_heads
        parts.append(f"{cfg.attn.n_heads} heads" + (f" ({kv} KV)" if kv and kv != cfg.attn.n_heads else ""))
    if mixer != "attention":
        parts.append(f"{mixer} mixer" + ("" if cfg.mixer.kind != "mamba" or cfg.mixer.ssm.selective else " (LTI)"))
    if cfg.pos.kind != "none":
        parts.append(f"{cfg.pos.kind} positions")
    parts.append(f"{cfg.norm.kind} {cfg.block.norm}-norm")
    if cfg.ffn.enabled:
        parts.append(f"{cfg.ffn.activation} FFN")
    parts += [f"vocab {cfg.vocab_size:,}", f"context {cfg.max_seq_len:,}"]
    if cfg.head.tie and cfg.head.lm:
        parts.append("tied head")
    return ", ".join(parts)


def shape(cfg: Any) -> str:
    """The preset's architecture in a few words."""
    arch = getattr(cfg, "arch", "")
    if arch == "transformer":
        return _transformer_shape(cfg)
    if arch == "cnn":
        return f"{cfg.kind} CNN, {cfg.image_size}×{cfg.image_size}×{cfg.in_channels} images, {cfg.n_classes} classes"
    if arch == "rnn_seq2seq":
        attn = "no attention" if cfg.attention == "none" else f"{cfg.attention} attention"
        return f"{cfg.cell.upper()} encoder-decoder, {cfg.n_layers} layer(s), hidden {cfg.hidden}, {attn}, " \
               f"vocab {cfg.vocab_size:,}"
    return arch


def describe(name: str, cfg: Any) -> str:
    """One line: where the preset comes from (when known), then its shape."""
    note = next((text for pat, text in NOTES if fnmatch.fnmatchcase(name, pat)), "")
    return f"{note}: {shape(cfg)}" if note else shape(cfg)


def preset_row(name: str) -> dict[str, Any]:
    """{name, family, params, description} of one preset (parameters counted on the meta device)."""
    cfg = preset(name)
    with torch.device("meta"):
        n = build_model(cfg).num_parameters()
    return {"name": name, "family": family(cfg), "params": int(n), "description": describe(name, cfg)}


def preset_table(fp: str | None = None) -> dict[str, Any]:
    """The whole table as archlab.preset_index stores it."""
    rows = [preset_row(n) for n in preset_names()]
    aliases = {old: new for old, (new, _) in DEPRECATED_ALIASES.items()}
    return preset_index.document(rows, aliases, fp or preset_index.fingerprint())
