"""Scoring of held-out station predictions against known truth: metric rows and their mean.

The held-out evaluation of a trained station stage is
:func:`deepstationing.stations.evaluation.evaluate_station_stage`, the margin rules'
:func:`deepstationing.rules.evaluation.evaluate_rules`; both score with these helpers.

Examples
--------
>>> rows = [MetricRow("a", "4R", 0.5, 9.0, 8.0, 1.0), MetricRow("b", "4R", 0.7, 5.0, 4.0, 0.5)]
>>> mean_dsc(rows)
0.6
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from deepstationing import schema
from deepstationing.data.image import Image
from deepstationing.evaluation.metrics import label_map_metrics
from deepstationing.evaluation.report import MetricRow, rows_for_case

__all__ = ["score_stations", "mean_dsc"]


def score_stations(case_id: str, truth: Image, pred: Image) -> list[MetricRow]:
    """Metric rows (DSC, HD, HD95, ASSD) of the 12 stations of one case."""
    metrics = label_map_metrics(truth.array, pred.array, truth.array_spacing,
                                schema.STATIONS.ids)
    return rows_for_case(case_id, metrics, "stations")


def mean_dsc(rows: Iterable[MetricRow]) -> float:
    """Mean DSC over rows, NaN (label in neither map) left out."""
    values = [r.dsc for r in rows if not np.isnan(r.dsc)]
    return float(np.mean(values)) if values else float("nan")
