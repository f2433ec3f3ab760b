"""A case's QC verdict: the worst severity of its findings, one printable line, ``qc.json``.

``ok`` when no finding fired, ``check`` when one crossed its check limit (someone should
look before the contours are used), ``implausible`` when one crossed its implausible limit
(the prediction does not describe this CT's anatomy: wrong side, outside the body, no
mediastinum in the scan, ...).

``qc.json`` (written atomically beside a case's outputs) holds the verdict, every finding
with its value and limit (the silent ones too), the checks that were skipped and why, and
the inputs (CT path, model folder, folds) so ``deepstationing qc`` can run it again.

Examples
--------
>>> from deepstationing.qc.findings import Finding, Skip
>>> r = QcReport([Finding("outside_body", 0.0, "%", 2.0, "above", "ok"),
...               Finding("station_side", -21.0, "mm", -5.0, "below", "implausible",
...                       ["4L -21 mm"])],
...              [Skip("volume_range", "no qc_reference.json in the model")])
>>> r.verdict
'implausible'
>>> r.line()
'implausible: station_side -21 mm < -5 (4L -21 mm)'
>>> QcReport.from_json(r.to_json()).line() == r.line()
True
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing.data.atomic import write_json_atomic
from deepstationing.errors import InputError
from deepstationing.qc.findings import Finding, Skip
from deepstationing.qc.thresholds import SEVERITIES

__all__ = ["QcReport", "QC_FILE", "FORMAT", "verdict_of", "read_qc", "at_least"]

#: File name of a case's QC results, beside its outputs.
QC_FILE = "qc.json"
FORMAT = 1


def verdict_of(findings: list[Finding]) -> str:
    """The worst severity of the findings (``"ok"`` for none)."""
    worst = 0
    for f in findings:
        worst = max(worst, SEVERITIES.index(f.severity))
    return SEVERITIES[worst]


def at_least(verdict: str, level: str) -> bool:
    """Whether ``verdict`` is ``level`` or worse.

    >>> at_least("implausible", "check"), at_least("check", "implausible")
    (True, False)
    """
    return SEVERITIES.index(verdict) >= SEVERITIES.index(level)


@dataclass
class QcReport:
    """The QC of one case.

    Attributes:
        findings: every check that ran (fired or not).
        skipped: checks that could not run, with the reason.
        inputs: what was checked (``ct``, ``model``, ``folds``, ``reference`` ...).
        seconds: how long the checks took.
    """

    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return verdict_of(self.findings)

    @property
    def fired(self) -> list[Finding]:
        """The findings that fired, the most severe first."""
        return sorted((f for f in self.findings if f.fired),
                      key=lambda f: -SEVERITIES.index(f.severity))

    def line(self) -> str:
        """The verdict and the findings that fired, on one line."""
        fired = self.fired
        if not fired:
            return "ok"
        return f"{self.verdict}: " + "; ".join(f.line() for f in fired)

    def to_json(self) -> dict:
        return {"format": FORMAT, "verdict": self.verdict,
                "fired": [f.name for f in self.fired],
                "findings": [f.to_json() for f in self.findings],
                "skipped": [s.to_json() for s in self.skipped],
                "inputs": dict(self.inputs), "seconds": round(self.seconds, 3)}

    @classmethod
    def from_json(cls, obj: dict) -> QcReport:
        return cls([Finding.from_json(f) for f in obj.get("findings", [])],
                   [Skip(**s) for s in obj.get("skipped", [])], dict(obj.get("inputs", {})),
                   float(obj.get("seconds", 0.0)))

    def write(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/qc.json`` atomically; returns its path."""
        return write_json_atomic(self.to_json(), Path(folder) / QC_FILE)


def read_qc(path: str | os.PathLike) -> QcReport:
    """Read a ``qc.json`` (or the one in a folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / QC_FILE
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(p, f"unreadable QC results ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(p, f"not a QC result of format {FORMAT}")
    try:
        return QcReport.from_json(obj)
    except (TypeError, KeyError) as exc:
        raise InputError(p, f"malformed QC results ({exc})") from None
