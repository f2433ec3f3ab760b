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
A stage trained on *predicted* channels must see, for each training case, what it will
see at test time: a prediction by a model that never trained on that case. In a 4-fold
split case ``c`` of fold ``f`` is held out by the fold-``f`` model only, so its channels
come from the fold-``f`` model of the earlier stage — for every training fold ``K`` (the
fold-``K`` test cases also use the fold-``K`` model, which held them out). Hence training
fold ``K`` of the non-anchor stage on predicted anchors needs the anchor stage trained on
*all* folds; :func:`train_organs` trains the missing folds first (with the same settings)
and says so. :func:`oof_predictions` records which fold model made each case's channels
in ``provenance.json`` next to the predictions, and the exported dataset records it too.

Examples
--------
>>> # doctest: +SKIP
>>> opts = TrainOptions(workdir="runs", config="cpu", budget=TrainBudget(epochs=20))
>>> model = train_organs(Cohort("phantom"), fold=0, options=opts)
>>> organs = OrganCascade(model).predict(read_image("ct.nii.gz"))
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstationing import schema
from deepstationing.backbone.channels import ChannelSpec, organ_channels
from deepstationing.backbone.datasets import ExportCase, StageLabels, export_dataset
from deepstationing.backbone.env import DEFAULT_WORKDIR, Workspace
from deepstationing.backbone.model import ModelFolder, StageInfo
from deepstationing.backbone.plans import CONFIGURATION, CPU_PLANS, FULL_PLANS, CpuConfig
from deepstationing.backbone.predict import (
    StagePredictor,
    back_to_grid,
    from_orientation,
    model_spacing,
    orientation_code,
    to_model_grid,
    to_orientation,
)
from deepstationing.backbone.train import TrainBudget, train_fold, trainer_name
from deepstationing.data.cohort import Cohort, write_json_atomic
from deepstationing.data.image import Image, read_image, write_image
from deepstationing.errors import InputError

__all__ = [
    "ANCHOR", "NON_ANCHOR", "SINGLE", "ANCHOR_LABELS", "NON_ANCHOR_LABELS", "ALL_ORGAN_LABELS",
    "TrainOptions", "default_model_dir", "train_stage", "train_organs", "merge_organs",
    "OrganCascade", "oof_predictions", "ensure_folds",
]

ANCHOR, NON_ANCHOR, SINGLE = "anchor", "nonanchor", "single"
ANCHOR_LABELS = StageLabels.from_keys(schema.ORGANS, schema.ANCHOR_ORGANS)
NON_ANCHOR_LABELS = StageLabels.from_keys(schema.ORGANS, schema.NON_ANCHOR_ORGANS)
ALL_ORGAN_LABELS = StageLabels.from_keys(schema.ORGANS, schema.ORGANS.keys)
CT_ONLY = ChannelSpec("pred", ())


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class TrainOptions:
    """How to train: workspace, configuration, budget, device.

    Attributes:
        workdir: the workspace folder (nnU-Net folders, models, cached predictions).
        config: ``"cpu"`` (small network, for CPUs) or ``"full"`` (nnU-Net's defaults).
        cpu: the CPU network/patch (``None``: :class:`CpuConfig` defaults).
        budget: epochs/iterations (``None`` fields: the trainer's defaults, 1000 x 250
            for ``full``, 50 x 25 for ``cpu``).
        device: ``"cpu"`` or ``"cuda"``.
        threads: torch threads (``None``: torch's default).
        stop_after_epochs: end each training run after this many epochs as if interrupted.
        verbose: show nnU-Net's console output.
        progress: where progress lines go (``None``: nowhere).
    """

    workdir: str | Path | Workspace = DEFAULT_WORKDIR
    config: str = "cpu"
    cpu: CpuConfig | None = None
    budget: TrainBudget = field(default_factory=TrainBudget)
    device: str = "cpu"
    threads: int | None = 1
    stop_after_epochs: int | None = None
    verbose: bool = False
    progress: Callable[[str], None] | None = _stderr

    @property
    def workspace(self) -> Workspace:
        w = self.workdir
        return w if isinstance(w, Workspace) else Workspace(w)

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def stage_extra(self) -> dict:
        return {"cpu": (self.cpu or CpuConfig()).to_json() if self.config == "cpu" else None,
                "budget": self.budget.to_json()}


