"""The CLI's error contract: a user mistake (archlab.errors.UserError and its kin, or an OS error about a path)
is one `archlab CMD: error: …` line, exit 2; any other exception is a bug in archlab: its traceback, then one
line saying what to put in a report (version, command line, traceback), exit 1."""
from __future__ import annotations

import pytest

import archlab.commands.errata as errata_cmd
from archlab import __version__
from archlab.cli import main
from archlab.errors import CheckpointError, ConfigError, MissingFileError, UserError


def _raising(error: BaseException):
    def run(args):
        raise error
    return run


@pytest.mark.parametrize("error", [ConfigError("train.lr=-1 must be > 0"), CheckpointError("checkpoint 'x' is corrupt"),
                                   MissingFileError("checkpoint path 'x' does not exist"), UserError("bad\nvalue")])
def test_user_mistakes_are_one_line(monkeypatch, capsys, error):
    monkeypatch.setattr(errata_cmd, "run", _raising(error))
    assert main(["errata"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archlab errata: error: ") and "Traceback" not in err


def test_an_os_error_about_a_path_is_one_line(monkeypatch, capsys):
    def run(args):
        open("/nonexistent/archlab-file.txt")
    monkeypatch.setattr(errata_cmd, "run", run)
    assert main(["errata"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such file or directory: '/nonexistent/archlab-file.txt'" in err


def test_user_error_types_stay_value_errors():
    """Library code that catches ValueError keeps working."""
    for cls in (UserError, ConfigError, CheckpointError, MissingFileError):
        assert issubclass(cls, ValueError)
    assert issubclass(MissingFileError, FileNotFoundError)


@pytest.mark.parametrize("error", [ValueError("math domain error"), KeyError("step"), RuntimeError("shape mismatch"),
                                   TypeError("unsupported operand"), FileNotFoundError("no filename given")])
def test_anything_else_is_reported_as_a_bug(monkeypatch, capsys, error):
    monkeypatch.setattr(errata_cmd, "run", _raising(error))
    assert main(["errata"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert any(line.startswith(type(error).__name__) for line in err[:-1])
    assert err[-1].startswith(f"archlab errata: this is a bug in archlab (not a mistake of yours): "
                              f"{type(error).__name__}: ")
    assert err[-1].endswith(f"Please report it with the archlab version ({__version__}), the full command line and "
                            "the traceback above.")


def test_out_of_memory_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(errata_cmd, "run", _raising(MemoryError()))
    assert main(["errata"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archlab errata: error: out of memory (MemoryError)")
