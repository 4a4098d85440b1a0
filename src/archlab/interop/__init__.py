"""Hugging Face import/export: real checkpoints in and out of archlab, tested against `transformers`.

    from archlab.interop import load_pretrained, from_hf, to_hf
    model, tokenizer = load_pretrained("path/to/hf-or-archlab-dir")
    to_hf(model, "out/dir", tokenizer)      # config.json + model.safetensors that transformers reads

Supported: GPT-2, LLaMA, BERT (base / masked-LM / sequence classification), Marian (the classic
encoder-decoder Transformer) and Mamba; SmolLM2-style LLaMA GGUF files are read via the `gguf` package.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from archlab.errors import MissingFileError
from archlab.interop import bert, gpt2, llama, mamba, marian
from archlab.interop.hf_io import (
    ACT_FROM_HF,
    CONFIG_FILE,
    WEIGHTS_FILE,
    InteropError,
    TensorSource,
    load_state_strict,
    load_tokenizer,
    read_config,
    read_json,
    read_tensors,
    write_model_dir,
)

__all__ = ["InteropError", "from_hf", "to_hf", "is_hf_dir", "load_pretrained", "save_archlab", "family_of",
           "convert_state_from_hf", "decoder_start_id", "FAMILIES"]

FAMILIES: dict[str, ModuleType] = {m.MODEL_TYPE: m for m in (gpt2, llama, bert, marian, mamba)}

# HF keys carried to the archlab model as `model.hf_meta` (generation needs the token ids; the activation's
# spelling is written back on export: archlab configs hold neither)
META_KEYS = ("model_type", "architectures", "bos_token_id", "eos_token_id", "decoder_start_token_id",
             "pad_token_id", "forced_eos_token_id", "activation_function", "hidden_act")
ACT_KEYS = ("activation_function", "hidden_act")


def _gguf_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.gguf")) if path.is_dir() else ([path] if path.suffix == ".gguf" else [])


def is_hf_dir(path: str | Path) -> bool:
    """Whether `path` looks like a Hugging Face model (config.json with model_type, or a .gguf file).

    Raises InteropError when config.json exists but is not valid JSON (naming the file and line)."""
    p = Path(path)
    if _gguf_files(p) and not (p / WEIGHTS_FILE).is_file():
        return True
    cfg = p / CONFIG_FILE
    if not cfg.is_file():
        return False
    data = read_json(cfg)  # invalid JSON is reported as such (file, line, column), not as "not an HF model"
    return "model_type" in data and "model" not in data


def _family(hf: dict[str, Any], where: str) -> ModuleType:
    mt = hf.get("model_type")
    if mt not in FAMILIES:
        archs = hf.get("architectures")
        raise InteropError(f"{where}: unsupported architecture model_type={mt!r} (architectures={archs}); "
                           f"archlab converts model_type in {sorted(FAMILIES)}")
    arch = (hf.get("architectures") or [None])[0]
    if arch is not None and arch not in FAMILIES[mt].ARCHITECTURES:
        raise InteropError(f"{where}: unsupported architecture {arch!r}; for model_type={mt!r} archlab converts "
                           f"{list(FAMILIES[mt].ARCHITECTURES)}")
    return FAMILIES[mt]


def convert_state_from_hf(hf: dict[str, Any], tensors: dict[str, torch.Tensor], where: str):
    """(archlab config, archlab state dict, {archlab name: HF tensor name}) for HF config + tensors."""
    fam = _family(hf, where)
    cfg = fam.config_from_hf(hf, set(tensors))
    src = TensorSource(tensors, where, prefixes=fam.PREFIXES, ignore=fam.IGNORE)
    state, sources = fam.convert_from_hf(src, cfg)
    src.finish()
    return cfg, state, sources


def _build(cfg, state, sources, where: str, hf: dict[str, Any]) -> torch.nn.Module:
    from archlab.models import build_model

    model = build_model(cfg)
    load_state_strict(model, state, sources, where)
    model.hf_meta = {k: hf[k] for k in META_KEYS if k in hf}
    return model.eval()


def from_hf(path: str | Path) -> torch.nn.Module:
    """An archlab model (eval mode, fp32) holding the weights of an HF model directory or GGUF file."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"model path {str(p)!r} does not exist")
    ggufs = _gguf_files(p)
    if ggufs and not (p.is_dir() and (p / WEIGHTS_FILE).is_file()):
        from archlab.interop import gguf

        if len(ggufs) > 1:
            raise InteropError(f"{str(p)!r} holds several .gguf files {[g.name for g in ggufs]}; pass one")
        hf, tensors = gguf.read_gguf(ggufs[0])
        where = str(ggufs[0])
    else:
        hf = read_config(p)
        tensors = read_tensors(p)
        where = str(p / WEIGHTS_FILE)
    cfg, state, sources = convert_state_from_hf(hf, tensors, where)
    return _build(cfg, state, sources, where, hf)


