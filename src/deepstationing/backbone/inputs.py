"""The one path from a case's files to what a network sees, in training and in prediction.

A stage's network works on a grid of its own (the stage's *target spacing*, in the
orientation it was trained in). Every CT and every label map reaches that grid through the
functions here, whether it is exported for training (:mod:`.datasets`) or predicted
(:mod:`.predict`, :mod:`deepstationing.organs.cascade`,
:mod:`deepstationing.stations.network`):

* the CT: re-oriented (:func:`~deepstationing.data.orientation.to_orientation`) and
  resampled linearly to the target spacing over the same field of view
  (:func:`~deepstationing.data.orientation.to_model_grid`);
* organ maps (ground truth, or the predictions of an earlier stage, always handed over on
  the *case's* grid) and targets: re-oriented, then nearest-neighbour onto that very grid,
  then encoded as channels (:func:`~deepstationing.backbone.channels.encode_channels`).

nnU-Net is handed data already on the target grid, so its own resampling (cubic splines,
which turn a 0/1 organ channel into values between -0.1 and 1.1) never runs: the arrays a
network trains on and the arrays it predicts from are made by the same code, voxel for
voxel (``tests/test_resampling_path.py``, on a cohort of mixed spacings).

The target spacing is the stage's own (a definition may fix it) or nnU-Net's rule (the
median spacing; the 10th percentile along a much coarser axis) applied to the *training*
cases only (:func:`target_spacing`).

Examples
--------
>>> ct = Image(np.zeros((4, 8, 8), np.int16), spacing=(1.0, 1.0, 2.5))
>>> org = ct.with_array(np.zeros((4, 8, 8), np.uint8)); org.array[1:3, 2:6, 2:6] = 5
>>> grid, x = stage_input(ct, org, ChannelSpec.parse("gt:heart"), (5.0, 2.0, 2.0), "LPS")
>>> grid.shape, x.shape, sorted(np.unique(x[1]).tolist())
((2, 4, 4), (2, 2, 4, 4), [0.0, 1.0])
>>> target_spacing([(5.0, 0.7, 0.7), (5.0, 1.0, 1.0), (5.0, 0.8, 0.8)],
...                [(70, 512, 512), (70, 512, 512), (70, 512, 512)])   # the median
(5.0, 0.8, 0.8)
>>> target_spacing([(5.0, 0.7, 0.7), (2.5, 1.0, 1.0), (5.0, 0.8, 0.8)],
...                [(70, 512, 512), (140, 512, 512), (70, 512, 512)])   # thick slices: 10 %
(3.0, 0.8, 0.8)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from deepstationing.backbone.channels import ChannelSpec, network_input
from deepstationing.data.image import Image
from deepstationing.data.orientation import (
    from_orientation,
    to_model_grid,
    to_orientation,
)

__all__ = ["stage_grid", "labels_on_grid", "stage_input", "labels_to_case", "target_spacing",
           "oriented_geometry"]


#: Relative spacing difference below which a case counts as already on the stage grid.
SAME_SPACING = 1e-4


def stage_grid(ct: Image, spacing_zyx: Sequence[float], orientation: str) -> Image:
    """The CT on a stage's grid: re-oriented, then resampled linearly to ``spacing_zyx``."""
    return to_model_grid(to_orientation(ct, orientation), spacing_zyx, tolerance=SAME_SPACING)


def labels_on_grid(labels: Image, grid: Image, orientation: str) -> Image:
    """A label map (on its case's grid) on a stage grid made by :func:`stage_grid`."""
    oriented = to_orientation(labels, orientation)
    if oriented.same_geometry(grid):
        return grid.with_array(oriented.array)
    out = sitk.Resample(oriented.to_sitk(), grid.to_sitk(), sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0)
    return grid.with_array(sitk.GetArrayFromImage(out).astype(labels.array.dtype, copy=False))


def stage_input(ct: Image, organs: Image | None, spec: ChannelSpec,
                spacing_zyx: Sequence[float], orientation: str) -> tuple[Image, np.ndarray]:
    """The stage grid and the network input ``[1 + n_organs, z, y, x]`` (float32) of a case.

    ``organs`` is a 22-organ map on ``ct``'s grid (needed when ``spec`` has organs).
    """
    grid = stage_grid(ct, spacing_zyx, orientation)
    organ_arr = None
    if spec.organs:
        if organs is None:
            raise ValueError(f"organ channels {spec} need an organ map")
        organ_arr = labels_on_grid(organs, grid, orientation).array
    return grid, network_input(grid.array, organ_arr, spec, grid.array_spacing)


def labels_to_case(labels: np.ndarray, grid: Image, ct: Image, orientation: str) -> Image:
    """A label array on a stage grid back on the case's grid (nearest neighbour) and axes."""
    oriented = to_orientation(ct, orientation)
    on_grid = grid.with_array(np.asarray(labels).astype(np.uint8, copy=False))
    if not on_grid.same_geometry(oriented):
        out = sitk.Resample(on_grid.to_sitk(), oriented.to_sitk(), sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0)
        on_grid = oriented.with_array(sitk.GetArrayFromImage(out))
    return from_orientation(on_grid.array, orientation, ct)


def oriented_geometry(path: str | os.PathLike, orientation: str) -> tuple[tuple, tuple]:
    """Spacing and shape ``(z, y, x)`` of an image file once re-oriented (header only)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    img = sitk.Image([int(v) for v in reader.GetSize()], sitk.sitkUInt8)
    img.SetSpacing(reader.GetSpacing())
    img.SetDirection(reader.GetDirection())
    img = sitk.DICOMOrient(img, orientation)
    return (tuple(float(v) for v in img.GetSpacing()[::-1]),
            tuple(int(v) for v in img.GetSize()[::-1]))


def target_spacing(spacings_zyx: Sequence[Sequence[float]],
                   shapes_zyx: Sequence[Sequence[int]]) -> tuple:
    """nnU-Net's full-resolution target spacing for cases of these spacings and shapes.

    nnU-Net's own rule (``ExperimentPlanner.determine_fullres_target_spacing``), called
    on the given cases only: the median spacing, except that an axis much coarser than the
    others (3 times) with few voxels takes the 10th percentile of its spacings.
    """
    from types import SimpleNamespace

    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
        ExperimentPlanner,
    )

    fake = SimpleNamespace(
        dataset_fingerprint={"spacings": [list(map(float, s)) for s in spacings_zyx],
                             "shapes_after_crop": [list(map(int, s)) for s in shapes_zyx]},
        anisotropy_threshold=3, overwrite_target_spacing=None)
    spacing = ExperimentPlanner.determine_fullres_target_spacing(fake)
    return tuple(round(float(v), 6) for v in spacing)
