"""RNN / LSTM / GRU: the equations written as a loop equal torch's fused kernels on the same weights."""
import pytest
import torch

from archlab.nn.mixer import MixerInputs
from archlab.nn.recurrent import RecurrentMixer, RNNConfig
from archlab.registry import Context


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_reference_equals_fast(kind, nonlinearity):
    if kind != "rnn" and nonlinearity == "relu":
        pytest.skip("nonlinearity applies to the Elman RNN only")
    torch.manual_seed(0)
    m = RecurrentMixer(RNNConfig(hidden=9, nonlinearity=nonlinearity), Context(12), kind=kind).double()
    x = torch.randn(3, 17, 12, dtype=torch.float64)
    fast = m(x)
    m.reference = True
    torch.testing.assert_close(m(x), fast, atol=1e-12, rtol=1e-12)
    st_fast, st_ref = m.init_state(3, 17, dtype=torch.float64), m.init_state(3, 17, dtype=torch.float64)
    m(x, MixerInputs(state=st_ref))
    m.reference = False
    m(x, MixerInputs(state=st_fast))
    for k in st_fast:
        torch.testing.assert_close(st_ref[k], st_fast[k], atol=1e-12, rtol=1e-12)
