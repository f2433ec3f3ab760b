"""Phantom anatomy: organ geometry from the case parameters, rasterised to labels and HU.

The anatomy is built in mm in the *anatomy frame* (origin at the carina, +x patient left,
+y posterior, +z superior), following the adult layout of ``stations-spec.md`` C.2, with
every size and position drawn per case (:mod:`.params`). The world frame of the images is the
anatomy frame rotated about z by ``rot_z_deg`` and shifted; rasterisation maps every pixel
back to the anatomy frame through one precomputed coordinate grid.

Building blocks (all in :mod:`.shapes`): tubes along splines for the airway, esophagus and
vessels; ellipsoids for the heart, left atrium and thyroid; per-slice ellipses for the body,
the thoracic cavity, vertebral bodies and the sternum. Lungs are the thoracic cavity minus
the *mediastinal envelope* (every mediastinal organ grown by its fat pad, plus a few fat
fillers: prevascular space, right paratracheal space, aortopulmonary window, subcarinal
space, midline septum), cut by the apical domes and the diaphragm. Unclaimed envelope voxels
are mediastinal fat: the only tissue in which stations and lymph nodes are placed.

Rasterisation runs slice by slice and, per organ, only inside the organ's bounding box on
that slice. Thin or oblique structures (arch, left BCV, azygos arch, pulmonary arteries and
veins, bronchi, airway, heart) get partial volume across the 5 mm slice by averaging their
soft occupancy over three sub-slices (z - dz/3, z, z + dz/3); label maps use the slice centre.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deepstationing.phantom.shapes import Column, Ellipsoid, Tube, smooth_curve
from deepstationing.schema import ORGANS

__all__ = ["Part", "Anatomy", "Grid", "RasterResult", "rasterize"]

OID = {o.key: o.id for o in ORGANS}


@dataclass
class Part:
    """One rasterised structure.

    ``label`` is an organ id, 0 for unlabelled tissue (ribs, subclavian vessels, larynx...), or
    a callable ``(z, u, x) -> ids`` (``u``: position along the tube, ``x``: anatomy x). ``look``
    selects the HU rendering: ``("solid", key)``, ``("wall", wall_key, lumen_key, mm)``,
    ``("bone", cortex_mm)`` or ``("vertebra", cortex_mm)``. ``pad`` grows the mediastinal
    envelope (fat) around the structure; ``claim=False`` marks a pure fat filler.
    """

    name: str
    shape: object
    label: int | Callable = 0
    look: tuple = ("solid", "muscle")
    pad: float = 0.0
    pv: bool = False
    claim: bool = True
    lung_only: bool = False  # decorations drawn only inside lung (intrapulmonary vessels)
    carve: tuple = ()  # ((shape, margin_mm), ...): keep this part ``margin`` away from them
    above_diaphragm: bool = False  # cut by the diaphragm surface

    def sd(self, anat: Anatomy, X, Y, z, with_param: bool = False, high=None, low=None):
        """Signed distance on slice ``z`` (or, for a 1-D array ``z``, stacked over heights).

        ``high`` / ``low`` (None, or one number per height): the caller only tells values
        ``>= high`` apart from each other, and values ``< low`` likewise (it compares the
        result with thresholds, exactly only between ``low`` and ``high``). Tubes then skip
        the segments that cannot matter (:meth:`.shapes.Tube.sd` ``thr``): the part's own
        tube above ``high``, a carving tube where ``margin - sd`` falls below ``low``. Values
        in ``[low, high)`` are exactly those computed without them.
        """
        shp = self.shape
        kw = {"thr": high} if high is not None and isinstance(shp, Tube) else {}
        if with_param:
            sd, u = shp.sd(X, Y, z, with_param=True, **kw)
        else:
            sd, u = shp.sd(X, Y, z, **kw), None
        multi = np.ndim(z) > 0
        for other, margin in self.carve:
            okw = {}
            if low is not None and isinstance(other, Tube):
                okw = {"thr": margin - np.asarray(low, np.float64) + 0.01}
            if multi:
                on = np.array([other.bbox(float(zz)) is not None for zz in z])
                if on.any():
                    term = np.float32(margin) - other.sd(X, Y, z, **okw)
                    term[~on] = -np.inf
                    sd = np.maximum(sd, term)
            elif other.bbox(z) is not None:
                sd = np.maximum(sd, np.float32(margin) - other.sd(X, Y, z, **okw))
        if self.above_diaphragm:
            if multi:
                zf = np.asarray(z, np.float64).astype(np.float32)[:, None, None]
                sd = np.maximum(sd, (anat.diaphragm(X, Y)[None] - zf).astype(np.float32))
            else:
                sd = np.maximum(sd, (anat.diaphragm(X, Y) - np.float32(z)).astype(np.float32))
        return (sd, u) if with_param else sd


@dataclass
class Grid:
    """Voxel grid and world placement of one case."""

    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]  # z, y, x
    origin: tuple[float, float, float]
    rot: float  # radians about z, anatomy -> world
    shift: tuple[float, float, float]  # world position of the anatomy origin (carina)

    def slice_z_world(self) -> np.ndarray:
        return self.origin[2] + np.arange(self.shape[0]) * self.spacing[2]

    def anatomy_xy(self) -> tuple[np.ndarray, np.ndarray]:
        nz, ny, nx = self.shape
        xw = self.origin[0] + np.arange(nx) * self.spacing[0] - self.shift[0]
        yw = self.origin[1] + np.arange(ny) * self.spacing[1] - self.shift[1]
        c, s = np.cos(self.rot), np.sin(self.rot)
        xa = (c * xw[None, :] + s * yw[:, None]).astype(np.float32)
        ya = (-s * xw[None, :] + c * yw[:, None]).astype(np.float32)
        return xa, ya

    def coords(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy ``(x, y)`` of pixel rows/cols (any integers, also outside the image)."""
        xw = self.origin[0] + np.asarray(cols) * self.spacing[0] - self.shift[0]
        yw = self.origin[1] + np.asarray(rows) * self.spacing[1] - self.shift[1]
        c, s = np.cos(self.rot), np.sin(self.rot)
        xa = (c * xw[None, :] + s * yw[:, None]).astype(np.float32)
        ya = (-s * xw[None, :] + c * yw[:, None]).astype(np.float32)
        return xa, ya

    def to_world(self, x, y, z):
        c, s = np.cos(self.rot), np.sin(self.rot)
        return (c * x - s * y + self.shift[0], s * x + c * y + self.shift[1], z + self.shift[2])

    def pixel_box(self, bb) -> tuple[slice, slice] | None:
        """Pixel slices ``(rows, cols)`` covering an anatomy-frame box ``(x0, x1, y0, y1)``."""
        x0, x1, y0, y1 = bb
        xs = np.array([x0, x1, x0, x1])
        ys = np.array([y0, y0, y1, y1])
        wx, wy, _ = self.to_world(xs, ys, 0.0)
        sx, sy = self.spacing[0], self.spacing[1]
        c0 = int(np.floor((wx.min() - self.origin[0]) / sx)) - 1
        c1 = int(np.ceil((wx.max() - self.origin[0]) / sx)) + 2
        r0 = int(np.floor((wy.min() - self.origin[1]) / sy)) - 1
        r1 = int(np.ceil((wy.max() - self.origin[1]) / sy)) + 2
        ny, nx = self.shape[1], self.shape[2]
        c0, c1, r0, r1 = max(c0, 0), min(c1, nx), max(r0, 0), min(r1, ny)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def pixel_boxes(self, boxes: np.ndarray) -> list:
        """:meth:`pixel_box` for ``(n, 4)`` anatomy boxes (NaN rows: no box), vectorised."""
        boxes = np.asarray(boxes, np.float64)
        ok = ~np.isnan(boxes).any(axis=1)
        b = np.where(ok[:, None], boxes, 0.0)
        x0, x1, y0, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        xs = np.stack([x0, x1, x0, x1])
        ys = np.stack([y0, y0, y1, y1])
        wx, wy, _ = self.to_world(xs, ys, 0.0)
        sx, sy = self.spacing[0], self.spacing[1]
        c0 = np.floor((wx.min(axis=0) - self.origin[0]) / sx).astype(np.int64) - 1
        c1 = np.ceil((wx.max(axis=0) - self.origin[0]) / sx).astype(np.int64) + 2
        r0 = np.floor((wy.min(axis=0) - self.origin[1]) / sy).astype(np.int64) - 1
        r1 = np.ceil((wy.max(axis=0) - self.origin[1]) / sy).astype(np.int64) + 2
        ny, nx = self.shape[1], self.shape[2]
        c0, c1 = np.maximum(c0, 0), np.minimum(c1, nx)
        r0, r1 = np.maximum(r0, 0), np.minimum(r1, ny)
        ok &= (c0 < c1) & (r0 < r1)
        return [(slice(a, b_), slice(c, d)) if o else None
                for o, a, b_, c, d in zip(ok.tolist(), r0.tolist(), r1.tolist(), c0.tolist(),
                                         c1.tolist())]


