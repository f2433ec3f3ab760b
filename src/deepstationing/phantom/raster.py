"""Rasterisation of a phantom anatomy: organ labels, noise-free HU and the station support.

Rasterisation runs slice by slice and, per part, only inside the part's bounding box on that
slice: body layers (skin, subcutaneous fat, muscle), chest-wall bones (ribs, scapulae), the
organs in label-priority order, the lungs and the abdomen below the diaphragm, the lung
decorations, and finally the organ HU blended by their soft occupancy. Thin or oblique
structures (``Part.pv``) get partial volume across the slice by averaging their soft
occupancy over three sub-slices (z - dz/3, z, z + dz/3); label maps use the slice centre.

>>> import numpy as np
>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.appearance import hu_table
>>> from deepstationing.phantom.grid import Grid
>>> from deepstationing.phantom.params import draw_parameters
>>> p = draw_parameters(np.random.default_rng(0))
>>> anat = Anatomy(p)
>>> grid = Grid((8.0, 8.0, 10.0), (3, 48, 48), (-188.0, -188.0, -20.0), 0.0, (0.0, 0.0, 0.0))
>>> res = rasterize(anat, grid, hu_table(p))
>>> res.organs.shape, bool((res.organs == OID["lung_r"]).any())
((3, 48, 48), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepstationing.phantom.anatomy import Anatomy
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.parts import OID, Part
from deepstationing.phantom.shapes import Column, Tube

__all__ = ["RasterResult", "rasterize"]


@dataclass
class RasterResult:
    organs: np.ndarray  # uint8 [z, y, x]
    hu: np.ndarray  # float32 [z, y, x], noise-free
    support: np.ndarray  # bool: mediastinal fat where stations may live
    z_anat: np.ndarray  # anatomy z of every slice
    xa: np.ndarray  # anatomy x of every pixel (2D)
    ya: np.ndarray
    extras: dict = field(default_factory=dict)


class _Evaluator:
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


def _part_boxes(grid: Grid, shape, za: np.ndarray, subs, pad: float) -> list:
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


def _limits(part: Part, px: float, fine: bool):
    """``(high, low)`` for :meth:`Part.sd` in :func:`rasterize`: one value per evaluated
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
             "vertebra": lambda lk: lk[1]}.get(kind)
    lo0 = -max(thick(part.look) if thick else 0.0, 0.5 * px) - 0.01
    if not part.pv:
        return hi0, lo0
    hs = 0.5 * px + 0.01
    return np.array([hi0, hs, hs]), np.array([lo0, -hs, -hs])


def _soft(sd: np.ndarray, px: float) -> np.ndarray:
    """Soft occupancy ``clip(0.5 - sd / px, 0, 1)`` (maximum/minimum: the same values as
    ``np.clip`` without its Python overhead)."""
    a = sd / np.float32(px)
    np.subtract(np.float32(0.5), a, out=a)
    np.maximum(a, 0.0, out=a)
    return np.minimum(a, 1.0, out=a)


def _part_hu(part: Part, sd: np.ndarray, hu: dict, z: float, anat: Anatomy, dz: float):
    kind = part.look[0]
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
class _Case:
    """What :func:`rasterize` computes once per case (boxes, surfaces, limits, outputs)."""

    anat: Anatomy
    grid: Grid
    hu: dict  # tissue -> HU (floats, for :func:`_part_hu`)
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
    deco_boxes: list
    body_boxes: list
    dia_full: np.ndarray
    apex_full: dict
    limits: list
    deco_high: float | None
    organs: np.ndarray
    hu_vol: np.ndarray
    support: np.ndarray


@dataclass
class _Slice:
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
    body_full: np.ndarray
    deep: np.ndarray
    cav: object
    cav_in: np.ndarray
    sd_cav: np.ndarray | None = None


