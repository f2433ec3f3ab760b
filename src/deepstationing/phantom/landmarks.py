"""Landmark levels of a phantom case, measured on its organ label map as built.

Every landmark is a *slice centre* (world z, mm, LPS, +z superior) defined on the written
organ masks, so a reader who applies the same definition to ``organs.nii.gz`` gets exactly the
same number; none depends on the sub-slice position of a continuous parameter (except
``z_dia``, see below). Definitions (spec part 0.1 numbers in brackets):

* ``z_cric`` [L1]: highest slice containing ``trachea`` voxels (the trachea label starts at
  the lower margin of the cricoid; the larynx above it is unlabelled).
* ``z_notch`` [L2]: highest slice containing ``sternum`` voxels.
* ``z_apex_r`` / ``z_apex_l`` [L4]: highest slice containing ``lung_r`` / ``lung_l``.
* ``z_bcv`` [L5]: lowest slice in which, in the image column through the in-slice centroid of
  the trachea, some ``bcv_l`` voxel lies anterior to (a smaller row than) every trachea voxel
  of that column.
* ``z_archtop`` / ``z_archbot`` [L6, L7]: highest / lowest slice containing ``aortic_arch``.
  The arch label is the aorta above the level where its two limbs merge, so the slice below
  ``z_archbot`` shows the ascending and descending aorta as two separate circles.
* ``z_azy`` [L8]: lowest slice containing an ``azygos`` voxel anterior to the vertebral body,
  i.e. in a row smaller than the most anterior ``spine`` row within 15 mm (in x) of the spine's
  in-slice centroid. The ascending azygos lies beside the vertebral body, behind that row.
* ``z_lpa`` [L9]: highest slice containing ``pulmonary_artery`` voxels left of the carina
  (world x > ``carina_lps`` x). The left PA is the highest part of the pulmonary arteries.
* ``z_car`` [L10]: lowest slice containing ``trachea`` voxels. The trachea label ends at the
  carina plane; the bronchi below it carry their own labels, and the airway in the next slice
  down is two separate components.
* ``z_dia`` [L12]: the highest slice centre at or below the top of the right hemidiaphragm
  dome (a construction parameter; the lungs' lowest posterior recesses reach 3-8 cm lower).
* ``carina_lps``: ``(x, y, z_car)``, the world position of the centroid of the trachea voxels
  on slice ``z_car``.
"""

from __future__ import annotations

import numpy as np

from deepstationing.schema import ORGANS

__all__ = ["measure_landmarks", "LANDMARK_KEYS"]

LANDMARK_KEYS = ("z_cric", "z_notch", "z_apex_r", "z_apex_l", "z_bcv", "z_archtop", "z_archbot",
                 "z_azy", "z_lpa", "z_car", "z_dia")


def presence(organs: np.ndarray) -> np.ndarray:
    """Boolean ``[slice, label]`` table: which labels occur on which slice."""
    n = max(int(organs.max()) + 1, len(ORGANS) + 1)
    return np.stack([np.bincount(s.ravel(), minlength=n) > 0 for s in organs])


_PRESENCE: dict[int, np.ndarray] = {}


def _slices_with(organs: np.ndarray, key: str) -> np.ndarray:
    tab = _PRESENCE.get(id(organs))
    if tab is None:
        tab = presence(organs)
        _PRESENCE.clear()
        _PRESENCE[id(organs)] = tab
    return np.nonzero(tab[:, ORGANS.by_key(key).id])[0]


def measure_landmarks(organs: np.ndarray, spacing, origin, z_dia_anatomy_world: float) -> dict:
    """Measure the landmark dict (world mm) on an organ map ``[z, y, x]`` (identity direction).

    ``z_dia_anatomy_world`` is the world z of the top of the right diaphragm dome.
    """
    sx, sy, sz = spacing
    zw = origin[2] + np.arange(organs.shape[0]) * sz

    def top(key):
        s = _slices_with(organs, key)
        return float(zw[s.max()]) if s.size else float("nan")

    def bottom(key):
        s = _slices_with(organs, key)
        return float(zw[s.min()]) if s.size else float("nan")

    tid = ORGANS.by_key("trachea").id
    out: dict = {
        "z_cric": top("trachea"),
        "z_notch": top("sternum"),
        "z_apex_r": top("lung_r"),
        "z_apex_l": top("lung_l"),
        "z_archtop": top("aortic_arch"),
        "z_archbot": bottom("aortic_arch"),
        "z_car": bottom("trachea"),
    }
    # carina point
    k_car = _slices_with(organs, "trachea").min()
    rr, cc = np.nonzero(organs[k_car] == tid)
    car_x = origin[0] + cc.mean() * sx
    car_y = origin[1] + rr.mean() * sy
    out["carina_lps"] = [round(float(car_x), 3), round(float(car_y), 3), round(out["z_car"], 3)]
    # z_bcv
    bid = ORGANS.by_key("bcv_l").id
    found = []
    for k in np.intersect1d(_slices_with(organs, "bcv_l"), _slices_with(organs, "trachea")):
        rows, cols = np.nonzero(organs[k] == tid)
        c = int(round(cols.mean()))
        col = organs[k][:, c]
        tr_rows = np.nonzero(col == tid)[0]
        b_rows = np.nonzero(col == bid)[0]
        if tr_rows.size and b_rows.size and b_rows.min() < tr_rows.min():
            found.append(k)
    out["z_bcv"] = float(zw[min(found)]) if found else float("nan")
    # z_azy
    sid, aid = ORGANS.by_key("spine").id, ORGANS.by_key("azygos").id
    found = []
    for k in _slices_with(organs, "azygos"):
        rows, cols = np.nonzero(organs[k] == sid)
        if rows.size == 0:
            continue
        near = np.abs(cols - cols.mean()) * sx < 15.0
        row_va = rows[near].min()
        ar, _ = np.nonzero(organs[k] == aid)
        if (ar < row_va).any():
            found.append(k)
    out["z_azy"] = float(zw[min(found)]) if found else float("nan")
    # z_lpa
    pid = ORGANS.by_key("pulmonary_artery").id
    c_car = (car_x - origin[0]) / sx
    c0 = int(np.floor(c_car)) + 1
    ks = np.array([k for k in _slices_with(organs, "pulmonary_artery")
                   if (organs[k][:, c0:] == pid).any()], dtype=int)
    out["z_lpa"] = float(zw[ks.max()]) if ks.size else float("nan")
    # z_dia: highest slice centre at or below the dome top
    below = zw[zw <= z_dia_anatomy_world + 1e-6]
    out["z_dia"] = float(below.max()) if below.size else float(zw[0])
    _PRESENCE.clear()
    order = list(LANDMARK_KEYS) + ["carina_lps"]
    return {k: (round(out[k], 3) if isinstance(out[k], float) else out[k]) for k in order}
