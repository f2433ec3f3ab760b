"""The toolkit's Python API: one typed function per job, the same ones the commands call.

Every ``deepstationing`` command parses its arguments, calls one function of this module and
reports what it returns; Ray workers call the same functions. Progress goes to the
``progress`` callable (one line each; default: the ``deepstationing`` log), never to the
console, and bad input raises :class:`~deepstationing.errors.DeepStationingError` with one
line naming the file and the problem.

* :func:`rules` — stations from organ masks by the margin rules (no training);
* :func:`evaluate` — DSC, HD, HD95 and ASSD of predicted label maps against the truth;
* :func:`train` — the organ cascade or a station network on a cohort fold;
* :func:`predict` — a trained model on CTs, every output format, locally or on Ray;
* :func:`search` — the key-organ search (or its ablation check) and the top-n sweep.

Examples
--------
Stations from a phantom case's organs by the rules, scored against the case's truth:

>>> import tempfile, pathlib
>>> from deepstationing.phantom import generate_cohort
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> cohort = generate_cohort(tmp / "ph", 4, preset="small", spacing=(11.2, 11.2, 20.0),
...                          n_folds=2, progress=None)
>>> case = cohort.case("case_000")
>>> made = rules(case.organs, tmp / "rules" / "stations.nii.gz")
>>> made.stations.name, sorted(made.volumes_ml)[:3]
('stations.nii.gz', ['1L', '1R', '2L'])
>>> scored = evaluate(made.stations, case.stations, tmp / "scores")
>>> scored.cases, scored.csv.name, 0.0 < scored.mean_dsc < 1.0
(1, 'metrics.csv', True)

A station network on CT + two ground-truth organs, one iteration (untrained: the plumbing):

>>> model = train("stations", cohort, 0, channels="gt:heart,trachea", epochs=1, iterations=1,
...               workdir=tmp / "runs", network=((8, 16, 16), (2, 4), 1))
>>> model.name, ModelFolder.open(model).station_stage()
('ph-cpu', 'stations-gt-2org-...')

That model on a case, with the case's organs given (no organ stages trained):

>>> results = predict(case.ct, tmp / "pred", model, organs=case.organs, qc=False)
>>> [(r.name, r.ok, r.outputs) for r in results]
[('ct', True, ['organs.nii.gz', 'stations.nii.gz'])]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deepstationing.backbone.env import DEFAULT_WORKDIR
from deepstationing.data.cohort import Cohort
from deepstationing.errors import InputError
from deepstationing.predict.batch import CaseResult, find_cases
from deepstationing.predict.formats import parse_predict_formats
from deepstationing.predict.run import (
    PredictSettings,
    predict_local,
    predict_on_ray,
)
from deepstationing.training import ModelFolder

if TYPE_CHECKING:
    from deepstationing.backbone.channels import ChannelSpec

__all__ = ["rules", "RulesResult", "evaluate", "EvaluationResult", "train", "predict",
           "CaseResult", "search", "SearchOutcome", "ModelFolder"]

log = logging.getLogger("deepstationing")
PathLike = str | os.PathLike
Progress = Callable[[str], None] | None


def _say(progress: Progress) -> Callable[[str], None]:
    return progress or log.info


# ---------------------------------------------------------------------- rules
@dataclass
class RulesResult:
    """What :func:`rules` wrote and found."""

    stations: Path
    volumes_ml: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    landmarks: Path | None = None


def rules(organs: PathLike, output: PathLike, *, ct: PathLike | None = None,
          landmarks: PathLike | None = None, check_ct: bool = True) -> RulesResult:
    """Stations from a 22-organ map (or a TotalSegmentator folder) by the margin rules.

    Args:
        organs: a 22-organ label map (``deepstationing.schema.ORGANS`` ids) or a
            TotalSegmentator output folder.
        output: the station label map to write.
        ct: the CT on the same grid (optional: refines the mediastinum; sets the grid of a
            TotalSegmentator folder).
        landmarks: also write the landmarks as JSON there.
        check_ct: check that ``ct`` looks like a CT (HU range).
    """
    import numpy as np

    from deepstationing.data.atomic import write_json_atomic
    from deepstationing.data.image import check_same_geometry, read_ct, read_image, write_image
    from deepstationing.rules.inference import rule_stations
    from deepstationing.rules.totalseg import (
        read_totalsegmentator_folder,
        totalsegmentator_exclusion_mask,
    )
    from deepstationing.schema import ORGANS

    path = Path(organs)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    ct_img = (read_ct if check_ct else read_image)(ct) if ct else None
    notes: list[str] = []
    exclude = None
    if path.is_dir():
        organ_img, _missing, notes = read_totalsegmentator_folder(path, reference=ct_img)
        exclude = totalsegmentator_exclusion_mask(path, organ_img)
    else:
        organ_img = read_image(path, label=True)
        top = int(organ_img.array.max(initial=0))
        if top > len(ORGANS):
            raise InputError(path, f"label value {top} is not an organ id (1-{len(ORGANS)}); "
                                   "expected a 22-organ map of deepstationing.schema.ORGANS")
        if ct_img is not None:
            check_same_geometry(ct_img, organ_img, reference_name="CT",
                                other_name="organ map")
    result = rule_stations(organ_img, ct=ct_img, exclude=exclude)
    out = write_image(result.stations.with_array(result.stations.array.astype(np.uint8)),
                      output)
    lm = None
    if landmarks:
        lm = Path(landmarks)
        write_json_atomic(result.landmarks.as_dict(), lm)
    for line in notes + result.warnings:
        log.warning(line)
    return RulesResult(Path(out), dict(result.volumes_ml()), notes + list(result.warnings),
                       lm)


# ---------------------------------------------------------------------- evaluate
@dataclass
class EvaluationResult:
    """What :func:`evaluate` wrote: the metric rows, their files, what was left out."""

    rows: list
    csv: Path
    summary: Path
    cases: int
    labels: int
    skipped: list[str] = field(default_factory=list)

    @property
    def mean_dsc(self) -> float:
        from deepstationing.evaluation.heldout import mean_dsc

        return mean_dsc(self.rows)


def evaluate(pred: PathLike, truth: PathLike, out: PathLike, *, labels: str = "stations",
             name: str | None = None, allow_missing: bool = False,
             progress: Progress = None) -> EvaluationResult:
    """DSC, HD, HD95 and ASSD (mm) per label of predicted label maps against the truth.

    Args:
        pred: a label map, or a folder of them (case folders, files named by case).
        truth: the same for the truth (a cohort folder works).
        out: folder for ``metrics.csv`` (one row per case and label) and ``summary.md``.
        labels: ``"stations"``, ``"organs"`` or ``"all"`` (every integer label present).
        name: column name of this result set in ``summary.md``.
        allow_missing: skip cases with only a prediction or only a truth (logged) instead of
            refusing.
        progress: one line per case.
    """
    from deepstationing.data.image import check_same_geometry, read_image
    from deepstationing.evaluation.metrics import Metrics, label_map_metrics
    from deepstationing.evaluation.report import (
        case_id_of,
        match_cases,
        rows_for_case,
        write_metrics_csv,
        write_summary,
    )
    from deepstationing.schema import get_label_set

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    match = match_cases(pred, truth, labels)
    unmatched = []
    if match.pred_only:
        unmatched.append("prediction(s) without truth: "
                         + ", ".join(str(p) for p in match.pred_only))
    if match.truth_only:
        unmatched.append("truth case(s) without prediction: "
                         + ", ".join(str(p) for p in match.truth_only))
    if unmatched:
        if not allow_missing:
            raise InputError(pred, "unmatched files: " + "; ".join(unmatched)
                             + " (use --allow-missing to skip them)")
        log.warning("skipping " + "; ".join(unmatched))
    if not match.pairs:
        raise InputError(pred, f"no prediction matches a truth case in {truth}")
    label_ids = None if labels == "all" else get_label_set(labels).ids
    say = _say(progress)
    results = []
    for i, pair in enumerate(match.pairs, start=1):
        if len(match.pairs) > 1:
            say(f"[{i}/{len(match.pairs)}] {pair.case}")
        t = read_image(pair.truth, label=True)
        p = read_image(pair.pred, label=True)
        check_same_geometry(t, p, reference_name="truth", other_name="prediction")
        if label_ids is not None:
            _warn_unknown_labels(p.array.max(initial=0), pair.pred, labels)
            _warn_unknown_labels(t.array.max(initial=0), pair.truth, labels)
        results.append((pair.case, label_map_metrics(t.array, p.array, t.array_spacing,
                                                     label_ids)))
    if label_ids is None:  # 'all': every case gets a row for every label seen in any case
        seen = sorted({v for _, m in results for v in m})
        results = [(c, {v: m.get(v, Metrics.for_empty("both")) for v in seen})
                   for c, m in results]
    rows = [row for case, m in results for row in rows_for_case(case, m, labels)]
    csv_path = write_metrics_csv(rows, out / "metrics.csv")
    md_path = write_summary({name or case_id_of(pred): rows}, out / "summary.md")
    n = len(match.pairs)
    return EvaluationResult(rows, Path(csv_path), Path(md_path), n, len(rows) // max(n, 1),
                            unmatched)


def _warn_unknown_labels(top: int, path: Path, labels: str) -> None:
    from deepstationing.schema import get_label_set

    size = len(get_label_set(labels))
    if int(top) > size:
        log.warning(f"{path}: label values above {size} are not {labels} and are ignored "
                    f"(max {int(top)}; use --labels organs or all?)")


# ---------------------------------------------------------------------- train
ORGAN_STAGES = {"cascade": ("anchor", "nonanchor"), "all": ("anchor", "nonanchor", "single")}


def train(what: str, cohort: Cohort | PathLike, fold: int | str, *, config: str = "cpu",
          channels: str = "pred:all", stages: str | Sequence[str] = "cascade",
          anchor_channels: str = "pred", nested_organs: bool = False,
          spacing: Sequence[float] | None = None, epochs: int | None = None,
          iterations: int | None = None, workdir: PathLike = DEFAULT_WORKDIR,
          model: PathLike | None = None, device: str = "cpu", threads: int | None = 1,
          workers: int | None = None, seed: int | None = 0, retrain: bool = False,
          network: tuple | None = None, verbose: bool = False,
          progress: Progress = None) -> Path:
    """Train the organ cascade (``what="organs"``) or a station network (``"stations"``).

    Args:
        what: ``"organs"`` or ``"stations"``.
        cohort: the cohort (folder or :class:`~deepstationing.data.cohort.Cohort`).
        fold: the held-out fold, or ``"all"`` for every fold.
        config: ``"cpu"`` (small network) or ``"full"`` (nnU-Net's own, for a GPU).
        channels: stations: the organ input channels (a channel spec: ``none``,
            ``gt:all``, ``pred:all``, ``pred:heart,spine``, ...).
        stages: organs: ``"cascade"``, ``"single"``, ``"all"`` or a list of ``anchor``,
            ``nonanchor``, ``single``.
        anchor_channels: organs: the non-anchor stage's anchor channels, ``"pred"``
            (out-of-fold predictions) or ``"gt"``.
        nested_organs: stations: predicted organ channels from organ models that never saw
            the held-out fold (``nested:`` channels).
        spacing: the networks' voxel spacing ``(x, y, z)`` in mm (default: nnU-Net's rule
            on each fold's training cases).
        epochs, iterations: the budget (default: the configuration's).
        workdir: the workspace; model: the model folder (default
            ``WORKDIR/models/<cohort>-<config>``).
        device, threads, workers, seed, retrain, verbose: as in
            :class:`~deepstationing.training.TrainOptions`.
        network: the CPU network ``(patch, features, batch)`` (default: the CPU config's).

    Returns:
        The model folder.
    """
    from deepstationing.backbone.plans import CpuConfig
    from deepstationing.data.atomic import ensure_folder
    from deepstationing.organs.cascade import default_model_dir, train_organs
    from deepstationing.stations.network import train_stations
    from deepstationing.training import TrainBudget, TrainOptions

    if what not in ("organs", "stations"):
        raise ValueError(f"what must be 'organs' or 'stations', got {what!r}")
    cohort = cohort if isinstance(cohort, Cohort) else Cohort(cohort)
    folds = _train_folds(cohort, fold)
    spec = _station_channels(channels, nested_organs)
    _check_train_numbers(epochs, iterations, workers, spacing)
    opts = TrainOptions(workdir=workdir, config=config,
                        cpu=CpuConfig(*network) if network else None,
                        budget=TrainBudget(epochs, iterations), device=device,
                        threads=threads, workers=workers, retrain=retrain, seed=seed,
                        spacing=tuple(float(v) for v in spacing)[::-1] if spacing else None,
                        verbose=verbose, progress=_say(progress))
    model_dir = Path(model or default_model_dir(opts.workspace, cohort, config))
    ensure_folder(model_dir)  # an unwritable model folder fails now, not after hours
    stage_list = _organ_stages(stages)
    for f in folds:
        if what == "organs":
            train_organs(cohort, f, options=opts, model_dir=model_dir, stages=stage_list,
                         anchor_source=anchor_channels)
        else:
            train_stations(cohort, f, channels=spec, options=opts, model_dir=model_dir)
    return model_dir


def _train_folds(cohort: Cohort, fold: int | str) -> list[int]:
    """The folds to train: every fold of the cohort for ``"all"``, else the one (checked)."""
    if str(fold) == "all":
        return sorted({c.fold for c in cohort if c.fold is not None})
    try:
        folds = [int(fold)]
    except ValueError:
        raise InputError(cohort.root, f"fold {fold!r}: expected an integer or 'all'") \
            from None
    cohort.test_ids(folds[0])
    return folds


def _station_channels(channels: str, nested_organs: bool) -> ChannelSpec:
    """The stations' organ input channels (a ``ChannelSpec``), ``nested:`` when asked."""
    from deepstationing.backbone.channels import ChannelSpec

    try:
        spec = ChannelSpec.parse(channels)
    except ValueError as exc:
        raise InputError(None, f"channels: {exc}") from None
    if nested_organs:
        if spec.source not in ("pred", "nested") or not spec.organs:
            raise InputError(None, f"nested organ channels go with predicted organ channels "
                                   f"(pred:...), not {spec}")
        spec = ChannelSpec("nested", spec.organs, spec.encoding)
    return spec


def _check_train_numbers(epochs: int | None, iterations: int | None, workers: int | None,
                         spacing: Sequence[float] | None) -> None:
    """Reject a budget, worker count or spacing out of range (one clear line each)."""
    for label, value, least in (("epochs", epochs, 1), ("iterations", iterations, 1),
                                ("workers", workers, 0)):
        if value is not None and value < least:
            raise InputError(None, f"{label} {value}: must be at least {least}")
    if spacing is not None and (len(spacing) != 3 or min(spacing) <= 0):
        raise InputError(None, f"spacing {tuple(spacing)}: three positive values in mm")


def _organ_stages(stages: str | Sequence[str]) -> tuple[str, ...]:
    if not isinstance(stages, str):
        parts = tuple(stages)
    else:
        t = stages.strip().lower()
        parts = ORGAN_STAGES.get(t) or tuple(s.strip() for s in t.split(",") if s.strip())
    bad = [s for s in parts if s not in ("anchor", "nonanchor", "single")]
    if bad or not parts:
        raise InputError(None, f"unknown organ stage(s) {bad or [stages]}; use cascade, "
                               "single, all or anchor,nonanchor,single")
    return parts


# ---------------------------------------------------------------------- predict
def predict(inputs: PathLike | Sequence[PathLike], out: PathLike, model: PathLike, *,
            formats: str | Sequence[str] = "nifti", organs: PathLike | None = None,
            device: str = "cpu", folds: Sequence[int] | None = None, qc: bool = True,
            mirroring: bool | None = None, threads: int | None = None,
            stations: str | None = None, ray: str | None = None,
            on_case: Callable[[int, int, CaseResult], None] | None = None,
            progress: Progress = None) -> list[CaseResult]:
    """A trained model on CTs: organs, stations and the asked formats for each case.

    Args:
        inputs: CT files (NIfTI/NRRD/MHA), DICOM series folders, or folders holding several
            of those (one case each).
        out: output folder; one input CT writes straight into it, several into
            ``out/<case>/``.
        model: the trained model folder.
        formats: ``"nifti"``, ``"rtstruct"``, ``"seg"`` (comma-separated or a sequence;
            :data:`~deepstationing.predict.formats.FORMATS`); the DICOM ones need DICOM input.
        organs: a 22-organ map used instead of predicting organs (one input only).
        device: ``"cpu"`` or ``"cuda"``; folds: folds to ensemble (default: all).
        qc: check each prediction (verdict in the result, ``qc.json`` beside the outputs).
        mirroring, threads, stations: test-time mirroring, torch threads, station stage.
        ray: a Ray address (``"local"``, ``"auto"``, ``"ray://HOST:10001"``): one job per
            case on the cluster, the same files as without.
        on_case: called after each case with ``(index, total, result)``.

    Returns:
        One :class:`~deepstationing.predict.batch.CaseResult` per case, in order (a case
        that failed has ``ok`` False and its ``error``; the others are written).

    (The module's docstring has an example.)
    """
    from deepstationing.training.model import HOW_TO_TRAIN

    wanted = parse_predict_formats(formats)
    if model is None:
        raise InputError(None, f"no model given; {HOW_TO_TRAIN}")
    given = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    settings = PredictSettings(
        str(ModelFolder.open(model).root.resolve()),
        None if folds is None else tuple(int(f) for f in folds), wanted,
        None if organs is None else str(Path(organs).resolve()),
        device, mirroring, threads, stations, qc)
    cases = find_cases(given)
    single = len(cases) == 1 and len(given) == 1 and cases[0].path == Path(given[0])
    if ray:
        return predict_on_ray(settings, cases, out, ray, single_folder=single, on_case=on_case)
    return predict_local(settings, cases, out, single_folder=single, on_case=on_case,
                         progress=_say(progress))


# ---------------------------------------------------------------------- search
@dataclass
class SearchOutcome:
    """What :func:`search` found: the ranking (weights), or the ablation, and the sweep."""

    method: str
    out: Path
    #: ``(organ, weight, searched)`` best first (method ``"weights"``)
    ranked: list[tuple[str, float, bool]] = field(default_factory=list)
    #: the top-n organs as a ``--channels`` spec (method ``"weights"``)
    top_spec: str = ""
    #: ``{organ: mean DSC lost without it}`` and the baseline (method ``"ablation"``)
    drops: dict[str, float] = field(default_factory=dict)
    baseline: float | None = None
    agreement_with_weights: float | None = None
    #: the top-n sweep: ``[{"n", "mean_dsc", ...}]``
    sweep: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def search(cohort: Cohort | PathLike, fold: int, *, source: str = "pred",
           method: str = "weights", top: int = 6, sweep: str | Sequence[int] | None = None,
           config: str = "cpu", epochs: int | None = None, iterations: int | None = None,
           workdir: PathLike = DEFAULT_WORKDIR, model: PathLike | None = None,
           out: PathLike | None = None, device: str = "cpu", threads: int | None = 1,
           workers: int | None = None, verbose: bool = False,
           progress: Progress = None) -> SearchOutcome:
    """The key-organ search of ``fold`` (paper section 2.2), or its second opinion.

    Args:
        cohort: the cohort (folder or :class:`~deepstationing.data.cohort.Cohort`).
        fold: the held-out fold.
        source: the organ channels, ``"pred"`` (out-of-fold predictions, the paper) or
            ``"gt"``.
        method: ``"weights"`` (softmax channel weights learned with the network) or
            ``"ablation"`` (held-out DSC lost without each organ,
            :mod:`deepstationing.search.ablation`).
        top: organs in the returned ``top_spec``; sweep: also train CT + top-n for each n
            (``"3-21/3"``, ``"3,6,9"`` or a list; method ``"weights"``).
        config, epochs, iterations, workdir, model, device, threads, workers, verbose: as
            in :func:`train`. out: output folder (default ``WORKDIR/search/<cohort>-fold<K>``).
    """
    from deepstationing.organs.cascade import default_model_dir
    from deepstationing.search.ablation import run_ablation
    from deepstationing.search.ranking import top_spec
    from deepstationing.search.sweep import parse_sweep, run_search, run_sweep
    from deepstationing.training import TrainBudget, TrainOptions

    if method not in ("weights", "ablation"):
        raise InputError(None, f"search method {method!r}: use weights or ablation")
    if source not in ("pred", "gt"):
        raise InputError(None, f"search source {source!r}: use pred or gt")
    cohort = cohort if isinstance(cohort, Cohort) else Cohort(cohort)
    cohort.test_ids(fold)
    ns = (parse_sweep(sweep) if isinstance(sweep, str) else list(sweep)) if sweep else []
    opts = TrainOptions(workdir=workdir, config=config, budget=TrainBudget(epochs, iterations),
                        device=device, threads=threads, workers=workers, verbose=verbose,
                        progress=_say(progress))
    model_dir = Path(model or default_model_dir(opts.workspace, cohort, config))
    out_dir = Path(out or Path(workdir) / "search" / f"{cohort.root.name}-fold{fold}")
    if method == "ablation":
        res = run_ablation(cohort, fold, source=source, options=opts, model_dir=model_dir,
                           out_dir=out_dir)
        return SearchOutcome("ablation", out_dir, drops=res["drop"], baseline=res["baseline"],
                             agreement_with_weights=res.get("agreement_with_weights"),
                             files=[Path(res["file"])])
    result = run_search(cohort, fold, source=source, options=opts, model_dir=model_dir,
                        out_dir=out_dir)
    outcome = SearchOutcome(
        "weights", out_dir, [(r.organ, r.weight, r.searched) for r in result.ranked],
        top_spec(result.ranked, min(top, len(result.ranked)), source=source),
        files=[result.ranking_file, out_dir / "weights.png"])
    if ns:
        doc = run_sweep(cohort, fold, result.ranked, ns, source=source, options=opts,
                        model=result.model, out_dir=out_dir, progress=opts.say)
        outcome.sweep = doc["results"]
        outcome.files += [out_dir / f"sweep.{e}" for e in ("json", "md", "png")]
    return outcome
