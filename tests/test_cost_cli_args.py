"""`archlab cost` checks every number before any work: one line naming the flag and its range, exit 2.

0 is a value (not 'use the default'), negatives and non-integers are refused, the model bounds --seq-len and
--image-size, and sizes no tensor can have end in one line instead of a traceback."""
from __future__ import annotations

import json

import pytest

from archlab.cli import main
from archlab.config import to_dict
from archlab.models import preset

INT_MAX = 2**31 - 1
IMG = ("smaller images shrink to nothing or leave BatchNorm one value per channel")


@pytest.mark.parametrize("argv, message", [
    (["gpt2", "--seq-len", "0"], "--seq-len must be an integer in 1..1024 (max_seq_len of gpt2), got '0'"),
    (["gpt2", "--seq-len", "-5"], "--seq-len must be an integer in 1..1024 (max_seq_len of gpt2), got '-5'"),
    (["gpt2", "--seq-len", "5000"], "--seq-len must be an integer in 1..1024 (max_seq_len of gpt2), got '5000'"),
    (["gpt2", "--seq-len", "2.5"], "--seq-len must be an integer in 1..1024 (max_seq_len of gpt2), got '2.5'"),
    (["gpt2", "--context", "0"], f"--context must be an integer in 1..{INT_MAX}, got '0'"),
    (["gpt2", "--context", "-1"], f"--context must be an integer in 1..{INT_MAX}, got '-1'"),
    (["gpt2", "--batch", "1e20"], f"--batch must be an integer in 1..{INT_MAX}, got '1e20'"),
    (["gpt2", "--batch", "0"], f"--batch must be an integer in 1..{INT_MAX}, got '0'"),
    (["gpt2", "--batch", str(10**20)], f"--batch must be an integer in 1..{INT_MAX}, got '{10**20}'"),
    (["resnet50", "--image-size", "0"],
     f"--image-size must be an integer in 33..65536 for resnet50 at --batch 1 ({IMG}), got '0'"),
    (["resnet50", "--image-size", "1"],
     f"--image-size must be an integer in 33..65536 for resnet50 at --batch 1 ({IMG}), got '1'"),
    (["resnet50", "--image-size", "100000"],
     f"--image-size must be an integer in 33..65536 for resnet50 at --batch 1 ({IMG}), got '100000'"),
    (["--crosscheck-all", "--seq-len", "0"], f"--seq-len must be an integer in 1..{INT_MAX}, got '0'"),
])
def test_bad_numbers_are_one_line_exit_2(argv, message, capsys):
    assert main(["cost", *argv]) == 2
    out = capsys.readouterr()
    assert out.err.strip() == f"archlab cost: error: {message}" and out.out == ""


def test_sizes_no_tensor_can_have_are_one_line(tmp_path, capsys):
    cfg = {**to_dict(preset("gpt-tiny")), "d_model": 10**9}
    p = tmp_path / "huge.json"
    p.write_text(json.dumps(cfg))
    assert main(["cost", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("archlab cost: error: gpt-tiny at this workload has a tensor too large to describe "
                          "(Storage size calculation overflowed") and err.endswith("every tensor must stay under "
                                                                                   "2^63 bytes")
    assert "\n" not in err
    assert main(["cost", "resnet50", "--batch", str(INT_MAX), "--image-size", "65536"]) == 2
    assert "too large to describe" in capsys.readouterr().err


def _json(argv, capsys):
    assert main(["cost", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_explicit_values_are_used_not_replaced_by_defaults(capsys):
    short = _json(["gpt-tiny", "--seq-len", "1", "--context", "1"], capsys)
    default = _json(["gpt-tiny"], capsys)
    assert short["seq_len"] == 1 and short["inference_context"] == 1
    assert default["seq_len"] == 128 and default["inference_context"] == 128
    assert short["train_flops_per_token_6N"] < default["train_flops_per_token_6N"]
    assert _json(["gpt-tiny", "--context", "3"], capsys)["inference_context"] == 3
    # the smallest image side the message names does run, at the batch it names; a larger batch allows less
    assert _json(["resnet50", "--image-size", "33"], capsys)["image_size"] == 33
    assert _json(["resnet50", "--image-size", "1", "--batch", "2"], capsys)["image_size"] == 1
