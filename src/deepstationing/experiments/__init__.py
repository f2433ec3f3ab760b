"""Experiments: the paper's protocol as jobs, run here or on a Ray cluster, with a report.

* :mod:`.jobs` — jobs with a folder and a status file each; finished jobs are never redone;
* :mod:`.runners` — the Ray executor (the local one is in :mod:`.jobs`);
* :mod:`.paper` — the protocol (Table 1, sweep, ablations, organs, zones) and its scales;
* :mod:`.report` — ``report.md`` and a self-contained ``report.html``.

:func:`run_paper` is what ``deepstationing experiment paper`` calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deepstationing.experiments.jobs import Job, JobStore, LocalExecutor, RunSummary, run_jobs

__all__ = ["run_paper", "prepare_cohort", "Job", "JobStore", "RunSummary", "run_jobs"]


def prepare_cohort(path: str | os.PathLike, scale, progress: Callable[[str], None] | None = None):
    """The cohort at ``path``: opened if it exists, else a phantom cohort of ``scale``'s size."""
    from deepstationing.data.cohort import MANIFEST, Cohort
    from deepstationing.phantom import generate_cohort

    p = Path(path)
    if (p / MANIFEST).exists():
        return Cohort(p)
    if progress:
        progress(f"no cohort at {p}: generating {scale.cases} phantom cases "
                 f"({scale.preset} preset, {scale.n_folds} folds)")
    return generate_cohort(p, scale.cases, seed=scale.seed, preset=scale.preset,
                           spacing=scale.spacing, n_folds=scale.n_folds)


def _same_scale(old: dict | None, new: dict) -> bool:
    """Whether a recorded scale is ``new``; fields added since it was recorded count with
    their defaults (an experiment begun before an upgrade stays resumable).

    >>> from deepstationing.experiments.scales import SCALES
    >>> new = SCALES["bench"].to_json()
    >>> _same_scale({k: v for k, v in new.items() if k != "anchor_budget"}, new)
    True
    >>> _same_scale(SCALES["demo"].to_json(), new)
    False
    >>> _same_scale({**new, "description": "reworded"}, new)
    True
    """
    from deepstationing.experiments.scales import Scale

    if not old:
        return False
    try:
        return Scale.from_json(old) == Scale.from_json(new)
    except (TypeError, KeyError, ValueError):
        return old == new


def run_paper(cohort_dir: str | os.PathLike, out: str | os.PathLike, scale, *,
              device: str = "cpu", threads: int | None = None, workers: int | None = None,
              ray: str | None = None, ray_cpus: int | None = None, jobs: int = 1,
              verbose: bool = False,
              progress: Callable[[str], None] | None = None,
              argv: Sequence[str] = ()) -> RunSummary:
    """Run (or continue) the paper's protocol; writes ``OUT/report.md`` and ``report.html``."""
    from deepstationing.data.atomic import write_json_atomic
    from deepstationing.experiments.paper import (
        Context,
        build_jobs,
        experiment_record,
        run_task,
    )
    from deepstationing.training.cases import cohort_folds

    say = progress or (lambda m: None)
    cohort = prepare_cohort(cohort_dir, scale, say)
    folds = cohort_folds(cohort)
    ctx = Context(str(Path(cohort.root).resolve()), str(Path(out).resolve()), scale, device,
                  threads, workers, verbose, progress)
    store = JobStore(out)
    record_file = Path(out) / "experiment.json"
    import json

    old = json.loads(record_file.read_text()) if record_file.exists() else {}
    record = json.loads(json.dumps(experiment_record(ctx, folds, list(argv))))
    record["started"] = old.get("started", time.strftime("%Y-%m-%d %H:%M"))
    if old and not _same_scale(old.get("scale"), record["scale"]):
        from deepstationing.errors import InputError

        raise InputError(out, f"holds an experiment at scale {old['scale']['name']!r}; "
                              "use another --out folder for another scale")
    write_json_atomic(record, record_file)
    graph = build_jobs(scale, folds)
    if ray:
        from deepstationing.experiments.runners import RayExecutor

        executor = RayExecutor(ctx.to_json(), ray, num_cpus=ray_cpus)
        say(f"running {len(graph)} jobs on Ray ({ray})")
    elif jobs > 1:
        from deepstationing.experiments.runners import ProcessExecutor

        executor = ProcessExecutor(ctx.to_json(), jobs)
        say(f"running {len(graph)} jobs, {jobs} at a time")
    else:
        executor = LocalExecutor(lambda job, folder: run_task(ctx, store, job, folder))
        say(f"running {len(graph)} jobs in this process")
    summary = run_jobs(graph, store, executor, say)
    if not summary.ok:  # a partial report still shows what finished
        from deepstationing.experiments.report import write_report

        try:
            write_report(ctx, store)
        except Exception as exc:  # noqa: BLE001 - the failures are the news, not this
            say(f"could not write a partial report: {exc}")
    return summary
