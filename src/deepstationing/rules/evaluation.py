"""The margin rules scored on cases with known station truth (the baseline of Table 1).

>>> callable(evaluate_rules)
True
"""

from __future__ import annotations

from collections.abc import Sequence

from deepstationing.data.cohort import Case
from deepstationing.data.image import Image, read_image
from deepstationing.evaluation.heldout import score_stations
from deepstationing.evaluation.report import MetricRow
from deepstationing.rules.inference import rule_stations

__all__ = ["evaluate_rules"]


def evaluate_rules(cases: Sequence[Case], organ_maps: dict[str, Image] | None = None
                   ) -> list[MetricRow]:
    """The margin rules on ``cases``: from ``organ_maps[case.id]`` (e.g. predicted organs),
    else from the cases' ground-truth organs."""
    rows: list[MetricRow] = []
    for case in cases:
        organs = (organ_maps or {}).get(case.id) or read_image(case.organs, label=True)
        result = rule_stations(organs)
        rows += score_stations(case.id, read_image(case.stations, label=True), result.stations)
    return rows
