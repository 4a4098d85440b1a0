"""archlab.experiments.runs.claim_runs: the run functions and the pooling/activation identity some claims use."""
from __future__ import annotations

import json
import math

import pytest
import torch

from archlab.config import ConfigError
from archlab.experiments.runs import claim_runs as cr


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_max_pool_commutes_with_monotone_activations(act):
    assert cr.pool_commute_gap("max", act) == 0.0


@pytest.mark.parametrize("pool,act", [("avg", "relu"), ("max", "gelu"), ("max", "silu")])
def test_non_commuting_pairs_differ(pool, act):
    assert cr.pool_commute_gap(pool, act) > 0.05


def test_pool_commute_gap_matches_a_hand_window():
    """One 2×2 window [-1, 3; -3, 1]: relu(avg) = 0, avg(relu) = 1; relu(max) = max(relu) = 3."""
    x = torch.tensor([[[[-1.0, 3.0], [-3.0, 1.0]]]], dtype=torch.float64)
    f = torch.nn.functional
    assert float(f.avg_pool2d(torch.relu(x), 2) - torch.relu(f.avg_pool2d(x, 2))) == 1.0
    assert float(f.max_pool2d(torch.relu(x), 2) - torch.relu(f.max_pool2d(x, 2))) == 0.0
    with pytest.raises(ConfigError, match="pool="):
        cr.pool_commute_gap("median", "relu")


def test_curve_summaries():
    curve = [{"step": 50, "acc": 0.2}, {"step": 100, "acc": 0.95}, {"step": 150, "acc": 0.5}]
    assert cr.steps_to_reach(curve, "acc", 0.9, never=999) == 100
    assert cr.steps_to_reach(curve, "acc", 0.99, never=999) == 999
    assert cr.upticks([3.0, 2.0, 2.5, 1.0, 1.2]) == pytest.approx(0.7)
    assert cr.upticks([3.0, 2.0, 1.0]) == 0.0
    assert cr.step_spread([1.0, 2.0, 3.0, 4.0]) == 0.0  # constant steps
    assert cr.step_spread([0.0, 1.0, 0.0]) == pytest.approx(1.0)  # changes +1, -1
    assert cr.step_spread([5.0, 4.0]) == 0.0


TF_CFG = {"model": {"preset": "gpt-tiny", "d_model": 16, "n_layers": 1, "attn.n_heads": 2, "ffn.d_ff": 32},
          "task": {"kind": "addition", "digits": 2, "threshold": 0.9, "eval_size": 64},
          "train": {"batch_size": 8, "lr": 0.003, "eval_every": 5, "threads": 1}}


@pytest.mark.parametrize("mode", ["teacher", "free"])
def test_teacher_forcing_curve_run_summarises_the_trainers_curve(tmp_path, mode):
    """The one trainer runs (metrics.jsonl: a train record every step, an eval every 5); the summaries are the
    trainer's logged curve, recomputed here from metrics.jsonl."""
    out = cr.teacher_forcing_curve_run({**TF_CFG, "teacher_forcing": {"mode": mode}}, 0, {"steps": 10}, str(tmp_path))
    f, curve = out["final"], out["curve"]
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    assert len(train_losses) == 10 and [r["step"] for r in evals] == [5, 10] == [p["step"] for p in curve]
    assert f["gen_token_acc"] == evals[-1]["gen_token_acc"] and f["gen_seq_acc"] == evals[-1]["gen_seq_acc"]
    assert f["val_loss"] == evals[-1]["loss"] and 0.0 <= f["gen_seq_acc"] <= f["gen_token_acc"] <= 1.0
    reached = [r["step"] for r in evals if r["gen_token_acc"] >= 0.9]
    assert f["steps_to_threshold"] == (reached[0] if reached else 15)
    assert f["val_loss_upticks"] == pytest.approx(max(0.0, evals[1]["loss"] - evals[0]["loss"]))
    assert f["train_loss_spread"] == pytest.approx(cr.step_spread(train_losses[5:]))
    assert math.isfinite(f["val_loss"]) and out["n_params"] > 0 and f["n_params"] == out["n_params"]


