"""Every registered component, the day it is registered: builds from its own config, runs in the model,
is causal where it must be, and its cost equals FlopCounterMode's count. Names, sections and errors come
from the registry. (Decoding equals the full forward for every mixer: tests/mixers/test_mixer_models.py.)"""
import dataclasses

import pytest
import torch

from archlab import registry
from archlab.config import ConfigError, from_dict
from archlab.cost.crosscheck import crosscheck
from archlab.models import build_model
from archlab.models.transformer_config import MixerConfig, TransformerConfig

MIXERS = registry.names("mixer")


def _cfg(**sections):
    base = dict(vocab_size=64, d_model=16, n_layers=2, max_seq_len=32, attn={"n_heads": 2},
                norm={"kind": "rmsnorm"}, pos={"kind": "none"})
    return from_dict(TransformerConfig, {**base, **sections})


def test_the_builtin_components_are_registered():
    assert {"attention", "mamba", "rnn", "lstm", "gru", "dilated_conv", "token_mixing", "ema"} <= set(MIXERS)
    assert {"learned", "none", "rope", "sinusoidal"} <= set(registry.names("position"))
    assert {"layernorm", "rmsnorm"} <= set(registry.names("norm"))


@pytest.mark.parametrize("kind", MIXERS)
def test_mixer_builds_runs_and_is_causal(kind):
    torch.manual_seed(0)
    cfg = _cfg(mixer={"kind": kind}, pos={"kind": "rope" if kind == "attention" else "none"})
    model = build_model(cfg).double().eval()
    entry = registry.entry("mixer", kind)
    assert all(isinstance(b.sub["mixer"], entry.builder) for b in model.decoder.blocks)
    x = torch.randint(0, 64, (2, 12))
    y = model(x)
    assert y.shape == (2, 12, 64) and torch.isfinite(y).all()
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % 64
    y2 = model(x2)
    torch.testing.assert_close(y2[:, :7], y[:, :7], atol=1e-12, rtol=1e-12)  # the past never sees the future
    assert not torch.allclose(y2[:, 7:], y[:, 7:])


@pytest.mark.parametrize("kind", MIXERS)
def test_mixer_cost_equals_flop_counter(kind):
    cc = crosscheck(_cfg(mixer={"kind": kind}), batch=2, seq_len=16)
    assert cc.ok(0.005), cc.line()
    assert registry.cost_for(registry.entry("mixer", kind).builder) is not None  # priced, not just counted


@pytest.mark.parametrize("kind", registry.names("position"))
def test_position_builds_and_acts_where_it_says(kind):
    model = build_model(_cfg(pos={"kind": kind}))
    pos = model.pos_embed if model.pos_embed is not None else model.rope
    assert (pos is None) == (kind == "none")
    if pos is not None:
        assert {"embeddings": model.pos_embed, "qk": model.rope}[pos.applies_to] is pos
    x = torch.randint(0, 64, (2, 12))
    assert torch.isfinite(model(x)).all()
    assert crosscheck(_cfg(pos={"kind": kind}), seq_len=16).ok(0.005)


@pytest.mark.parametrize("kind", registry.names("norm"))
def test_norm_builds_and_runs(kind):
    model = build_model(_cfg(norm={"kind": kind}))
    assert type(model.decoder.final_norm) is type(registry.build("norm", kind, model.cfg.norm, registry.Context(16)))
    assert torch.isfinite(model(torch.randint(0, 64, (2, 5)))).all()


def test_every_mixer_section_is_a_field_of_the_mixer_config():
    fields = {f.name: f.type for f in dataclasses.fields(MixerConfig)}
    for kind in MIXERS:
        e = registry.entry("mixer", kind)
        if e.section.startswith("mixer."):
            assert fields[e.section.removeprefix("mixer.")] is e.config
        else:
            assert isinstance(getattr(_cfg(), e.section), e.config)


@pytest.mark.parametrize("sections,message", [
    ({"mixer": {"kind": "mamab"}}, r"mixer.kind='mamab' is not allowed; expected one of \[.*\]; did you mean 'mamba'"),
    ({"mixer": {"pattern": ["attention", "lstn"]}}, r"mixer.pattern\[1\]='lstn'.*did you mean 'lstm'"),
    ({"pos": {"kind": "rop"}}, r"pos.kind='rop'.*did you mean 'rope'"),
    ({"norm": {"kind": "rmsnrom"}}, r"norm.kind='rmsnrom'.*did you mean 'rmsnorm'"),
    ({"mixer": {"ssm": {"scan": "chunk"}}}, r"mixer.ssm.scan='chunk'.*did you mean 'chunked'"),
    ({"mixer": {"ssm": {"selective": ["delta", "b"]}}}, r"mixer.ssm.selective\[1\]='b'"),
    ({"ffn": {"activation": "swiglo"}}, r"ffn.activation='swiglo'.*did you mean 'swiglu'"),
])
def test_bad_names_are_one_line_naming_the_field(sections, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**sections)


def test_registering_a_name_twice_is_refused():
    with pytest.raises(KeyError, match="registered twice"):
        registry.register("mixer", "ema")(lambda cfg, ctx: None)


def test_the_how_to_page_shows_the_example_mixer_as_it_is():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "how-to-add-a-component.md").read_text(encoding="utf-8")
    source = (root / "src" / "archlab" / "nn" / "ema.py").read_text(encoding="utf-8")
    assert f"```python\n{source.rstrip()}\n```" in page


def test_components_do_not_depend_on_the_models_package():
    import subprocess
    import sys

    code = "import sys, archlab.nn; print(sorted(m for m in sys.modules if m.startswith('archlab.models')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
