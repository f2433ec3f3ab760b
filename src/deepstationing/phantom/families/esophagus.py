"""Esophagus: a flattened tube abutting the trachea in its upper third, moving left-anterior
to the hiatus (wall 50 HU; lumen collapsed, air or fluid).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in build(anat)], "esophagus" in anat.tubes
(['esophagus'], True)
"""

from __future__ import annotations

from deepstationing.phantom.families.airway import trachea_course
from deepstationing.phantom.parts import OID, Part, tube

RANK = 30


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    fm = 1.4 * p["fat_med"]
    c = trachea_course(anat)
    top, cric, rt, tr_top, tr_mid = c.top, c.cric, c.radius, c.top_xy, c.mid_xy
    er = p["eso_r"]
    ex = p["eso_x"]
    sy_e = 0.62
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
    esophagus = tube(anat, "esophagus", eso_pts, er, scale_xy=(1.25, sy_e), step=4.0)
    return [Part("esophagus", esophagus, OID["esophagus"], ("wall", "eso_wall", "eso_lumen", 3.2),
                 pad=6 * fm)]
