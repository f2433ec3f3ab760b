"""Executors of an experiment's jobs: in this process, in a few local processes, or on Ray.

:class:`~deepstationing.experiments.jobs.LocalExecutor` runs the jobs one after the other.
:class:`ProcessExecutor` runs a few at a time on this machine (``--jobs N``).
:class:`RayExecutor` sends every job whose dependencies are done to a Ray cluster — one GPU
per training job when the cluster has GPUs, one CPU otherwise — and starts the next ones as
jobs finish. Workers write the job folders themselves, so the experiment's ``--out``
folder (and the cohort) must be on a file system every node of the cluster sees; files
that several jobs update are protected by locks (:mod:`deepstationing.data.locks`).

A clinic with several GPUs starts a Ray cluster (``ray start --head`` on one machine,
``ray start --address HEAD:6379`` on the others) and passes ``--ray auto`` (on a node of
the cluster) or ``--ray ray://HEAD:10001``; ``--ray local`` starts a private Ray instance on
this machine.

>>> import tempfile
>>> from deepstationing.experiments.jobs import LocalExecutor, run_jobs
>>> store = JobStore(tempfile.mkdtemp())
>>> jobs = [Job("a", "t"), Job("b", "t"), Job("c", "t", deps=("a", "b"))]
>>> started = []
>>> def submit(job):
...     started.append(job.id)
...     return job.id
>>> schedule(jobs, store, submit, lambda handles: handles[:1],
...          lambda h: (store.mark(Job(h, "t"), "done") or True, ""), lambda *a: None, slots=2)
>>> started
['a', 'b', 'c']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deepstationing.experiments.jobs import Job, JobStore, execute

__all__ = ["RayExecutor", "ProcessExecutor", "connect_ray", "schedule"]


def connect_ray(address: str, *, num_cpus: int | None = None) -> None:
    """Connect to (or, for ``"local"``, start) a Ray instance; idempotent."""
    try:
        import ray
    except ModuleNotFoundError:
        from deepstationing.errors import DeepStationingError

        raise DeepStationingError("--ray needs the Ray package: pip install "
                                  "'deepstationing[ray]' (or ray==2.60.0)") from None

    if ray.is_initialized():
        return
    kwargs = {"ignore_reinit_error": True, "include_dashboard": False,
              "log_to_driver": True}
    if address == "local":
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=address, **kwargs)


def _remote_job(context: dict, store_root: str, job: dict) -> tuple[bool, str]:
    """What a Ray worker runs: one job of the paper protocol (status written by the worker)."""
    from deepstationing.experiments.jobs import Job, JobStore, execute
    from deepstationing.experiments.paper import Context, run_task

    ctx = Context.from_json(context)
    store = JobStore(store_root)
    j = Job.from_json(job)
    return execute(lambda jj, folder: run_task(ctx, store, jj, folder), j, store)


def schedule(jobs: Sequence[Job], store: JobStore, submit: Callable[[Job], object],
             wait: Callable[[list], list], collect: Callable[[object], tuple[bool, str]],
             on_event: Callable[[str, Job, str], None], slots: int | None = None) -> None:
    """Run ``jobs`` as their dependencies finish: ``submit(job)`` starts one and returns a
    handle, ``wait(handles)`` returns the finished ones, ``collect(handle)`` its
    ``(ok, error)``; at most ``slots`` at a time (``None``: no limit)."""
    pending = list(jobs)
    failed: set[str] = set()
    running: dict = {}
    while pending or running:
        for job in list(pending):
            if slots is not None and len(running) >= slots:
                break
            if any(d in failed for d in job.deps):
                pending.remove(job)
                failed.add(job.id)
                on_event("blocked", job, "")
            elif all(store.is_done(d) for d in job.deps):
                pending.remove(job)
                running[submit(job)] = job
                on_event("start", job, "")
        if not running:
            if pending:  # dependencies outside this run that are not done
                for job in pending:
                    on_event("blocked", job, "")
                return
            break
        for handle in wait(list(running)):
            job = running.pop(handle)
            ok, error = collect(handle)
            if not ok:
                failed.add(job.id)
                if (store.status(job.id) or {}).get("state") != "failed":
                    store.mark(job, "failed", error=error)  # the worker died
            on_event("done" if ok else "failed", job, error)


class ProcessExecutor:
    """Runs up to ``jobs`` jobs at once, each in a fresh process of this machine.

    What ``--jobs N`` of ``experiment paper`` uses: on a machine with a few cores, two
    trainings with one thread each get more done than one training with two threads (and
    organ, station and search jobs that do not need each other run side by side). Each job
    runs in a new process (``spawn``), so nothing of one job's state leaks into the next.

    Args:
        context: the experiment's :class:`~deepstationing.experiments.paper.Context` as JSON.
        jobs: how many jobs run at the same time.
        remote: the function run per job (default: the paper protocol's).
    """

    def __init__(self, context: dict, jobs: int = 2, *, remote: Callable | None = None):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.context = context
        self.jobs = int(jobs)
        self.fn = remote or _remote_job

    def run(self, jobs: Sequence[Job], store: JobStore,
            on_event: Callable[[str, Job, str], None]) -> None:
        import concurrent.futures as cf
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(self.jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
            def collect(future) -> tuple[bool, str]:
                try:
                    return future.result()
                except Exception as exc:  # noqa: BLE001 - a worker died: record and go on
                    return False, f"{type(exc).__name__}: {exc}"

            schedule(jobs, store,
                     lambda job: pool.submit(self.fn, self.context, str(store.root),
                                             job.to_json()),
                     lambda handles: list(cf.wait(handles,
                                                  return_when=cf.FIRST_COMPLETED).done),
                     collect, on_event, slots=self.jobs)


class RayExecutor:
    """Runs jobs on a Ray cluster as their dependencies finish.

    Args:
        context: the experiment's :class:`~deepstationing.experiments.paper.Context` as JSON.
        address: Ray address (``local``, ``auto``, ``ray://host:10001``).
        num_cpus: CPUs of a ``local`` instance (default: all).
        remote: the function run per job (default: the paper protocol's).
    """

    def __init__(self, context: dict, address: str, *, num_cpus: int | None = None,
                 remote: Callable | None = None):
        connect_ray(address, num_cpus=num_cpus)
        import ray

        self.context = context
        self.ray = ray
        self.gpus = float(ray.cluster_resources().get("GPU", 0))
        self.fn = ray.remote(remote or _remote_job)

    def run(self, jobs: Sequence[Job], store: JobStore,
            on_event: Callable[[str, Job, str], None]) -> None:
        ray = self.ray

        def submit(job: Job):
            opts = {"num_gpus": 1} if job.gpu and self.gpus >= 1 else {"num_cpus": 1}
            return self.fn.options(**opts).remote(self.context, str(store.root), job.to_json())

        def collect(ref) -> tuple[bool, str]:
            try:
                return ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a worker died: record and go on
                return False, f"{type(exc).__name__}: {exc}"

        schedule(jobs, store, submit,
                 lambda refs: ray.wait(refs, num_returns=1)[0], collect, on_event)


def run_in_process(task, job: Job, store: JobStore) -> tuple[bool, str]:
    """One job here (used by tests of custom executors)."""
    return execute(task, job, store)
