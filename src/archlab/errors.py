"""The error a user's config mistake raises, and the one-line form of any error (used by archlab.config and
archlab.dotted, which both re-export what they need from here)."""
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
