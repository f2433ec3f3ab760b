"""The paper's protocol as a graph of jobs: Table 1, the top-n sweep, ablations, organs, zones.

Patient-level cross-validation with the cohort manifest's folds. Every number comes from a
fold's *held-out* cases, predicted with that fold's models only (station stage and organ
cascade), never with the ensemble of all folds that ``deepstationing predict`` uses.

Settings (paper section 3; ``OUT/jobs/stations/<setting>/fold<K>/``):

=================  ==========================================================================
``ct``             CT only
``gt22``           CT + the 22 ground-truth organs
``pred22``         CT + the 22 organs predicted by the stratified cascade (out-of-fold)
``top6``           CT + the top-6 organs of the key-organ search over predicted organs,
                   searched on the same fold's training cases
``rules``          the margin rules on the cascade's predicted organs (no training)
``top<n>``         the top-n sweep (Fig. 3b)
``random6``        ablation 1: the paper's random six (bcv_l, pulmonary_vein, ijv_r, heart,
                   spine, trachea)
``best6``          ablation 2: the six organs the cascade segments best on the fold's
                   training cases (their out-of-fold organ DSC)
``anchors``        ablation 3: the 11 anchor organs
``clinician6``     ablation 4: trachea, aortic arch, spine, lungs R+L, descending aorta
``single-top6``    ablation 5: top-6 searched over the single network's organs
``gt-top6``        ablation 6: top-6 searched over ground-truth organs
=================  ==========================================================================

Organ segmentation (stratified cascade vs single network, anchors vs non-anchors) is scored
on the out-of-fold predictions, which are held-out predictions by construction. Zone
accuracy counts the phantom's lymph nodes that lie in a predicted station of their zone.

Scales (:data:`SCALES`): ``demo`` (a reduced protocol that shows every Table 1 setting, the
main job of ``scripts/demo.sh``, minutes on a laptop), ``cpu`` (the whole protocol on the
small phantom, hours on a CPU), ``full`` (the paper's budgets with nnU-Net's own
configuration, for GPUs).

Examples
--------
>>> jobs = build_jobs(SCALES["demo"], folds=[0, 1])
>>> [j.id for j in jobs][:3]
['organs/anchor/fold0', 'organs/anchor/fold1', 'oof/anchor']
>>> sorted({j.id.split("/")[1] for j in jobs if j.id.startswith("stations/")})
['ct', 'gt22', 'pred22', 'rules', 'top6']
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing import schema
from deepstationing.experiments.jobs import Job, JobStore
from deepstationing.experiments.scales import (
    ABLATIONS,
    CLINICIAN6,
    PAPER_RANDOM6,
    SCALES,
    TABLE1,
    Scale,
)

__all__ = ["Scale", "SCALES", "Context", "build_jobs", "run_task", "TABLE1", "ABLATIONS",
           "PAPER_RANDOM6", "CLINICIAN6"]

@dataclass
class Context:
    """Where an experiment lives and how its jobs train (JSON-able, sent to Ray workers)."""

    cohort: str
    out: str
    scale: Scale
    device: str = "cpu"
    threads: int | None = None
    workers: int | None = None
    verbose: bool = False
    progress: Callable[[str], None] | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Path:
        return Path(self.out) / "runs"

    @property
    def model_dir(self) -> Path:
        return Path(self.out) / "models" / "paper"

    def options(self, budget: tuple[int, int], kind: str = "stations"):
        """Training options of ``"organs"`` or ``"stations"`` stages (network and grid)."""
        from deepstationing.training import TrainBudget, TrainOptions

        return TrainOptions(workdir=self.workspace, config=self.scale.config,
                            cpu=self.scale.cpu_for(kind), budget=TrainBudget(*budget),
                            device=self.device, threads=self.threads, workers=self.workers,
                            spacing=self.scale.spacing_for(kind), verbose=self.verbose,
                            progress=self.progress or _stderr)

    def to_json(self) -> dict:
        return {"cohort": self.cohort, "out": self.out, "scale": self.scale.to_json(),
                "device": self.device, "threads": self.threads, "workers": self.workers,
                "verbose": self.verbose}

    @classmethod
    def from_json(cls, obj: dict, progress: Callable[[str], None] | None = None) -> Context:
        return cls(obj["cohort"], obj["out"], Scale.from_json(obj["scale"]), obj["device"],
                   obj["threads"], obj["workers"], obj.get("verbose", False), progress)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the graph
def build_jobs(scale: Scale, folds: list[int]) -> list[Job]:
    """The protocol's jobs for a cohort with ``folds`` (every fold is evaluated)."""
    jobs: list[Job] = []
    add = jobs.append
    for role in ("anchor",):
        for f in folds:
            add(Job(f"organs/{role}/fold{f}", "train_organ", {"role": role, "fold": f},
                    gpu=True))
    add(Job("oof/anchor", "oof", {"stages": ["anchor"]},
            tuple(f"organs/anchor/fold{f}" for f in folds)))
    for f in folds:
        add(Job(f"organs/nonanchor/fold{f}", "train_organ", {"role": "nonanchor", "fold": f},
                ("oof/anchor",), gpu=True))
    add(Job("oof/cascade", "oof", {"stages": ["anchor", "nonanchor"]},
            tuple(f"organs/nonanchor/fold{f}" for f in folds)))
    organ_deps = ["oof/cascade"]
    if scale.single:
        for f in folds:
            add(Job(f"organs/single/fold{f}", "train_organ", {"role": "single", "fold": f},
                    gpu=True))
        add(Job("oof/single", "oof", {"stages": ["single"]},
                tuple(f"organs/single/fold{f}" for f in folds)))
        organ_deps.append("oof/single")
    add(Job("eval/organs", "eval_organs", {"single": scale.single}, tuple(organ_deps)))
    station_folds = [f for f in folds if scale.station_folds is None or f in scale.station_folds]
    add(Job("stations/rules/all", "rules", {"folds": station_folds}, ("oof/cascade",)))

    def station(name: str, fold: int, spec: str | None = None, search: str | None = None,
                n: int = 6, deps: tuple[str, ...] = ()) -> None:
        params = {"setting": name, "fold": fold, "spec": spec, "search": search, "n": n}
        add(Job(f"stations/{name}/fold{fold}", "station", params, deps, gpu=True))

    searches = [("pred", "oof/cascade")]
    if scale.ablations:
        searches += [("gt", None), ("single", "oof/single")]
    for f in station_folds:
        for source, dep in searches:
            add(Job(f"search/{source}/fold{f}", "search", {"source": source, "fold": f},
                    (dep,) if dep else (), gpu=True))
        station("ct", f, "none")
        station("gt22", f, "gt:all")
        station("pred22", f, "pred:all", deps=("oof/cascade",))
        station("top6", f, search=f"search/pred/fold{f}", deps=(f"search/pred/fold{f}",))
        if f in scale.sweep_folds:
            for n in scale.sweep:
                if n != 6:
                    station(f"top{n}", f, search=f"search/pred/fold{f}", n=n,
                            deps=(f"search/pred/fold{f}",))
        if scale.ablations:
            station("random6", f, "pred:" + ",".join(PAPER_RANDOM6), deps=("oof/cascade",))
            station("best6", f, search="eval/organs", deps=("eval/organs", "oof/cascade"))
            station("anchors", f, "pred:anchors", deps=("oof/cascade",))
            station("clinician6", f, "pred:" + ",".join(CLINICIAN6), deps=("oof/cascade",))
            station("single-top6", f, search=f"search/single/fold{f}",
                    deps=(f"search/single/fold{f}",))
            station("gt-top6", f, search=f"search/gt/fold{f}", deps=(f"search/gt/fold{f}",))
    add(Job("report", "report", {}, tuple(j.id for j in jobs)))
    return jobs