def default_model_dir(workdir: str | Path | Workspace, cohort: Cohort, config: str) -> Path:
    """``WORKDIR/models/<cohort folder name>-<config>``."""
    ws = workdir if isinstance(workdir, Workspace) else Workspace(workdir)
    return ws.models / f"{_safe(cohort.root.resolve().name)}-{config}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def _model_key(model: ModelFolder) -> str:
    return hashlib.sha1(str(model.root.resolve()).encode()).hexdigest()[:10]


def _cohort_cases(cohort: Cohort, target: str) -> list:
    cases = [c for c in cohort if c.fold is not None]
    missing = [c for c in cases if not c.has(target)]
    if missing:
        raise InputError(missing[0].path(target), f"case {missing[0].id} has no {target} labels; "
                                                  "training needs them for every case")
    if not cases:
        raise InputError(cohort.root, "no case of the cohort is assigned to a fold")
    return cases


def stage_info(name: str, labels: StageLabels, channels: ChannelSpec, cohort: Cohort,
               options: TrainOptions) -> StageInfo:
    """The description a stage gets in the model folder."""
    first = read_image(next(iter(cohort)).ct)
    return StageInfo(name, labels, channels, options.config, trainer_name(options.config),
                     CPU_PLANS if options.config == "cpu" else FULL_PLANS, CONFIGURATION, [],
                     orientation_code(first), options.stage_extra())


def train_stage(cohort: Cohort, fold: int, model: ModelFolder, info: StageInfo,
                cases: Sequence[ExportCase], options: TrainOptions) -> Path:
    """Export, plan, train one fold of a stage and copy it into ``model``.

    This is the single routine that every stage (organ cascade, single network, stations)
    goes through; stages differ only in their labels, channels and cases.
    """
    from deepstationing.backbone.plans import plan_and_preprocess

    ws = options.workspace.create()
    channels = info.channels
    pred_key = _model_key(model) if (channels.organs and channels.source == "pred") else "-"
    key = f"{info.name}|{cohort.root.resolve()}|{channels}|{pred_key}"
    name = _safe(f"{info.name}_{cohort.root.resolve().name}_{channels.tag}")
    ref, written = export_dataset(ws, key, name, cases, labels=info.labels, channels=channels)
    options.say(f"[{info.name} fold {fold}] dataset {ref.name} "
                f"({'exported' if written else 'unchanged'}); planning/preprocessing "
                f"({options.config} config)")
    plans = plan_and_preprocess(ws, ref, options.config, options.cpu, verbose=options.verbose)
    options.say(f"[{info.name} fold {fold}] training ({trainer_name(options.config)}, "
                f"device {options.device})")
    out = train_fold(ws, plans, fold, budget=options.budget, device=options.device,
                     threads=options.threads, stop_after_epochs=options.stop_after_epochs,
                     verbose=options.verbose)
    model.add_fold(info, fold, out)
    options.say(f"[{info.name} fold {fold}] done -> {model.stage_folder(info.name)}")
    return out


# ---------------------------------------------------------------------- organ stages
def _train_anchor(cohort: Cohort, fold: int, model: ModelFolder, options: TrainOptions) -> None:
    info = stage_info(ANCHOR, ANCHOR_LABELS, CT_ONLY, cohort, options)
    cases = [ExportCase(c.id, c.ct, c.organs, c.fold) for c in _cohort_cases(cohort, "organs")]
    train_stage(cohort, fold, model, info, cases, options)


def _train_single(cohort: Cohort, fold: int, model: ModelFolder, options: TrainOptions) -> None:
    info = stage_info(SINGLE, ALL_ORGAN_LABELS, CT_ONLY, cohort, options)
    cases = [ExportCase(c.id, c.ct, c.organs, c.fold) for c in _cohort_cases(cohort, "organs")]
    train_stage(cohort, fold, model, info, cases, options)


