"""Phantom anatomy: the levels, the body outline and the organs of one case, in mm.

The anatomy is built in the *anatomy frame* (origin at the carina, +x patient left,
+y posterior, +z superior), following the adult layout of ``stations-spec.md`` C.2, with
every size and position drawn per case (:mod:`.params`). The world frame of the images is the
anatomy frame rotated about z by ``rot_z_deg`` and shifted (:class:`.grid.Grid`).

:class:`Anatomy` computes the landmark levels and the body / thoracic-cavity outline, then runs
the organ-family builders of :mod:`deepstationing.phantom.families` in order; each returns its
:class:`~deepstationing.phantom.parts.Part` s. Lungs are the thoracic cavity minus the
*mediastinal envelope* (every mediastinal organ grown by its fat pad, plus the fat fillers),
cut by the apical domes and the diaphragm (:mod:`.raster`). Unclaimed envelope voxels are
mediastinal fat: the only tissue in which stations and lymph nodes are placed.

>>> import numpy as np
>>> from deepstationing.phantom.params import draw_parameters
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> anat.lv["cric"] > anat.lv["notch"] > anat.lv["archtop"] > 0 > anat.lv["dia"]
True
>>> [pt.name for pt in anat.parts][:2], len(anat.trees.a) > 0
(['canal', 'vertebral_body'], True)
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.body import build_arms, build_outline
from deepstationing.phantom.families import FAMILIES
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.parts import OID, Part
from deepstationing.phantom.shapes import Column, Tube

__all__ = ["Anatomy", "Grid", "Part", "OID"]


class Anatomy:
    """All structures of one case, built from its parameter dict ``p``.

    Attributes of interest to the station builder: ``lv`` (continuous levels in mm: cricoid,
    notch, apices, BCV margin, arch top/bottom, azygos, LPA, diaphragm...), ``tubes`` (the
    centrelines by name), ``shapes`` (other named shapes: ``vertebral_body``, ``heart``,
    ``la``), ``bronchus_ends``, ``pa_bif`` and the per-level helpers (:meth:`trachea_at`,
    :meth:`y_va`). ``parts`` are the rasterised structures in label-priority order, ``trees``
    the intrapulmonary vessel and bronchial trees (:mod:`.trees`). ``outline`` is the body
    outline (torso and breasts), ``body`` the same object, ``arms`` the two upper arms
    (:mod:`.body`).

    ``tree_seed`` seeds the random branching of the lung trees (the case's own stream; without
    it the trees follow from ``p``).
    """

    def __init__(self, p: dict, tree_seed=None):
        self.p = p
        self.tree_seed = tree_seed
        self.tubes: dict[str, Tube] = {}
        self.shapes: dict[str, object] = {}
        self.parts: list[Part] = []
        self.trees = None
        self._levels()
        self._body()
        self.outline = build_outline(self)
        self.body = self.outline
        self.arms = build_arms(self)
        self._build()

    def _build(self) -> None:
        """Run the family builders; order the parts by rank (stable)."""
        parts: list[Part] = []
        for family in FAMILIES:
            for pt in family.build(self):
                pt.rank = pt.rank or family.RANK
                parts.append(pt)
        parts.sort(key=lambda pt: pt.rank)
        self.parts = parts

    # ------------------------------------------------------------------ levels
    def _levels(self) -> None:
        p = self.p
        lv: dict[str, float] = {}
        lv["cric"] = p["trachea_len"]
        lv["apex_r"] = lv["cric"] - p["apex_r_below_cric"]
        lv["apex_l"] = min(lv["apex_r"] + p["apex_l_minus_r"], lv["cric"] - 3.0)
        lv["notch"] = float(np.clip(lv["cric"] - p["notch_below_cric"], 50.0, 82.0))
        lv["notch"] = min(lv["notch"], min(lv["apex_r"], lv["apex_l"]) - 15.0)
        r = p["arch_r"]
        lv["bcv"] = float(np.clip(lv["notch"] - p["bcv_below_notch"], 2 * r + 10, lv["notch"] - 11))
        lv["notch"] = max(lv["notch"], lv["bcv"] + 11)
        lv["archtop"] = float(np.clip(lv["bcv"] - p["archtop_below_bcv"], 2 * r + 6,
                                      lv["bcv"] - 4))
        lv["arch_c"] = lv["archtop"] - r - p["arch_height"]  # arch base (centreline)
        lv["archbot"] = lv["arch_c"] + p["arch_height"] - r  # limbs merge above this level
        lv["lpa"] = min(p["lpa_top"], lv["archbot"] - 7.0)
        lv["azy_top"] = p["azy_top"]
        lv["dia"] = p["dia_z"]
        lv["dia_l"] = p["dia_z"] - p["dia_left_lower"]
        lv["heart_top"] = min(p["heart_top"], lv["lpa"] - 14.0)
        lv["top"] = lv["cric"] + p["margin_top"]
        lv["bottom"] = lv["dia"] - p["margin_bottom"]
        self.lv = lv

    # ------------------------------------------------------------------ body outline
    def _body(self) -> None:
        p, lv = self.p, self.lv
        W = min(p["body_half_width"], 174.0 - abs(p["shift_x"]))
        D = p["body_half_ap"]
        zk = [lv["bottom"] - 40, lv["dia"], 0.0, lv["notch"], max(lv["apex_r"], lv["apex_l"]) + 5,
              lv["cric"] - 5, lv["top"] + 40]
        self._bz = zk
        self._ba = [0.97 * W, W, W, 0.93 * W, 0.72 * W, 0.48 * W, 0.46 * W]
        self._bb = [D, 1.02 * D, D, 0.93 * D, 0.8 * D, 0.64 * D, 0.62 * D]
        self._by = [18, 18, 18, 16, 22, 30, 30]
        self.lean = Column(zk, [0.0] * 7, self._by, self._ba, self._bb)  # torso without habitus
        # cavity (inside the ribs): anterior edge behind the sternum, posterior beside spine
        t_sc, t_m = p["fat_subcut"], p["muscle_wall"]
        ant = [0.6 * t_sc + 6 + p["sternum_thick"]] * 7
        post = [t_sc + 30] * 7
        lat = [t_sc + t_m + 8] * 7
        ca, cb, cy = [], [], []
        for a, b, y0, ta, tp, tl in zip(self._ba, self._bb, self._by, ant, post, lat):
            front, back = y0 - b + ta, y0 + b - tp
            ca.append(max(a - tl, 20.0))
            cb.append(max((back - front) / 2, 15.0))
            cy.append((back + front) / 2)
        apex = max(lv["apex_r"], lv["apex_l"])
        # above the notch the cavity tapers to the two apical domes
        ck = [lv["bottom"] - 40, lv["dia"], 0.0, lv["notch"], apex + 1]
        idx = [0, 1, 2, 3, 4]
        ca_k = [ca[i] for i in idx]
        ca_k[3] = 0.86 * ca[3]
        ca_k[4] = 0.5 * ca[3]
        cb_k = [cb[i] for i in idx]
        cb_k[4] = 0.72 * cb[3]
        cy_k = [cy[i] for i in idx]
        cy_k[4] = cy[3] + 6
        self.cavity = Column(ck, [0.0] * 5, cy_k, ca_k, cb_k)
        self.apex_xy = {"r": (-0.27 * ca[3] - 4, cy[3] + 12), "l": (0.27 * ca[3] + 4, cy[3] + 12)}

    def cavity_front(self, z: float) -> float:
        prm = self.cavity.params(min(max(z, self.cavity.z[0]), self.cavity.z[-1]))
        return prm[1] - prm[3]

    # spine helpers
    def y_v(self, z):
        z = np.asarray(z, dtype=float)
        y = 48.0 - 0.22 * np.clip(z - 60.0, 0, None) - 0.05 * np.clip(-120.0 - z, 0, None)
        return y

    def vert_scale(self, z):
        z = np.asarray(z, dtype=float)
        return np.clip(1.0 - 0.0016 * (z - 0.0), 0.7, 1.2)

    def y_va(self, z):
        """Anterior border of the vertebral body (mm)."""
        return self.y_v(z) - self.p["vert_half_ap"] * self.vert_scale(z)

    def trachea_at(self, z: float) -> tuple[float, float, float]:
        """(x, y, outer radius) of the trachea at height ``z`` (clamped to its extent)."""
        zz = min(max(z, 0.0), self.lv["top"])
        c = self.tubes["trachea"].centre_at(zz)
        if c is None:
            c = (0.0, 0.0)
        return c[0], c[1], self.p["trachea_r"]

    # ------------------------------------------------------------------ 2D surfaces
    def apex_surface(self, x, y, side: str):
        ax, ay = self.apex_xy[side]
        zt = self.lv["apex_" + side]
        return zt - ((x - ax) ** 2 + (y - ay) ** 2) / (2.0 * 38.0)

    def diaphragm(self, x, y):
        lv = self.lv
        ca = self.cavity.params(lv["dia"])
        a, yc = ca[2], ca[1]
        post = 0.35 * np.clip(y - (yc + 20), 0, None)
        zr = lv["dia"] - ((x + 0.45 * a) ** 2) / (2 * 70.0) - ((y - yc) ** 2) / (2 * 110.0) - post
        zl = lv["dia_l"] - ((x - 0.45 * a) ** 2) / (2 * 70.0) - ((y - yc) ** 2) / (2 * 110.0) - post
        return np.maximum(zr, zl)

    def vertebra_bone_fraction(self, z: float, dz: float) -> float:
        pitch, ph = self.p["vert_pitch"], self.p["vert_phase"]
        zs = z + dz * np.linspace(-0.4, 0.4, 5)
        frac = np.mod(zs / pitch - ph, 1.0)
        return float(np.mean(frac < (pitch - 4.5) / pitch))