def family_of(cfg) -> ModuleType:
    """The HF family an archlab config exports to (the first whose shape fits)."""
    for fam in FAMILIES.values():
        if fam.claims(cfg):
            return fam
    raise InteropError(f"no Hugging Face architecture matches this archlab config (shape={cfg.shape!r}, "
                       f"pos.kind={cfg.pos.kind!r}, mixer.kind={cfg.mixer.kind!r}); "
                       f"archlab exports {sorted(FAMILIES)}")


def decoder_start_id(model: torch.nn.Module, tokenizer: Any = None) -> int | None:
    """The token an encoder-decoder starts decoding from: the imported `decoder_start_token_id`, else the
    bos id of an archlab tokenizer (archlab's seq2seq task starts from bos), else `pad_token_id` (Marian)."""
    meta = getattr(model, "hf_meta", {}) or {}
    if isinstance(meta.get("decoder_start_token_id"), int):
        return meta["decoder_start_token_id"]
    if isinstance(getattr(tokenizer, "bos_id", None), int):
        return tokenizer.bos_id
    return model.cfg.pad_token_id


def to_hf(model: torch.nn.Module, path: str | Path, tokenizer: Any = None) -> Path:
    """Write `model` as an HF directory (config.json + model.safetensors [+ tokenizer.json])."""
    cfg = model.cfg
    fam = family_of(cfg)
    hf = fam.config_to_hf(cfg)
    meta = getattr(model, "hf_meta", {}) or {}
    for k in ("bos_token_id", "eos_token_id", "forced_eos_token_id"):
        if k in meta and k in hf and hf[k] is None:
            hf[k] = meta[k]
    if "decoder_start_token_id" in hf:  # the imported start token, else the one archlab's seq2seq training used
        start = decoder_start_id(model, tokenizer)
        if start is not None:
            hf["decoder_start_token_id"] = start
    for k in ACT_KEYS:  # e.g. GPT-2 `gelu_pytorch_tanh` stays that, not the equal `gelu_new` archlab would write
        spelled = meta.get(k)
        if k in hf and isinstance(spelled, str) and ACT_FROM_HF.get(spelled, "?") == ACT_FROM_HF.get(hf[k]):
            hf[k] = spelled
    hf.setdefault("dtype", "float32")
    state = {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    tensors = fam.convert_to_hf(state, cfg)
    from archlab.interop.char_tokenizer import hf_tokenizer, tokenizer_config

    out = write_model_dir(path, hf, tensors, hf_tokenizer(tokenizer))
    if tokenizer is not None and not (out / "tokenizer_config.json").is_file():
        from archlab.interop.hf_io import write_json

        write_json(out / "tokenizer_config.json", tokenizer_config(tokenizer))
    return out


# ----------------------------------------------------------------------------- archlab checkpoints
def save_archlab(model: torch.nn.Module, path: str | Path, tokenizer: Any = None) -> Path:
    """Write `model` as an archlab checkpoint under `path` (the trainer's format: step_00000000/ + LATEST)."""
    from archlab.config import to_dict
    from archlab.train.checkpoint import save_checkpoint

    state = {"model_config": to_dict(model.cfg), "hf_meta": getattr(model, "hf_meta", {}) or {}}
    return save_checkpoint(path, 0, model, None, state, tokenizer, keep=1)


def _load_archlab(p: Path):
    from archlab.models import build_model, model_config_from_dict
    from archlab.train.checkpoint import load_checkpoint, open_checkpoint
    from archlab.train.weights_fit import check_config_fits_weights

    ckpt, doc = open_checkpoint(p)  # verified once; a run dir falls back to its newest complete checkpoint
    section = doc.get("model_config") or (doc.get("run_config") or {}).get("model")
    if not isinstance(section, dict):
        raise InteropError(f"{str(ckpt / 'state.json')!r} holds no model_config; cannot rebuild the model")
    cfg = model_config_from_dict(section)
    check_config_fits_weights(cfg, ckpt / "model.safetensors", f"{str(ckpt / 'state.json')!r} model_config")
    model = build_model(cfg)
    load_checkpoint(ckpt, model, state=doc)
    model.hf_meta = doc.get("hf_meta") or {}
    tok = None
    for cand in (ckpt, ckpt.parent.parent):  # the checkpoint itself, or its run directory
        tok = load_tokenizer(cand)
        if tok is not None:
            break
    return model.eval(), tok


def load_pretrained(path: str | Path):
    """(model in eval mode, `tokenizers.Tokenizer` or None) from an HF directory / GGUF file, or an archlab
    checkpoint / run directory."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"model path {str(p)!r} does not exist")
    if is_hf_dir(p):
        model = from_hf(p)
        tok = load_tokenizer(p) if p.is_dir() else None
        if tok is None and _gguf_files(p):
            from archlab.interop import gguf

            try:
                tok = gguf.tokenizer_from_gguf(_gguf_files(p)[0])
            except InteropError as e:  # the weights are still usable; say why there is no tokenizer
                warnings.warn(f"no tokenizer: {e}", stacklevel=2)
        return model, tok
    return _load_archlab(p)
