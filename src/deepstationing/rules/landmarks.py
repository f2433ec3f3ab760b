"""Anatomical landmarks of the IASLC station map, computed from a 22-organ label map.

Implements ``stations-spec.md`` part 0.1 (L1-L16): the z-levels that bound the stations
(cricoid, sternal notch, lung apices, left-BCV crossing, arch top and bottom, azygos arch,
left pulmonary artery, carina, station 7 floor, diaphragm) and the per-slice lines that
split them in-plane (tracheal midline ``x_mid``, left and right tracheal walls ``x_TL`` /
``x_TR``, posterior and anterior tracheal walls ``y_TP`` / ``y_TA``, anterior vertebral border
``y_VA``).

Geometry: everything is computed in a *canonical* view of the array whose axes run towards
Superior, Posterior and patient Left (derived from the image direction with
:meth:`Image.axis_towards`, so a flipped or permuted axis is handled). Public results are in
world millimetres (LPS). A landmark whose organ is missing is estimated from its neighbours
(the estimate and the organ are named in :attr:`Landmarks.warnings`) or left ``None``.

Hand-written (numpy/scipy) because no maintained library computes IASLC landmarks; clitk is
C++/ITK and no longer public.

Examples
--------
>>> import numpy as np
>>> from deepstationing.data.image import Image
>>> from deepstationing.schema import ORGANS
>>> lab = np.zeros((10, 40, 40), np.uint8)
>>> lab[4:, 15:25, 15:25] = ORGANS.by_key("trachea").id     # trachea on slices 4..9
>>> lab[:4, 15:25, 8:16] = ORGANS.by_key("bronchus_r").id   # bronchi below
>>> lab[:4, 15:25, 24:32] = ORGANS.by_key("bronchus_l").id
>>> lm = compute_landmarks(Image(lab, spacing=(1.0, 1.0, 5.0)))
>>> lm.z_car, lm.z_cric   # carina = lowest tracheal slice; cricoid = its top
(20.0, 45.0)
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from deepstationing.data.image import Image
from deepstationing.errors import InputError
from deepstationing.rules.margins import DEFAULT_MARGINS, Margins
from deepstationing.schema import ORGANS

__all__ = ["Frame", "Landmarks", "OrganSlices", "compute_landmarks", "Z_LANDMARKS"]

#: Names of the z-landmarks, top to bottom (world z in mm, LPS, +z superior).
Z_LANDMARKS: tuple[str, ...] = (
    "z_cric", "z_apex_r", "z_apex_l", "z_notch", "z_bcv", "z_archtop", "z_azy", "z_archbot",
    "z_lpa", "z_car", "z_7r", "z_7l", "z_dia",
)


# ----------------------------------------------------------------------------- frame
@dataclass(frozen=True)
class Frame:
    """Maps an image's array to a canonical ``[S, P, L]`` view and back.

    Canonical index ``(k, i, j)`` increases towards Superior, Posterior and patient Left;
    ``spacing`` is in canonical order (mm) and ``origin`` is the world LPS position of the
    canonical voxel ``(0, 0, 0)``, so world ``z = origin[2] + k * spacing[0]`` and so on.
    """

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @classmethod
    def of(cls, image: Image) -> Frame:
        axes = [image.axis_towards(a) for a in (2, 1, 0)]  # S, P, L
        perm = tuple(a for a, _ in axes)
        if sorted(perm) != [0, 1, 2]:
            raise InputError(image.path, "image axes are too oblique to tell the patient "
                                         f"axes apart (direction {image.direction})")
        d = image.direction_matrix
        for lps, (arr_ax, _) in zip((2, 1, 0), axes, strict=True):
            if abs(d[lps, 2 - arr_ax]) < 0.95:
                _warnings.warn("oblique image direction: the rules treat it as axis-aligned",
                               stacklevel=3)
                break
        flip = tuple(s < 0 for _, s in axes)
        spacing = tuple(image.array_spacing[a] for a in perm)
        corner = [0, 0, 0]
        for (arr_ax, _), fl in zip(axes, flip, strict=True):
            corner[arr_ax] = image.shape[arr_ax] - 1 if fl else 0
        wx, wy, wz = image.index_to_world(corner)
        return cls(perm, flip, spacing, (wx, wy, wz))  # type: ignore[arg-type]

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """A view of ``array`` (image layout) in canonical ``[S, P, L]`` order."""
        a = np.transpose(array, self.perm)
        index = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        return a[index]

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_canonical` (a contiguous copy in image layout)."""
        index = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        return np.ascontiguousarray(np.transpose(array[index], np.argsort(self.perm)))

    def z_world(self, k: np.ndarray | float) -> np.ndarray | float:
        return self.origin[2] + np.asarray(k, dtype=float) * self.spacing[0]

    def y_world(self, i_mm: np.ndarray | float) -> np.ndarray | float:
        """World y of a canonical in-plane coordinate in mm (``i * spacing``)."""
        return self.origin[1] + np.asarray(i_mm, dtype=float)

    def x_world(self, j_mm: np.ndarray | float) -> np.ndarray | float:
        return self.origin[0] + np.asarray(j_mm, dtype=float)


