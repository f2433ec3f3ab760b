"""The training cohort's per-label statistics, kept in the model folder for QC.

``MODEL/qc_reference.json`` holds, for every case a stage of the model trained on, the
volume of each organ and station, the position of its centroid relative to the carina
(LPS millimetres: +x patient left, +y posterior, +z superior; so scanner coordinates and
table position do not matter) and the fraction of its volume in islands. QC compares a
prediction with the range these cases span (:class:`Reference`).

:func:`record_training_cases` adds the training cases of a fold; ``train_stage`` calls it
each time it adds a fold to a model. Each case is measured once (a case already in the file
only gets the fold added to its ``trained_in``); the file is merged under a lock and
written atomically, so jobs training folds at the same time do not lose each other's
cases. :func:`read_reference` keeps the cases the given folds trained on, so a fold's
held-out case is never part of its own reference.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from deepstationing.phantom import generate_cohort
>>> tmp = Path(tempfile.mkdtemp())
>>> cohort = generate_cohort(tmp / "ph", 4, preset="small", spacing=(5.6, 5.6, 10.0),
...                          progress=None)
>>> _ = record_training_cases(tmp / "model", cohort, 0)
>>> ref = read_reference(tmp / "model", folds=[0])
>>> ref.n_cases, sorted(ref.case_ids) == sorted(cohort.train_ids(0))
(3, True)
>>> lo, hi = ref.volume_range("stations", "4R")
>>> 0 < lo <= hi
True
>>> read_reference(tmp / "elsewhere") is None
True
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from deepstationing.data.atomic import write_json_atomic
from deepstationing.data.image import Image, read_image
from deepstationing.data.locks import file_lock
from deepstationing.errors import DeepStationingError, InputError
from deepstationing.qc.measures import LabelMeasure, main_pieces, measure_labels
from deepstationing.rules.landmarks import compute_landmarks
from deepstationing.schema import ORGANS, STATIONS

__all__ = ["REFERENCE_FILE", "FORMAT", "Reference", "case_statistics", "record_cases",
           "record_training_cases", "read_reference", "label_entry"]

log = logging.getLogger(__name__)

#: File name of the reference in a model folder.
REFERENCE_FILE = "qc_reference.json"
#: Version of the file's layout.
FORMAT = 1
KINDS = ("organs", "stations")


def label_entry(m: LabelMeasure, carina: Sequence[float] | None) -> dict:
    """One label's statistics: volume, centroid offset from the carina, islands."""
    offset = None if carina is None else [round(c - k, 2) for c, k in zip(m.centroid, carina)]
    return {"ml": round(m.ml, 4), "offset_mm": offset, "far": round(m.far, 4)}


def case_statistics(organs: Image | None, stations: Image | None) -> dict:
    """Per-label statistics of one case (either map may be ``None``)."""
    carina = None
    if organs is not None:
        lm = compute_landmarks(main_pieces(organs, ORGANS))  # as QC computes it
        carina = None if lm.carina_lps is None else [round(v, 2) for v in lm.carina_lps]
    out: dict = {"carina_lps": carina}
    for kind, img, labels in (("organs", organs, ORGANS), ("stations", stations, STATIONS)):
        if img is not None:
            out[kind] = {k: label_entry(m, carina) for k, m in measure_labels(img, labels).items()}
    return out


def _read_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable QC reference ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("cases"), dict):
        raise InputError(path, f"not a QC reference of format {FORMAT}")
    return data


