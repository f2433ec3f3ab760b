"""Run one stage of a model folder on a case, with nnU-Net's predictor, fold by fold.

:class:`StagePredictor` restores a stage's folds (an ensemble when several are given). Each
fold was planned on its own training cases (its own ``fold_K/plans.json``: target spacing,
CT normalisation statistics), so each fold preprocesses the case with its own plans; folds
on the same grid add their logits there, a fold on another grid has its logits resampled
(linearly) onto the first fold's grid. The case reaches each grid through
:func:`deepstationing.backbone.inputs.stage_input`, the function the training export uses,
and the labels go back to the case's grid (nearest neighbour, the case's axes).

Test-time mirroring only ever flips the axes the stage's trainer allowed
(``inference_allowed_mirroring_axes`` in its checkpoint): none of the toolkit's stages
allows the left-right axis (see :mod:`deepstationing.backbone.trainers`).

Examples
--------
A trained fold is needed to predict; :func:`fold_spacing` only reads a fold's plans:

>>> import json, tempfile
>>> fold = Path(tempfile.mkdtemp())
>>> _ = (fold / "plans.json").write_text(json.dumps({"transpose_forward": [0, 1, 2],
...     "configurations": {"3d_fullres": {"spacing": [5.0, 2.8, 2.8]}}}))
>>> fold_spacing(fold)
(5.0, 2.8, 2.8)
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepstationing.backbone.channels import ChannelSpec
from deepstationing.backbone.env import nnunet_environment
from deepstationing.backbone.inputs import labels_to_case, stage_input
from deepstationing.data.image import Image
from deepstationing.errors import DeepStationingError, InputError
from deepstationing.timing import Timings

__all__ = ["StagePredictor", "fold_spacing", "CONFIGURATION"]

CONFIGURATION = "3d_fullres"


def fold_spacing(fold_folder: str | Path, configuration: str = CONFIGURATION) -> tuple:
    """The voxel spacing (array order z, y, x) a fold was trained at, from its plans."""
    plans = json.loads((Path(fold_folder) / "plans.json").read_text())
    spacing = plans["configurations"][configuration]["spacing"]
    out = [0.0, 0.0, 0.0]
    for j, axis in enumerate(plans["transpose_forward"]):
        out[axis] = float(spacing[j])
    return tuple(out)


class _Fold:
    """One fold: its plans, its network weights, an ``nnUNetPredictor`` set up for them."""

    def __init__(self, folder: Path, checkpoint: dict, *, device: str, mirroring: bool,
                 tile_step_size: float, source: Path):
        self.folder = folder
        #: set to a list to collect the preprocessed inputs the network sees (checks)
        self.seen: list | None = None
        self.dataset_json = json.loads((folder / "dataset.json").read_text())
        plans = json.loads((folder / "plans.json").read_text())
        self.spacing = fold_spacing(folder, checkpoint["init_args"]["configuration"])
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.utilities.label_handling.label_handling import (
            determine_num_input_channels,
        )
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        from deepstationing.backbone.train import trainer_class

        plans_manager = PlansManager(plans)
        configuration = plans_manager.get_configuration(checkpoint["init_args"]["configuration"])
        n_in = determine_num_input_channels(plans_manager, configuration, self.dataset_json)
        n_out = plans_manager.get_label_manager(self.dataset_json).num_segmentation_heads
        network = trainer_class(checkpoint["trainer_name"], source=source) \
            .build_network_architecture(plans_manager, configuration, n_in, n_out,
                                        enable_deep_supervision=False)
        network.load_state_dict(checkpoint["network_weights"])
        self.predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True,
                                         use_mirroring=mirroring,
                                         perform_everything_on_device=device == "cuda",
                                         device=torch.device(device), verbose=False,
                                         verbose_preprocessing=False, allow_tqdm=False)
        self.predictor.manual_initialization(
            network, plans_manager, configuration, [checkpoint["network_weights"]],
            self.dataset_json, checkpoint["trainer_name"],
            checkpoint.get("inference_allowed_mirroring_axes"))

    def logits(self, data: np.ndarray, spacing_zyx: Sequence[float]):
        """Logits ``[classes, z, y, x]`` (torch, on the predictor's device) of an input
        already on this fold's grid; zeros outside nnU-Net's crop (argmax: background)."""
        import torch
        from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice

        pr = self.predictor
        pre = pr.configuration_manager.preprocessor_class(verbose=False)
        x, _, props = pre.run_case_npy(data, None, {"spacing": [float(s) for s in spacing_zyx]},
                                       pr.plans_manager, pr.configuration_manager,
                                       pr.dataset_json)
        if self.seen is not None:
            self.seen.append(x)
        if tuple(x.shape[1:]) != tuple(props["shape_after_cropping_and_before_resampling"]):
            raise DeepStationingError(f"{self.folder}: the input is not on the fold's grid "
                                      f"{self.spacing} (got {tuple(spacing_zyx)})")
        with torch.inference_mode():
            cropped = pr.predict_sliding_window_return_logits(torch.from_numpy(x))
            full = torch.zeros((cropped.shape[0], *props["shape_before_cropping"]),
                               dtype=cropped.dtype, device=cropped.device)
            full[(slice(None), *bounding_box_to_slice(props["bbox_used_for_cropping"]))] = \
                cropped
        back = pr.plans_manager.transpose_backward
        return full.permute(0, *[b + 1 for b in back])


class StagePredictor:
    """One stage of a model folder, ready to predict (see the module docstring).

    Checkpoints are loaded with PyTorch's weights-only unpickler
    (:func:`~deepstationing.backbone.checkpoint.load_checkpoint_safely`), never with
    nnU-Net's plain ``torch.load``: a model folder from elsewhere cannot run code here. The
    network is built by the toolkit's trainer class named in the checkpoint.

    Args:
        stage_folder: the stage's folder (``fold_K/`` with checkpoint, plans, dataset.json).
        folds: folds to ensemble.
        orientation: the orientation code the stage was trained in.
        device: ``"cpu"`` or ``"cuda"``.
        mirroring: test-time mirroring (along the axes the checkpoint allows only).
        tile_step_size: sliding-window step, as a fraction of the patch.
        threads: torch threads while predicting.
        checkpoint: file name of the checkpoint in each fold folder.
    """

    def __init__(self, stage_folder: str | Path, folds: Sequence[int], *,
                 orientation: str = "LPS", device: str = "cpu", mirroring: bool = False,
                 tile_step_size: float = 0.5, threads: int | None = None,
                 checkpoint: str = "checkpoint_final.pth"):
        from deepstationing.backbone.checkpoint import load_checkpoint_safely

        self.folder = Path(stage_folder)
        self.fold_ids = [int(f) for f in folds]
        self.orientation = orientation
        self.threads = threads
        paths = [self.folder / f"fold_{f}" / checkpoint for f in self.fold_ids]
        for ck in paths:
            if not ck.exists():
                raise InputError(ck, "missing checkpoint of a trained fold (incomplete model "
                                     "folder?)")
            for name in ("plans.json", "dataset.json"):
                if not (ck.parent / name).exists():
                    raise InputError(ck.parent / name, "missing file of a trained fold "
                                                       "(incomplete model folder?)")
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise DeepStationingError("--device cuda requested but no CUDA GPU is available")
        with nnunet_environment(None, threads=threads), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation noise
            self.folds = [_Fold(p.parent, load_checkpoint_safely(p), device=device,
                                mirroring=mirroring, tile_step_size=tile_step_size, source=p)
                          for p in paths]
        self.dataset_json = self.folds[0].dataset_json
        self.n_channels = len(self.dataset_json["channel_names"])
        ch = self.dataset_json.get("deepstationing", {}).get("channels")
        self.channels = ChannelSpec.from_json(ch) if ch else ChannelSpec("pred", ())

    @property
    def spacing(self) -> tuple:
        """The grid of the first fold (where an ensemble's labels are made)."""
        return self.folds[0].spacing

    def predict_case(self, ct: Image, organs: Image | None = None,
                     timings: Timings | None = None, step: str = "network") -> Image:
        """The stage's labels (stage-local ids 0..N, uint8) of a case, on ``ct``'s grid.

        Args:
            ct: the CT, any orientation and spacing.
            organs: a 22-organ map on ``ct``'s grid, for a stage with organ channels.
            timings: receives the seconds of the input, network and output steps.
            step: the name of the network step in ``timings``.
        """
        t = timings or Timings()
        grids: dict[tuple, tuple[Image, np.ndarray]] = {}
        ref, acc = None, None
        for fold in self.folds:
            if fold.spacing not in grids:
                with t(f"{step}: input on its grid"):
                    grids[fold.spacing] = stage_input(ct, organs, self.channels, fold.spacing,
                                                      self.orientation)
            grid, x = grids[fold.spacing]
            self._check_channels(x, ct.path)
            with t(step), nnunet_environment(None, threads=self.threads), \
                    contextlib.redirect_stdout(io.StringIO()), _inference():
                logits = fold.logits(np.ascontiguousarray(x, np.float32), grid.array_spacing)
                if ref is None:
                    ref, acc = grid, logits
                elif grid.same_geometry(ref):
                    acc += logits
                else:
                    acc += _resample_logits(logits, grid, ref)
        with t(f"{step}: back to the input grid"):
            return labels_to_case(_argmax(acc), ref, ct, self.orientation)

    def predict(self, channels: np.ndarray, spacing_zyx: Sequence[float], *,
                source: str | None = None) -> np.ndarray:
        """Label map (uint8, stage-local ids) of a ``[c, z, y, x]`` input already on the
        stage's grid in its orientation (every fold must be on that grid)."""
        self._check_channels(channels, source)
        acc = None
        with nnunet_environment(None, threads=self.threads), \
                contextlib.redirect_stdout(io.StringIO()), _inference():
            for fold in self.folds:
                logits = fold.logits(np.ascontiguousarray(channels, np.float32), spacing_zyx)
                acc = logits if acc is None else acc + logits
        return _argmax(acc)

    def predict_reference(self, data: np.ndarray, props: dict) -> np.ndarray:
        """nnU-Net's own ``predict_single_npy_array`` with the first fold (for comparison)."""
        with nnunet_environment(None, threads=self.threads), \
                contextlib.redirect_stdout(io.StringIO()):
            seg = self.folds[0].predictor.predict_single_npy_array(
                np.ascontiguousarray(data, np.float32), dict(props), None, None, False)
        return np.asarray(seg).astype(np.uint8)

    def _check_channels(self, x: np.ndarray, source) -> None:
        if x.ndim != 4 or x.shape[0] != self.n_channels:
            got = x.shape[0] if x.ndim == 4 else f"a {x.ndim}D array"
            raise InputError(source, f"stage '{self.folder.name}' expects {self.n_channels} "
                                     f"input channel(s) ({_describe(self.dataset_json)}), "
                                     f"got {got}")


def _inference():
    import torch

    return torch.inference_mode()


def _argmax(logits) -> np.ndarray:
    """Labels (uint8) of summed logits; the argmax runs where the logits are."""
    import torch

    return logits.argmax(0).to(torch.uint8).cpu().numpy()


def _resample_logits(logits, grid: Image, ref: Image):
    """Logits on ``grid`` resampled linearly onto ``ref`` (folds planned on other grids)."""
    import SimpleITK as sitk
    import torch

    arr = logits.float().cpu().numpy()
    out = np.empty((arr.shape[0],) + ref.shape, np.float32)
    ref_sitk = ref.to_sitk()
    for c in range(arr.shape[0]):
        img = sitk.GetImageFromArray(arr[c])
        img.CopyInformation(grid.to_sitk())
        out[c] = sitk.GetArrayFromImage(sitk.Resample(img, ref_sitk, sitk.Transform(),
                                                      sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    return torch.from_numpy(out).to(logits.device, logits.dtype)


def _describe(dataset_json: dict) -> str:
    names = list(dataset_json["channel_names"].values())
    return "CT" + (f" + {len(names) - 1} organ mask(s)" if len(names) > 1 else " only")
