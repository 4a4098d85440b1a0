"""The worked-example EMA mixer (src/archlab/nn/ema.py): its recurrence equals the closed form, every
parameter learns, its config is validated. Causality, step decoding and cost are covered for every
registered mixer by tests/nn/test_registry_components.py and tests/mixers/test_mixer_models.py."""
import pytest
import torch

from archlab.config import ConfigError
from archlab.models import build_model, preset
from archlab.nn.ema import EMAConfig, EMAMixer
from archlab.registry import Context


def test_recurrence_equals_closed_form():
    torch.manual_seed(0)
    m = EMAMixer(EMAConfig(init_decay=0.7), Context(6)).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    a, u = torch.sigmoid(m.decay_logit), m.in_proj(x)
    T = x.shape[1]
    # h_t = Σ_{s ≤ t} (1 − a) a^{t−s} u_s
    w = torch.stack([torch.stack([(1 - a) * a ** (t - s) if s <= t else torch.zeros_like(a) for s in range(T)])
                     for t in range(T)])  # (T, S, D)
    h = torch.einsum("tsd,bsd->btd", w, u)
    torch.testing.assert_close(m(x), m.out_proj(h), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(a, torch.full_like(a, 0.7), atol=1e-7, rtol=0)  # λ was set in fp32


def test_init_decay_survives_the_model_init_and_every_parameter_learns():
    model = build_model(preset("mixer-ema-tiny", **{"mixer.ema.init_decay": 0.99}))
    mixer = model.decoder.blocks[0].sub["mixer"]
    assert isinstance(mixer, EMAMixer)
    torch.testing.assert_close(torch.sigmoid(mixer.decay_logit), torch.full((64,), 0.99))
    model(torch.randint(0, 256, (2, 12))).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.parameters())


def test_bad_decay_is_one_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"mixer.ema.init_decay=1.5 is not allowed"):
        preset("mixer-ema-tiny", **{"mixer.ema.init_decay": 1.5})
