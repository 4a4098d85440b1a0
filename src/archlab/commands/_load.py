"""Load a model (and tokenizer) for the CLI from an archlab checkpoint / run dir or a Hugging Face folder."""
from __future__ import annotations

import os
import re
from pathlib import Path

from archlab.errors import MissingFileError


def as_archlab_tokenizer(tok, source):
    """A plain `tokenizers.Tokenizer` (from an HF folder or a GGUF file) gets archlab's tokenizer API
    (encode/decode, eos_id, ...); archlab tokenizers and None pass through."""
    if tok is None or hasattr(tok, "eos_id"):
        return tok
    from archlab.data.tokenizers import BPETokenizer

    return BPETokenizer(tok, source=str(source))


HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def hub_snapshot(name: str) -> Path:
    """The local snapshot folder of a hub-style name (ORG/NAME) in the Hugging Face cache, with no download;
    a name that is not there (or a path that does not exist) is a one-line error saying how to get it."""
    if not HUB_NAME.match(name):
        raise MissingFileError(f"checkpoint path {name!r} does not exist")
    cache = hf_cache_dir()
    repo = cache / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    snaps = [repo / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
    snaps += sorted((repo / "snapshots").glob("*"), key=lambda q: q.stat().st_mtime, reverse=True)
    for snap in snaps:
        if snap.is_dir() and (snap / "config.json").is_file():
            return snap
    raise MissingFileError(f"checkpoint path {name!r} does not exist, and {name!r} is not in the local Hugging Face "
                           f"cache ({cache}); for a hub model, download it with `huggingface-cli download {name}` on a "
                           "machine with network (and copy the cache here, or set HF_HUB_CACHE to it), or pass a local "
                           "folder")


def load_for_inference(path: str, device: str = "cpu"):
    """(model in eval mode, tokenizer or None, checkpoint state dict or {})."""
    p = Path(path)
    if not p.exists():
        p = hub_snapshot(path)
    try:
        from archlab.interop import is_hf_dir, load_pretrained  # optional: another module provides it
    except ImportError:
        is_hf_dir = load_pretrained = None
    if is_hf_dir is not None and is_hf_dir(p):
        loaded = load_pretrained(p)
        model, tok = (loaded if isinstance(loaded, tuple) else (loaded, None))[:2]
        if tok is None and (p / "tokenizer.json").is_file():
            from archlab.data.tokenizers import load_tokenizer

            tok = load_tokenizer(p / "tokenizer.json")
        return model.to(device).eval(), as_archlab_tokenizer(tok, p), {}
    from archlab.models import build_model, model_config_from_dict
    from archlab.train.checkpoint import CheckpointError, load_checkpoint, open_checkpoint

    ck, doc = open_checkpoint(p)  # a run dir falls back to its newest complete checkpoint, with a notice
    doc["path"] = str(ck)
    if not isinstance(doc.get("model_config"), dict):
        raise CheckpointError(f"{str(ck / 'state.json')!r} holds no model_config; cannot rebuild the model")
    cfg = model_config_from_dict(doc["model_config"])
    from archlab.train.weights_fit import check_config_fits_weights  # shapes first: never build a wrong model

    check_config_fits_weights(cfg, ck / "model.safetensors", f"{str(ck / 'state.json')!r} model_config")
    model = build_model(cfg)
    load_checkpoint(ck, model, device=device, state=doc)
    tok = None
    for cand in (ck / "tokenizer.json", ck.parent.parent / "tokenizer.json"):
        if cand.is_file():
            from archlab.data.tokenizers import load_tokenizer

            tok = load_tokenizer(cand)
            break
    return model.to(device).eval(), tok, doc