# ---------------------------------------------------------------------- tasks
def run_task(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    """Run one job of the protocol (the function every executor calls)."""
    fn = _TASKS[job.task]
    return fn(ctx, store, job, folder)


def _cohort(ctx: Context):
    from deepstationing.data.cohort import Cohort

    return Cohort(ctx.cohort)


def _model(ctx: Context):
    from deepstationing.training import ModelFolder

    return ModelFolder.open(ctx.model_dir)


def task_train_organ(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.organs.cascade import train_organs

    role, fold = job.params["role"], int(job.params["fold"])
    model = train_organs(_cohort(ctx), fold,
                         options=ctx.options(ctx.scale.organ_budget_for(role), "organs"),
                         model_dir=ctx.model_dir, stages=(role,), anchor_source="pred")
    return {"role": role, "fold": fold, "record": model.fold_record(role, fold)}


def task_oof(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.organs.cascade import organ_oof_predictions

    stages = tuple(job.params["stages"])
    files = organ_oof_predictions(_cohort(ctx), _model(ctx), stages,
                                  ctx.options(ctx.scale.organ_budget, "organs"))
    return {"stages": list(stages), "files": {c: [str(p), f] for c, (p, f) in files.items()}}


def _organ_rows(ctx: Context, store: JobStore, oof_job: str) -> list:
    from deepstationing.data.image import read_image
    from deepstationing.evaluation.metrics import label_map_metrics
    from deepstationing.evaluation.report import rows_for_case

    cohort = _cohort(ctx)
    rows = []
    for case_id, (path, _fold) in store.result(oof_job)["files"].items():
        truth = read_image(cohort.case(case_id).organs, label=True)
        pred = read_image(path, label=True)
        metrics = label_map_metrics(truth.array, pred.array, truth.array_spacing,
                                    schema.ORGANS.ids)
        rows += rows_for_case(case_id, metrics, "organs")
    return rows


def task_eval_organs(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.evaluation.report import write_metrics_csv

    out, cascade_rows = {}, []
    sources = [("cascade", "oof/cascade")] + ([("single", "oof/single")]
                                              if job.params.get("single") else [])
    for name, oof_job in sources:
        rows = _organ_rows(ctx, store, oof_job)
        cascade_rows = rows if name == "cascade" else cascade_rows
        write_metrics_csv(rows, folder / f"organs_{name}.csv")
        per = {k: mean_dsc(r for r in rows if r.label == k) for k in schema.ORGANS.keys}
        out[name] = {"per_organ": per,
                     "anchors": mean_dsc(r for r in rows if r.label in schema.ANCHOR_ORGANS),
                     "non_anchors": mean_dsc(r for r in rows
                                             if r.label in schema.NON_ANCHOR_ORGANS),
                     "all": mean_dsc(rows), "csv": f"organs_{name}.csv"}
    out["best6"] = best_segmented(cascade_rows, _cohort(ctx))
    return out


def best_segmented(rows: list, cohort, n: int = 6) -> dict[str, list[str]]:
    """Per fold ``K``, the ``n`` organs the cascade segments best on fold ``K``'s *training*
    cases (their out-of-fold predictions): ablation 2 never looks at the fold it reports."""
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.training.cases import cohort_folds

    out = {}
    for k in cohort_folds(cohort):
        train = set(cohort.train_ids(k))
        per = {o: mean_dsc(r for r in rows if r.label == o and r.case in train)
               for o in schema.ORGANS.keys}
        out[str(k)] = sorted(schema.ORGANS.keys,
                             key=lambda o: -(per[o] if per[o] == per[o] else -1.0))[:n]
    return out


def _spec_of(ctx: Context, store: JobStore, job: Job) -> str:
    p = job.params
    if p.get("spec"):
        return p["spec"]
    source_job = p["search"]
    result = store.result(source_job)
    if source_job == "eval/organs":
        return "pred:" + ",".join(result["best6"][str(int(p["fold"]))])
    from deepstationing.search.ranking import RankedOrgan, top_spec

    ranked = [RankedOrgan(r["organ"], r["weight"], r["rank"]) for r in result["ranking"]]
    return top_spec(ranked, int(p["n"]), source=result["source"])


def _zones(case, stations_img) -> list[dict]:
    from deepstationing.data.image import read_image
    from deepstationing.evaluation.zones import node_zone_results

    if not case.has("nodes"):
        return []
    results = node_zone_results(case.nodes_list(), read_image(case.nodes, label=True),
                                stations_img)
    return [{"case": case.id, "node": r.node, "station": r.station, "zone": r.zone,
             "predicted_station": r.predicted_station, "predicted_zone": r.predicted_zone,
             "correct": r.correct} for r in results]


def task_station(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.backbone.channels import ChannelSpec
    from deepstationing.data.image import write_image
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.evaluation.report import write_metrics_csv
    from deepstationing.stations.evaluation import evaluate_station_stage
    from deepstationing.stations.network import train_stations

    cohort = _cohort(ctx)
    fold = int(job.params["fold"])
    spec = ChannelSpec.parse(_spec_of(ctx, store, job))
    model = train_stations(cohort, fold, channels=spec,
                           options=ctx.options(ctx.scale.station_budget),
                           model_dir=ctx.model_dir)
    test = [cohort.case(c) for c in cohort.test_ids(fold)]
    zones: list[dict] = []
    saved: dict[str, str] = {}
    qc: list[dict] = []
    from deepstationing.data.image import read_image
    from deepstationing.qc.run import QcRunner

    checker = QcRunner(ctx.model_dir, [fold])  # plausibility of each held-out prediction

    def keep(case, organs, stations) -> None:
        zones.extend(_zones(case, stations))
        report = checker.check(read_image(case.ct), organs, stations, ct_path=case.ct)
        qc.append({"case": case.id, "verdict": report.verdict,
                   "fired": [f.name for f in report.fired], "line": report.line()})
        if len(saved) < 2:
            write_image(stations, folder / f"{case.id}_stations.nii.gz")
            saved[case.id] = f"{case.id}_stations.nii.gz"

    organs = "gt" if spec.source == "gt" else "model"
    rows = evaluate_station_stage(_model(ctx), test, fold, stations=str(spec), organs=organs,
                                  device=ctx.device, threads=ctx.threads, keep=keep)
    write_metrics_csv(rows, folder / "metrics.csv")
    folder_name = model.station_stage(str(spec))
    return {"setting": job.params["setting"], "fold": fold, "spec": str(spec),
            "mean_dsc": mean_dsc(rows), "metrics": "metrics.csv", "zones": zones,
            "saved": saved, "stage": folder_name, "qc": qc,
            "record": _model(ctx).fold_record(folder_name, fold)}


def task_rules(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.data.image import read_image
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.evaluation.report import write_metrics_csv
    from deepstationing.rules.evaluation import evaluate_rules
    from deepstationing.rules.inference import rule_stations

    cohort = _cohort(ctx)
    files = store.result("oof/cascade")["files"]
    cases = [cohort.case(c) for f in job.params["folds"] for c in cohort.test_ids(int(f))]
    organ_maps = {c.id: read_image(files[c.id][0], label=True) for c in cases}
    rows = evaluate_rules(cases, organ_maps)
    write_metrics_csv(rows, folder / "metrics.csv")
    zones = []
    for case in cases:
        zones += _zones(case, rule_stations(organ_maps[case.id]).stations)
    return {"setting": "rules", "mean_dsc": mean_dsc(rows), "metrics": "metrics.csv",
            "zones": zones}


def task_search(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.search.sweep import run_search

    source, fold = job.params["source"], int(job.params["fold"])
    result = run_search(_cohort(ctx), fold, source=source,
                        options=ctx.options(ctx.scale.search_budget),
                        model_dir=ctx.model_dir, out_dir=folder)
    return {"source": source, "fold": fold,
            "ranking": [{"organ": r.organ, "weight": r.weight, "rank": r.rank}
                        for r in result.ranked],
            "ranking_file": "ranking.json", "weights_png": "weights.png"}


def task_report(ctx: Context, store: JobStore, job: Job, folder: Path) -> dict:
    from deepstationing.experiments.report import write_report

    paths = write_report(ctx, store)
    return {k: str(v) for k, v in paths.items()}


_TASKS = {"train_organ": task_train_organ, "oof": task_oof, "eval_organs": task_eval_organs,
          "station": task_station, "rules": task_rules, "search": task_search,
          "report": task_report}


def experiment_record(ctx: Context, folds: list[int], argv: list[str]) -> dict:
    """What the report states about the run: command, versions, scale, machine."""
    import platform
    from importlib.metadata import version

    import nnunetv2  # noqa: F401 - its version below
    import torch

    from deepstationing import __version__

    return {"command": " ".join(argv), "deepstationing": __version__,
            "nnunetv2": version("nnunetv2"), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.node(),
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "scale": ctx.scale.to_json(), "folds": folds, "device": ctx.device,
            "cohort": ctx.cohort}


def save_json(obj: dict, path: Path) -> None:
    from deepstationing.data.atomic import write_json_atomic

    write_json_atomic(json.loads(json.dumps(obj)), path)
