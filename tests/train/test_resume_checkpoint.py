"""Bit-exact resume, crash safety of checkpoint writing, and clear errors for bad checkpoints."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import toy_task_helpers as toy  # noqa: E402

from archlab.config import ConfigError  # noqa: E402
from archlab.errors import CheckpointError  # noqa: E402
from archlab.train import apply_run_overrides, checkpoint, read_metrics, train  # noqa: E402
from archlab.train.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out) if r["kind"] == "train"}


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(out) / "model.safetensors"))


def _assert_same(a: Path, b: Path) -> None:
    la, lb = _losses(a), _losses(b)
    assert la == lb  # exact float equality of every logged step's loss
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    oa = load_file(str(latest_checkpoint(a) / "optimizer.safetensors"))
    ob = load_file(str(latest_checkpoint(b) / "optimizer.safetensors"))
    for k in oa:
        assert torch.equal(oa[k], ob[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train(toy.toy_config(steps=8), out, progress=False)
    return out


def test_stop_and_resume_is_bit_exact(tmp_path, uninterrupted):
    cfg = toy.toy_config(steps=8)
    train(apply_run_overrides(cfg, ["train.stop_at=4"]), tmp_path, progress=False)
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    res = train(cfg, tmp_path, resume=True, progress=False)
    assert res["step"] == 8
    _assert_same(uninterrupted, tmp_path)


def test_subprocess_killed_mid_run_resumes_bit_exact(tmp_path, uninterrupted):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import toy_task_helpers as toy;"
        "from archlab.train import apply_run_overrides, train;"
        "cfg = toy.toy_config(steps=8, checkpoint_every=2);"
        "train(cfg, sys.argv[2], progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOY_TASK_SLEEP": "0.4"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            found = latest_checkpoint(tmp_path)
            if found is not None and int(found.name[5:]) >= 2:
                break
            assert proc.poll() is None, "training subprocess ended before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = int(latest_checkpoint(tmp_path).name[5:])
    assert killed_at < 8
    train(toy.toy_config(steps=8, checkpoint_every=2), tmp_path, resume=True, progress=False)
    _assert_same(uninterrupted, tmp_path)


@pytest.mark.parametrize("stage", ["model", "optimizer", "state", "publish"])
def test_crash_while_writing_checkpoint_keeps_previous(tmp_path, uninterrupted, stage, monkeypatch):
    cfg = toy.toy_config(steps=8)

    def crash(s):
        if s == stage and crash.armed:
            raise KeyboardInterrupt(f"simulated crash at {s}")

    crash.armed = False
    monkeypatch.setattr(checkpoint, "_test_hook", crash)
    orig = checkpoint.save_checkpoint

    def save(root, step, *a, **k):
        crash.armed = step == 8
        return orig(root, step, *a, **k)

    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, progress=False)
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    doc = load_checkpoint(tmp_path)  # the previous checkpoint verifies and loads
    assert doc["step"] == 4
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))  # the half-written one was removed
    monkeypatch.setattr(checkpoint, "_test_hook", None)
    train(cfg, tmp_path, resume=True, progress=False)
    _assert_same(uninterrupted, tmp_path)


def test_truncated_checkpoint_is_rejected(tmp_path, uninterrupted):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(latest_checkpoint(uninterrupted), ck)
    p = ck / "model.safetensors"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        load_checkpoint(ck)
    data = bytearray((ck / "optimizer.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ck / "optimizer.safetensors").write_bytes(bytes(data))
    p.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(ck)
    (ck / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json is not valid JSON"):
        load_checkpoint(ck)


def test_corrupt_bytes_fail_checksum(tmp_path, uninterrupted):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(latest_checkpoint(uninterrupted), ck)
    data = bytearray((ck / "optimizer.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ck / "optimizer.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        checkpoint.verify_checkpoint(ck)  # what a resume checks
    assert load_checkpoint(ck)["step"] == 8  # loading the weights alone does not need the optimizer file


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(toy.toy_config(steps=2), tmp_path / "empty", resume=True, progress=False)


def test_config_mismatch_on_resume_names_fields(tmp_path):
    cfg = toy.toy_config(steps=4, stop_at=2)
    train(cfg, tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"train\.lr: checkpoint has 0\.003, config has 0\.001"):
        train(apply_run_overrides(cfg, ["train.lr=1e-3", "train.stop_at=0"]), tmp_path, resume=True, progress=False)
    with pytest.raises(ConfigError, match=r"model\.d_model"):
        train(apply_run_overrides(cfg, ["model.d_model=64"]), tmp_path, resume=True, progress=False)
    # logging/eval/stop fields may change on resume
    train(apply_run_overrides(cfg, ["train.stop_at=0", "train.eval_every=1"]), tmp_path, resume=True, progress=False)


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    cfg = toy.toy_config(steps=2)
    train(cfg, tmp_path, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, tmp_path, progress=False)
    train(cfg, tmp_path, progress=False, overwrite=True)
