"""Check a checkpoint's `model_config` against the shapes stored in its weights file BEFORE building the model.

A hand-edited (or mismatched) model_config in state.json could otherwise allocate a huge model and only
then fail to load the weights. The model is built on PyTorch's "meta" device (shapes, no memory, no
initialisation cost) and its state-dict names and shapes are compared with the safetensors header (read
without loading any tensor data).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from archlab.errors import UserError
from archlab.models import build_model


class WeightsMismatch(UserError):
    """model_config and the weights file disagree; the message names the file and the first tensors."""


def stored_shapes(weights: str | Path) -> dict[str, tuple[int, ...]]:
    """{state-dict name: shape} of a model.safetensors written by archlab (tied aliases included)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise WeightsMismatch(f"{str(weights)!r} is not a readable safetensors file: {e}") from None
    for alias, name in aliases.items() if isinstance(aliases, dict) else ():
        if name in shapes:
            shapes[alias] = shapes[name]
    return shapes


def _few(items: list) -> str:
    return f"{items[:3]}" + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")


def check_config_fits_weights(cfg, weights: str | Path, where: str = "model_config") -> None:
    """Raise WeightsMismatch unless a model built from `cfg` has exactly the tensors (names, shapes) stored."""
    with torch.device("meta"):
        model = build_model(cfg)
    want = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    have = stored_shapes(weights)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    wrong = [(k, have[k], want[k]) for k in sorted(set(want) & set(have)) if have[k] != want[k]]
    if not (missing or extra or wrong):
        return
    parts = []
    if wrong:
        parts.append("; ".join(f"{k!r} is {list(h)} in the weights but {list(w)} for the config"
                               for k, h, w in wrong[:3]) + (f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""))
    if missing:
        parts.append(f"the weights lack {_few(missing)}")
    if extra:
        parts.append(f"the config has no place for {_few(extra)}")
    raise WeightsMismatch(f"{where} does not match the weights in {str(weights)!r} (checked before building the "
                          f"model): {'; '.join(parts)}")