def _train_nonanchor(cohort: Cohort, fold: int, model: ModelFolder, options: TrainOptions,
                     anchor_source: str) -> None:
    channels = ChannelSpec(anchor_source, schema.ANCHOR_ORGANS)
    info = stage_info(NON_ANCHOR, NON_ANCHOR_LABELS, channels, cohort, options)
    info.extra["anchor_source"] = anchor_source
    cohort_cases = _cohort_cases(cohort, "organs")
    if anchor_source == "gt":
        cases = [ExportCase(c.id, c.ct, c.organs, c.fold, c.organs, "gt")
                 for c in cohort_cases]
    else:
        oof = oof_predictions(cohort, model, (ANCHOR,), options)
        cases = [ExportCase(c.id, c.ct, c.organs, c.fold, oof[c.id][0],
                            f"anchor fold {oof[c.id][1]}") for c in cohort_cases]
    train_stage(cohort, fold, model, info, cases, options)


def ensure_folds(cohort: Cohort, model: ModelFolder, stage: str, options: TrainOptions,
                 anchor_source: str = "pred") -> None:
    """Train every cohort fold of ``stage`` that ``model`` lacks (needed for OOF channels)."""
    folds = sorted({c.fold for c in cohort if c.fold is not None})
    for f in folds:
        if model.has(stage, f):
            continue
        options.say(f"[{stage}] fold {f} is needed for out-of-fold channels; training it")
        if stage == ANCHOR:
            _train_anchor(cohort, f, model, options)
        elif stage == NON_ANCHOR:
            src = model.stage(NON_ANCHOR).extra.get("anchor_source", anchor_source) \
                if model.has(NON_ANCHOR) else anchor_source
            _train_nonanchor(cohort, f, model, options, src)
        elif stage == SINGLE:
            _train_single(cohort, f, model, options)
        else:
            raise ValueError(f"cannot auto-train stage {stage!r}")


def train_organs(cohort: Cohort, fold: int, *, options: TrainOptions,
                 model_dir: str | Path | None = None,
                 stages: Sequence[str] = (ANCHOR, NON_ANCHOR),
                 anchor_source: str = "pred") -> ModelFolder:
    """Train organ stages for one fold; returns the model folder.

    Args:
        cohort: the training cohort (its manifest gives the folds).
        fold: the held-out fold.
        options: see :class:`TrainOptions`.
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
    for stage in stages:
        if stage == ANCHOR:
            if not model.has(ANCHOR, fold):
                _train_anchor(cohort, fold, model, options)
        elif stage == NON_ANCHOR:
            if not model.has(NON_ANCHOR, fold):
                _train_nonanchor(cohort, fold, model, options, anchor_source)
        elif stage == SINGLE:
            if not model.has(SINGLE, fold):
                _train_single(cohort, fold, model, options)
        else:
            raise ValueError(f"unknown organ stage {stage!r}; use anchor, nonanchor or single")
    return model


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
        mirroring: test-time mirroring (8x slower; off for the CPU config).
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
        self.infos: dict[str, StageInfo] = {}
        for name in self.stages:
            info = model.stage(name)
            fl = list(info.folds) if folds is None else [int(f) for f in folds]
            missing = [f for f in fl if f not in info.folds]
            if missing:
                raise InputError(model.root, f"stage '{name}' has no fold(s) {missing} "
                                             f"(trained: {info.folds})")
            mir = (info.config != "cpu") if mirroring is None else mirroring
            self.infos[name] = info
            self.predictors[name] = StagePredictor(model.stage_folder(name), fl, device=device,
                                                   mirroring=mir, threads=threads)

    @property
    def orientation(self) -> str:
        return self.infos[self.stages[0]].orientation

    @property
    def spacing(self) -> tuple:
        """Spacing (z, y, x) the first stage was trained at; inputs are resampled to it."""
        first = self.stages[0]
        return model_spacing(self.model.stage_folder(first), self.infos[first].configuration)

    def predict_oriented(self, ct: Image) -> np.ndarray:
        """22-organ map of a CT already in the model's orientation (same grid)."""
        x = ct.array.astype(np.float32)[None]
        sp = ct.array_spacing
        if self.use == "single":
            local = self.predictors[SINGLE].predict(x, sp, source=ct.path)
            return ALL_ORGAN_LABELS.to_schema(local)
        anchors = ANCHOR_LABELS.to_schema(self.predictors[ANCHOR].predict(x, sp, source=ct.path))
        if self.use == "anchor":
            return anchors
        chans = organ_channels(anchors, schema.ANCHOR_ORGANS).astype(np.float32)
        na = self.predictors[NON_ANCHOR].predict(np.concatenate([x, chans]), sp, source=ct.path)
        return merge_organs(anchors, NON_ANCHOR_LABELS.to_schema(na))

    def predict(self, ct: Image) -> Image:
        """22-organ map (schema ids) on ``ct``'s grid and geometry."""
        code = self.orientation
        oriented = to_orientation(ct, code)
        work = to_model_grid(oriented, self.spacing)
        organs = back_to_grid(work.with_array(self.predict_oriented(work)), oriented)
        return from_orientation(organs.array, code, ct)


