"""`archlab demo` prints the `archlab train` command it runs: that command resolves to exactly the demo's run config."""
import shlex
from pathlib import Path

import pytest

from archlab.cli import build_parser
from archlab.commands.demo import demo_runs
from archlab.train import load_run_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("steps,threads", [(350, 1), (7, 2)])
def test_printed_command_resolves_to_the_demo_run_config(steps, threads, monkeypatch):
    monkeypatch.chdir(ROOT)  # the printed command names configs/... relative to the checkout
    runs = demo_runs(steps, threads, "runs/demo")
    assert [cfg.name for cfg, _ in runs] == ["char-llama", "char-llama-nopos"]
    for cfg, command in runs:
        argv = shlex.split(command)
        assert argv[:2] == ["archlab", "train"]
        args = build_parser().parse_args(argv[1:])
        resolved = load_run_config(args.config, args.overrides)  # what `archlab train` does with it
        assert resolved.to_dict() == cfg.to_dict()
        assert args.overwrite and args.out == f"runs/demo/{'llama' if cfg.name == 'char-llama' else 'llama-nopos'}"
    assert runs[0][0].train.steps == steps and runs[0][0].train.threads == threads
    assert runs[1][0].model_config().pos.kind == "none" and runs[0][0].model_config().pos.kind == "rope"


def test_no_ablation_gives_one_run():
    assert len(demo_runs(5, 1, "x", ablation=False)) == 1
