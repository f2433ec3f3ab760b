"""The stratified organ cascade (paper section 2.1) and the single-network comparison.

Stages (each an nnU-Net 3D network, see :mod:`deepstationing.backbone`):

1. ``anchor``: CT -> the 11 anchor organs (high contrast: airways, lungs, bone, aorta,
   heart; :data:`deepstationing.schema.ANCHOR_ORGANS`).
2. ``nonanchor``: CT + one binary channel per anchor organ -> the 11 non-anchor organs.
   The anchor channels are the ground truth (``anchor_source="gt"``) or, as at test
   time, anchor *predictions* (``"pred"``, the default).
3. :func:`merge_organs` joins both into the 22-organ map (anchors win where both claim a
   voxel: they are the more reliable of the two).
4. ``single``: CT -> all 22 organs with one network (the paper's non-stratified baseline).

Out-of-fold channels
--------------------
The non-anchor stage trained on *predicted* anchors gets, for each training case, the
anchors predicted by the fold model that held that case out (see
:mod:`deepstationing.training.oof`); :func:`train_organs` trains the anchor stage on every
fold first (with the same settings) and says so. :func:`organ_oof_predictions` gives the
same out-of-fold organ maps to the station network.

Examples
--------
Train the cascade of a tiny phantom cohort for one epoch of one iteration per stage and
predict a case with it (the network is untrained: only the plumbing is shown):

>>> import tempfile
>>> from deepstationing.phantom import generate_cohort
>>> from deepstationing.backbone.plans import CpuConfig
>>> tmp = Path(tempfile.mkdtemp())
>>> cohort = generate_cohort(tmp / "ph", 4, preset="small", spacing=(11.2, 11.2, 20.0),
...                          progress=None)
>>> opts = TrainOptions(workdir=tmp / "runs", budget=TrainBudget(1, 1, 1),
...                     cpu=CpuConfig((8, 16, 16), (2, 4), 1), progress=lambda m: None)
>>> model = train_organs(cohort, 0, options=opts, anchor_source="gt")
>>> model.stage_folders
['anchor', 'nonanchor']
>>> organs = OrganCascade(model).predict(read_image(cohort.case("case_000").ct))
>>> organs.shape == read_image(cohort.case("case_000").ct).shape
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepstationing.backbone.channels import ChannelSpec
from deepstationing.backbone.datasets import ExportCase
from deepstationing.backbone.env import Workspace
from deepstationing.backbone.predict import StagePredictor
from deepstationing.data.cohort import Cohort
from deepstationing.data.image import Image, read_image
from deepstationing.data.orientation import orientation_code
from deepstationing.errors import InputError
from deepstationing.timing import Timings
from deepstationing.training import (
    ModelFolder,
    TrainBudget,
    TrainOptions,
    cohort_cases,
    ensure_folds,
    oof_predictions,
    organ_stage,
    train_stage,
)
from deepstationing.training.stages import (
    ALL_ORGAN_LABELS,
    ANCHOR,
    ANCHOR_LABELS,
    NON_ANCHOR,
    NON_ANCHOR_LABELS,
    SINGLE,
    StageDefinition,
)

CT_ONLY = ChannelSpec("pred", ())

__all__ = ["ANCHOR", "NON_ANCHOR", "SINGLE", "train_organs", "merge_organs", "OrganCascade",
           "organ_oof_predictions", "default_model_dir", "TrainOptions", "TrainBudget"]


def default_model_dir(workdir: str | Path | Workspace, cohort: Cohort, config: str) -> Path:
    """``WORKDIR/models/<cohort folder name>-<config>``."""
    import re

    ws = workdir if isinstance(workdir, Workspace) else Workspace(workdir)
    name = re.sub(r"[^A-Za-z0-9]+", "_", cohort.root.resolve().name).strip("_") or "x"
    return ws.models / f"{name}-{config}"


def _definition(role: str, cohort: Cohort, options: TrainOptions,
                anchor_source: str = "pred") -> StageDefinition:
    first = read_image(next(iter(cohort)).ct)
    return organ_stage(role, config=options.config, cpu=options.cpu, anchor_source=anchor_source,
                       spacing=options.spacing).with_orientation(orientation_code(first))


def _train_role(role: str, cohort: Cohort, fold: int, model: ModelFolder,
                options: TrainOptions, anchor_source: str = "pred") -> None:
    definition = _definition(role, cohort, options, anchor_source)
    cases_in = cohort_cases(cohort, "organs")
    if role != NON_ANCHOR:
        cases = [ExportCase(c.id, c.ct, c.organs, c.fold) for c in cases_in]
    elif anchor_source == "gt":
        cases = [ExportCase(c.id, c.ct, c.organs, c.fold, c.organs, "gt") for c in cases_in]
    else:
        model.check(definition)
        oof = organ_oof_predictions(cohort, model, (ANCHOR,), options)
        cases = [ExportCase(c.id, c.ct, c.organs, c.fold, oof[c.id][0],
                            f"anchor fold {oof[c.id][1]}") for c in cases_in]
    train_stage(cohort, fold, model, definition, cases, options)


def train_organs(cohort: Cohort, fold: int, *, options: TrainOptions,
                 model_dir: str | Path | None = None,
                 stages: Sequence[str] = (ANCHOR, NON_ANCHOR),
                 anchor_source: str = "pred") -> ModelFolder:
    """Train organ stages for one fold; returns the model folder.

    Args:
        cohort: the training cohort (its manifest gives the folds).
        fold: the held-out fold.
        options: see :class:`~deepstationing.training.TrainOptions`.
        model_dir: the model folder (default :func:`default_model_dir`).
        stages: any of ``"anchor"``, ``"nonanchor"``, ``"single"``, in cascade order.
        anchor_source: channels of the non-anchor stage: ``"pred"`` (out-of-fold anchor
            predictions; trains the anchor stage on all folds first) or ``"gt"``.
    """
    cohort.test_ids(fold)  # validates the fold number
    if anchor_source not in ("gt", "pred"):
        raise ValueError(f"anchor_source must be 'gt' or 'pred', got {anchor_source!r}")
    model = ModelFolder.open_or_create(model_dir or default_model_dir(options.workspace, cohort,
                                                                      options.config))
    for stage in stages:  # every definition is checked before anything is trained
        model.check(_definition(stage, cohort, options, anchor_source))
    for stage in stages:
        _train_role(stage, cohort, fold, model, options, anchor_source)
    return model


def organ_oof_predictions(cohort: Cohort, model: ModelFolder, stages: Sequence[str],
                          options: TrainOptions) -> dict[str, tuple[Path, int]]:
    """Out-of-fold organ maps of every case: ``(anchor,)``, ``(anchor, nonanchor)`` or
    ``(single,)``; missing folds of those stages are trained first (same settings)."""
    for role in stages:
        src = (model.stage(NON_ANCHOR).channels.source
               if role == NON_ANCHOR and model.has(NON_ANCHOR) else "pred")
        # a stage the model holds keeps its own definition (network, grid) for new folds
        opts = _options_of(model, role, options)
        ensure_folds(cohort, model, _definition(role, cohort, opts, src),
                     lambda f, r=role, s=src, o=opts: _train_role(r, cohort, f, model, o, s),
                     opts)
    use = {(ANCHOR,): "anchor", (ANCHOR, NON_ANCHOR): "cascade", (SINGLE,): "single"}
    return oof_predictions(cohort, model, stages,
                           lambda f: OrganCascade(model, [f], device=options.device,
                                                  use=use[tuple(stages)],
                                                  threads=options.threads), options)


def _options_of(model: ModelFolder, role: str, options: TrainOptions) -> TrainOptions:
    """``options`` with the network and grid of ``role`` as the model holds it, if it does."""
    from dataclasses import replace

    if not model.has(role):
        return options
    d = model.stage(role)
    return replace(options, config=d.config, cpu=d.cpu, spacing=d.spacing)


# ---------------------------------------------------------------------- inference
def merge_organs(anchors: np.ndarray, non_anchors: np.ndarray) -> np.ndarray:
    """Join anchor and non-anchor maps (schema ids) into one 22-organ map; anchors win.

    >>> merge_organs(np.array([0, 5, 5]), np.array([1, 0, 1]))
    array([1, 5, 5], dtype=uint8)
    """
    a = np.asarray(anchors).astype(np.uint8)
    return np.where(a > 0, a, np.asarray(non_anchors).astype(np.uint8)).astype(np.uint8)


class OrganCascade:
    """Predict the 22 organs with a model folder's cascade (or its single network).

    Args:
        model: the model folder.
        folds: folds to ensemble (``None``: all trained folds of each stage).
        device: ``"cpu"`` or ``"cuda"``.
        mirroring: test-time mirroring along the axes the stage's training allowed (none
            by default for the toolkit's stages; ``None``: on for the full config).
        use: ``"cascade"`` (anchor -> non-anchor), ``"single"``, ``"anchor"`` (anchor
            organs only), or ``"auto"`` (cascade if the model has it, else the single
            network).
    """

    def __init__(self, model: ModelFolder, folds: Sequence[int] | None = None, *,
                 device: str = "cpu", mirroring: bool | None = None, use: str = "auto",
                 threads: int | None = None):
        self.model = model
        if use == "auto":
            use = "cascade" if model.has(ANCHOR) and model.has(NON_ANCHOR) else "single"
        stages = {"cascade": (ANCHOR, NON_ANCHOR), "single": (SINGLE,), "anchor": (ANCHOR,)}
        if use not in stages:
            raise ValueError(f"use must be auto, cascade, single or anchor, got {use!r}")
        self.use = use
        self.stages = stages[use]
        self.predictors: dict[str, StagePredictor] = {}
        self.definitions: dict[str, StageDefinition] = {}
        for name in self.stages:
            definition = model.stage(name)
            trained = model.folds(name)
            fl = trained if folds is None else [int(f) for f in folds]
            missing = [f for f in fl if f not in trained]
            if missing:
                raise InputError(model.root, f"stage '{name}' has no fold(s) {missing} "
                                             f"(trained: {trained})")
            mir = (definition.config != "cpu") if mirroring is None else mirroring
            self.definitions[name] = definition
            self.predictors[name] = StagePredictor(model.stage_folder(name), fl,
                                                   orientation=definition.orientation,
                                                   device=device, mirroring=mir,
                                                   threads=threads)

    @property
    def orientation(self) -> str:
        return self.definitions[self.stages[0]].orientation

    def predict(self, ct: Image, timings: Timings | None = None) -> Image:
        """22-organ map (schema ids) on ``ct``'s grid and geometry.

        Each stage takes the case on the case's grid (the CT, and for the non-anchor stage
        the anchor map) and returns its labels there, exactly as its training data was made
        (:mod:`deepstationing.backbone.inputs`).
        """
        t = timings or Timings()
        if self.use == "single":
            local = self.predictors[SINGLE].predict_case(ct, None, t, "organs: single network")
            return local.with_array(ALL_ORGAN_LABELS.to_schema(local.array))
        local = self.predictors[ANCHOR].predict_case(ct, None, t, "organs: anchor network")
        anchors = local.with_array(ANCHOR_LABELS.to_schema(local.array))
        if self.use == "anchor":
            return anchors
        na = self.predictors[NON_ANCHOR].predict_case(ct, anchors, t,
                                                      "organs: non-anchor network")
        return anchors.with_array(merge_organs(anchors.array,
                                               NON_ANCHOR_LABELS.to_schema(na.array)))
