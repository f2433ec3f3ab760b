"""The paper's protocol as jobs: resume, failures, the report, and the Ray path.

The protocol runs at the ``test`` scale (4 tiny phantom cases, 2 folds, one or two
iterations per network): the numbers mean nothing, the plumbing is what is checked —
every job runs, a finished job is never redone, the report's numbers are the jobs'
numbers, and the Ray executor runs the same jobs on a local Ray instance.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from deepstationing import schema
from deepstationing.evaluation.report import read_metrics_csv
from deepstationing.experiments import run_paper
from deepstationing.experiments.jobs import Job, JobStore, LocalExecutor, run_jobs
from deepstationing.experiments.paper import SCALES, build_jobs

# the anchor stage gets its own budget (as the demo's does): one more epoch than the others
TABLE1_ONLY = replace(SCALES["test"], ablations=False, single=False, sweep=(3, 6),
                      anchor_budget=(SCALES["test"].organ_budget[0] + 1,
                                     SCALES["test"].organ_budget[1]))


# ------------------------------------------------------------------ jobs
def test_failed_job_blocks_its_dependents_and_is_retried(tmp_path):
    store = JobStore(tmp_path)
    calls = []

    def task(job, folder):
        calls.append(job.id)
        if job.id == "b" and len([c for c in calls if c == "b"]) == 1:
            raise RuntimeError("disk on fire")
        (folder / "out.txt").write_text(job.id)
        return {"id": job.id}

    jobs = [Job("a", "t"), Job("b", "t", deps=("a",)), Job("c", "t", deps=("b",)),
            Job("d", "t")]
    first = run_jobs(jobs, store, LocalExecutor(task))
    assert first.done == ["a", "d"] and first.failed == {"b": "RuntimeError: disk on fire"}
    assert first.blocked == ["c"] and not first.ok
    status = store.status("b")
    assert status["state"] == "failed" and "disk on fire" in status["traceback"]
    second = run_jobs(jobs, store, LocalExecutor(task))  # a re-run retries only what is left
    assert second.skipped == ["a", "d"] and second.done == ["b", "c"] and second.ok
    assert calls == ["a", "b", "d", "b", "c"]


def test_graph_order_and_cycles():
    from deepstationing.experiments.jobs import topological

    jobs = build_jobs(SCALES["cpu"], [0, 1, 2, 3])
    seen = set()
    for job in topological(jobs):
        assert set(job.deps) <= seen, job.id
        seen.add(job.id)
    ids = {j.id for j in jobs}
    # Table 1, the sweep on fold 0, the six ablations on every fold
    for name in ("ct", "gt22", "pred22", "top6", "random6", "best6", "anchors", "clinician6",
                 "single-top6", "gt-top6"):
        assert {f"stations/{name}/fold{f}" for f in range(4)} <= ids
    assert {f"stations/top{n}/fold0" for n in (3, 9, 12, 15, 18, 21)} <= ids
    assert "stations/top9/fold1" not in ids
    with pytest.raises(ValueError, match="cycle"):
        topological([Job("x", "t", deps=("y",)), Job("y", "t", deps=("x",))])


# ------------------------------------------------------------------ the protocol
@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exp")
    lines = []
    summary = run_paper(tmp / "cohort", tmp / "out", TABLE1_ONLY, threads=1,
                        progress=lines.append, argv=["deepstationing", "experiment", "paper"])
    return tmp, summary, lines


def test_every_job_runs_and_the_report_is_written(experiment):
    tmp, summary, lines = experiment
    assert summary.ok, (summary.failed, summary.blocked)
    jobs = build_jobs(TABLE1_ONLY, [0, 1])
    assert sorted(summary.done) == sorted(j.id for j in jobs)
    assert any(re.match(r"\[\d+/\d+\] organs/anchor/fold0 done", line) for line in lines)
    for name in ("report.md", "report.html", "figures/table1_folds.png", "figures/topn.png"):
        assert (tmp / "out" / name).exists(), name
    html = (tmp / "out" / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="figures/' not in html  # self-contained


def test_report_numbers_are_the_jobs_numbers(experiment):
    tmp, _, _ = experiment
    store = JobStore(tmp / "out")
    report = (tmp / "out" / "report.md").read_text()
    for setting, title in (("ct", "CT only"), ("gt22", "+22 organ GT"),
                           ("top6", "+6 searched organ pred")):
        rows = []
        for fold in (0, 1):
            res = store.result(f"stations/{setting}/fold{fold}")
            rows += read_metrics_csv(store.folder(f"stations/{setting}/fold{fold}")
                                     / res["metrics"])
        table = report.split("### DSC (%)")[1].split("###")[0]
        header = [c.strip() for c in table.splitlines()[2].split("|")[1:-1]]
        for station in schema.STATIONS.keys:  # every cell, finite or not, is the jobs' number
            values = [r.dsc for r in rows if r.label == station and not np.isnan(r.dsc)]
            row = next(line for line in table.splitlines() if line.startswith(f"| {station} |"))
            cell = [c.strip() for c in row.split("|")[1:-1]][header.index(title)]
            expect = f"{100 * np.mean(values):.1f}" if values else "n/a"
            assert cell.startswith(expect), (setting, station, cell, expect)
    # each fold's top-6 came from that fold's own search
    for fold in (0, 1):
        ranking = store.result(f"search/pred/fold{fold}")["ranking"]
        spec = store.result(f"stations/top6/fold{fold}")["spec"]
        assert spec == "pred:" + ",".join(r["organ"] for r in ranking[:6])
    assert "holds in" in report and "zone accuracy" in report.lower()
    # every held-out prediction was checked for plausibility, and the report counts them
    qc = store.result("stations/ct/fold0")["qc"]
    assert sorted(q["case"] for q in qc) == sorted(
        r.case for r in read_metrics_csv(store.folder("stations/ct/fold0") / "metrics.csv")
        if r.label == "1L")
    assert all(q["verdict"] in ("ok", "check", "implausible") for q in qc)
    section = report.split("## Plausibility QC of the held-out predictions")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| CT only |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == str(2 * len(qc))  # both folds' cases
    assert sum(int(c) for c in cells[2:5]) == 2 * len(qc)


def test_held_out_cases_only(experiment):
    """The scored cases are the ones each fold's models held out when they were trained, as
    the model folder recorded it (not as the manifest says now), none they trained on; and a
    case they trained on is refused even when it is called held out."""
    from deepstationing.data.cohort import Case, Cohort
    from deepstationing.errors import InputError
    from deepstationing.stations.evaluation import evaluate_station_stage
    from deepstationing.training import ModelFolder

    tmp, _, _ = experiment
    store = JobStore(tmp / "out")
    model = ModelFolder.open(tmp / "out" / "models" / "paper")
    for fold in (0, 1):
        res = store.result(f"stations/pred22/fold{fold}")
        rows = read_metrics_csv(store.folder(f"stations/pred22/fold{fold}") / res["metrics"])
        scored = {r.case for r in rows}
        for stage in (res["stage"], "anchor", "nonanchor"):
            data = model.fold_record(stage, fold)["data"]
            assert scored == set(data["held_out"]), (stage, fold)
            assert not scored & set(data["train"]), (stage, fold)
    cohort = Cohort(tmp / "cohort")
    trained_on = cohort.case(cohort.train_ids(0)[0])
    with pytest.raises(InputError, match="is one of its training cases"):
        evaluate_station_stage(model, [Case(trained_on.id, trained_on.folder, 0)], 0,
                               stations=store.result("stations/pred22/fold0")["stage"])


def test_anchor_stage_trains_with_its_own_budget(experiment):
    from deepstationing.training import ModelFolder

    tmp, _, _ = experiment
    model = ModelFolder.open(tmp / "out" / "models" / "paper")
    for fold in (0, 1):
        assert model.fold_record("anchor", fold)["epochs"] == TABLE1_ONLY.anchor_budget[0]
        assert model.fold_record("nonanchor", fold)["epochs"] == TABLE1_ONLY.organ_budget[0]
    report = (tmp / "out" / "report.md").read_text()
    assert f"(anchor stage {TABLE1_ONLY.anchor_budget})" in report


def test_rerun_redoes_nothing(experiment):
    tmp, _, _ = experiment
    lines = []
    summary = run_paper(tmp / "cohort", tmp / "out", TABLE1_ONLY, threads=1,
                        progress=lines.append)
    assert summary.done == [] and summary.ok
    assert lines[-1].endswith("jobs already done (kept)")


def test_another_scale_in_the_same_folder_is_refused(experiment):
    from deepstationing.errors import InputError

    tmp, _, _ = experiment
    with pytest.raises(InputError, match="holds an experiment at scale"):
        run_paper(tmp / "cohort", tmp / "out", SCALES["test"], threads=1)


def test_ray_runs_the_same_jobs(experiment, tmp_path):
    """The Ray executor on a local Ray instance: organ jobs of both folds and their OOF job."""
    pytest.importorskip("ray")
    from deepstationing.experiments.paper import Context
    from deepstationing.experiments.runners import RayExecutor

    tmp, _, _ = experiment
    ctx = Context(str(tmp / "cohort"), str(tmp_path / "out"), TABLE1_ONLY, threads=1)
    jobs = [j for j in build_jobs(TABLE1_ONLY, [0, 1])
            if j.id.startswith("organs/anchor/") or j.id == "oof/anchor"]
    store = JobStore(tmp_path / "out")
    try:
        summary = run_jobs(jobs, store, RayExecutor(ctx.to_json(), "local", num_cpus=2))
    finally:
        import ray

        ray.shutdown()
    assert summary.ok and sorted(summary.done) == sorted(j.id for j in jobs)
    files = store.result("oof/anchor")["files"]
    assert sorted(files) == sorted(json.loads((tmp / "cohort" / "manifest.json").read_text())
                                   ["cases"][i]["id"] for i in range(4))
    for status in ("organs/anchor/fold0", "organs/anchor/fold1"):
        assert store.status(status)["host"]  # written by the Ray worker


def test_local_processes_run_the_same_jobs_two_at_a_time(experiment, tmp_path):
    """``--jobs 2``: the organ jobs of both folds run side by side in their own processes,
    then their OOF job; the results are the same files the in-process run made."""
    import time

    from deepstationing.experiments.paper import Context
    from deepstationing.experiments.runners import ProcessExecutor

    tmp, _, _ = experiment
    ctx = Context(str(tmp / "cohort"), str(tmp_path / "out"), TABLE1_ONLY, threads=1)
    jobs = [j for j in build_jobs(TABLE1_ONLY, [0, 1])
            if j.id.startswith("organs/anchor/") or j.id == "oof/anchor"]
    store = JobStore(tmp_path / "out")
    summary = run_jobs(jobs, store, ProcessExecutor(ctx.to_json(), jobs=2))
    assert summary.ok and sorted(summary.done) == sorted(j.id for j in jobs)
    folds = [store.status(f"organs/anchor/fold{f}") for f in (0, 1)]
    spans = [(time.mktime(time.strptime(s["started"], "%Y-%m-%d %H:%M:%S")),
              time.mktime(time.strptime(s["updated"], "%Y-%m-%d %H:%M:%S"))) for s in folds]
    assert spans[0][0] <= spans[1][1] and spans[1][0] <= spans[0][1]  # they overlapped
    assert sorted(store.result("oof/anchor")["files"]) == sorted(
        JobStore(tmp / "out").result("oof/anchor")["files"])


def test_demo_scale_trains_the_cascade_on_every_fold_and_stations_on_fold_0():
    jobs = build_jobs(SCALES["demo"], folds=[0, 1])
    ids = {j.id for j in jobs}
    assert {"organs/anchor/fold1", "organs/nonanchor/fold1", "stations/top6/fold0"} <= ids
    assert not [i for i in ids if i.startswith(("stations/", "search/")) and i.endswith("1")]
    assert next(j for j in jobs if j.id == "stations/rules/all").params["folds"] == [0]
    again = type(SCALES["demo"]).from_json(json.loads(json.dumps(SCALES["demo"].to_json())))
    assert again == SCALES["demo"] and again.cpu.learning_rate == 1e-2


def test_best_segmented_ranks_on_the_training_cases_only(tmp_path):
    """Ablation (2)'s six best-segmented organs of fold K come from fold K's training cases.
    Organs A are perfect on fold 0's cases and missed on fold 1's, organs B are at 90 %
    everywhere: fold 1 (training on fold 0's cases) must pick A, fold 0 must pick B. Ranked
    over every case (A at 50 %), both folds would pick B."""
    from deepstationing import schema
    from deepstationing.data.cohort import CohortWriter
    from deepstationing.evaluation.report import MetricRow
    from deepstationing.experiments.paper import best_segmented

    with CohortWriter(tmp_path / "c", generator="test", n_folds=2) as w:
        for cid in "abcdef":
            (w.case_folder(cid) / "ct.nii.gz").write_bytes(b"")
            w.add_case(cid)
        cohort = w.finish()
    organs = list(schema.ORGANS.keys)
    a, b = organs[:6], organs[6:12]
    fold0 = set(cohort.test_ids(0))

    def dsc(case: str, organ: str) -> float:
        if organ in a:
            return 1.0 if case in fold0 else 0.0
        return 0.9 if organ in b else 0.1

    rows = [MetricRow(c, o, dsc(c, o), 0, 0, 0) for c in cohort.case_ids for o in organs]
    best = best_segmented(rows, cohort)
    assert sorted(best["1"]) == sorted(a)
    assert sorted(best["0"]) == sorted(b)


def test_topn_table_gives_the_mean_and_spread_over_the_sweep_folds(tmp_path):
    """The report's Fig. 3b table: mean and standard deviation over the scale's sweep folds
    (a fold outside them is left out), and how many folds each row averages."""
    from deepstationing.experiments.report import _topn_lines

    settings = {"top3": {"per_fold": {0: 0.4, 1: 0.6}},
                "top6": {"per_fold": {0: 0.5, 1: 0.5, 7: 0.0}}}
    lines = _topn_lines(settings, replace(SCALES["bench"], sweep_folds=(0, 1)), tmp_path)
    assert "| 3 | 50.0 | 10.0 | 2 |" in lines
    assert "| 6 | 50.0 | 0.0 | 2 |" in lines
    assert (tmp_path / "topn.png").exists()