def _lerp(z, knots, values):
    return float(np.interp(z, knots, values))


class Anatomy:
    """All structures of one case, built from its parameter dict ``p``.

    Attributes of interest to the station builder: ``lv`` (continuous levels in mm: cricoid,
    notch, apices, BCV margin, arch top/bottom, azygos, LPA, diaphragm...), ``tubes`` (the
    centrelines by name) and the per-level helpers (:meth:`trachea_at`, :meth:`y_va`).
    """

    def __init__(self, p: dict):
        self.p = p
        self.tubes: dict[str, Tube] = {}
        self.parts: list[Part] = []
        self._levels()
        self._body()
        self._build()

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
        self.body = Column(zk, [0.0] * 7, self._by, self._ba, self._bb)
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

    # ------------------------------------------------------------------ organs
    def _build(self) -> None:  # noqa: C901 - one linear recipe
        p, lv = self.p, self.lv
        fm = 1.4 * p["fat_med"]
        top, bot = lv["top"] + 30, lv["bottom"] - 30
        cric, notch = lv["cric"], lv["notch"]
        parts = self.parts

        def tube(name, pts, radii, **kw):
            pts_s, r_s = smooth_curve(pts, radii, step=kw.pop("step", 3.0))
            t = Tube(pts_s, r_s, **kw)
            self.tubes[name] = t
            return t

        # --- airway ---------------------------------------------------------------
        rt = p["trachea_r"]
        tx, ty = p["trachea_top_x"], p["trachea_top_y"]
        trachea = tube("trachea", [(tx, ty - 4, top), (tx, ty, cric),
                                   (0.5 * tx, 0.45 * ty, 0.5 * cric), (0.0, 0.0, 6.0),
                                   (0.0, 0.3, -6.0)], rt, scale_xy=(1.0, 0.94), zmin=0.0)

        def airway_label(z, u, x):
            if z > cric:
                return 0
            return OID["trachea"]

        def bronch_label(side):
            def f(z, u, x):
                return OID["trachea"] if z >= 0 else OID[side]
            return f

        ang = np.deg2rad(p["carina_angle"])
        phr, phl = 0.42 * ang, 0.58 * ang
        rr, rl = p["bronchus_r_r"], p["bronchus_l_r"]
        s_r = np.array([-(rr + 2.0), 0.5, 2.0])
        d_r = np.array([-np.sin(phr), 0.15, -np.cos(phr)])
        e_r = s_r + p["bronchus_r_len"] * d_r / np.linalg.norm(d_r)
        d_i = np.array([-0.25, 0.3, -1.0])
        e_i = e_r + p["bronchus_int_len"] * d_i / np.linalg.norm(d_i)
        s_l = np.array([rl + 2.0, 0.5, 2.0])
        d_l = np.array([np.sin(phl), 0.22, -np.cos(phl)])
        e_l = s_l + p["bronchus_l_len"] * d_l / np.linalg.norm(d_l)
        bro_r = Tube(*smooth_curve([s_r, e_r, e_i], [rr, rr, 0.8 * rr], step=2.5))
        bro_l = Tube(*smooth_curve([s_l, e_l], [rl, rl], step=2.5))
        self.tubes["bronchus_r"], self.tubes["bronchus_l"] = bro_r, bro_l
        self.bronchus_ends = {"r": e_i, "l": e_l, "r_main": e_r}
        # --- spine -----------------------------------------------------------------
        hw, hap = p["vert_half_w"], p["vert_half_ap"]
        zk = np.linspace(bot, top, 40)
        vs = self.vert_scale(zk)
        yv = self.y_v(zk)
        canal = Column(zk, 0.0, yv + hap * vs + 8.0, 7.5 * vs, 7.0 * vs)
        arch_post = Column(zk, 0.0, yv + hap * vs + 9.0, 15.0 * vs, 12.0 * vs)
        spinous = Column(zk, 0.0, yv + hap * vs + 30.0, 4.0 * vs, 13.0 * vs)
        transverse = Column(zk, 0.0, yv + hap * vs + 8.0, 30.0 * vs, 5.0 * vs)
        body_v = Column(zk, 0.0, yv, hw * vs, hap * vs, power=2.4)
        self.vertebral_body = body_v
        # --- sternum and clavicles -----------------------------------------------------
        st = p["sternum_thick"]
        zs = [lv["dia"] + 40, 0.0, notch - 48, notch - 30, notch]
        st_cy = [self.cavity_front(z) - st / 2 for z in zs]
        sternum = Column(zs, 2.0, st_cy, [12, 13, 15, 24, 25], [st / 2] * 5, power=3.0)
        cl = []
        for sgn in (-1, 1):
            y0 = self.cavity_front(notch) - st * 0.6
            cl.append(Tube(*smooth_curve(
                [(sgn * 24, y0, notch + 2), (sgn * 70, y0 - 6, notch + 10),
                 (sgn * 125, y0 + 25, notch + 22)], 7.0, step=4.0)))
        # --- esophagus -------------------------------------------------------------------
        er = p["eso_r"]
        ex = p["eso_x"]
        sy_e = 0.62
        tr_top = (tx, ty)
        tr_mid = (0.5 * tx, 0.45 * ty)
        eso_pts = [
            (tr_top[0] + 3, tr_top[1] + rt + er * sy_e - 1.5, top),
            (tr_top[0] + 3, tr_top[1] + rt + er * sy_e - 1.0, cric),
            (tr_mid[0] + 4, tr_mid[1] + rt + er * sy_e - 0.5, 0.5 * cric),
            (ex, 19.0, 0.0),
            (ex - 1, 22.0, -50.0),
            (ex + 5, 19.0, lv["dia"] + 12),
            (ex + 24, 6.0, lv["dia"] - 30),
            (ex + 40, 0.0, lv["dia"] - 50),
        ]
        esophagus = tube("esophagus", eso_pts, er, scale_xy=(1.25, sy_e), step=4.0)
        # --- aorta ---------------------------------------------------------------------------
        ar, asr, dr = p["arch_r"], p["asc_r"], p["desc_r"]
        A = np.array([p["asc_x"], p["asc_y"]])
        Dp = np.array([p["desc_x"], p["desc_y"]])
        C = np.array([p["arch_bulge_x"], p["arch_bulge_y"]])
        zc, H = lv["arch_c"], p["arch_height"]
        ht = lv["heart_top"]
        pts = [(A[0] + 12, A[1] + 18, ht - 32), (A[0] + 4, A[1] + 5, ht - 4),
               (A[0] + 1, A[1] + 1, 0.5 * (ht + zc))]
        rads = [0.95 * asr, asr, asr]
        ts = np.linspace(0.0, 1.0, 15)
        for t in ts:
            q = (1 - t) ** 2 * A + 2 * t * (1 - t) * C + t ** 2 * Dp
            pts.append((q[0], q[1], zc + H * np.sin(np.pi * t)))
            rads.append(np.interp(t, [0, 0.3, 0.7, 1.0], [asr, ar, ar, dr]))
        pts += [(Dp[0] - 1, Dp[1] + 1, zc - 30), (Dp[0] - 2, Dp[1] + 1, -60.0),
                (Dp[0] - 10, Dp[1] - 6, lv["dia"]), (Dp[0] - 17, Dp[1] - 12, bot)]
        rads += [dr, dr, 0.95 * dr, 0.92 * dr]
        apts, arad = smooth_curve(pts, rads, step=3.0)
        aorta = Tube(apts, arad)
        self.tubes["aorta"] = aorta
        # param (vertex index) of the arch apex: split ascending / descending below archbot
        u_apex = float(np.argmax(apts[:, 2]))
        z_ab = lv["archbot"]

        def aorta_label(z, u, x):
            if z >= z_ab:
                return OID["aortic_arch"]
            return np.where(u < u_apex, OID["ascending_aorta"], OID["descending_aorta"])

        def arch_point(t):
            q = (1 - t) ** 2 * A + 2 * t * (1 - t) * C + t ** 2 * Dp
            return np.array([q[0], q[1], zc + H * np.sin(np.pi * t)])

        self.arch_point = arch_point
        # --- arch branches -------------------------------------------------------------------
        b0 = arch_point(0.2)
        bif = np.array([-19.0, -15.0, notch + 2])
        cca_r_pts = [b0, (b0[0] - 5, b0[1] + 12, lv["archtop"] + 7), bif,
                     (-24, -9, notch + 25), (-26, -6, top)]
        cca_r = tube("cca_r", cca_r_pts, [6.0, 6.0, 5.5, p["cca_r"], p["cca_r"]])
        b1 = arch_point(0.47)
        cca_l = tube("cca_l", [b1, (b1[0] + 2, b1[1] + 4, lv["archtop"] + 6),
                               (21, -9, notch + 8), (25, -6, notch + 30), (26, -5, top)],
                     [p["cca_r"] + 0.8, p["cca_r"], p["cca_r"], p["cca_r"], p["cca_r"]])
        b2 = arch_point(0.62)
        ap = self.apex_xy
        sub_l = Tube(*smooth_curve([b2, (b2[0] + 4, b2[1] + 6, lv["archtop"] + 10),
                                    (ap["l"][0] - 2, ap["l"][1] - 14, lv["apex_l"] + 3),
                                    (70, 2, lv["apex_l"] + 4), (120, 12, lv["apex_l"] - 6)], 4.5))
        sub_r = Tube(*smooth_curve([bif, (ap["r"][0] + 2, ap["r"][1] - 14, lv["apex_r"] + 3),
                                    (-70, 2, lv["apex_r"] + 4), (-120, 12, lv["apex_r"] - 6)], 4.5))
        # --- veins -------------------------------------------------------------------------
        svx, svy, svr = p["svc_x"], p["svc_y"], p["svc_r"]
        z_conf = lv["bcv"] - 10.0
        jr = np.array([-35.0, -24.0, notch + 4])
        jl = np.array([36.0, -27.0, notch + 6])
        ijv_r = tube("ijv_r", [(-41, -13, top), (-39, -17, notch + 22), jr], p["ijv_r_r"])
        ijv_l = tube("ijv_l", [(41, -13, top), (39, -17, notch + 22), jl], p["ijv_l_r"])
        scv_r = Tube(*smooth_curve([(-120, -22, notch + 2), (-60, -30, notch + 8), jr], 5.0))
        scv_l = Tube(*smooth_curve([(120, -22, notch + 2), (60, -30, notch + 8), jl], 5.0))
        rbl = p["bcv_l_r"]
        xt_b = self._trachea_x_guess(lv["bcv"] + rbl)
        bcv_l = tube("bcv_l", [jl, (28, -40, lv["bcv"] + rbl + 7), (xt_b, -40, lv["bcv"] + rbl),
                               (-20, -36, lv["bcv"] + rbl - 3), (svx + 6, svy - 6, z_conf + 2)],
                     rbl, step=2.5)
        bcv_r = tube("bcv_r", [jr, (-34, -27, lv["bcv"] - 2), (svx + 2, svy - 4, z_conf)],
                     p["bcv_r_r"])
        svc = tube("svc", [(svx + 2, svy - 4, z_conf), (svx, svy, z_conf - 20),
                           (svx + 2, svy + 2, ht - 8), (svx + 10, svy + 8, ht - 30)], svr)
        # azygos: ascends right-posterior beside the spine, arches over the right bronchus
        azx, azr = p["azy_x"], p["azy_r"]
        zt = lv["azy_top"] - azr
        yva = lambda z: float(self.y_va(z))  # noqa: E731
        az_pts = [(azx + 3, yva(bot) + 11, bot), (azx, yva(lv["dia"]) + 10, lv["dia"]),
                  (azx, yva(-40) + 10, -40.0), (azx, yva(zt) + 10, zt - 10),
                  (azx - 3, yva(zt) - 4, zt), (svx + 5, svy + svr + 9, zt - 3),
                  (svx + 1, svy + svr * 0.2, zt - 6)]
        azygos = tube("azygos", az_pts, [0.65 * azr] * 4 + [azr] * 3, step=2.5)
        ivc = Tube(*smooth_curve([(-22, 12, bot), (-22, 8, lv["dia"] - 5), (-14, -6, ht - 70)],
                                 12.0))
        # --- pulmonary arteries ------------------------------------------------------------
        pr, lr = p["pa_r"], p["lpa_r"]
        hx = p["heart_x"]
        zl = lv["lpa"] - lr  # LPA centreline top
        zb = zl - 9.0  # bifurcation
        B = (9.0, -24.0, zb)
        trunk = [(hx - 2, -52, ht - 48), (hx - 6, -44, ht - 18), B]
        pa_t = tube("pa_trunk", trunk, [pr, pr, pr * 0.9])
        pa_l = tube("lpa", [B, (20, -12, zl - 2), (29, -2, zl), (41, 8, zl - 5), (58, 16, zl - 15)],
                    [pr * 0.9, lr, lr, lr, 0.8 * lr])
        pa_r = tube("rpa", [B, (-5, -15, zb - 4), (-20, -12, zb - 6), (-35, -3, zb - 7),
                            (-48, 4, zb - 8), (-60, 8, zb - 10)],
                    [pr * 0.9, lr, lr, lr, 0.9 * lr, 0.8 * lr])
        self.pa_bif = B
        # --- heart ---------------------------------------------------------------------
        hs = p["heart_scale"]
        h_topv = ht - 8
        h_bot = float(self.diaphragm(np.float32(hx + 10), np.float32(-30.0))) - 25.0
        ch = min(0.5 * (h_topv - h_bot), 85.0 * hs)
        hc = (hx + 10, -31.0, h_topv - ch)
        heart = Ellipsoid(hc, (68 * hs, 45 * hs, ch), angle=-np.deg2rad(p["heart_rot_deg"]))
        la = Ellipsoid((3.0, -6.0, ht - 22), (26 * hs, 15 * hs, 22), angle=0.0)
        self.heart, self.la = heart, la
        pvr = p["pv_r"]
        pvs = [
            [(-60, -2, ht - 8), (-35, -4, ht - 14), (-12, -5, ht - 20)],
            [(-58, 14, ht - 40), (-32, 6, ht - 37), (-12, 0, ht - 32)],
            [(60, -4, ht - 6), (38, -4, ht - 13), (18, -5, ht - 20)],
            [(58, 16, ht - 38), (36, 8, ht - 35), (18, 2, ht - 30)],
        ]
        pv_tubes = [Tube(*smooth_curve(v, pvr, step=2.5)) for v in pvs]
        thy = [Ellipsoid((sg * (rt + 8), ty - 3, cric + 2), (8, 9, 20)) for sg in (-1, 1)]
        # --- fillers (mediastinal fat) -------------------------------------------------
        zf = [ht - 25, 0.0, notch - 10, notch + 4]
        fill_ant = Column(zf, 3.0, [self.cavity_front(z) + 19 for z in zf],
                          [18, 26, 24, 14], [19, 21, 21, 12])
        z_azl = lv["azy_top"] - 2 * azr - 6
        fill_rpt = Ellipsoid((-17, -6, 0.5 * (lv["bcv"] + z_azl)),
                             (12, 13, 0.5 * (lv["bcv"] - z_azl) + 6))
        fill_apw = Ellipsoid((22, -9, 0.5 * (lv["archbot"] + lv["lpa"])),
                             (15, 14, 0.5 * (lv["archbot"] - lv["lpa"]) + 8))
        fill_sub = Ellipsoid((3, 9, -20), (14, 10, 19))
        zm = [lv["dia"], 0.0, min(lv["apex_r"], lv["apex_l"]) - 10]
        yva_m = [float(self.y_va(z)) for z in zm]
        yfr = [self.cavity_front(z) for z in zm]
        fill_mid = Column(zm, 0.0, [(a + b) / 2 for a, b in zip(yva_m, yfr)], 4.0,
                          [(a - b) / 2 for a, b in zip(yva_m, yfr)], power=6.0)
        self.fillers = [fill_ant, fill_rpt, fill_apw, fill_sub, fill_mid]

        # --- lung decorations (vessels, lobar bronchi): HU only, inside lung ------------
        rng = np.random.default_rng(int(abs(p["lung_hu"] * 1000 + p["heart_x"] * 77)) % (2**32))
        deco: list[Part] = []
        for side, sg, hil in (("r", -1, (-52, 2, -15)), ("l", 1, (52, 4, -15))):
            for k in range(9):
                th = rng.uniform(-1.2, 1.2) + (0 if k % 2 else np.pi * 0.5 * rng.choice([-1, 1]))
                el = rng.uniform(-0.9, 0.9)
                dvec = np.array([sg * abs(np.cos(el) * np.cos(th)) + 0.2 * sg,
                                 np.cos(el) * np.sin(th), np.sin(el) * 1.3])
                dvec /= np.linalg.norm(dvec)
                L = rng.uniform(50, 110)
                p0 = np.array(hil, float) + rng.normal(0, 6, 3)
                p1 = p0 + 0.5 * L * dvec + rng.normal(0, 6, 3)
                p2 = p0 + L * dvec + rng.normal(0, 10, 3)
                r0 = rng.uniform(2.5, 4.0)
                key = "pulm_artery_small" if k % 2 else "venous"
                deco.append(Part(f"lungvessel_{side}{k}", Tube(*smooth_curve([p0, p1, p2],
                                 [r0, 0.6 * r0, 0.3 * r0], step=4.0)), 0, ("solid", key),
                                 pv=True, lung_only=True))
                q = p1 + rng.normal(0, 15, 3)
                deco.append(Part(f"lungvessel_{side}{k}b", Tube(*smooth_curve(
                    [p1, 0.5 * (p1 + q) + rng.normal(0, 4, 3), q], [0.6 * r0, 0.4 * r0,
                                                                     0.25 * r0], step=4.0)),
                    0, ("solid", key), pv=True, lung_only=True))
        lobar = [(e_r, e_r + np.array([-25, -4, 6])), (e_i, e_i + np.array([-12, 14, -35])),
                 (e_l, e_l + np.array([18, -14, 10])), (e_l, e_l + np.array([10, 16, -35]))]
        for i, (a, b) in enumerate(lobar):
            deco.append(Part(f"lobar_bronchus{i}", Tube(*smooth_curve([a, b], [4.5, 3.0])), 0,
                             ("wall", "cartilage", "air", 1.3), pv=True, lung_only=True))
        self.decorations = deco

        # --- priority-ordered part list (first wins the label) -------------------------
        P = Part
        parts += [
            P("canal", canal, 0, ("solid", "csf")),
            P("vertebral_body", body_v, OID["spine"], ("vertebra", 1.5), pad=2.0),
            P("posterior_arch", arch_post, OID["spine"], ("bone", 1.5)),
            P("spinous", spinous, OID["spine"], ("bone", 1.2)),
            P("transverse", transverse, OID["spine"], ("bone", 1.2)),
            P("sternum", sternum, OID["sternum"], ("bone", 1.2)),
            P("clavicle_r", cl[0], 0, ("bone", 1.5), pv=True),
            P("clavicle_l", cl[1], 0, ("bone", 1.5), pv=True),
            P("trachea", trachea, airway_label, ("wall", "cartilage", "air", 2.2), pad=8 * fm,
              pv=True),
            P("bronchus_r", bro_r, bronch_label("bronchus_r"), ("wall", "cartilage", "air", 1.6),
              pad=5 * fm, pv=True),
            P("bronchus_l", bro_l, bronch_label("bronchus_l"), ("wall", "cartilage", "air", 1.6),
              pad=5 * fm, pv=True),
            P("esophagus", esophagus, OID["esophagus"], ("wall", "eso_wall", "eso_lumen", 3.2),
              pad=6 * fm),
            P("aorta", aorta, aorta_label, ("solid", "arterial"), pad=7 * fm, pv=True),
            P("cca_r", cca_r, OID["cca_r"], ("solid", "arterial"), pad=5 * fm, pv=True),
            P("cca_l", cca_l, OID["cca_l"], ("solid", "arterial"), pad=5 * fm, pv=True),
            P("subclavian_a_l", sub_l, 0, ("solid", "arterial"), pad=3, pv=True),
            P("subclavian_a_r", sub_r, 0, ("solid", "arterial"), pad=3, pv=True),
            P("pa_trunk", pa_t, OID["pulmonary_artery"], ("solid", "arterial"), pad=6 * fm,
              pv=True),
            P("lpa", pa_l, OID["pulmonary_artery"], ("solid", "arterial"), pad=5 * fm, pv=True),
            P("rpa", pa_r, OID["pulmonary_artery"], ("solid", "arterial"), pad=5 * fm, pv=True),
            P("svc", svc, OID["svc"], ("solid", "venous"), pad=5 * fm, pv=True),
            P("bcv_l", bcv_l, OID["bcv_l"], ("solid", "venous_bcv_l"), pad=5 * fm, pv=True),
            P("bcv_r", bcv_r, OID["bcv_r"], ("solid", "venous_bcv_r"), pad=5 * fm, pv=True),
            P("ijv_r", ijv_r, OID["ijv_r"], ("solid", "small_vein"), pad=5 * fm, pv=True),
            P("ijv_l", ijv_l, OID["ijv_l"], ("solid", "small_vein"), pad=5 * fm, pv=True),
            P("subclavian_v_r", scv_r, 0, ("solid", "small_vein"), pad=2, pv=True),
            P("subclavian_v_l", scv_l, 0, ("solid", "small_vein"), pad=2, pv=True),
            P("azygos", azygos, OID["azygos"], ("solid", "small_vein"), pad=4 * fm, pv=True),
            P("ivc", ivc, 0, ("solid", "venous"), pad=0.0),
        ]
        for i, t in enumerate(pv_tubes):
            parts.append(P(f"pulmonary_vein{i}", t, OID["pulmonary_vein"], ("solid", "venous"),
                           pad=3 * fm, pv=True))
        parts += [
            P("left_atrium", la, OID["heart"], ("wall", "myocardium", "heart_blood", 2.5),
              pad=3 * fm, pv=True, carve=((esophagus, 4.0 * fm),)),
            P("heart", heart, OID["heart"], ("wall", "myocardium", "heart_blood", 9.0),
              pad=3.5 * fm, pv=True, above_diaphragm=True,
              carve=((esophagus, 5.0 * fm), (aorta, 4.0 * fm), (body_v, 6.0), (la, 0.0))),
            P("thyroid_r", thy[0], 0, ("solid", "thyroid"), pv=True),
            P("thyroid_l", thy[1], 0, ("solid", "thyroid"), pv=True),
        ]
        for i, f in enumerate(self.fillers):
            parts.append(P(f"fat_filler{i}", f, 0, ("solid", "fat"), claim=False))

    def _trachea_x_guess(self, z: float) -> float:
        p = self.p
        f = np.clip(z / max(self.lv["cric"], 1.0), 0, 1)
        return float(p["trachea_top_x"] * f)

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


