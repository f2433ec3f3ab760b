"""Run one stage of a model folder on an array, with nnU-Net's predictor.

:class:`StagePredictor` wraps ``nnUNetPredictor``: it restores a stage's folds (an
ensemble when several are given), checks the number of input channels and returns the
stage's label map on the input's voxel grid (nnU-Net resamples to its training spacing and
back internally).

nnU-Net works on arrays and knows nothing of patient orientation, so a network only sees
what it was trained on if the array axes run the same way. :func:`to_orientation` /
:func:`from_orientation` permute and flip an image to the orientation the model was trained
in (e.g. ``LPS`` for the phantom) and back, with SimpleITK's ``DICOMOrient``; the result is
aligned voxel-for-voxel with the input.

Examples
--------
>>> # doctest: +SKIP
>>> pred = StagePredictor(model.stage_folder("anchor"), folds=[0], device="cpu")
>>> labels = pred.predict(ct[None].astype("float32"), spacing_zyx=(5.0, 0.7, 0.7))
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from deepstationing.backbone.env import nnunet_environment, prepare_nnunet_import
from deepstationing.data.image import Image
from deepstationing.errors import DeepStationingError, InputError

__all__ = ["StagePredictor", "orientation_code", "to_orientation", "from_orientation",
           "model_spacing", "to_model_grid", "back_to_grid"]

#: Relative spacing difference above which inputs are resampled to the model's spacing by
#: :func:`to_model_grid` before prediction.
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
    arr = sitk.GetArrayFromImage(back)
    return reference.with_array(arr)


def model_spacing(stage_folder: str | Path, configuration: str = "3d_fullres") -> tuple:
    """The voxel spacing (array order z, y, x) a stage was trained at, from its plans."""
    plans = json.loads((Path(stage_folder) / "plans.json").read_text())
    spacing = plans["configurations"][configuration]["spacing"]
    out = [0.0, 0.0, 0.0]
    for j, axis in enumerate(plans["transpose_forward"]):
        out[axis] = float(spacing[j])
    return tuple(out)


def to_model_grid(image: Image, spacing_zyx, *, label: bool = False) -> Image:
    """Resample ``image`` to ``spacing_zyx`` (same field of view) unless already there.

    nnU-Net would resample inside its predictor too, but it resamples the *logits* of every
    class back to the input grid, which for a 512 x 512 CT and a coarse CPU model costs far
    more than the network. The cascade resamples the CT once here (linear; nearest
    neighbour for label maps) and each label map back once with :func:`back_to_grid`.
    """
    old = np.asarray(image.array_spacing, float)
    new = np.asarray(spacing_zyx, float)
    if np.all(np.abs(old - new) <= RESAMPLE_TOLERANCE * new):
        return image
    size_zyx = np.maximum(1, np.round(np.asarray(image.shape) * old / new)).astype(int)
    src = image.to_sitk()
    new_xyz = tuple(float(v) for v in new[::-1])
    # keep the outer corner of the first voxel in place
    shift = image.direction_matrix @ ((new[::-1] - old[::-1]) / 2.0)
    origin = tuple(float(v) for v in np.asarray(image.origin) + shift)
    ref = sitk.Image([int(v) for v in size_zyx[::-1]], src.GetPixelID())
    ref.SetSpacing(new_xyz)
    ref.SetOrigin(origin)
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


class StagePredictor:
    """One stage of a model folder, ready to predict."""

    def __init__(self, stage_folder: str | Path, folds: Sequence[int], *, device: str = "cpu",
                 mirroring: bool = False, tile_step_size: float = 0.5,
                 threads: int | None = None):
        prepare_nnunet_import()
        self.folder = Path(stage_folder)
        self.folds = [int(f) for f in folds]
        self.threads = threads
        for f in self.folds:
            ck = self.folder / f"fold_{f}" / "checkpoint_final.pth"
            if not ck.exists():
                raise InputError(ck, "missing checkpoint of a trained fold (incomplete model "
                                     "folder?)")
        self.dataset_json = json.loads((self.folder / "dataset.json").read_text())
        self.n_channels = len(self.dataset_json["channel_names"])
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise DeepStationingError("--device cuda requested but no CUDA GPU is available")
        with nnunet_environment(None, threads=threads), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation noise
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

            self._predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True,
                                              use_mirroring=mirroring,
                                              perform_everything_on_device=device == "cuda",
                                              device=torch.device(device), verbose=False,
                                              verbose_preprocessing=False, allow_tqdm=False)
            self._predictor.initialize_from_trained_model_folder(
                str(self.folder), use_folds=tuple(self.folds),
                checkpoint_name="checkpoint_final.pth")

    def predict(self, channels: np.ndarray, spacing_zyx: Sequence[float], *,
                source: str | None = None) -> np.ndarray:
        """Label map (uint8, stage-local ids 0..N) of a ``[c, z, y, x]`` input."""
        if channels.ndim != 4 or channels.shape[0] != self.n_channels:
            got = channels.shape[0] if channels.ndim == 4 else f"a {channels.ndim}D array"
            raise InputError(source, f"stage '{self.folder.name}' expects {self.n_channels} "
                                     f"input channel(s) ({_describe(self.dataset_json)}), "
                                     f"got {got}")
        data = np.ascontiguousarray(channels, dtype=np.float32)
        props = {"spacing": [float(s) for s in spacing_zyx]}
        with nnunet_environment(None, threads=self.threads), \
                contextlib.redirect_stdout(io.StringIO()):
            seg = self._predictor.predict_single_npy_array(data, props, None, None, False)
        return np.asarray(seg).astype(np.uint8)


def _describe(dataset_json: dict) -> str:
    names = list(dataset_json["channel_names"].values())
    return "CT" + (f" + {len(names) - 1} organ mask(s)" if len(names) > 1 else " only")
