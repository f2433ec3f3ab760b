"""Shared pieces of the phantom's rasteriser: the per-case and per-slice state, the evaluator of
signed distances on pixel boxes, the soft occupancy and the HU of a part's look.

>>> import numpy as np
>>> soft(np.array([-1.0, 0.0, 0.35, 2.0], np.float32), 0.7).tolist()
[1.0, 0.5, 0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepstationing.phantom.anatomy import Anatomy
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.parts import Part

__all__ = ["RasterResult", "Case", "Slice", "Evaluator", "part_boxes", "limits", "soft",
           "part_hu"]


@dataclass
class RasterResult:
    organs: np.ndarray  # uint8 [z, y, x]
    hu: np.ndarray  # float32 [z, y, x], noise-free
    support: np.ndarray  # bool: mediastinal fat where stations may live
    z_anat: np.ndarray  # anatomy z of every slice
    xa: np.ndarray  # anatomy x of every pixel (2D)
    ya: np.ndarray
    body: np.ndarray | None = None  # bool [z, y, x]: torso, breasts and arms
    extras: dict = field(default_factory=dict)


class Evaluator:
    """Evaluates ``fn(x, y, z)`` on a pixel box, directly or (``coarse``) at every second
    row/column followed by bilinear interpolation. Signed distances are smooth at the pixel
    scale, so this is accurate to ~0.1 mm at 0.7 mm pixels and 4x cheaper."""

    def __init__(self, coords: tuple[np.ndarray, np.ndarray], box, coarse: bool):
        """``coords``: anatomy ``(x, y)`` of every pixel, for ``coarse`` of a grid extended
        by 4 rows and columns (:meth:`Grid.coords` of ``0 .. n + 3``)."""
        self.box, self.coarse = box, coarse
        r0, r1 = box[0].start, box[0].stop
        c0, c1 = box[1].start, box[1].stop
        self.h, self.w = r1 - r0, c1 - c0
        if coarse:
            sl = (slice(r0, r0 + 2 * (self.h // 2 + 2), 2),
                  slice(c0, c0 + 2 * (self.w // 2 + 2), 2))
            self.X, self.Y = coords[0][sl], coords[1][sl]
        else:
            self.X, self.Y = coords[0][box], coords[1][box]

    def _up(self, c: np.ndarray) -> np.ndarray:
        hc, wc = c.shape[-2:]
        f = np.empty(c.shape[:-2] + (2 * hc - 1, 2 * wc - 1), np.float32)
        f[..., ::2, ::2] = c
        f[..., 1::2, ::2] = 0.5 * (c[..., :-1, :] + c[..., 1:, :])
        f[..., 1::2] = 0.5 * (f[..., :-2:2] + f[..., 2::2])
        return f[..., : self.h, : self.w]

    def __call__(self, fn, z):
        res = fn(self.X, self.Y, z)
        if not self.coarse:
            return res
        if isinstance(res, tuple):
            return tuple(self._up(r) for r in res)
        return self._up(res)


def part_boxes(grid: Grid, shape, za: np.ndarray, subs, pad: float) -> list:
    """Pixel box of ``shape`` on every slice (None where absent): its bounding box at the slice
    centre, united with those at the sub-slice heights ``za + d`` (``d`` in ``subs``), grown
    by ``pad``; the same values as per-slice :meth:`bbox` + :meth:`Grid.pixel_box` calls."""
    B = shape.bboxes(za)
    for d in subs:
        B2 = shape.bboxes(za + d)
        B = np.stack([np.fmin(B[:, 0], B2[:, 0]), np.fmax(B[:, 1], B2[:, 1]),
                      np.fmin(B[:, 2], B2[:, 2]), np.fmax(B[:, 3], B2[:, 3])], axis=1)
    if pad:
        B = np.stack([B[:, 0] - pad, B[:, 1] + pad, B[:, 2] - pad, B[:, 3] + pad], axis=1)
    return grid.pixel_boxes(B)


def limits(part: Part, px: float, fine: bool):
    """``(high, low)`` for :meth:`Part.sd` in :func:`.raster.rasterize`: one value per evaluated
    height (the slice centre, then the partial-volume sub-slices) or a number (no
    sub-slices); ``(None, None)`` (exact values) on fine grids.

    Above ``high`` no output changes: the label (sd < 0), the soft edge (zero from
    sd >= px / 2), the envelope (``sd - pad < 0``) and the HU look (thresholds below 0).
    Below ``low`` neither: the soft edge is 1 below -px / 2 and the wall / bone shading
    only asks ``sd < -thickness``. Sub-slices feed only the soft edge. 0.01 mm spare."""
    if fine:
        return None, None
    pad = part.pad if part.claim else 0.0
    hi0 = max(pad, 0.5 * px) + 0.01
    kind = part.look[0]
    thick = {"wall": lambda lk: lk[3], "bone": lambda lk: lk[1],
             "vertebra": lambda lk: lk[1], "chambers": lambda lk: 10.5}.get(kind)
    lo0 = -max(thick(part.look) if thick else 0.0, 0.5 * px) - 0.01
    if not part.pv:
        return hi0, lo0
    hs = 0.5 * px + 0.01
    return np.array([hi0, hs, hs]), np.array([lo0, -hs, -hs])


def soft(sd: np.ndarray, px: float) -> np.ndarray:
    """Soft occupancy ``clip(0.5 - sd / px, 0, 1)`` (maximum/minimum: the same values as
    ``np.clip`` without its Python overhead)."""
    a = sd / np.float32(px)
    np.subtract(np.float32(0.5), a, out=a)
    np.maximum(a, 0.0, out=a)
    return np.minimum(a, 1.0, out=a)


def part_hu(part: Part, sd: np.ndarray, hu: dict, z: float, anat: Anatomy, dz: float,
             X=None, Y=None):
    kind = part.look[0]
    if kind == "chambers":
        return anat.shapes["chambers"].hu(X, Y, z, sd, hu)
    if kind == "solid":
        return np.float32(hu[part.look[1]])
    if kind == "wall":
        _, wall, lumen, w = part.look
        return np.where(sd < -w, np.float32(hu[lumen]), np.float32(hu[wall]))
    if kind == "bone":
        return np.where(sd < -part.look[1], np.float32(hu["bone"]), np.float32(hu["cortex"]))
    if kind == "vertebra":
        f = anat.vertebra_bone_fraction(z, dz)
        inner = f * hu["bone"] + (1 - f) * hu["disc"]
        outer = f * hu["cortex"] + (1 - f) * hu["disc"]
        return np.where(sd < -part.look[1], np.float32(inner), np.float32(outer))
    raise ValueError(kind)




@dataclass
class Case:
    """What :func:`.raster.rasterize` computes once per case (boxes, surfaces, limits) and
    its outputs."""

    anat: Anatomy
    grid: Grid
    hu: dict  # tissue -> HU (floats, for :func:`part_hu`)
    H: dict  # tissue -> HU (float32)
    px: float
    dz: float
    sub: tuple[float, float]
    fine: bool
    xa: np.ndarray
    ya: np.ndarray
    za: np.ndarray
    coords: tuple
    part_boxes: list
    body_boxes: list
    arm_boxes: list
    dia_full: np.ndarray
    apex_full: dict
    limits: list
    background: np.ndarray  # air and the table, one slice
    organs: np.ndarray
    hu_vol: np.ndarray
    support: np.ndarray
    body: np.ndarray  # bool [z, y, x]: inside the body (torso, breasts, arms)
    extras: dict = field(default_factory=dict)


@dataclass
class Slice:
    """The state of one slice while it is rasterised."""

    k: int
    z: float
    lab: np.ndarray
    hs: np.ndarray
    claimed: np.ndarray
    env: np.ndarray
    body_box: tuple
    XB: np.ndarray
    YB: np.ndarray
    hb: np.ndarray
    body_full: np.ndarray  # torso and breasts (the organs live inside)
    deep: np.ndarray
    cav: object
    cav_in: np.ndarray
    sd_cav: np.ndarray | None = None
    deep_lean: np.ndarray | None = None  # under the lean body's fat: the neck's station support
