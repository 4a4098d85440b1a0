"""The errors a user can cause (a config mistake, a bad checkpoint, a missing file), and the one-line form of any
error (archlab.config and archlab.dotted re-export ConfigError and one_line from here).

`UserError` is the one type the CLI turns into a single `archlab CMD: error: …` line (exit 2): something the user
can fix. Every other exception is a bug in archlab and is shown with its traceback. Each class subclasses
ValueError, so library code that catches ValueError keeps working.
"""
from __future__ import annotations

import yaml


class UserError(ValueError):
    """A mistake the user can fix (a value, a file, a combination of options): reported as one line."""


class ConfigError(UserError):
    """A config names an unknown field, holds a bad value, or combines values that cannot work."""


class CheckpointError(UserError):
    """A checkpoint is missing, incomplete, corrupt, or does not match what is being loaded."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (also a FileNotFoundError)."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (YAML errors span several: problem, then where)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if isinstance(error, yaml.YAMLError) and problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
