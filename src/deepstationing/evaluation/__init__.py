"""Evaluation: segmentation metrics in millimetres and result tables."""

from deepstationing.evaluation.metrics import (
    EMPTY_FLAGS,
    METRIC_NAMES,
    Metrics,
    image_metrics,
    label_map_metrics,
    mask_metrics,
)
from deepstationing.evaluation.report import (
    CSV_COLUMNS,
    MetricRow,
    match_cases,
    read_metrics_csv,
    summary_markdown,
    write_metrics_csv,
    write_summary,
)
from deepstationing.evaluation.surface import SurfaceDistances, surface_distances

__all__ = [
    "CSV_COLUMNS",
    "EMPTY_FLAGS",
    "METRIC_NAMES",
    "MetricRow",
    "Metrics",
    "SurfaceDistances",
    "image_metrics",
    "label_map_metrics",
    "mask_metrics",
    "match_cases",
    "read_metrics_csv",
    "summary_markdown",
    "surface_distances",
    "write_metrics_csv",
    "write_summary",
]
