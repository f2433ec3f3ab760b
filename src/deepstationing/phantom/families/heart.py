"""Heart: an ellipsoid (cut by the diaphragm, kept clear of the esophagus, aorta and spine) with
four chambers, and the left atrium behind it; both labelled ``heart``.

Chambers (:class:`Chambers`) in the heart's own frame: ``u`` along the long axis (base
right-posterior-superior to apex left-anterior-inferior), ``v`` across it (negative: the
right/anterior side). The atrioventricular plane ``u = u_av`` (tilted: more atrium higher up)
separates the atria from the ventricles, the septum ``v = v_sep`` the right heart from the
left. Myocardium: 10 mm left-ventricular wall, 4 mm right-ventricular wall, 10 mm
interventricular and 2 mm interatrial septum. Epicardial fat fills the atrioventricular and
interventricular grooves to 8 mm below the surface, with a contrast-filled coronary artery
(1.6 mm radius) in each groove. Blood: right heart ``blood_right``, left heart ``blood_left``
(:func:`deepstationing.phantom.appearance.hu_table`: equal in the venous phase, the left
brighter in the arterial phase, about 40 HU without contrast, when the chambers and the
myocardium are hardly told apart). The label is ``heart`` for all of it, fat of the grooves
included (the pericardial sac's content).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in anat.parts if pt.label == OID["heart"]]
['left_atrium', 'heart']
>>> ch = anat.shapes["chambers"]
>>> H = {"myocardium": 100.0, "blood_left": 170.0, "blood_right": 150.0, "fat": -100.0,
...      "coronary": 160.0}
>>> c = ch.heart.c  # 20 mm towards the apex, 20 mm to the left side: left-ventricular blood
>>> x = np.array([[c[0] + 20 * ch.heart.cos + 20 * -ch.heart.sin]])
>>> y = np.array([[c[1] + 20 * ch.heart.sin + 20 * ch.heart.cos]])
>>> float(ch.hu(x, y, float(c[2]), np.array([[-25.0]], np.float32), H)[0, 0])
170.0
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import OID, Part
from deepstationing.phantom.shapes import Ellipsoid

RANK = 80


class Chambers:
    """HU inside the heart ellipsoid from the chamber layout (see the module docstring)."""

    def __init__(self, heart: Ellipsoid):
        self.heart = heart
        a, b, _ = heart.ax
        self.u_av = -0.25 * a
        self.v_sep = 0.08 * b

    def hu(self, X, Y, z: float, sd: np.ndarray, H: dict) -> np.ndarray:
        h = self.heart
        dx = np.asarray(X, np.float32) - np.float32(h.c[0])
        dy = np.asarray(Y, np.float32) - np.float32(h.c[1])
        u = dx * np.float32(h.cos) + dy * np.float32(h.sin)
        v = -dx * np.float32(h.sin) + dy * np.float32(h.cos)
        u_av = np.float32(self.u_av + 0.35 * (z - h.c[2]))  # atria higher up
        vent = u > u_av
        dv = np.abs(v - np.float32(self.v_sep))
        left = v > np.float32(self.v_sep)
        out = np.where(left, np.float32(H["blood_left"]), np.float32(H["blood_right"]))
        wall = np.where(vent, np.where(left, np.float32(10.0), np.float32(4.0)),
                        np.float32(2.0))
        myo = (sd > -wall) | (vent & (dv < 5.0)) | (~vent & (dv < 1.0))
        out = np.where(myo, np.float32(H["myocardium"]), out)
        du = np.abs(u - u_av)
        groove = ((du < 4.0) | (vent & (dv < 3.5))) & (sd > -8.0)
        out = np.where(groove, np.float32(H["fat"]), out)
        coronary = ((du < 1.6) | (vent & (dv < 1.6))) & (np.abs(sd + 4.5) < 1.6)
        return np.where(coronary, np.float32(H["coronary"]), out)


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
    anat.shapes["chambers"] = Chambers(heart)
    esophagus, aorta = anat.tubes["esophagus"], anat.tubes["aorta"]
    body_v = anat.shapes["vertebral_body"]
    return [
        Part("left_atrium", la, OID["heart"], ("wall", "myocardium", "blood_left", 2.0),
             pad=3 * fm, pv=True, carve=((esophagus, 4.0 * fm),)),
        Part("heart", heart, OID["heart"], ("chambers",), pad=3.5 * fm, pv=True,
             above_diaphragm=True,
             carve=((esophagus, 5.0 * fm), (aorta, 4.0 * fm), (body_v, 6.0), (la, 0.0))),
    ]
