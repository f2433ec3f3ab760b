"""The patient's body in a CT: what "outside the body" means for a predicted label.

:func:`body_mask` thresholds the CT at -500 HU (soft tissue, bone and contrast above; air,
lung parenchyma and foam mattresses below), cuts the thin bridges that join the body to
the CT table, blankets or cables with a per-slice opening, keeps the largest 3D component
and fills its holes slice by slice (the lungs and airways are holes of the body on an axial
slice). The table is a separate component after the opening (a curved plate a few
millimetres thick under the patient), so it never counts as body; nor do the arms' gap or
the air around the patient.

Works in the canonical axial view of :class:`~deepstationing.rules.landmarks.Frame`, so a
CT stored with permuted or flipped axes gets the same mask.

Examples
--------
A box of soft tissue with an air-filled "lung" inside and a thin "table" plate under it
(separated by air), on a 2 mm grid:

>>> import numpy as np
>>> from deepstationing.data.image import Image
>>> hu = np.full((6, 60, 60), -1000, np.int16)
>>> hu[:, 10:40, 10:50] = 40          # body
>>> hu[:, 18:32, 18:28] = -850        # a lung inside it
>>> hu[:, 44:46, 5:55] = 300          # the table: a 4 mm plate, 8 mm below the body
>>> body = body_mask(Image(hu, spacing=(2.0, 2.0, 5.0)))
>>> bool(body[3, 25, 22]), bool(body[3, 45, 30]), int(body.sum()) == 6 * 30 * 40
(True, False, True)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from deepstationing.data.image import Image
from deepstationing.rules.landmarks import Frame

__all__ = ["body_mask", "BODY_HU", "BRIDGE_MM"]

#: Voxels above this value (HU) are tissue: fat is about -100, lung -850, foam -900.
BODY_HU = -500.0
#: Bridges thinner than about twice this (mm) between the body and anything else (table
#: pads, blankets, cables) are cut before the largest component is kept.
BRIDGE_MM = 3.0


def _square(half_mm: float, spacing_yx: tuple[float, float]) -> tuple[int, int, int]:
    """Filter size (1, rows, columns) of a square of half-width ``half_mm`` in the slice."""
    return (1, 2 * max(1, int(round(half_mm / spacing_yx[0]))) + 1,
            2 * max(1, int(round(half_mm / spacing_yx[1]))) + 1)


def body_mask(ct: Image, *, threshold_hu: float = BODY_HU,
              bridge_mm: float = BRIDGE_MM) -> np.ndarray:
    """Boolean mask of the patient's body on ``ct``'s grid (array layout of ``ct``).

    Args:
        ct: CT in Hounsfield units.
        threshold_hu: tissue threshold (:data:`BODY_HU`).
        bridge_mm: half-width of the square of the per-slice opening that separates the
            body from the table and other objects touching it (:data:`BRIDGE_MM`); 0 turns
            it off.

    Returns:
        The mask; all ``False`` when no voxel is above the threshold.
    """
    frame = Frame.of(ct)
    hu = frame.to_canonical(ct.array)
    tissue = hu > threshold_hu
    if not tissue.any():
        return np.zeros(ct.shape, bool)
    size = _square(bridge_mm, frame.spacing[1:]) if bridge_mm > 0 else None
    core = tissue
    if size is not None:  # min/max filters: a separable opening with a square
        core = ndimage.maximum_filter(ndimage.minimum_filter(tissue.view(np.uint8), size),
                                      size).view(bool)
        if not core.any():  # everything thinner than the bridges: keep the plain threshold
            core = tissue
    labels, n = ndimage.label(core, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel().astype(np.intp))  # (int32 input is slow)
    sizes[0] = 0
    keep = labels == int(np.argmax(sizes))
    if size is not None:  # give back the surface the opening took, not the bridges
        keep = ndimage.maximum_filter(keep.view(np.uint8), size).view(bool) & tissue
    # holes of each axial slice (lungs, airways): an in-plane structure, and an empty slice
    # above and below so that the first and last slices have their own border
    padded = np.pad(keep, ((1, 1), (0, 0), (0, 0)))
    plane = ndimage.generate_binary_structure(2, 1)[None]
    keep = ndimage.binary_fill_holes(padded, structure=plane)[1:-1]
    return frame.from_canonical(keep)
