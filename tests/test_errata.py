"""Seed errata are computed, not copied: each value checked against a hand computation."""
import math

import pytest

from archlab.cli import main
from archlab.errata import attention_scale, errata, heads_cost, rmsnorm_epsilon, sinusoid_exponent, worked_convolution


def test_rmsnorm_epsilon_inside_the_root():
    lab, seed = rmsnorm_epsilon(1e-4, 1e-6)
    assert lab == pytest.approx(1e-4 / math.sqrt(1e-8 + 1e-6), rel=1e-6) == pytest.approx(0.0995, abs=1e-4)
    assert seed == pytest.approx(0.990, abs=1e-3)


def test_sinusoid_exponent():
    lab, seed = sinusoid_exponent(1, 1, 8)
    assert lab == pytest.approx(math.sin(1 / 10000 ** (2 / 8)), abs=1e-6) and seed < 1e-15


def test_attention_scale_is_head_dim_not_length():
    by_head, by_length = attention_scale(16, 9)
    assert by_head < 1e-6 and by_length > 0.01


def test_more_heads_do_not_add_params_or_macs():
    costs = heads_cost((1, 4, 8), d_model=64, seq_len=16)
    assert len(set(costs.values())) == 1


def test_worked_convolution():
    seed, fmap = worked_convolution()
    assert fmap[0][0] == 4.0 != seed[0] and fmap[0][1] == seed[1]


def test_errata_list_and_command(capsys):
    keys = {e.key for e in errata()}
    assert {"rmsnorm_eps", "pe_exponent", "attention_scale", "heads_compute", "worked_convolution",
            "bottleneck_inception", "depthwise_separable"} <= keys
    assert main(["errata"]) == 0
    out = capsys.readouterr().out
    assert out.count("[seed ") == len(keys) and "0.0995" in out
