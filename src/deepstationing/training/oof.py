"""Out-of-fold channel predictions: each training case's channels from a model that never saw it.

A stage trained on *predicted* organ channels must see, for each training case, what it
will see at test time: a prediction by a model that never trained on that case. In a
4-fold split case ``c`` of fold ``f`` is held out by the fold-``f`` model only, so its
channels come from the fold-``f`` model of the earlier stage — for every training fold
``K`` (the fold-``K`` test cases also use the fold-``K`` model, which held them out). Hence
training fold ``K`` of a later stage on predicted channels needs the earlier stage on *all*
folds (:func:`deepstationing.training.fold.ensure_folds`).

Predictions are cached under ``WORKDIR/predictions/<model>/<stages>/`` with
``provenance.json`` recording, per case, the SHA-256 of its CT, the fold and the
checkpoints used: a changed CT or a retrained checkpoint invalidates the cache. Before a
fold model predicts a case, its record must show that it held that very CT out
(:func:`~deepstationing.training.provenance.check_held_out`).

Examples
--------
>>> checkpoint_stamp(Path(__file__))[0] > 0
True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from deepstationing.data.atomic import write_json_atomic
from deepstationing.data.cohort import Cohort
from deepstationing.data.image import Image, read_image, write_image
from deepstationing.data.locks import file_lock
from deepstationing.training.fold import model_key
from deepstationing.training.model import ModelFolder
from deepstationing.training.options import TrainOptions
from deepstationing.training.provenance import check_held_out, file_digest

__all__ = ["oof_predictions", "checkpoint_stamp", "Predictor"]


class Predictor(Protocol):
    def predict(self, ct: Image) -> Image: ...


def checkpoint_stamp(p: Path) -> list:
    """Size and modification time of a file (a retrained checkpoint changes them)."""
    st = Path(p).stat()
    return [st.st_size, int(st.st_mtime_ns)]


def oof_predictions(cohort: Cohort, model: ModelFolder, folders: Sequence[str],
                    predictor: Callable[[int], Predictor],
                    options: TrainOptions) -> dict[str, tuple[Path, int]]:
    """Out-of-fold predictions for every case of ``cohort``: ``{case: (file, fold)}``.

    Args:
        cohort: the cases (each with a fold).
        model: the model whose stages (``folders``, all folds trained) make the predictions.
        folders: the stages a prediction runs through (its cache key and provenance).
        predictor: ``predictor(fold)`` returns an object whose ``predict(ct)`` gives the
            label map of a CT with the fold-``fold`` models only.
        options: workspace and progress.
    """
    tag = "+".join(folders)
    out_dir = options.workspace.predictions / f"{model.root.name}-{model_key(model)}" / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    prov_file = out_dir / "provenance.json"
    with file_lock(prov_file):  # one job predicts; others wait, then find the cache
        return _predict_missing(cohort, model, folders, predictor, options, out_dir, prov_file)


def _predict_missing(cohort: Cohort, model: ModelFolder, folders: Sequence[str],
                     predictor: Callable[[int], Predictor], options: TrainOptions,
                     out_dir: Path, prov_file: Path) -> dict[str, tuple[Path, int]]:
    tag = "+".join(folders)
    prov = json.loads(prov_file.read_text()) if prov_file.exists() else {}
    cases = [c for c in cohort if c.fold is not None]
    result: dict[str, tuple[Path, int]] = {}
    current: tuple[int, Predictor] | None = None
    for n, case in enumerate(cases, 1):
        f = int(case.fold)
        for stage in folders:
            check_held_out(model.fold_record(stage, f), [(case.id, case.ct)], where=model.root,
                           what=f"fold {f} of stage '{stage}'")
        ckpts = {s: str(model.checkpoint(s, f)) for s in folders}
        want = {"ct": file_digest(case.ct), "fold": f, "checkpoints": ckpts,
                "stamps": {s: checkpoint_stamp(Path(p)) for s, p in ckpts.items()}}
        target = out_dir / f"{case.id}.nii.gz"
        if target.exists() and prov.get(case.id) == want:
            result[case.id] = (target, f)
            continue
        options.say(f"[out-of-fold {tag}] case {n}/{len(cases)} ({case.id}) with the "
                    f"fold-{f} model")
        if current is None or current[0] != f:
            current = None  # one fold's predictors at a time keeps memory low
            current = (f, predictor(f))
        write_image(current[1].predict(read_image(case.ct)), target)
        prov[case.id] = want
        write_json_atomic(prov, prov_file)
        result[case.id] = (target, f)
    return result