# ------------------------------------------------------------------ per-slice organ stats
@dataclass
class _Stats:
    """Per-slice extent of one organ in canonical mm (NaN where the organ is absent)."""

    present: np.ndarray
    ymin: np.ndarray
    ymax: np.ndarray
    xmin: np.ndarray
    xmax: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    area: np.ndarray  # voxels


class OrganSlices:
    """Per-organ, per-slice extents of a canonical label array (computed once, lazily).

    Coordinates are canonical millimetres (``index * spacing``), rows ``y`` (posterior
    increasing), columns ``x`` (patient-left increasing).
    """

    def __init__(self, labels: np.ndarray, spacing: tuple[float, float, float]):
        self.labels = labels
        self.spacing = spacing
        self.nz = labels.shape[0]
        max_id = len(ORGANS)
        if labels.dtype.kind not in "iu":
            labels = labels.astype(np.int32)
            self.labels = labels
        objs = ndimage.find_objects(labels, max_label=max_id)  # ids above max_id are ignored
        self.bbox = {o.key: objs[o.id - 1] for o in ORGANS}
        self._cache: dict[str, _Stats] = {}

    def has(self, key: str) -> bool:
        return self.bbox.get(key) is not None

    def mask(self, key: str) -> tuple[np.ndarray, tuple[slice, slice, slice]] | None:
        """Boolean mask of an organ inside its bounding box, with the box."""
        box = self.bbox.get(key)
        if box is None:
            return None
        return self.labels[box] == ORGANS.by_key(key).id, box

    def stats(self, key: str) -> _Stats:
        if key in self._cache:
            return self._cache[key]
        nz = self.nz
        nan = np.full(nz, np.nan)
        st = _Stats(np.zeros(nz, bool), nan.copy(), nan.copy(), nan.copy(), nan.copy(),
                    nan.copy(), nan.copy(), np.zeros(nz))
        got = self.mask(key)
        if got is not None:
            m, box = got
            sy, sx = self.spacing[1], self.spacing[2]
            ys = (np.arange(box[1].start, box[1].stop) * sy)
            xs = (np.arange(box[2].start, box[2].stop) * sx)
            rows = m.any(axis=2)  # (z, y)
            cols = m.any(axis=1)  # (z, x)
            area = m.sum(axis=(1, 2)).astype(float)
            ok = area > 0
            ks = np.arange(box[0].start, box[0].stop)[ok]
            r, c = rows[ok], cols[ok]
            st.present[ks] = True
            st.area[ks] = area[ok]
            st.ymin[ks] = ys[np.argmax(r, axis=1)]
            st.ymax[ks] = ys[r.shape[1] - 1 - np.argmax(r[:, ::-1], axis=1)]
            st.xmin[ks] = xs[np.argmax(c, axis=1)]
            st.xmax[ks] = xs[c.shape[1] - 1 - np.argmax(c[:, ::-1], axis=1)]
            per_row = m.sum(axis=2)[ok]
            per_col = m.sum(axis=1)[ok]
            st.cy[ks] = per_row @ ys / area[ok]
            st.cx[ks] = per_col @ xs / area[ok]
        self._cache[key] = st
        return st

    def ztop(self, key: str) -> int | None:
        st = self.stats(key)
        return int(np.flatnonzero(st.present)[-1]) if st.present.any() else None

    def zbot(self, key: str) -> int | None:
        st = self.stats(key)
        return int(np.flatnonzero(st.present)[0]) if st.present.any() else None


def _fill(values: np.ndarray) -> np.ndarray:
    """Fill NaNs by linear interpolation between, and constant extrapolation beyond, defined
    entries (all NaN stays all NaN)."""
    ok = np.isfinite(values)
    if ok.all() or not ok.any():
        return values.copy()
    k = np.arange(values.size)
    return np.interp(k, k[ok], values[ok])


