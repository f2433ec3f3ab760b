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
training cases are all others, so no patient is ever on both sides of a split: cases of
one patient (a manifest entry's ``"patient"``, else its id) always share a fold.

:class:`CohortWriter` is the one writer of cohorts (the phantom generator and ``dataset
import`` use it): cases are written into a staging folder beside the target, the manifest
last, and the finished folder is renamed into place, so a cohort folder is never half
written; an earlier cohort of the same generator is replaced, anything else refused.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "cohort"
>>> with CohortWriter(out, generator="doc") as w:
...     for cid, patient in (("a1", "A"), ("a2", "A"), ("b", "B"), ("c", "C"), ("d", "D")):
...         _ = (w.case_folder(cid) / "ct.nii.gz").write_bytes(b"")
...         w.add_case(cid, patient=patient)
...     cohort = w.finish(source="doctest")
>>> cohort.case_ids, cohort.manifest["source"]
(['a1', 'a2', 'b', 'c', 'd'], 'doctest')
>>> cohort.case("a1").fold == cohort.case("a2").fold   # one patient, one fold
True
>>> cohort.case("a2").patient
'A'
>>> sorted(set(cohort.train_ids(0)) | set(cohort.test_ids(0))) == cohort.case_ids
True
>>> import tempfile
>>> from deepstationing.phantom import generate_cohort
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
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepstationing.data.atomic import (
    describe_os_error,
    new_staging_folder,
    publish_folder,
    write_json_atomic,
)
from deepstationing.errors import InputError, OutputError, _PathError

__all__ = ["Case", "Cohort", "CohortWriter", "assign_folds", "inner_cohort",
           "write_json_atomic", "MANIFEST", "CASE_FILES"]

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
    #: The patient of the case (the manifest's ``"patient"``; ``None``: its own patient).
    patient: str | None = None

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
                str(e["id"]): Case(str(e["id"]), self.root / str(e.get("path", e["id"])),
                                   None if e.get("fold") is None else int(e["fold"]),
                                   None if e.get("patient") is None else str(e["patient"]))
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

    @property
    def patients(self) -> dict[str, str]:
        """Patient of every case (the manifest's ``"patient"``, else the case id)."""
        return {str(e["id"]): str(e.get("patient") or e["id"])
                for e in self.manifest["cases"]}

    @property
    def outer_fold(self) -> int | None:
        """For an inner cohort (:func:`inner_cohort`): the outer fold it leaves out."""
        inner = self.manifest.get("inner")
        return None if inner is None else int(inner["outer_fold"])


def inner_cohort(cohort: Cohort, outer_fold: int, out: str | os.PathLike) -> Cohort:
    """The training cases of ``outer_fold`` as a cohort of their own, for choosing settings.

    Nested cross-validation: settings (learning rate, budget, grid, ...) are chosen on
    validation cases *inside* the training folds of the fold that is reported, never on its
    test cases. The inner cohort lists the outer training cases (their case folders are not
    copied: the manifest points at them) with the outer folds other than ``outer_fold``
    renumbered ``0 .. n_folds - 2``, so its fold ``k`` holds out one outer training fold as
    the validation set. The outer fold's test cases are not in it at all.

    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp()) / "c"
    >>> with CohortWriter(src, generator="doc", n_folds=3) as w:
    ...     for cid in "abcdef":
    ...         _ = (w.case_folder(cid) / "ct.nii.gz").write_bytes(b"")
    ...         w.add_case(cid)
    ...     outer = w.finish()
    >>> inner = inner_cohort(outer, 0, src.parent / "inner0")
    >>> sorted(inner.case_ids) == sorted(outer.train_ids(0)), inner.n_folds, inner.outer_fold
    (True, 2, 0)
    >>> inner.case(inner.case_ids[0]).ct == outer.case(inner.case_ids[0]).ct
    True
    """
    cohort._check_fold(outer_fold)
    if cohort.n_folds < 3:
        raise InputError(cohort.root, f"an inner cohort needs at least 3 folds (outer test, "
                                      f"inner validation, training); it has {cohort.n_folds}")
    remap = {f: i for i, f in enumerate(f for f in range(cohort.n_folds) if f != outer_fold)}
    patients = cohort.patients
    cases = []
    for case in cohort:
        if case.fold is None or case.fold == outer_fold:
            continue
        cases.append({"id": case.id, "fold": remap[case.fold], "patient": patients[case.id],
                      "path": str(case.folder.resolve())})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": 1, "name": f"{cohort.manifest.get('name', cohort.root.name)}"
                                      f"-inner{outer_fold}",
                "generator": "deepstationing.inner", "n_folds": cohort.n_folds - 1,
                "inner": {"outer": str(cohort.root.resolve()), "outer_fold": int(outer_fold),
                          "folds": {str(v): k for k, v in remap.items()}},
                "cases": cases}
    for key in ("preset", "seed", "spacing", "version"):
        if key in cohort.manifest:
            manifest[key] = cohort.manifest[key]
    write_json_atomic(manifest, out / MANIFEST)
    return Cohort(out)


