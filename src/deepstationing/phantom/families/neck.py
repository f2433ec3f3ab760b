"""Neck: the thyroid lobes beside the trachea at the cricoid (unlabelled).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in build(anat)]
['thyroid_r', 'thyroid_l']
"""

from __future__ import annotations

from deepstationing.phantom.parts import Part
from deepstationing.phantom.shapes import Ellipsoid

RANK = 90


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    rt, ty = p["trachea_r"], p["trachea_top_y"]
    thy = [Ellipsoid((sg * (rt + 8), ty - 3, lv["cric"] + 2), (8, 9, 20)) for sg in (-1, 1)]
    return [Part("thyroid_r", thy[0], 0, ("solid", "thyroid"), pv=True),
            Part("thyroid_l", thy[1], 0, ("solid", "thyroid"), pv=True)]
