"""Put an image on another image's voxel grid when the two grids share their voxel centres.

Label maps often arrive on the CT's grid but stored differently: a NIfTI written with a
flipped x axis, axes in another order. :func:`on_grid` moves such an image onto the
reference grid exactly (a signed permutation of the axes and an integer shift, done by
SimpleITK nearest-neighbour resampling, which is exact there) and refuses any grid whose
voxel centres do not coincide with the reference's: resampling a label map between
different grids changes the labels and must be an explicit choice, not a side effect.

>>> import numpy as np
>>> from deepstationing.data.image import Image, _fmt
>>> ref = Image(np.zeros((2, 3, 4), np.uint8), spacing=(1.0, 2.0, 3.0))
>>> arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
>>> flipped = Image(arr[:, :, ::-1], spacing=(1.0, 2.0, 3.0), origin=(3.0, 0.0, 0.0),
...                 direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
>>> bool((on_grid(flipped, ref).array == arr).all())
True
"""

from __future__ import annotations

import numpy as np

from deepstationing.data.image import Image, _fmt
from deepstationing.errors import InputError

__all__ = ["on_grid"]


def on_grid(image: Image, reference: Image, *, name: str = "image",
            reference_name: str = "the CT") -> Image:
    """``image`` on ``reference``'s grid (same object if already there).

    Raises:
        InputError: the voxel centres of the two grids do not coincide one to one.
    """
    if image.same_geometry(reference):
        return image
    import SimpleITK as sitk

    where = image.path or name
    ref_axes = reference.direction_matrix * np.asarray(reference.spacing)
    img_axes = image.direction_matrix * np.asarray(image.spacing)
    step = np.linalg.solve(ref_axes, img_axes)  # reference index change per image index step
    shift = np.asarray(reference.world_to_index(image.origin))[::-1]
    signed_permutation = (np.allclose(np.abs(step).sum(axis=0), 1, atol=1e-3)
                          and np.allclose(np.abs(step), np.round(np.abs(step)), atol=1e-3))
    if not signed_permutation or not np.allclose(shift, np.round(shift), atol=1e-2):
        raise InputError(where, f"not on the voxel grid of {reference_name}: spacing "
                                f"{_fmt(image.spacing)} origin {_fmt(image.origin)} vs "
                                f"{_fmt(reference.spacing)} {_fmt(reference.origin)}; "
                                "resample it onto the CT first")
    corners = np.array([[i, j, k] for i in (0, image.shape[2] - 1)
                        for j in (0, image.shape[1] - 1) for k in (0, image.shape[0] - 1)])
    idx = np.round(shift + corners @ np.round(step).T).astype(int)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    size = np.asarray(reference.shape[::-1])
    if np.any(lo != 0) or np.any(hi != size - 1):
        raise InputError(where, f"covers another region than {reference_name} (shape "
                                f"{image.shape} vs {reference.shape}, z, y, x)")
    out = sitk.Resample(image.to_sitk(), reference.to_sitk(), sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0, image.to_sitk().GetPixelID())
    result = Image.from_sitk(out, path=image.path)
    result.array = result.array.astype(image.array.dtype, copy=False)
    return result