# ----------------------------------------------------------------------------- landmarks
@dataclass
class Landmarks:
    """Landmarks of one case (spec 0.1), in world millimetres (LPS, +z superior).

    z-landmarks are ``None`` when they could neither be found nor estimated. The per-slice
    arrays (one value per canonical slice, ordered inferior to superior, at world z
    :attr:`z`) are filled beyond the organ that defines them by the nearest defined value
    (NaN when the organ and its fallback are both missing).
    """

    z_cric: float | None = None
    z_notch: float | None = None
    z_apex_r: float | None = None
    z_apex_l: float | None = None
    z_bcv: float | None = None
    z_archtop: float | None = None
    z_archbot: float | None = None
    z_azy: float | None = None
    z_lpa: float | None = None
    z_car: float | None = None
    z_7l: float | None = None
    z_7r: float | None = None
    z_dia: float | None = None
    carina_lps: tuple[float, float, float] | None = None
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x_mid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x_tl: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x_tr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_tp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_ta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_va: np.ndarray = field(default_factory=lambda: np.zeros(0))
    estimated: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # internal: canonical slice indices and per-slice lines in canonical mm
    frame: Frame | None = field(default=None, repr=False)
    k: dict[str, int | None] = field(default_factory=dict, repr=False)
    lines: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def z_apex(self) -> float | None:
        """The lower of the two apices ("apex of the chest", clitk)."""
        vals = [v for v in (self.z_apex_r, self.z_apex_l) if v is not None]
        return min(vals) if vals else None

    def at(self, name: str, z_mm: float) -> float:
        """Value of a per-slice line (``"x_mid"``, ``"x_tl"``, ``"y_tp"``, ...) at world z."""
        return float(np.interp(z_mm, self.z, getattr(self, name)))

    def as_dict(self) -> dict:
        """z-landmarks, estimates and warnings as plain JSON-able values."""
        out: dict = {name: getattr(self, name) for name in Z_LANDMARKS}
        out["carina_lps"] = None if self.carina_lps is None else list(self.carina_lps)
        out["estimated"] = dict(self.estimated)
        out["warnings"] = list(self.warnings)
        return out


def compute_landmarks(organs: Image, margins: Margins = DEFAULT_MARGINS) -> Landmarks:
    """Landmarks (spec 0.1 L1-L16) of a 22-organ label map.

    Args:
        organs: label map with ids of :data:`deepstationing.schema.ORGANS`.
        margins: the named margins and estimates (:class:`Margins`).

    Returns:
        :class:`Landmarks`; missing organs give estimated or ``None`` landmarks with a
        warning naming the organ in ``.warnings``.
    """
    frame = Frame.of(organs)
    labels = frame.to_canonical(organs.array)
    return _landmarks(OrganSlices(labels, frame.spacing), frame, margins)


def _landmarks(org: OrganSlices, frame: Frame, m: Margins) -> Landmarks:
    lm = Landmarks(frame=frame)
    k: dict[str, int | None] = {}
    lines = _slice_lines(org, m, lm.warnings)
    sz = frame.spacing[0]
    _z_arch_carina(org, m, lm, k, sz)
    _z_diaphragm(org, m, lm, k, sz)
    _z_notch_apices(org, m, lm, k, sz)
    _z_vessels(org, lines, m, lm, k, sz)
    _publish(org, frame, m, lm, k, lines)
    return lm


def _estimate(org: OrganSlices, lm: Landmarks, k: dict[str, int | None], sz: float,
              name: str, base: int | None, mm: float, how: str) -> int | None:
    """Estimate the z-landmark ``name`` as ``base + mm`` (canonical slices), noting how."""
    if base is None:
        k[name] = None
        lm.warnings.append(f"{name} unknown: {how}, and no landmark to estimate it from")
        return None
    val = int(np.clip(base + round(mm / sz), 0, org.nz - 1))
    lm.estimated[name] = how
    lm.warnings.append(f"{name} estimated: {how}")
    k[name] = val
    return val


