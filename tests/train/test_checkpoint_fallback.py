"""One fall-back rule for every command: an incomplete newest checkpoint is skipped with a one-line notice,
the newest complete one is used; a checkpoint named explicitly is never replaced; none complete -> one error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from archlab.cli import main
from archlab.errors import CheckpointError
from archlab.train.checkpoint import load_checkpoint, open_checkpoint

STEP2, STEP4 = "step_00000002", "step_00000004"


def _damage_no_state(ck: Path) -> None:
    (ck / "state.json").unlink()


def _damage_garbage_state(ck: Path) -> None:
    (ck / "state.json").write_text("{garbage")


def _damage_hand_edited_state(ck: Path) -> None:  # valid JSON, a different model: the self-checksum refuses it
    doc = json.loads((ck / "state.json").read_text())
    doc["model_config"]["norm_eps"] = 1e-3
    (ck / "state.json").write_text(json.dumps(doc))


def _damage_model_byte(ck: Path) -> None:
    data = bytearray((ck / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle of the weights
    (ck / "model.safetensors").write_bytes(bytes(data))


def _damage_missing_optimizer(ck: Path) -> None:
    (ck / "optimizer.safetensors").unlink()


def _damage_truncated_tokenizer(ck: Path) -> None:
    p = ck / "tokenizer.json"
    p.write_bytes(p.read_bytes()[:-10])


DAMAGES = {f.__name__[8:]: f for f in (_damage_no_state, _damage_garbage_state, _damage_hand_edited_state,
                                       _damage_model_byte, _damage_missing_optimizer, _damage_truncated_tokenizer)}
REASONS = {"no_state": "state.json is missing", "garbage_state": "state.json is not valid JSON",
           "hand_edited_state": "does not match its recorded checksum", "model_byte": "SHA-256 does not match",
           "missing_optimizer": "optimizer.safetensors is missing", "truncated_tokenizer": "truncated"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A char-tokenizer run with complete checkpoints at steps 2 and 4."""
    tmp = tmp_path_factory.mktemp("fallback")
    corpus = tmp / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    cfg = tmp / "run.yaml"
    cfg.write_text(f"""
name: tiny
model: {{preset: llama-tiny, d_model: 32, max_seq_len: 32}}
task: {{name: causal_lm, corpus: {corpus}, tokenizer: char}}
train: {{steps: 4, batch_size: 4, lr: 1e-3, eval_every: 2, eval_batches: 2, threads: 1, plot: false,
        checkpoint_every: 2}}
""")
    out = tmp / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == [STEP2, STEP4]
    return cfg, out


def _copy(run_dir, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir[1], out)
    return out


WEIGHT_DAMAGES = sorted(d for d in DAMAGES if d != "missing_optimizer")  # what loading the weights notices


