"""pos.placement: absolute positions added to the token embeddings (default) or after block k (seed 000's
"place positional encoding right after the embedding layer", tested by moving them later)."""
import pytest
import torch
from _decoding_checks import (
    assert_decoder_cache_matches_full_forward,
    assert_encoder_decoder_cache_matches_full_forward,
)

from archlab.config import ConfigError, apply_overrides
from archlab.interop import InteropError, to_hf
from archlab.models import build_model, preset
from archlab.nn.mixer import MixerInputs
from archlab.perf.static_decode import StaticDecoder, greedy_reference

FP32 = dict(atol=1e-5, rtol=1.3e-6)
AFTER = {"pos.placement": "after_block", "pos.after_block": 2}


def gpt(**overrides):
    return preset("gpt-tiny", **{"n_layers": 4, **overrides})


def built(cfg, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def by_hand(model, ids, k, *, causal=True, token_type=False):
    """embed → blocks 1..k → + P[positions] → blocks k+1..L → final norm (k = 0: positions at the embedding)."""
    stack = model.decoder if model.decoder is not None else model.encoder
    t = ids.shape[1]
    positions = torch.arange(t)
    inputs = MixerInputs(positions=positions, pos=0, causal=causal)
    pvec = model.pos_embed(positions)
    x = model.tok_embed(ids) + (pvec if k == 0 else 0)
    if token_type:
        x = x + model.seg_embed(torch.zeros_like(ids))
    if model.embed_norm is not None:
        x = model.embed_norm(x)
    for i, block in enumerate(stack.blocks):
        x = block(x, inputs, None)
        if i + 1 == k:
            x = x + pvec
    return stack.final_norm(x) if stack.final_norm is not None else x


def test_default_placement_is_the_embedding_and_unchanged():
    assert gpt().pos.placement == "embedding" and gpt().pos.after_block is None
    model = built(gpt())
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(ids), model.lm_head(by_hand(model, ids, 0)))
        explicit = built(gpt(**{"pos.placement": "embedding"}))
        assert torch.equal(explicit(ids), model(ids))


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_after_block_equals_the_hand_written_forward(kind, k):
    model = built(gpt(**{"pos.kind": kind, "pos.placement": "after_block", "pos.after_block": k}))
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        got = model(ids)
        torch.testing.assert_close(got, model.lm_head(by_hand(model, ids, k)), **FP32)
        assert not torch.allclose(got, model.lm_head(by_hand(model, ids, 0)), **FP32)  # the place matters


def test_encoder_after_block_equals_the_hand_written_forward():
    cfg = preset("bert-tiny", **{"n_layers": 3, "pos.placement": "after_block", "pos.after_block": 1})
    model = built(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 10))
    with torch.no_grad():
        want = by_hand(model, ids, 1, causal=False, token_type=model.seg_embed is not None)
        torch.testing.assert_close(model.encode(ids), want, **FP32)


def test_same_parameters_and_initialisation_as_the_default():
    base, moved = built(gpt()), built(gpt(**AFTER))
    assert moved.num_parameters() == base.num_parameters()
    a, b = base.state_dict(), moved.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
def test_cached_decoding_equals_the_full_forward(kind):
    assert_decoder_cache_matches_full_forward(built(gpt(**{**AFTER, "pos.kind": kind})))


def test_cached_decoding_with_left_padding_equals_the_full_forward():
    """Positions are the tensor's (pads count, as for the embedding placement); each cached step adds the vector
    of its own absolute position."""
    model = built(gpt(**AFTER))
    ids = torch.randint(0, 256, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, :3] = 0  # row 0 is left-padded
    with torch.no_grad():
        full = model(ids, attention_mask=mask)
        state = model.init_state(2, 16)
        steps = [model(ids[:, :5], attention_mask=mask[:, :5], state=state)]
        steps += [model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], state=state) for t in range(5, 10)]
    got = torch.cat(steps, 1)
    torch.testing.assert_close(got[0, 3:], full[0, 3:], **FP32)  # pads' own outputs are not compared
    torch.testing.assert_close(got[1], full[1], **FP32)


