"""Issue 18, deliver 6 (config path): random run-config YAML documents and random `--set` values never
make `archlab train` raise a traceback — it either accepts the run (exit 0) or refuses it with exactly one
`archlab train: error: …` line (exit 2).

The CLI runs in-process with --dry-run: every check made before training (config types and values, the
task and its data, the model config, the memory estimate) runs, and no model is built. Keys come from the
real schema (the char-llama preset's dotted fields, TrainConfig, the text tasks' options) plus garbage;
values are every YAML type (null, booleans, integers from 0 to 10^12 and negative, floats with nan/inf,
strings, lists, mappings). FUZZ_EXAMPLES = 120 documents plus 40 preset + typed `--set model.*` examples
in CI (≈ 15 s on one CPU core); ARCHLAB_FUZZ_EXAMPLES=N runs a longer, randomised hunt.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from contextlib import redirect_stderr, redirect_stdout

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archlab.cli import main  # noqa: E402
from archlab.config import flatten, to_dict  # noqa: E402
from archlab.models import preset, preset_names  # noqa: E402
from archlab.train.run_config import TrainConfig  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("ARCHLAB_FUZZ_EXAMPLES", "120"))  # a longer hunt: ARCHLAB_FUZZ_EXAMPLES=5000

MODEL_KEYS = sorted(flatten(to_dict(preset("char-llama")))) + ["preset", "arch"]
TRAIN_KEYS = [f.name for f in dataclasses.fields(TrainConfig)]
TASK_KEYS = ["corpus", "tokenizer", "bpe_vocab", "block_size", "val_fraction", "mask_prob", "min_prefix",
             "byte_fallback"]
GARBAGE_KEYS = ["", "x", "d_modle", "n_layers.x", "train", "model.d_model", "1", "ffn..d_ff", "ü"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 300), st.sampled_from([0, 1, 2, 3, 4, 8, 16, 64, 10**4, 10**9, 10**12, -1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.1, 0.5, 1e-3, 1e4, math.inf, math.nan]),
    st.text(max_size=12), st.sampled_from(["none", "null", "char", "bpe", "rope", "cpu", "cuda", "[", "{a: 1", "1e-3"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=6)


def _defaults() -> dict:
    """{dotted key: default value} over every preset's model fields and TrainConfig."""
    out: dict = {f"train.{k}": v for k, v in to_dict(TrainConfig()).items()}
    for name in preset_names():
        for k, v in flatten(to_dict(preset(name))).items():
            out.setdefault(f"model.{k}", v)
    return out


DEFAULTS = _defaults()
WORDS = sorted({v for v in DEFAULTS.values() if isinstance(v, str)} | {"none", "cpu", "fp32"})


def typed(key: str):
    """A value of the type the field declares (so that validation gets past the type check), any magnitude."""
    d = DEFAULTS.get(key)
    if isinstance(d, bool):
        return st.booleans()
    if isinstance(d, int):
        return st.one_of(st.integers(-2, 70), st.sampled_from([0, 1, 2, 3, 4, 5, 7, 16, 10**5, 10**9]))
    if isinstance(d, float):
        return st.one_of(st.floats(-10, 1e6, allow_nan=False), st.sampled_from([0.0, 1e-6, 0.5, 1.0, 2.0, 1e9]))
    if isinstance(d, str):
        return st.sampled_from(WORDS)
    if isinstance(d, list):
        return st.lists(st.sampled_from(WORDS + [0, 1, 2]), max_size=3)
    return values


@st.composite
def section(draw, keys: list[str], prefix: str):
    """A few fields: real keys with values of their own type, real keys with any value, or garbage keys."""
    out = {}
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.integers(0, 3))
        key = draw(st.sampled_from(keys) if how < 3 else st.one_of(st.sampled_from(GARBAGE_KEYS), st.text(max_size=6)))
        out[key] = draw(typed(f"{prefix}.{key}") if how < 2 else values)
    return out


