"""The body of a phantom case outside the thorax: torso outline, breasts, arms and the CT table.

*Torso.* The lean torso (the per-slice ellipses that the thoracic cavity and every organ are
built from) is grown by the subcutaneous fat that the case's BMI adds (``fat_subcut`` x
``(bmi / 26)^2``: all of it anteriorly and laterally, half of it posteriorly), drawn as a
superellipse-like curve of exponent ``body_power`` (2: oval, 2.8: boxier; the radius blends
the ellipse's and the exponent-4 curve's) and flattened where the back lies on the table
(``back_flat``).

*Breasts* (female cases): two ellipsoids on the anterior chest wall at the level of ribs 2-6,
falling laterally as in a supine patient; radius 40-85 mm with ``breast_size`` and the BMI.
Fat with a fibroglandular core; no organ label.

*Arms* (``arms``: ``down`` at the sides or ``up`` beside the head): an upper arm per side, a
tube of skin, subcutaneous fat and muscle around the humerus (cortex, fatty marrow) with the
humeral head at the shoulder. Arms down hang beside the chest ``arm_gap`` mm from it (they can
touch it); raised arms pass beside the neck and leave the scan at its top. No organ label.

*Table*: a carbon-fibre shell with a foam core in the scanner (world) frame, curved (radius
``table_radius``) or flat, ``table_gap`` mm of air below the lowest point of the body and arms.

>>> import numpy as np
>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> p = draw_parameters(np.random.default_rng(0))
>>> anat = Anatomy(p)
>>> sd_t, sd_b = anat.outline.sd_parts(np.array([[0.0, 400.0]]), np.array([[0.0, 0.0]]), 0.0)
>>> bool(sd_t[0, 0] < 0 < sd_t[0, 1])   # the carina is inside the torso, 40 cm left is not
True
>>> sorted(arm.side for arm in anat.arms)
['l', 'r']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepstationing.phantom.parts import tube
from deepstationing.phantom.shapes import Column, Ellipsoid, Tube

__all__ = ["Outline", "Arm", "Table", "build_outline", "build_arms", "build_table",
           "fat_thickness", "smooth_union"]


def smooth_union(a: np.ndarray, b: np.ndarray, k: float = 20.0) -> np.ndarray:
    """Union of two signed distances with the crease between them filled over ``k`` mm
    (polynomial smooth minimum)."""
    h = np.clip(1.0 - np.abs(a - b) / k, 0.0, None)
    return np.minimum(a, b) - (0.25 * k) * h * h


def fat_thickness(p: dict) -> float:
    """Subcutaneous fat (mm) of the case: ``fat_subcut`` scaled by ``(bmi / 26)^2``."""
    return float(np.clip(p["fat_subcut"] * (p["bmi"] / 26.0) ** 2, 3.0, 70.0))


def _superellipse_sd(x, y, prm, power: float) -> np.ndarray:
    """Approximate signed distance (mm) to a superellipse of exponent ``power`` in [2, 4]:
    the radius function blends the ellipse's (``power`` 2) and the ``power``-4 curve's,
    which needs square roots only (no fractional powers)."""
    cx, cy, a, b = prm
    u = np.abs(np.asarray(x, np.float32) - np.float32(cx)) / np.float32(max(a, 1e-3))
    v = np.abs(np.asarray(y, np.float32) - np.float32(cy)) / np.float32(max(b, 1e-3))
    u *= u
    v *= v
    beta = np.float32(np.clip((power - 2.0) / 2.0, 0.0, 1.0))
    rho = np.sqrt(u + v)
    if beta > 0:
        rho *= 1 - beta
        rho += beta * np.sqrt(np.sqrt(u * u + v * v))
    rho -= 1.0
    rho *= np.float32(min(a, b))
    return rho


class Outline:
    """Torso (superellipse column, flattened back) united with the breasts."""

    def __init__(self, torso: Column, back_flat: float, breasts: list[Ellipsoid]):
        self.torso, self.back_flat, self.breasts = torso, float(back_flat), breasts

    def prepare(self, zs) -> None:
        self.torso.prepare(zs)

    def params(self, z: float):
        return self.torso.params(z)

    def sd_parts(self, x, y, z: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Signed distances to the torso and to the breasts (None without breasts)."""
        prm = self.torso.params(z)
        if prm is None:
            sd = np.full(np.shape(x), np.inf, np.float32)
        else:
            sd = _superellipse_sd(x, y, prm, self.torso.power)
            flat = np.asarray(y, np.float32) - np.float32(prm[1] + self.back_flat * prm[3])
            sd = np.maximum(sd, flat)
        sb = None
        for b in self.breasts:
            if b.bbox(z) is not None:
                s_ = b.sd(x, y, z)
                sb = s_ if sb is None else np.minimum(sb, s_)
        return sd, sb

    def sd(self, x, y, z: float) -> np.ndarray:
        st, sb = self.sd_parts(x, y, z)
        return st if sb is None else smooth_union(st, sb)

    def bboxes(self, zs) -> np.ndarray:
        B = self.torso.bboxes(zs)
        for b in self.breasts:
            B2 = b.bboxes(zs)
            has = ~np.isnan(B2[:, 0])
            B[has] = np.stack([np.fmin(B[has, 0], B2[has, 0]), np.fmax(B[has, 1], B2[has, 1]),
                               np.fmin(B[has, 2], B2[has, 2]), np.fmax(B[has, 3], B2[has, 3])],
                              axis=1)
        return B


