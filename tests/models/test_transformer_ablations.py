"""Every Transformer ablation switch is a config change that builds, runs and changes the model."""
import pytest
import torch

from archlab.models import build_model, preset

SWITCHES = [
    {"pos.kind": "none"}, {"pos.kind": "sinusoidal"}, {"pos.kind": "rope"},
    {"pos.kind": "sinusoidal", "pos.sinusoidal_layout": "split"},
    {"block.residual": False}, {"block.norm": "post"}, {"block.norm": "none"}, {"norm.kind": "rmsnorm"},
    {"ffn.enabled": False}, {"ffn.activation": "relu"}, {"ffn.activation": "swiglu"}, {"ffn.activation": "geglu"},
    {"attn.n_heads": 1}, {"attn.n_heads": 8}, {"attn.n_kv_heads": 2}, {"attn.causal": False},
    {"block.order": ["ffn", "mixer"]}, {"head.tie": False}, {"embed.scale": True},
]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_switch_builds_runs_and_changes_output(switch):
    torch.manual_seed(0)
    base = build_model("gpt-tiny").eval()
    torch.manual_seed(0)
    variant = build_model(preset("gpt-tiny", **switch)).eval()
    ids = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        out = variant(ids)
        ref = base(ids)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, ref), f"{switch} did not change the computation"


def test_no_ffn_removes_exactly_the_ffn_parameters():
    base, variant = build_model("gpt-tiny"), build_model(preset("gpt-tiny", **{"ffn.enabled": False}))
    d, f, layers = 64, 256, 2
    ffn_params = (d * f + f + f * d + d) + 2 * d  # two linears and the sub-layer's LayerNorm
    assert base.num_parameters() - variant.num_parameters() == layers * ffn_params


def test_post_norm_encoder_decoder_and_pre_norm_variant():
    torch.manual_seed(0)
    for norm in ("post", "pre"):
        model = build_model(preset("transformer-tiny", **{"block.norm": norm})).eval()
        src, tgt = torch.randint(0, 256, (2, 9)), torch.randint(0, 256, (2, 5))
        assert model(src, decoder_input_ids=tgt).shape == (2, 5, 256)
        assert (model.decoder.final_norm is not None) == (norm == "pre")


def test_sinusoidal_table_follows_seed_002_formula():
    import math

    from archlab.nn.position import sinusoidal_table

    table = sinusoidal_table(50, 16)
    pos, i = 7, 3
    assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 16)), rel_tol=1e-6)
    assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 16)), rel_tol=1e-6)
