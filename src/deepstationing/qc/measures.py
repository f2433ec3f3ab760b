"""What QC measures on a label map: per-label volume, position, fragments, side, envelope.

Everything here is a plain measurement with a known answer on simple shapes; the judgement
(which value is implausible) is in :mod:`deepstationing.qc.findings`.

* :func:`measure_labels` — per label: voxels, volume (ml), centroid (world LPS mm), the
  fraction of its volume outside its largest 26-connected component (``scattered``: 0 for
  one piece, 0.5 for two equal pieces) and the fraction in components more than 10 mm
  away from the largest (``far``: islands).
* :func:`side_offsets` — per lateral label, the mean signed distance (mm) of its voxels
  from the tracheal midline of their slice, positive on the label's own side (patient left
  is +x in LPS: ``4L`` should be positive, so should ``4R``, measured towards the right).
* :func:`mediastinal_envelope` — the region a station may occupy: on each axial slice the
  convex hull of the lungs, airways, sternum and spine, carried up from the highest slice
  with both lungs to the top of the trachea and widened there (stations 1R/1L lie in the
  lower neck, partly above the apices), and nothing below the lowest lung slice (under the
  diaphragm) or above the larynx.

Examples
--------
Two blocks of one label, 8 and 2 voxels, on a 1 x 1 x 5 mm grid:

>>> import numpy as np
>>> from deepstationing.data.image import Image
>>> from deepstationing.schema import STATIONS
>>> a = np.zeros((4, 10, 10), np.uint8)
>>> a[1:3, 2:4, 2:4] = STATIONS.by_key("7").id
>>> a[1:3, 8, 8] = STATIONS.by_key("7").id      # 4.5 mm from the first: a nick, not far
>>> m = measure_labels(Image(a, spacing=(1.0, 1.0, 5.0)), STATIONS)["7"]
>>> m.voxels, m.ml, m.components, m.scattered, m.far
(10, 0.05, 2, 0.2, 0.0)
>>> measure_labels(Image(a, spacing=(3.0, 3.0, 5.0)), STATIONS)["7"].far  # 13.5 mm apart
0.2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from deepstationing.data.image import Image
from deepstationing.rules.landmarks import Frame, Landmarks
from deepstationing.schema import ORGANS, LabelSet

__all__ = ["LabelMeasure", "measure_labels", "main_pieces", "side_offsets", "mediastinal_envelope",
           "LATERAL_STATIONS", "LATERAL_ORGANS", "AIRWAY", "LUNGS"]

#: Stations with a side (1L/1R, 2L/2R, 4L/4R).
LATERAL_STATIONS: tuple[str, ...] = ("1L", "1R", "2L", "2R", "4L", "4R")
#: Organs with a side.
LATERAL_ORGANS: tuple[str, ...] = tuple(o.key for o in ORGANS if o.side is not None)
AIRWAY: tuple[str, ...] = ("trachea", "bronchus_r", "bronchus_l")
LUNGS: tuple[str, ...] = ("lung_r", "lung_l")
#: Bones that close the thoracic cavity in front and behind.
CAVITY_WALLS: tuple[str, ...] = ("sternum", "spine")

_FULL = np.ones((3, 3, 3), bool)
#: A component farther than this (mm) from the largest one of its label is an island.
FRAGMENT_GAP_MM = 10.0


@dataclass(frozen=True)
class LabelMeasure:
    """Measurements of one label of a label map.

    Attributes:
        key: the label's key (``"4R"``, ``"lung_l"``).
        voxels: number of voxels.
        ml: volume in millilitres.
        centroid: world LPS position (mm) of the centroid.
        components: number of 26-connected components.
        scattered: fraction of the volume outside the largest component.
        far: fraction of the volume in components farther than ``gap_mm`` (see
            :func:`measure_labels`) from the largest component: islands, not the nicks
            and bridges of one structure.
    """

    key: str
    voxels: int
    ml: float
    centroid: tuple[float, float, float]
    components: int
    scattered: float
    far: float


def measure_labels(labels: Image, label_set: LabelSet, *,
                   gap_mm: float = FRAGMENT_GAP_MM) -> dict[str, LabelMeasure]:
    """Measurements of every label of ``label_set`` present in ``labels`` (absent ones are
    left out); ``gap_mm`` is the distance from the largest component beyond which a
    component counts as ``far``."""
    arr = labels.array
    if arr.dtype.kind not in "iu":
        arr = arr.astype(np.int32)
    vox_ml = float(np.prod(labels.spacing)) / 1000.0
    boxes = ndimage.find_objects(arr, max_label=len(label_set))
    out: dict[str, LabelMeasure] = {}
    for lab in label_set:
        box = boxes[lab.id - 1]
        if box is None:
            continue
        mask = arr[box] == lab.id
        n = int(mask.sum())
        if n == 0:
            continue
        comp, ncomp = ndimage.label(mask, structure=_FULL)
        sizes = np.bincount(comp.ravel().astype(np.intp))[1:]
        centre = []
        for axis, sl in enumerate(box):  # centroid from the projections on each axis
            other = tuple(a for a in range(3) if a != axis)
            profile = mask.sum(axis=other)
            centre.append(float(np.arange(profile.size) @ profile) / n + sl.start)
        far = 0
        if ncomp > 1:  # distance of every other component from the largest one
            largest = int(np.argmax(sizes)) + 1
            dist = ndimage.distance_transform_edt(comp != largest,
                                                  sampling=labels.array_spacing)
            for i, piece in enumerate(ndimage.find_objects(comp), 1):
                if i != largest and dist[piece][comp[piece] == i].min() > gap_mm:
                    far += int(sizes[i - 1])
        out[lab.key] = LabelMeasure(lab.key, n, round(n * vox_ml, 6),
                                    labels.index_to_world(centre), int(ncomp),
                                    round(1.0 - float(sizes.max()) / n, 6), round(far / n, 6))
    return out


def main_pieces(labels: Image, label_set: LabelSet) -> Image:
    """``labels`` with each label cut down to its largest 26-connected component: the
    anatomy the landmarks, the envelope and the rules are computed from, so that a speck of
    "trachea" in the stomach does not move the carina (the islands are reported by the
    ``fragments`` finding).

    >>> import numpy as np
    >>> a = np.zeros((6, 8, 8), np.uint8)
    >>> a[3:6, 2:5, 2:5] = 22; a[0, 7, 7] = 22          # the trachea and a speck below it
    >>> main = main_pieces(Image(a), ORGANS).array
    >>> int((a == 22).sum()), int((main == 22).sum()), int(np.flatnonzero(main.any((1, 2)))[0])
    (28, 27, 3)
    """
    arr = labels.array
    if arr.dtype.kind not in "iu":
        arr = arr.astype(np.int32)
    out = arr.copy()
    for lab, box in zip(label_set, ndimage.find_objects(arr, max_label=len(label_set))):
        if box is None:
            continue
        mask = arr[box] == lab.id
        comp, n = ndimage.label(mask, structure=_FULL)
        if n > 1:
            sizes = np.bincount(comp.ravel().astype(np.intp))
            sizes[0] = 0
            region = out[box]
            region[mask & (comp != int(np.argmax(sizes)))] = 0
    return labels.with_array(out)


def side_offsets(labels: Image, label_set: LabelSet, keys: tuple[str, ...],
                 landmarks: Landmarks) -> dict[str, float]:
    """Mean signed distance (mm) of each lateral label's voxels from the tracheal midline of
    their axial slice, towards the label's own side (negative: on the wrong side).

    Labels absent from the map are left out; so is everything when the landmarks have no
    midline (no trachea, bronchi or spine).
    """
    frame: Frame | None = landmarks.frame
    x_mid = landmarks.lines.get("x_mid") if landmarks.lines else None
    if frame is None or x_mid is None or not np.isfinite(x_mid).all():
        return {}
    canon = frame.to_canonical(labels.array)
    if canon.dtype.kind not in "iu":
        canon = canon.astype(np.int32)
    boxes = ndimage.find_objects(canon, max_label=len(label_set))
    sx = frame.spacing[2]
    out: dict[str, float] = {}
    for key in keys:
        lab = label_set.by_key(key)
        box = boxes[lab.id - 1]
        if box is None:
            continue
        mask = canon[box] == lab.id
        per_slice = mask.sum(axis=(1, 2)).astype(float)  # voxels per slice
        cols = (mask.sum(axis=1) @ np.arange(box[2].start, box[2].stop)) * sx  # sum of x
        n = per_slice.sum()
        if n == 0:
            continue
        offset = float((cols - per_slice * x_mid[box[0]]).sum() / n)  # + towards patient left
        out[key] = round(offset if lab.side == "L" else -offset, 3)
    return out


def _lower_chain(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Indices of the lower convex chain of points ``(y, x)`` sorted by increasing ``y``
    (monotone chain): the largest convex function of ``y`` below every ``x``."""
    keep: list[int] = []
    for i in range(len(y)):
        while len(keep) >= 2:
            a, b = keep[-2], keep[-1]
            # b lies on or above the segment a -> i: not a vertex of the lower chain
            if (x[b] - x[a]) * (y[i] - y[a]) >= (x[i] - x[a]) * (y[b] - y[a]):
                keep.pop()
            else:
                break
        keep.append(i)
    return np.asarray(keep)


