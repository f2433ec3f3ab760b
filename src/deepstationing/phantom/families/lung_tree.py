"""Lung decorations: intrapulmonary vessels and lobar bronchi, drawn inside the lungs only (the
voxels keep the ``lung`` label; only their HU changes).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> len(anat.decorations), all(pt.lung_only for pt in anat.decorations)
(40, True)
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import Part, tube

RANK = 200


def _vessels(rng) -> list[Part]:
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
            deco.append(Part(f"lungvessel_{side}{k}", tube(None, None, [p0, p1, p2],
                             [r0, 0.6 * r0, 0.3 * r0], step=4.0), 0, ("solid", key),
                             pv=True, lung_only=True))
            q = p1 + rng.normal(0, 15, 3)
            deco.append(Part(f"lungvessel_{side}{k}b", tube(
                None, None, [p1, 0.5 * (p1 + q) + rng.normal(0, 4, 3), q],
                [0.6 * r0, 0.4 * r0, 0.25 * r0], step=4.0),
                0, ("solid", key), pv=True, lung_only=True))
    return deco


def build(anat) -> list[Part]:
    p = anat.p
    rng = np.random.default_rng(int(abs(p["lung_hu"] * 1000 + p["heart_x"] * 77)) % (2**32))
    deco = _vessels(rng)
    e_r, e_i, e_l = (anat.bronchus_ends[k] for k in ("r_main", "r", "l"))
    lobar = [(e_r, e_r + np.array([-25, -4, 6])), (e_i, e_i + np.array([-12, 14, -35])),
             (e_l, e_l + np.array([18, -14, 10])), (e_l, e_l + np.array([10, 16, -35]))]
    for i, (a, b) in enumerate(lobar):
        deco.append(Part(f"lobar_bronchus{i}", tube(None, None, [a, b], [4.5, 3.0]), 0,
                         ("wall", "cartilage", "air", 1.3), pv=True, lung_only=True))
    return deco