def _slice_lines(org: OrganSlices, m: Margins, warn: list[str]) -> dict[str, np.ndarray]:
    """The per-slice lines (canonical mm): tracheal midline and walls, vertebral border."""
    tr = org.stats("trachea")
    spine = org.stats("spine")
    x_mid = tr.cx.copy()
    br_r, br_l = org.stats("bronchus_r"), org.stats("bronchus_l")
    below = ~tr.present & br_r.present & br_l.present
    x_mid[below] = 0.5 * (br_r.xmax[below] + br_l.xmin[below])
    x_tl, x_tr, y_tp, y_ta = tr.xmax.copy(), tr.xmin.copy(), tr.ymax.copy(), tr.ymin.copy()
    y_va = _vertebral_front(org, m)
    if not org.has("spine"):
        warn.append("organ 'spine' missing or empty: y_VA (anterior vertebral border) "
                    "estimated from the posterior tracheal wall")
    if not org.has("trachea"):
        warn.append("organ 'trachea' missing or empty: z_cric and z_car unknown; tracheal "
                    "midline and walls estimated from the spine")
        x_mid = spine.cx.copy()
        y_tp = y_va - m.trachea_to_vertebra_mm
        y_ta = y_tp - 2 * m.trachea_halfwidth_mm
        x_tl = x_mid + m.trachea_halfwidth_mm
        x_tr = x_mid - m.trachea_halfwidth_mm
    if not org.has("spine"):
        y_va = _fill(y_tp) + m.trachea_to_vertebra_mm
    return {"x_mid": _fill(x_mid), "x_tl": _fill(x_tl), "x_tr": _fill(x_tr),
            "y_tp": _fill(y_tp), "y_ta": _fill(y_ta), "y_va": _fill(y_va)}


def _z_arch_carina(org: OrganSlices, m: Margins, lm: Landmarks, k: dict[str, int | None],
                   sz: float) -> None:
    """z-landmarks read off organ tops and bottoms: cricoid, notch, apices, arch, carina, 7."""
    warn = lm.warnings
    k["z_cric"] = org.ztop("trachea")
    k["z_notch"] = org.ztop("sternum")
    k["z_apex_r"] = org.ztop("lung_r")
    k["z_apex_l"] = org.ztop("lung_l")
    k["z_archtop"] = org.ztop("aortic_arch")
    k["z_archbot"] = org.zbot("aortic_arch")
    if not org.has("aortic_arch"):
        tops = [t for t in (org.ztop("ascending_aorta"), org.ztop("descending_aorta"))
                if t is not None]
        if tops:
            k["z_archtop"] = max(tops)
            lm.estimated["z_archtop"] = "top of the ascending/descending aorta"
            warn.append("organ 'aortic_arch' missing or empty: z_archtop estimated as the top "
                        "of the ascending/descending aorta; z_archbot unknown")
        else:
            warn.append("organ 'aortic_arch' missing or empty (no aorta at all): z_archtop "
                        "and z_archbot unknown")
    k["z_car"] = _carina(org, m)
    k["z_7r"], k["z_7l"] = org.zbot("bronchus_r"), org.zbot("bronchus_l")
    for side, key in (("z_7r", "bronchus_r"), ("z_7l", "bronchus_l")):
        if k[side] is None:
            _estimate(org, lm, k, sz, side, k["z_car"], -m.station7_height_mm,
                      f"organ '{key}' missing or empty: carina - {m.station7_height_mm:g} mm")


def _z_diaphragm(org: OrganSlices, m: Margins, lm: Landmarks, k: dict[str, int | None],
                 sz: float) -> None:
    """z_dia: above the lungs' bottom, else the heart's bottom, else unknown."""
    nz = org.nz
    lung_bots = [b for b in (org.zbot("lung_r"), org.zbot("lung_l")) if b is not None]
    if lung_bots:
        k["z_dia"] = int(np.clip(min(lung_bots) + round(m.diaphragm_above_lung_bottom_mm / sz),
                                 0, nz - 1))
    else:
        hb = org.zbot("heart")
        if hb is not None:
            k["z_dia"] = hb
            lm.estimated["z_dia"] = "bottom of the heart"
            lm.warnings.append("organs 'lung_r' and 'lung_l' missing or empty: z_dia "
                               "estimated as the bottom of the heart")
        else:
            k["z_dia"] = None
            lm.warnings.append("organs 'lung_r', 'lung_l' and 'heart' missing or empty: "
                               "z_dia unknown")


