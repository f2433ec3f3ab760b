"""The anatomy-encoded station parser (paper section 2.2): CT + organ channels -> 12 stations.

The station network is an nnU-Net 3D network whose input is the CT plus one binary channel
per referencing organ, chosen by a :class:`~deepstationing.backbone.channels.ChannelSpec`:

* ``none`` — CT only (the paper's "CT Only" column);
* ``gt:all`` — CT + the 22 ground-truth organ masks ("+22 Organ GT");
* ``pred:all`` — CT + the 22 organs predicted by the cascade ("+22 Organ Pred"); when
  training, each case's organ channels are out-of-fold cascade predictions (the fold model
  that held the case out), so training and test inputs are alike;
* ``pred:top6`` or ``pred:key,key,...`` — a subset (the paper's "+6 Searched Organ Pred").

At prediction time organ channels always come from the model's organ cascade (or from an
organ map the caller supplies, e.g. to test with ground-truth organs).

Examples
--------
>>> # doctest: +SKIP
>>> opts = TrainOptions(workdir="runs", budget=TrainBudget(epochs=20))
>>> model = train_stations(Cohort("phantom"), 0, channels="pred:all", options=opts)
>>> organs, stations = StationParser(model).predict(read_image("ct.nii.gz"))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepstationing import schema
from deepstationing.backbone.channels import ChannelSpec, organ_channels
from deepstationing.backbone.datasets import ExportCase, StageLabels
from deepstationing.backbone.model import ModelFolder
from deepstationing.backbone.predict import (
    StagePredictor,
    back_to_grid,
    from_orientation,
    model_spacing,
    to_model_grid,
    to_orientation,
)
from deepstationing.data.cohort import Cohort
from deepstationing.data.image import Image, check_same_geometry
from deepstationing.errors import InputError
from deepstationing.organs.cascade import (
    ANCHOR,
    NON_ANCHOR,
    SINGLE,
    OrganCascade,
    TrainOptions,
    _cohort_cases,
    default_model_dir,
    oof_predictions,
    stage_info,
    train_stage,
)

__all__ = ["STATIONS_STAGE", "STATION_LABELS", "train_stations", "StationParser", "ChannelSpec"]

STATIONS_STAGE = "stations"
STATION_LABELS = StageLabels.from_keys(schema.STATIONS, schema.STATIONS.keys)


def train_stations(cohort: Cohort, fold: int, *, channels: ChannelSpec | str,
                   options: TrainOptions, model_dir: str | Path | None = None) -> ModelFolder:
    """Train fold ``fold`` of the station network with the given organ channels.

    With ``pred`` channels the organ cascade (anchor -> non-anchor) must exist in the same
    model folder for every fold; missing folds are trained first (see
    :mod:`deepstationing.organs.cascade`).
    """
    spec = ChannelSpec.parse(channels)
    cohort.test_ids(fold)
    model = ModelFolder.open_or_create(model_dir or default_model_dir(options.workspace, cohort,
                                                                      options.config))
    cases_in = _cohort_cases(cohort, "stations")
    if spec.organs and spec.source == "gt":
        _cohort_cases(cohort, "organs")
    if not spec.organs:
        cases = [ExportCase(c.id, c.ct, c.stations, c.fold) for c in cases_in]
    elif spec.source == "gt":
        cases = [ExportCase(c.id, c.ct, c.stations, c.fold, c.organs, "gt") for c in cases_in]
    else:
        oof = oof_predictions(cohort, model, (ANCHOR, NON_ANCHOR), options)
        cases = [ExportCase(c.id, c.ct, c.stations, c.fold, oof[c.id][0],
                            f"cascade fold {oof[c.id][1]}") for c in cases_in]
    info = stage_info(STATIONS_STAGE, STATION_LABELS, spec, cohort, options)
    if model.has(STATIONS_STAGE, fold) and model.stage(STATIONS_STAGE).same_definition(info):
        options.say(f"[stations fold {fold}] already trained in {model.root}")
        return model
    train_stage(cohort, fold, model, info, cases, options)
    return model


class StationParser:
    """The whole cascade of a model folder: CT -> 22 organs -> 12 stations.

    Args:
        model: model folder (or its path).
        folds: folds to ensemble (``None``: all trained folds).
        device: ``"cpu"`` or ``"cuda"``.
        mirroring: test-time mirroring (default: off for the CPU config, on for full).
        organ_model: ``"auto"``, ``"cascade"`` or ``"single"`` (see :class:`OrganCascade`).
    """

    def __init__(self, model: ModelFolder | str | Path, folds: Sequence[int] | None = None, *,
                 device: str = "cpu", mirroring: bool | None = None, organ_model: str = "auto",
                 threads: int | None = None):
        self.model = model if isinstance(model, ModelFolder) else ModelFolder.open(model)
        self.info = self.model.stage(STATIONS_STAGE)
        fl = list(self.info.folds) if folds is None else [int(f) for f in folds]
        mir = (self.info.config != "cpu") if mirroring is None else mirroring
        self.stations = StagePredictor(self.model.stage_folder(STATIONS_STAGE), fl,
                                       device=device, mirroring=mir, threads=threads)
        has_organs = (self.model.has(ANCHOR) and self.model.has(NON_ANCHOR)) or \
            self.model.has(SINGLE)
        self.organs = OrganCascade(self.model, folds, device=device, mirroring=mirroring,
                                   use=organ_model, threads=threads) if has_organs else None

    @property
    def channels(self) -> ChannelSpec:
        return self.info.channels

    def predict(self, ct: Image, organs: Image | None = None,
                progress: Callable[[str], None] | None = None) -> tuple[Image | None, Image]:
        """Organs (``None`` if the model has no organ stage and none was given) and stations.

        Args:
            ct: the CT (any orientation; outputs share its grid and geometry).
            organs: a 22-organ map on ``ct``'s grid to use instead of predicted organs.
            progress: called with a short message before each stage.
        """
        say = progress or (lambda msg: None)
        code = self.info.orientation
        oriented = to_orientation(ct, code)
        work = to_model_grid(oriented, model_spacing(self.model.stage_folder(STATIONS_STAGE),
                                                     self.info.configuration))
        organ_arr = None
        if organs is not None:
            check_same_geometry(ct, organs, reference_name=ct.path or "CT",
                                other_name="organ map")
            organ_arr = to_model_grid(to_orientation(organs, code), work.array_spacing,
                                      label=True).array
            if organ_arr.shape != work.shape:  # pragma: no cover - same grid rule for both
                raise AssertionError("organ map and CT resampled to different grids")
        elif self.organs is not None:
            say(f"organs ({self.organs.use})")
            organ_arr = self.organs.predict_oriented(work)
        elif self.channels.organs:
            raise InputError(self.model.root, f"the station stage needs organ channels "
                                              f"({self.channels}) but the model has no organ "
                                              "stage; pass an organ map")
        x = work.array.astype(np.float32)[None]
        if self.channels.organs:
            x = np.concatenate([x, organ_channels(organ_arr, self.channels.organs)
                                .astype(np.float32)])
        n_org = len(self.channels.organs)
        say(f"stations (CT + {n_org} organ channels)" if n_org else "stations (CT only)")
        local = self.stations.predict(x, work.array_spacing, source=ct.path)
        stations_o = back_to_grid(work.with_array(STATION_LABELS.to_schema(local)), oriented)
        stations = from_orientation(stations_o.array, code, ct)
        organs_out = None
        if organ_arr is not None:
            organs_o = back_to_grid(work.with_array(organ_arr.astype(np.uint8)), oriented)
            organs_out = from_orientation(organs_o.array, code, ct)
        return organs_out, stations