def assign_folds(groups: Sequence[str], n_folds: int, seed: int) -> list[int]:
    """Balanced patient-level folds: one fold per group (patient), a permutation of ``seed``.

    ``groups[i]`` is the patient of case ``i``; groups get folds round-robin in a random
    order, so fold sizes (in patients) differ by at most one.

    >>> assign_folds(["p1", "p2", "p1", "p3"], 2, seed=0)
    [0, 0, 0, 1]
    """
    unique = list(dict.fromkeys(groups))
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 2**31 - 1])).permutation(
        len(unique))
    fold_of = {unique[int(i)]: rank % n_folds for rank, i in enumerate(perm)}
    return [fold_of[g] for g in groups]


class CohortWriter:
    """Write a cohort folder atomically (see the module docstring).

    Args:
        out: the cohort folder to create or replace.
        generator: who writes it (``"deepstationing.phantom"``, ``"deepstationing.import"``);
            recorded in the manifest; only a cohort of the same generator is replaced.
        n_folds, seed: the patient-level split (:func:`assign_folds`).
        name: cohort name (default: the folder name).
        cohort_files: names of cohort-level files (reports) an earlier cohort of this
            generator may hold besides its cases and manifest.
    """

    def __init__(self, out: str | os.PathLike, *, generator: str, n_folds: int = 4,
                 seed: int = 0, name: str | None = None,
                 cohort_files: Sequence[str] = ()):
        if n_folds < 1:
            raise ValueError("n_folds must be >= 1")
        self.out = Path(out)
        self.generator = generator
        self.n_folds = int(n_folds)
        self.seed = int(seed)
        self.name = name or self.out.name
        self.cohort_files = tuple(cohort_files)
        self._replace = self._check_target()
        try:
            self.staging = new_staging_folder(self.out)
        except OSError as exc:
            raise OutputError(self.out, describe_os_error(
                exc, self.out, verb=f"cannot create a folder in {self.out.parent}")) from None
        self._entries: list[dict] = []

    def _check_target(self) -> bool:
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(out, "exists and is not a folder")
        if not out.exists() or not any(out.iterdir()):
            return False
        try:
            old = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            old = None
        what = self.generator.rsplit(".", 1)[-1]
        article = "an" if what[:1].lower() in "aeiou" else "a"
        if not isinstance(old, dict) or old.get("generator") != self.generator:
            raise InputError(out, f"folder is not empty and is not {article} {what} cohort; "
                                  "refusing to overwrite it (choose an empty or new folder)")
        known = {str(e.get("id")) for e in old.get("cases", []) if isinstance(e, dict)}
        known |= {MANIFEST, *self.cohort_files}
        foreign = sorted(p.name for p in out.iterdir() if p.name not in known)
        if foreign:
            raise InputError(out, f"earlier {what} cohort holds files that are not part of it "
                                  f"({', '.join(foreign[:3])}); refusing to replace it")
        return True

    def __enter__(self) -> CohortWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()
        if isinstance(exc, OSError | _PathError):
            raise self._as_target_error(exc) from None

    def _as_target_error(self, exc: BaseException) -> BaseException:
        """An error about a staging path, told about the cohort folder's path instead."""
        staging = str(self.staging)
        if isinstance(exc, _PathError) and exc.path and exc.path.startswith(staging):
            return type(exc)(self.out / Path(exc.path).relative_to(self.staging), exc.problem)
        if isinstance(exc, OSError):
            name = os.fsdecode(exc.filename) if exc.filename else ""
            where = self.out / Path(name).relative_to(self.staging) \
                if name.startswith(staging) and name != staging else self.out
            return OutputError(where, describe_os_error(exc, where))
        return exc

    def case_folder(self, case_id: str) -> Path:
        """The folder to write case ``case_id``'s files into (inside the staging folder)."""
        d = self.staging / case_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def add_case(self, case_id: str, *, patient: str | None = None) -> None:
        """Record a written case; cases of one ``patient`` share a fold."""
        if any(e["id"] == case_id for e in self._entries):
            raise ValueError(f"case {case_id!r} added twice")
        self._entries.append({"id": case_id, "patient": patient})

    def finish(self, **fields) -> Cohort:
        """Assign folds, write the manifest (with ``fields``) and publish the cohort."""
        if not self._entries:
            raise InputError(self.out, "no cases to write")
        folds = assign_folds([e["patient"] or e["id"] for e in self._entries], self.n_folds,
                             self.seed)
        cases = []
        for e, fold in zip(self._entries, folds):
            entry = {"id": e["id"], "fold": fold}
            if e["patient"] is not None:
                entry["patient"] = e["patient"]
            cases.append(entry)
        manifest = {"format": 1, "name": self.name, "generator": self.generator, **fields,
                    "n_folds": self.n_folds, "cases": cases}
        write_json_atomic(manifest, self.staging / MANIFEST)
        publish_folder(self.staging, self.out, replace=self._replace)
        return Cohort(self.out)

    def abort(self) -> None:
        """Remove the staging folder (nothing of an unfinished cohort stays behind)."""
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
