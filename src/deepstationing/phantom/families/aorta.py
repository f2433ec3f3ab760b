"""Aorta and its arch branches: one aortic centreline (ascending limb, arch as a planar-height
Bezier left-anterior of the trachea, descending aorta to the hiatus), the brachiocephalic trunk
with the right CCA (labelled ``cca_r``), the left CCA and both subclavian arteries (unlabelled).

``aortic_arch`` is the aorta above the level where its limbs merge (``lv["archbot"]``);
``ascending_aorta`` / ``descending_aorta`` are the two limbs below it.

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in build(anat)]
['aorta', 'cca_r', 'cca_l', 'subclavian_a_l', 'subclavian_a_r']
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import OID, Part, tube

RANK = 40


def _aorta(anat):
    """The aortic tube, its label function and the arch's point function ``t -> (x, y, z)``."""
    p, lv = anat.p, anat.lv
    bot = lv["bottom"] - 30
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
    aorta = tube(anat, "aorta", pts, rads, step=3.0)
    # param (vertex index) of the arch apex: split ascending / descending below archbot
    u_apex = float(np.argmax(aorta.points[:, 2]))
    z_ab = lv["archbot"]

    def aorta_label(z, u, x):
        if z >= z_ab:
            return OID["aortic_arch"]
        return np.where(u < u_apex, OID["ascending_aorta"], OID["descending_aorta"])

    def arch_point(t):
        q = (1 - t) ** 2 * A + 2 * t * (1 - t) * C + t ** 2 * Dp
        return np.array([q[0], q[1], zc + H * np.sin(np.pi * t)])

    return aorta, aorta_label, arch_point


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    fm = 1.4 * p["fat_med"]
    top = lv["top"] + 30
    notch = lv["notch"]
    aorta, aorta_label, arch_point = _aorta(anat)
    anat.arch_point = arch_point
    b0 = arch_point(0.2)
    bif = np.array([-19.0, -15.0, notch + 2])
    cca_r_pts = [b0, (b0[0] - 5, b0[1] + 12, lv["archtop"] + 7), bif,
                 (-24, -9, notch + 25), (-26, -6, top)]
    cca_r = tube(anat, "cca_r", cca_r_pts, [6.0, 6.0, 5.5, p["cca_r"], p["cca_r"]])
    b1 = arch_point(0.47)
    cca_l = tube(anat, "cca_l", [b1, (b1[0] + 2, b1[1] + 4, lv["archtop"] + 6),
                                 (21, -9, notch + 8), (25, -6, notch + 30), (26, -5, top)],
                 [p["cca_r"] + 0.8, p["cca_r"], p["cca_r"], p["cca_r"], p["cca_r"]])
    b2 = arch_point(0.62)
    ap = anat.apex_xy
    sub_l = tube(None, None, [b2, (b2[0] + 4, b2[1] + 6, lv["archtop"] + 10),
                              (ap["l"][0] - 2, ap["l"][1] - 14, lv["apex_l"] + 3),
                              (70, 2, lv["apex_l"] + 4), (120, 12, lv["apex_l"] - 6)], 4.5)
    sub_r = tube(None, None, [bif, (ap["r"][0] + 2, ap["r"][1] - 14, lv["apex_r"] + 3),
                              (-70, 2, lv["apex_r"] + 4), (-120, 12, lv["apex_r"] - 6)], 4.5)
    return [
        Part("aorta", aorta, aorta_label, ("solid", "arterial"), pad=7 * fm, pv=True),
        Part("cca_r", cca_r, OID["cca_r"], ("solid", "arterial"), pad=5 * fm, pv=True),
        Part("cca_l", cca_l, OID["cca_l"], ("solid", "arterial"), pad=5 * fm, pv=True),
        Part("subclavian_a_l", sub_l, 0, ("solid", "arterial"), pad=3, pv=True),
        Part("subclavian_a_r", sub_r, 0, ("solid", "arterial"), pad=3, pv=True),
    ]
