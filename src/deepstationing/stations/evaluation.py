"""Held-out evaluation of a trained station stage on its fold's test cases (known truth).

A cross-validated number must come from models that never saw the case: the fold-``K`` test
cases are predicted by the fold-``K`` models only (station stage *and* organ cascade), never
by the ensemble of all folds that ``deepstationing predict`` uses by default.

Organ channels at test time (``organs``):

* ``"model"`` — predicted by the model's own organ stages (fold ``K``), the real condition;
* ``"gt"`` — the case's ground-truth organs (the "+22 organ GT" setting, and the learning
  benchmark).

>>> ORGAN_SOURCES
('model', 'gt')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deepstationing.data.cohort import Case
from deepstationing.data.image import Image, read_image
from deepstationing.evaluation.heldout import score_stations
from deepstationing.evaluation.report import MetricRow
from deepstationing.stations.network import StationParser
from deepstationing.training.provenance import check_held_out

__all__ = ["evaluate_station_stage", "check_held_out_by", "ORGAN_SOURCES"]

ORGAN_SOURCES = ("model", "gt")


def check_held_out_by(parser: StationParser, cases: Sequence[Case], fold: int,
                      organs: str = "model") -> None:
    """Refuse cases that fold ``fold``'s station stage (and, with ``organs="model"``, its
    organ stages) did not hold out: what each fold saw is in the model folder
    (:mod:`deepstationing.training.provenance`), whatever the cases' fold labels say."""
    model = parser.model
    stages = [parser.folder]
    if organs == "model" and parser.organs is not None:
        stages += list(parser.organs.stages)
    for stage in stages:
        check_held_out(model.fold_record(stage, fold), [(c.id, c.ct) for c in cases],
                       where=model.root, what=f"fold {fold} of stage '{stage}'")


def evaluate_station_stage(model, cases: Sequence[Case], fold: int, *,
                           stations: str | None = None, organs: str = "model",
                           checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
                           threads: int | None = None,
                           progress: Callable[[str], None] | None = None,
                           keep: Callable[[Case, Image | None, Image], None] | None = None
                           ) -> list[MetricRow]:
    """Predict and score the held-out ``cases`` of ``fold`` with the fold-``fold`` models.

    Args:
        model: a :class:`~deepstationing.training.model.ModelFolder` (or its path).
        cases: the fold's test cases (with ``stations`` truth; ``organs`` when ``organs="gt"``).
        fold: the held-out fold; only its models are used.
        stations: which station stage (``None``: the only one).
        organs: ``"model"`` (the model's own organ stages) or ``"gt"``.
        checkpoint: the station stage's checkpoint file (snapshots for learning curves).
        keep: called with ``(case, organs, stations)`` for every prediction (e.g. to save
            them).
    """
    if organs not in ORGAN_SOURCES:
        raise ValueError(f"organs must be one of {ORGAN_SOURCES}, got {organs!r}")
    parser = StationParser(model, [fold], stations=stations, checkpoint=checkpoint,
                           device=device, threads=threads)
    check_held_out_by(parser, cases, fold, organs)
    rows: list[MetricRow] = []
    for n, case in enumerate(cases, 1):
        if progress:
            progress(f"held-out case {n}/{len(cases)} ({case.id})")
        ct = read_image(case.ct)
        given = read_image(case.organs, label=True) if organs == "gt" else None
        organ_map, pred = parser.predict(ct, given)
        if keep:
            keep(case, organ_map, pred)
        rows += score_stations(case.id, read_image(case.stations, label=True), pred)
    return rows
