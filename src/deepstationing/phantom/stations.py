"""Station truth of the phantom: the "institutional protocol" plus annotator variability.

The phantom's stations are drawn the way one (fictional) clinic's annotators draw them: from
the IASLC text, with house conventions where the text leaves room, and with a little
per-case hand variability. They are built from the phantom's *own* anatomy (true centrelines,
radii and landmark levels), not from the organ masks with the textbook margins of
``stations-spec.md`` part A, so a margin-based rule baseline does not reproduce them by
construction. ``docs/phantom.md`` has the full protocol table; in short (z levels are the
landmark slices of :mod:`.landmarks`; "above L" means slices with z > L):

* **1R/1L**: above ``z_notch`` up to ``z_cric`` inclusive; split at the tracheal *centreline*;
  laterally to the IJV lateral wall + 6 mm; between notch and the ipsilateral apex only the
  part anterior to the coronal plane through the tracheal centre (deviation: textbook uses
  the front of the lung); posteriorly to the posterior tracheal wall + 2 mm (above the apex:
  to the vertebral front).
* **2R**: above ``z_bcv`` up to the right apex; **2L**: above ``z_archtop`` up to the left
  apex. Left/right split at the left lateral tracheal wall. Anterior limit (2 vs 3A): a
  coronal plane 6 mm anterior to the anterior tracheal wall (deviation: textbook uses the
  line through the great-vessel midpoints). Posterior limit: posterior tracheal wall + 2 mm.
* **3A**: above ``z_car`` up to ``z_notch``; anterior to the same 2/3A plane.
* **3P**: above ``z_car`` up to the lower apex; behind the posterior tracheal wall + 2 mm, in
  front of the vertebral front + 8 mm (deviation: textbook 10 mm), within 25 mm of the midline.
* **4R**: from ``z_azy`` *inclusive* (deviation: one slice lower than textbook, which puts the
  azygos slice in 10R) up to ``z_bcv``; right of the left tracheal wall, behind the 2/3A plane,
  in front of the posterior tracheal wall + 2 mm.
* **4L**: above ``z_lpa`` up to ``z_archtop``; left of the left tracheal wall; medial to the
  line from the descending-aorta centre to the pulmonary-artery bifurcation (deviation:
  textbook uses the ligamentum-arteriosum line between the aortic closest points).
* **5**: above ``z_lpa`` up to ``z_archbot``; lateral to that same line and posterior to the
  coronal plane through the ascending-aorta *centre* (deviation: textbook, its front).
* **6**: above ``z_archbot`` up to ``z_archtop``; fat within 8 mm of the ascending aorta/arch
  wall (deviation: textbook/clitk 10 mm), anterior to the 2/3A plane or left of the trachea.
* **7**: from ``z_car`` inclusive down to a plane slanted in the coronal direction through
  the lowest slices of the left and right bronchus labels (deviation: a horizontal plane in
  the textbook proxy); between the two bronchus centrelines; behind a coronal plane 6 mm
  anterior to the carina and in front of the esophagus centre.
* **8**: below station 7 down to ``z_dia`` (exclusive); fat within 12 mm of the esophageal
  wall, behind its centre - 12 mm and in front of the vertebral front + 8 mm.

Every station is restricted to mediastinal fat (never an organ, air, bone or lung voxel).
Overlaps are resolved in the fixed priority 7 > 8 > 4R > 4L > 5 > 6 > 3P > 3A > 2R > 2L >
1R > 1L.

Annotator variability: the in-plane boundaries are evaluated at positions displaced by a
smooth random field (three sine waves per axis, wavelengths 50-140 mm, amplitude
``annot_amp`` 1.5-4 mm), and each landmark level is moved by one slice up or down with
probability 0.1 each (never so far that a station disappears).
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.anatomy import Anatomy
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.landmarks import presence
from deepstationing.schema import ORGANS, STATIONS

__all__ = ["build_stations", "draw_annotator", "PRIORITY"]

PRIORITY = ("7", "8", "4R", "4L", "5", "6", "3P", "3A", "2R", "2L", "1R", "1L")
_LEVELS = ("z_cric", "z_notch", "z_apex_r", "z_apex_l", "z_bcv", "z_archtop", "z_archbot",
           "z_azy", "z_lpa", "z_car", "z_dia")


def draw_annotator(rng: np.random.Generator, amp: float) -> dict:
    """Random annotator variability: smooth displacement field and landmark slice shifts."""
    waves = []
    for _axis in range(2):
        comp = []
        w = rng.normal(size=3)
        w = w / np.sqrt((w ** 2).sum())
        for j in range(3):
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            lam = rng.uniform(50.0, 140.0)
            comp.append({"k": [round(float(v), 5) for v in 2 * np.pi * d / lam],
                         "phase": round(float(rng.uniform(0, 2 * np.pi)), 4),
                         "weight": round(float(amp * w[j] * np.sqrt(2.0)), 4)})
        waves.append(comp)
    shifts = {k: int(rng.choice([-1, 0, 1], p=[0.1, 0.8, 0.1])) for k in _LEVELS}
    return {"field": waves, "level_shift_slices": shifts}


def _displace(comp, x, y, z):
    out = np.zeros_like(x)
    for w in comp:
        k = w["k"]
        out += np.float32(w["weight"]) * np.sin(k[0] * x + k[1] * y + k[2] * z + w["phase"])
    return out


def _levels(landmarks: dict, annot: dict, dz: float, shift_z: float) -> dict[str, float]:
    """Landmark levels in anatomy z, with the annotator's slice choices (kept in order)."""
    L = {k: landmarks[k] - shift_z + annot["level_shift_slices"][k] * dz for k in _LEVELS}
    L["z_lpa"] = min(L["z_lpa"], L["z_archbot"] - dz)
    L["z_archbot"] = min(L["z_archbot"], L["z_archtop"] - dz)
    L["z_archtop"] = min(L["z_archtop"], L["z_bcv"] - dz)
    L["z_azy"] = min(L["z_azy"], L["z_bcv"] - 2 * dz, L["z_car"] + 2 * dz)
    L["z_bcv"] = min(L["z_bcv"], L["z_notch"] - dz)
    return L


