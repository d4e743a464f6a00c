"""``edgesr check`` and ``edgesr report``: does a model fit a device's budget, and the page
that shows it.

Budgets are YAML files (shipped ones: ``available_budgets()``); a check compares profile and
evaluation results (or a compress run's stages) against one, line by line with margins.
"""

from __future__ import annotations

from edgesr.check.budget import (
    Budget,
    BudgetFailed,
    CheckLine,
    CheckResult,
    MeasurementMissing,
    Measurements,
    available_budgets,
    check_budget,
    check_compress_run,
    load_budget,
    load_check_json,
    measurements_from_results,
    read_results,
    write_check_json,
)
from edgesr.check.report import build_report, write_report

__all__ = [
    "Budget",
    "BudgetFailed",
    "CheckLine",
    "CheckResult",
    "MeasurementMissing",
    "Measurements",
    "available_budgets",
    "build_report",
    "check_budget",
    "check_compress_run",
    "load_budget",
    "load_check_json",
    "measurements_from_results",
    "read_results",
    "write_check_json",
    "write_report",
]
