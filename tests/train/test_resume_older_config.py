"""A run saved by older code (its configs lack fields added since) still resumes; a real difference is refused."""
import pytest

from archlab.config import ConfigError, to_dict
from archlab.models import model_config_from_dict, preset
from archlab.train.run_config import run_config_from_dict
from archlab.train.trainer import _check_resume, _with_defaults

RUN = run_config_from_dict({"model": {"preset": "gpt-tiny"}, "task": {"name": "causal_lm"},
                            "train": {"steps": 3}}).to_dict()


def _drop(d: dict, dotted: str) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in d.items()}
    head, _, leaf = dotted.partition(".")
    out[head] = {k: v for k, v in out[head].items() if k != leaf}
    return out


def test_fields_added_since_the_checkpoint_take_their_defaults():
    model = to_dict(preset("gpt-tiny"))
    run = RUN
    older_model = _drop(_drop(model, "pos.base"), "attn.window")  # saved before pos.base / attn.window existed
    older_run = _drop(run, "train.threads")
    assert "base" not in older_model["pos"] and "threads" not in older_run["train"]
    # the migration fills the missing fields with today's defaults, giving back exactly the current configs
    assert _with_defaults(older_run, lambda d: run_config_from_dict(d).to_dict()) == run
    assert _with_defaults(older_model, lambda d: to_dict(model_config_from_dict(d))) == model
    _check_resume(older_run, run, older_model, model, "ckpt")  # so the comparison finds no difference


def test_resuming_an_older_checkpoint_continues_with_the_migrated_config(tmp_path):
    """End to end: a checkpoint written by older code (format /1, no checksum, configs lacking fields added
    since) resumes from its step, and the checkpoint written after the resume carries the full, migrated
    configs — equal to the current ones."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import toy_task_helpers as toy

    from archlab.train import apply_run_overrides, train
    from archlab.train.checkpoint import FORMATS, SELF_SHA, STATE_FILE, latest_checkpoint

    cfg = toy.toy_config(steps=4, checkpoint_every=2, eval_every=0)
    train(apply_run_overrides(cfg, ["train.stop_at=2"]), tmp_path, progress=False)
    ck = latest_checkpoint(tmp_path)
    assert ck.name == "step_00000002"
    state = json.loads((ck / STATE_FILE).read_text())
    current_run, current_model = state["run_config"], state["model_config"]
    state.pop(SELF_SHA, None)
    state["format"] = FORMATS[0]  # the older format, which had no self-checksum
    state["run_config"] = _drop(current_run, "train.threads")
    state["model_config"] = _drop(_drop(current_model, "pos.base"), "attn.window")
    (ck / STATE_FILE).write_text(json.dumps(state))

    res = train(cfg, tmp_path, resume=True, progress=False)
    assert res["step"] == 4
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("kind") == "train"]
    assert steps == [1, 2, 3, 4]  # continued from step 2, not restarted
    resumed = json.loads((latest_checkpoint(tmp_path) / STATE_FILE).read_text())
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    assert resumed["run_config"] == cfg.to_dict()  # the current run config (stop_at is a resumable field)
    assert resumed["model_config"] == current_model
    assert resumed["run_config"]["train"]["threads"] == 1 and "window" in resumed["model_config"]["attn"]


def test_a_real_difference_is_still_refused():
    model = to_dict(preset("gpt-tiny"))
    run = RUN
    changed = {**model, "pos": {**model["pos"], "base": 500.0}}
    with pytest.raises(ConfigError, match="model.pos.base: checkpoint has 500.0"):
        _check_resume(run, run, changed, model, "ckpt")
    lr = {**run, "train": {**run["train"], "lr": 0.5}}
    with pytest.raises(ConfigError, match="train.lr"):
        _check_resume(lr, run, model, model, "ckpt")