def _hull(mask2d: np.ndarray) -> np.ndarray:
    """The filled convex hull of a 2D mask (pixel centres within it, and the mask)."""
    rows = np.flatnonzero(mask2d.any(axis=1))
    out = mask2d.copy()
    if rows.size < 2:
        return out
    sub = mask2d[rows]
    left = np.argmax(sub, axis=1).astype(float)
    right = (sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)).astype(float)
    # a convex region's left edge is a convex function of the row, its right edge a
    # concave one: the chains through the rows' end pixels
    lo = _lower_chain(rows, left)
    hi = _lower_chain(rows, -right)
    span = np.arange(rows[0], rows[-1] + 1)
    x0 = np.interp(span, rows[lo], left[lo]) - 1e-6
    x1 = np.interp(span, rows[hi], right[hi]) + 1e-6
    cols = np.arange(mask2d.shape[1])
    out[span] |= (cols[None, :] >= x0[:, None]) & (cols[None, :] <= x1[:, None])
    return out


def _grow(mask: np.ndarray, mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """``mask`` grown by ``mm`` within each axial slice (canonical layout)."""
    if mm <= 0 or not mask.any():
        return mask
    ry = max(1, int(round(mm / spacing[1])))
    rx = max(1, int(round(mm / spacing[2])))
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    disk = (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= mm ** 2
    return ndimage.binary_dilation(mask, structure=disk[None])


def mediastinal_envelope(organs: Image, tolerance_mm: float = 5.0,
                         neck_tolerance_mm: float = 25.0,
                         above_trachea_mm: float = 10.0) -> np.ndarray | None:
    """Where stations may lie (boolean, ``organs``' array layout), from the anchor organs
    that enclose the mediastinum: lungs, airways, sternum and spine (the organs a cascade
    segments best: the envelope does not shrink when a small vessel is missed).

    Per axial slice: the convex hull of these organs (the thoracic cavity between them),
    grown by ``tolerance_mm`` in the slice. Above the highest slice with both lungs up to
    the top of the trachea, the hull of that slice is carried up and joined with the hull
    of each slice's airway and bones. Slices above the sternal notch or the apices (the
    lower neck, where 1R/1L lie, partly above the apices, around the front of the neck
    vessels) are grown by ``neck_tolerance_mm`` instead. The envelope of the trachea's top
    slice goes on for ``above_trachea_mm`` (1R/1L reach the cricoid, where the trachea
    label may end a slice early). Slices below the lowest lung voxel (below the diaphragm)
    and higher up get nothing. ``None`` when the map has no lung.
    """
    frame = Frame.of(organs)
    full = frame.to_canonical(organs.array)
    lung_ids = [ORGANS.by_key(k).id for k in LUNGS]
    ids = lung_ids + [ORGANS.by_key(k).id for k in AIRWAY + CAVITY_WALLS]
    used = np.isin(full, ids)
    if not used.any():
        return None
    # work inside the in-plane box of these organs, with room for the growth
    pad = [int(np.ceil(max(tolerance_mm, neck_tolerance_mm) / frame.spacing[a])) + 1
           for a in (1, 2)]
    rows = np.flatnonzero(used.any(axis=(0, 2)))
    cols = np.flatnonzero(used.any(axis=(0, 1)))
    crop = (slice(None), slice(max(0, rows[0] - pad[0]), rows[-1] + pad[0] + 1),
            slice(max(0, cols[0] - pad[1]), cols[-1] + pad[1] + 1))
    canon = full[crop]
    lungs = np.isin(canon, lung_ids)
    air = np.isin(canon, [ORGANS.by_key(k).id for k in AIRWAY])
    walls = np.isin(canon, [ORGANS.by_key(k).id for k in CAVITY_WALLS])
    lung_slices = np.flatnonzero(lungs.any(axis=(1, 2)))
    if lung_slices.size == 0:
        return None
    both = np.flatnonzero(np.logical_and.reduce(
        [(canon == i).any(axis=(1, 2)) for i in lung_ids]))
    top_both = int(both.max()) if both.size else int(lung_slices.max())
    air_slices = np.flatnonzero(air.any(axis=(1, 2)))
    top = max(int(lung_slices.max()), int(air_slices.max()) if air_slices.size else -1)
    env = np.zeros(canon.shape, bool)
    carried = None
    above = int(np.ceil(above_trachea_mm / frame.spacing[0] - 1e-9))
    for k in range(int(lung_slices.min()), min(canon.shape[0], top + above + 1)):
        if k > top:  # the larynx: the envelope of the top of the trachea goes on
            env[k] = env[top]
            continue
        if k > top_both and carried is not None:
            here = air[k] | walls[k]
            env[k] = carried | (_hull(here) if here.any() else False)
            continue
        here = lungs[k] | air[k] | walls[k]
        if here.any():
            env[k] = _hull(here)
        if k == top_both:
            carried = env[k].copy()
    sternum = np.flatnonzero((canon == ORGANS.by_key("sternum").id).any(axis=(1, 2)))
    neck_from = min(top_both, int(sternum.max())) + 1 if sternum.size else top_both + 1
    env[:neck_from] = _grow(env[:neck_from], tolerance_mm, frame.spacing)
    env[neck_from:] = _grow(env[neck_from:], neck_tolerance_mm, frame.spacing)
    out = np.zeros(full.shape, bool)
    out[crop] = env
    env = out
    return frame.from_canonical(env)
