"""Generate phantom cases and cohorts (case folders, manifest, patient-level folds).

Case ``k`` of seed ``s`` depends on ``np.random.SeedSequence([s, k])`` only, so it is the same
whatever the cohort size, and cases can be generated in parallel (``workers > 1`` uses a
process pool). Independent child streams are spawned for the anatomy parameters, the
annotator variability, the nodes and the image noise.

Examples
--------
>>> import tempfile
>>> case = generate_case(0, preset="small")
>>> case.ct.shape, case.meta["landmarks"]["z_car"]  # (z, y, x); carina level in mm
((71, 128, 128), -208.305)
>>> seen = []
>>> cohort = generate_cohort(tempfile.mkdtemp(), 4, preset="small", spacing=(11.2, 11.2, 10.0),
...                          progress=lambda done, total, cid, seconds: seen.append(cid))
>>> sorted(seen), cohort.test_ids(0)
(['case_000', 'case_001', 'case_002', 'case_003'], ['case_001'])
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from deepstationing import __version__
from deepstationing.data.atomic import ensure_folder
from deepstationing.data.cohort import CASE_FILES, Cohort, CohortWriter, write_json_atomic
from deepstationing.data.image import Image, write_image
from deepstationing.phantom.acquisition import finish_ct
from deepstationing.phantom.anatomy import Anatomy
from deepstationing.phantom.appearance import hu_table
from deepstationing.phantom.body import fat_thickness
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.landmarks import measure_landmarks
from deepstationing.phantom.nodes import place_nodes
from deepstationing.phantom.params import (
    ACQUISITIONS,
    PRESETS,
    draw_parameters,
    grid_for,
    grid_for_case,
)
from deepstationing.phantom.raster import rasterize
from deepstationing.phantom.stations import build_stations, draw_annotator

__all__ = ["PhantomCase", "generate_case", "generate_cohort", "write_case", "case_id",
           "PHANTOM_VERSION", "GENERATOR"]

log = logging.getLogger(__name__)

#: Bumped whenever the same (seed, index) would produce different voxels.
PHANTOM_VERSION = "2.0"
GENERATOR = "deepstationing.phantom"


def case_id(index: int) -> str:
    return f"case_{index:03d}"


@dataclass
class PhantomCase:
    """One generated case: images sharing one geometry, the node list and the metadata."""

    id: str
    ct: Image
    organs: Image
    stations: Image
    nodes: Image
    nodes_list: list[dict]
    meta: dict
    body: Image | None = None

    def write(self, folder: str | os.PathLike) -> Path:
        """Write the six case files into ``folder`` (see :mod:`deepstationing.data.cohort`)."""
        return write_case(self, folder)


def _grid(p: dict, anat: Anatomy, spacing, shape_xy) -> Grid:
    lv = anat.lv
    nz = int(np.ceil((lv["top"] - lv["bottom"]) / spacing[2])) + 1
    nx, ny = shape_xy
    origin = (-(nx - 1) / 2 * spacing[0], -(ny - 1) / 2 * spacing[1],
              round(lv["bottom"] + p["z_carina_world"], 3))
    return Grid(tuple(spacing), (nz, ny, nx), origin, float(np.deg2rad(p["rot_z_deg"])),
                (p["shift_x"], p["shift_y"], p["z_carina_world"]))


def generate_case(index: int, *, seed: int = 0, preset: str = "small",
                  spacing: tuple[float, float, float] | None = None,
                  acquisition: str = "fixed", timings: dict | None = None) -> PhantomCase:
    """Generate phantom case ``index`` of cohort ``seed`` on the ``preset`` grid.

    Args:
        index: case number (>= 0); the case id is ``case_{index:03d}``.
        seed: cohort seed; the case depends on ``(seed, index)`` only.
        preset: ``"full"`` (512 x 512, 0.7 x 0.7 x 5 mm) or ``"small"`` (128 x 128,
            2.8 x 2.8 x 5 mm); see :data:`~deepstationing.phantom.params.PRESETS`.
        spacing: optional ``(x, y, z)`` spacing in mm replacing the preset's (same field of
            view).
        acquisition: ``"fixed"`` (the preset's grid) or ``"varied"`` (the preset's matrix over
            the case's own field of view ``fov_mm`` 300-500 mm, slices of ``slice_mm``
            1-5 mm); see :func:`~deepstationing.phantom.params.grid_for_case`.
        timings: optional dict that receives the seconds spent per stage.

    Returns:
        :class:`PhantomCase` with ``ct`` (int16 HU), ``organs`` (uint8), ``stations`` (uint8),
        ``nodes`` (uint16 instance map), ``nodes_list``, ``meta`` and ``body`` (the body mask:
        torso, breasts and arms; not written to disk).
    """
    if index < 0:
        raise ValueError("case index must be >= 0")
    t = [time.perf_counter()]
    ss = np.random.SeedSequence([int(seed), int(index)])
    s_par, s_ann, s_nod, s_noise, s_tree = ss.spawn(5)
    p = draw_parameters(np.random.default_rng(s_par))
    sp, shape_xy = grid_for_case(preset, p, spacing, acquisition)
    anat = Anatomy(p, tree_seed=s_tree)
    grid = _grid(p, anat, sp, shape_xy)
    hu = hu_table(p)
    ras = rasterize(anat, grid, hu)
    t.append(time.perf_counter())
    lm = measure_landmarks(ras.organs, grid.spacing, grid.origin,
                           anat.lv["dia"] + grid.shift[2])
    annot = draw_annotator(np.random.default_rng(s_ann), p["annot_amp"])
    stations = build_stations(anat, grid, ras.organs, ras.support, ras.z_anat, ras.xa, ras.ya,
                              lm, annot)
    t.append(time.perf_counter())
    nodes, nodes_list, counts = place_nodes(stations, ras.organs, ras.hu, grid.spacing,
                                            grid.origin, np.random.default_rng(s_nod))
    t.append(time.perf_counter())
    ct = finish_ct(ras.hu, p, hu, anat, grid, np.random.default_rng(s_noise), ras.body)
    t.append(time.perf_counter())
    meta = _meta(index, seed, preset, acquisition, grid, p, anat, ras, hu)
    meta.update({"annotator": annot, "landmarks": lm, "nodes_per_station": counts})
    if timings is not None:
        timings.update({k: t[i + 1] - t[i] for i, k in
                        enumerate(("anatomy_raster", "stations", "nodes", "noise"))})
        timings["total"] = t[-1] - t[0]
    geo = {"spacing": grid.spacing, "origin": grid.origin}
    return PhantomCase(meta["id"], Image(ct, **geo), Image(ras.organs, **geo),
                       Image(stations, **geo), Image(nodes, **geo), nodes_list, meta,
                       Image(ras.body.astype(np.uint8), **geo))


def _meta(index, seed, preset, acquisition, grid, p, anat, ras, hu) -> dict:
    table = ras.extras["table"]
    return {
        "id": case_id(index),
        "index": int(index),
        "seed": int(seed),
        "preset": preset,
        "acquisition": acquisition,
        "generator": GENERATOR,
        "version": PHANTOM_VERSION,
        "package_version": __version__,
        "spacing": list(grid.spacing),
        "shape_zyx": list(grid.shape),
        "origin": list(grid.origin),
        "world_from_anatomy": {"rot_z_deg": p["rot_z_deg"],
                               "shift_mm": list(grid.shift)},
        "params": p,
        "levels_anatomy_mm": {k: round(float(v), 3) for k, v in anat.lv.items()},
        "body": {"fat_mm": round(fat_thickness(p), 2),
                 "table_top_y_world": round(float(table.y_top), 2),
                 "table_radius_mm": round(float(table.radius), 1),
                 "lung_tree_segments": int(len(anat.trees.a)) if anat.trees else 0},
        "hu_table": {k: round(float(v), 2) for k, v in hu.items()},
    }


def write_case(case: PhantomCase, folder: str | os.PathLike) -> Path:
    """Write a case's NIfTI files, ``nodes.json`` and ``meta.json`` into ``folder``."""
    d = ensure_folder(folder)
    for role in ("ct", "organs", "stations", "nodes"):
        write_image(getattr(case, role), d / CASE_FILES[role])
    write_json_atomic(case.nodes_list, d / CASE_FILES["nodes_json"])
    write_json_atomic(case.meta, d / CASE_FILES["meta"])
    return d


