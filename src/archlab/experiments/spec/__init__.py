"""Experiment specs: what to run and how it is judged — the spec schema (schema), the verdict rule (rule), how a
spec resolves into runs (plans) and a run's identity (identity). This package imports nothing else of
archlab.experiments."""
from archlab.experiments.spec.identity import CODE_EXCLUDE, CODE_HASH_ENV, code_files, code_hash, run_key
from archlab.experiments.spec.plans import ParamCounter, RunPlan, match_parameters, resolve, variant_config
from archlab.experiments.spec.rule import GOALS, Rule, parse_rule
from archlab.experiments.spec.schema import (
    CALIBRATION_DIR,
    EXPECTS,
    KINDS,
    PROFILES,
    SPECS_DIR,
    Comparison,
    ExperimentSpec,
    Quote,
    builtin_specs,
    calibration_specs,
    load_spec,
    spec_from_dict,
)

__all__ = ["CALIBRATION_DIR", "CODE_EXCLUDE", "CODE_HASH_ENV", "EXPECTS", "GOALS", "KINDS", "PROFILES", "SPECS_DIR",
           "Comparison", "ExperimentSpec", "ParamCounter", "Quote", "Rule", "RunPlan", "builtin_specs",
           "calibration_specs", "code_files", "code_hash", "load_spec", "match_parameters", "parse_rule", "resolve",
           "run_key", "spec_from_dict", "variant_config"]