def _z_notch_apices(org: OrganSlices, m: Margins, lm: Landmarks, k: dict[str, int | None],
                    sz: float) -> None:
    """Estimate a missing sternal notch from the arch top and missing apices from the notch."""
    if k["z_notch"] is None:
        _estimate(org, lm, k, sz, "z_notch", k["z_archtop"], m.notch_above_archtop_mm,
                  f"organ 'sternum' missing or empty: arch top + {m.notch_above_archtop_mm:g} mm")
    for name, key in (("z_apex_r", "lung_r"), ("z_apex_l", "lung_l")):
        if k[name] is None:
            _estimate(org, lm, k, sz, name, k["z_notch"], m.apex_above_notch_mm,
                      f"organ '{key}' missing or empty: notch + {m.apex_above_notch_mm:g} mm")


def _z_vessels(org: OrganSlices, lines: dict[str, np.ndarray], m: Margins, lm: Landmarks,
               k: dict[str, int | None], sz: float) -> None:
    """The vessel landmarks: left BCV crossing, azygos arch, left pulmonary artery."""
    # left BCV crossing
    k["z_bcv"] = _bcv_crossing(org, lines, m)
    if k["z_bcv"] is None:
        if org.has("bcv_l") and org.has("trachea"):
            k["z_bcv"] = org.zbot("bcv_l")
            lm.estimated["z_bcv"] = "bottom of bcv_l (it never crosses in front of the trachea)"
            lm.warnings.append("z_bcv estimated: organ 'bcv_l' never lies in front of the "
                               "tracheal midline; used its lowest slice")
        else:
            why = "'bcv_l'" if not org.has("bcv_l") else "'trachea'"
            _estimate(org, lm, k, sz, "z_bcv", k["z_archtop"], m.bcv_above_archtop_mm,
                      f"organ {why} missing or empty: arch top + {m.bcv_above_archtop_mm:g} mm")
    # azygos arch
    k["z_azy"] = _azygos_arch_bottom(org, lines, m)
    if k["z_azy"] is None:
        why = "missing or empty" if not org.has("azygos") else "shows no arch"
        _estimate(org, lm, k, sz, "z_azy", k["z_car"], m.azygos_above_carina_mm,
                  f"organ 'azygos' {why}: carina + {m.azygos_above_carina_mm:g} mm")
    # left pulmonary artery
    k["z_lpa"] = _lpa_top(org, lines)
    if k["z_lpa"] is None:
        _estimate(org, lm, k, sz, "z_lpa", k["z_car"], m.lpa_above_carina_mm,
                  f"organ 'pulmonary_artery' missing or empty: carina + "
                  f"{m.lpa_above_carina_mm:g} mm")


def _publish(org: OrganSlices, frame: Frame, m: Margins, lm: Landmarks,
             k: dict[str, int | None], lines: dict[str, np.ndarray]) -> None:
    """Set the public values of ``lm``: world z-landmarks, per-slice lines, the carina."""
    lm.k = k
    lm.lines = lines
    z = frame.z_world(np.arange(org.nz))
    lm.z = np.asarray(z)
    for name in Z_LANDMARKS:
        idx = k.get(name)
        setattr(lm, name, None if idx is None else float(frame.z_world(idx)))
    for name in ("x_mid", "x_tl", "x_tr"):
        setattr(lm, name, np.asarray(frame.x_world(lines[name])))
    for name in ("y_tp", "y_ta", "y_va"):
        setattr(lm, name, np.asarray(frame.y_world(lines[name])))
    tr = org.stats("trachea")
    kc = k["z_car"]
    if kc is not None and np.isfinite(lines["x_mid"][kc]):
        yc = tr.cy[kc] if tr.present[kc] else lines["y_tp"][kc] - m.trachea_halfwidth_mm
        lm.carina_lps = (float(frame.x_world(lines["x_mid"][kc])),
                         float(frame.y_world(yc)), float(frame.z_world(kc)))


def _vertebral_front(org: OrganSlices, m: Margins) -> np.ndarray:
    """L16: per-slice ``ymin(spine ∩ |x - c(spine).x| < window)`` in canonical mm."""
    out = np.full(org.nz, np.nan)
    got = org.mask("spine")
    if got is None:
        return out
    mask, box = got
    st = org.stats("spine")
    sy, sx = org.spacing[1], org.spacing[2]
    xs = np.arange(box[2].start, box[2].stop) * sx
    ys = np.arange(box[1].start, box[1].stop) * sy
    for kk in range(mask.shape[0]):
        k = box[0].start + kk
        if not st.present[k]:
            continue
        window = np.abs(xs - st.cx[k]) < m.vertebra_window_mm
        rows = mask[kk][:, window].any(axis=1)
        if rows.any():
            out[k] = ys[np.argmax(rows)]
    return out


