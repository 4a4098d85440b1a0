"""FLOP accounting and activation checkpointing: plain references agree with the helpers."""
import torch

from archlab.models import build_model, preset
from archlab.perf.flops import matmul_params, mfu, training_flops_per_token
from archlab.perf.speed import checkpoint_blocks


def test_matmul_params_excludes_lookup_tables_but_keeps_tied_head():
    gpt2 = build_model(preset("gpt2"))
    assert matmul_params(gpt2) == 124_439_808 - 1024 * 768  # the learned position table is a gather
    llama = build_model(preset("llama-153m"))
    assert matmul_params(llama) == llama.num_parameters() - 50304 * 768  # untied: input embedding is a gather


def test_training_flops_and_mfu():
    f = training_flops_per_token(100, 2, 8, 16)
    assert f == 6 * 100 + 12 * 2 * 8 * 16
    assert mfu(1000.0, f, peak_flops=f * 2000.0) == 0.5


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    ids = torch.randint(0, 256, (2, 16))
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        model = build_model("llama-tiny")
        if ckpt:
            assert checkpoint_blocks(model) == 2
        model(ids).logsumexp(-1).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-6, rtol=1e-5)
