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

import numpy as np
from scipy.ndimage import convolve1d

__all__ = ["hu_table", "add_noise_to_int16"]


def hu_table(p: dict) -> dict[str, float]:
    """HU of every tissue key used by the anatomy, for the case parameters ``p``."""
    arterial = 160.0 * p["contrast"]
    venous = arterial * p["venous_ratio"]
    small = venous * p["small_vein_ratio"]
    t = {
        "air": -1000.0,
        "lung": p["lung_hu"],
        "fat": p["fat_hu"],
        "muscle": p["muscle_hu"],
        "skin": 30.0,
        "arterial": arterial,
        "venous": venous,
        "small_vein": small,
        "heart_blood": 0.5 * (arterial + venous),
        "myocardium": 100.0 * (0.7 + 0.3 * p["contrast"]),
        "eso_wall": 50.0,
        "eso_lumen": {"collapsed": 50.0, "air": -1000.0, "fluid": 10.0}[p["eso_lumen"]],
        "bone": p["bone_hu"],
        "cortex": p["cortex_hu"],
        "rib": 0.5 * (p["bone_hu"] + p["cortex_hu"]) * 0.6,
        "cartilage": 110.0,
        "disc": 85.0,
        "csf": 15.0,
        "liver": 100.0 + 25.0 * (p["contrast"] - 1.0),
        "spleen": 115.0 + 25.0 * (p["contrast"] - 1.0),
        "stomach": 35.0,
        "thyroid": 130.0 + 30.0 * (p["contrast"] - 1.0),
        "node": 60.0,
        "pulm_artery_small": 0.8 * arterial,
    }
    side = p.get("inflow_side", "none")
    t["venous_bcv_l"] = venous + (p["inflow_hu"] if side == "left" else 0.0)
    t["venous_bcv_r"] = venous + (p["inflow_hu"] if side == "right" else 0.0)
    return t


def add_noise_to_int16(hu: np.ndarray, sd: float, rng: np.random.Generator,
                       pixel_mm: float) -> np.ndarray:
    """Add in-plane correlated Gaussian noise of SD ``sd`` and convert to int16 HU.

    ``hu`` (float32, ``[z, y, x]``) is modified in place. Grain size about 1.5 mm: at fine
    pixels (< 1 mm) noise is drawn on a half-resolution grid and upsampled.
    """
    nz, ny, nx = hu.shape
    kernel = np.array([0.25, 0.5, 0.25], dtype=np.float32)
    gain = 1.0 / float(np.sqrt((kernel ** 2).sum()) ** 2)  # restores unit SD after 2 passes
    f = 2 if pixel_mm < 1.0 else 1
    shape = (nz, -(-ny // f), -(-nx // f))
    n = rng.standard_normal(shape, dtype=np.float32)
    n = convolve1d(n, kernel, axis=1, mode="wrap")
    n = convolve1d(n, kernel, axis=2, mode="wrap")
    n *= np.float32(sd * gain)
    if f == 1:
        hu += n
    else:
        for k in range(nz):  # slice-wise keeps the temporaries small
            s = np.repeat(np.repeat(n[k], f, axis=0), f, axis=1)[:ny, :nx]
            hu[k] += s
    np.clip(hu, -1024, 3071, out=hu)
    out = np.empty(hu.shape, dtype=np.int16)
    np.rint(hu, out=hu)
    out[...] = hu
    return out