def build_outline(anat) -> Outline:
    """The body outline from the lean torso knots of :meth:`Anatomy._body` and the habitus."""
    p = anat.p
    extra = fat_thickness(p) - p["fat_subcut"]  # fat the BMI adds (may be negative)
    a_max = 177.0 - abs(p["shift_x"])  # within the 358 mm field of view of the presets
    a = [float(np.clip(v + extra, 30.0, max(a_max, v))) for v in anat._ba]
    b = [max(v + 0.75 * extra, 30.0) for v in anat._bb]
    cy = [v - 0.25 * extra for v in anat._by]  # more fat in front than behind
    torso = Column(anat._bz, [0.0] * len(a), cy, a, b, power=p["body_power"])
    breasts = []
    if p["sex"] == "female":
        r = (40.0 + 45.0 * p["breast_size"]) * (p["bmi"] / 26.0) ** 0.7
        r = float(min(r, 110.0))
        zb = -45.0
        prm = torso.params(zb)
        front = prm[1] - prm[3]
        for sg in (-1, 1):  # supine: flattened, falling laterally
            c = (sg * (0.38 * prm[2] + 0.25 * r), front + 0.12 * r, zb - 0.1 * r)
            breasts.append(Ellipsoid(c, (r, 0.5 * r, 0.75 * r), angle=sg * 0.35))
    return Outline(torso, p["back_flat"], breasts)


@dataclass
class Arm:
    """One upper arm: the limb outline, the humeral shaft and head, and the layer sizes."""

    side: str  # "r" or "l"
    limb: Tube
    humerus: Tube
    head: Ellipsoid
    fat_mm: float
    cortex_mm: float = 3.0


def _beside(out: Outline, z: float, sg: float, offset: float, fwd: float) -> tuple:
    """In-plane point ``offset`` mm lateral to the torso outline at height ``z`` (side ``sg``)."""
    prm = out.params(float(np.clip(z, out.torso.z[0], out.torso.z[-1])))
    return sg * (prm[2] + offset), prm[1] - fwd


