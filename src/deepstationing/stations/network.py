"""The anatomy-encoded station parser (paper section 2.2): CT + organ channels -> 12 stations.

The station network is an nnU-Net 3D network whose input is the CT plus one binary channel
per referencing organ, chosen by a :class:`~deepstationing.backbone.channels.ChannelSpec`:

* ``none`` — CT only (the paper's "CT Only" column);
* ``gt:all`` — CT + the 22 ground-truth organ masks ("+22 Organ GT");
* ``pred:all`` — CT + the 22 organs predicted by the cascade ("+22 Organ Pred"); when
  training, each case's organ channels are out-of-fold cascade predictions (the fold model
  that held the case out), so training and test inputs are alike;
* ``pred:top6`` or ``pred:key,key,...`` — a subset (the paper's "+6 Searched Organ Pred").

Any of these may add ``+sdm``: the organ channels are then signed distance maps instead of
binary masks (:mod:`deepstationing.backbone.channels`). Each channel spec is its own stage
in the model folder (``stations-gt-all``, ``stations-ct``, ...), over one organ cascade.

At prediction time organ channels always come from the model's organ cascade (or from an
organ map the caller supplies, e.g. to test with ground-truth organs).

Examples
--------
A station network on CT + two ground-truth organs of a tiny cohort, one iteration (the
network is untrained: only the plumbing is shown):

>>> import tempfile
>>> from deepstationing.phantom import generate_cohort
>>> from deepstationing.backbone.plans import CpuConfig
>>> from deepstationing.data.image import read_image
>>> tmp = Path(tempfile.mkdtemp())
>>> cohort = generate_cohort(tmp / "ph", 4, preset="small", spacing=(11.2, 11.2, 20.0),
...                          progress=None)
>>> opts = TrainOptions(workdir=tmp / "runs", budget=TrainBudget(1, 1, 1),
...                     cpu=CpuConfig((8, 16, 16), (2, 4), 1), progress=lambda m: None)
>>> model = train_stations(cohort, 0, channels="gt:heart,spine", options=opts)
>>> model.stage_folders
['stations-gt-2org-58768c']
>>> case = cohort.case("case_000")
>>> organs, stations = StationParser(model).predict(read_image(case.ct),
...                                                 read_image(case.organs, label=True))
>>> stations.shape == organs.shape
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from deepstationing.backbone.channels import ChannelSpec
from deepstationing.backbone.datasets import ExportCase
from deepstationing.backbone.predict import StagePredictor
from deepstationing.data.cohort import Cohort, inner_cohort
from deepstationing.data.image import Image, check_same_geometry, read_image
from deepstationing.data.orientation import orientation_code
from deepstationing.errors import InputError
from deepstationing.organs.cascade import (
    ANCHOR,
    NON_ANCHOR,
    SINGLE,
    OrganCascade,
    default_model_dir,
    organ_oof_predictions,
)
from deepstationing.qc.reference import record_training_cases
from deepstationing.timing import Timings
from deepstationing.training import (
    ModelFolder,
    TrainBudget,
    TrainOptions,
    cohort_cases,
    fold_is_trained,
    station_stage,
    train_stage,
)
from deepstationing.training.fold import model_key
from deepstationing.training.stages import STATION_LABELS, STATIONS, StageDefinition

__all__ = ["train_stations", "station_cases", "StationParser", "ChannelSpec", "TrainOptions",
           "TrainBudget"]


def station_cases(cohort: Cohort, model: ModelFolder, spec: ChannelSpec,
                  options: TrainOptions, fold: int | None = None) -> list[ExportCase]:
    """The cases of a station stage with their organ channels (ground truth, or out-of-fold
    predictions of the cascade or of the single network, training their missing folds
    first).

    ``nested`` channels (for training fold ``fold``): the fold's training cases get the
    out-of-fold predictions of a cascade trained on those cases only
    (:func:`nested_organ_model`), so no organ model behind a training channel ever saw fold
    ``fold``'s test cases; the test cases themselves are predicted by the fold-``fold``
    cascade at evaluation, as for ``pred``.
    """
    cases_in = cohort_cases(cohort, "stations")
    if spec.organs and spec.source == "gt":
        cohort_cases(cohort, "organs")
    if not spec.organs:
        return [ExportCase(c.id, c.ct, c.stations, c.fold, patient=c.patient)
                for c in cases_in]
    if spec.source == "gt":
        return [ExportCase(c.id, c.ct, c.stations, c.fold, c.organs, "gt", c.patient)
                for c in cases_in]
    if spec.source == "nested":
        if fold is None:
            raise ValueError("nested organ channels are made for one training fold")
        inner, inner_model = nested_organ_model(cohort, model, fold, options)
        oof = organ_oof_predictions(inner, inner_model, (ANCHOR, NON_ANCHOR), options)
        return [ExportCase(c.id, c.ct, c.stations, c.fold, oof[c.id][0],
                           f"nested cascade {fold}/{inner.case(c.id).fold}", c.patient)
                if c.id in oof else ExportCase(c.id, c.ct, c.stations, c.fold,
                                               patient=c.patient)  # held out
                for c in cases_in]
    stages, what = ((SINGLE,), "single") if spec.source == "single" else \
        ((ANCHOR, NON_ANCHOR), "cascade")
    oof = organ_oof_predictions(cohort, model, stages, options)
    return [ExportCase(c.id, c.ct, c.stations, c.fold, oof[c.id][0],
                       f"{what} fold {oof[c.id][1]}", c.patient) for c in cases_in]


def nested_organ_model(cohort: Cohort, model: ModelFolder, fold: int,
                       options: TrainOptions) -> tuple[Cohort, ModelFolder]:
    """The inner cohort of ``fold`` (its training cases, :func:`inner_cohort`) and the model
    folder of the organ cascade trained on it, ``MODEL/nested/fold<K>`` (created on first
    use with the model's own organ stage definitions)."""
    inner = inner_cohort(cohort, fold, options.workspace.root / "inner" /
                         f"{model.root.name}-{model_key(model)}-fold{fold}")
    return inner, ModelFolder.open_or_create(model.root / "nested" / f"fold{fold}")


def train_stations(cohort: Cohort, fold: int, *, channels: ChannelSpec | str,
                   options: TrainOptions, model_dir: str | Path | None = None,
                   role: str = STATIONS, trainer: str = "",
                   settings: dict | None = None) -> ModelFolder:
    """Train fold ``fold`` of the station network with the given organ channels.

    With ``pred`` channels the organ cascade (anchor -> non-anchor) must exist in the same
    model folder for every fold; missing folds are trained first (see
    :mod:`deepstationing.organs.cascade`). ``role``, ``trainer`` and ``settings`` select
    another station trainer (the key-organ search, :mod:`deepstationing.search`).
    """
    spec = ChannelSpec.parse(channels)
    cohort.test_ids(fold)
    model = ModelFolder.open_or_create(model_dir or default_model_dir(options.workspace, cohort,
                                                                      options.config))
    first = read_image(next(iter(cohort)).ct)
    definition: StageDefinition = station_stage(
        spec, config=options.config, cpu=options.cpu, role=role, trainer=trainer,
        settings=settings, spacing=options.spacing).with_orientation(orientation_code(first))
    model.check(definition)  # before any (organ) training
    if fold_is_trained(model, definition, fold, options, cohort):
        options.say(f"[{definition.folder} fold {fold}] already trained in {model.root}")
        return model
    cases = station_cases(cohort, model, spec, options, fold)
    train_stage(cohort, fold, model, definition, cases, options)
    record_training_cases(model.root, cohort, fold)  # the cohort's label ranges for QC
    return model


class StationParser:
    """The whole cascade of a model folder: CT -> 22 organs -> 12 stations.

    Args:
        model: model folder (or its path).
        folds: folds to ensemble (``None``: all trained folds).
        device: ``"cpu"`` or ``"cuda"``.
        mirroring: test-time mirroring along the axes the stages' training allowed (none by
            default for the toolkit's stages; ``None``: on for the full config).
        organ_model: ``"auto"``, ``"cascade"`` or ``"single"`` (see :class:`OrganCascade`).
        stations: which station stage (folder name or channel spec; ``None``: the only one).
        checkpoint: the station stage's checkpoint file in each fold folder (e.g. a
            ``checkpoint_epoch_NNNN.pth`` snapshot kept for a learning curve).
    """

    def __init__(self, model: ModelFolder | str | Path, folds: Sequence[int] | None = None, *,
                 device: str = "cpu", mirroring: bool | None = None, organ_model: str = "auto",
                 threads: int | None = None, stations: str | None = None,
                 checkpoint: str = "checkpoint_final.pth"):
        self.model = model if isinstance(model, ModelFolder) else ModelFolder.open(model)
        self.folder = self.model.station_stage(stations)
        self.definition = self.model.stage(self.folder)
        trained = self.model.folds(self.folder)
        fl = trained if folds is None else [int(f) for f in folds]
        missing = [f for f in fl if f not in trained]
        if missing:
            raise InputError(self.model.root, f"stage '{self.folder}' has no fold(s) {missing} "
                                              f"(trained: {trained})")
        mir = (self.definition.config != "cpu") if mirroring is None else mirroring
        self.stations = StagePredictor(self.model.stage_folder(self.folder), fl,
                                       orientation=self.definition.orientation, device=device,
                                       mirroring=mir, threads=threads, checkpoint=checkpoint)
        if self.channels.source == "single" and organ_model == "auto":
            organ_model = "single"  # the channels it was trained on
        has_organs = (self.model.has(ANCHOR) and self.model.has(NON_ANCHOR)) or \
            self.model.has(SINGLE)
        self.organs = OrganCascade(self.model, folds, device=device, mirroring=mirroring,
                                   use=organ_model, threads=threads) if has_organs else None

    @property
    def channels(self) -> ChannelSpec:
        return self.definition.channels

    def predict(self, ct: Image, organs: Image | None = None,
                progress: Callable[[str], None] | None = None,
                timings: Timings | None = None) -> tuple[Image | None, Image]:
        """Organs (``None`` if the model has no organ stage and none was given) and stations.

        Args:
            ct: the CT (any orientation; outputs share its grid and geometry).
            organs: a 22-organ map on ``ct``'s grid to use instead of predicted organs.
            progress: called with a short message before each stage.
            timings: receives the seconds of every step (``predict --verbose``).
        """
        say = progress or (lambda msg: None)
        t = timings or Timings()
        if organs is not None:
            check_same_geometry(ct, organs, reference_name=ct.path or "CT",
                                other_name="organ map")
        elif self.organs is not None:
            say(f"organs ({self.organs.use})")
            organs = self.organs.predict(ct, t)
        elif self.channels.organs:
            raise InputError(self.model.root, f"the station stage needs organ channels "
                                              f"({self.channels}) but the model has no organ "
                                              "stage; pass an organ map")
        n_org = len(self.channels.organs)
        say(f"stations (CT + {n_org} organ channels)" if n_org else "stations (CT only)")
        local = self.stations.predict_case(ct, organs if n_org else None, t,
                                           "stations: network")
        return organs, local.with_array(STATION_LABELS.to_schema(local.array))
