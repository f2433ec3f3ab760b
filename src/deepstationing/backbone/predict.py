"""Run one stage of a model folder on an array, with nnU-Net's predictor.

:class:`StagePredictor` wraps ``nnUNetPredictor``: it restores a stage's folds (an
ensemble when several are given), checks the number of input channels and returns the
stage's label map on the input's voxel grid (nnU-Net resamples to its training spacing and
back internally). Inputs must already be in the orientation the stage was trained in
(:mod:`deepstationing.data.orientation`).

Test-time mirroring only ever flips the axes the stage's trainer allowed
(``inference_allowed_mirroring_axes`` in its checkpoint): none of the toolkit's stages
allows the left-right axis (see :mod:`deepstationing.backbone.trainers`).

Examples
--------
A stage folder with a checkpoint is needed; :func:`model_spacing` only reads its plans:

>>> import json, tempfile
>>> stage = Path(tempfile.mkdtemp())
>>> _ = (stage / "plans.json").write_text(json.dumps({"transpose_forward": [0, 1, 2],
...     "configurations": {"3d_fullres": {"spacing": [5.0, 2.8, 2.8]}}}))
>>> model_spacing(stage)
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

from deepstationing.backbone.env import nnunet_environment
from deepstationing.errors import DeepStationingError, InputError

__all__ = ["StagePredictor", "model_spacing"]


def model_spacing(stage_folder: str | Path, configuration: str = "3d_fullres") -> tuple:
    """The voxel spacing (array order z, y, x) a stage was trained at, from its plans."""
    plans = json.loads((Path(stage_folder) / "plans.json").read_text())
    spacing = plans["configurations"][configuration]["spacing"]
    out = [0.0, 0.0, 0.0]
    for j, axis in enumerate(plans["transpose_forward"]):
        out[axis] = float(spacing[j])
    return tuple(out)


class StagePredictor:
    """One stage of a model folder, ready to predict.

    Checkpoints are loaded with PyTorch's weights-only unpickler
    (:func:`~deepstationing.backbone.checkpoint.load_checkpoint_safely`), never with
    nnU-Net's plain ``torch.load``: a model folder from elsewhere cannot run code here. The
    network is built by the toolkit's trainer class named in the checkpoint.

    Args:
        stage_folder: the stage's folder (``plans.json``, ``dataset.json``, ``fold_K/``).
        folds: folds to ensemble.
        device: ``"cpu"`` or ``"cuda"``.
        mirroring: test-time mirroring (along the axes the checkpoint allows only).
        tile_step_size: sliding-window step, as a fraction of the patch.
        threads: torch threads while predicting.
        checkpoint: file name of the checkpoint in each fold folder.
    """

    def __init__(self, stage_folder: str | Path, folds: Sequence[int], *, device: str = "cpu",
                 mirroring: bool = False, tile_step_size: float = 0.5,
                 threads: int | None = None, checkpoint: str = "checkpoint_final.pth"):
        from deepstationing.backbone.checkpoint import load_checkpoint_safely

        self.folder = Path(stage_folder)
        self.folds = [int(f) for f in folds]
        self.threads = threads
        paths = [self.folder / f"fold_{f}" / checkpoint for f in self.folds]
        for ck in paths:
            if not ck.exists():
                raise InputError(ck, "missing checkpoint of a trained fold (incomplete model "
                                     "folder?)")
        self.dataset_json = json.loads((self.folder / "dataset.json").read_text())
        plans = json.loads((self.folder / "plans.json").read_text())
        self.n_channels = len(self.dataset_json["channel_names"])
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise DeepStationingError("--device cuda requested but no CUDA GPU is available")
        checkpoints = [load_checkpoint_safely(p) for p in paths]
        first = checkpoints[0]
        with nnunet_environment(None, threads=threads), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation noise
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
            from nnunetv2.utilities.label_handling.label_handling import (
                determine_num_input_channels,
            )
            from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

            from deepstationing.backbone.train import trainer_class

            plans_manager = PlansManager(plans)
            configuration = plans_manager.get_configuration(first["init_args"]["configuration"])
            n_in = determine_num_input_channels(plans_manager, configuration, self.dataset_json)
            n_out = plans_manager.get_label_manager(self.dataset_json).num_segmentation_heads
            network = trainer_class(first["trainer_name"], source=paths[0]) \
                .build_network_architecture(plans_manager, configuration, n_in, n_out,
                                            enable_deep_supervision=False)
            network.load_state_dict(first["network_weights"])
            self._predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True,
                                              use_mirroring=mirroring,
                                              perform_everything_on_device=device == "cuda",
                                              device=torch.device(device), verbose=False,
                                              verbose_preprocessing=False, allow_tqdm=False)
            self._predictor.manual_initialization(
                network, plans_manager, configuration,
                [ck["network_weights"] for ck in checkpoints], self.dataset_json,
                first["trainer_name"], first.get("inference_allowed_mirroring_axes"))

    def predict(self, channels: np.ndarray, spacing_zyx: Sequence[float], *,
                source: str | None = None) -> np.ndarray:
        """Label map (uint8, stage-local ids 0..N) of a ``[c, z, y, x]`` input.

        nnU-Net's own preprocessing and sliding window, then the argmax where the logits are
        (on the GPU with ``device="cuda"``): only the uint8 labels come back, not 13 float32
        maps (1.1 GB for a 512 x 512 x 80 volume), and the window runs with this predictor's
        threads (nnU-Net's ``predict_single_npy_array`` runs it with ``nnUNet_def_n_proc``
        threads). The labels are those nnU-Net's path gives (tested); when nnU-Net would
        have to resample (input not on the model's spacing) its own path is used.
        """
        if channels.ndim != 4 or channels.shape[0] != self.n_channels:
            got = channels.shape[0] if channels.ndim == 4 else f"a {channels.ndim}D array"
            raise InputError(source, f"stage '{self.folder.name}' expects {self.n_channels} "
                                     f"input channel(s) ({_describe(self.dataset_json)}), "
                                     f"got {got}")
        data = np.ascontiguousarray(channels, dtype=np.float32)
        props = {"spacing": [float(s) for s in spacing_zyx]}
        with nnunet_environment(None, threads=self.threads), \
                contextlib.redirect_stdout(io.StringIO()):
            return self._predict(data, props)

    def _predict(self, data: np.ndarray, props: dict) -> np.ndarray:
        import torch
        from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice

        pr = self._predictor
        pre = pr.configuration_manager.preprocessor_class(verbose=False)
        x, _, props = pre.run_case_npy(data, None, props, pr.plans_manager,
                                       pr.configuration_manager, pr.dataset_json)
        if tuple(x.shape[1:]) != tuple(props["shape_after_cropping_and_before_resampling"]):
            return self.predict_reference(data, {"spacing": props["spacing"]})
        x = torch.from_numpy(x)
        with torch.inference_mode():
            logits = None
            for params in pr.list_of_parameters:  # the folds' ensemble
                pr.network.load_state_dict(params)
                out = pr.predict_sliding_window_return_logits(x)
                logits = out if logits is None else logits + out
            if len(pr.list_of_parameters) > 1:
                logits /= len(pr.list_of_parameters)
            seg = logits.argmax(0).to(torch.uint8).cpu().numpy()
        full = np.zeros(props["shape_before_cropping"], np.uint8)
        full[bounding_box_to_slice(props["bbox_used_for_cropping"])] = seg
        return full.transpose(pr.plans_manager.transpose_backward)

    def predict_reference(self, data: np.ndarray, props: dict) -> np.ndarray:
        """nnU-Net's own ``predict_single_npy_array`` (the slow path, for comparison)."""
        seg = self._predictor.predict_single_npy_array(np.ascontiguousarray(data, np.float32),
                                                       dict(props), None, None, False)
        return np.asarray(seg).astype(np.uint8)


def _describe(dataset_json: dict) -> str:
    names = list(dataset_json["channel_names"].values())
    return "CT" + (f" + {len(names) - 1} organ mask(s)" if len(names) > 1 else " only")
