"""QC of ``predict``'s outputs: one :class:`QcRunner` per model, and re-runs on output folders.

:class:`QcRunner` reads the model's reference once and checks every case of a batch,
recording what it checked (the CT's path, the model folder, the folds) in the report, so
:func:`check_output_folder` (``deepstationing qc CASE_OUT``) can run it again later from
the folder alone.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from deepstationing.data.image import write_image
>>> from deepstationing.phantom import generate_case
>>> case = generate_case(2, preset="small", spacing=(5.6, 5.6, 10.0))
>>> out = Path(tempfile.mkdtemp())
>>> ct = write_image(case.ct, out / "ct.nii.gz")
>>> _ = write_image(case.organs, out / "organs.nii.gz")
>>> _ = write_image(case.stations, out / "stations.nii.gz")
>>> report = QcRunner(None).check(case.ct, case.organs, case.stations, ct_path=ct)
>>> _ = report.write(out)
>>> check_output_folder(out).verdict          # the CT path comes from qc.json
'ok'
>>> [s.reason for s in report.skipped][0]
'no model given'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from deepstationing.data.image import Image, read_ct, read_image
from deepstationing.errors import InputError
from deepstationing.qc.check import check_case
from deepstationing.qc.reference import REFERENCE_FILE, read_reference
from deepstationing.qc.thresholds import DEFAULT_THRESHOLDS, Thresholds
from deepstationing.qc.verdict import QC_FILE, QcReport, read_qc

__all__ = ["QcRunner", "check_output_folder", "find_case_folders"]


class QcRunner:
    """Checks predicted cases against one model's training-cohort reference.

    Args:
        model_root: the model folder (``None``: no reference, the cohort checks are skipped).
        folds: the folds the prediction used (``None``: all); the reference keeps the cases
            those folds trained on.
        thresholds: the limits.
    """

    def __init__(self, model_root: str | os.PathLike | None,
                 folds: Sequence[int] | None = None, *,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS):
        self.model_root = None if model_root is None else Path(model_root)
        self.folds = None if folds is None else [int(f) for f in folds]
        self.thresholds = thresholds
        self.reference = None
        if self.model_root is None:
            self.why_not = "no model given"
        elif not self.model_root.is_dir():
            self.why_not = f"model folder {self.model_root} not found"
        elif not (self.model_root / REFERENCE_FILE).exists():
            self.why_not = (f"the model folder has no {REFERENCE_FILE} (trained before QC "
                            "references were recorded)")
        else:
            try:
                self.reference = read_reference(self.model_root, self.folds)
                self.why_not = f"no case of folds {self.folds} in {REFERENCE_FILE}"
            except InputError as exc:  # a damaged reference must not stop predictions
                self.why_not = str(exc)

    def check(self, ct: Image, organs: Image | None, stations: Image, *,
              ct_path: str | os.PathLike | None = None) -> QcReport:
        """The QC report of one case (inputs recorded for a later re-run)."""
        report = check_case(ct, organs, stations, reference=self.reference,
                            no_reference=self.why_not, thresholds=self.thresholds)
        path = ct_path if ct_path is not None else ct.path
        report.inputs.update({
            "ct": None if path is None else str(Path(path).resolve()),
            "model": None if self.model_root is None else str(self.model_root.resolve()),
            "folds": self.folds})
        return report


def find_case_folders(folder: str | os.PathLike) -> list[Path]:
    """``folder`` itself when it holds a case's ``stations.nii.gz``, else its sub-folders
    that do (a batch's output folder), sorted."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(p, "no such folder")
    if (p / "stations.nii.gz").exists():
        return [p]
    found = sorted(d for d in p.iterdir() if d.is_dir() and (d / "stations.nii.gz").exists())
    if not found:
        raise InputError(p, "holds no predicted case (stations.nii.gz, or case folders with "
                            "one; predict with --format nifti to keep it)")
    return found


def check_output_folder(folder: str | os.PathLike, *, ct: str | os.PathLike | None = None,
                        model: str | os.PathLike | None = None,
                        folds: Sequence[int] | None = None,
                        thresholds: Thresholds = DEFAULT_THRESHOLDS) -> QcReport:
    """Run QC again on a case's output folder and rewrite its ``qc.json``.

    The CT, model and folds default to those the folder's ``qc.json`` records.
    """
    d = Path(folder)
    previous = read_qc(d) if (d / QC_FILE).exists() else None
    recorded = previous.inputs if previous is not None else {}
    ct_path = ct if ct is not None else recorded.get("ct")
    if ct_path is None:
        raise InputError(d, f"no CT to check against: give --ct ({QC_FILE} records none)")
    model_root = model if model is not None else recorded.get("model")
    if folds is None:
        folds = recorded.get("folds")
    runner = QcRunner(model_root, folds, thresholds=thresholds)
    ct_img = read_ct(ct_path)
    organs = read_image(d / "organs.nii.gz", label=True) \
        if (d / "organs.nii.gz").exists() else None
    stations = read_image(d / "stations.nii.gz", label=True)
    report = runner.check(ct_img, organs, stations, ct_path=ct_path)
    report.write(d)
    return report
