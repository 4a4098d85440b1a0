"""Dilated causal conv: the reported receptive field is the one the gradient sees."""
import torch

from archlab.models import build_model, preset
from archlab.nn.conv_mixer import receptive_field, stack_receptive_field
from archlab.nn.mixer import MixerInputs


def _model_field(cfg):
    return stack_receptive_field(cfg.mixer.conv, [cfg.mixer.kind_of_layer(i) for i in range(cfg.n_layers)])


def test_receptive_field_formula():
    assert receptive_field(2, [1, 2, 4, 8]) == 16
    assert receptive_field(3, [1, 2]) == 7


def test_receptive_field_matches_gradient():
    for layers, k in ((3, 2), (2, 3)):
        cfg = preset("mixer-dilated_conv-tiny", n_layers=layers, **{"mixer.conv.kernel_size": k})
        model = build_model(cfg).double()
        T = 40
        emb = torch.randn(1, T, cfg.d_model, dtype=torch.float64, requires_grad=True)
        h = model.decoder(emb, MixerInputs(positions=torch.arange(T), causal=True))
        h[0, -1].sum().backward()
        seen = (emb.grad[0].abs().sum(-1) > 0).nonzero().flatten()
        assert T - int(seen.min()) == _model_field(cfg)
    assert _model_field(preset("mixer-hybrid-tiny")) is None
