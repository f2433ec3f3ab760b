"""Predict many CTs with one model load: the next case is read while the current one runs.

:func:`find_cases` turns the command line's inputs (CT files, DICOM series folders, or
folders holding several of those) into named cases; :func:`predict_cases` runs a
:class:`~deepstationing.stations.network.StationParser` over them, reading case ``n + 1`` in
a background thread while case ``n`` is predicted, and writes each case's outputs into its
own folder. A case that fails (unreadable file, wrong modality, ...) is reported with its
error and skipped; the others finish. With ``qc``, each prediction is checked for
plausibility (:mod:`deepstationing.qc`) and its ``qc.json`` written beside the outputs.
:mod:`deepstationing.predict.run` builds a run on these (its settings, the output formats,
the Ray path).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b.nii.gz", "a.nrrd", "notes.txt"):
...     _ = (d / name).write_bytes(b"")
>>> [(c.name, c.path.name) for c in find_cases([d])]
[('a', 'a.nrrd'), ('b', 'b.nii.gz')]
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstationing.data.image import IMAGE_SUFFIXES, Image, read_ct
from deepstationing.errors import DeepStationingError, InputError
from deepstationing.evaluation.report import case_id_of
from deepstationing.predict.formats import write_outputs
from deepstationing.timing import Timings

log = logging.getLogger(__name__)

__all__ = ["CaseInput", "CaseResult", "find_cases", "predict_cases"]


@dataclass(frozen=True)
class CaseInput:
    name: str
    path: Path


@dataclass
class CaseResult:
    name: str
    ok: bool
    seconds: float
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    stations_found: int = 0
    qc: dict | None = None
    """The case's QC report as JSON (:class:`~deepstationing.qc.verdict.QcReport`), or
    ``{"verdict": "error", "error": ...}`` when the checks themselves failed."""
    folder: str = ""
    """The case's output folder."""


def _is_dicom_folder(p: Path) -> bool:
    from deepstationing.data.dicom_checks import looks_like_dicom

    return any(f.is_file() and looks_like_dicom(f) for f in sorted(p.iterdir())[:50])


def find_cases(inputs: Sequence[str | os.PathLike]) -> list[CaseInput]:
    """Cases of the inputs: a CT file or DICOM series folder is one case; any other folder
    contributes its CT files, DICOM series sub-folders and cohort case folders
    (``<case>/ct.nii.gz``), sorted by name."""
    cases: list[CaseInput] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise InputError(p, "no such file or folder")
        if p.is_file() or _is_dicom_folder(p):
            cases.append(CaseInput(case_id_of(p), p))
            continue
        found = []
        for entry in sorted(p.iterdir()):
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES) \
                    and not entry.name.startswith("."):
                found.append(CaseInput(case_id_of(entry), entry))
            elif entry.is_dir() and (entry / "ct.nii.gz").exists():
                found.append(CaseInput(entry.name, entry / "ct.nii.gz"))
            elif entry.is_dir() and _is_dicom_folder(entry):
                found.append(CaseInput(entry.name, entry))
        if not found:
            raise InputError(p, "holds no CT (NIfTI/NRRD/MHA files, DICOM series folders or "
                                "case folders with ct.nii.gz)")
        cases += found
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(None, f"several inputs would write to the same output folder: "
                               f"{', '.join(dupes)}")
    return cases


def _read(case: CaseInput) -> tuple[Image | None, str, float]:
    t0 = time.perf_counter()
    try:
        return read_ct(case.path), "", time.perf_counter() - t0
    except DeepStationingError as exc:
        return None, str(exc), time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a broken case must not stop the others
        return None, f"{case.path}: {type(exc).__name__}: {exc}", time.perf_counter() - t0


def predict_cases(parser, cases: Sequence[CaseInput], out: str | os.PathLike, *,
                  write: Callable[[CaseInput, Path, Image | None, Image], list[str]] | None = None,
                  single_folder: bool = False,
                  on_case: Callable[[int, int, CaseResult], None] | None = None,
                  qc=None) -> list[CaseResult]:
    """Predict every case with ``parser``; each case's outputs go to ``out/<case name>/``
    (``out`` itself when ``single_folder``). Returns one result per case, in order.

    Args:
        parser: a :class:`~deepstationing.stations.network.StationParser` (loaded once).
        cases: from :func:`find_cases`.
        out: output folder.
        write: writes a case's outputs, returns their file names (default: NIfTI
            ``organs.nii.gz`` and ``stations.nii.gz``).
        single_folder: one case, written straight into ``out``.
        on_case: called after each case with ``(index, total, result)``.
        qc: a :class:`~deepstationing.qc.run.QcRunner`: checks each prediction and writes
            its ``qc.json`` into the case's folder (``None``: no QC).
    """
    if write is None:
        def write(case: CaseInput, folder: Path, organs: Image | None, stations: Image):
            return write_outputs(("nifti",), case.path, folder, organs, stations)
    results: list[CaseResult] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        future = reader.submit(_read, cases[0]) if cases else None
        for i, case in enumerate(cases):
            ct, error, read_s = future.result()
            future = reader.submit(_read, cases[i + 1]) if i + 1 < len(cases) else None
            t0 = time.perf_counter()
            timings = Timings({"read": read_s})
            folder = Path(out) if single_folder else Path(out) / case.name
            result = CaseResult(case.name, False, 0.0, folder=str(folder))
            if ct is not None:
                try:
                    organs, stations = parser.predict(ct, timings=timings)
                    with timings("write"):
                        result.outputs = write(case, folder, organs, stations)
                    result.stations_found = int(len(np.unique(stations.array)) - 1)
                    result.ok = True
                    if qc is not None:
                        with timings("qc"):
                            result.qc = _check(qc, case, folder, ct, organs, stations)
                        if result.qc.get("verdict") != "error":
                            result.outputs.append("qc.json")
                except DeepStationingError as exc:
                    error = str(exc)
                except Exception as exc:  # noqa: BLE001 - reported, the others go on
                    error = f"{case.path}: {type(exc).__name__}: {exc}"
                    log.debug("%s", traceback.format_exc())
            result.error = error
            result.seconds = round(time.perf_counter() - t0 + read_s, 2)
            result.timings = {k: round(v, 3) for k, v in timings.steps.items()}
            results.append(result)
            if on_case:
                on_case(i + 1, len(cases), result)
    return results


def _check(qc, case: CaseInput, folder: Path, ct: Image, organs: Image | None,
           stations: Image) -> dict:
    """QC of one prediction, written to ``folder/qc.json``; a failure of the checks is
    logged and returned as verdict ``error`` (the prediction itself stands)."""
    try:
        report = qc.check(ct, organs, stations, ct_path=case.path)
        report.write(folder)
        return report.to_json()
    except DeepStationingError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - the outputs are written; report and go on
        error = f"{type(exc).__name__}: {exc}"
        log.debug("%s", traceback.format_exc())
    log.info("%s: QC failed: %s", case.name, error)
    return {"verdict": "error", "error": error}
