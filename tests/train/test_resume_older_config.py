"""A run saved by older code (its configs lack fields added since) still resumes; a real difference is refused."""
import pytest

from archlab.config import ConfigError, to_dict
from archlab.models import preset
from archlab.train.run_config import run_config_from_dict
from archlab.train.trainer import _check_resume

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
    _check_resume(older_run, run, older_model, model, "ckpt")  # no error


def test_a_real_difference_is_still_refused():
    model = to_dict(preset("gpt-tiny"))
    run = RUN
    changed = {**model, "pos": {**model["pos"], "base": 500.0}}
    with pytest.raises(ConfigError, match="model.pos.base: checkpoint has 500.0"):
        _check_resume(run, run, changed, model, "ckpt")
    lr = {**run, "train": {**run["train"], "lr": 0.5}}
    with pytest.raises(ConfigError, match="train.lr"):
        _check_resume(lr, run, model, model, "ckpt")
