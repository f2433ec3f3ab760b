"""Axis orientation and resampling of images for networks trained in one orientation and grid.

A network works on arrays and knows nothing of patient orientation, so it only sees what it
was trained on if the array axes run the same way. :func:`to_orientation` /
:func:`from_orientation` permute and flip an image to an orientation code (e.g. ``LPS``,
the phantom's) and back with SimpleITK's ``DICOMOrient``: the world stays where it was and
patient left stays left. :func:`to_model_grid` / :func:`back_to_grid` resample an image to a
network's voxel spacing (same field of view) and a label map back, once each.

Examples
--------
>>> img = Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2), (1.0, 1.0, 2.0))
>>> orientation_code(img)
'LPS'
>>> flipped = to_orientation(img, "RPS")          # x axis now runs to the patient's right
>>> flipped.array[0, 0].tolist(), img.array[0, 0].tolist()
([1, 0], [0, 1])
>>> bool(np.allclose(flipped.index_to_world((0, 0, 0)), img.index_to_world((0, 0, 1))))
True
>>> from_orientation(flipped.array, "RPS", img).array.tolist() == img.array.tolist()
True
>>> to_model_grid(img, (2.0, 2.0, 2.0)).shape
(2, 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from deepstationing.data.image import Image

__all__ = ["orientation_code", "to_orientation", "from_orientation", "to_model_grid",
           "back_to_grid", "RESAMPLE_TOLERANCE"]

#: Relative spacing difference above which :func:`to_model_grid` resamples.
RESAMPLE_TOLERANCE = 0.05


def orientation_code(image: Image) -> str:
    """Three-letter ITK/DICOM orientation code of an image's axes (``"LPS"`` for identity)."""
    f = sitk.DICOMOrientImageFilter
    return f.GetOrientationFromDirectionCosines(list(image.direction))


def to_orientation(image: Image, code: str) -> Image:
    """The same world image with its axes permuted/flipped to orientation ``code``."""
    if orientation_code(image) == code:
        return image
    out = sitk.DICOMOrient(image.to_sitk(), code)
    return Image.from_sitk(out, path=image.path)


def from_orientation(array: np.ndarray, code: str, reference: Image) -> Image:
    """Put an array computed in orientation ``code`` back on ``reference``'s voxel grid."""
    ref_code = orientation_code(reference)
    if ref_code == code:
        return reference.with_array(array)
    oriented = to_orientation(reference, code)
    back = sitk.DICOMOrient(oriented.with_array(array).to_sitk(), ref_code)
    return reference.with_array(sitk.GetArrayFromImage(back))


def to_model_grid(image: Image, spacing_zyx: Sequence[float], *, label: bool = False,
                  tolerance: float = RESAMPLE_TOLERANCE) -> Image:
    """Resample ``image`` to ``spacing_zyx`` (same field of view) unless already there.

    nnU-Net would resample inside its predictor too, but it resamples the *logits* of every
    class back to the input grid, which for a 512 x 512 CT and a coarse CPU model costs far
    more than the network. The cascade resamples the CT once here (linear; nearest
    neighbour for label maps) and each label map back once with :func:`back_to_grid`.
    ``tolerance`` is the relative spacing difference below which nothing is resampled.
    """
    old = np.asarray(image.array_spacing, float)
    new = np.asarray(spacing_zyx, float)
    if np.all(np.abs(old - new) <= tolerance * new):
        return image
    size_zyx = np.maximum(1, np.round(np.asarray(image.shape) * old / new)).astype(int)
    src = image.to_sitk()
    # keep the outer corner of the first voxel in place
    shift = image.direction_matrix @ ((new[::-1] - old[::-1]) / 2.0)
    ref = sitk.Image([int(v) for v in size_zyx[::-1]], src.GetPixelID())
    ref.SetSpacing(tuple(float(v) for v in new[::-1]))
    ref.SetOrigin(tuple(float(v) for v in np.asarray(image.origin) + shift))
    ref.SetDirection(image.direction)
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    fill = 0 if label else float(image.array.min())
    out = sitk.Resample(src, ref, sitk.Transform(), interp, fill)
    return Image.from_sitk(out, path=image.path)


def back_to_grid(labels: Image, reference: Image) -> Image:
    """A label map resampled (nearest neighbour) onto ``reference``'s grid."""
    if labels.same_geometry(reference):
        return reference.with_array(labels.array)
    out = sitk.Resample(labels.to_sitk(), reference.to_sitk(), sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0)
    return reference.with_array(sitk.GetArrayFromImage(out))
