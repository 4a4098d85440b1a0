"""decode_throughput: greedy decoding speed with and without the KV cache (the run function behind kv_cache_faster)."""
from __future__ import annotations

import pytest
import torch

from archlab.config import ConfigError
from archlab.experiments.runs import RUN_FUNCTIONS, resolve_run_fn
from archlab.experiments.runs.claim_runs import decode_setup, decode_throughput_run
from archlab.generate import generate

TINY = {"preset": "char-gpt", "d_model": 16, "n_layers": 2, "attn": {"n_heads": 2}, "ffn": {"d_ff": 32}}
LLAMA = {"preset": "llama-tiny", "d_model": 16, "n_layers": 2, "attn": {"n_heads": 4, "n_kv_heads": 2},
         "ffn": {"d_ff": 32}}


def _cfg(model=TINY, use_cache=True, **task):
    return {"model": model, "task": {"prompt_len": 12, "new_tokens": 6, "warmup": 1, **task},
            "decode": {"use_cache": use_cache}, "train": {"threads": 1}}


def test_decode_throughput_is_registered_by_name():
    assert resolve_run_fn("decode_throughput") is decode_throughput_run is RUN_FUNCTIONS["decode_throughput"]


@pytest.mark.parametrize("use_cache", [False, True])
def test_decode_throughput_reports_positive_tokens_per_second(tmp_path, use_cache):
    out = decode_throughput_run(_cfg(use_cache=use_cache), 0, {"steps": 2}, str(tmp_path / str(use_cache)))
    f = out["final"]
    assert f["tokens_per_s"] > 0 and f["ms_per_token"] > 0
    assert f["tokens_per_s"] == pytest.approx(1000.0 / f["ms_per_token"])  # one row: tokens/s = 1000 / ms per token
    assert out["curve"] == [] and out["n_params"] > 0


def test_both_settings_time_the_same_model_and_prompt(tmp_path):
    """The variants differ only in decode.use_cache: same parameters, same seeded weights and prompt."""
    a = decode_throughput_run(_cfg(use_cache=False), 3, {"steps": 1}, str(tmp_path / "a"))
    b = decode_throughput_run(_cfg(use_cache=True), 3, {"steps": 1}, str(tmp_path / "b"))
    assert a["n_params"] == b["n_params"]
    ma, pa, _, _ = decode_setup(_cfg(use_cache=False), 3)
    mb, pb, _, _ = decode_setup(_cfg(use_cache=True), 3)
    assert torch.equal(pa, pb)
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))


@pytest.mark.parametrize("model", [TINY, LLAMA], ids=["char-gpt", "llama-tiny"])
@pytest.mark.parametrize("seed", [0, 1])
def test_cached_and_uncached_greedy_decoding_give_the_same_tokens(model, seed):
    """What the claim compares is the same computation: greedy tokens with and without the cache are identical
    (learned positions and RoPE with grouped KV heads), on the model and prompt the run function times."""
    net, prompt, st, _ = decode_setup(_cfg(model=model, batch=2, prompt_len=10, new_tokens=12), seed)
    with torch.inference_mode():
        cached = generate(net, prompt, st["new_tokens"], temperature=0.0, use_cache=True)
        uncached = generate(net, prompt, st["new_tokens"], temperature=0.0, use_cache=False)
    assert cached.shape == (2, 22)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_bad_use_cache_value_is_refused_naming_it(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"decode\.use_cache="):
        decode_throughput_run(_cfg(use_cache=bad), 0, {"steps": 1}, str(tmp_path))


@pytest.mark.parametrize("cfg, field", [
    ({**_cfg(), "decode": {"use_cache": True, "cache": True}}, "decode.cache"),
    ({**_cfg(), "task": {"prompt_len": 8, "seq_len": 8}}, "task.seq_len"),
    ({**_cfg(), "train": {"threads": 1, "lr": 0.1}}, "train.lr"),
    ({**_cfg(), "optim": {}}, "'optim'"),
    (_cfg(prompt_len=0), "task.prompt_len=0"),
    (_cfg(new_tokens=2.5), "task.new_tokens=2.5"),
])
def test_unknown_keys_and_bad_sizes_are_refused_naming_the_field(tmp_path, cfg, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        decode_throughput_run(cfg, 0, {"steps": 1}, str(tmp_path))


def test_the_claims_run_configs_are_accepted():
    """Every run the kv_cache_faster spec plans (the sweep adds train.steps) passes the runner's checks, and the
    variants differ only in decode.use_cache."""
    from archlab.experiments.runs.claim_runs import decode_settings
    from archlab.experiments.spec import builtin_specs, resolve

    spec = next(s for s in builtin_specs() if s.name == "kv_cache_faster")
    for profile in ("quick", "standard", "full"):
        plans = resolve(spec, profile)
        by = {p.variant: p.config for p in plans}
        assert {decode_settings(c)["use_cache"] for c in by.values()} == {True, False}
        assert by["cache"]["decode"] == {"use_cache": True} and by["no_cache"]["decode"] == {"use_cache": False}
        assert {k: v for k, v in by["cache"].items() if k != "decode"} == \
            {k: v for k, v in by["no_cache"].items() if k != "decode"}


def test_a_bad_budget_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"budget\.steps=0"):
        decode_throughput_run(_cfg(), 0, {"steps": 0}, str(tmp_path))
