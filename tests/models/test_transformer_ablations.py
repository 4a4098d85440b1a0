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


def _record_block_io(model):
    """Forward hooks recording, per Block, its input/output, each sub-layer's input and each norm's in/out."""
    from archlab.nn.block import Block

    blocks = [m for m in model.modules() if isinstance(m, Block)]
    seen = {}

    def keep(key):
        def hook(_mod, args, out):
            seen[key] = (args[0].detach().clone(), out.detach().clone())
        return hook

    for i, blk in enumerate(blocks):
        blk.register_forward_hook(keep((i, "block")))
        for name in blk.order:
            blk.sub[name].register_forward_hook(keep((i, "sub", name)))
            if name in blk.norms:
                blk.norms[name].register_forward_hook(keep((i, "norm", name)))
    return blocks, seen


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_post_norm_and_pre_norm_put_the_norm_where_they_say(norm):
    """post: x ← norm(x + f(x)) — each sub-layer reads the raw stream and the block's output *is* its last norm's
    output. pre: x ← x + f(norm(x)) — the first norm reads the block's input, each sub-layer reads a norm's
    output, and the block's output is a residual sum, not a norm's output. Checked on every block of the
    encoder-decoder (self-attention, cross-attention and FFN sub-layers)."""
    torch.manual_seed(0)
    model = build_model(preset("transformer-tiny", **{"block.norm": norm})).eval()
    blocks, seen = _record_block_io(model)
    src, tgt = torch.randint(0, 256, (2, 9)), torch.randint(0, 256, (2, 5))
    with torch.no_grad():
        assert model(src, decoder_input_ids=tgt).shape == (2, 5, 256)
    assert len(blocks) >= 4 and any("cross" in b.order for b in blocks)
    for i, blk in enumerate(blocks):
        x_in, x_out = seen[(i, "block")]
        first, last = blk.order[0], blk.order[-1]
        norm_in, norm_out = seen[(i, "norm", first)]
        sub_in = seen[(i, "sub", first)][0]
        if norm == "post":
            torch.testing.assert_close(sub_in, x_in)  # the sub-layer reads the un-normalised stream
            torch.testing.assert_close(norm_in, x_in + seen[(i, "sub", first)][1])  # norm(x + f(x))
            torch.testing.assert_close(x_out, seen[(i, "norm", last)][1])  # the block ends in a norm
        else:
            torch.testing.assert_close(norm_in, x_in)  # the norm reads the block's input
            for name in blk.order:
                torch.testing.assert_close(seen[(i, "sub", name)][0], seen[(i, "norm", name)][1])
            assert not torch.allclose(x_out, seen[(i, "norm", last)][1])
            assert not torch.allclose(sub_in, x_in)
    # pre-norm stacks need a final norm (the stream itself is never normalised); post-norm ones end normalised
    assert (model.decoder.final_norm is not None) == (norm == "pre")


def test_sinusoidal_table_follows_seed_002_formula():
    import math

    from archlab.nn.position import sinusoidal_table

    table = sinusoidal_table(50, 16)
    pos, i = 7, 3
    assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 16)), rel_tol=1e-6)
    assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 16)), rel_tol=1e-6)
