"""Judging an experiment's runs: summary statistics (stats), the paired, gated decision rule (verdict), the
analysis of a spec's finished runs into comparisons and a verdict (analysis, results), and the cost checks that
are decided by computation instead of training (cost_checks)."""
