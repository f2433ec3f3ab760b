"""Rasterising the body wall of a phantom slice: skin, subcutaneous fat, muscle, breasts, ribs,
scapulae and the arms (:mod:`.body`). None of it carries an organ label.

Ribs follow a helical pattern in the chest wall (9 mm of every 26 mm along z, descending 110 mm
from back to front, costal cartilage anteriorly); a rib voxel's HU is mixed with the wall by the
fraction of the slice's thickness that the rib covers (:func:`band_fraction`), so thin slices
show crisp ribs and 5 mm slices soft ones.

>>> import numpy as np
>>> band_fraction(np.array([4.0, 9.0, 25.0]), 5.0).round(2).tolist()   # rib: u in [0, 9)
[1.0, 0.5, 0.3]
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.body import fat_thickness, smooth_union
from deepstationing.phantom.raster_core import Case, Slice, soft

__all__ = ["body_layers", "chest_wall_bones", "limbs", "band_fraction", "deep_lean"]

RIB_PERIOD, RIB_WIDTH = 26.0, 9.0


def band_fraction(u: np.ndarray, dz: float, period: float = RIB_PERIOD,
                  width: float = RIB_WIDTH) -> np.ndarray:
    """Fraction of the slab ``[u - dz/2, u + dz/2]`` inside ``[0, width)`` modulo ``period``
    (``u`` in ``[0, period)``, ``dz <= period - width``)."""
    a, b = u - 0.5 * dz, u + 0.5 * dz
    tot = np.zeros_like(u)
    for sh in (-period, 0.0, period):
        tot += np.clip(np.minimum(b, sh + width) - np.maximum(a, sh), 0.0, None)
    return tot / dz


def body_layers(c: Case, k: int) -> Slice | None:
    """Skin, subcutaneous fat, muscle, breasts and the fat of the thoracic cavity on slice
    ``k`` (the slice starts as air and the table)."""
    anat, H = c.anat, c.H
    ny, nx = c.grid.shape[1:]
    z = float(c.za[k])
    hs = c.hu_vol[k]
    hs[...] = c.background
    body_box = c.body_boxes[k]
    if body_box is None:
        return None
    XB, YB = c.xa[body_box], c.ya[body_box]
    sd_t, sd_b = anat.outline.sd_parts(XB, YB, z)
    sd_body = sd_t if sd_b is None else smooth_union(sd_t, sd_b)
    hb = hs[body_box]
    inside = sd_body < 0
    body_full = np.zeros((ny, nx), bool)
    body_full[body_box] = inside
    c.body[k][body_box] = inside
    np.copyto(hb, H["fat"], where=inside)
    deep = sd_t < -fat_thickness(anat.p)
    cav = anat.cavity.bbox(z)
    s = Slice(k, z, c.organs[k], hs, np.zeros((ny, nx), bool),
              np.full((ny, nx), np.inf, np.float32), body_box, XB, YB, hb, body_full, deep,
              cav, np.zeros(XB.shape, bool))
    if cav is not None:
        s.sd_cav = anat.cavity.sd(XB, YB, z)
        s.cav_in = s.sd_cav < 0
    _muscles(c, s)
    if sd_b is not None:
        _breast_glands(c, hb, XB, YB, z, sd_b, deep)
    np.copyto(hb, H["skin"], where=inside & (sd_body > -1.5))
    return s


def deep_lean(c: Case, s: Slice) -> np.ndarray:
    """Under the *lean* body's subcutaneous fat (phantom 1.x's definition): the station
    support in the neck, so that the station truth does not depend on the habitus."""
    if s.deep_lean is None:
        s.deep_lean = c.anat.lean.sd(s.XB, s.YB, s.z) < -c.anat.p["fat_subcut"]
    return s.deep_lean


def _muscles(c: Case, s: Slice) -> None:
    """Chest-wall muscle under the subcutaneous fat: about 38 mm thicker at the back
    (paraspinal), up to 18 mm at the front (pectoral, above the heart), thinnest laterally,
    with a fat plane between the outer and inner layers; deeper tissue beyond it is fat.
    The thoracic cavity is fat (its organs come later)."""
    H, hb, deep = c.H, s.hb, s.deep
    if s.sd_cav is None:
        np.copyto(hb, H["muscle"], where=deep)
        return
    np.copyto(hb, H["fat"], where=s.cav_in)
    wall = deep & ~s.cav_in
    yc = c.anat.cavity.params(s.z)[1]
    x, y, sdc = s.XB[wall], s.YB[wall] - yc, s.sd_cav[wall]
    cos = -y / np.maximum(np.sqrt(x * x + y * y), 1e-3)  # 1 anterior, -1 posterior
    ant = np.clip(cos, 0, 1) ** 2 * (18.0 if s.z > c.anat.lv["heart_top"] - 40 else 8.0)
    thick = 0.6 * c.anat.p["muscle_wall"] + 6.0 + ant + np.clip(-cos, 0, 1) ** 3 * 38.0
    muscle = sdc < thick
    plane = muscle & (np.abs(sdc - 0.5 * thick) < 0.9) & (cos > -0.3)
    hb[wall] = np.where(muscle & ~plane, H["muscle"], H["fat"])


def _breast_glands(c: Case, hb, XB, YB, z: float, sd_b: np.ndarray, deep: np.ndarray) -> None:
    """Fibroglandular tissue in the core of the breasts: a mottled pattern of three waves in
    the fat, denser towards the centre."""
    core = (sd_b < -6.0) & ~deep
    if not core.any():
        return
    x, y = XB[core], YB[core]
    depth = np.clip((-sd_b[core] - 6.0) / 15.0, 0.0, 1.0)
    ph = c.anat.p["breast_size"] * 40.0
    g = np.zeros_like(x)
    for kx, ky, kz in ((0.41, 0.17, 0.21), (-0.23, 0.37, 0.13), (0.19, -0.29, -0.33),
                       (0.07, 0.53, 0.05), (-0.47, -0.11, 0.17)):
        g += np.sin(kx * x + ky * y + kz * z + ph)
        ph *= 1.7
    frac = np.clip(depth * (0.45 + 0.25 * g), 0, 1)
    hb[core] = c.H["fat"] + frac * (c.H["gland"] - c.H["fat"])


def chest_wall_bones(c: Case, s: Slice) -> None:
    """Ribs (with costal cartilage anteriorly) and scapulae (plates in the posterolateral
    wall)."""
    if s.cav is None:
        return
    anat, H, z, lv = c.anat, c.H, s.z, c.anat.lv
    XB, YB, hb, sd_cav = s.XB, s.YB, s.hb, s.sd_cav
    apex_max = max(lv["apex_r"], lv["apex_l"])
    if not lv["dia"] - 75 < z < apex_max + 5:
        return
    band = (sd_cav >= 0.5) & (sd_cav < 7.0)
    yc = anat.cavity.params(z)[1]
    if band.any():
        phi = np.arctan2(XB[band], -(YB[band] - yc))  # 0 anterior, +-pi posterior
        g = 1.0 - np.abs(phi) / np.pi  # 1 anterior .. 0 posterior
        u = np.mod(z + 110.0 * g + anat.p["rib_phase"] * RIB_PERIOD, RIB_PERIOD)
        frac = band_fraction(u, c.dz) * (np.abs(phi) > 0.3)
        w = (sd_cav[band] - 0.5) / 6.5
        rib_hu = np.where((w < 0.25) | (w > 0.75), H["cortex"] * 0.7, H["bone"])
        rib_hu = np.where(np.abs(phi) < 0.55, H["cartilage"], rib_hu)
        vals = hb[band]
        vals += frac.astype(np.float32) * (rib_hu - vals)
        hb[band] = vals
    if lv["notch"] + 30 > z > -80:
        sc_band = (sd_cav > 12.0) & (sd_cav < 17.0) & s.deep
        if sc_band.any():
            phi = np.abs(np.arctan2(XB[sc_band], -(YB[sc_band] - yc)))
            vals = hb[sc_band]
            vals[(phi > 1.9) & (phi < 2.55)] = H["cortex"] * 0.55
            hb[sc_band] = vals


def limbs(c: Case, s: Slice) -> None:
    """The arms outside the torso: skin, fat, muscle, humerus (cortex, marrow; cancellous
    head), with a soft edge to the air."""
    H, z = c.H, s.z
    for arm, boxes in zip(c.anat.arms, c.arm_boxes):
        box = boxes[s.k]
        if box is None:
            continue
        X, Y = c.xa[box], c.ya[box]
        sd = arm.limb.sd(X, Y, z)
        free = ~s.body_full[box]
        out = (sd < 0) & free
        if not out.any():
            continue
        hu = np.where(sd > -1.5, H["skin"], np.where(sd > -arm.fat_mm, H["fat"], H["muscle"]))
        sh = arm.humerus.sd(X, Y, z)
        sd_head = arm.head.sd(X, Y, z)
        bone = np.where(sd_head < 0, H["bone"], H["marrow"])
        sh = np.minimum(sh, sd_head)
        hu = np.where(sh < 0, np.where(sh > -arm.cortex_mm, H["cortex"], bone), hu)
        alpha = soft(sd, c.px) * free
        h = s.hs[box]
        h += alpha * (hu - h)
        c.body[s.k][box] |= out
        # where the arm presses into the torso's skin and fat (the shoulder), its own
        # tissue continues: no skin line inside the body
        ov = (sd < -arm.fat_mm) & ~free
        if ov.any():
            sd_t, _ = c.anat.outline.sd_parts(X, Y, z)
            shell = ov & (sd_t > -fat_thickness(c.anat.p))
            h[shell] = hu[shell]
