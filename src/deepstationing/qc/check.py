"""Run every QC check on one predicted case: :func:`check_case`.

Inputs are the CT and the predicted organ and station maps on its grid (what ``predict``
writes), and optionally the training cohort's :class:`~deepstationing.qc.reference.Reference`.
Landmarks (carina, tracheal midline), the mediastinal envelope and the margin rules are
computed from the main piece of each predicted organ; the islands are the ``fragments``
finding's business.
Checks that need what is missing are skipped and say why (no organ map: no mediastinum,
sides or rules; no carina: no positions; no reference: no cohort ranges).

Examples
--------
A phantom case's own truth is plausible; the same truth mirrored left-right (CT and labels
flipped, the labels not swapped: the anatomy of a mirrored patient, labelled as a network
that follows the anatomy would) is not, and the margin rules disagree with it too:

>>> from deepstationing.phantom import generate_case
>>> case = generate_case(1, preset="small", spacing=(5.6, 5.6, 10.0))
>>> check_case(case.ct, case.organs, case.stations).verdict
'ok'
>>> flip = lambda img: img.with_array(img.array[:, :, ::-1])
>>> report = check_case(flip(case.ct), flip(case.organs), flip(case.stations))
>>> report.verdict, [f.name for f in report.fired]
('implausible', ['station_side', 'organ_side', 'rules_agreement'])
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from deepstationing.data.image import Image, check_same_geometry
from deepstationing.qc import findings as fd
from deepstationing.qc.body import body_mask
from deepstationing.qc.findings import Finding, Skip
from deepstationing.qc.measures import (
    LATERAL_STATIONS,
    main_pieces,
    measure_labels,
    mediastinal_envelope,
    side_offsets,
)
from deepstationing.qc.reference import Reference
from deepstationing.qc.thresholds import DEFAULT_THRESHOLDS, Thresholds
from deepstationing.qc.verdict import QcReport
from deepstationing.rules.inference import rule_stations
from deepstationing.rules.landmarks import compute_landmarks
from deepstationing.schema import ORGANS, STATIONS

__all__ = ["check_case", "NO_REFERENCE"]

#: Why the cohort-range checks are skipped when no reference is given.
NO_REFERENCE = "no training-cohort reference (the model folder has no qc_reference.json)"


def check_case(ct: Image, organs: Image | None, stations: Image, *,
               reference: Reference | None = None, no_reference: str = NO_REFERENCE,
               thresholds: Thresholds = DEFAULT_THRESHOLDS) -> QcReport:
    """Check one predicted case; returns its :class:`~deepstationing.qc.verdict.QcReport`.

    Args:
        ct: the CT (HU).
        organs: the predicted 22-organ map on the CT's grid, or ``None``.
        stations: the predicted 12-station map on the CT's grid.
        reference: the training cohort's statistics (``None``: cohort checks skipped).
        no_reference: the reason given when ``reference`` is ``None``.
        thresholds: the limits (:data:`~deepstationing.qc.thresholds.DEFAULT_THRESHOLDS`).

    Raises:
        InputError: a label map's geometry differs from the CT's.
    """
    t0 = time.perf_counter()
    t = thresholds
    check_same_geometry(ct, stations, reference_name="CT", other_name="station map")
    if organs is not None:
        check_same_geometry(ct, organs, reference_name="CT", other_name="organ map")
    out: list[Finding] = []
    skipped: list[Skip] = []
    vox_ml = float(np.prod(ct.spacing)) / 1000.0
    st = stations.array
    org = organs.array if organs is not None else None
    maps = [(st, list(STATIONS))] + ([(org, list(ORGANS))] if org is not None else [])
    out.append(fd.outside_mask("outside_body", maps, body_mask(ct), vox_ml, t.outside_body,
                               t.min_ml))
    measures = {"stations": measure_labels(stations, STATIONS)}
    if organs is not None:
        measures["organs"] = measure_labels(organs, ORGANS)
    no_organs = "no organ map"
    carina = None
    if organs is None:
        for name in ("outside_mediastinum", "station_side", "organ_side", "missing_organs",
                     "rules_agreement"):
            skipped.append(Skip(name, no_organs))
    else:
        carina = _organ_checks(ct, organs, stations, measures, reference, t, vox_ml, out,
                               skipped)
    out.append(fd.fragments(measures, reference, t))
    out.append(fd.missing("missing_stations", "stations", set(measures["stations"]), reference,
                          t.missing_stations, t.presence))
    if reference is None:
        skipped += [Skip("volume_range", no_reference), Skip("position_range", no_reference)]
    else:
        out.append(fd.volume_range(measures, reference, t.volume_ratio, t.min_ml))
        if carina is None:
            skipped.append(Skip("position_range", no_organs if organs is None else
                                "no carina (no trachea in the organ map)"))
        else:
            out.append(fd.position_range(measures, carina, reference, t.position, t.min_ml))
    order = {name: i for i, name in enumerate(FINDING_ORDER)}
    out.sort(key=lambda f: order.get(f.name, len(order)))
    inputs = {"reference": None if reference is None else
              {"file": str(reference.path), "cases": reference.n_cases}}
    return QcReport(out, skipped, inputs, time.perf_counter() - t0)


def _organ_checks(ct: Image, organs: Image, stations: Image, measures: dict,
                  reference: Reference | None, t: Thresholds, vox_ml: float,
                  out: list[Finding], skipped: list[Skip]) -> tuple[float, float, float] | None:
    """The checks that need the organ map (appended to ``out`` or ``skipped``).

    Returns the carina (world mm, LPS), ``None`` when the landmarks found none.
    """

    def add(finding: Finding | None, name: str, reason: str) -> None:
        if finding is None:
            skipped.append(Skip(name, reason))
        else:
            out.append(finding)

    st = stations.array
    anatomy = main_pieces(organs, ORGANS)  # landmarks without the islands
    with warnings.catch_warnings():  # an oblique CT is reported by predict already
        warnings.simplefilter("ignore")
        lm = compute_landmarks(anatomy)
    env = mediastinal_envelope(anatomy)
    if env is None:  # no lung at all: nowhere is between the lungs
        env = np.zeros(ct.shape, bool)
    out.append(fd.outside_mask("outside_mediastinum", [(st, list(STATIONS))], env, vox_ml,
                               t.outside_mediastinum, t.min_ml))
    x_mid = lm.lines.get("x_mid") if lm.lines else None
    midline = x_mid is not None and bool(np.isfinite(x_mid).all())
    no_midline = "no tracheal midline (no trachea, bronchi or spine in the organ map)"
    add(fd.side("station_side", side_offsets(stations, STATIONS, LATERAL_STATIONS, lm),
                measures["stations"], t.station_side, t.min_ml), "station_side",
        "no lateral station" if midline else no_midline)
    add(fd.side("organ_side", side_offsets(organs, ORGANS, t.side_organs, lm),
                measures["organs"], t.organ_side, t.min_ml), "organ_side",
        "no lateral organ" if midline else no_midline)
    out.append(fd.missing("missing_organs", "organs", set(measures["organs"]), reference,
                          t.missing_organs, t.presence))
    if "trachea" in measures["organs"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rules = rule_stations(anatomy, ct).stations.array
        out.append(fd.rules_agreement(st, rules, t.rules_agreement))
    else:  # reported by missing_organs; the rules place almost no station without it
        skipped.append(Skip("rules_agreement", "no trachea in the organ map: the rules "
                                               "place their stations from it"))
    return lm.carina_lps


#: The order findings are listed in.
FINDING_ORDER = ("outside_body", "outside_mediastinum", "station_side", "organ_side",
                 "fragments", "missing_stations", "missing_organs", "volume_range",
                 "position_range", "rules_agreement")