def _prepare(anat: Anatomy, grid: Grid, hu: dict[str, float]) -> _Case:
    nz, ny, nx = grid.shape
    sx, _, dz = grid.spacing
    px = float(sx)
    xa, ya = grid.anatomy_xy()
    zw = grid.slice_z_world()
    za = zw - grid.shift[2]
    sub = (-dz / 3.0, dz / 3.0)
    fine = px < 1.0  # evaluate primitives on a 2x coarser grid and interpolate
    # per-slice pixel boxes of every structure, computed once (vectorised over the slices)
    part_boxes = [_part_boxes(grid, pt.shape, za, sub if pt.pv else (),
                              pt.pad if pt.claim else 0.0) for pt in anat.parts]
    deco_boxes = [_part_boxes(grid, pt.shape, za, (), 0.0) for pt in anat.decorations]
    body_boxes = _part_boxes(grid, anat.body, za, (), 0.0)
    # surfaces that depend on (x, y) only: once per case (elementwise, so the same values)
    dia_full = anat.diaphragm(xa, ya)
    apex_full = {sd_: anat.apex_surface(xa, ya, sd_) for sd_ in ("r", "l")}
    for shp in [anat.body, anat.cavity] + [pt.shape for pt in anat.parts]:
        if isinstance(shp, Column):
            shp.prepare(za)
    coords = grid.coords(np.arange(ny + 4), np.arange(nx + 4)) if fine else (xa, ya)
    # Where the outputs look at a structure's signed distance: its sign, the soft edge
    # (|sd| < px / 2), the envelope (sd < pad) and the wall shading (sd < -wall). Values
    # beyond those limits need not be exact (:meth:`Part.sd` ``high``/``low``), so tubes
    # skip far segments. Not at fine pixels: there the values are interpolated from a
    # coarser grid, and every coarse value counts.
    limits = [_limits(pt, px, fine) for pt in anat.parts]
    return _Case(anat, grid, hu, {k: np.float32(v) for k, v in hu.items()}, px, dz, sub, fine,
                 xa, ya, za, coords, part_boxes, deco_boxes, body_boxes, dia_full, apex_full,
                 limits, None if fine else px / 2 + 0.01,
                 np.zeros((nz, ny, nx), np.uint8), np.empty((nz, ny, nx), np.float32),
                 np.zeros((nz, ny, nx), bool))


def _body_layers(c: _Case, k: int) -> _Slice | None:
    """Skin, subcutaneous fat, muscle and the fat of the thoracic cavity on slice ``k``."""
    anat, H = c.anat, c.H
    ny, nx = c.grid.shape[1:]
    z = float(c.za[k])
    hs = c.hu_vol[k]
    hs.fill(H["air"])
    body_box = c.body_boxes[k]
    if body_box is None:
        return None
    XB, YB = c.xa[body_box], c.ya[body_box]
    sd_body = anat.body.sd(XB, YB, z)
    hb = hs[body_box]
    inside = sd_body < 0
    body_full = np.zeros((ny, nx), bool)
    body_full[body_box] = inside
    hb[inside] = H["fat"]
    deep = sd_body < -anat.p["fat_subcut"]
    hb[deep] = H["muscle"]
    hb[(sd_body < 0) & (sd_body > -1.5)] = H["skin"]
    cav = anat.cavity.bbox(z)
    cav_in = np.zeros(XB.shape, bool)
    s = _Slice(k, z, c.organs[k], hs, np.zeros((ny, nx), bool),
               np.full((ny, nx), np.inf, np.float32), body_box, XB, YB, hb, body_full, deep,
               cav, cav_in)
    if cav is not None:
        s.sd_cav = anat.cavity.sd(XB, YB, z)
        s.cav_in = s.sd_cav < 0
        hb[s.cav_in] = H["fat"]
    return s


