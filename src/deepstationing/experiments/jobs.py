"""Jobs of an experiment: a folder and a status file each; finished jobs are never redone.

An experiment is a graph of :class:`Job` s (train a stage on a fold, compute out-of-fold
channels, evaluate a setting, write the report). Each job has its own folder under
``OUT/jobs/<job id>/`` holding ``status.json`` and its results; :class:`JobStore` reads and
writes them atomically. :func:`run_jobs` runs a graph in dependency order with an executor
(:mod:`deepstationing.experiments.runners`: in this process, or on a Ray cluster): a job
whose status is ``done`` is skipped, so an interrupted experiment continues where it
stopped; a job that fails is recorded as ``failed`` with its error, the jobs that depend on
it are not started, and the others still run.

Examples
--------
>>> import tempfile
>>> store = JobStore(tempfile.mkdtemp())
>>> jobs = [Job("a", "echo", {"x": 1}), Job("b", "echo", {"x": 2}, deps=("a",))]
>>> def run(job, folder):
...     return {"twice": 2 * job.params["x"]}
>>> summary = run_jobs(jobs, store, LocalExecutor(run))
>>> summary.done, store.result("b")
(['a', 'b'], {'twice': 4})
>>> run_jobs(jobs, store, LocalExecutor(run)).skipped     # finished: never redone
['a', 'b']
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing.data.atomic import write_json_atomic

__all__ = ["Job", "JobStore", "RunSummary", "run_jobs", "LocalExecutor", "topological"]


@dataclass(frozen=True)
class Job:
    """One unit of an experiment.

    Attributes:
        id: unique id, also its folder (``organs/anchor/fold0``).
        task: name of the task function that runs it.
        params: JSON-able parameters of the task.
        deps: ids of the jobs that must be done first.
        gpu: whether it trains a network (one GPU per job on a Ray cluster with GPUs).
    """

    id: str
    task: str
    params: dict = field(default_factory=dict, hash=False)
    deps: tuple[str, ...] = ()
    gpu: bool = False

    def to_json(self) -> dict:
        return {"id": self.id, "task": self.task, "params": self.params,
                "deps": list(self.deps), "gpu": self.gpu}

    @classmethod
    def from_json(cls, obj: dict) -> Job:
        return cls(obj["id"], obj["task"], dict(obj["params"]), tuple(obj["deps"]),
                   bool(obj.get("gpu", False)))


class JobStore:
    """The ``jobs/`` folder of an experiment: one folder and ``status.json`` per job."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def status(self, job_id: str) -> dict | None:
        p = self.folder(job_id) / "status.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def is_done(self, job_id: str, params: dict | None = None) -> bool:
        """Whether the job finished; with ``params``, finished *with these parameters*
        (a job whose definition changed, e.g. a prediction with another model, is not done)."""
        s = self.status(job_id)
        if not (s and s.get("state") == "done"):
            return False
        if params is None:
            return True
        done_with = (s.get("job") or {}).get("params")
        return json.loads(json.dumps(params, sort_keys=True)) == done_with

    def result(self, job_id: str) -> dict:
        s = self.status(job_id)
        if not s or s.get("state") != "done":
            raise KeyError(f"job {job_id} is not done")
        return s.get("result", {})

    def mark(self, job: Job, state: str, **fields) -> None:
        old = self.status(job.id) or {}
        write_json_atomic({**old, "job": job.to_json(), "state": state,
                           "updated": time.strftime("%Y-%m-%d %H:%M:%S"), **fields},
                          self.folder(job.id) / "status.json")


def topological(jobs: Sequence[Job]) -> list[Job]:
    """Jobs ordered so that every job comes after its dependencies (stable otherwise)."""
    by_id = {j.id: j for j in jobs}
    missing = {d for j in jobs for d in j.deps if d not in by_id}
    if missing:
        raise ValueError(f"jobs depend on unknown jobs: {sorted(missing)}")
    order: list[Job] = []
    state: dict[str, int] = {}

    def visit(j: Job, path: tuple[str, ...]) -> None:
        if state.get(j.id) == 2:
            return
        if state.get(j.id) == 1:
            raise ValueError(f"dependency cycle: {' -> '.join(path + (j.id,))}")
        state[j.id] = 1
        for d in j.deps:
            visit(by_id[d], path + (j.id,))
        state[j.id] = 2
        order.append(j)

    for j in jobs:
        visit(j, ())
    return order


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


Task = Callable[[Job, Path], dict]


def execute(task: Task, job: Job, store: JobStore) -> tuple[bool, str]:
    """Run one job with ``task``, recording its status; ``(ok, error line)``."""
    folder = store.folder(job.id)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    store.mark(job, "running", started=time.strftime("%Y-%m-%d %H:%M:%S"), host=os.uname()[1])
    try:
        result = task(job, folder)
    except Exception as exc:  # noqa: BLE001 - recorded, the experiment goes on
        store.mark(job, "failed", seconds=round(time.time() - t0, 1),
                   error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return False, f"{type(exc).__name__}: {exc}"
    store.mark(job, "done", seconds=round(time.time() - t0, 1), result=result or {})
    return True, ""


class LocalExecutor:
    """Runs jobs one after the other in this process (in dependency order)."""

    def __init__(self, task: Task):
        self.task = task

    def run(self, jobs: Sequence[Job], store: JobStore,
            on_event: Callable[[str, Job, str], None]) -> None:
        failed: set[str] = set()
        for job in jobs:  # topological order
            if any(d in failed for d in job.deps):
                failed.add(job.id)
                on_event("blocked", job, "")
                continue
            on_event("start", job, "")
            ok, error = execute(self.task, job, store)
            if not ok:
                failed.add(job.id)
            on_event("done" if ok else "failed", job, error)


def run_jobs(jobs: Sequence[Job], store: JobStore, executor,
             progress: Callable[[str], None] | None = None) -> RunSummary:
    """Run the graph: skip finished jobs, run the rest in dependency order with ``executor``.

    ``executor.run(jobs, store, on_event)`` gets the unfinished jobs in topological order;
    it must start a job only when its dependencies are done, and report ``start``,
    ``done``, ``failed`` (with the error) or ``blocked`` (a dependency failed) per job.
    """
    say = progress or (lambda m: None)
    ordered = topological(jobs)
    summary = RunSummary()
    todo = []
    for j in ordered:
        if store.is_done(j.id, j.params):
            summary.skipped.append(j.id)
        else:
            todo.append(j)
    total = len(ordered)
    if summary.skipped:
        say(f"{len(summary.skipped)} of {total} jobs already done (kept)")
    count = [len(summary.skipped)]
    t_start = time.time()

    def on_event(kind: str, job: Job, error: str) -> None:
        if kind == "start":
            say(f"[{count[0] + 1}/{total}] {job.id} ...")
            return
        count[0] += 1
        if kind == "done":
            took = (store.status(job.id) or {}).get("seconds", 0.0)
            summary.done.append(job.id)
            say(f"[{count[0]}/{total}] {job.id} done ({took:.0f} s; "
                f"{(time.time() - t_start) / 60:.1f} min so far)")
        elif kind == "blocked":
            summary.blocked.append(job.id)
            say(f"[{count[0]}/{total}] {job.id} not run: a job it needs failed")
        else:
            summary.failed[job.id] = error
            say(f"[{count[0]}/{total}] {job.id} FAILED: {error}")

    if todo:
        executor.run(todo, store, on_event)
    return summary
