"""An imported activation is exported under the name it was imported with (GPT-2 `gelu_pytorch_tanh` is not
re-spelled `gelu_new`, Marian `silu` not `swish`), directly and through an archlab checkpoint."""
from __future__ import annotations

import json

import pytest
import torch
from _interop_util import batch, max_diff, scramble

transformers = pytest.importorskip("transformers")

from archlab.cli import main  # noqa: E402
from archlab.config import replace  # noqa: E402
from archlab.interop import from_hf, to_hf  # noqa: E402

T = transformers
V = 53


def _gpt2(act):
    torch.manual_seed(0)
    return scramble(T.GPT2LMHeadModel(T.GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=2, n_positions=32,
                                                   activation_function=act, bos_token_id=None, eos_token_id=None)))


def _act(d, key="activation_function"):
    return json.loads((d / "config.json").read_text())[key]


@pytest.mark.parametrize("act", ["gelu_pytorch_tanh", "gelu_new", "gelu", "relu"])
def test_gpt2_activation_written_back_as_imported(act, tmp_path):
    hf = _gpt2(act)
    hf.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    to_hf(model, tmp_path / "out")
    assert _act(tmp_path / "out") == act
    ids, mask = batch(V)
    back = T.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        assert max_diff(back(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits, mask) <= 1e-4


def test_gpt2_activation_survives_an_archlab_checkpoint(tmp_path, capsys):
    _gpt2("gelu_pytorch_tanh").save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--to", str(tmp_path / "al"), "--no-check"]) == 0
    assert main(["convert", "--from", str(tmp_path / "al"), "--to-hf", str(tmp_path / "out")]) == 0
    assert _act(tmp_path / "out") == "gelu_pytorch_tanh"
    assert "max |logit difference|" in capsys.readouterr().out  # the export was checked against transformers


def test_a_changed_activation_is_not_overwritten_by_the_imported_name(tmp_path):
    _gpt2("gelu_pytorch_tanh").save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    relu = type(model)(replace(model.cfg, ffn=replace(model.cfg.ffn, activation="relu")))
    relu.hf_meta = model.hf_meta
    to_hf(relu, tmp_path / "out")
    assert _act(tmp_path / "out") == "relu"


def test_marian_silu_stays_silu(tmp_path):
    torch.manual_seed(0)
    cfg = T.MarianConfig(vocab_size=V, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32,
                         pad_token_id=V - 1, decoder_start_token_id=V - 1, activation_function="silu")
    T.MarianMTModel(cfg).save_pretrained(tmp_path / "hf")
    to_hf(from_hf(tmp_path / "hf"), tmp_path / "out")
    assert _act(tmp_path / "out") == "silu"
