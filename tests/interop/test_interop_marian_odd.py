"""Marian with an odd d_model: transformers' sinusoid has ⌈D/2⌉ sine and ⌊D/2⌋ cosine columns, and archlab's
`sinusoidal_table` builds the same table, so such a model imports, matches transformers and exports back."""
from __future__ import annotations

import pytest
import torch
from _interop_util import batch, max_diff, scramble

from archlab.nn.position import sinusoidal_table

transformers = pytest.importorskip("transformers")
T = transformers
V = 40


def _old_table(n: int, dim: int, layout: str) -> torch.Tensor:
    """The even-width table as archlab built it before odd widths were supported."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    angles = pos * torch.pow(10000.0, -torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    if layout == "split":
        return torch.cat([angles.sin(), angles.cos()], dim=-1).float()
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()


@pytest.mark.parametrize("dim", [1, 2, 7, 15, 16])
def test_split_table_is_transformers_marian_table(dim):
    hf = T.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding(20, dim)
    assert torch.allclose(sinusoidal_table(20, dim, "split"), hf.create_weight(), atol=1e-6)


@pytest.mark.parametrize("dim", [2, 16, 48])
@pytest.mark.parametrize("layout", ["split", "interleaved"])
def test_even_tables_are_unchanged(dim, layout):
    assert torch.equal(sinusoidal_table(33, dim, layout), _old_table(33, dim, layout))


def test_odd_interleaved_table_is_seed_002_formula_on_d_channels():
    """PE(pos, 2i) = sin, PE(pos, 2i+1) = cos, channels 0..D-1: the last channel is a sine."""
    odd, even = sinusoidal_table(9, 7, "interleaved"), _old_table(9, 8, "interleaved")
    pos = torch.arange(9, dtype=torch.float64)
    want_last = torch.sin(pos / 10000.0 ** (6 / 7)).float()
    assert odd.shape == (9, 7) and torch.allclose(odd[:, 6], want_last) and torch.allclose(odd[:, 0], even[:, 0])


def test_marian_odd_d_model_matches_transformers_and_exports_back(tmp_path):
    from archlab.interop import from_hf, to_hf

    cfg = T.MarianConfig(vocab_size=V, d_model=15, encoder_layers=1, decoder_layers=1, encoder_attention_heads=3,
                         decoder_attention_heads=3, encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=16,
                         pad_token_id=V - 1, decoder_start_token_id=V - 1, scale_embedding=True)
    torch.manual_seed(0)
    hf_model = scramble(T.MarianMTModel(cfg))
    hf_model.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    assert model.cfg.d_model == 15
    src, src_mask = batch(V - 1)
    tgt, tgt_mask = batch(V - 1, t=8, seed=2, pad_from=5)
    kw = dict(attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    with torch.no_grad():
        ref = hf_model(src, **kw).logits
        assert ref.abs().max() > 0.5  # the logits are not trivially small
        assert max_diff(model(src, **kw), ref, tgt_mask) <= 1e-4
        to_hf(model, tmp_path / "export")
        back = T.MarianMTModel.from_pretrained(tmp_path / "export").eval()
        assert max_diff(back(src, **kw).logits, ref, tgt_mask) <= 1e-4