def test_teacher_forcing_curve_run_threshold_and_mode(tmp_path):
    """A threshold every model meets is reached at the first evaluation; the mode reaches the task (free running
    trains on other inputs than teacher forcing, so the weights differ); a bad mode or threshold is refused."""
    cfg = {**TF_CFG, "task": {**TF_CFG["task"], "threshold": 1e-9}}
    teacher = cr.teacher_forcing_curve_run(cfg, 0, {"steps": 10}, str(tmp_path / "t"))["final"]
    free = cr.teacher_forcing_curve_run({**cfg, "teacher_forcing": {"mode": "free"}}, 0, {"steps": 10},
                                        str(tmp_path / "f"))["final"]
    assert teacher["steps_to_threshold"] == free["steps_to_threshold"] == 5.0
    assert teacher["val_loss"] != free["val_loss"]
    with pytest.raises(ConfigError, match="task.mode"):
        cr.teacher_forcing_curve_run({**TF_CFG, "teacher_forcing": {"mode": "x"}}, 0, {"steps": 1}, str(tmp_path))
    with pytest.raises(ConfigError, match="task.threshold"):
        cr.teacher_forcing_curve_run({**TF_CFG, "task": {"threshold": 2}}, 0, {"steps": 1}, str(tmp_path))


def test_teacher_forcing_curve_run_is_deterministic(tmp_path):
    cfg = {"model": {"preset": "gpt-tiny", "d_model": 16, "n_layers": 1, "attn.n_heads": 2, "ffn.d_ff": 32},
           "task": {"kind": "reversal", "length": 4, "vocab": 8, "eval_size": 32},
           "train": {"batch_size": 8, "eval_every": 4}}
    a = cr.teacher_forcing_curve_run(cfg, 1, {"steps": 4}, str(tmp_path / "a"))["final"]
    b = cr.teacher_forcing_curve_run(cfg, 1, {"steps": 4}, str(tmp_path / "b"))["final"]
    assert a["val_loss"] == b["val_loss"] and a["gen_token_acc"] == b["gen_token_acc"]


def test_step_throughput_run_tiny(tmp_path):
    cfg = {"model": {"preset": "mixer-lstm-tiny", "d_model": 16, "n_layers": 1},
           "task": {"seq_len": 16, "short_len": 4, "tokens": 64, "warmup": 1}, "train": {"threads": 1}}
    f = cr.step_throughput_run(cfg, 0, {"steps": 2}, str(tmp_path))["final"]
    assert f["tokens_per_s"] > 0 and f["tokens_per_s_short"] > 0
    assert f["long_over_short"] == pytest.approx(f["tokens_per_s"] / f["tokens_per_s_short"])


def test_trainer_train_split_run_scores_the_training_split(tmp_path):
    """The trained weights are scored on the training split too; error = 1 - accuracy there."""
    cfg = {"model": {"preset": "cnn-small", "layers": ["conv:4:3", "relu", "maxpool:2", "flatten", "fc"]},
           "task": {"name": "image_classification", "dataset": "fashion_mnist", "val_size": 64,
                    "max_eval_images": 64},
           "train": {"batch_size": 16, "lr": 0.003, "eval_every": 0, "log_every": 1, "threads": 1}}
    f = cr.trainer_train_split_run(cfg, 0, {"steps": 3}, str(tmp_path / "img"))["final"]
    assert 0.0 <= f["trainsplit_accuracy"] <= 1.0 and "val_accuracy" in f
    assert f["trainsplit_error"] == pytest.approx(1.0 - f["trainsplit_accuracy"])
    assert math.isfinite(f["trainsplit_loss"])
    assert f["gap_accuracy"] == pytest.approx(f["trainsplit_accuracy"] - f["val_accuracy"])
    assert f["gap_loss"] == pytest.approx(f["val_loss"] - f["trainsplit_loss"])


def test_train_split_on_text_reports_the_loss_gap(tmp_path):
    """A language model on a small slice of the corpus: the training split's loss and the gap to held-out loss."""
    cfg = {"model": {"preset": "char-gpt", "d_model": 16, "n_layers": 1, "attn.n_heads": 2, "ffn.d_ff": 32},
           "task": {"name": "causal_lm", "corpus": "shakespeare", "tokenizer": "char", "block_size": 16,
                    "val_fraction": 0.98},
           "train": {"batch_size": 4, "lr": 0.003, "eval_every": 0, "eval_batches": 2, "log_every": 1, "threads": 1}}
    f = cr.trainer_train_split_run(cfg, 0, {"steps": 3}, str(tmp_path / "lm"))["final"]
    assert f["gap_loss"] == pytest.approx(f["val_loss"] - f["trainsplit_loss"])
    assert ("gap_accuracy" in f) == ("val_accuracy" in f and "trainsplit_accuracy" in f)


