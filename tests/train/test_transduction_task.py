"""The transduction task: teacher forcing / free running / scheduled sampling as a task hook of the one trainer."""
import json

import pytest
import torch

from archlab.config import ConfigError
from archlab.tasks import build_task
from archlab.tasks.transduction import addition_batch, reversal_batch
from archlab.train import build_run, read_metrics, run_config_from_dict, train

MODELS = {"decoder": {"preset": "gpt-tiny", "d_model": 32, "n_layers": 1},
          "encoder_decoder": {"preset": "transformer-tiny", "d_model": 32, "n_layers": 1},
          "encoder": {"preset": "bert-tiny", "d_model": 32, "n_layers": 1}}


def cfg(shape="decoder", steps=3, **task):
    return run_config_from_dict({"name": "tf", "model": MODELS[shape],
                                 "task": {"name": "transduction", "length": 5, "vocab": 9, "eval_size": 16, **task},
                                 "train": {"steps": steps, "batch_size": 8, "log_every": 1, "eval_every": 0,
                                           "device": "cpu", "plot": False}})


def test_data():
    src, tgt = reversal_batch(torch.Generator().manual_seed(0), 4, 5, 9)
    assert src.shape == (4, 7) and (src[:, 0] == 0).all() and (src[:, -1] == 1).all()
    assert torch.equal(tgt, src[:, 1:-1].flip(1)) and tgt.min() >= 2 and tgt.max() < 9
    src, out = addition_batch(torch.Generator().manual_seed(0), 16, 3)
    pw = torch.tensor([100, 10, 1])
    a, b = (src[:, 1:4] * pw).sum(1), (src[:, 5:8] * pw).sum(1)
    assert torch.equal((out * torch.tensor([1, 10, 100, 1000])).sum(1), a + b)  # least-significant digit first


@pytest.mark.parametrize("mode", ["teacher", "free", "scheduled"])
def test_decoder_inputs_follow_the_mode(mode):
    task, _, model = build_run(cfg(mode=mode, sampling_prob=0.5))
    batch = task.train_batch(0)
    assert torch.equal(batch["input_ids"], task.train_batch(0)["input_ids"])  # a pure function of (seed, i)
    gold, own = batch["targets"][:, :-1], task.greedy(model, batch["input_ids"])[:, :-1]
    model.train()
    got = task.decoder_inputs(model, batch)
    assert model.training  # greedy generation ran in eval mode and restored training mode
    want = {"teacher": gold, "free": own, "scheduled": torch.where(batch["coin"] < 0.5, own, gold)}[mode]
    assert torch.equal(got, want)


def test_greedy_matches_the_teacher_forced_argmax_on_its_own_output():
    """Greedy generation token by token = argmax of one teacher-forced pass fed its own output (causal model)."""
    for shape in ("decoder", "encoder_decoder"):
        task, _, model = build_run(cfg(shape))
        model.eval()
        src = task.held_out("val")[0]
        out = task.greedy(model, src)
        assert torch.equal(task.logits(model, src, out[:, :-1]).argmax(-1), out)


def test_encoder_only_must_use_teacher_mode():
    with pytest.raises(ConfigError, match="mode must be 'teacher'"):
        build_task(cfg("encoder", mode="free"))
    with pytest.raises(ConfigError, match="task.mode"):
        build_task(cfg(mode="sometimes"))
    with pytest.raises(ConfigError, match="unknown task option"):
        build_task(cfg(lenght=3))


@pytest.mark.parametrize("shape", ["decoder", "encoder_decoder", "encoder"])
def test_trained_by_the_trainer(shape, tmp_path):
    res = train(cfg(shape, mode="teacher"), tmp_path, progress=False)
    ev = [r for r in read_metrics(tmp_path) if r["kind"] == "eval"]
    assert [r["step"] for r in ev] == [3] and {"loss", "gen_seq_acc", "gen_token_acc"} <= set(ev[0])
    assert 0 <= res["val_gen_token_acc"] <= 1 and (tmp_path / "checkpoints").is_dir()


def test_teacher_forcing_claim_runs_through_the_trainer(tmp_path):
    from archlab.experiments.runs.builtin import teacher_forcing_run

    config = {"model": MODELS["decoder"], "task": {"length": 4, "vocab": 8}, "train": {"batch_size": 8},
              "teacher_forcing": {"mode": "scheduled", "sampling_prob": 0.25}}
    out = teacher_forcing_run(config, 1, {"steps": 4}, str(tmp_path))
    assert {"gen_seq_acc", "gen_token_acc", "val_loss", "train_loss"} <= set(out["final"])
    run = json.loads((tmp_path / "final_metrics.json").read_text())
    assert run["val_gen_seq_acc"] == out["final"]["gen_seq_acc"] and run["step"] == 4
    import yaml

    task = yaml.safe_load((tmp_path / "run.yaml").read_text())["task"]
    assert task == {"name": "transduction", "kind": "reversal", "length": 4, "vocab": 8, "mode": "scheduled",
                    "sampling_prob": 0.25}