def _chest_wall_bones(c: _Case, s: _Slice) -> None:
    """Ribs (a helical pattern in the chest wall, costal cartilage anteriorly) and scapulae."""
    if s.cav is None:
        return
    anat, H, z, lv = c.anat, c.H, s.z, c.anat.lv
    XB, YB, hb, sd_cav = s.XB, s.YB, s.hb, s.sd_cav
    apex_max = max(lv["apex_r"], lv["apex_l"])
    if lv["dia"] - 75 < z < apex_max + 5:
        band = (sd_cav >= 0.5) & (sd_cav < 7.0)
        if band.any():
            yc = anat.cavity.params(z)[1]
            phi = np.arctan2(XB[band], -(YB[band] - yc))  # 0 anterior, +-pi posterior
            g = 1.0 - np.abs(phi) / np.pi  # 1 anterior .. 0 posterior
            ph = anat.p["rib_phase"] * 26.0
            u = np.mod(z + 110.0 * g + ph, 26.0)
            is_rib = (u < 9.0) & (np.abs(phi) > 0.3)
            w = (sd_cav[band] - 0.5) / 6.5
            cortex = (w < 0.25) | (w > 0.75) | (u < 1.8) | (u > 7.2)
            rib_hu = np.where(cortex, H["cortex"] * 0.7, H["bone"])
            cart = np.abs(phi) < 0.55
            rib_hu = np.where(cart, H["cartilage"], rib_hu)
            vals = hb[band]
            vals[is_rib] = rib_hu[is_rib]
            hb[band] = vals
            # scapulae: plates in the posterolateral wall
        if lv["notch"] + 30 > z > -80:
            sc_band = (sd_cav > 12.0) & (sd_cav < 17.0) & s.deep
            if sc_band.any():
                yc = anat.cavity.params(z)[1]
                phi = np.abs(np.arctan2(XB[sc_band], -(YB[sc_band] - yc)))
                vals = hb[sc_band]
                vals[(phi > 1.9) & (phi < 2.55)] = H["cortex"] * 0.55
                hb[sc_band] = vals


def _eval_part(c: _Case, s: _Slice, pi: int, part: Part, box):
    """Signed distance of ``part`` in ``box`` at the slice centre (``sd``), at the centre and
    both sub-slices for partial-volume parts (``sd3``, else None), and the position along the
    tube for callable labels (``u``)."""
    ev = _Evaluator(c.coords, box, c.fine)
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


def _organs(c: _Case, s: _Slice) -> list:
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
            s3 = _soft(sd3, px)  # centre and both sub-slices at once
            alpha = s3[0] + s3[1]
            alpha += s3[2]
            alpha *= np.float32(1.0 / 3.0)
        else:
            if not ins.any():
                continue
            alpha = _soft(sd, px)
        alpha *= bin_
        if not alpha.any():
            continue
        if ins.any():
            _claim(s, part, box, ins, u, c.xa[box])
        evals.append((part, box, sd, alpha))
    return evals


def _claim(s: _Slice, part: Part, box, ins: np.ndarray, u, X: np.ndarray) -> None:
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


def _lungs(c: _Case, s: _Slice) -> np.ndarray | None:
    """Lungs (cavity minus envelope, above the diaphragm, below the apical domes), the abdomen
    below the diaphragm and the station support (unclaimed envelope); the lung mask (body
    box) or None on slices without lungs."""
    anat, H, z, lv = c.anat, c.H, s.z, c.anat.lv
    body_box, XB, YB, hb = s.body_box, s.XB, s.YB, s.hb
    ebox = s.env[body_box]
    cl = s.claimed[body_box]
    apex_max = max(lv["apex_r"], lv["apex_l"])
    if not (s.cav is not None and z < apex_max and z > lv["bottom"] - 60):
        sup = (ebox < 0) & s.deep & ~cl
        c.support[s.k][body_box] = sup
        hb[sup] = H["fat"]
        return None
    cav_in = s.cav_in
    above_dia = z > c.dia_full[body_box]
    lung = cav_in & ~(ebox < 0) & ~cl & above_dia
    right = XB < 0.0
    if z > min(lv["apex_r"], lv["apex_l"]) - 60:
        lung &= np.where(right, z < c.apex_full["r"][body_box], z < c.apex_full["l"][body_box])
    lb = s.lab[body_box]
    lb[lung & right] = OID["lung_r"]
    lb[lung & ~right] = OID["lung_l"]
    cf = anat.cavity.params(z)
    yf, yb2 = cf[1] - cf[3], cf[1] + cf[3]
    grad = np.clip((YB - yf) / max(yb2 - yf, 1.0), 0, 1)
    lung_hu = H["lung"] + np.float32(anat.p["lung_gravity"]) * grad
    hb[lung] = lung_hu[lung]
    _abdomen(c, s, cav_in & ~above_dia & ~cl, cf, cl)
    sup = (ebox < 0) & cav_in & ~cl & ~lung & above_dia
    if z >= min(lv["apex_r"], lv["apex_l"]):
        sup |= (ebox < 0) & s.deep & ~cl & ~cav_in
    c.support[s.k][body_box] = sup
    hb[(ebox < 0) & cav_in & ~cl & ~lung] = H["fat"]
    hb[(ebox < 0) & s.deep & ~cl & ~cav_in] = H["fat"]
    return lung


