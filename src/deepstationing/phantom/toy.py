"""Tiny cohorts with a known answer, for tests that a network *learns* (not only that it runs).

The phantom is the toolkit's realistic test bed, but a station network needs many minutes
to learn it. These cohorts are small enough to learn in a minute of CPU time, and their
targets are defined, like stations, by organs alone — the CT carries no edge at the
target's boundary — so a network can only find them through its organ channels:

``"between"`` (:func:`write_toy_cohort`, the station-learning test)
    two spheres, labelled as organs ``heart`` and ``spine``, at random places; station
    ``1L`` is the fat *between* them (``d_heart + d_spine <= gap + width``) and station
    ``1R`` a shell around the heart on its far side. The CT is uniform noise.
``"one-informative"`` (the key-organ search test)
    station ``1L`` is a shell around the ``heart``; ``spine`` and ``sternum`` are random
    spheres unrelated to it, and the CT is noise: only the heart channel is informative.
``"key-organs"`` (the key-organ search's known answer)
    three *informative* organs (:data:`KEY_INFORMATIVE`: heart, spine, trachea), spheres
    apart from each other, each with a station shell around it (``1L``, ``1R``, ``2L``);
    three *noise* organs (:data:`KEY_NOISE`), one to three random blobs each, anywhere and
    unrelated to the target (they may lie in a station shell: the target is never carved
    by them); three *empty* organs (:data:`KEY_EMPTY`) with no voxel in any case. The CT
    is noise. Given the informative channels the target is determined; the other six
    channels carry nothing about it.

``cases_per_patient`` groups consecutive cases into patients (``p000``, ...) in the
manifest, as a clinic's cohort with several scans per patient has them.

Examples
--------
>>> import tempfile
>>> cohort = write_toy_cohort(tempfile.mkdtemp() + "/toy", 4, kind="between", seed=1)
>>> case = read_toy_case(cohort.case("toy_000"))
>>> sorted(np.unique(case["stations"]).tolist()), sorted(np.unique(case["organs"]).tolist())
([0, 1, 2], [0, 5, 6])
>>> bool((case["stations"][case["organs"] > 0] == 0).all())   # targets never cover organs
True
>>> arrays = toy_case(0, kind="key-organs", seed=1)
>>> present = {schema.ORGANS.by_id(int(i)).key for i in np.unique(arrays["organs"]) if i}
>>> sorted(present) == sorted(KEY_INFORMATIVE + KEY_NOISE)
True
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from deepstationing import schema
from deepstationing.data.cohort import Case, Cohort, CohortWriter
from deepstationing.data.image import Image, read_image, write_image

__all__ = ["write_toy_cohort", "toy_case", "read_toy_case", "TOY_SHAPE", "TOY_SPACING",
           "KINDS", "KEY_INFORMATIVE", "KEY_NOISE", "KEY_EMPTY"]

#: Array shape (z, y, x) and spacing (x, y, z) mm of a toy case.
TOY_SHAPE = (24, 40, 40)
TOY_SPACING = (2.0, 2.0, 2.0)
KINDS = ("between", "one-informative", "key-organs")
#: ``key-organs``: the organs that define the target, each with its station shell.
KEY_INFORMATIVE = ("heart", "spine", "trachea")
KEY_STATIONS = ("1L", "1R", "2L")
#: ``key-organs``: random blobs unrelated to the target.
KEY_NOISE = ("sternum", "esophagus", "aortic_arch")
#: ``key-organs``: organs with no voxel in any case.
KEY_EMPTY = ("azygos", "bcv_l", "cca_l")
#: ``key-organs``: thickness of the station shells (mm).
KEY_SHELL_MM = 5.0

HEART, SPINE, STERNUM = (schema.ORGANS.by_key(k).id for k in ("heart", "spine", "sternum"))
S1, S2 = schema.STATIONS.by_key("1L").id, schema.STATIONS.by_key("1R").id


def _sphere_field(shape, centre, spacing_zyx) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing_zyx)], indexing="ij")
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre)))


def toy_case(index: int, *, kind: str = "between", seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays ``ct`` (int16), ``organs``, ``stations`` (uint8) of toy case ``index``."""
    if kind not in KINDS:
        raise ValueError(f"unknown toy cohort kind {kind!r}; use one of {KINDS}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 7]))
    sp = np.asarray(TOY_SPACING[::-1], float)
    extent = np.asarray(TOY_SHAPE) * sp
    organs = np.zeros(TOY_SHAPE, np.uint8)
    stations = np.zeros(TOY_SHAPE, np.uint8)
    r_heart = rng.uniform(6.0, 9.0)
    c_heart = rng.uniform(0.3, 0.7, 3) * extent
    d_heart = _sphere_field(TOY_SHAPE, c_heart, sp) - r_heart
    if kind == "between":
        r_spine = rng.uniform(5.0, 7.0)
        gap = rng.uniform(10.0, 16.0)  # surface to surface, mm
        while True:  # the second sphere inside the volume
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            c_spine = c_heart + direction * (r_heart + gap + r_spine)
            if np.all((c_spine > 0.1 * extent) & (c_spine < 0.9 * extent)):
                break
        d_spine = _sphere_field(TOY_SHAPE, c_spine, sp) - r_spine
        stations[(d_heart + d_spine <= gap + 6.0) & (d_heart > 0) & (d_spine > 0)] = S1
        far_side = ((np.stack(np.meshgrid(*[np.arange(n) * s for n, s in
                                            zip(TOY_SHAPE, sp)], indexing="ij"), -1)
                     - c_heart) @ direction) < 0
        stations[(d_heart > 0) & (d_heart <= 6.0) & far_side & (stations == 0)] = S2
        organs[d_heart <= 0] = HEART
        organs[d_spine <= 0] = SPINE
    elif kind == "key-organs":
        return _key_organs_case(rng, sp, extent)
    else:
        stations[(d_heart > 0) & (d_heart <= 6.0)] = S1
        organs[d_heart <= 0] = HEART
        for oid in (SPINE, STERNUM):  # distractors, anywhere
            c = rng.uniform(0.15, 0.85, 3) * extent
            d = _sphere_field(TOY_SHAPE, c, sp) - rng.uniform(4.0, 7.0)
            organs[(d <= 0) & (organs == 0)] = oid
        stations[organs > 0] = 0
    ct = rng.normal(40.0, 20.0, TOY_SHAPE)
    ct = ndimage.gaussian_filter(ct, 0.7)
    return {"ct": np.round(ct).astype(np.int16), "organs": organs, "stations": stations}


def _key_organs_case(rng: np.random.Generator, sp: np.ndarray,
                     extent: np.ndarray) -> dict[str, np.ndarray]:
    organs = np.zeros(TOY_SHAPE, np.uint8)
    stations = np.zeros(TOY_SHAPE, np.uint8)
    radii = rng.uniform(5.0, 7.0, len(KEY_INFORMATIVE))
    lo, hi = (radii.max() + KEY_SHELL_MM) / extent, 1 - (radii.max() + KEY_SHELL_MM) / extent
    while True:  # informative spheres with their shells apart, inside the volume
        centres = rng.uniform(lo, hi, (len(KEY_INFORMATIVE), 3)) * extent
        gaps = [np.linalg.norm(centres[i] - centres[j]) - radii[i] - radii[j]
                for i in range(len(radii)) for j in range(i)]
        if min(gaps) > 2 * KEY_SHELL_MM + 2.0:
            break
    for key, station, c, r in zip(KEY_INFORMATIVE, KEY_STATIONS, centres, radii):
        d = _sphere_field(TOY_SHAPE, c, sp) - r
        organs[d <= 0] = schema.ORGANS.by_key(key).id
        stations[(d > 0) & (d <= KEY_SHELL_MM)] = schema.STATIONS.by_key(station).id
    for key in KEY_NOISE:  # blobs anywhere; the informative organs keep their voxels
        for _ in range(int(rng.integers(1, 4))):
            c = rng.uniform(0.1, 0.9, 3) * extent
            d = _sphere_field(TOY_SHAPE, c, sp) - rng.uniform(3.0, 6.0)
            organs[(d <= 0) & (organs == 0)] = schema.ORGANS.by_key(key).id
    ct = ndimage.gaussian_filter(rng.normal(40.0, 20.0, TOY_SHAPE), 0.7)
    return {"ct": np.round(ct).astype(np.int16), "organs": organs, "stations": stations}


def write_toy_cohort(out: str | os.PathLike, n_cases: int, *, kind: str = "between",
                     seed: int = 0, n_folds: int = 4, cases_per_patient: int = 1) -> Cohort:
    """Write ``n_cases`` toy cases (``toy_000``, ...) as a cohort (4 patient-level folds;
    ``cases_per_patient`` consecutive cases share a patient)."""
    if cases_per_patient < 1:
        raise ValueError("cases_per_patient must be >= 1")
    with CohortWriter(out, generator="deepstationing.toy", n_folds=n_folds, seed=seed) as w:
        for i in range(n_cases):
            case_id = f"toy_{i:03d}"
            arrays = toy_case(i, kind=kind, seed=seed)
            folder = w.case_folder(case_id)
            for role in ("ct", "organs", "stations"):
                write_image(Image(arrays[role], TOY_SPACING), folder / f"{role}.nii.gz")
            w.add_case(case_id, patient=None if cases_per_patient == 1
                       else f"p{i // cases_per_patient:03d}")
        return w.finish(kind=kind, seed=seed)


def read_toy_case(case: Case) -> dict[str, np.ndarray]:
    """The arrays of a written toy case (as :func:`toy_case` returns them)."""
    return {role: read_image(Path(case.path(role)), label=role != "ct").array
            for role in ("ct", "organs", "stations")}
