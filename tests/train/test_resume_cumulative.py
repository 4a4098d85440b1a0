"""Resume: cumulative token and time counters, a finished run left alone (or extended by a larger train.steps,
the steps past the original schedule at min_lr), resuming from the run folder's saved run.yaml, and loss.png at
every checkpoint and at a Ctrl-C."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import toy_task_helpers as toy  # noqa: E402

from archlab.cli import main  # noqa: E402
from archlab.train import apply_run_overrides, read_metrics, train  # noqa: E402
from archlab.train import trainer as trainer_mod  # noqa: E402
from archlab.train.interrupt import TrainingInterrupted  # noqa: E402

TOKENS_PER_STEP = 4 * 16  # toy_config: batch_size 4, block 16


def _config_file(tmp_path: Path, **train) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy.toy_config(**train).to_dict(), sort_keys=False))
    return path


def _train_records(out: Path) -> list[dict]:
    return [r for r in read_metrics(out) if r["kind"] == "train"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_counters_are_cumulative_across_resumes(tmp_path):
    cfg = toy.toy_config(steps=8)
    train(apply_run_overrides(cfg, ["train.stop_at=3"]), tmp_path, progress=False)
    first = json.loads((tmp_path / "final_metrics.json").read_text())
    train(apply_run_overrides(cfg, ["train.stop_at=6"]), tmp_path, resume=True, progress=False)
    res = train(cfg, tmp_path, resume=True, progress=False)
    recs = _train_records(tmp_path)
    assert [r["step"] for r in recs] == list(range(1, 9))
    assert [r["tokens"] for r in recs] == [TOKENS_PER_STEP * s for s in range(1, 9)]  # not restarting at 3 or 6
    assert res["tokens"] == 8 * TOKENS_PER_STEP
    assert res["train_time_s"] > first["train_time_s"] > 0  # the time of all three processes
    assert res["tokens_per_s"] == pytest.approx(res["tokens"] / res["train_time_s"])
    state = json.loads((tmp_path / "checkpoints" / "step_00000008" / "state.json").read_text())
    assert state["counters"] == {"tokens": 8 * TOKENS_PER_STEP, "train_time_s": res["train_time_s"]}


def test_resume_of_a_finished_run_leaves_it_alone(tmp_path, capsys):
    config, out = _config_file(tmp_path, steps=4), tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "run.lock"}
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    for argv in (["train", str(out), "--resume"], ["train", str(config), "--out", str(out), "--resume"]):
        assert main([*argv, "--quiet"]) == 0
        assert _one_line(capsys) == (f"archlab train: run {str(out)!r} is finished (step 4 of train.steps=4); "
                                     "nothing to resume. To train it further, pass --set train.steps=N with N > 4")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "run.lock"}
    assert after == before  # final_metrics.json, metrics.jsonl, run.yaml: untouched
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ckpts


def test_extending_a_finished_run_continues_at_min_lr(tmp_path, capsys):
    config, out = _config_file(tmp_path, steps=6, warmup_steps=2), tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", str(out), "--resume", "--quiet", "--set", "train.steps=9"]) == 0
    final = json.loads(capsys.readouterr().out)
    assert final["step"] == 9 and final["tokens"] == 9 * TOKENS_PER_STEP and "train_loss" in final and "lr" in final
    recs = _train_records(out)
    lr = {r["step"]: r["lr"] for r in recs}
    floor = 3e-3 / 10  # toy_config's lr, min_lr unset: lr / 10
    assert all(lr[s] == pytest.approx(floor) for s in (7, 8, 9))  # past the original 6-step cosine: its floor
    assert lr[5] > lr[6] > floor  # the original schedule is unchanged up to its end
    assert yaml.safe_load((out / "run.yaml").read_text())["train"]["steps"] == 9
    state = json.loads((out / "checkpoints" / "step_00000009" / "state.json").read_text())
    assert state["scheduler"]["span"] == 6  # a later resume of the extension keeps the same rule
    assert main(["train", str(out), "--resume", "--quiet"]) == 0
    assert "is finished (step 9 of train.steps=9)" in _one_line(capsys)


@pytest.mark.parametrize("setting, message", [
    ("model.d_model=64", "--set model.d_model=64: a resumed run keeps its model; on --resume only "),
    ("task.block_size=8", "--set task.block_size=8: a resumed run keeps its task; on --resume only "),
    ("train.lr=0.1", "--set train.lr=0.1: a resumed run keeps its settings; on --resume only "),
    ("train.steps=2", "train.steps=2 is smaller than the run's train.steps=4: a resumed run keeps its length or "
                      "extends it (train.steps > 4); use train.stop_at to stop earlier"),
])
def test_unsafe_changes_on_resume_are_one_line(tmp_path, capsys, setting, message):
    config, out = _config_file(tmp_path, steps=4, stop_at=2), tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", str(out), "--resume", "--quiet", "--set", setting]) == 2
    line = _one_line(capsys)
    assert line.startswith("archlab train: error: ") and message in line, line
    assert json.loads((out / "final_metrics.json").read_text())["step"] == 2  # nothing ran


def test_resume_from_the_run_folder_uses_its_saved_config(tmp_path, capsys):
    ref = tmp_path / "ref"
    train(toy.toy_config(steps=8), ref, progress=False)
    config, out = _config_file(tmp_path, steps=8, stop_at=3), tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    assert main(["train", str(out), "--resume", "--quiet", "--set", "train.stop_at=5"]) == 0  # RUN --resume
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--set", "train.stop_at=0"]) == 0  # --out RUN
    assert {r["step"]: r["loss"] for r in _train_records(out)} == {r["step"]: r["loss"] for r in _train_records(ref)}
    capsys.readouterr()
    (out / "run.yaml").unlink()
    assert main(["train", str(out), "--resume", "--quiet"]) == 2
    assert _one_line(capsys) == (f"archlab train: error: cannot resume {str(out)!r} from its saved config: "
                                 f"{str(out / 'run.yaml')!r} is missing; pass the run config file: archlab train "
                                 f"CONFIG --out {out} --resume")
    assert main(["train", "--quiet"]) == 2
    assert _one_line(capsys) == ("archlab train: error: a run config file is required: archlab train CONFIG (or "
                                 "archlab train RUN --resume to continue a run)")
    assert main(["train", str(out), "--quiet"]) == 2
    assert _one_line(capsys) == (f"archlab train: error: {str(out)!r} is a folder, not a run config file; pass "
                                 "--resume to continue the run in it")


def test_loss_plot_at_every_checkpoint_and_at_ctrl_c(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    plotted: list[int] = []
    real = trainer_mod.plot_losses

    def spy(metrics_path, out_png, title=""):
        plotted.append(read_metrics(metrics_path)[-1]["step"])
        return real(metrics_path, out_png, title)

    monkeypatch.setattr(trainer_mod, "plot_losses", spy)
    train(toy.toy_config(steps=6, checkpoint_every=2, plot=True), tmp_path / "a", progress=False)
    assert plotted == [2, 4, 6] and (tmp_path / "a" / "loss.png").stat().st_size > 0

    class CtrlCAtStep3:  # stands in for StopOnInterrupt: "Ctrl-C" arrives during step 3
        calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        @property
        def requested(self):
            self.calls += 1
            return self.calls >= 3

    plotted.clear()
    monkeypatch.setattr(trainer_mod, "StopOnInterrupt", CtrlCAtStep3)
    with pytest.raises(TrainingInterrupted):
        train(toy.toy_config(steps=6, checkpoint_every=4, plot=True), tmp_path / "b", progress=False)
    assert plotted == [3] and (tmp_path / "b" / "loss.png").is_file()
