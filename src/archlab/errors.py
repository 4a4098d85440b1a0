"""The errors a user can cause (a config mistake, a bad checkpoint), and the one-line form of any error
(archlab.config and archlab.dotted re-export ConfigError and one_line from here)."""
from __future__ import annotations

import yaml


class ConfigError(ValueError):
    """A config names an unknown field, holds a bad value, or combines values that cannot work."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (YAML errors span several: problem, then where)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if isinstance(error, yaml.YAMLError) and problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not match what is being loaded."""
