"""A hand-edited model_config in state.json is checked against the weights' shapes before any model is built
(issue 18): a huge config is refused in well under a second with one line naming the tensors."""
from __future__ import annotations

import json
import time

import pytest
import torch

from archlab.cli import main
from archlab.data.tokenizers import CharTokenizer
from archlab.interop import load_pretrained, save_archlab
from archlab.models import build_model, model_config_from_dict, preset
from archlab.train.weights_fit import WeightsMismatch, check_config_fits_weights


@pytest.fixture()
def ckpt(tmp_path):
    tok = CharTokenizer.from_text("ROMEO: abc\n")
    torch.manual_seed(0)
    return save_archlab(build_model(preset("char-llama", vocab_size=tok.vocab_size)), tmp_path / "run" / "checkpoints",
                        tok)


def _hand_edit(ck, **changes):
    """Edit model_config as a user would in an older (format /1, no self-checksum) state.json."""
    p = ck / "state.json"
    doc = json.loads(p.read_text())
    doc.pop("state_sha256", None)
    doc["format"] = "archlab-checkpoint/1"
    doc["model_config"].update(changes)
    p.write_text(json.dumps(doc))
    return doc["model_config"]


def test_matching_config_passes(ckpt):
    doc = json.loads((ckpt / "state.json").read_text())
    check_config_fits_weights(model_config_from_dict(doc["model_config"]), ckpt / "model.safetensors")
    # tied weights are stored once; the alias is filled back in from the file's metadata
    assert doc["model_config"]["head"]["tie"] is True


def test_huge_hand_edited_config_is_refused_before_building(ckpt, capsys):
    cfg = model_config_from_dict(_hand_edit(ckpt, d_model=65536, n_layers=64))  # ~1e12 parameters if built
    t = time.perf_counter()
    with pytest.raises(WeightsMismatch, match=r"norms.ffn.weight' is \[128\] in the weights but \[65536\]"):
        check_config_fits_weights(cfg, ckpt / "model.safetensors")
    assert time.perf_counter() - t < 5
    for argv in (["sample", str(ckpt.parent.parent), "--max-new-tokens", "2"],
                 ["convert", "--from", str(ckpt.parent.parent), "--to-hf", str(ckpt.parent.parent / "hf")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "model_config does not match the weights" in err, err


def test_layer_count_mismatch_names_missing_tensors(ckpt):
    _hand_edit(ckpt, n_layers=5)
    with pytest.raises(ValueError, match=r"the weights lack \['decoder.blocks.4"):
        load_pretrained(ckpt)
    _hand_edit(ckpt, n_layers=3)
    with pytest.raises(ValueError, match=r"the config has no place for \['decoder.blocks.3"):
        load_pretrained(ckpt)