@pytest.mark.parametrize("damage", WEIGHT_DAMAGES)
def test_every_loader_skips_an_incomplete_newest_checkpoint(run_dir, tmp_path, capsys, damage):
    out = _copy(run_dir, tmp_path)
    DAMAGES[damage](out / "checkpoints" / STEP4)
    capsys.readouterr()
    ck, doc = open_checkpoint(out)  # the rule itself
    assert ck.name == STEP2 and doc["step"] == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"archlab: skipping checkpoint {STEP4} (") and REASONS[damage] in err[0]
    assert err[0].endswith(f"; using {STEP2}, the newest complete one")
    # the commands: eval and sample (through _load), convert's loader (interop), load_checkpoint
    assert main(["eval", str(out), "--batches", "1"]) == 0
    res = capsys.readouterr()
    assert json.loads(res.out)["loss"] > 0 and res.err.count(f"skipping checkpoint {STEP4}") == 1
    assert main(["sample", str(out), "--prompt", "To", "--max-new-tokens", "3", "--temperature", "0"]) == 0
    assert capsys.readouterr().err.count(f"skipping checkpoint {STEP4}") == 1
    from archlab.interop import load_pretrained

    model, _ = load_pretrained(out)
    want = load_file(str(out / "checkpoints" / STEP2 / "model.safetensors"))
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())
    assert load_checkpoint(out)["step"] == 2
    assert capsys.readouterr().err.count(f"skipping checkpoint {STEP4}") == 2  # once per load above
    # named explicitly, the damaged checkpoint is an error (one line), never silently replaced
    assert main(["eval", str(out / "checkpoints" / STEP4), "--batches", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archlab eval: error: ") and REASONS[damage] in err


@pytest.mark.parametrize("damage", ["no_state", "model_byte", "missing_optimizer"])
def test_resume_falls_back_and_sets_the_damaged_one_aside(run_dir, tmp_path, capsys, damage):
    cfg, good = run_dir
    out = _copy(run_dir, tmp_path)
    DAMAGES[damage](out / "checkpoints" / STEP4)
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"skipping checkpoint {STEP4}" in err and f"moved the incomplete checkpoint {STEP4} aside" in err
    assert (out / "checkpoints" / f".damaged-{STEP4}").is_dir()
    # steps 3-4 were retrained from step 2: bit-exactly the original step 4
    a = load_file(str(good / "checkpoints" / STEP4 / "model.safetensors"))
    b = load_file(str(out / "checkpoints" / STEP4 / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert open_checkpoint(out)[0].name == STEP4
    assert capsys.readouterr().err == ""  # nothing skipped any more


def _damage_optimizer_byte(ck: Path) -> None:
    data = bytearray((ck / "optimizer.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (ck / "optimizer.safetensors").write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_damage_missing_optimizer, _damage_optimizer_byte])
def test_damaged_optimizer_keeps_the_weights_usable(run_dir, tmp_path, capsys, damage):
    """sample / eval / convert's loader need only the weights: a damaged optimizer file does not make them fall
    back to an older checkpoint; --resume needs the optimizer, falls back and says why."""
    cfg, _ = run_dir
    out = _copy(run_dir, tmp_path)
    damage(out / "checkpoints" / STEP4)
    capsys.readouterr()
    assert open_checkpoint(out)[0].name == STEP4
    assert main(["eval", str(out), "--batches", "1"]) == 0
    res = capsys.readouterr()
    assert json.loads(res.out)["step"] == 4 and res.err == ""
    assert main(["sample", str(out), "--prompt", "To", "--max-new-tokens", "3", "--temperature", "0"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["eval", str(out / "checkpoints" / STEP4), "--batches", "1"]) == 0  # named explicitly, too
    capsys.readouterr()
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        load_checkpoint(out / "checkpoints" / STEP4, optimizer=torch.optim.SGD([torch.zeros(1)], lr=0.1))
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--resume", "--set", "train.steps=5"]) == 0
    err = capsys.readouterr().err
    assert f"skipping checkpoint {STEP4} (" in err and "optimizer.safetensors" in err
    assert "resuming needs the optimizer state as well as the weights" in err


def test_no_complete_checkpoint_is_one_error(run_dir, tmp_path, capsys):
    cfg, _ = run_dir
    out = _copy(run_dir, tmp_path)
    _damage_no_state(out / "checkpoints" / STEP4)
    _damage_garbage_state(out / "checkpoints" / STEP2)
    with pytest.raises(CheckpointError, match=rf"no complete checkpoint in .*{STEP4}: .*missing; {STEP2}: .*JSON"):
        open_checkpoint(out)
    for argv in (["eval", str(out)], ["sample", str(out)], ["train", str(cfg), "--out", str(out), "--resume"]):
        assert main(argv + ["--quiet"] * (argv[0] == "train")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: no complete checkpoint in {str(out)!r}" in err, err
    # a fresh run there must be asked for explicitly
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_init_from_follows_the_rule(run_dir, tmp_path, capsys):
    from archlab.models import build_model, model_config_from_dict
    from archlab.train.trainer import init_weights

    out = _copy(run_dir, tmp_path)
    _damage_model_byte(out / "checkpoints" / STEP4)
    doc = json.loads((out / "checkpoints" / STEP2 / "state.json").read_text())
    model = build_model(model_config_from_dict(doc["model_config"]))
    capsys.readouterr()
    res = init_weights(model, str(out))
    assert res["new"] == [] and capsys.readouterr().err.count(f"skipping checkpoint {STEP4}") == 1
    want = load_file(str(out / "checkpoints" / STEP2 / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())
