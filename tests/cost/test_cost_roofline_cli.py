"""Roofline, MFU, the CPU measurement, and the `archlab cost` command."""
from __future__ import annotations

import json

import pytest

from archlab.cli import main
from archlab.cost import cost_table, model_cost
from archlab.cost.roofline import A100_SXM, H100_SXM, get_device, measure_cpu, mfu, model_points, roofline


def test_device_presets_and_ridge():
    assert H100_SXM.peak("bf16") == 989.4e12 and H100_SXM.mem_bw == 3.35e12
    assert A100_SXM.peak("bfloat16") == 312e12 and A100_SXM.mem_bw == 2.039e12
    assert H100_SXM.ridge("bf16") == pytest.approx(295.3, abs=0.1)
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu")


def test_roofline_min_of_two_roofs():
    mem = roofline(1e9, 1e9, "h100-sxm")  # I = 1 FLOP/B: memory-bound
    assert mem.bound == "memory" and mem.attainable == pytest.approx(3.35e12)
    assert mem.time == pytest.approx(1e9 / 3.35e12)
    comp = roofline(1e12, 1e6, "a100", "bf16")
    assert comp.bound == "compute" and comp.attainable == 312e12


def test_mfu():
    # GPT-2 124M at T=1024: 855,166,464 FLOPs/token; 400k tokens/s on an H100 ≈ 34.6% MFU
    assert mfu(400_000, 855_166_464, "h100-sxm") == pytest.approx(400_000 * 855_166_464 / 989.4e12)
    assert mfu(1.0, 312e12, "a100") == pytest.approx(1.0)


def test_cpu_is_measured_and_cached():
    d = measure_cpu()
    assert d.peak("fp32") > 1e8 and d.mem_bw > 1e8 and "measured" in d.source
    assert measure_cpu() is d


def test_decode_is_memory_bound_training_forward_compute_bound():
    pts = {p.label: p for p in model_points(model_cost("gpt2", seq_len=1024), "h100-sxm")}
    assert pts["gpt2 forward"].bound == "compute"
    assert pts["decode step (batch 1, KV cache)"].bound == "memory"


def test_cost_table_for_the_demo():
    text = cost_table("gpt-tiny", batch=1, seq_len=32)
    assert "total params" in text and "6N+12·L·H·d·T" in text and "KV cache" in text
    assert "decoder.blocks.*.sub.mixer.q_proj" in text  # identical blocks grouped


def test_cli_json_plot_and_crosscheck(tmp_path, capsys):
    png = tmp_path / "roof.png"
    assert main(["cost", "gpt-tiny", "--seq-len", "32", "--json", "--plot", str(png), "--crosscheck"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] > 0 and out["crosscheck"]["rel_err"] == 0.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_and_seed003(capsys):
    assert main(["cost", "llama-tiny", "--batch", "2", "--seq-len", "16", "--dtype", "fp32"]) == 0
    assert "forward MACs" in capsys.readouterr().out
    assert main(["cost", "--seed003"]) == 0
    out = capsys.readouterr().out
    assert "271,351,808" in out and "358" in out and "twice" in out and "0.2111" in out


def test_cli_user_errors(capsys):
    assert main(["cost", "no-such-preset"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["cost", "gpt-tiny", "--seq-len", "100000"]) == 2
    assert "max_seq_len" in capsys.readouterr().err
    assert main(["cost", "gpt-tiny", "--dtype", "fp13"]) == 2
    assert main(["cost", "missing.yaml"]) == 2