@st.composite
def documents(draw, corpora):
    """A run-config document: mostly well-formed sections with random fields, sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(values, st.text(max_size=30)))  # not a mapping, or raw (possibly broken) YAML
    # which sections get random fields: all of them, or just one (so that many documents are accepted)
    wild = draw(st.sampled_from([("model", "task", "train", "name"), ("model",), ("task",), ("train",), ()]))
    model = {"preset": "char-llama", "d_model": 32, "n_layers": 1, "max_seq_len": 16}
    task = {"name": "causal_lm", "corpus": corpora[0], "tokenizer": "char"}
    train = {"steps": 1, "batch_size": 2, "eval_batches": 1}
    doc = {"model": model, "task": task, "train": train, "name": "fuzz"}
    if "model" in wild:
        model["preset"] = draw(st.sampled_from(["char-llama", "char-gpt", "gpt-tiny", "llama-tiny", "nope"]))
        model.update(draw(section(MODEL_KEYS, "model")))
    if "task" in wild:
        task["name"] = draw(st.sampled_from(["causal_lm", "mlm", "prefix_lm", "nope"]))
        task["corpus"] = draw(st.sampled_from(corpora))
        task.update(draw(section(TASK_KEYS, "task")))
    if "train" in wild:
        train.update(draw(section(TRAIN_KEYS, "train")))
    if "name" in wild:
        doc["name"] = draw(values)
        for name in ("model", "task", "train"):
            if draw(st.integers(0, 5)) == 0:
                doc[name] = draw(values)  # a whole section of the wrong type
        doc.update(draw(st.dictionaries(st.sampled_from(GARBAGE_KEYS), values, max_size=1)))
    return doc


def overrides():
    key = st.one_of(st.sampled_from([f"model.{k}" for k in MODEL_KEYS] + [f"train.{k}" for k in TRAIN_KEYS]
                                    + [f"task.{k}" for k in TASK_KEYS] + ["name", "model", "train.", "x.y"]),
                    st.sampled_from(GARBAGE_KEYS))
    def dump(v) -> str:
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()

    text = st.one_of(values.map(dump), st.text(max_size=10))
    real = st.sampled_from(sorted(DEFAULTS)).flatmap(lambda k: typed(k).map(lambda v: f"{k}={dump(v)}"))
    item = st.one_of(real, st.tuples(key, text).map(lambda kv: f"{kv[0]}={kv[1]}"), st.text(max_size=10))
    return st.one_of(st.just([]), st.lists(item, min_size=1, max_size=3))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "corpus.txt").write_text("".join("to be or not to be, that is the question.\n"[(5 * i) % 42]
                                             for i in range(3000)))
    (root / "tiny.txt").write_text("x" * 79 + "\n")
    (root / "empty.txt").write_text("  \n")
    (root / "latin1.txt").write_bytes(b"caf\xe9 " * 100)
    return root


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def test_cli_config_path_never_raises(fuzz_dir, monkeypatch):
    monkeypatch.setenv("ARCHLAB_CACHE", str(fuzz_dir / "cache"))
    monkeypatch.setenv("ARCHLAB_MAX_CORPUS_MB", "1")
    corpora = [str(fuzz_dir / n) for n in ("corpus.txt", "corpus.txt", "tiny.txt", "empty.txt", "latin1.txt",
                                           "missing.txt")] + [str(fuzz_dir), "/dev/zero"]
    seen = {0: 0, 2: 0}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="ARCHLAB_FUZZ_EXAMPLES" not in os.environ,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=documents(corpora), sets=overrides(), raw=st.booleans())
    def check(doc, sets, raw):
        path = fuzz_dir / "run.yaml"
        path.write_text(doc if raw and isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True))
        argv = ["train", str(path), "--dry-run", *[f"--set={s}" for s in sets]]
        code, out, err = run_cli(argv)  # an exception escaping main is the traceback this test hunts
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in err, (argv, path.read_text(), err)
        if code == 0:
            plan = json.loads(out)
            assert plan["params"] > 0
        else:
            assert code == 2, (argv, path.read_text(), err)
            assert len(lines) == 1 and lines[0].startswith("archlab train: error: "), (argv, path.read_text(), err)
        seen[code] += 1

    check()
    print(f"fuzz: {seen[0]} accepted, {seen[2]} refused with one line")
    assert seen[2] > 0 and seen[0] > 0, seen  # the generator reaches both outcomes


def test_cli_model_overrides_never_raise(fuzz_dir, monkeypatch):
    """Every small preset with 1-4 `--set model.KEY=VALUE` of the field's own type (so validation gets past
    the type check into the model's own rules, the cost walk and the memory estimate)."""
    monkeypatch.setenv("ARCHLAB_CACHE", str(fuzz_dir / "cache"))
    names = [n for n in preset_names() if preset(n).__class__.__name__ != "CNNConfig" or n.endswith("small")]
    keys = sorted(k for k in DEFAULTS if k.startswith("model."))

    def dump(v) -> str:
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()

    sets = st.lists(st.sampled_from(keys).flatmap(lambda k: typed(k).map(lambda v: f"{k}={dump(v)}")),
                    min_size=1, max_size=4)
    path = fuzz_dir / "model_run.yaml"

    @settings(max_examples=FUZZ_EXAMPLES // 3, deadline=None, derandomize="ARCHLAB_FUZZ_EXAMPLES" not in os.environ,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(name=st.sampled_from(names), items=sets)
    def check(name, items):
        path.write_text(yaml.safe_dump({"model": {"preset": name}, "train": {"batch_size": 2, "eval_batches": 1},
                                        "task": {"name": "causal_lm", "corpus": str(fuzz_dir / "corpus.txt")}}))
        argv = ["train", str(path), "--dry-run", *[f"--set={s}" for s in items]]
        code, out, err = run_cli(argv)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("archlab train: error: ")), \
            (argv, err)

    check()
