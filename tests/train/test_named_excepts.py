"""Broad `except Exception` replaced: each handler names what it expects, reports what it skipped, and lets
anything else (a bug, MemoryError) through."""
from __future__ import annotations

import json
import sys
import types

import pytest
import tokenizers

from archlab.data.tokenizers import BPETokenizer, TokenizerError
from archlab.interop import gguf as gguf_io
from archlab.interop import hf_io
from archlab.models import preset
from archlab.train import preflight
from archlab.train.metrics_log import MetricsLog

CFG = preset("char-llama")


def _walk_raising(error):
    def walk(*args, **kwargs):
        raise error
    return walk


def test_preflight_says_when_it_cannot_price_the_activations(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "walk", _walk_raising(NotImplementedError("no meta kernel for aten::foo")))
    est = preflight.estimate_training_memory(CFG, batch=2, seq_len=16)
    assert est.activations == 0 and "no meta kernel for aten::foo" in est.unpriced
    run_cfg = types.SimpleNamespace(train=types.SimpleNamespace(batch_size=2, precision="fp32"))
    task = types.SimpleNamespace(block_size=16)
    preflight.check_memory(run_cfg, task, CFG, "cpu", available=2**50)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archlab: memory preflight: activations not counted: the cost walk "
                                                   "cannot run this model on the meta device (NotImplementedError: ")
    assert err.rstrip().endswith("; the estimate covers weights, gradients and AdamW state only")


def test_preflight_does_not_hide_a_bug_in_the_cost_walk(monkeypatch):
    monkeypatch.setattr(preflight, "walk", _walk_raising(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        preflight.estimate_training_memory(CFG, batch=2, seq_len=16)


def _fake_tensorboard(monkeypatch, error):
    class SummaryWriter:
        def __init__(self, logdir):
            raise error

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))


def test_metrics_log_reports_an_unwritable_tensorboard_folder(tmp_path, monkeypatch, capsys):
    _fake_tensorboard(monkeypatch, PermissionError(13, "Permission denied"))
    log = MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "tb")
    log.write({"kind": "train", "step": 1, "loss": 1.0})
    log.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 1.0
    err = capsys.readouterr().err
    assert err == (f"archlab: TensorBoard scalars are off for this run: cannot write {str(tmp_path / 'tb')!r} "
                   "(Permission denied); metrics.jsonl has every value\n")


def test_metrics_log_lets_a_tensorboard_bug_through(tmp_path, monkeypatch):
    _fake_tensorboard(monkeypatch, ValueError("a bug in the writer"))
    with pytest.raises(ValueError, match="a bug in the writer"):
        MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "tb")


def test_metrics_log_without_tensorboard_is_jsonl_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails: not installed
    log = MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "tb")
    assert log.tb is None
    log.close()
    assert capsys.readouterr().err == ""


class _RaisingTokenizer:
    error: BaseException = Exception("key must be a string at line 1 column 2")

    @classmethod
    def from_file(cls, path):
        raise cls.error


@pytest.mark.parametrize("load", [BPETokenizer.from_file, hf_io.load_tokenizer])
def test_tokenizer_files_memory_error_is_not_called_invalid(tmp_path, monkeypatch, load):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "BPE"}}')  # JSON: hf_io reads it before handing it to the library
    monkeypatch.setattr(tokenizers, "Tokenizer", _RaisingTokenizer)
    monkeypatch.setattr(hf_io, "Tokenizer", _RaisingTokenizer, raising=False)
    target = tmp_path if load is hf_io.load_tokenizer else path
    with pytest.raises((TokenizerError, hf_io.InteropError), match="not a valid"):
        load(target)
    monkeypatch.setattr(_RaisingTokenizer, "error", MemoryError())
    with pytest.raises(MemoryError):
        load(target)


def test_gguf_reader_bug_is_not_called_a_bad_file(tmp_path, monkeypatch):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(hf_io.InteropError, match="is not a readable GGUF file"):
        gguf_io._cached_reader(str(path), 1, 4)
    monkeypatch.setattr(gguf, "GGUFReader", lambda p: (_ for _ in ()).throw(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        gguf_io._cached_reader(str(path), 2, 4)