def rasterize(anat: Anatomy, grid: Grid, hu: dict[str, float]) -> RasterResult:
    """Rasterise ``anat`` on ``grid``: organ labels, noise-free HU and the station support."""
    nz, ny, nx = grid.shape
    sx, _, dz = grid.spacing
    px = float(sx)
    xa, ya = grid.anatomy_xy()
    zw = grid.slice_z_world()
    za = zw - grid.shift[2]
    organs = np.zeros((nz, ny, nx), np.uint8)
    hu_vol = np.empty((nz, ny, nx), np.float32)
    support = np.zeros((nz, ny, nx), bool)
    lv, p = anat.lv, anat.p
    apex_min = min(lv["apex_r"], lv["apex_l"])
    apex_max = max(lv["apex_r"], lv["apex_l"])
    sub = (-dz / 3.0, dz / 3.0)
    t_sc = p["fat_subcut"]
    lung_r, lung_l = OID["lung_r"], OID["lung_l"]
    H = {k: np.float32(v) for k, v in hu.items()}
    ribs_on = (lv["dia"] - 75, apex_max + 5)
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
    if fine:
        coords = grid.coords(np.arange(ny + 4), np.arange(nx + 4))
    else:
        coords = (xa, ya)
    # Where the outputs look at a structure's signed distance: its sign, the soft edge
    # (|sd| < px / 2), the envelope (sd < pad) and the wall shading (sd < -wall). Values
    # beyond those limits need not be exact (:meth:`Part.sd` ``high``/``low``), so tubes
    # skip far segments. Not at fine pixels: there the values are interpolated from a
    # coarser grid, and every coarse value counts.
    limits = [_limits(pt, px, fine) for pt in anat.parts]
    deco_high = None if fine else px / 2 + 0.01

    for k in range(nz):
        z = float(za[k])
        lab = organs[k]
        hs = hu_vol[k]
        hs.fill(H["air"])
        claimed = np.zeros((ny, nx), bool)
        env = np.full((ny, nx), np.inf, np.float32)
        # ---- body layers
        body_box = body_boxes[k]
        if body_box is None:
            continue
        XB, YB = xa[body_box], ya[body_box]
        sd_body = anat.body.sd(XB, YB, z)
        hb = hs[body_box]
        inside = sd_body < 0
        body_full = np.zeros((ny, nx), bool)
        body_full[body_box] = inside
        hb[inside] = H["fat"]
        deep = sd_body < -t_sc
        hb[deep] = H["muscle"]
        hb[(sd_body < 0) & (sd_body > -1.5)] = H["skin"]
        cav = anat.cavity.bbox(z)
        cav_in = np.zeros(XB.shape, bool)
        if cav is not None:
            sd_cav = anat.cavity.sd(XB, YB, z)
            cav_in = sd_cav < 0
            hb[cav_in] = H["fat"]
            if ribs_on[0] < z < ribs_on[1]:
                band = (sd_cav >= 0.5) & (sd_cav < 7.0)
                if band.any():
                    yc = anat.cavity.params(z)[1]
                    phi = np.arctan2(XB[band], -(YB[band] - yc))  # 0 anterior, +-pi posterior
                    g = 1.0 - np.abs(phi) / np.pi  # 1 anterior .. 0 posterior
                    ph = p["rib_phase"] * 26.0
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
                    sc_band = (sd_cav > 12.0) & (sd_cav < 17.0) & deep
                    if sc_band.any():
                        yc = anat.cavity.params(z)[1]
                        phi = np.abs(np.arctan2(XB[sc_band], -(YB[sc_band] - yc)))
                        vals = hb[sc_band]
                        vals[(phi > 1.9) & (phi < 2.55)] = H["cortex"] * 0.55
                        hb[sc_band] = vals
        # ---- organs
        evals = []
        for pi, (part, boxes) in enumerate(zip(anat.parts, part_boxes)):
            box = boxes[k]
            if box is None:
                continue
            shp = part.shape
            pad = part.pad if part.claim else 0.0
            X = xa[box]
            ev = _Evaluator(coords, box, fine)
            callable_label = callable(part.label)
            # pv parts: the slice centre and both sub-slices in one vectorised call
            zq = np.array([z, z + sub[0], z + sub[1]]) if part.pv else z
            hi, lo = limits[pi]
            if callable_label and isinstance(shp, Tube):
                sd, u = ev(lambda A, B, zz, pt=part, hi=hi, lo=lo: pt.sd(
                    anat, A, B, zz, with_param=True, high=hi, low=lo), zq)
            else:
                sd, u = ev(lambda A, B, zz, pt=part, hi=hi, lo=lo: pt.sd(
                    anat, A, B, zz, high=hi, low=lo), zq), None
            if part.pv:
                sd3 = sd
                sd = sd[0]
                u = None if u is None else u[0]
            if part.pad > 0 or not part.claim:
                e = env[box]
                np.minimum(e, sd - np.float32(pad), out=e)
            if not part.claim:
                continue
            bin_ = body_full[box]
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
                if callable_label:
                    lv_ = part.label(z, u, X)
                else:
                    lv_ = part.label
                cl = claimed[box]
                new = ins & ~cl
                if np.ndim(lv_) == 0:
                    if lv_:
                        lab[box][new] = lv_
                else:
                    lab[box][new] = np.asarray(lv_)[new]
                cl |= ins
            evals.append((part, box, sd, alpha))
        # ---- lungs
        if cav is not None and z < apex_max and z > lv["bottom"] - 60:
            rows, cols = body_box
            ebox = env[body_box]
            cl = claimed[body_box]
            dia = dia_full[body_box]
            above_dia = z > dia
            lung = cav_in & ~(ebox < 0) & ~cl & above_dia
            xm = 0.0
            right = XB < xm
            if z > apex_min - 60:
                lung &= np.where(right, z < apex_full["r"][body_box],
                                 z < apex_full["l"][body_box])
            lb = lab[body_box]
            lb[lung & right] = lung_r
            lb[lung & ~right] = lung_l
            cf = anat.cavity.params(z)
            yf, yb2 = cf[1] - cf[3], cf[1] + cf[3]
            grad = np.clip((YB - yf) / max(yb2 - yf, 1.0), 0, 1)
            lung_hu = H["lung"] + np.float32(p["lung_gravity"]) * grad
            hb[lung] = lung_hu[lung]
            # abdomen below the diaphragm
            abd = cav_in & ~above_dia & ~cl
            if abd.any():
                liver = XB < 12.0 + 0.2 * (YB - cf[1])
                st_c = (42.0, cf[1] - 12.0)
                stom = ((XB - st_c[0]) / 38.0) ** 2 + ((YB - st_c[1]) / 30.0) ** 2 < 1.0
                tissue = np.where(liver, H["liver"], np.where(stom, H["stomach"], H["spleen"]))
                air_cap = stom & ~liver & (z > dia - 18.0) & (YB < st_c[1])
                tissue = np.where(air_cap, H["air"], tissue)
                hb[abd] = tissue[abd]
                cl |= abd
            sup = (ebox < 0) & cav_in & ~cl & ~lung & above_dia
            if z >= apex_min:
                sup |= (ebox < 0) & deep & ~cl & ~cav_in
            support[k][body_box] = sup
            hb[(ebox < 0) & cav_in & ~cl & ~lung] = H["fat"]
            hb[(ebox < 0) & deep & ~cl & ~cav_in] = H["fat"]
            lung_mask = lung
        else:
            ebox = env[body_box]
            cl = claimed[body_box]
            sup = (ebox < 0) & deep & ~cl
            support[k][body_box] = sup
            hb[sup] = H["fat"]
            lung_mask = None
        # ---- lung decorations (vessels and lobar bronchi, lung only)
        if lung_mask is not None and lung_mask.any():
            r0 = body_box[0].start
            c0 = body_box[1].start
            lung_full = np.zeros((ny, nx), bool)
            lung_full[body_box] = lung_mask
            for part, boxes in zip(anat.decorations, deco_boxes):
                box = boxes[k]
                if box is None:
                    continue
                shp = part.shape
                ev = _Evaluator(coords, box, fine)
                if px < 2.0:  # sub-slice partial volume only where vessels span pixels
                    sds = ev(lambda A, B, zz, s_=shp: s_.sd(A, B, zz, thr=deco_high),
                             np.array([z, z + sub[0], z + sub[1]]))
                    sd0 = sds[0]
                    s3 = _soft(sds, px)
                    alpha = s3[0] + s3[1]
                    alpha += s3[2]
                    alpha /= 3.0
                else:
                    sd0 = ev(lambda A, B, zz, s_=shp: s_.sd(A, B, zz, thr=deco_high), z)
                    alpha = _soft(sd0, px)
                alpha *= lung_full[box]
                if not alpha.any():
                    continue
                hv = _part_hu(part, sd0, hu, z, anat, dz)
                h = hs[box]
                h += alpha * (hv - h)
            del r0, c0
        # ---- organ HU, lowest priority first so the highest wins the blend
        for part, box, sd, alpha in reversed(evals):
            hv = _part_hu(part, sd, hu, z, anat, dz)
            h = hs[box]
            h += alpha * (hv - h)
    return RasterResult(organs, hu_vol, support, za, xa, ya)
