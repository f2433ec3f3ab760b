"""The cases of a cohort a stage trains on: every case with a fold and the needed labels.

>>> import tempfile
>>> from deepstationing.phantom import generate_cohort
>>> cohort = generate_cohort(tempfile.mkdtemp(), 4, seed=0, preset="small",
...                          spacing=(11.2, 11.2, 20.0), progress=None)
>>> [c.fold for c in cohort_cases(cohort, "stations")]
[...]
>>> len(cohort_cases(cohort, "organs"))
4
"""

from __future__ import annotations

from deepstationing.data.cohort import Case, Cohort
from deepstationing.errors import InputError

__all__ = ["cohort_cases", "cohort_folds"]


def cohort_cases(cohort: Cohort, target: str) -> list[Case]:
    """Cases with a fold; every one must have the ``target`` labels (``organs``/``stations``)."""
    cases = [c for c in cohort if c.fold is not None]
    if not cases:
        raise InputError(cohort.root, "no case of the cohort is assigned to a fold")
    missing = [c for c in cases if not c.has(target)]
    if missing:
        raise InputError(missing[0].path(target), f"case {missing[0].id} has no {target} labels; "
                                                  "training needs them for every case")
    return cases


def cohort_folds(cohort: Cohort) -> list[int]:
    """The folds of a cohort's manifest."""
    return sorted({int(c.fold) for c in cohort if c.fold is not None})