def _stamp(p: Path) -> list:
    st = p.stat()
    return [st.st_size, int(st.st_mtime_ns)]


def oof_predictions(cohort: Cohort, model: ModelFolder, stages: Sequence[str],
                    options: TrainOptions) -> dict[str, tuple[Path, int]]:
    """Out-of-fold predictions of ``stages`` for every case: ``{case: (file, fold)}``.

    ``stages`` is ``("anchor",)`` (anchor organs only) or ``("anchor", "nonanchor")``
    (the merged 22-organ cascade). Case ``c`` of fold ``f`` is predicted by the fold-``f``
    models only (they did not train on it); missing folds are trained first. Results are
    cached under ``WORKDIR/predictions/`` with ``provenance.json`` recording, per case, the
    fold and the checkpoints used; a retrained checkpoint invalidates the cache.
    """
    for s in stages:
        ensure_folds(cohort, model, s, options)
    tag = "+".join(stages)
    out_dir = options.workspace.predictions / f"{model.root.name}-{_model_key(model)}" / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    prov_file = out_dir / "provenance.json"
    prov = json.loads(prov_file.read_text()) if prov_file.exists() else {}
    cases = [c for c in cohort if c.fold is not None]
    result: dict[str, tuple[Path, int]] = {}
    by_fold: dict[int, OrganCascade] = {}
    for n, case in enumerate(cases, 1):
        f = int(case.fold)
        ckpts = {s: str(model.checkpoint(s, f)) for s in stages}
        want = {"fold": f, "checkpoints": ckpts,
                "stamps": {s: _stamp(Path(p)) for s, p in ckpts.items()}}
        target = out_dir / f"{case.id}.nii.gz"
        if target.exists() and prov.get(case.id) == want:
            result[case.id] = (target, f)
            continue
        options.say(f"[out-of-fold {tag}] case {n}/{len(cases)} ({case.id}) with the fold-{f} "
                    "model")
        if f not in by_fold:
            by_fold.clear()  # one fold's predictors at a time keeps memory low
            by_fold[f] = _fold_cascade(model, stages, f, options)
        ct = read_image(case.ct)
        write_image(by_fold[f].predict(ct), target)
        prov[case.id] = want
        write_json_atomic(prov, prov_file)
        result[case.id] = (target, f)
    return result


def _fold_cascade(model: ModelFolder, stages: Sequence[str], fold: int,
                  options: TrainOptions) -> OrganCascade:
    use = {(ANCHOR,): "anchor", (ANCHOR, NON_ANCHOR): "cascade", (SINGLE,): "single"}
    return OrganCascade(model, [fold], device=options.device, use=use[tuple(stages)],
                        threads=options.threads)
