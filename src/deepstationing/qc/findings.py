"""The findings: each check turns measurements into a named number, a limit and a severity.

Every check returns a :class:`Finding` (also when nothing is wrong: severity ``"ok"``, so
``qc.json`` shows the values of the silent checks too), or a :class:`Skip` that says why it
could not run (no organ map, no carina, no reference).

============================  =================================================  ======
finding                       value                                              unit
============================  =================================================  ======
``outside_body``              worst label: share of its voxels outside the body  %
``outside_mediastinum``       worst station: share outside the mediastinal       %
                              envelope (between the lungs, above the diaphragm)
``station_side``              worst lateral station: mean distance from the      mm
                              tracheal midline towards its own side
``organ_side``                the same for the lateral organs                    mm
``fragments``                 worst label: share of its volume in islands        %
                              > 10 mm from its largest piece, beyond the cohort
``missing_stations``          stations the training cases have, absent here      count
``missing_organs``            organs the training cases have, absent here        count
``volume_range``              worst label: times outside the cohort's volumes    ratio
``position_range``            worst label: centroid (from the carina) outside    mm
                              the cohort's box
``rules_agreement``           mean Dice of the stations with the margin rules    %
                              on the predicted organs
============================  =================================================  ======

Examples
--------
>>> from deepstationing.qc.thresholds import Limit
>>> f = judge("outside_body", 12.5, "%", Limit(2.0, 10.0), ["lung_r 12.5 % (40.1 ml)"])
>>> f.severity, f.threshold, f.line()
('implausible', 10.0, 'outside_body 12.5 % > 10 (lung_r 12.5 % (40.1 ml))')
>>> judge("station_side", 8.0, "mm", Limit(0.0, -5.0, "below")).severity
'ok'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from deepstationing.qc.measures import LabelMeasure
from deepstationing.qc.reference import Reference
from deepstationing.qc.thresholds import Limit, Thresholds
from deepstationing.schema import ORGANS, STATIONS

__all__ = ["Finding", "Skip", "judge", "outside_mask", "side", "fragments", "missing",
           "volume_range", "position_range", "rules_agreement"]


@dataclass
class Finding:
    """One check's result.

    Attributes:
        name: the check (``"outside_body"``).
        value: what it measured (rounded).
        unit: ``"%"``, ``"mm"``, ``"count"`` or ``"ratio"``.
        threshold: the limit that was crossed (the ``check`` limit when none was).
        direction: ``"above"`` or ``"below"``: which side of the limit fires.
        severity: ``"ok"``, ``"check"`` or ``"implausible"``.
        labels: what it concerns, worst first (``"4R 31 % (2.1 ml)"``).
    """

    name: str
    value: float
    unit: str
    threshold: float
    direction: str
    severity: str
    labels: list[str] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return self.severity != "ok"

    def line(self) -> str:
        """``outside_body 12.5 % > 10 (lung_r 12.5 % (40.1 ml))``."""
        unit = "" if self.unit in ("count", "ratio") else f" {self.unit}"
        op = ">" if self.direction == "above" else "<"
        text = f"{self.name} {self.value:g}{unit} {op} {self.threshold:g}"
        if not self.fired:
            text = f"{self.name} {self.value:g}{unit}"
        if self.labels:
            text += f" ({', '.join(self.labels[:3])}{', ...' if len(self.labels) > 3 else ''})"
        return text

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> Finding:
        return cls(**obj)


@dataclass
class Skip:
    """A check that could not run, and why."""

    name: str
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


def judge(name: str, value: float, unit: str, limit: Limit,
          labels: list[str] | None = None) -> Finding:
    """A :class:`Finding` for a measured value against its limit."""
    value = round(float(value), 2)
    sev = limit.severity(value)
    return Finding(name, value, unit, limit.limit_for(sev), limit.direction, sev,
                   list(labels or []))


def _ml(voxels: int, vox_ml: float) -> str:
    return f"{voxels * vox_ml:.1f} ml"


def outside_mask(name: str, maps: list[tuple[np.ndarray, list]], allowed: np.ndarray,
                 vox_ml: float, limit: Limit, min_ml: float) -> Finding:
    """Worst label's share of voxels outside ``allowed``; ``maps`` pairs a label array with
    its labels."""
    worst: list[tuple[float, str]] = []
    outside = ~allowed
    for arr, labels in maps:
        counts = np.bincount(arr.ravel().astype(np.intp), minlength=len(labels) + 1)
        out_counts = np.bincount(arr[outside].astype(np.intp), minlength=len(labels) + 1)
        for lab in labels:
            n, o = int(counts[lab.id]), int(out_counts[lab.id])
            if n and o * vox_ml >= min_ml:
                pct = 100.0 * o / n
                worst.append((pct, f"{lab.key} {pct:.0f} % ({_ml(o, vox_ml)})"))
    worst.sort(reverse=True)
    value = worst[0][0] if worst else 0.0
    fired = [text for pct, text in worst if limit.severity(pct) != "ok"]
    return judge(name, value, "%", limit, fired)


def side(name: str, offsets: dict[str, float], measures: dict[str, LabelMeasure],
         limit: Limit, min_ml: float) -> Finding | None:
    """Worst (smallest) signed offset from the midline among labels of at least
    ``min_ml``; ``None`` when there is none."""
    vals = sorted((v, k) for k, v in offsets.items() if measures[k].ml >= min_ml)
    if not vals:
        return None
    fired = [f"{k} {v:+.0f} mm" for v, k in vals if limit.severity(v) != "ok"]
    return judge(name, vals[0][0], "mm", limit, fired)


def fragments(measures: dict[str, dict[str, LabelMeasure]], reference: Reference | None,
              t: Thresholds) -> Finding:
    """Worst label's island share (%) beyond the largest the cohort has for that label
    (``measures`` by kind; without a reference, the share itself)."""
    worst: list[tuple[float, str]] = []
    for kind, per in measures.items():
        for key, m in per.items():
            if m.ml < t.min_ml or m.far == 0 or key in t.multipart:
                continue
            base = reference.max_far(kind, key) if reference is not None else None
            value = 100.0 * (m.far - (base or 0.0))
            text = f"{key} {100 * m.far:.0f} % in islands"
            if base is not None:
                text += f" (cohort up to {100 * base:.0f} %)"
            worst.append((value, text))
    worst.sort(reverse=True)
    value = max(worst[0][0], 0.0) if worst else 0.0
    fired = [text for v, text in worst if t.fragments.severity(v) != "ok"]
    return judge("fragments", value, "%", t.fragments, fired)


def missing(name: str, kind: str, present: set[str], reference: Reference | None,
            limit: Limit, presence: float) -> Finding:
    """How many labels the training cases have (every label without a reference) are
    absent."""
    labels = ORGANS if kind == "organs" else STATIONS
    expected = [lab.key for lab in labels
                if reference is None or not reference.has_kind(kind)
                or reference.presence(kind, lab.key) >= presence]
    absent = [k for k in expected if k not in present]
    return judge(name, len(absent), "count", limit, absent)


def volume_range(measures: dict[str, dict[str, LabelMeasure]], reference: Reference,
                 limit: Limit, min_ml: float) -> Finding:
    """Worst ratio of a label's volume to the cohort's range (1 inside it)."""
    worst: list[tuple[float, str]] = []
    for kind, per in measures.items():
        for key, m in per.items():
            rng = reference.volume_range(kind, key)
            if rng is None or m.ml < min_ml:
                continue
            lo, hi = rng
            if m.ml > hi:
                ratio, text = m.ml / hi, f"{key} {m.ml:.1f} ml > cohort max {hi:.1f}"
            elif m.ml < lo:
                ratio, text = lo / m.ml, f"{key} {m.ml:.1f} ml < cohort min {lo:.1f}"
            else:
                continue
            worst.append((ratio, text))
    worst.sort(reverse=True)
    value = worst[0][0] if worst else 1.0
    fired = [text for v, text in worst if limit.severity(v) != "ok"]
    return judge("volume_range", value, "ratio", limit, fired)


def position_range(measures: dict[str, dict[str, LabelMeasure]], carina: tuple,
                   reference: Reference, limit: Limit, min_ml: float) -> Finding:
    """Worst distance (mm) of a label's centroid offset from the carina outside the
    cohort's box of offsets."""
    worst: list[tuple[float, str]] = []
    for kind, per in measures.items():
        for key, m in per.items():
            box = reference.offset_box(kind, key)
            if box is None or m.ml < min_ml:
                continue
            off = np.asarray(m.centroid) - np.asarray(carina)
            below, above = box[0] - off, off - box[1]
            d = np.maximum(np.maximum(below, above), 0.0)
            dist = float(np.sqrt((d ** 2).sum()))
            if dist > 0:
                axis = int(np.argmax(d))
                where = ("right", "left", "anterior", "posterior", "inferior",
                         "superior")[2 * axis + int(above[axis] > 0)]
                worst.append((dist, f"{key} {dist:.0f} mm ({where})"))
    worst.sort(reverse=True)
    value = worst[0][0] if worst else 0.0
    fired = [text for v, text in worst if limit.severity(v) != "ok"]
    return judge("position_range", value, "mm", limit, fired)


def rules_agreement(predicted: np.ndarray, rules: np.ndarray, limit: Limit) -> Finding:
    """Mean Dice (%) between the predicted stations and the rules' stations, over the
    stations either of them has."""
    dices = []
    low = []
    for lab in STATIONS:
        a, b = predicted == lab.id, rules == lab.id
        na, nb = int(a.sum()), int(b.sum())
        if na + nb == 0:
            continue
        d = 200.0 * int((a & b).sum()) / (na + nb)
        dices.append(d)
        low.append((d, f"{lab.key} {d:.0f} %"))
    value = float(np.mean(dices)) if dices else 0.0
    sev = limit.severity(value)
    labels = [text for _, text in sorted(low)[:3]] if sev != "ok" else []
    return judge("rules_agreement", value, "%", limit, labels)
