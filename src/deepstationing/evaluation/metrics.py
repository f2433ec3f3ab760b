"""Per-label segmentation metrics in millimetres: DSC, HD, HD95 and ASSD.

All four come from one computation per label, on a crop: the bounding boxes of every label
of both label maps are found in one pass per map (:func:`scipy.ndimage.find_objects`), and
each label is evaluated on the union of its two boxes only. The surface distances are
DeepMind's area-weighted surfels (see :mod:`deepstationing.evaluation.surface`), so they are
right on anisotropic CT grids such as 0.7 x 0.7 x 5 mm.

Definitions (``T`` truth, ``P`` prediction, distances in mm using the voxel spacing):

* **DSC** = 2 |T ∩ P| / (|T| + |P|), a fraction in 0..1.
* **HD** = max(max over T's surfels of the distance to P's surface,
  max over P's surfels of the distance to T's surface).
* **HD95** = the larger of the two directed area-weighted 95th percentiles (DeepMind's
  ``compute_robust_hausdorff(..., 95)``).
* **ASSD** = (Σ d_T·a_T + Σ d_P·a_P) / (Σ a_T + Σ a_P): the area-weighted mean, over the
  surfels of both surfaces, of the distance to the other surface (``a`` = surfel area).

Empty-mask convention (the same for every metric; never an error)
-----------------------------------------------------------------
=======================  =====  ============  =========
case                     DSC    HD/HD95/ASSD  ``empty``
=======================  =====  ============  =========
both non-empty           value  values        ``""``
prediction empty only    0.0    NaN           ``"pred"``
truth empty only         0.0    NaN           ``"truth"``
both empty               NaN    NaN           ``"both"``
=======================  =====  ============  =========

A missed structure (or a false-positive one) thus counts as DSC 0 in averages, while its
distances are undefined and left out of distance averages; a label absent from both maps
is left out of everything. The ``empty`` flag says which case applied.

Examples
--------
>>> import numpy as np
>>> truth = np.zeros((10, 40, 40), np.uint8); truth[2:6, 10:30, 10:30] = 1
>>> pred = np.roll(truth, 1, axis=0)  # one 5 mm slice up
>>> m = label_map_metrics(truth, pred, spacing=(5.0, 0.7, 0.7), labels=[1, 2])
>>> m[1].dsc, m[1].hd, m[1].empty
(0.75, 5.0, '')
>>> m[2]
Metrics(dsc=nan, hd=nan, hd95=nan, assd=nan, empty='both')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from deepstationing.data.image import Image, check_same_geometry
from deepstationing.evaluation.surface import surface_distances

__all__ = [
    "Metrics",
    "METRIC_NAMES",
    "EMPTY_FLAGS",
    "mask_metrics",
    "label_map_metrics",
    "image_metrics",
]

#: The metrics, in the order of the CSV columns.
METRIC_NAMES: tuple[str, ...] = ("dsc", "hd", "hd95", "assd")
#: Values of :attr:`Metrics.empty`: none, prediction, truth, both empty.
EMPTY_FLAGS: tuple[str, ...] = ("", "pred", "truth", "both")

_NAN = float("nan")


@dataclass(frozen=True, eq=False)
class Metrics:
    """Metrics of one label: DSC (fraction 0..1), HD, HD95 and ASSD (mm), and the empty flag.

    See the module docstring for the convention when a mask is empty. Equality treats NaN
    as equal to NaN.
    """

    dsc: float
    hd: float
    hd95: float
    assd: float
    empty: str = ""

    @classmethod
    def for_empty(cls, which: str) -> Metrics:
        """The metrics of a label whose ``which`` (``"pred"``, ``"truth"``, ``"both"``) is empty.

        >>> Metrics.for_empty("pred")
        Metrics(dsc=0.0, hd=nan, hd95=nan, assd=nan, empty='pred')
        """
        if which not in EMPTY_FLAGS[1:]:
            raise ValueError(f"empty must be one of {EMPTY_FLAGS[1:]}, got {which!r}")
        return cls(_NAN if which == "both" else 0.0, _NAN, _NAN, _NAN, which)

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)

    def __eq__(self, other: object) -> bool:  # NaN-aware, so equal results compare equal
        if not isinstance(other, Metrics):
            return NotImplemented
        return self.empty == other.empty and all(
            _same(getattr(self, k), getattr(other, k)) for k in METRIC_NAMES
        )

    __hash__ = None  # type: ignore[assignment]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _from_masks(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> Metrics:
    """Metrics of two boolean masks (typically small crops)."""
    n_t = int(np.count_nonzero(truth))
    n_p = int(np.count_nonzero(pred))
    if n_t == 0 or n_p == 0:
        return Metrics.for_empty("both" if n_t == n_p else ("truth" if n_t == 0 else "pred"))
    inter = int(np.count_nonzero(truth & pred))
    sd = surface_distances(truth, pred, spacing)
    return Metrics(
        dsc=2.0 * inter / (n_t + n_p),
        hd=sd.hausdorff(100),
        hd95=sd.hausdorff(95),
        assd=sd.assd(),
    )


def mask_metrics(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> Metrics:
    """DSC, HD, HD95 and ASSD of two binary 3D masks.

    Args:
        truth: reference mask (non-zero = foreground).
        pred: predicted mask, same shape.
        spacing: voxel size in mm in array-axis order (``Image.array_spacing``: ``(z, y, x)``).

    >>> import numpy as np
    >>> a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True
    >>> mask_metrics(a, a, (1, 1, 1))
    Metrics(dsc=1.0, hd=0.0, hd95=0.0, assd=0.0, empty='')
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {truth.shape} and {pred.shape}")
    return _from_masks(truth.astype(bool, copy=False), pred.astype(bool, copy=False), spacing)


