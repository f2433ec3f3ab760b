"""Pulmonary vessels: the trunk with the left PA (over the left bronchus) and the right PA
(under the carina, behind the SVC), and four pulmonary veins into the left atrium.

The arteries rank before the systemic veins and the pulmonary veins after them (where two
tubes overlap, the lower rank keeps the label).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> names = ("pa_trunk", "svc", "pulmonary_vein0")
>>> [(pt.name, pt.rank) for pt in anat.parts if pt.name in names]
[('pa_trunk', 50), ('svc', 60), ('pulmonary_vein0', 70)]
"""

from __future__ import annotations

from deepstationing.phantom.parts import OID, Part, tube

RANK = 50
RANK_VEINS = 70


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    fm = 1.4 * p["fat_med"]
    ht = lv["heart_top"]
    pr, lr = p["pa_r"], p["lpa_r"]
    hx = p["heart_x"]
    zl = lv["lpa"] - lr  # LPA centreline top
    zb = zl - 9.0  # bifurcation
    B = (9.0, -24.0, zb)
    trunk = [(hx - 2, -52, ht - 48), (hx - 6, -44, ht - 18), B]
    pa_t = tube(anat, "pa_trunk", trunk, [pr, pr, pr * 0.9])
    pa_l = tube(anat, "lpa", [B, (20, -12, zl - 2), (29, -2, zl), (41, 8, zl - 5),
                              (58, 16, zl - 15)], [pr * 0.9, lr, lr, lr, 0.8 * lr])
    pa_r = tube(anat, "rpa", [B, (-5, -15, zb - 4), (-20, -12, zb - 6), (-35, -3, zb - 7),
                              (-48, 4, zb - 8), (-60, 8, zb - 10)],
                [pr * 0.9, lr, lr, lr, 0.9 * lr, 0.8 * lr])
    anat.pa_bif = B
    pvr = p["pv_r"]
    pvs = [
        [(-60, -2, ht - 8), (-35, -4, ht - 14), (-12, -5, ht - 20)],
        [(-58, 14, ht - 40), (-32, 6, ht - 37), (-12, 0, ht - 32)],
        [(60, -4, ht - 6), (38, -4, ht - 13), (18, -5, ht - 20)],
        [(58, 16, ht - 38), (36, 8, ht - 35), (18, 2, ht - 30)],
    ]
    parts = [
        Part("pa_trunk", pa_t, OID["pulmonary_artery"], ("solid", "pulm_arterial"), pad=6 * fm,
             pv=True),
        Part("lpa", pa_l, OID["pulmonary_artery"], ("solid", "pulm_arterial"), pad=5 * fm, pv=True),
        Part("rpa", pa_r, OID["pulmonary_artery"], ("solid", "pulm_arterial"), pad=5 * fm, pv=True),
    ]
    for i, v in enumerate(pvs):
        parts.append(Part(f"pulmonary_vein{i}", tube(None, None, v, pvr, step=2.5),
                          OID["pulmonary_vein"], ("solid", "pulm_venous"), pad=3 * fm, pv=True,
                          rank=RANK_VEINS))
    return parts
