"""Systemic veins: IJVs, subclavian veins (unlabelled), both BCVs (the left one oblique,
crossing in front of the trachea), the SVC, the azygos (beside the spine, arching over the
right bronchus into the back of the SVC) and the IVC (unlabelled).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)))
>>> [pt.name for pt in build(anat)][:3]
['svc', 'bcv_l', 'bcv_r']
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import OID, Part, tube

RANK = 60


def _trachea_x_guess(anat, z: float) -> float:
    f = np.clip(z / max(anat.lv["cric"], 1.0), 0, 1)
    return float(anat.p["trachea_top_x"] * f)


def _azygos(anat):
    p, lv = anat.p, anat.lv
    bot = lv["bottom"] - 30
    svx, svy, svr = p["svc_x"], p["svc_y"], p["svc_r"]
    azx, azr = p["azy_x"], p["azy_r"]
    zt = lv["azy_top"] - azr
    yva = lambda z: float(anat.y_va(z))  # noqa: E731
    az_pts = [(azx + 3, yva(bot) + 11, bot), (azx, yva(lv["dia"]) + 10, lv["dia"]),
              (azx, yva(-40) + 10, -40.0), (azx, yva(zt) + 10, zt - 10),
              (azx - 3, yva(zt) - 4, zt), (svx + 5, svy + svr + 9, zt - 3),
              (svx + 1, svy + svr * 0.2, zt - 6)]
    return tube(anat, "azygos", az_pts, [0.65 * azr] * 4 + [azr] * 3, step=2.5)


def build(anat) -> list[Part]:
    p, lv = anat.p, anat.lv
    fm = 1.4 * p["fat_med"]
    top, bot = lv["top"] + 30, lv["bottom"] - 30
    notch, ht = lv["notch"], lv["heart_top"]
    svx, svy, svr = p["svc_x"], p["svc_y"], p["svc_r"]
    z_conf = lv["bcv"] - 10.0
    jr = np.array([-35.0, -24.0, notch + 4])
    jl = np.array([36.0, -27.0, notch + 6])
    ijv_r = tube(anat, "ijv_r", [(-41, -13, top), (-39, -17, notch + 22), jr], p["ijv_r_r"])
    ijv_l = tube(anat, "ijv_l", [(41, -13, top), (39, -17, notch + 22), jl], p["ijv_l_r"])
    scv_r = tube(None, None, [(-120, -22, notch + 2), (-60, -30, notch + 8), jr], 5.0)
    scv_l = tube(None, None, [(120, -22, notch + 2), (60, -30, notch + 8), jl], 5.0)
    rbl = p["bcv_l_r"]
    xt_b = _trachea_x_guess(anat, lv["bcv"] + rbl)
    bcv_l = tube(anat, "bcv_l", [jl, (28, -40, lv["bcv"] + rbl + 7), (xt_b, -40, lv["bcv"] + rbl),
                                 (-20, -36, lv["bcv"] + rbl - 3),
                                 (svx + 6, svy - 6, z_conf + 2)], rbl, step=2.5)
    bcv_r = tube(anat, "bcv_r", [jr, (-34, -27, lv["bcv"] - 2), (svx + 2, svy - 4, z_conf)],
                 p["bcv_r_r"])
    svc = tube(anat, "svc", [(svx + 2, svy - 4, z_conf), (svx, svy, z_conf - 20),
                             (svx + 2, svy + 2, ht - 8), (svx + 10, svy + 8, ht - 30)], svr)
    azygos = _azygos(anat)
    ivc = tube(None, None, [(-22, 12, bot), (-22, 8, lv["dia"] - 5), (-14, -6, ht - 70)], 12.0)
    return [
        Part("svc", svc, OID["svc"], ("solid", "venous"), pad=5 * fm, pv=True),
        Part("bcv_l", bcv_l, OID["bcv_l"], ("solid", "venous_bcv_l"), pad=5 * fm, pv=True),
        Part("bcv_r", bcv_r, OID["bcv_r"], ("solid", "venous_bcv_r"), pad=5 * fm, pv=True),
        Part("ijv_r", ijv_r, OID["ijv_r"], ("solid", "small_vein"), pad=5 * fm, pv=True),
        Part("ijv_l", ijv_l, OID["ijv_l"], ("solid", "small_vein"), pad=5 * fm, pv=True),
        Part("subclavian_v_r", scv_r, 0, ("solid", "small_vein"), pad=2, pv=True),
        Part("subclavian_v_l", scv_l, 0, ("solid", "small_vein"), pad=2, pv=True),
        Part("azygos", azygos, OID["azygos"], ("solid", "small_vein"), pad=4 * fm, pv=True),
        Part("ivc", ivc, 0, ("solid", "venous"), pad=0.0),
    ]