def _as_label_array(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a.view(np.uint8)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} label map must have an integer type, got {a.dtype}")
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        raise ValueError(f"{name} label map has negative values")
    return a


def label_map_metrics(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                      labels: Iterable[int] | None = None) -> dict[int, Metrics]:
    """Metrics of every label of two label maps.

    Args:
        truth: reference label map (integers, 0 = background), axes as ``spacing``.
        pred: predicted label map, same shape.
        spacing: voxel size in mm in array-axis order (``Image.array_spacing``: ``(z, y, x)``).
        labels: the label values to evaluate (e.g. ``STATIONS.ids``); every one gets an entry,
            with ``empty="both"`` if it is in neither map. ``None``: every non-zero value
            present in either map. Values not listed are ignored.

    Returns:
        ``{label: Metrics}`` in the order of ``labels`` (ascending when ``None``).

    Each label is evaluated on the union of its bounding boxes in the two maps (found for all
    labels in one pass per map), which gives the same numbers as evaluating it on the full
    volume, much faster.

    >>> import numpy as np
    >>> t = np.zeros((6, 6, 6), np.uint8); t[1:3, 1:3, 1:3] = 4
    >>> sorted(label_map_metrics(t, t, (1, 1, 1)))
    [4]
    """
    t = _as_label_array(truth, "truth")
    p = _as_label_array(pred, "prediction")
    if t.shape != p.shape or t.ndim != 3:
        raise ValueError(f"label maps must be 3D of the same shape, got {t.shape} and {p.shape}")
    if labels is None:
        top = int(max(t.max(initial=0), p.max(initial=0)))
        wanted = None
    else:
        wanted = [int(v) for v in labels]
        if any(v < 1 for v in wanted):
            raise ValueError(f"labels must be positive, got {wanted}")
        top = max(wanted, default=0)
    if top == 0:
        return {v: Metrics.for_empty("both") for v in (wanted or [])}
    boxes_t = ndimage.find_objects(t, max_label=top)
    boxes_p = ndimage.find_objects(p, max_label=top)
    if wanted is None:
        wanted = [i + 1 for i in range(top) if boxes_t[i] is not None or boxes_p[i] is not None]
    out: dict[int, Metrics] = {}
    for value in wanted:
        bt, bp = boxes_t[value - 1], boxes_p[value - 1]
        if bt is None or bp is None:
            out[value] = Metrics.for_empty(
                "both" if bt is None and bp is None else ("truth" if bt is None else "pred"))
            continue
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(bt, bp))
        out[value] = _from_masks(t[box] == value, p[box] == value, spacing)
    return out


def image_metrics(truth: Image, pred: Image,
                  labels: Iterable[int] | None = None) -> dict[int, Metrics]:
    """:func:`label_map_metrics` of two label-map images, with their spacing.

    Raises:
        InputError: the images' geometries differ (the message names the prediction file).
    """
    check_same_geometry(truth, pred, reference_name="truth", other_name="prediction")
    return label_map_metrics(truth.array, pred.array, truth.array_spacing, labels)