def _work(args):
    index, seed, preset, spacing, acquisition, out = args
    t = time.perf_counter()
    case = generate_case(index, seed=seed, preset=preset, spacing=spacing,
                         acquisition=acquisition)
    write_case(case, Path(out) / case.id)
    return index, time.perf_counter() - t


def generate_cohort(out_dir: str | os.PathLike, n_cases: int, *, seed: int = 0,
                    preset: str = "small", spacing=None, n_folds: int = 4, workers: int = 1,
                    progress: Callable[[int, int, str, float], None] | None = None,
                    name: str | None = None, acquisition: str = "fixed") -> Cohort:
    """Generate ``n_cases`` cases into ``out_dir`` and write ``manifest.json``.

    Refuses (``InputError``) a non-empty folder that is not a phantom cohort; an existing
    phantom cohort is replaced. The cohort is built beside ``out_dir`` and renamed into
    place when complete (:class:`~deepstationing.data.cohort.CohortWriter`), so an
    interrupted run never looks like a finished cohort and never leaves a half-replaced one.

    ``progress(done, total, case_id, seconds)`` is called after each case is written (the
    command line prints it); each case is also logged (``logging``, level INFO).
    ``acquisition="varied"`` gives every case its own field of view and slice thickness
    (:func:`generate_case`); the manifest then records ``spacing: null``.
    """
    if n_cases < 1:
        raise ValueError("n_cases must be >= 1")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; choose from "
                         f"{', '.join(ACQUISITIONS)}")
    if acquisition == "varied" and spacing is not None:
        raise ValueError("a varied acquisition draws its own spacing; do not give spacing")
    out = Path(out_dir)
    sp = None if spacing is None else tuple(float(s) for s in spacing)
    t0 = time.perf_counter()
    done = 0

    def report(i, dt):
        log.info("phantom case %s written (%d/%d, %.2f s)", case_id(i), done, n_cases, dt)
        if progress:
            progress(done, n_cases, case_id(i), dt)

    # a failure (also a pool's killed workers) removes the whole staging folder
    with CohortWriter(out, generator=GENERATOR, n_folds=n_folds, seed=seed, name=name) as writer:
        jobs = [(i, int(seed), preset, sp, acquisition, str(writer.staging))
                for i in range(n_cases)]
        if workers > 1 and n_cases > 1:
            with get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
                for i, dt in pool.imap_unordered(_work, jobs):
                    done += 1
                    report(i, dt)
        else:
            for job in jobs:
                i, dt = _work(job)
                done += 1
                report(i, dt)
        for i in range(n_cases):
            writer.add_case(case_id(i))
        grid_sp = list(grid_for(preset, sp)[0]) if acquisition == "fixed" else None
        cohort = writer.finish(version=PHANTOM_VERSION, preset=preset, seed=int(seed),
                               spacing=grid_sp, acquisition=acquisition)
    log.info("wrote %d phantom cases to %s in %.1f s", n_cases, out, time.perf_counter() - t0)
    return cohort
