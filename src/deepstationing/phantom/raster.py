"""Rasterisation of a phantom anatomy: organ labels, noise-free HU and the station support.

Rasterisation runs slice by slice and, per part, only inside the part's bounding box on that
slice: the background (air and the CT table), the body wall (skin, subcutaneous fat, muscle,
breasts; ribs and scapulae; :mod:`.raster_body`), the organs in label-priority order, the lungs
and the abdomen below the diaphragm and the lung trees (:mod:`.raster_lungs`), the arms, and
finally the organ HU blended by their soft occupancy. Thin or oblique structures
(``Part.pv``) get partial volume across the slice by averaging their soft occupancy over three
sub-slices (z - dz/3, z, z + dz/3); label maps use the slice centre.

>>> import numpy as np
>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.appearance import hu_table
>>> from deepstationing.phantom.grid import Grid
>>> from deepstationing.phantom.params import draw_parameters
>>> p = draw_parameters(np.random.default_rng(0))
>>> anat = Anatomy(p)
>>> grid = Grid((8.0, 8.0, 10.0), (3, 64, 64), (-252.0, -252.0, -20.0), 0.0, (0.0, 0.0, 0.0))
>>> res = rasterize(anat, grid, hu_table(p))
>>> res.organs.shape, bool((res.organs == OID["lung_r"]).any())
((3, 64, 64), True)
>>> bool(res.body.sum() > (res.organs > 0).sum())   # the body holds more than the organs
True
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.anatomy import Anatomy
from deepstationing.phantom.body import build_table
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.parts import OID, Part
from deepstationing.phantom.raster_body import body_layers, chest_wall_bones, limbs
from deepstationing.phantom.raster_core import (
    Case,
    Evaluator,
    RasterResult,
    Slice,
    limits,
    part_boxes,
    part_hu,
    soft,
)
from deepstationing.phantom.raster_lungs import lung_trees, lungs
from deepstationing.phantom.shapes import Column, Tube

__all__ = ["RasterResult", "rasterize", "OID"]


def _background(anat: Anatomy, grid: Grid, H: dict) -> tuple[np.ndarray, object]:
    """One slice of air with the CT table (world frame, the same on every slice)."""
    ny, nx = grid.shape[1:]
    table = build_table(anat, grid.rot, grid.shift)
    xw = (grid.origin[0] + np.arange(nx) * grid.spacing[0])[None, :]
    yw = (grid.origin[1] + np.arange(ny) * grid.spacing[1])[:, None]
    hu, _ = table.render(xw, yw, float(grid.spacing[0]), float(H["air"]))
    return np.ascontiguousarray(np.broadcast_to(hu, (ny, nx)), np.float32), table


def _prepare(anat: Anatomy, grid: Grid, hu: dict[str, float]) -> Case:
    nz, ny, nx = grid.shape
    sx, _, dz = grid.spacing
    px = float(sx)
    xa, ya = grid.anatomy_xy()
    za = grid.slice_z_world() - grid.shift[2]
    sub = (-dz / 3.0, dz / 3.0)
    fine = px < 1.0  # evaluate primitives on a 2x coarser grid and interpolate
    # per-slice pixel boxes of every structure, computed once (vectorised over the slices)
    pboxes = [part_boxes(grid, pt.shape, za, sub if pt.pv else (),
                         pt.pad if pt.claim else 0.0) for pt in anat.parts]
    anat.outline.prepare(za)
    for shp in [anat.cavity, anat.lean] + [pt.shape for pt in anat.parts]:
        if isinstance(shp, Column):
            shp.prepare(za)
    coords = grid.coords(np.arange(ny + 4), np.arange(nx + 4)) if fine else (xa, ya)
    H = {k: np.float32(v) for k, v in hu.items()}
    background, table = _background(anat, grid, H)
    c = Case(anat, grid, hu, H, px, dz, sub, fine, xa, ya, za, coords, pboxes,
             part_boxes(grid, anat.outline, za, (), 0.0),
             [part_boxes(grid, arm.limb, za, (), 0.0) for arm in anat.arms],
             anat.diaphragm(xa, ya), {sd_: anat.apex_surface(xa, ya, sd_) for sd_ in "rl"},
             [limits(pt, px, fine) for pt in anat.parts], background,
             np.zeros((nz, ny, nx), np.uint8), np.empty((nz, ny, nx), np.float32),
             np.zeros((nz, ny, nx), bool), np.zeros((nz, ny, nx), bool))
    c.extras["table"] = table
    return c


def _eval_part(c: Case, s: Slice, pi: int, part: Part, box):
    """Signed distance of ``part`` in ``box`` at the slice centre (``sd``), at the centre and
    both sub-slices for partial-volume parts (``sd3``, else None), and the position along the
    tube for callable labels (``u``)."""
    ev = Evaluator(c.coords, box, c.fine)
    z = s.z
    zq = np.array([z, z + c.sub[0], z + c.sub[1]]) if part.pv else z
    hi, lo = c.limits[pi]
    anat = c.anat
    if callable(part.label) and isinstance(part.shape, Tube):
        sd, u = ev(lambda A, B, zz, pt=part, hi=hi, lo=lo: pt.sd(
            anat, A, B, zz, with_param=True, high=hi, low=lo), zq)
    else:
        sd, u = ev(lambda A, B, zz, pt=part, hi=hi, lo=lo: pt.sd(
            anat, A, B, zz, high=hi, low=lo), zq), None
    if not part.pv:
        return sd, None, u
    return sd[0], sd, None if u is None else u[0]


def _organs(c: Case, s: Slice) -> list:
    """Labels of the parts in priority order (the first claims a voxel), the envelope, and
    the list ``(part, box, sd, alpha)`` whose HU :func:`_blend` paints."""
    evals = []
    px = c.px
    for pi, (part, boxes) in enumerate(zip(c.anat.parts, c.part_boxes)):
        box = boxes[s.k]
        if box is None:
            continue
        sd, sd3, u = _eval_part(c, s, pi, part, box)
        if part.pad > 0 or not part.claim:
            e = s.env[box]
            np.minimum(e, sd - np.float32(part.pad if part.claim else 0.0), out=e)
        if not part.claim:
            continue
        bin_ = s.body_full[box]
        ins = (sd < 0) & bin_
        if part.pv:
            s3 = soft(sd3, px)  # centre and both sub-slices at once
            alpha = s3[0] + s3[1]
            alpha += s3[2]
            alpha *= np.float32(1.0 / 3.0)
        else:
            if not ins.any():
                continue
            alpha = soft(sd, px)
        alpha *= bin_
        if not alpha.any():
            continue
        if ins.any():
            _claim(s, part, box, ins, u, c.xa[box])
        evals.append((part, box, sd, alpha))
    return evals


def _claim(s: Slice, part: Part, box, ins: np.ndarray, u, X: np.ndarray) -> None:
    """Label the voxels ``ins`` of ``box`` not claimed by a part of higher priority."""
    lv_ = part.label(s.z, u, X) if callable(part.label) else part.label
    cl = s.claimed[box]
    new = ins & ~cl
    if np.ndim(lv_) == 0:
        if lv_:
            s.lab[box][new] = lv_
    else:
        s.lab[box][new] = np.asarray(lv_)[new]
    cl |= ins


def _blend(c: Case, s: Slice, evals: list) -> None:
    """Organ HU, lowest priority first so that the highest wins the blend."""
    for part, box, sd, alpha in reversed(evals):
        hv = part_hu(part, sd, c.hu, s.z, c.anat, c.dz, c.xa[box], c.ya[box])
        h = s.hs[box]
        h += alpha * (hv - h)


def rasterize(anat: Anatomy, grid: Grid, hu: dict[str, float]) -> RasterResult:
    """Rasterise ``anat`` on ``grid``: organ labels, noise-free HU, the station support and
    the body mask (torso, breasts and arms)."""
    c = _prepare(anat, grid, hu)
    for k in range(grid.shape[0]):
        s = body_layers(c, k)
        if s is None:
            continue
        chest_wall_bones(c, s)
        evals = _organs(c, s)
        lung = lungs(c, s)
        lung_trees(c, s, lung)
        _blend(c, s, evals)
        limbs(c, s)
    return RasterResult(c.organs, c.hu_vol, c.support, c.za, c.xa, c.ya, c.body,
                        {"table": c.extras["table"]})
