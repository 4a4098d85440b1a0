"""Assembled model families and the one entry point that builds any of them from a config."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archlab import registry
from archlab.config import ConfigError, apply_overrides, check_choice, flatten, from_dict
from archlab.models import presets, transformer  # noqa: F401  (registers builders)
from archlab.models.presets import preset, preset_names  # noqa: F401
from archlab.models.transformer import Transformer  # noqa: F401
from archlab.models.transformer_config import TransformerConfig

CONFIG_CLASSES: dict[str, type] = {"transformer": TransformerConfig}


def register_config(arch: str, cls: type) -> None:
    """Make `arch: NAME` in a model mapping build config class `cls`."""
    CONFIG_CLASSES[arch] = cls


from archlab.models import cnn  # noqa: E402,F401  (registers the CNN family's builder and presets)
from archlab.models.cnn_config import CNNConfig  # noqa: E402

register_config("cnn", CNNConfig)

from archlab.models import rnn_seq2seq  # noqa: E402,F401  (the RNN encoder-decoder of seed 003 and its presets)
from archlab.models.rnn_seq2seq import RNNSeq2SeqConfig  # noqa: E402

register_config("rnn_seq2seq", RNNSeq2SeqConfig)


def model_config_from_dict(data: Mapping[str, Any]):
    """A model config from a mapping: {'preset': name, ...overrides} or {'arch': ..., fields...}."""
    data = dict(data)
    if "preset" in data:
        name = data.pop("preset")
        if not isinstance(name, str):
            raise ConfigError(f"model.preset={name!r} must be a preset name (a string)")
        return apply_overrides(preset(name), flatten(data)) if data else preset(name)  # keys may include `name`
    arch = data.get("arch", "transformer")
    check_choice("model.arch", arch, sorted(CONFIG_CLASSES))
    return from_dict(CONFIG_CLASSES[arch], data, prefix="model.")


def build_model(cfg):
    """nn.Module for any registered model config."""
    if isinstance(cfg, str):
        cfg = preset(cfg)
    arch = getattr(cfg, "arch", None)
    if arch is None:
        raise ConfigError(f"{type(cfg).__name__} has no 'arch' field; cannot pick a model builder")
    return registry.build("model", arch, cfg)
from archlab.models import mamba  # noqa: E402,F401  (Mamba LM and mixer presets)
