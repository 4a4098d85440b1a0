"""Fuzz: `archlab cost` arguments and model-config values, and experiment spec files (random mutations of a valid
toy spec: wrong types, missing keys, negative numbers, unknown keys). Every input exits 0, or exits 2 with exactly
one line on stderr — never a traceback. (A spec whose toy runs fail exits 1 after its summary: the sweep's rule.)

In-process `archlab.cli.main` with capsys; bounded (`max_examples`, no deadline) so each test stays within ~20 s on
one CPU core; ARCHLAB_FUZZ_EXAMPLES=N runs a longer hunt.
"""
from __future__ import annotations

import copy
import itertools
import os

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archlab.cli import main  # noqa: E402
from archlab.config import flatten, to_dict  # noqa: E402
from archlab.models import preset  # noqa: E402

SCALE = int(os.environ.get("ARCHLAB_FUZZ_EXAMPLES", "0")) or None
SETTINGS = dict(deadline=None, derandomize=SCALE is None,  # CI: the same examples every run; a hunt: random
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

numbers = st.one_of(st.integers(-5, 300), st.sampled_from([0, 1, 2, 7, 33, 64, 1024, 2**31, 10**12, -1]),
                    st.floats(allow_nan=True, allow_infinity=True))
texts = st.one_of(numbers.map(str), st.sampled_from(["", " ", "abc", "1e3", "1e20", "0x10", "nan", "-inf", "2.5",
                                                     "1_000", "--batch", "[", "{a: 1"]), st.text(max_size=6))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8),
                    st.sampled_from(["none", "rope", "post", "swiglu", "cpu", "1e-3", "[", "{"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=4), inner, max_size=2)),
                      max_leaves=5)

COST_MODELS = ["gpt-tiny", "llama-tiny", "mamba-tiny", "cnn-small", "mixer-lstm-tiny", "bert-tiny", "nope", ""]
_count = itertools.count()


def _exits_cleanly(argv: list[str], capsys, allow: tuple[int, ...] = (0, 2)):
    """Run the CLI; check the exit status and that stderr holds no traceback (one line on exit 2): (rc, output)."""
    capsys.readouterr()
    rc = main(argv)
    out = capsys.readouterr()
    assert rc in allow, (argv, rc, out.err[-2000:])
    assert "Traceback" not in out.err, (argv, out.err[-2000:])
    if rc == 2:
        assert out.err.count("\n") == 1 and out.err.startswith(f"archlab {argv[0]}: error: "), (argv, out.err)
    return rc, out


@st.composite
def cost_argv(draw) -> list[str]:
    argv = ["cost", draw(st.sampled_from(COST_MODELS))]
    for flag in ("--batch", "--seq-len", "--context", "--image-size"):
        if draw(st.booleans()):
            argv.append(f"{flag}={draw(texts)}")  # FLAG=VALUE: a value may start with '-'

    if draw(st.booleans()):
        argv.append("--dtype=" + draw(st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp64", "x"])))
    if draw(st.booleans()):
        argv.append("--device=" + draw(st.sampled_from(["h100-sxm", "a100-sxm", "cpu", "tpu", ""])))
    argv += [f for f in ("--full", "--json", "--causal-half") if draw(st.booleans())]
    return [a for a in argv if a != ""]


@settings(max_examples=SCALE or 40, **SETTINGS)
@given(argv=cost_argv())
def test_cost_arguments_never_raise(argv, capsys):
    _exits_cleanly(argv, capsys)


MODEL_KEYS = sorted(flatten(to_dict(preset("llama-tiny")))) + ["preset", "d_modle", "ffn..d_ff", ""]


@settings(max_examples=SCALE or 60, **SETTINGS)
@given(base=st.sampled_from(["llama-tiny", "gpt-tiny", "mamba-tiny", "cnn-small"]),
       changes=st.dictionaries(st.sampled_from(MODEL_KEYS), values, min_size=1, max_size=2))
def test_cost_config_values_never_raise(base, changes, tmp_path, capsys):
    path = tmp_path / f"model{next(_count)}.yaml"
    try:
        path.write_text(yaml.safe_dump({"preset": base, **changes}, allow_unicode=True))
    except yaml.YAMLError:
        return
    _exits_cleanly(["cost", str(path), "--json"], capsys)


TOY_SPEC = {"name": "toy_fuzz", "seed": "000", "quote": "a toy claim", "runner": "toy",
            "base": {"toy": {"quality": 1.0, "noise": 0.01}}, "variants": {"base": {}, "worse": {"toy.quality": 1.5}},
            "seeds": [0, 1], "budget": {"steps": 5}, "metric": "val_loss", "goal": "min",
            "compare": [{"variant": "worse", "expect": "worse"}], "rule": {"min_effect": 0.1}}
PATHS = [("name",), ("seed",), ("quote",), ("runner",), ("base",), ("base", "toy"), ("variants",),
         ("variants", "worse"), ("variants", "base"), ("seeds",), ("budget",), ("budget", "steps"), ("metric",),
         ("goal",), ("compare",), ("compare", 0), ("compare", 0, "variant"), ("compare", 0, "expect"), ("rule",),
         ("rule", "min_effect"), ("kind",), ("profiles",), ("match_params",), ("metrics",), ("checks",),
         ("lr_sweep",), ("title",), ("family",)]
mutation = st.tuples(st.sampled_from(["delete", "set", "unknown", "negative"]), st.sampled_from(PATHS), values)


def _mutate(spec: dict, kind: str, path: tuple, value) -> dict:
    """spec with one mutation at `path` (left as it is where an earlier mutation removed the path)."""
    spec = copy.deepcopy(spec)
    parent: object = spec
    for key in path[:-1]:
        parent = _child(parent, key)
    last = path[-1]
    if _child(parent, last) is _MISSING and not (isinstance(parent, dict) and kind == "set"):
        return spec
    if kind == "delete" and isinstance(parent, dict):
        parent.pop(last, None)
    elif kind == "unknown":
        target = parent[last]
        (target if isinstance(target, dict) else spec)["no_such_key"] = value
    elif kind == "negative":
        parent[last] = -abs(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1
    elif kind == "set":
        parent[last] = value
    return spec


_MISSING = object()


def _child(parent, key):
    if isinstance(parent, dict):
        return parent.get(key, _MISSING)
    if isinstance(parent, list) and isinstance(key, int) and -len(parent) <= key < len(parent):
        return parent[key]
    return _MISSING


@settings(max_examples=SCALE or 40, **SETTINGS)
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_experiment_specs_never_raise(mutations, tmp_path, capsys):
    spec = TOY_SPEC
    for m in mutations:
        spec = _mutate(spec, *m)
    n = next(_count)
    path = tmp_path / f"spec{n}.yaml"
    try:
        path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    except yaml.YAMLError:
        return
    rc, out = _exits_cleanly(["experiment", str(path), "--jobs", "0", "--steps", "1", "--no-report",
                              "--out", str(tmp_path / f"out{n}")], capsys, allow=(0, 1, 2))
    if rc == 1:  # only a sweep whose (toy) runs failed may exit 1, after its summary
        assert "run(s) failed (their errors are in the summary above); exit status 1" in out.out, out.out[-2000:]
