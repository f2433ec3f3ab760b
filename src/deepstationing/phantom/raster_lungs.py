"""Rasterising the lungs of a phantom slice, the abdomen below the diaphragm, and the lung trees.

Lungs are the thoracic cavity minus the mediastinal envelope, above the diaphragm and below
the apical domes; their label is decided at the slice centre. Their HU has partial volume at
the slice thickness where a dome or the diaphragm crosses the slice: a voxel mixes lung and the
tissue beyond by the fraction of the slab on the lung side (the diaphragm's dome, in a 5 mm
slice, shows as a soft lung-liver gradient, as in real CT). The intrapulmonary trees
(:mod:`.trees`) then change the HU of lung voxels only.

>>> import numpy as np
>>> slab_fraction(np.array([-3.0, 0.0, 1.0, 4.0]), 5.0).tolist()  # surface 0..4 mm below z
[0.0, 0.5, 0.7, 1.0]
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import OID
from deepstationing.phantom.raster_body import deep_lean
from deepstationing.phantom.raster_core import Case, Slice
from deepstationing.phantom.trees import slab_boxes, splat

__all__ = ["lungs", "lung_trees", "slab_fraction"]


def slab_fraction(gap: np.ndarray, dz: float) -> np.ndarray:
    """Fraction of a slab of thickness ``dz`` on the positive side of a surface that lies
    ``gap`` mm below the slab centre (0.5 when the surface crosses the centre)."""
    return np.clip(0.5 + gap / dz, 0.0, 1.0)


def lungs(c: Case, s: Slice) -> np.ndarray | None:
    """Lungs, the abdomen below the diaphragm and the station support (unclaimed envelope);
    the lung mask (body box) or None on slices without lungs."""
    anat, H, z, lv = c.anat, c.H, s.z, c.anat.lv
    body_box, XB, YB, hb = s.body_box, s.XB, s.YB, s.hb
    ebox = s.env[body_box]
    cl = s.claimed[body_box]
    apex_max = max(lv["apex_r"], lv["apex_l"])
    if not (s.cav is not None and z < apex_max and z > lv["bottom"] - 60):
        sup = (ebox < 0) & deep_lean(c, s) & ~cl
        c.support[s.k][body_box] = sup
        hb[sup] = H["fat"]
        return None
    cav_in = s.cav_in
    dia = c.dia_full[body_box]
    above_dia = z > dia
    free = cav_in & ~(ebox < 0) & ~cl  # cavity not taken by the mediastinum
    lung = free & above_dia
    right = XB < 0.0
    apex = None
    if z > min(lv["apex_r"], lv["apex_l"]) - 60:
        apex = np.where(right, c.apex_full["r"][body_box], c.apex_full["l"][body_box])
        lung &= z < apex
    lb = s.lab[body_box]
    lb[lung & right] = OID["lung_r"]
    lb[lung & ~right] = OID["lung_l"]
    cf = anat.cavity.params(z)
    hb[lung] = _lung_hu(c, cf, YB[lung])
    abd = cav_in & ~above_dia & ~cl
    if abd.any():
        hb[abd] = _abdomen(c, z, cf, XB[abd], YB[abd], dia[abd])
        cl |= abd
    _slab_mix(c, s, free, dia, apex, cf)
    sup = (ebox < 0) & cav_in & ~cl & ~lung & above_dia
    if z >= min(lv["apex_r"], lv["apex_l"]):
        sup |= (ebox < 0) & deep_lean(c, s) & ~cl & ~cav_in
    c.support[s.k][body_box] = sup
    hb[(ebox < 0) & cav_in & ~cl & ~lung] = H["fat"]
    hb[(ebox < 0) & s.deep & ~cl & ~cav_in] = H["fat"]
    return lung


def _lung_hu(c: Case, cf, y: np.ndarray) -> np.ndarray:
    """Lung parenchyma HU at anatomy ``y``: ``lung_hu`` plus the posterior (gravity) gradient
    across the cavity ``cf``."""
    yf, yb2 = cf[1] - cf[3], cf[1] + cf[3]
    grad = np.clip((y - yf) / max(yb2 - yf, 1.0), 0, 1)
    return c.H["lung"] + np.float32(c.anat.p["lung_gravity"]) * grad


def _slab_mix(c: Case, s: Slice, free, dia, apex, cf) -> None:
    """Partial volume of the diaphragm (lung / abdomen) and the apical domes (lung / fat)."""
    z, hb, half = s.z, s.hb, 0.5 * c.dz
    near = free & (np.abs(z - dia) < half)
    if near.any():
        f = slab_fraction((z - dia)[near], c.dz).astype(np.float32)
        tissue = _abdomen(c, z, cf, s.XB[near], s.YB[near], dia[near])
        hb[near] = f * _lung_hu(c, cf, s.YB[near]) + (1 - f) * tissue
    if apex is None:
        return
    near = free & (np.abs(apex - z) < half) & (z > dia)
    if near.any():
        f = slab_fraction((apex - z)[near], c.dz).astype(np.float32)
        hb[near] = f * _lung_hu(c, cf, s.YB[near]) + (1 - f) * c.H["fat"]


def _abdomen(c: Case, z: float, cf, x, y, dia) -> np.ndarray:
    """Liver, stomach (with a fundal air cap) and spleen below the diaphragm (unlabelled):
    the abdominal HU at anatomy ``x, y`` (diaphragm height ``dia`` there)."""
    H = c.H
    liver = x < 12.0 + 0.2 * (y - cf[1])
    st_c = (42.0, cf[1] - 12.0)
    stom = ((x - st_c[0]) / 38.0) ** 2 + ((y - st_c[1]) / 30.0) ** 2 < 1.0
    tissue = np.where(liver, H["liver"], np.where(stom, H["stomach"], H["spleen"]))
    air_cap = stom & ~liver & (z > dia - 18.0) & (y < st_c[1])
    return np.where(air_cap, H["air"], tissue).astype(np.float32)


def lung_trees(c: Case, s: Slice, lung_mask: np.ndarray | None) -> None:
    """Arteries, veins and bronchi (wall and air lumen) of the trees, inside the lung only."""
    trees = c.anat.trees
    if trees is None or lung_mask is None or not lung_mask.any():
        return
    idx = trees.active(s.z, 0.5 * c.dz)
    if idx.size == 0:
        return
    boxes = c.grid.pixel_boxes(slab_boxes(trees, idx, s.z, 0.5 * c.dz))
    pix = np.array([(b[0].start, b[0].stop, b[1].start, b[1].stop) if b else (0, 0, 0, 0)
                    for b in boxes], np.int64).reshape(-1, 4)
    acc = np.zeros((4,) + lung_mask.shape, np.float32)  # ARTERY, VEIN, BRONCHUS, LUMEN
    splat(acc, trees, idx, pix, c.xa, c.ya, s.z, c.dz, c.px, s.body_box,
          c.coords if c.fine else None)
    _paint_trees(c, s, lung_mask, acc)


def _paint_trees(c: Case, s: Slice, lung_mask: np.ndarray, acc: np.ndarray) -> None:
    H, hb = c.H, s.hb
    m = lung_mask.astype(np.float32)
    for a, hu in zip(acc, (H["pulm_arterial"], H["pulm_venous"], H["cartilage"] * 0.6,
                           H["air"])):
        a *= m
        hb += a * (np.float32(hu) - hb)