def test_generalization_gaps_need_both_numbers():
    assert cr.generalization_gaps({"val_loss": 2.0}) == {}
    assert cr.generalization_gaps({"val_loss": 2.5, "trainsplit_loss": 2.0}) == {"gap_loss": 0.5}


def test_grad_norm_stability_by_hand():
    from archlab.experiments.runs.builtin import grad_norm_stability

    curve = [{"step": 1, "grad_norm": 100.0}, {"step": 2, "grad_norm": 1.0}, {"step": 3, "val_loss": 2.0},
             {"step": 4, "grad_norm": 3.0}, {"step": 6, "grad_norm": 2.0}]
    got = grad_norm_stability(curve, after_step=1)  # step 1 is the warm-up: its 100 is left out
    assert got["grad_norm_cv"] == pytest.approx(math.sqrt(2 / 3) / 2.0)  # norms 1, 3, 2: std √(2/3), mean 2
    assert got["grad_norm_max_ratio"] == pytest.approx(1.5)  # max 3 / median 2
    assert grad_norm_stability(curve, after_step=0)["grad_norm_max_ratio"] == pytest.approx(40.0)  # the spike
    assert grad_norm_stability(curve, after_step=4) == {}  # one norm left: not defined
    assert grad_norm_stability([{"step": s, "train_loss": 1.0} for s in range(5)], 0) == {}  # clipping off


def _tiny_trainer_config(**train):
    return {"model": {"preset": "gpt-tiny", "d_model": 16, "n_layers": 1, "ffn.d_ff": 32},
            "task": {"name": "synthetic", "kind": "copy", "seq_len": 12, "vocab_size": 12, "eval_size": 32},
            "train": {"batch_size": 4, "lr": 0.003, "eval_every": 0, "log_every": 1, "threads": 1, **train}}


def test_trainer_run_reports_grad_norm_stability_from_its_log(tmp_path):
    from archlab.experiments.runs.builtin import trainer_run

    out = trainer_run(_tiny_trainer_config(warmup_steps=2, grad_clip=1.0, steps=8), 0, {}, str(tmp_path / "a"))
    logged = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    norms = [r["grad_norm"] for r in logged if r.get("kind") == "train" and r["step"] > 2]
    assert len(norms) == 6 and all(n > 0 for n in norms)
    mean = sum(norms) / len(norms)
    cv = math.sqrt(sum((n - mean) ** 2 for n in norms) / len(norms)) / mean
    assert out["final"]["grad_norm_cv"] == pytest.approx(cv, rel=1e-12)
    assert out["final"]["grad_norm_max_ratio"] == pytest.approx(max(norms) / (sum(sorted(norms)[2:4]) / 2))
    off = trainer_run(_tiny_trainer_config(grad_clip=0.0, steps=4), 0, {}, str(tmp_path / "b"))
    assert not any(k.startswith("grad_norm") for k in off["final"])  # no clipping: no norms logged, none reported


def _mamba_with_channel_0_off(activation):
    import torch

    from archlab.models import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset("mamba-tiny", **{"mixer.ssm.activation": activation}))
    with torch.no_grad():
        for block in model.decoder.blocks:
            conv = block.sub["mixer"].conv1d
            conv.weight[0].zero_()
            conv.bias[0] = -5.0  # channel 0's activation input is −5 at every token
    return model


def test_dead_units_counts_channels_without_gradient():
    import torch

    ids = torch.randint(0, 256, (2, 17))
    relu = _mamba_with_channel_0_off("relu")
    n_channels = sum(b.sub["mixer"].d_inner for b in relu.decoder.blocks)
    dead = cr.dead_unit_fraction(relu, ids)
    assert dead >= len(relu.decoder.blocks) / n_channels  # channel 0 of every layer at least
    assert dead * n_channels == pytest.approx(round(dead * n_channels))  # a count of channels
    assert cr.dead_unit_fraction(_mamba_with_channel_0_off("silu"), ids) == 0.0  # SiLU'(−5) ≈ −0.03, not 0
    from archlab.nn.ffn import activation

    assert all(b.sub["mixer"].act is activation("relu") for b in relu.decoder.blocks)  # restored


def test_dead_units_needs_a_mamba_model():
    import torch

    from archlab.models import build_model, preset

    with pytest.raises(ValueError, match="no Mamba mixer"):
        cr.dead_unit_fraction(build_model(preset("gpt-tiny")), torch.zeros(1, 4, dtype=torch.long))