def test_encoder_decoder_uses_the_same_k_in_both_stacks_and_decodes_cached():
    cfg = preset("transformer-tiny", **{"pos.placement": "after_block", "pos.after_block": 1})
    model = built(cfg)
    assert model.encoder.pos_after == model.decoder.pos_after == 1
    assert_encoder_decoder_cache_matches_full_forward(model)


def test_static_cache_decoding_adds_positions_after_the_block():
    model = built(gpt(**AFTER), seed=1)
    prompt = torch.randint(0, 256, (1, 6))
    assert torch.equal(StaticDecoder(model, max_len=40).generate(prompt, 20), greedy_reference(model, prompt, 20))


def test_a_stack_without_its_position_vectors_is_refused():
    model = built(gpt(**AFTER))
    x = torch.zeros(1, 3, model.cfg.d_model)
    with pytest.raises(ValueError, match="pos_vectors"):
        model.decoder(x, MixerInputs(positions=torch.arange(3), causal=True))


BAD = [  # overrides, words the error must contain
    ({"pos.placement": "after_block", "pos.after_block": 0}, "pos.after_block"),
    ({"pos.placement": "after_block"}, "pos.after_block"),
    ({"pos.placement": "after_block", "pos.after_block": True}, "pos.after_block"),
    ({"pos.placement": "after_block", "pos.after_block": 4}, "pos.after_block=4 must be < n_layers=4"),
    ({"pos.placement": "after_block", "pos.after_block": 7}, "pos.after_block=7 must be < n_layers=4"),
    ({"pos.placement": "after_block", "pos.after_block": 1, "pos.kind": "rope"}, "pos.placement='after_block'"),
    ({"pos.placement": "after_block", "pos.after_block": 1, "pos.kind": "none"}, "pos.placement='after_block'"),
    ({"pos.placement": "middle"}, "pos.placement"),
    ({"pos.after_block": 2}, "pos.after_block=2 is only read with pos.placement='after_block'"),
]


@pytest.mark.parametrize("overrides,words", BAD)
def test_bad_values_are_refused_naming_the_key(overrides, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        apply_overrides(gpt(), [f"{k}={v}" if not isinstance(v, bool) else f"{k}=true" for k, v in overrides.items()])


def test_encoder_decoder_k_must_fit_the_shallower_stack():
    with pytest.raises(ConfigError, match="pos.after_block=2 must be < n_decoder_layers=2"):
        preset("transformer-tiny", **{"n_layers": 4, "n_decoder_layers": 2, "pos.placement": "after_block",
                                      "pos.after_block": 2})


EXPORTABLE = {"gpt-tiny": {}, "bert-tiny": {},  # each exports to HF with the embedding placement (test_interop_*)
              "transformer-tiny": {"pos.sinusoidal_layout": "split", "norm.eps": 1e-5, "pad_token_id": 0}}


@pytest.mark.parametrize("name", sorted(EXPORTABLE))
def test_hf_export_refuses_after_block(name, tmp_path):
    to_hf(build_model(preset(name, **EXPORTABLE[name])), tmp_path / "ok")  # the same model exports at the embedding
    model = build_model(preset(name, **EXPORTABLE[name], **{"pos.placement": "after_block", "pos.after_block": 1}))
    with pytest.raises(InteropError, match="pos.placement='after_block'"):
        to_hf(model, tmp_path / "x")


def test_the_late_position_table_is_trained():
    model = built(gpt(**AFTER)).train()
    ids = torch.randint(0, 256, (2, 12))
    model(ids).logsumexp(-1).mean().backward()
    grad = model.pos_embed.weight.grad
    assert grad is not None and grad[:12].abs().sum() > 0 and grad[12:].abs().sum() == 0  # only the rows read
