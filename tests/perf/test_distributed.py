"""DDP and FSDP2 (2 CPU processes, gloo) train exactly like one process on the same global batch; DCP resumes."""
import json

import pytest
import torch.distributed as dist

from archlab.train.distributed import DistInfo, launch_local, main, shard_batch
from archlab.train.run_config import run_config_from_dict
from archlab.train.trainer import read_metrics, train

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

CFG = {"name": "dist", "task": {"name": "causal_lm", "corpus": "shakespeare", "tokenizer": "char"},
       "model": {"preset": "gpt-tiny", "d_model": 32, "n_layers": 2, "max_seq_len": 32, "attn.n_heads": 2},
       "train": {"steps": 4, "batch_size": 4, "lr": 1e-3, "log_every": 1, "eval_every": 0, "checkpoint_every": 0,
                 "device": "cpu", "precision": "fp32", "plot": False}}
TOL = dict(rel=1e-5)


def _cfg(**train):
    d = json.loads(json.dumps(CFG))
    d["train"].update(train)
    return run_config_from_dict(d)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The ordinary single-process trainer on the global batch."""
    out = tmp_path_factory.mktemp("single")
    train(_cfg(), out, progress=False)
    return out


@pytest.fixture(scope="module")
def single_losses(single_run):
    """Loss per step of the single-process run."""
    return [r["loss"] for r in read_metrics(single_run) if r["kind"] == "train"]


def assert_same_records(got: list[dict], want: list[dict]) -> None:
    """The same metrics.jsonl records (kinds, steps, keys), every number equal within TOL but throughput."""
    assert [(r["kind"], r["step"], list(r)) for r in got] == [(r["kind"], r["step"], list(r)) for r in want]
    for a, b in zip(got, want):
        for k, v in b.items():
            if k not in ("tokens_per_s", "time") and isinstance(v, (int, float)):
                assert a[k] == pytest.approx(v, **TOL), (a["kind"], a["step"], k)


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_two_process_loss_equals_single_process(strategy, single_run, single_losses, tmp_path):
    """Same losses, and through the one loop the same metrics records, evaluation and final metrics."""
    losses = launch_local(2, _cfg(), strategy, tmp_path)
    assert len(losses) == len(single_losses) == 4
    assert losses == pytest.approx(single_losses, **TOL)
    assert_same_records(read_metrics(tmp_path), read_metrics(single_run))
    final, want = (json.loads((d / "final_metrics.json").read_text()) for d in (tmp_path, single_run))
    assert final["val_loss"] == pytest.approx(want["val_loss"], **TOL)
    assert (final["strategy"], final["world_size"]) == (strategy, 2)


@pytest.mark.slow  # two 2-process launches (~1 min on 2 busy cores)
def test_distributed_checkpoint_resumes_across_strategies(single_run, single_losses, tmp_path):
    first = launch_local(2, _cfg(stop_at=2), "fsdp", tmp_path)  # FSDP2 shards saved at step 2
    assert (tmp_path / "dcp" / "LATEST").read_text() == "step_00000002"
    rest = launch_local(2, _cfg(), "ddp", tmp_path, resume=True)  # resumed under DDP
    assert first + rest == pytest.approx(single_losses, **TOL)
    per_call = [{k: v for k, v in r.items() if k != "tokens"} for r in read_metrics(tmp_path)]
    assert_same_records(per_call, [{k: v for k, v in r.items() if k != "tokens"} for r in read_metrics(single_run)])


def test_cli_single_process_and_safetensors_export(tmp_path):
    import yaml
    from safetensors.torch import load_file

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    assert main([str(cfg), "--strategy", "ddp", "--out", str(tmp_path / "o"), "--set", "train.steps=2",
                 "--export", str(tmp_path / "w.safetensors")]) == 0
    weights = load_file(tmp_path / "w.safetensors")
    assert "decoder.blocks.0.sub.mixer.q_proj.weight" in weights
    with pytest.raises(ValueError, match="already holds a run"):  # the trainer's run-folder rules
        main([str(cfg), "--out", str(tmp_path / "o"), "--set", "train.steps=2"])
    assert main([str(cfg), "--out", str(tmp_path / "o"), "--set", "train.steps=2", "--overwrite"]) == 0


def test_shard_batch_splits_rows_and_rejects_uneven():
    import torch

    batch = {"input_ids": torch.arange(8).view(4, 2), "n": 3}
    part = shard_batch(batch, DistInfo(1, 2, 1, torch.device("cpu")))
    assert part["input_ids"].tolist() == [[4, 5], [6, 7]] and part["n"] == 3
    with pytest.raises(ValueError, match="divisible"):
        shard_batch(batch, DistInfo(0, 3, 0, torch.device("cpu")))