def build_arms(anat) -> list[Arm]:
    """Both upper arms, hanging beside the chest (``arms == "down"``) or raised (``"up"``)."""
    p, lv = anat.p, anat.lv
    out = anat.outline
    r = float(p["arm_r"] * (p["bmi"] / 26.0) ** 0.6)
    fat = float(np.clip(0.6 * fat_thickness(p), 3.0, 0.45 * r))
    z_s = lv["notch"] + 12.0
    fwd = p["arm_fwd"]
    arms = []
    for side, sg in (("r", -1.0), ("l", 1.0)):
        if p["arms"] == "down":
            zs = [lv["notch"] - 40.0, 0.0, lv["dia"], lv["bottom"] - 60.0]
            pts = [(*_beside(out, z_s, sg, 0.55 * r + p["arm_gap"], fwd), z_s + 0.3 * r)]
            pts += [(*_beside(out, z, sg, r + p["arm_gap"], fwd), z) for z in zs]
            rad = [1.1 * r, r, 0.97 * r, 0.92 * r, 0.85 * r]
        else:  # raised beside the head: from the shoulder joint up past the neck
            zn = lv["cric"] - 5.0
            gap = r + 12.0 + max(p["arm_gap"], 0.0)
            pts = [(*_beside(out, z_s, sg, 0.1 * r, -5.0), z_s)]
            pts += [(*_beside(out, z, sg, gap, -10.0), z) for z in (zn, zn + 120.0,
                                                                    zn + 320.0)]
            rad = [r, r, 0.95 * r, 0.9 * r]
        limb = tube(None, None, pts, rad, step=6.0)
        hp = np.asarray(pts, float) + np.array([-sg * 0.12 * r, 0.08 * r, 0.0])
        hum = tube(None, None, hp, p["humerus_r"], step=6.0)
        head = Ellipsoid(tuple(hp[0]), (2.0 * p["humerus_r"],) * 3)
        arms.append(Arm(side, limb, hum, head, fat))
    return arms


class Table:
    """The CT table in the scanner frame: top surface ``y = y_top - x^2 / (2 R)`` (world mm)."""

    def __init__(self, y_top: float, radius: float, half_width: float, shell_hu: float,
                 thickness: float = 45.0, shell_mm: float = 2.5, core_hu: float = -920.0):
        self.y_top, self.radius, self.half_width = y_top, radius, half_width
        self.shell_hu, self.core_hu = shell_hu, core_hu
        self.thickness, self.shell_mm = thickness, shell_mm

    def render(self, xw: np.ndarray, yw: np.ndarray, px: float, air: float
               ) -> tuple[np.ndarray, np.ndarray]:
        """HU of the table on a slice (air elsewhere) and its occupancy (0..1)."""
        surf = self.y_top - xw ** 2 / (2.0 * self.radius)
        d = yw - surf  # depth below the top surface
        edge = np.abs(xw) - self.half_width  # > 0 beyond the side
        occ = np.clip(0.5 + np.minimum(d, self.thickness - d) / px, 0, 1)
        occ *= np.clip(0.5 - edge / px, 0, 1)
        inner = np.minimum(d, self.thickness - d) - self.shell_mm
        inner = np.minimum(inner, -edge - self.shell_mm)
        core = np.clip(0.5 + inner / px, 0, 1)
        hu = self.shell_hu + core * (self.core_hu - self.shell_hu)
        return (air + occ * (hu - air)).astype(np.float32), occ.astype(np.float32)


def build_table(anat, rot: float, shift: tuple[float, float, float]) -> Table:
    """The table under the case, its top ``table_gap`` below the lowest body / arm point."""
    p = anat.p
    radius = p["table_radius"] if p["table"] == "curved" else 1e7
    c, s = np.cos(rot), np.sin(rot)
    need = []
    th = np.linspace(0, 2 * np.pi, 73)
    for z in anat.outline.torso.z[1:-1]:
        prm = anat.outline.params(float(z))
        # superellipse outline points (power >= 2 lies outside the ellipse: take the box-ish
        # extreme by sampling), flattened back
        e = 2.0 / anat.outline.torso.power
        xo = prm[0] + prm[2] * np.sign(np.cos(th)) * np.abs(np.cos(th)) ** e
        yo = prm[1] + prm[3] * np.sign(np.sin(th)) * np.abs(np.sin(th)) ** e
        yo = np.minimum(yo, prm[1] + anat.outline.back_flat * prm[3])
        need.append((xo, yo))
    for arm in anat.arms:
        pts, rad = arm.limb.points, arm.limb.radii
        need.append((pts[:, 0], pts[:, 1] + rad))
    y_req = -np.inf
    for xo, yo in need:
        xw = c * xo - s * yo + shift[0]
        yw = s * xo + c * yo + shift[1]
        y_req = max(y_req, float(np.max(yw + xw ** 2 / (2.0 * radius))))
    return Table(y_req + p["table_gap"], radius, p["table_half_width"], p["table_hu"])
