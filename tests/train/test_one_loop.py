"""One training loop: the trainer equals a plain reference loop bit for bit (the numerics of the single-process
path the strategy refactor must not change), and the data-parallel strategy in a world of one equals it too."""
import json

import pytest
import torch

from archlab.train import build_run, read_metrics, run_config_from_dict, train
from archlab.train.distributed import DataParallel, DistInfo
from archlab.train.optim import build_optimizer, lr_at, set_lr
from archlab.train.runtime import seed_everything
from archlab.train.trainer import _eval

CFG = {"name": "loop", "task": {"name": "causal_lm", "corpus": "shakespeare", "tokenizer": "char"},
       "model": {"preset": "gpt-tiny", "d_model": 32, "n_layers": 2, "max_seq_len": 32, "dropout": 0.1},
       "train": {"steps": 12, "batch_size": 4, "grad_accum": 2, "lr": 2e-3, "warmup_steps": 3, "log_every": 1,
                 "eval_every": 5, "eval_batches": 2, "checkpoint_every": 4, "device": "cpu", "precision": "fp32",
                 "plot": False}}


def reference_losses(run_cfg) -> list[float]:
    """The loop written out plainly: warm-up/cosine AdamW, accumulation, clipping, dropout stream from seed + 1,
    evaluations (which must not disturb the training RNG) at the same steps."""
    tc = run_cfg.train
    task, _, model = build_run(run_cfg)
    opt = build_optimizer(model, tc, torch.device("cpu"))
    seed_everything(tc.seed + 1)
    model.train()
    losses = []
    for step in range(1, tc.steps + 1):
        set_lr(opt, lr_at(step - 1, tc))
        total = 0.0
        for micro in range(tc.grad_accum):
            loss, _ = task.loss(model, task.train_batch((step - 1) * tc.grad_accum + micro))
            (loss / tc.grad_accum).backward()
            total += float(loss.detach()) / tc.grad_accum
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
        if step % tc.eval_every == 0:
            _eval(task, model, "val")
    return losses


def strip(records: list[dict], drop=("tokens_per_s", "time")) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return train(run_config_from_dict(CFG), out, progress=False), out


def test_trainer_equals_the_plain_loop_bit_for_bit(single):
    _, out = single
    got = [r["loss"] for r in read_metrics(out) if r["kind"] == "train"]
    assert got == reference_losses(run_config_from_dict(CFG))  # exact: same ops in the same order


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_data_parallel_strategy_in_one_process_equals_single_process(single, tmp_path):
    """The DDP strategy with a world of one: same loop, same records, same evaluation, DCP checkpoints; resumes."""
    res1, out1 = single
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    cfg = run_config_from_dict(CFG)
    res = train(cfg, tmp_path, progress=False, strategy=DataParallel("ddp", info))
    assert strip(read_metrics(tmp_path)) == strip(read_metrics(out1))
    assert res["val_loss"] == res1["val_loss"] and res["strategy"] == "ddp" and res["world_size"] == 1
    assert json.loads((tmp_path / "final_metrics.json").read_text())["val_loss"] == res1["val_loss"]
    assert (tmp_path / "dcp" / "LATEST").read_text() == "step_00000012"
    assert len(list((tmp_path / "dcp").glob("step_*"))) == cfg.train.keep_checkpoints  # pruned like the trainer's
    assert (tmp_path / "run.yaml").is_file() and (tmp_path / "tokenizer.json").is_file()
    with pytest.raises(ValueError, match="already holds a run"):  # the same run-folder rules
        train(cfg, tmp_path, progress=False, strategy=DataParallel("ddp", info))
    # stop at step 6, resume from the DCP checkpoint at step 4 (RNG state saved with it): the same curve
    out2 = tmp_path / "resumed"
    half = run_config_from_dict({**CFG, "train": {**CFG["train"], "stop_at": 6}})
    train(half, out2, progress=False, strategy=DataParallel("ddp", info))
    (out2 / "dcp" / "LATEST").write_text("step_00000004")
    train(cfg, out2, progress=False, resume=True, strategy=DataParallel("ddp", info))
    per_call = ("tokens_per_s", "tokens", "time")  # `tokens` counts this invocation's, as in a single-process resume
    assert strip(read_metrics(out2), per_call) == strip(read_metrics(out1), per_call)
