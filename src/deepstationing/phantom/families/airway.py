"""Airway: the trachea (larynx above the cricoid unlabelled) and the two main bronchi (the right
one continuing as the bronchus intermedius). The trachea label ends at the carina plane (z = 0).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> sorted(anat.bronchus_ends), [pt.name for pt in build(anat)]
(['l', 'r', 'r_main'], ['trachea', 'bronchus_r', 'bronchus_l'])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deepstationing.phantom.parts import OID, Part, tube

RANK = 20


def _bronch_label(side):
    def f(z, u, x):
        return OID["trachea"] if z >= 0 else OID[side]
    return f


class TracheaCourse(NamedTuple):
    """The trachea's upper course, which the esophagus follows: the top of the neck (mm),
    the cricoid level, the radius, and the centre's (x, y) at the cricoid and half-way down."""

    top: float
    cric: float
    radius: float
    top_xy: tuple[float, float]
    mid_xy: tuple[float, float]


def trachea_course(anat) -> TracheaCourse:
    p, lv = anat.p, anat.lv
    tx, ty = p["trachea_top_x"], p["trachea_top_y"]
    return TracheaCourse(lv["top"] + 30, lv["cric"], p["trachea_r"], (tx, ty),
                         (0.5 * tx, 0.45 * ty))


def build(anat) -> list[Part]:
    p = anat.p
    fm = 1.4 * p["fat_med"]
    c = trachea_course(anat)
    cric, rt = c.cric, c.radius
    (tx, ty), (mx, my) = c.top_xy, c.mid_xy
    trachea = tube(anat, "trachea", [(tx, ty - 4, c.top), (tx, ty, cric), (mx, my, 0.5 * cric),
                                     (0.0, 0.0, 6.0), (0.0, 0.3, -6.0)], rt,
                   scale_xy=(1.0, 0.94), zmin=0.0)

    def airway_label(z, u, x):
        if z > cric:
            return 0
        return OID["trachea"]

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
    bro_r = tube(anat, "bronchus_r", [s_r, e_r, e_i], [rr, rr, 0.8 * rr], step=2.5)
    bro_l = tube(anat, "bronchus_l", [s_l, e_l], [rl, rl], step=2.5)
    anat.bronchus_ends = {"r": e_i, "l": e_l, "r_main": e_r}
    return [
        Part("trachea", trachea, airway_label, ("wall", "cartilage", "air", 2.2), pad=8 * fm,
             pv=True),
        Part("bronchus_r", bro_r, _bronch_label("bronchus_r"), ("wall", "cartilage", "air", 1.6),
             pad=5 * fm, pv=True),
        Part("bronchus_l", bro_l, _bronch_label("bronchus_l"), ("wall", "cartilage", "air", 1.6),
             pad=5 * fm, pv=True),
    ]
