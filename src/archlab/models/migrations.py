"""Config migrations: a config saved by older archlab, rewritten so it keeps the meaning it was saved with."""
from __future__ import annotations

from typing import Any


def upgrade_saved_model_config(cfg: Any) -> Any:
    """A model config saved before `mixer.ssm.gate_activation` existed (issue 18) gated with its `activation`:
    give it that gate explicitly, so an older checkpoint is rebuilt (and resumed) with the meaning it was
    trained with. Configs that name gate_activation, or no activation (the SiLU default), are returned as is."""
    mixer = cfg.get("mixer") if isinstance(cfg, dict) else None
    ssm = mixer.get("ssm") if isinstance(mixer, dict) else None
    if not isinstance(ssm, dict) or "gate_activation" in ssm or "activation" not in ssm:
        return cfg
    return {**cfg, "mixer": {**mixer, "ssm": {**ssm, "gate_activation": ssm["activation"]}}}
