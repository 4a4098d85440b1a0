"""0 is a size, not "use the default": model_cost / workload_for refuse 0 and negative batch, seq_len, image_size
and context with a ConfigError naming the argument, and None still means the default."""
from __future__ import annotations

import numpy as np
import pytest

from archlab.cost.model_cost import DEFAULT_MAX_SEQ, model_cost, workload_for
from archlab.errors import ConfigError
from archlab.models import preset


@pytest.mark.parametrize("arg", ["batch", "seq_len", "context"])
@pytest.mark.parametrize("value", [0, -3])
def test_sequence_sizes_refuse_zero_and_negatives(arg, value):
    with pytest.raises(ConfigError, match=rf"^{arg} must be an integer ≥ 1 \(or None for the default\), "
                                          rf"got {value}$"):
        model_cost("gpt-tiny", **{arg: value})


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_image_size_refuses_zero_negatives_and_non_integers(value):
    with pytest.raises(ConfigError, match=rf"^image_size must be an integer ≥ 1 .*got {value!r}$"):
        model_cost("cnn-small", image_size=value)


def test_none_is_the_default_and_small_sizes_are_kept():
    cfg = preset("gpt-tiny")
    assert workload_for(cfg).seq_len == min(cfg.max_seq_len, DEFAULT_MAX_SEQ)
    assert workload_for(cfg, seq_len=np.int64(1)).seq_len == 1  # numpy integers are integers
    mc = model_cost(cfg, seq_len=4, context=1)
    assert mc.workload.seq_len == 4 and mc.seq["inference_context"] == 1  # not T: 1 is not the default
    img = preset("cnn-small")
    assert workload_for(img).image_size == img.image_size
    assert workload_for(img, image_size=12).image_size == 12
    with pytest.raises(ValueError, match="seq_len=.* is longer than the model's max_seq_len"):
        workload_for(cfg, seq_len=cfg.max_seq_len + 1)
