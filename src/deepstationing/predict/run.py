"""One prediction run: typed settings, the local path and the Ray path, which share it.

:class:`PredictSettings` says what to run (model, folds, formats, a given organ map, device,
QC); :func:`predict_local` loads the model once and predicts cases in this process;
:func:`predict_on_ray` sends one job per case to a Ray cluster, where each job calls
:func:`predict_local` for its case with the same settings, so both paths write the same
files. A Ray job counts as finished only for the same model, settings and input
(:func:`job_params`): a case predicted with another model, or a changed CT, is predicted
again.

Examples
--------
>>> s = PredictSettings("/models/m", folds=(0,), formats=("nifti", "seg"))
>>> PredictSettings.from_json(s.to_json()) == s
True
>>> s.needs_dicom
True
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from deepstationing.data.image import read_image
from deepstationing.errors import DeepStationingError, InputError
from deepstationing.predict.batch import CaseInput, CaseResult, predict_cases
from deepstationing.predict.formats import FORMATS, write_outputs
from deepstationing.training.provenance import file_digest

__all__ = ["PredictSettings", "check_inputs", "predict_local", "predict_on_ray", "job_params"]

OnCase = Callable[[int, int, CaseResult], None] | None


@dataclass(frozen=True)
class PredictSettings:
    """What a prediction run uses; JSON-able, so a Ray worker gets it typed.

    Args:
        model: the trained model folder.
        folds: folds to ensemble (``None``: every fold the model holds).
        formats: output formats, names of :data:`~deepstationing.predict.formats.FORMATS`.
        organs: a 22-organ map to use instead of predicting organs (one input CT only).
        device: ``"cpu"`` or ``"cuda"``.
        mirroring: test-time mirroring (``None``: the model's default).
        threads: torch CPU threads (``None``: torch's choice).
        stations: which station stage (channel spec or folder name; ``None``: the only one).
        qc: check each prediction for plausibility and write ``qc.json``.
    """

    model: str
    folds: tuple[int, ...] | None = None
    formats: tuple[str, ...] = ("nifti",)
    organs: str | None = None
    device: str = "cpu"
    mirroring: bool | None = None
    threads: int | None = None
    stations: str | None = None
    qc: bool = True

    @property
    def needs_dicom(self) -> bool:
        return any(FORMATS[f].needs_dicom for f in self.formats)

    def to_json(self) -> dict:
        d = asdict(self)
        d["folds"] = None if self.folds is None else list(self.folds)
        d["formats"] = list(self.formats)
        return d

    @classmethod
    def from_json(cls, obj: dict) -> PredictSettings:
        folds = obj.get("folds")
        return cls(**{**obj, "folds": None if folds is None else tuple(int(f) for f in folds),
                      "formats": tuple(obj.get("formats", ("nifti",)))})


def check_inputs(settings: PredictSettings, cases: Sequence[CaseInput]) -> None:
    """One-line errors, before any model is loaded: DICOM formats need DICOM series
    folders; a given organ map goes with one input."""
    if settings.needs_dicom:
        names = ",".join(f for f in settings.formats if FORMATS[f].needs_dicom)
        for case in cases:
            if not case.path.is_dir():
                raise InputError(case.path, f"--format {names} needs a DICOM CT series folder "
                                            "as input (its UIDs are referenced)")
    if settings.organs is not None and len(cases) != 1:
        raise InputError(settings.organs, "a given organ map (--organs) goes with one input CT")


class _WithOrgans:
    """A parser that uses a given organ map instead of predicting organs."""

    def __init__(self, parser, organs):
        self.parser, self.organs_map = parser, organs

    def predict(self, ct, organs=None, progress=None, timings=None):
        return self.parser.predict(ct, self.organs_map, progress=progress, timings=timings)


def load_parser(settings: PredictSettings):
    """The model's cascade (organs given by ``settings.organs`` are used as they are)."""
    from deepstationing.stations.network import StationParser

    parser = StationParser(settings.model, None if settings.folds is None
                           else list(settings.folds), device=settings.device,
                           mirroring=settings.mirroring, threads=settings.threads,
                           stations=settings.stations)
    if settings.organs is not None:
        return _WithOrgans(parser, read_image(settings.organs, label=True))
    return parser


def predict_local(settings: PredictSettings, cases: Sequence[CaseInput],
                  out: str | os.PathLike, *, single_folder: bool = False,
                  on_case: OnCase = None,
                  progress: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Predict ``cases`` in this process with one model load (the inputs are checked
    first); each case into ``out/<case>/`` (``out`` itself when ``single_folder``)."""
    check_inputs(settings, cases)
    t0 = time.perf_counter()
    parser = load_parser(settings)
    if progress:
        progress(f"model {settings.model} loaded in {time.perf_counter() - t0:.1f} s; "
                 f"{len(cases)} case(s)")
    qc = None
    if settings.qc:
        from deepstationing.qc.run import QcRunner

        qc = QcRunner(settings.model, None if settings.folds is None else list(settings.folds))

    def write(case, folder, organs, stations):
        return write_outputs(settings.formats, case.path, folder, organs, stations)

    return predict_cases(parser, cases, out, write=write, single_folder=single_folder,
                         on_case=on_case, qc=qc)


def input_stamp(path: Path) -> str:
    """A fingerprint of an input: the SHA-256 of a file; for a folder (a DICOM series) of
    its files' names, sizes and modification times."""
    if path.is_file():
        return file_digest(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def job_params(settings: PredictSettings, case: CaseInput, single_folder: bool = False) -> dict:
    """A Ray job's parameters: the case, its input's fingerprint, the settings and the
    model's record (a retrained or another model is another job)."""
    record = Path(settings.model) / "deepstationing_model.json"
    return {"name": case.name, "path": str(case.path.resolve()),
            "input": input_stamp(case.path), "settings": settings.to_json(),
            "model_record": file_digest(record) if record.exists() else None,
            "organs": file_digest(settings.organs) if settings.organs else None,
            "single_folder": bool(single_folder)}


def _remote_case(context: dict, store_root: str, job: dict) -> tuple[bool, str]:
    """What a Ray worker runs for one case: :func:`predict_local` with the job's settings."""
    from deepstationing.experiments.jobs import Job, JobStore, execute

    j = Job.from_json(job)

    def task(jj: Job, folder: Path) -> dict:
        settings = PredictSettings.from_json(jj.params["settings"])
        case = CaseInput(jj.params["name"], Path(jj.params["path"]))
        r = predict_local(settings, [case], context["out"],
                          single_folder=bool(jj.params.get("single_folder")))[0]
        if not r.ok:
            raise DeepStationingError(r.error)
        return {"seconds": r.seconds, "outputs": r.outputs, "timings": r.timings,
                "stations_found": r.stations_found, "qc": r.qc}

    return execute(task, j, JobStore(store_root))


def predict_on_ray(settings: PredictSettings, cases: Sequence[CaseInput],
                   out: str | os.PathLike, address: str, *, single_folder: bool = False,
                   on_case: OnCase = None, num_cpus: int | None = None) -> list[CaseResult]:
    """:func:`predict_local` on a Ray cluster at ``address`` (``"local"``, ``"auto"``,
    ``"ray://HOST:10001"``): one job per case (``single_folder``: one case, written straight
    into ``out``), statuses in ``out/jobs/cases/<case>/``; a case
    finished with the same model, settings and input is not redone. The driver loads no
    model."""
    from deepstationing.experiments.jobs import Job, JobStore, run_jobs
    from deepstationing.experiments.runners import RayExecutor

    check_inputs(settings, cases)
    out = Path(out).resolve()
    gpu = settings.device == "cuda"
    if single_folder and len(cases) != 1:
        raise ValueError("single_folder goes with one case")
    jobs = [Job(f"cases/{c.name}", "predict_case", job_params(settings, c, single_folder),
                gpu=gpu) for c in cases]
    store = JobStore(out)
    executor = RayExecutor({"out": str(out)}, address, remote=_remote_case,
                           **({} if num_cpus is None else {"num_cpus": num_cpus}))
    run_jobs(jobs, store, executor)
    results = []
    for i, c in enumerate(cases, 1):
        st = store.status(f"cases/{c.name}") or {}
        res = st.get("result", {})
        r = CaseResult(c.name, st.get("state") == "done", float(res.get("seconds", 0.0)),
                       list(res.get("outputs", [])), st.get("error", ""),
                       dict(res.get("timings", {})), int(res.get("stations_found", 0)),
                       res.get("qc"), str(out if single_folder else out / c.name))
        results.append(r)
        if on_case:
            on_case(i, len(cases), r)
    return results
