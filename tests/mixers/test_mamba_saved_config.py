"""Checkpoints saved before mixer.ssm.gate_activation existed keep their meaning: the gate used `activation`."""
from __future__ import annotations

import json

import pytest
import torch

from archlab.config import to_dict
from archlab.models import build_model, model_config_from_dict, preset
from archlab.models.migrations import upgrade_saved_model_config
from archlab.train import checkpoint as ck


def _old_checkpoint(tmp_path, activation):
    """A checkpoint written the way archlab wrote it before issue 18: no gate_activation in model_config."""
    cfg = preset("mamba-tiny", d_model=16, n_layers=1, vocab_size=20,
                 **{"mixer.ssm.activation": activation, "mixer.ssm.gate_activation": activation})
    model = build_model(cfg)
    model_config = to_dict(cfg)
    del model_config["mixer"]["ssm"]["gate_activation"]
    path = ck.save_checkpoint(tmp_path / "checkpoints", 3, model, state={"model_config": model_config})
    doc = json.loads((path / ck.STATE_FILE).read_text())
    assert "gate_activation" not in doc["model_config"]["mixer"]["ssm"]  # really the old form, checksum valid
    return path, model


@pytest.mark.parametrize("activation", ["relu", "silu"])
def test_an_old_checkpoint_is_rebuilt_with_the_gate_it_was_trained_with(tmp_path, activation):
    path, trained = _old_checkpoint(tmp_path, activation)
    _, doc = ck.open_checkpoint(tmp_path)
    assert doc["model_config"]["mixer"]["ssm"]["gate_activation"] == activation
    model = build_model(model_config_from_dict(doc["model_config"]))
    ck.load_checkpoint(path, model)
    assert model.decoder.blocks[0].sub["mixer"].cfg.gate_activation == activation
    x = torch.randint(0, 20, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x), atol=0, rtol=0)


def test_upgrade_leaves_new_and_partial_configs_alone():
    new = {"mixer": {"ssm": {"activation": "relu", "gate_activation": "silu"}}}
    assert upgrade_saved_model_config(new) is new
    for cfg in ({"preset": "mamba-tiny"}, {"mixer": {"kind": "attention"}}, None, {"mixer": "x"}):
        assert upgrade_saved_model_config(cfg) is cfg


def _drop_gate_activation(ckpt_dir):
    """Rewrite state.json as older archlab wrote it (no gate_activation), with a valid self-checksum."""
    sp = ckpt_dir / ck.STATE_FILE
    doc = json.loads(sp.read_text())
    doc.pop(ck.SELF_SHA)
    del doc["model_config"]["mixer"]["ssm"]["gate_activation"]
    doc[ck.SELF_SHA] = ck._canonical_sha256(doc)
    sp.write_text(json.dumps(doc))


def test_a_run_checkpointed_before_gate_activation_existed_resumes(tmp_path):
    """Every transformer config carries mixer.ssm; the new field must not make older runs unresumable."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
    import toy_task_helpers as toy

    from archlab.train import apply_run_overrides, train

    cfg = toy.toy_config(steps=4, eval_every=2, checkpoint_every=2)
    train(apply_run_overrides(cfg, ["train.stop_at=2"]), tmp_path, progress=False)
    _drop_gate_activation(ck.latest_checkpoint(tmp_path))
    assert train(cfg, tmp_path, resume=True, progress=False)["step"] == 4
