"""Shipped configs (`archlab configs`, train by name from any folder), shell completion, and listings that end quietly
when their reader stops early (`archlab presets | head`)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from archlab import run_configs
from archlab.cli import main
from archlab.commands._output import quiet_broken_pipe
from archlab.config import read_mapping

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "archlab.cli"]


def test_shipped_configs_equal_the_repository_configs():
    """src/archlab/configs/ is a copy of configs/ (the docs' paths): same names, same bytes."""
    repo = {p.name: p.read_bytes() for p in (ROOT / "configs").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in run_configs.shipped().values()}
    assert repo and shipped == repo, "copy configs/*.yaml to src/archlab/configs/ (they ship with the package)"


def test_configs_lists_and_resolves_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    for spec in ("shakespeare_char_llama", "shakespeare_char_llama.yaml", "configs/shakespeare_char_llama.yaml"):
        assert read_mapping(spec)["model"] == {"preset": "char-llama"}
    assert run_configs.shipped_path("elsewhere/fashion_mnist.yaml") is None
    assert main(["configs", "fashion", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["fashion_mnist", "fashion_mnist_mobilenet", "fashion_mnist_resnet"]
    assert all(r["description"] and Path(r["path"]).is_file() for r in rows)
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "shakespeare_char_llama" in out and "The `make demo` model" in out
    assert main(["configs", "--show", "fashion_mnist"]) == 0 and "cnn-small" in capsys.readouterr().out
    assert main(["train", "no_such_config", "--dry-run"]) == 2
    assert "shipped configs, usable by name: classification_genre" in capsys.readouterr().err


def test_train_by_name_dry_run_from_another_folder(tmp_path):
    out = subprocess.run(CLI + ["train", "shakespeare_char_llama", "--dry-run"], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout)["params"] == 737_664


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script(shell, capsys):
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    assert "presets" in text and "--seq-len" in text and "configs" in text
    if shell == "bash":
        subprocess.run(["bash", "-c", text + "\ntrue"], check=True)  # the script parses


def test_fallback_completion_without_shtab():
    from archlab.cli import build_parser
    from archlab.commands.completion import fallback_script

    text = fallback_script(build_parser(), "bash")
    probe = text + '\nCOMP_WORDS=(archlab pres); COMP_CWORD=1; _archlab; echo "${COMPREPLY[@]}"\n' \
        'COMP_WORDS=(archlab presets --js); COMP_CWORD=2; _archlab; echo "${COMPREPLY[@]}"\n'
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "presets" and out[1].startswith("--json")


class _ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")


def test_quiet_broken_pipe_swallows_the_error(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    with quiet_broken_pipe():
        print("a line nobody reads")


@pytest.mark.parametrize("argv", [["presets"], ["configs"], ["claims", "--list"], ["presets", "--json"]])
def test_listing_into_a_closed_pipe_exits_quietly(argv):
    """`archlab presets | head -0`: the reader is gone before anything is written — no traceback, exit 0."""
    proc = subprocess.Popen(CLI + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `head` exiting at once
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_claims_list_as_json(capsys):
    """`archlab claims --list --json`: every built-in claim with its family, seed documents, title and file."""
    import json

    from archlab.cli import main

    assert main(["claims", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 50 and {"name", "family", "seed", "title", "file"} <= set(rows[0])
    assert rows[0]["file"].startswith("01_")