def _abdomen(c: _Case, s: _Slice, abd: np.ndarray, cf, cl: np.ndarray) -> None:
    """Liver, stomach (with a fundal air cap) and spleen below the diaphragm (unlabelled)."""
    if not abd.any():
        return
    H, XB, YB, z = c.H, s.XB, s.YB, s.z
    dia = c.dia_full[s.body_box]
    liver = XB < 12.0 + 0.2 * (YB - cf[1])
    st_c = (42.0, cf[1] - 12.0)
    stom = ((XB - st_c[0]) / 38.0) ** 2 + ((YB - st_c[1]) / 30.0) ** 2 < 1.0
    tissue = np.where(liver, H["liver"], np.where(stom, H["stomach"], H["spleen"]))
    air_cap = stom & ~liver & (z > dia - 18.0) & (YB < st_c[1])
    tissue = np.where(air_cap, H["air"], tissue)
    s.hb[abd] = tissue[abd]
    cl |= abd


def _decorations(c: _Case, s: _Slice, lung_mask: np.ndarray | None) -> None:
    """Intrapulmonary vessels and bronchi: HU inside the lung only."""
    if lung_mask is None or not lung_mask.any():
        return
    ny, nx = c.grid.shape[1:]
    px, z, sub = c.px, s.z, c.sub
    lung_full = np.zeros((ny, nx), bool)
    lung_full[s.body_box] = lung_mask
    for part, boxes in zip(c.anat.decorations, c.deco_boxes):
        box = boxes[s.k]
        if box is None:
            continue
        shp = part.shape
        ev = _Evaluator(c.coords, box, c.fine)
        if px < 2.0:  # sub-slice partial volume only where vessels span pixels
            sds = ev(lambda A, B, zz, s_=shp: s_.sd(A, B, zz, thr=c.deco_high),
                     np.array([z, z + sub[0], z + sub[1]]))
            sd0 = sds[0]
            s3 = _soft(sds, px)
            alpha = s3[0] + s3[1]
            alpha += s3[2]
            alpha /= 3.0
        else:
            sd0 = ev(lambda A, B, zz, s_=shp: s_.sd(A, B, zz, thr=c.deco_high), z)
            alpha = _soft(sd0, px)
        alpha *= lung_full[box]
        if not alpha.any():
            continue
        hv = _part_hu(part, sd0, c.hu, z, c.anat, c.dz)
        h = s.hs[box]
        h += alpha * (hv - h)


def _blend(c: _Case, s: _Slice, evals: list) -> None:
    """Organ HU, lowest priority first so that the highest wins the blend."""
    for part, box, sd, alpha in reversed(evals):
        hv = _part_hu(part, sd, c.hu, s.z, c.anat, c.dz)
        h = s.hs[box]
        h += alpha * (hv - h)


def rasterize(anat: Anatomy, grid: Grid, hu: dict[str, float]) -> RasterResult:
    """Rasterise ``anat`` on ``grid``: organ labels, noise-free HU and the station support."""
    c = _prepare(anat, grid, hu)
    for k in range(grid.shape[0]):
        s = _body_layers(c, k)
        if s is None:
            continue
        _chest_wall_bones(c, s)
        evals = _organs(c, s)
        lung = _lungs(c, s)
        _decorations(c, s, lung)
        _blend(c, s, evals)
    return RasterResult(c.organs, c.hu_vol, c.support, c.za, c.xa, c.ya)
