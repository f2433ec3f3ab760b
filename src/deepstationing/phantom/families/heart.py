"""Heart: an ellipsoid (myocardium + blood pool, cut by the diaphragm, kept clear of the
esophagus, aorta and spine) and the left atrium; both labelled ``heart``.

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in anat.parts if pt.label == OID["heart"]]
['left_atrium', 'heart']
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import OID, Part
from deepstationing.phantom.shapes import Ellipsoid

RANK = 80


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    fm = 1.4 * p["fat_med"]
    ht = lv["heart_top"]
    hx = p["heart_x"]
    hs = p["heart_scale"]
    h_topv = ht - 8
    h_bot = float(anat.diaphragm(np.float32(hx + 10), np.float32(-30.0))) - 25.0
    ch = min(0.5 * (h_topv - h_bot), 85.0 * hs)
    hc = (hx + 10, -31.0, h_topv - ch)
    heart = Ellipsoid(hc, (68 * hs, 45 * hs, ch), angle=-np.deg2rad(p["heart_rot_deg"]))
    la = Ellipsoid((3.0, -6.0, ht - 22), (26 * hs, 15 * hs, 22), angle=0.0)
    anat.shapes["heart"], anat.shapes["la"] = heart, la
    esophagus, aorta = anat.tubes["esophagus"], anat.tubes["aorta"]
    body_v = anat.shapes["vertebral_body"]
    return [
        Part("left_atrium", la, OID["heart"], ("wall", "myocardium", "heart_blood", 2.5),
             pad=3 * fm, pv=True, carve=((esophagus, 4.0 * fm),)),
        Part("heart", heart, OID["heart"], ("wall", "myocardium", "heart_blood", 9.0),
             pad=3.5 * fm, pv=True, above_diaphragm=True,
             carve=((esophagus, 5.0 * fm), (aorta, 4.0 * fm), (body_v, 6.0), (la, 0.0))),
    ]
