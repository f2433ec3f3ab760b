"""Bones: the spine (vertebral bodies, discs, posterior elements), the sternum, the clavicles.

The ``spine`` label covers the vertebral bodies, discs and posterior elements; the spinal canal
(CSF) and the clavicles are unlabelled. Ribs and scapulae are shaded by the rasteriser in the
chest wall (:mod:`deepstationing.phantom.raster`).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in build(anat)][:3]
['canal', 'vertebral_body', 'posterior_arch']
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import OID, Part, tube
from deepstationing.phantom.shapes import Column

RANK = 10


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    top, bot = lv["top"] + 30, lv["bottom"] - 30
    notch = lv["notch"]
    hw, hap = p["vert_half_w"], p["vert_half_ap"]
    zk = np.linspace(bot, top, 40)
    vs = anat.vert_scale(zk)
    yv = anat.y_v(zk)
    canal = Column(zk, 0.0, yv + hap * vs + 8.0, 7.5 * vs, 7.0 * vs)
    arch_post = Column(zk, 0.0, yv + hap * vs + 9.0, 15.0 * vs, 12.0 * vs)
    spinous = Column(zk, 0.0, yv + hap * vs + 30.0, 4.0 * vs, 13.0 * vs)
    transverse = Column(zk, 0.0, yv + hap * vs + 8.0, 30.0 * vs, 5.0 * vs)
    body_v = Column(zk, 0.0, yv, hw * vs, hap * vs, power=2.4)
    anat.shapes["vertebral_body"] = body_v
    st = p["sternum_thick"]
    zs = [lv["dia"] + 40, 0.0, notch - 48, notch - 30, notch]
    st_cy = [anat.cavity_front(z) - st / 2 for z in zs]
    sternum = Column(zs, 2.0, st_cy, [12, 13, 15, 24, 25], [st / 2] * 5, power=3.0)
    cl = []
    for sgn in (-1, 1):
        y0 = anat.cavity_front(notch) - st * 0.6
        cl.append(tube(None, None, [(sgn * 24, y0, notch + 2), (sgn * 70, y0 - 6, notch + 10),
                                    (sgn * 125, y0 + 25, notch + 22)], 7.0, step=4.0))
    return [
        Part("canal", canal, 0, ("solid", "csf")),
        Part("vertebral_body", body_v, OID["spine"], ("vertebra", 1.5), pad=2.0),
        Part("posterior_arch", arch_post, OID["spine"], ("bone", 1.5)),
        Part("spinous", spinous, OID["spine"], ("bone", 1.2)),
        Part("transverse", transverse, OID["spine"], ("bone", 1.2)),
        Part("sternum", sternum, OID["sternum"], ("bone", 1.2)),
        Part("clavicle_r", cl[0], 0, ("bone", 1.5), pv=True),
        Part("clavicle_l", cl[1], 0, ("bone", 1.5), pv=True),
    ]
