"""Run-folder safety: the lock (second run refused, stale lock taken over), fresh runs start clean,
Ctrl-C saves the current step (then resumes bit-exactly), --out checked before training, umask honoured."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
import toy_task_helpers as toy  # noqa: E402
from test_resume_checkpoint import _assert_same  # noqa: E402

from archlab.cli import main  # noqa: E402
from archlab.fileio import atomic_write, atomic_write_text  # noqa: E402
from archlab.train import read_metrics, train  # noqa: E402
from archlab.train.checkpoint import latest_checkpoint  # noqa: E402
from archlab.train.run_folder import LOCK_FILE, RunFolderError, RunLock  # noqa: E402

HERE = Path(__file__).parent
# `archlab ...` in a subprocess, with the toy task registered (it lives in the tests, not in the package)
CLI = ("import sys; sys.path.insert(0, sys.argv[1]); import toy_task_helpers;"
       "from archlab.cli import main; sys.exit(main(sys.argv[2:]))")


def _cfg_file(tmp_path: Path, **train_opts) -> Path:
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(toy.toy_config(**train_opts).to_dict()))
    return p


def _spawn(args: list[str], sleep: float, sleep_from: int = 0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOY_TASK_SLEEP": str(sleep), "TOY_TASK_SLEEP_FROM": str(sleep_from)}
    return subprocess.Popen([sys.executable, "-c", CLI, str(HERE), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc: subprocess.Popen, out: Path, step: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = out / "metrics.jsonl"
        if m.is_file() and any(r.get("step", 0) >= step for r in read_metrics(m)):
            return
        assert proc.poll() is None, f"training subprocess ended early: {proc.communicate()}"
        time.sleep(0.05)
    raise AssertionError("training subprocess made no progress")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train(toy.toy_config(steps=8), out, progress=False)
    return out


def test_second_run_refused_then_stale_lock_taken_over(tmp_path, uninterrupted, capsys):
    """Two trainers on one folder: the second (fresh or --resume) gets one line, exit 2. After the first is
    killed before its first checkpoint, a fresh run takes the stale lock over and starts from empty metrics."""
    cfg, out = _cfg_file(tmp_path), tmp_path / "run"
    first = _spawn(["train", str(cfg), "--out", str(out), "--quiet"], sleep=1.0)  # step 4 saves >= 3 s after step 1
    try:
        _wait_for_step(first, out, 1)
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == first.pid
        for extra in ([], ["--resume"], ["--overwrite"]):
            assert main(["train", str(cfg), "--out", str(out), "--quiet", *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0, err
            assert err.startswith("archlab train: error: run folder") and f"pid {first.pid}" in err
            assert "in use by another archlab run" in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert latest_checkpoint(out) is None  # killed before its first checkpoint (step 4)
    assert read_metrics(out)  # ... leaving metrics lines of its own
    # a fresh run: takes over the stale lock (notice), and its metrics hold only its own records
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock of {str(out)!r} (left by pid {first.pid}" in err
    steps = [r["step"] for r in read_metrics(out) if r["kind"] == "train"]
    assert steps == list(range(1, 9))
    _assert_same(uninterrupted, out)
    assert (out / LOCK_FILE).read_text() == ""  # released: nobody named as holder


def test_lock_in_process(tmp_path, capsys):
    with RunLock(tmp_path / "r"):
        with pytest.raises(RunFolderError, match=r"is in use by another archlab run \(pid \d+ on "):
            RunLock(tmp_path / "r").acquire()
        with pytest.raises(RunFolderError, match="in use"):
            train(toy.toy_config(steps=2), tmp_path / "r", progress=False)
    assert capsys.readouterr().err == ""  # released cleanly: no stale-lock notice next time
    with RunLock(tmp_path / "r"):
        pass
    assert capsys.readouterr().err == ""
    # a run that fails before writing anything leaves no folder behind
    from archlab.train import apply_run_overrides

    bad = apply_run_overrides(toy.toy_config(steps=2), ["model.d_model=33"])  # not divisible by the heads
    with pytest.raises(ValueError, match="d_model"):
        train(bad, tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


def test_fresh_run_does_not_keep_a_dead_runs_metrics(tmp_path):
    cfg = toy.toy_config(steps=2, checkpoint_every=0, plot=True)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "loss": 99.0, "lr": 1.0}) + "\n")
    (out / "loss.png").write_bytes(b"old plot")
    (out / "final_metrics.json").write_text("{}")
    (out / "checkpoints" / ".tmp-step_00000004-dead").mkdir(parents=True)
    train(cfg, out, progress=False)
    recs = read_metrics(out)
    assert [r["loss"] for r in recs if r["kind"] == "train" and r["step"] == 1] != [99.0]
    assert sorted(r["step"] for r in recs if r["kind"] == "train") == [1, 2]
    assert (out / "loss.png").read_bytes() != b"old plot"
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_ctrl_c_saves_current_step_then_resume_is_bit_exact(tmp_path, uninterrupted):
    cfg, out = _cfg_file(tmp_path), tmp_path / "run"
    proc = _spawn(["train", str(cfg), "--out", str(out), "--quiet"], sleep=0.3)
    _wait_for_step(proc, out, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    saved = latest_checkpoint(out)
    step = int(saved.name[5:])
    assert 1 <= step < 8 and step != 4, step  # the step it was on, not a scheduled checkpoint (every 4)
    last = err.strip().splitlines()[-1]
    assert last == (f"archlab train: interrupted at step {step}; checkpoint saved in {saved} "
                    "(continue with --resume)")
    assert (out / LOCK_FILE).read_text() == ""
    train(toy.toy_config(steps=8), out, resume=True, progress=False)
    _assert_same(uninterrupted, out)


def test_second_ctrl_c_aborts_at_once(tmp_path):
    cfg, out = _cfg_file(tmp_path), tmp_path / "run"
    proc = _spawn(["train", str(cfg), "--out", str(out), "--quiet"], sleep=60.0, sleep_from=1)
    _wait_for_step(proc, out, 1)  # now inside step 2's 60-second batch
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 20  # did not wait for the step to finish (exit itself takes ~1.5 s on a busy CPU)
    assert proc.returncode == 130, err
    assert latest_checkpoint(out) is None  # nothing saved: aborted, not finished
    assert "saving a checkpoint (press Ctrl-C again to abort at once)" in err


def test_out_checked_before_training(tmp_path, capsys):
    cfg = _cfg_file(tmp_path, steps=2)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["train", str(cfg), "--out", str(blocker / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"archlab train: error: --out {str(blocker / 'run')!r} cannot be created: "
                                       f"{str(blocker)!r} is a file, not a folder\n")
    assert main(["train", str(cfg), "--out", str(blocker), "--quiet"]) == 2
    assert f"--out {str(blocker)!r} is a file, not a folder" in capsys.readouterr().err


def _as_unprivileged():
    """Root ignores permission bits: run the check as 'nobody' (euid only, restored afterwards)."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        if os.geteuid() != 0:
            yield
            return
        os.seteuid(65534)
        try:
            yield
        finally:
            os.seteuid(0)
    return ctx()


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_read_only_out_or_checkpoints_refused_before_training(capsys):
    base = Path(tempfile.mkdtemp(prefix="archlab-ro-"))  # not under pytest's 0700 tmp dir: 'nobody' must enter it
    try:
        base.chmod(0o755)
        cfg = base / "toy.yaml"
        cfg.write_text(yaml.safe_dump(toy.toy_config(steps=2).to_dict()))
        ro = base / "ro"
        ro.mkdir(mode=0o555)
        run = base / "run"
        (run / "checkpoints").mkdir(parents=True)
        run.chmod(0o777)
        (run / "checkpoints").chmod(0o555)
        with _as_unprivileged():
            assert main(["train", str(cfg), "--out", str(ro / "x"), "--quiet"]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"archlab train: error: --out {str(ro / 'x')!r} is not writable: cannot create "
                                  f"files in {str(ro)!r}") and err.count("\n") == 1
            assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 2
            err = capsys.readouterr().err
            assert f"cannot create files in {str(run / 'checkpoints')!r}" in err
        assert not (run / "metrics.jsonl").exists()  # refused before training
    finally:
        for p in (base / "ro", base / "run" / "checkpoints"):
            p.chmod(0o755)
        import shutil

        shutil.rmtree(base)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_honour_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write(tmp_path / "w.safetensors", lambda t: save_file({"w": torch.zeros(2)}, t))  # re-creates 0600
        out = tmp_path / "run"
        train(toy.toy_config(steps=1), out, progress=False)
    finally:
        os.umask(old)
    for name in ("a.txt", "w.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    ck = latest_checkpoint(out)
    assert stat.S_IMODE(ck.stat().st_mode) == 0o777 & ~umask
    for p in [*ck.iterdir(), out / "metrics.jsonl", out / "run.yaml", out / "final_metrics.json",
              out / "checkpoints" / "LATEST"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
