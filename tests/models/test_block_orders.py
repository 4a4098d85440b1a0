"""Block orders without self-attention (seed 000): "omit multi-head attention" and "encoder-decoder attention
alone, without masked multi-head attention" build, train and decode (cached decoding = full forward:
tests/models/test_transformer_decoding.py); orders that mix no tokens are refused."""
import pytest
import torch

from archlab.config import ConfigError
from archlab.models import build_model, preset

FP32 = dict(atol=1e-5, rtol=1.3e-6)
# transformer-tiny: D=64, 2+2 layers, biased attention projections, post-norm LayerNorm with bias, no final norm
D = 64
SELF_ATTN = 4 * (D * D + D) + 2 * D  # q, k, v, o projections with biases + the sub-layer's LayerNorm

CROSS_ALONE = {"block.decoder_order": ["cross", "ffn"]}  # the encoder keeps its self-attention
NO_SELF_ATTN = {"block.order": ["cross", "ffn"]}  # encoder blocks [ffn], decoder blocks [cross, ffn]
ENCODER_FFN_ONLY = {"block.order": ["ffn"], "block.decoder_order": ["mixer", "cross", "ffn"]}


def _model(overrides):
    torch.manual_seed(0)
    return build_model(preset("transformer-tiny", **overrides))


def _batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(0, 256, (2, 9), generator=g)
    src_mask = torch.ones(2, 9, dtype=torch.long)
    src_mask[1, 6:] = 0
    return src, src_mask, torch.randint(0, 256, (2, 8), generator=g)


@pytest.mark.parametrize("overrides, enc, dec", [
    (CROSS_ALONE, ("mixer", "ffn"), ("cross", "ffn")),
    (NO_SELF_ATTN, ("ffn",), ("cross", "ffn")),
    (ENCODER_FFN_ONLY, ("ffn",), ("mixer", "cross", "ffn")),
])
def test_order_builds_and_trains_a_step(overrides, enc, dec):
    model = _model(overrides)
    assert all(b.order == enc for b in model.encoder.blocks)
    assert all(b.order == dec for b in model.decoder.blocks)
    src, src_mask, tgt = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    logits = model(src, attention_mask=src_mask, decoder_input_ids=tgt[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())  # every built weight is used
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("overrides, removed", [
    (CROSS_ALONE, 2 * SELF_ATTN),  # the two decoder layers' masked self-attention
    (NO_SELF_ATTN, 4 * SELF_ATTN),  # and the two encoder layers' self-attention
    (ENCODER_FFN_ONLY, 2 * SELF_ATTN),
])
def test_parameter_counts_by_hand(overrides, removed):
    base, variant = _model({}), _model(overrides)
    assert base.num_parameters() - variant.num_parameters() == removed
    names = [n for n, _ in variant.named_parameters()]
    dec_self = any(n.startswith("decoder.") and ".sub.mixer." in n for n in names)
    enc_self = any(n.startswith("encoder.") and ".sub.mixer." in n for n in names)
    assert dec_self == ("mixer" in (overrides.get("block.decoder_order") or overrides["block.order"]))
    assert enc_self == ("mixer" in overrides.get("block.order", ["mixer"]))


def test_cross_alone_decoder_reads_no_earlier_target_token():
    """Without masked self-attention, position t sees the source and its own input token only."""
    model = _model(CROSS_ALONE).eval()
    src, src_mask, tgt = _batch()
    changed = tgt.clone()
    changed[:, :5] = (changed[:, :5] + 1) % 256
    with torch.no_grad():
        a = model(src, attention_mask=src_mask, decoder_input_ids=tgt)
        b = model(src, attention_mask=src_mask, decoder_input_ids=changed)
        torch.testing.assert_close(a[:, 5:], b[:, 5:], **FP32)
        assert not torch.allclose(a[:, :5], b[:, :5])
        src2 = src.clone()
        src2[:, 0] = (src2[:, 0] + 1) % 256
        assert not torch.allclose(a, model(src2, attention_mask=src_mask, decoder_input_ids=tgt))


def test_ffn_only_encoder_is_positionwise():
    model = _model(ENCODER_FFN_ONLY).eval()
    src, _, _ = _batch()
    changed = src.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 256
    with torch.no_grad():
        a, b = model.encode(src), model.encode(changed)
    keep = [i for i in range(src.shape[1]) if i != 4]
    torch.testing.assert_close(a[:, keep], b[:, keep], **FP32)
    assert not torch.allclose(a[:, 4], b[:, 4])


@pytest.mark.parametrize("name, overrides, match", [
    ("gpt-tiny", {"block.order": ["ffn"]}, r"block.order=\['ffn'\] has no 'mixer'.*itself alone"),
    ("bert-tiny", {"block.order": ["ffn"]}, r"block.order=\['ffn'\] has no 'mixer'.*itself alone"),
    ("gpt-tiny", {"block.order": ["cross", "ffn"]}, r"cross-attention needs shape='encoder_decoder'"),
    ("gpt-tiny", {"block.decoder_order": ["cross", "ffn"]}, r"block.decoder_order is only for"),
    ("transformer-tiny", {"block.order": ["ffn"]}, r"block.order=\['ffn'\].*without 'cross'"),
    ("transformer-tiny", {"block.decoder_order": ["mixer", "ffn"]}, r"block.decoder_order=.*never read the encoder"),
    ("transformer-tiny", {"block.order": []}, r"block.order is empty"),
    ("transformer-tiny", {"block.decoder_order": ["cross", "cross"]}, r"repeats a sub-layer"),
])
def test_orders_that_cannot_work_are_refused(name, overrides, match):
    with pytest.raises(ConfigError, match=match):
        preset(name, **overrides)


def test_marian_export_refuses_a_decoder_order_by_name():
    import dataclasses

    from archlab.interop.marian import config_to_hf

    transformers = pytest.importorskip("transformers")
    hf = transformers.MarianConfig(vocab_size=64, d_model=32, encoder_layers=1, decoder_layers=1,
                                   encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                                   decoder_ffn_dim=64, max_position_embeddings=32, pad_token_id=63,
                                   decoder_start_token_id=63).to_dict()
    from archlab.interop.marian import config_from_hf

    cfg = config_from_hf(hf, set())
    config_to_hf(cfg)  # the imported config exports
    cross_alone = dataclasses.replace(cfg, block=dataclasses.replace(cfg.block, decoder_order=("cross", "ffn")))
    with pytest.raises(ValueError, match="block.decoder_order"):
        config_to_hf(cross_alone)
