"""`archlab presets`: the stored table equals the built models, listing takes under 1 s of CPU (no torch import),
PATTERN / --json / descriptions, the renamed llama preset and its deprecated alias."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import warnings

import pytest

from archlab import preset_index
from archlab.cli import main
from archlab.models import build_model, preset, preset_names
from archlab.models.preset_table import preset_table

CLI = [sys.executable, "-m", "archlab.cli"]


@pytest.fixture(scope="module")
def table():
    return preset_table()


def test_shipped_table_equals_the_built_models(table):
    """Every preset, its family, count and description as the package ships them (else: run the script)."""
    shipped = json.loads(preset_index.INDEX_FILE.read_text(encoding="utf-8"))
    fix = "stale src/archlab/preset_index.json: run .venv/bin/python scripts/update_preset_index.py"
    assert shipped["presets"] == table["presets"], fix
    assert shipped["aliases"] == table["aliases"] == {"llama-124m": "llama-153m"}


def test_counts_are_the_models_parameters(table):
    import torch

    rows = {r["name"]: r for r in table["presets"]}
    assert sorted(rows) == preset_names()
    for name in ("gpt2", "bert-base", "llama-153m", "mamba-130m", "resnet50", "lstm-attn-seq2seq-tiny"):
        with torch.device("meta"):
            model = build_model(preset(name))
        assert rows[name]["params"] == sum(p.numel() for p in model.parameters()), name
    assert rows["gpt2"]["params"] == 124_439_808 and rows["llama-153m"]["params"] == 152_783_616


PUBLISHED_NAMES = {"llama3.2-1b"}  # the published checkpoint's own name (Meta's "1B" has 1.24B parameters)


def test_names_match_their_size(table):
    """A preset named after a size (-153m, -1.4b) has that many parameters, to ±5 % (HF rounds the same way),
    unless the name is a published checkpoint's."""
    for r in table["presets"]:
        if r["name"] in PUBLISHED_NAMES:
            continue
        size = r["name"].rsplit("-", 1)[-1]
        if size[:-1].replace(".", "").isdigit() and size[-1] in "mb":
            stated = float(size[:-1]) * (1e6 if size[-1] == "m" else 1e9)
            assert abs(r["params"] - stated) <= 0.05 * stated, (r["name"], r["params"])


def test_listing_uses_under_one_second_of_cpu(table, tmp_path):
    """A warm listing (shipped table or cache) in a fresh process: < 1 s of CPU, and torch is never imported."""
    env = {**os.environ, "ARCHLAB_CACHE_DIR": str(tmp_path)}
    preset_index.save(table)  # what the first listing after a source edit would cache
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(CLI + ["presets"], capture_output=True, text=True, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 1.0, f"archlab presets took {cpu:.2f} s of CPU"
    assert "llama-153m" in out.stdout and "152,783,616" in out.stdout and not out.stderr
    probe = "import sys, runpy; sys.argv=['archlab','presets']; import archlab.cli as c; c.main(['presets']); " \
            "assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True)


def test_a_stale_table_is_recomputed_and_cached(tmp_path, monkeypatch, table):
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    assert preset_index.load("0" * 64) is None  # sources changed: nothing stored for them
    doc = preset_index.document(table["presets"][:2], {}, "0" * 64)
    assert preset_index.save(doc) is not None and preset_index.load("0" * 64) == doc


def test_pattern_json_and_descriptions(capsys):
    assert main(["presets", "llama"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["preset", "family", "parameters"] and out[0].endswith("description")
    names = [line.split()[0] for line in out[1:-1]]
    assert names == ["char-llama", "llama-153m", "llama-tiny", "llama2-7b", "llama3.2-1b"]
    assert "llama-124m → llama-153m" in out[-1]
    assert main(["presets", "mamba-*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {n for n in preset_names() if n.startswith("mamba-")}
    assert all(set(r) == {"name", "family", "params", "description"} and r["description"] for r in rows)
    assert main(["presets", "no-such-thing"]) == 1 and "no preset matches" in capsys.readouterr().err


def test_old_llama_name_still_works_with_a_warning():
    with pytest.warns(FutureWarning, match="llama-124m.*renamed 'llama-153m'"):
        cfg = preset("llama-124m")
    assert cfg == preset("llama-153m") and "llama-124m" not in preset_names()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preset("llama-153m")