def _slice_scalars(anat: Anatomy, z_anat: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice centreline positions the protocol refers to (vectorised over the slices)."""
    nz = len(z_anat)
    p, T, ends = anat.p, anat.tubes, anat.bronchus_ends
    v = {"yva": anat.y_va(z_anat).astype(np.float32),
         "ijv_r": np.full(nz, -70.0, np.float32), "ijv_l": np.full(nz, 70.0, np.float32),
         "asc_y": np.full(nz, -40.0, np.float32), "desc": np.zeros((nz, 2), np.float32),
         "eso_c": np.zeros((nz, 2), np.float32), "tcx": np.zeros(nz, np.float32),
         "tcy": np.zeros(nz, np.float32), "br_r": np.zeros(nz, np.float32),
         "br_l": np.zeros(nz, np.float32)}
    # centreline crossings of every slice at once (Tube.centres_at: NaN where none)
    za64 = np.asarray(z_anat, np.float64)
    c = T["trachea"].centres_at(np.minimum(np.maximum(za64, 0.0), anat.lv["top"]))
    c[np.isnan(c[:, 0])] = 0.0
    v["tcx"][:], v["tcy"][:] = c[:, 0], c[:, 1]
    for name, sg in (("ijv_r", -1), ("ijv_l", 1)):
        c = T[name].centres_at(za64)[:, 0]
        ok = ~np.isnan(c)
        v[name][ok] = c[ok] + sg * (p[name + "_r"] + 6.0)
    c = T["aorta"].centres_at(za64)[:, 1]
    ok = ~np.isnan(c)
    v["asc_y"][ok] = c[ok]
    c = T["aorta"].centres_at(np.minimum(za64, anat.lv["arch_c"]), last=True)
    c[np.isnan(c[:, 0])] = (p["desc_x"], p["desc_y"])
    v["desc"][:] = c
    c = T["esophagus"].centres_at(za64)
    c[np.isnan(c[:, 0])] = (p["eso_x"], 20.0)
    v["eso_c"][:] = c
    c = T["bronchus_r"].centres_at(za64)[:, 0]
    v["br_r"][:] = np.where(np.isnan(c), ends["r"][0], c)
    c = T["bronchus_l"].centres_at(za64)[:, 0]
    v["br_l"][:] = np.where(np.isnan(c), ends["l"][0], c)
    return v


class _Support:
    """The support voxels of one case (displaced by the annotator's field) and the station
    label being built for them; :meth:`put` gives unlabelled voxels of a mask a station."""

    def __init__(self, anat, support, z_anat, xa, ya, L, dz, annot, sc):
        self.kk, self.rr, self.cc = np.nonzero(support)
        x = xa[self.rr, self.cc]
        y = ya[self.rr, self.cc]
        z = z_anat[self.kk].astype(np.float32)
        ddx = _displace(annot["field"][0], x, y, z)
        ddy = _displace(annot["field"][1], x, y, z)
        self.x, self.y = x + ddx, y + ddy
        self.zsl = z  # slice centre (levels are compared per slice)
        kk, rtr = self.kk, np.float32(anat.p["trachea_r"])
        self.rtr = rtr
        self.xTL = sc["tcx"][kk] + rtr
        self.yTP = sc["tcy"][kk] + 0.94 * rtr + 2.0
        self.y23 = sc["tcy"][kk] - 0.94 * rtr - 6.0
        self.xm = sc["tcx"][kk]
        self.L, self.eps, self.sc = L, 0.25 * dz, sc
        self.out = np.zeros(self.x.shape, np.uint8)
        self.sid = {s.key: s.id for s in STATIONS}

    def at_or_below(self, lv: str) -> np.ndarray:
        return self.zsl <= self.L[lv] + self.eps

    def put(self, key: str, mask: np.ndarray) -> None:
        m = mask & (self.out == 0)
        self.out[m] = self.sid[key]


def _inferior(v: _Support, anat: Anatomy, organs: np.ndarray, z_anat: np.ndarray) -> np.ndarray:
    """Stations 7 (subcarinal) and 8 (paraesophageal); returns the station-7 floor per voxel."""
    x, y, zsl, kk, L, eps, sc = v.x, v.y, v.zsl, v.kk, v.L, v.eps, v.sc
    obr = ORGANS.by_key
    tab = presence(organs)
    k_l = np.nonzero(tab[:, obr("bronchus_l").id])[0]
    k_r = np.nonzero(tab[:, obr("bronchus_r").id])[0]
    z7l = float(z_anat[k_l.min()]) if k_l.size else L["z_car"] - 30
    z7r = float(z_anat[k_r.min()]) if k_r.size else L["z_car"] - 30
    ends = anat.bronchus_ends
    xl, xr = float(ends["l"][0]), float(ends["r"][0])
    z7 = np.interp(x, [xr, xl], [z7r, z7l]).astype(np.float32)
    s7 = v.at_or_below("z_car") & (zsl >= z7 - eps) & (x >= sc["br_r"][kk]) \
        & (x <= sc["br_l"][kk]) & (y <= sc["eso_c"][kk, 1]) & (y >= -6.0)
    v.put("7", s7)
    d_eso = np.full(x.shape, np.inf, np.float32)
    for k in np.unique(kk):
        m = kk == k
        d_eso[m] = anat.tubes["esophagus"].sd(x[m], y[m], float(z_anat[k]))
    s8 = (zsl < z7 - eps) & (zsl > L["z_dia"] + eps) & (d_eso <= 12.0) \
        & (y >= sc["eso_c"][kk, 1] - 12.0) & (y <= sc["yva"][kk] + 8.0)
    v.put("8", s8)
    return z7


def _paratracheal_aortic(v: _Support, anat: Anatomy, z_anat: np.ndarray) -> None:
    """Stations 4R, 4L, 5 and 6."""
    x, y, zsl, kk, sc, eps = v.x, v.y, v.zsl, v.kk, v.sc, v.eps
    p, L = anat.p, v.L
    xTL, y23, yTP, xm = v.xTL, v.y23, v.yTP, v.xm
    s4r = v.at_or_below("z_bcv") & (zsl >= L["z_azy"] - eps) & (x <= xTL) & (y >= y23) \
        & (y <= yTP) & (x >= p["svc_x"] - p["svc_r"])
    v.put("4R", s4r)
    B = anat.pa_bif
    desc = sc["desc"]
    dxl, dyl = B[0] - desc[kk, 0], B[1] - desc[kk, 1]
    side = (x - desc[kk, 0]) * dyl - (y - desc[kk, 1]) * dxl  # < 0: lateral/anterior
    in_apw = zsl <= L["z_archbot"] + eps
    s4l = v.at_or_below("z_archtop") & ~v.at_or_below("z_lpa") & (x > xTL) & (y >= y23) \
        & (y <= yTP) & ~(in_apw & (side < 0)) & (x <= xm + 40)
    v.put("4L", s4l)
    s5 = in_apw & ~v.at_or_below("z_lpa") & (x > xTL) & (side < 0) & (y >= sc["asc_y"][kk]) \
        & (x <= xm + 65)
    v.put("5", s5)
    d_ao = np.full(x.shape, np.inf, np.float32)
    m6z = v.at_or_below("z_archtop") & ~v.at_or_below("z_archbot")
    for k in np.unique(kk[m6z]):
        m = (kk == k) & m6z
        d_ao[m] = anat.tubes["aorta"].sd(x[m], y[m], float(z_anat[k]))
    s6 = m6z & (d_ao <= 8.0) & ((y < y23) | (x > xTL))
    v.put("6", s6)


def _upper(v: _Support) -> None:
    """Stations 3P, 3A, 2R, 2L, 1R and 1L."""
    x, y, zsl, kk, sc, eps, L = v.x, v.y, v.zsl, v.kk, v.sc, v.eps, v.L
    xTL, y23, yTP, xm, tcy, yva = v.xTL, v.y23, v.yTP, v.xm, sc["tcy"], sc["yva"]
    apex_min = min(L["z_apex_r"], L["z_apex_l"])
    s3p = ~v.at_or_below("z_car") & (zsl <= apex_min + eps) & (y > yTP) \
        & (y <= yva[kk] + 8.0) & (np.abs(x - xm) <= 25.0)
    v.put("3P", s3p)
    s3a = ~v.at_or_below("z_car") & v.at_or_below("z_notch") & (y < y23) \
        & (np.abs(x - 3.0) <= 32)
    v.put("3A", s3a)
    # 2R / 2L (between notch and apex only the part behind the tracheal centre plane)
    upper = ~v.at_or_below("z_notch")
    s2r = ~v.at_or_below("z_bcv") & (zsl <= L["z_apex_r"] + eps) & (x <= xTL) & (y >= y23) \
        & (y <= yTP) & ~(upper & (y < tcy[kk])) & (x >= xm - 40)
    v.put("2R", s2r)
    s2l = ~v.at_or_below("z_archtop") & (zsl <= L["z_apex_l"] + eps) & (x > xTL) \
        & (y >= y23) & (y <= yTP) & ~(upper & (y < tcy[kk])) & (x <= xm + 40)
    v.put("2L", s2l)
    above_apex_r = zsl > L["z_apex_r"] + eps
    above_apex_l = zsl > L["z_apex_l"] + eps
    post_lim = np.where(x < xm, np.where(above_apex_r, yva[kk], yTP),
                        np.where(above_apex_l, yva[kk], yTP))
    above_apex = np.where(x < xm, above_apex_r, above_apex_l)
    s1 = upper & v.at_or_below("z_cric") & (y <= post_lim) & (y >= tcy[kk] - v.rtr - 15.0) \
        & (above_apex | (y < tcy[kk]))
    v.put("1R", s1 & (x < xm) & (x >= sc["ijv_r"][kk]))
    v.put("1L", s1 & (x >= xm) & (x <= sc["ijv_l"][kk]))


def build_stations(anat: Anatomy, grid: Grid, organs: np.ndarray, support: np.ndarray,
                   z_anat: np.ndarray, xa: np.ndarray, ya: np.ndarray, landmarks: dict,
                   annot: dict) -> np.ndarray:
    """The 12-station label map (uint8) for one case, in the priority order of
    :data:`PRIORITY` (a voxel keeps the first station that claims it)."""
    dz = grid.spacing[2]
    L = _levels(landmarks, annot, dz, grid.shift[2])
    v = _Support(anat, support, z_anat, xa, ya, L, dz, annot, _slice_scalars(anat, z_anat))
    _inferior(v, anat, organs, z_anat)
    _paratracheal_aortic(v, anat, z_anat)
    _upper(v)
    st = np.zeros(organs.shape, np.uint8)
    st[v.kk, v.rr, v.cc] = v.out
    return st
