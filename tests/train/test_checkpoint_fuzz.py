"""Fuzz checkpoint loading: random byte corruption (overwrite, truncate, append) of each file of a checkpoint.

A corrupted checkpoint is either loaded bit-exactly equal to the original (the corruption was harmless:
whitespace in state.json), or refused with one CheckpointError line when named explicitly, or skipped by the
fall-back rule (one notice; the older complete checkpoint loaded bit-exactly) when a run directory is given.
Never a traceback, never silently different weights, optimiser state or run state.

Examples run in CI: FUZZ_EXAMPLES (default 40) per file x 4 files = 160, derandomized (the same examples on
every run; about 5 s per file); set ARCHLAB_FUZZ_EXAMPLES=2000 for a longer local search.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archlab.commands._load import load_for_inference
from archlab.errors import CheckpointError
from archlab.models import build_model
from archlab.train import build_run, run_config_from_dict, train
from archlab.train.checkpoint import find_checkpoint, load_checkpoint, verify_checkpoint
from archlab.train.optim import build_optimizer

FUZZ_EXAMPLES = int(os.environ.get("ARCHLAB_FUZZ_EXAMPLES", "40"))
FILES = ["model.safetensors", "optimizer.safetensors", "state.json", "tokenizer.json"]
OLD, NEW = "step_00000001", "step_00000002"
_MODEL_CFG: dict = {}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A char-tokenizer run with complete checkpoints at steps 1 and 2, and the reference contents of each."""
    tmp = tmp_path_factory.mktemp("fuzz")
    corpus = tmp / "corpus.txt"
    corpus.write_text("All the world's a stage, and all the men and women merely players.\n" * 30, encoding="utf-8")
    cfg = run_config_from_dict({
        "model": {"preset": "llama-tiny", "d_model": 32, "max_seq_len": 32},
        "task": {"name": "causal_lm", "corpus": str(corpus), "tokenizer": "char"},
        "train": {"steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 1, "eval_every": 0,
                  "eval_batches": 1, "threads": 1, "plot": False}})
    out = tmp / "run"
    train(cfg, out, progress=False)
    _MODEL_CFG[id(cfg)] = build_run(cfg)[1]
    ref = {name: _contents(cfg, out / "checkpoints" / name) for name in (OLD, NEW)}
    assert set(FILES) <= {p.name for p in (out / "checkpoints" / NEW).iterdir()}
    return cfg, out, ref


def _contents(cfg, ck: Path) -> dict:
    """What a loader gets from checkpoint `ck`: weights, optimiser state, state.json, tokenizer behaviour."""
    model = build_model(_MODEL_CFG[id(cfg)])  # a fresh model each time: nothing carried over from a failed load
    opt = build_optimizer(model, cfg.train, torch.device("cpu"))
    doc = load_checkpoint(ck, model, opt)
    doc.pop("path")
    _, tok, _ = load_for_inference(str(ck))
    return {"model": {k: v.clone() for k, v in model.state_dict().items()},
            "optim": opt.state_dict(), "doc": doc, "tok": tok.encode("All the world")}


def _same(a: dict, b: dict) -> bool:
    if a["model"].keys() != b["model"].keys() or a["doc"] != b["doc"] or a["tok"] != b["tok"]:
        return False
    if not all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]):
        return False
    sa, sb = a["optim"]["state"], b["optim"]["state"]
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[i][k], sb[i][k]) if torch.is_tensor(sa[i][k]) else sa[i][k] == sb[i][k]
        for i in sa for k in sa[i]) and a["optim"]["param_groups"] == b["optim"]["param_groups"]


def _corrupt(path: Path, op: str, edits: list[tuple[float, int]]) -> bool:
    """Apply a corruption; False when it happens to leave the bytes unchanged."""
    data = bytearray(path.read_bytes())
    before = bytes(data)
    if op == "overwrite":
        for where, value in edits:
            data[int(where * (len(data) - 1))] = value
    elif op == "respace":  # whitespace for whitespace: harmless in state.json's JSON, caught anywhere else
        spaces = [i for i, c in enumerate(data) if c in b" \t\n\r"]
        for where, value in edits if spaces else []:
            data[spaces[int(where * (len(spaces) - 1))]] = b" \t\n\r"[value % 4]
    elif op == "truncate":
        del data[int(edits[0][0] * (len(data) - 1)):]
    else:  # append
        data += bytes(v for _, v in edits)
    path.write_bytes(bytes(data))
    return bytes(data) != before


def _check(cfg, run_out: Path, ref: dict, name: str, op: str, edits) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        shutil.copytree(run_out, out)
        ck = out / "checkpoints" / NEW
        if not _corrupt(ck / name, op, edits):
            return
        # 1. named explicitly: bit-exactly the original (harmless), or one clear error
        try:
            got = _contents(cfg, ck)
        except CheckpointError as e:
            assert "\n" not in str(e) and str(ck) in str(e), str(e)
            harmless = False
        else:
            assert _same(got, ref[NEW]), f"{name} {op} {edits}: loaded, but not what was saved"
            harmless = True
        # 2. a run directory: the fall-back rule picks the newest checkpoint that is complete (for a resume)
        ck_used, _, _ = find_checkpoint(out, quiet=True)
        assert ck_used.name == (NEW if harmless else OLD)
        model, _, _ = load_for_inference(str(out))  # weights only: a damaged optimizer file does not matter
        weights_intact = harmless or name == "optimizer.safetensors"
        want = ref[NEW if weights_intact else OLD]["model"]
        assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())


# bytes that often keep JSON valid (a digit for a digit: another lr, RNG state or size) and any byte at all
_byte = st.one_of(st.sampled_from(list(b'0123456789.-eE ",:[]{}tfn')), st.integers(0, 255))
corruptions = st.tuples(
    st.sampled_from(["overwrite", "overwrite", "respace", "truncate", "append"]),
    st.lists(st.tuples(st.floats(0, 1), _byte), min_size=1, max_size=4))


@pytest.mark.parametrize("name", FILES)
def test_random_byte_corruption_never_loads_wrong_state(run, name, capsys):
    cfg, out, ref = run

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(corruptions)
    def fuzz(c):
        _check(cfg, out, ref, name, *c)

    fuzz()


def test_whitespace_in_state_json_is_harmless_and_edits_are_not(run):
    """The two sides of the state.json self-checksum: same content in another layout loads; a changed
    value (here the saved lr schedule, which no weight check would notice) is refused."""
    cfg, out, ref = run
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / NEW
        shutil.copytree(out / "checkpoints" / NEW, ck)
        doc = json.loads((ck / "state.json").read_text())
        (ck / "state.json").write_text(json.dumps(doc, indent="\t"))
        assert _same(_contents(cfg, ck), ref[NEW])
        doc["scheduler"]["lr"] *= 2
        (ck / "state.json").write_text(json.dumps(doc))
        with pytest.raises(CheckpointError, match="does not match its recorded checksum"):
            verify_checkpoint(ck)
