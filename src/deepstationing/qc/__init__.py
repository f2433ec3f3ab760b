"""Plausibility QC of a predicted case: can this prediction be trusted?

A model trained on one kind of CT says nothing when it is given another: a real scan with a
table and arms for a phantom model, a CT mirrored left-right, a scan of the abdomen. QC
looks at each prediction (organ and station maps) and its CT, and names what does not fit
the anatomy a station map must have: labels outside the body, stations outside the
mediastinum, lateral stations or organs on the wrong side of the trachea, labels broken
into islands, stations or organs missing, volumes and positions far outside the training
cohort's, and disagreement with the margin rules run on the predicted organs. Each finding
has a name, a number and a limit; the case gets a verdict ``ok`` / ``check`` /
``implausible``.

Modules: :mod:`.body` (the body mask), :mod:`.measures` (per-label measurements, sides, the
mediastinal envelope), :mod:`.reference` (the training cohort's statistics in the model
folder), :mod:`.thresholds` (the limits), :mod:`.findings` (the checks), :mod:`.verdict`
(the verdict and ``qc.json``), :mod:`.check` (all checks on one case), :mod:`.run` (QC of
``predict``'s outputs). The checks and where each limit came from: ``docs/qc.md``.

>>> from deepstationing.phantom import generate_case
>>> case = generate_case(2, preset="small", spacing=(5.6, 5.6, 10.0))
>>> report = check_case(case.ct, case.organs, case.stations)
>>> report.verdict, [s.name for s in report.skipped]
('ok', ['volume_range', 'position_range'])
"""

from deepstationing.qc.check import check_case
from deepstationing.qc.findings import Finding, Skip
from deepstationing.qc.reference import (
    REFERENCE_FILE,
    Reference,
    read_reference,
    record_cases,
    record_training_cases,
)
from deepstationing.qc.thresholds import DEFAULT_THRESHOLDS, Limit, Thresholds
from deepstationing.qc.verdict import QC_FILE, QcReport, read_qc

__all__ = ["check_case", "Finding", "Skip", "QcReport", "read_qc", "QC_FILE", "Reference",
           "read_reference", "record_cases", "record_training_cases", "REFERENCE_FILE",
           "Thresholds", "Limit", "DEFAULT_THRESHOLDS"]