def _n_components(mask2d: np.ndarray, min_vox: int) -> tuple[int, np.ndarray, list[int]]:
    lab, n = ndimage.label(mask2d)
    if n == 0:
        return 0, lab, []
    sizes = np.bincount(lab.ravel())[1:]
    keep = [i + 1 for i in np.flatnonzero(sizes >= min_vox)]
    return len(keep), lab, keep


def _carina(org: OrganSlices, m: Margins) -> int | None:
    """L10: ``zbot(trachea)`` when bronchi carry their own labels, else the highest slice where
    the airway splits into two components."""
    if not org.has("trachea"):
        return None
    if org.has("bronchus_r") or org.has("bronchus_l"):
        return org.zbot("trachea")
    mask, box = org.mask("trachea")  # type: ignore[misc]
    min_vox = max(1, int(m.min_component_area_mm2 / (org.spacing[1] * org.spacing[2])))
    for kk in range(mask.shape[0] - 1, -1, -1):
        if _n_components(mask[kk], min_vox)[0] >= 2:
            return box[0].start + kk
    return org.zbot("trachea")


def _bcv_crossing(org: OrganSlices, lines: dict[str, np.ndarray], m: Margins) -> int | None:
    """L5: lowest slice where ``bcv_l`` lies anterior to the trachea at its midline column."""
    got = org.mask("bcv_l")
    if got is None or not org.has("trachea"):
        return None
    mask, box = got
    tr = org.stats("trachea")
    sy, sx = org.spacing[1], org.spacing[2]
    xs = np.arange(box[2].start, box[2].stop) * sx
    ys = np.arange(box[1].start, box[1].stop) * sy
    for kk in range(mask.shape[0]):
        k = box[0].start + kk
        if not tr.present[k]:
            continue
        cols = np.abs(xs - tr.cx[k]) <= max(m.bcv_column_halfwidth_mm, 0.5 * sx)
        rows = ys < tr.ymin[k]
        if mask[kk][np.ix_(rows, cols)].any():
            return k
    return None


def _azygos_arch_bottom(org: OrganSlices, lines: dict[str, np.ndarray],
                        m: Margins) -> int | None:
    """L8: lowest slice of the azygos arch (anterior to the vertebral body or touching the
    SVC)."""
    got = org.mask("azygos")
    if got is None:
        return None
    mask, box = got
    sy, sx = org.spacing[1], org.spacing[2]
    ys = np.arange(box[1].start, box[1].stop) * sy
    y_va = lines["y_va"]
    svc = None
    if org.has("svc"):
        r = int(np.ceil(m.azygos_svc_contact_mm / min(sy, sx)))
        pad = (box[0], slice(max(0, box[1].start - r), box[1].stop + r),
               slice(max(0, box[2].start - r), box[2].stop + r))
        svc_full = org.labels[pad] == ORGANS.by_key("svc").id
        if svc_full.any():
            yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
            disk = (yy * sy) ** 2 + (xx * sx) ** 2 <= m.azygos_svc_contact_mm ** 2
            near = ndimage.binary_dilation(svc_full, structure=disk[None])
            oy = box[1].start - pad[1].start
            ox = box[2].start - pad[2].start
            svc = near[:, oy:oy + mask.shape[1], ox:ox + mask.shape[2]]
    for kk in range(mask.shape[0]):
        sl = mask[kk]
        if not sl.any():
            continue
        arch = np.zeros_like(sl)
        if np.isfinite(y_va[box[0].start + kk]):
            arch |= sl & (ys < y_va[box[0].start + kk] - m.azygos_arch_anterior_mm)[:, None]
        if svc is not None:
            arch |= sl & svc[kk]
        if arch.any():
            return box[0].start + kk
    return None


def _lpa_top(org: OrganSlices, lines: dict[str, np.ndarray]) -> int | None:
    """L9: ``ztop(pa ∩ {x > x_mid})``."""
    got = org.mask("pulmonary_artery")
    if got is None:
        return None
    mask, box = got
    xs = np.arange(box[2].start, box[2].stop) * org.spacing[2]
    x_mid = lines["x_mid"]
    for kk in range(mask.shape[0] - 1, -1, -1):
        xm = x_mid[box[0].start + kk]
        left = xs > xm if np.isfinite(xm) else np.ones_like(xs, bool)
        if mask[kk][:, left].any():
            return box[0].start + kk
    return None
