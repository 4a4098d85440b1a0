"""Every mixer in the LM shell: causal, and token-by-token decoding equals the full forward pass."""
import pytest
import torch

from archlab.models import build_model, preset
from archlab.models.mamba import MIXER_PRESETS

PRESETS = [f"mixer-{k}-tiny" for k in MIXER_PRESETS] + ["mamba-tiny", "mamba-lti-tiny"]


def _model(name):
    torch.manual_seed(0)
    return build_model(preset(name, max_seq_len=32, d_model=32)).double().eval()


@pytest.mark.parametrize("name", PRESETS)
def test_causal(name):
    model = _model(name)
    x = torch.randint(0, 256, (2, 24))
    y = model(x)
    for t in (0, 9, 22):
        x2 = x.clone()
        x2[:, t + 1:] = torch.randint(0, 256, x2[:, t + 1:].shape)
        torch.testing.assert_close(model(x2)[:, :t + 1], y[:, :t + 1], atol=1e-12, rtol=1e-12)
        assert not torch.allclose(model(x2)[:, t + 1:], y[:, t + 1:])  # and the future does matter


@pytest.mark.parametrize("name", PRESETS)
def test_step_mode_equals_full_forward(name):
    model = _model(name)
    x = torch.randint(0, 256, (3, 20))
    full = model(x)
    state = model.init_state(3)
    steps = torch.cat([model(x[:, t:t + 1], state=state) for t in range(20)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-10, rtol=1e-10)
    # prefill 7 tokens, then 13 one by one
    state = model.init_state(3)
    parts = [model(x[:, :7], state=state)] + [model(x[:, t:t + 1], state=state) for t in range(7, 20)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("scan", ["reference", "chunked"])
def test_mamba_scans_agree_in_model(scan):
    torch.manual_seed(0)
    ref = build_model(preset("mamba-tiny", **{"mixer.ssm.scan": "reference"})).double()
    other = build_model(preset("mamba-tiny", **{"mixer.ssm.scan": scan, "mixer.ssm.chunk_size": 5})).double()
    other.load_state_dict(ref.state_dict())
    x = torch.randint(0, 256, (2, 33))
    torch.testing.assert_close(other(x), ref(x), atol=1e-11, rtol=1e-11)


def test_state_reorder_for_beam_search():
    model = _model("mixer-hybrid-tiny")
    x = torch.randint(0, 256, (3, 6))
    state = model.init_state(3)
    model(x, state=state)
    index = torch.tensor([2, 0, 1])
    state.reorder(index)
    nxt = torch.randint(0, 256, (3, 1))
    out = model(nxt, state=state)
    full = model(torch.cat([x[index], nxt], 1))[:, -1:]
    torch.testing.assert_close(out, full, atol=1e-10, rtol=1e-10)
