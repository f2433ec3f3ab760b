"""Mediastinal fat fillers: the prevascular space, the right paratracheal space, the
aortopulmonary window, the subcarinal space and the midline septum. They claim no voxel; they
only grow the mediastinal envelope (fat, where stations and nodes live).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.claim for pt in build(anat)]
[False, False, False, False, False]
"""

from __future__ import annotations

from deepstationing.phantom.parts import Part
from deepstationing.phantom.shapes import Column, Ellipsoid

RANK = 100


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    ht, notch = lv["heart_top"], lv["notch"]
    azr = p["azy_r"]
    zf = [ht - 25, 0.0, notch - 10, notch + 4]
    fill_ant = Column(zf, 3.0, [anat.cavity_front(z) + 19 for z in zf],
                      [18, 26, 24, 14], [19, 21, 21, 12])
    z_azl = lv["azy_top"] - 2 * azr - 6
    fill_rpt = Ellipsoid((-17, -6, 0.5 * (lv["bcv"] + z_azl)),
                         (12, 13, 0.5 * (lv["bcv"] - z_azl) + 6))
    fill_apw = Ellipsoid((22, -9, 0.5 * (lv["archbot"] + lv["lpa"])),
                         (15, 14, 0.5 * (lv["archbot"] - lv["lpa"]) + 8))
    fill_sub = Ellipsoid((3, 9, -20), (14, 10, 19))
    zm = [lv["dia"], 0.0, min(lv["apex_r"], lv["apex_l"]) - 10]
    yva_m = [float(anat.y_va(z)) for z in zm]
    yfr = [anat.cavity_front(z) for z in zm]
    fill_mid = Column(zm, 0.0, [(a + b) / 2 for a, b in zip(yva_m, yfr)], 4.0,
                      [(a - b) / 2 for a, b in zip(yva_m, yfr)], power=6.0)
    fillers = [fill_ant, fill_rpt, fill_apw, fill_sub, fill_mid]
    return [Part(f"fat_filler{i}", f, 0, ("solid", "fat"), claim=False)
            for i, f in enumerate(fillers)]
