"""A cohort on disk: case folders plus a manifest with a patient-level 4-fold split.

Layout (written by ``deepstationing phantom``, read by training and evaluation)::

    COHORT/
      manifest.json        {"format": 1, "name", "n_folds", "cases": [{"id", "fold"}, ...], ...}
      <case_id>/
        ct.nii.gz          CT in HU (int16)
        organs.nii.gz      22-organ label map (ids from deepstationing.schema.ORGANS)
        stations.nii.gz    12-station label map (ids from deepstationing.schema.STATIONS)
        nodes.nii.gz       lymph-node instance map (0 = none, k = node k of nodes.json)
        nodes.json         list of nodes: id, station, zone, centre_mm, short/long axis mm
        meta.json          every random parameter drawn for the case

Only ``ct`` is required per case; the label files are optional so the same class reads
cohorts of unlabelled CTs. Fold ``k``'s test cases are those with ``"fold": k``; its
training cases are all others, so no patient is ever on both sides of a split.

>>> import tempfile
>>> from deepstationing.data.phantom import generate_cohort
>>> folder = tempfile.mkdtemp()
>>> _ = generate_cohort(folder, 4, preset="small", spacing=(11.2, 11.2, 10.0))  # tiny grid
>>> cohort = Cohort(folder)
>>> len(cohort), cohort.test_ids(0), cohort.train_ids(0)
(4, ['case_001'], ['case_000', 'case_002', 'case_003'])
>>> cohort.case("case_000").ct.name, cohort.case("case_000").fold
('ct.nii.gz', 3)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from deepstationing.data.atomic import write_json_atomic
from deepstationing.errors import InputError

__all__ = ["Case", "Cohort", "write_json_atomic", "MANIFEST", "CASE_FILES"]

MANIFEST = "manifest.json"
#: The file names of one case, by role.
CASE_FILES = {
    "ct": "ct.nii.gz",
    "organs": "organs.nii.gz",
    "stations": "stations.nii.gz",
    "nodes": "nodes.nii.gz",
    "nodes_json": "nodes.json",
    "meta": "meta.json",
}


@dataclass(frozen=True)
class Case:
    """One case folder of a cohort."""

    id: str
    folder: Path
    fold: int | None = None

    def path(self, role: str) -> Path:
        """Path of a case file by role (``"ct"``, ``"organs"``, ``"stations"``, ...)."""
        return self.folder / CASE_FILES[role]

    def has(self, role: str) -> bool:
        return self.path(role).exists()

    @property
    def ct(self) -> Path:
        return self.path("ct")

    @property
    def organs(self) -> Path:
        return self.path("organs")

    @property
    def stations(self) -> Path:
        return self.path("stations")

    @property
    def nodes(self) -> Path:
        return self.path("nodes")

    def nodes_list(self) -> list[dict]:
        return json.loads(self.path("nodes_json").read_text())

    def meta(self) -> dict:
        return json.loads(self.path("meta").read_text())


class Cohort:
    """Read a cohort folder and its patient-level folds."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest = self.root / MANIFEST
        if not manifest.exists():
            raise InputError(self.root, f"not a cohort folder (no {MANIFEST}); create one with "
                                        "'deepstationing phantom --out DIR'")
        try:
            self.manifest = json.loads(manifest.read_text())
            entries = self.manifest["cases"]
            self.n_folds = int(self.manifest.get("n_folds", 4))
            self._cases = {
                str(e["id"]): Case(str(e["id"]), self.root / str(e["id"]),
                                   None if e.get("fold") is None else int(e["fold"]))
                for e in entries
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(manifest, f"malformed manifest ({exc})") from None
        for case in self._cases.values():
            if not case.ct.exists():
                raise InputError(case.ct, f"case {case.id} listed in {MANIFEST} has no CT")

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self):
        return iter(self._cases.values())

    @property
    def case_ids(self) -> list[str]:
        return list(self._cases)

    def case(self, case_id: str) -> Case:
        try:
            return self._cases[case_id]
        except KeyError:
            raise InputError(self.root, f"no case {case_id!r} in cohort") from None

    def _check_fold(self, fold: int) -> None:
        if not 0 <= fold < self.n_folds:
            raise InputError(self.root, f"fold {fold} out of range 0..{self.n_folds - 1}")

    def test_ids(self, fold: int) -> list[str]:
        """Cases held out in ``fold`` (its validation/test set)."""
        self._check_fold(fold)
        return [c.id for c in self._cases.values() if c.fold == fold]

    def train_ids(self, fold: int) -> list[str]:
        """Cases used for training in ``fold``: every case not held out in it."""
        self._check_fold(fold)
        return [c.id for c in self._cases.values() if c.fold is not None and c.fold != fold]