def record_cases(model_root: str | os.PathLike, cases: Iterable, fold: int | None,
                 *, cohort_name: str = "") -> Path:
    """Add ``cases`` (cohort :class:`~deepstationing.data.cohort.Case` objects with organ
    and/or station maps) to the model's reference as trained on by ``fold``; returns the
    file. Cases already in the file are not measured again."""
    path = Path(model_root) / REFERENCE_FILE
    cases = list(cases)
    with file_lock(path):
        data = _read_file(path) if path.exists() else {
            "format": FORMAT, "landmark": "carina",
            "frame": "LPS millimetres from the carina (+x patient left, +y posterior, "
                     "+z superior)", "cohorts": [], "cases": {}}
        if cohort_name and cohort_name not in data["cohorts"]:
            data["cohorts"].append(cohort_name)
        for case in cases:
            entry = data["cases"].get(case.id)
            if entry is None:
                organs = read_image(case.organs, label=True) if case.has("organs") else None
                stations = read_image(case.stations, label=True) \
                    if case.has("stations") else None
                if organs is None and stations is None:
                    continue
                entry = {"fold": case.fold, "trained_in": [],
                         **case_statistics(organs, stations)}
                data["cases"][case.id] = entry
            if fold is not None and int(fold) not in entry["trained_in"]:
                entry["trained_in"] = sorted(entry["trained_in"] + [int(fold)])
        write_json_atomic(data, path)
    return path


def record_training_cases(model_root: str | os.PathLike, cohort, fold: int) -> Path | None:
    """Record the training cases of ``fold`` of ``cohort`` in ``MODEL/qc_reference.json``.

    Called after a fold is added to a model. A failure (an unreadable label map, a full
    disk) is logged as a warning and returns ``None``: the trained fold stays usable, and
    QC says that the reference is missing.
    """
    try:
        cases = [cohort.case(c) for c in cohort.train_ids(int(fold))]
        return record_cases(model_root, cases, int(fold), cohort_name=str(cohort.root.name))
    except (DeepStationingError, OSError, ValueError) as exc:
        log.warning("QC reference not updated in %s: %s", model_root, exc)
        return None


class Reference:
    """The cases of a reference file that the chosen folds trained on, with label ranges."""

    def __init__(self, path: Path, cases: dict[str, dict]):
        self.path = path
        self.cases = cases

    @property
    def case_ids(self) -> list[str]:
        return list(self.cases)

    @property
    def n_cases(self) -> int:
        return len(self.cases)

    def _entries(self, kind: str, key: str) -> list[dict]:
        return [c[kind][key] for c in self.cases.values() if key in c.get(kind, {})]

    def has_kind(self, kind: str) -> bool:
        return any(kind in c for c in self.cases.values())

    def presence(self, kind: str, key: str) -> float:
        """Fraction of the cases (with ``kind`` labels) that have the label."""
        n = sum(1 for c in self.cases.values() if kind in c)
        return len(self._entries(kind, key)) / n if n else 0.0

    def volume_range(self, kind: str, key: str) -> tuple[float, float] | None:
        """Smallest and largest volume (ml) of a label in the cohort."""
        v = [e["ml"] for e in self._entries(kind, key)]
        return (min(v), max(v)) if v else None

    def offset_box(self, kind: str, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-axis minimum and maximum of a label's centroid offset from the carina."""
        v = [e["offset_mm"] for e in self._entries(kind, key) if e.get("offset_mm")]
        if not v:
            return None
        a = np.asarray(v, float)
        return a.min(axis=0), a.max(axis=0)

    def max_far(self, kind: str, key: str) -> float | None:
        """Largest island fraction of a label in the cohort."""
        v = [e["far"] for e in self._entries(kind, key)]
        return max(v) if v else None


def read_reference(model_root: str | os.PathLike, folds: Sequence[int] | None = None
                   ) -> Reference | None:
    """The model's reference restricted to the cases ``folds`` trained on (all recorded
    cases for ``None``); ``None`` when the model folder has no reference file or no case
    is left."""
    path = Path(model_root) / REFERENCE_FILE
    if not path.exists():
        return None
    data = _read_file(path)
    wanted = None if folds is None else {int(f) for f in folds}
    cases = {cid: c for cid, c in data["cases"].items()
             if wanted is None or wanted & set(c.get("trained_in", []))}
    return Reference(path, cases) if cases else None
