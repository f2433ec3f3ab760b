"""CT appearance of the phantom: HU per tissue, noise, and the final int16 conversion.

HU values follow ``stations-spec.md`` part C.3 (venous-phase contrast chest CT, 120 kVp); the
per-case parameters (``contrast``, ``venous_ratio``, ``lung_hu``, ``bone_hu`` ...) are drawn in
:mod:`.params`. The tissue table is:

==================== ====================================================== ===============
tissue               value (HU)                                             spec C.3
==================== ====================================================== ===============
air                  -1000                                                  -1000 +- 10
lung                 ``lung_hu`` (-850 +- 22) + posterior gradient 30-80     -850 +- 40
fat                  ``fat_hu`` (-100 +- 8)                                 -100 +- 15
muscle               ``muscle_hu`` (55 +- 6)                                55 +- 10
arterial blood       160 x ``contrast``                                     160 +- 25
venous blood         arterial x ``venous_ratio`` (0.93)                     150 +- 30
small veins          venous x ``small_vein_ratio`` (0.75): IJV, azygos      (low contrast)
heart chambers       (arterial + venous) / 2                                150 +- 25
myocardium           100 x (0.7 + 0.3 ``contrast``)                         100 +- 20
esophageal wall      50; lumen collapsed, air (-1000) or fluid (10)          50 +- 10
lymph node           60 +- 10 per node                                      60 +- 15
cancellous bone      ``bone_hu`` (180 +- 35)                                180 +- 40
cortical bone        ``cortex_hu`` (900 +- 120), 1.2-1.5 mm cortex           700-1500
cartilage            110 (tracheal/laryngeal wall, costal cartilage)         100 +- 40
disc                 85; CSF 15; liver 100-110; spleen 115; stomach 35        --
==================== ====================================================== ===============

Noise is Gaussian with SD ``noise_sd`` (10-20 HU), correlated in-plane over about 1.5 mm
(generated on a half-resolution grid, smoothed with a [1 2 1] kernel and upsampled), which is
cheaper than filtering a full-resolution field and looks like CT grain at 5 mm slices.
"""

from __future__ import annotations

__all__ = ["hu_table"]


def _blood(p: dict) -> dict[str, float]:
    """Blood HU of the case's contrast ``phase``."""
    phase = p.get("phase", "venous")
    if phase == "non-contrast":
        b = 40.0 + 8.0 * (p["contrast"] - 1.0)  # unenhanced blood (haematocrit)
        return {"arterial": b, "pulm_arterial": b, "venous": b, "pulm_venous": b,
                "small_vein": b, "blood_left": b, "blood_right": b, "inflow": 0.0,
                "myocardium": 45.0, "liver": 58.0, "spleen": 48.0, "thyroid": 100.0}
    if phase == "arterial":  # CT angiography, about 25 s after the injection
        art = p["arterial_hu"]
        return {"arterial": art, "pulm_arterial": 1.15 * art, "venous": 0.4 * art,
                "pulm_venous": art, "small_vein": 70.0, "blood_left": art,
                "blood_right": 0.85 * art, "inflow": 2.5 * p["inflow_hu"],
                "myocardium": 100.0 + 0.1 * art, "liver": 70.0, "spleen": 125.0,
                "thyroid": 160.0}
    arterial = 160.0 * p["contrast"]
    venous = arterial * p["venous_ratio"]
    return {"arterial": arterial, "pulm_arterial": arterial, "venous": venous,
            "pulm_venous": venous, "small_vein": venous * p["small_vein_ratio"],
            "blood_left": 0.5 * (arterial + venous), "blood_right": 0.5 * (arterial + venous),
            "inflow": p["inflow_hu"], "myocardium": 100.0 * (0.7 + 0.3 * p["contrast"]),
            "liver": 100.0 + 25.0 * (p["contrast"] - 1.0),
            "spleen": 115.0 + 25.0 * (p["contrast"] - 1.0),
            "thyroid": 130.0 + 30.0 * (p["contrast"] - 1.0)}


def hu_table(p: dict) -> dict[str, float]:
    """HU of every tissue key used by the anatomy, for the case parameters ``p``."""
    t = _blood(p)
    inflow = t.pop("inflow")
    t.update({
        "air": -1000.0,
        "lung": p["lung_hu"],
        "fat": p["fat_hu"],
        "muscle": p["muscle_hu"],
        "skin": 30.0,
        "gland": 25.0,
        "marrow": 0.5 * (p["fat_hu"] + p["muscle_hu"]),
        "eso_wall": 50.0,
        "eso_lumen": {"collapsed": 50.0, "air": -1000.0, "fluid": 10.0}[p["eso_lumen"]],
        "bone": p["bone_hu"],
        "cortex": p["cortex_hu"],
        "rib": 0.5 * (p["bone_hu"] + p["cortex_hu"]) * 0.6,
        "cartilage": 110.0,
        "disc": 85.0,
        "csf": 15.0,
        "stomach": 35.0,
        "node": 60.0,
    })
    t["coronary"] = t["arterial"]
    side = p.get("inflow_side", "none")
    t["venous_bcv_l"] = t["venous"] + (inflow if side == "left" else 0.0)
    t["venous_bcv_r"] = t["venous"] + (inflow if side == "right" else 0.0)
    return t
