"""One resampling path: what a network trains on and what it predicts from are the same
arrays, on a cohort whose cases come at different spacings (as every clinic's do).

The cohort mixes thick-slice cases at 5.6 x 5.6 x 10 mm with thin-slice cases at
8 x 8 x 5 mm (coarse versions of the 0.7 x 0.7 x 5 and 1 x 1 x 2.5 mm of clinical CT, so
that the test runs in seconds); the target spacing (nnU-Net's rule on the training cases)
is one of the two, so the other kind is resampled. For every training case, the
input nnU-Net preprocessed for training (CT and organ channels) is compared, voxel for
voxel, with the input the trained network is given at prediction time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepstationing.backbone.plans import CpuConfig
from deepstationing.data.cohort import CohortWriter
from deepstationing.data.image import read_image
from deepstationing.phantom import generate_case, write_case
from deepstationing.stations.network import StationParser, train_stations
from deepstationing.training import TrainBudget, TrainOptions

SPACINGS = [(5.6, 5.6, 10.0), (8.0, 8.0, 5.0)]  # (x, y, z) mm


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    with CohortWriter(root / "cohort", generator="test.mixed", n_folds=2) as writer:
        for i in range(6):
            case = generate_case(i, seed=0, preset="small", spacing=SPACINGS[i % 2])
            write_case(case, writer.case_folder(case.id))
            writer.add_case(case.id)
        cohort = writer.finish()
    opts = TrainOptions(workdir=root / "runs", cpu=CpuConfig((8, 16, 16), (2, 4), 1),
                        budget=TrainBudget(1, 1, 1), progress=lambda m: None)
    model = train_stations(cohort, 0, channels="gt:heart,trachea,spine", options=opts)
    return cohort, model, opts


def _training_input(opts: TrainOptions, model, case_id: str) -> np.ndarray:
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = model.stage_folder(model.station_stage()) / "fold_0"
    import json

    plans = json.loads((folder / "plans.json").read_text())
    dataset = json.loads((folder / "dataset.json").read_text())
    ident = plans["configurations"]["3d_fullres"]["data_identifier"]
    pre = opts.workspace.preprocessed
    matches = [p for p in pre.glob(f"Dataset*/{ident}") if (p / f"{case_id}.b2nd").exists()
               or (p / f"{case_id}.npz").exists()]
    matches = [p for p in matches
               if json.loads((p.parent / "dataset.json").read_text())["name"] == dataset["name"]]
    assert len(matches) == 1, matches
    data, _, _, _ = infer_dataset_class(str(matches[0]))(str(matches[0])).load_case(case_id)
    return np.asarray(data)


def test_training_and_prediction_inputs_agree_voxel_for_voxel(mixed):
    cohort, model, opts = mixed
    grid = tuple(model.fold_record(model.station_stage(), 0)["spacing"])
    seen_spacings = {tuple(read_image(cohort.case(c).ct).array_spacing)
                     for c in cohort.train_ids(0)}
    assert len(seen_spacings) == 2 and any(s != grid for s in seen_spacings)  # resampled
    parser = StationParser(model, [0])
    fold = parser.stations.folds[0]
    fold.seen = []
    for case_id in cohort.train_ids(0):
        case = cohort.case(case_id)
        ct = read_image(case.ct)
        parser.predict(ct, read_image(case.organs, label=True))
        at_prediction = fold.seen[-1]
        at_training = _training_input(opts, model, case_id)
        assert at_prediction.shape == at_training.shape, case_id
        # organ channels: the same 0/1 masks, not spline-smoothed copies
        assert np.array_equal(at_prediction[1:], at_training[1:]), case_id
        assert set(np.unique(at_prediction[1:]).tolist()) <= {0.0, 1.0}
        # the CT: the same values (same interpolation and normalisation)
        assert np.allclose(at_prediction[0], at_training[0], atol=1e-5), case_id


def test_labels_come_back_on_each_case_grid(mixed):
    cohort, model, _ = mixed
    parser = StationParser(model, [0])
    for spacing in SPACINGS:
        case = next(c for c in cohort if read_image(c.ct).spacing == pytest.approx(spacing))
        ct = read_image(case.ct)
        organs, stations = parser.predict(ct, read_image(case.organs, label=True))
        assert stations.shape == ct.shape and stations.same_geometry(ct)
        assert organs is not None and np.array_equal(
            organs.array, read_image(case.organs, label=True).array)


def test_model_grid_is_the_training_cases_rule(mixed):
    from deepstationing.backbone.inputs import oriented_geometry, target_spacing

    cohort, model, _ = mixed
    geo = [oriented_geometry(cohort.case(c).ct, "LPS") for c in cohort.train_ids(0)]
    expected = target_spacing([g[0] for g in geo], [g[1] for g in geo])
    record = model.fold_record(model.station_stage(), 0)
    assert tuple(record["spacing"]) == pytest.approx(expected)
    assert Path(model.stage_folder(model.station_stage()) / "fold_0" / "plans.json").exists()
