"""End to end: train anchor -> non-anchor -> stations on tiny phantom cases, then predict.

Six phantom cases at a coarse spacing; minimal budget (1 epoch x 2 iterations, a 16x32x32
patch, a 3-level 4-8-16 network): the
models are not accurate; the tests check the plumbing — out-of-fold channels, resume,
geometry, label sets, orientation — with known answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepstationing import schema
from deepstationing.backbone.channels import ChannelSpec
from deepstationing.backbone.env import Workspace
from deepstationing.backbone.plans import CpuConfig
from deepstationing.backbone.predict import StagePredictor
from deepstationing.backbone.train import TrainBudget, checkpoint_epoch
from deepstationing.backbone.trainers.deepstationing_trainers import RUNS_FILE, TrainingStopped
from deepstationing.cli.main import main
from deepstationing.data.cohort import Cohort
from deepstationing.data.image import Image, check_same_geometry, read_image
from deepstationing.errors import InputError
from deepstationing.organs.cascade import (
    ANCHOR,
    NON_ANCHOR,
    OrganCascade,
    TrainOptions,
    train_organs,
)
from deepstationing.phantom import generate_cohort
from deepstationing.stations.network import StationParser, train_stations
from deepstationing.training.model import ModelFolder
from deepstationing.training.stages import ANCHOR_LABELS

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
LUNG2 = REAL / "pyradiomics_thorax" / "lung2_image.nrrd"
IBSI_DICOM = REAL / "ibsi_ct_phantom" / "dicom" / "image"
TINY = CpuConfig(patch_size=(16, 32, 32), features=(4, 8, 16), batch_size=2)
N_CASES = 6
COARSE = (5.6, 5.6, 10.0)  # (x, y, z) mm: 64 x 64 x ~36 voxels per case


def make_cohort(out: Path, n: int = N_CASES) -> Cohort:
    """Tiny phantom cases: the small preset's field of view at half its resolution."""
    return generate_cohort(out, n, seed=0, preset="small", spacing=COARSE, n_folds=4,
                           workers=1, progress=False)


def _options(workdir: Path, **kw) -> TrainOptions:
    return TrainOptions(workdir=workdir, config=kw.pop("config", "cpu"), cpu=kw.pop("cpu", TINY),
                        budget=kw.pop("budget", TrainBudget(1, 2, 1)),
                        progress=kw.pop("progress", lambda msg: None), **kw)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Cohort:
    return make_cohort(tmp_path_factory.mktemp("cohort") / "phantom")


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    opts = _options(tmp_path_factory.mktemp("runs"))
    model = train_organs(cohort, 0, options=opts)  # non-anchor on out-of-fold anchors
    model = train_stations(cohort, 0, channels="pred:all", options=opts, model_dir=model.root)
    return opts, model


def test_cascade_trains_every_stage_and_the_needed_folds(trained, cohort):
    _, model = trained
    folds = sorted({c.fold for c in cohort})
    reopened = ModelFolder.open(model.root)
    assert reopened.stage_folders == ["anchor", "nonanchor", "stations-pred-all"]
    # predicted channels for fold 0 need the earlier stages on every fold
    assert reopened.folds(ANCHOR) == folds
    assert reopened.folds(NON_ANCHOR) == folds
    assert reopened.folds("stations-pred-all") == [0]
    assert reopened.stage(NON_ANCHOR).channels.organs == schema.ANCHOR_ORGANS
    assert str(reopened.stage("stations-pred-all").channels) == "pred:all"
    for stage in reopened.stage_folders:
        for f in reopened.folds(stage):
            assert reopened.checkpoint(stage, f).exists()
            record = reopened.fold_record(stage, f)
            assert record["budget"] == {"epochs": 1, "iterations": 2, "val_iterations": 1}
            assert record["epochs"] == 1


def test_channels_are_out_of_fold(trained, cohort):
    opts, model = trained
    ws: Workspace = opts.workspace
    # every exported training case names the fold model that produced its channels
    seen = {}
    for src in ws.raw.glob("Dataset*/deepstationing_source.json"):
        data = json.loads(src.read_text())
        stage = json.loads(data["key"])["stage"]["role"]
        for c in data["cases"]:
            if c["channel_origin"] is not None:
                seen.setdefault(stage, {})[c["id"]] = c["channel_origin"]
    assert set(seen) == {"nonanchor", "stations"}
    for case in cohort:
        assert seen["nonanchor"][case.id] == f"anchor fold {case.fold}"
    # the station stage (fold 0) exported its training cases only: nnU-Net never saw the
    # held-out ones (fingerprint, normalisation, target spacing come from training cases)
    assert sorted(seen["stations"]) == sorted(cohort.train_ids(0))
    for case_id in cohort.train_ids(0):
        assert seen["stations"][case_id] == f"cascade fold {cohort.case(case_id).fold}"
    # the cached prediction files record the checkpoints and are reproduced by that fold
    prov_files = sorted(ws.predictions.glob("*/*/provenance.json"))
    assert {p.parent.name for p in prov_files} == {"anchor", "anchor+nonanchor"}
    anchor_dir = next(p.parent for p in prov_files if p.parent.name == "anchor")
    prov = json.loads((anchor_dir / "provenance.json").read_text())
    for case in cohort:
        assert prov[case.id]["fold"] == case.fold
        assert f"fold_{case.fold}" in prov[case.id]["checkpoints"]["anchor"]
    case = next(iter(cohort))
    again = OrganCascade(model, [case.fold], use="cascade")
    again_anchor = again.predictors[ANCHOR].predict(
        read_image(case.ct).array.astype(np.float32)[None], read_image(case.ct).array_spacing)
    cached = read_image(anchor_dir / f"{case.id}.nii.gz", label=True).array
    assert np.array_equal(ANCHOR_LABELS.to_schema(again_anchor), cached)


def test_predict_held_out_case_cli(trained, cohort, tmp_path, capsys):
    _, model = trained
    case = cohort.case(cohort.test_ids(0)[0])
    out = tmp_path / "pred"
    assert main(["predict", str(case.ct), "-o", str(out), "--model", str(model.root)]) == 0
    err = capsys.readouterr().err
    assert "[1/1] ct: " in err and "done in" in err and "1 of 1 case(s) predicted" in err
    ct = read_image(case.ct)
    organs = read_image(out / "organs.nii.gz", label=True)
    stations = read_image(out / "stations.nii.gz", label=True)
    check_same_geometry(ct, organs)
    check_same_geometry(ct, stations)
    assert set(np.unique(organs.array)) <= {0, *schema.ORGANS.ids}
    assert set(np.unique(stations.array)) <= {0, *schema.STATIONS.ids}


def test_predict_with_given_organs_uses_them(trained, cohort, tmp_path):
    _, model = trained
    case = cohort.case(cohort.test_ids(0)[0])
    out = tmp_path / "given"
    assert main(["predict", str(case.ct), "-o", str(out), "--model", str(model.root),
                 "--organs", str(case.organs)]) == 0
    given = read_image(case.organs, label=True)
    written = read_image(out / "organs.nii.gz", label=True)
    check_same_geometry(given, written)
    assert np.array_equal(written.array, given.array)  # passed through, not re-predicted


def test_wrong_channel_count_is_a_clear_error(trained):
    _, model = trained
    pred = StagePredictor(model.stage_folder("stations-pred-all"), [0])
    assert pred.n_channels == 23
    with pytest.raises(InputError, match="expects 23 input channel"):
        pred.predict(np.zeros((2, 8, 16, 16), np.float32), (5.0, 2.0, 2.0), source="x.nii.gz")


def test_predict_rejects_multichannel_input(trained, tmp_path, capsys):
    import SimpleITK as sitk

    _, model = trained
    four_d = tmp_path / "two_channels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 4, 8, 8), np.int16), isVector=False),
                    str(four_d))  # 4D: two channels of a 4 x 8 x 8 volume
    out = tmp_path / "o"
    assert main(["predict", str(four_d), "-o", str(out), "--model", str(model.root)]) == 2
    err = capsys.readouterr().err
    assert "two_channels.nii.gz" in err and "expected 3D" in err and "Traceback" not in err
    assert not out.exists()


def test_resume_continues_from_last_checkpoint(cohort, tmp_path):
    budget = TrainBudget(3, 2, 1)
    interrupted = _options(tmp_path / "runs", budget=budget, stop_after_epochs=1)
    with pytest.raises(TrainingStopped):
        train_organs(cohort, 1, options=interrupted, stages=("anchor",))
    fold_dir = next((tmp_path / "runs" / "nnunet_results").glob("Dataset*_f1/*/fold_all"))
    assert checkpoint_epoch(fold_dir / "checkpoint_latest.pth") == 1
    assert not (fold_dir / "checkpoint_final.pth").exists()
    model = train_organs(cohort, 1, options=_options(tmp_path / "runs", budget=budget),
                         stages=("anchor",))
    runs = json.loads((fold_dir / RUNS_FILE).read_text())
    assert [(r["start_epoch"], r["end_epoch"], r["finished"]) for r in runs] == [
        (0, 1, False), (1, 3, True)]
    assert checkpoint_epoch(model.checkpoint(ANCHOR, 1)) == 3


def test_each_channel_spec_is_its_own_station_stage(trained, cohort, tmp_path):
    """A second channel spec trains into the same model beside the first one; predict asks
    which one when there are several."""
    import shutil

    opts, model = trained
    copy = shutil.copytree(model.root, tmp_path / "model")  # the fixture's model stays as it is
    model = train_stations(cohort, 0, channels="gt:heart,spine+sdm", options=opts,
                           model_dir=copy)
    assert model.stages_of_role("stations") == ["stations-gt-2org-422369-sdm",
                                                "stations-pred-all"]
    assert model.stage("stations-gt-2org-422369-sdm").channels.encoding == "sdm"
    case = cohort.case(cohort.test_ids(0)[0])
    with pytest.raises(InputError, match="several station stages"):
        StationParser(model)
    parser = StationParser(model, stations="gt:heart,spine+sdm")
    assert parser.stations.n_channels == 3
    organs, stations = parser.predict(read_image(case.ct), read_image(case.organs, label=True))
    check_same_geometry(read_image(case.ct), stations)
    assert main(["predict", str(case.ct), "-o", str(tmp_path / "p"), "--model",
                 str(model.root), "--stations", "pred:all"]) == 0


def test_a_clashing_definition_fails_before_any_training(trained, cohort, tmp_path, capsys):
    opts, model = trained
    other = _options(opts.workspace.root, cpu=CpuConfig((16, 32, 32), (4, 8, 16, 32), 2))
    said = []
    other.progress = said.append
    with pytest.raises(InputError, match="stage 'stations-pred-all' of this model was "
                                         "defined differently \\(cpu differ"):
        train_stations(cohort, 1, channels="pred:all", options=other, model_dir=model.root)
    assert said == []  # nothing exported, predicted or trained
    with pytest.raises(InputError, match="organ stages of this model use config cpu"):
        train_organs(cohort, 1, options=_options(opts.workspace.root, config="full"),
                     model_dir=model.root, stages=("single",))


def test_training_never_mirrors_and_rotates_little(trained):
    """nnU-Net mirrors every axis and rotates thick-slice patches by up to 180 degrees, both
    of which swap the patient's left and right; the toolkit's plans and checkpoints do not."""
    import torch

    _, model = trained
    for stage in model.stage_folders:
        plans = json.loads((model.stage_folder(stage) / "fold_0" / "plans.json").read_text())
        assert plans["deepstationing"] == {"mirror_axes": [], "max_rotation_deg": 15.0}
        ck = torch.load(model.checkpoint(stage, 0), map_location="cpu", weights_only=False)
        assert ck["inference_allowed_mirroring_axes"] is None


def test_trainer_augmentation_follows_the_plans(trained):
    """The trainer's spatial augmentation: mirror axes from the plans, rotation clamped."""
    import math

    from deepstationing.backbone.env import nnunet_environment
    from deepstationing.backbone.trainers.deepstationing_trainers import DeepStationingTrainerCPU

    opts, model = trained
    folder = model.stage_folder("stations-pred-all") / "fold_0"
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [4, 32, 32]  # thick: dummy 2D
    with nnunet_environment(opts.workspace):
        for entry, axes in (({"mirror_axes": [], "max_rotation_deg": 15.0}, None),
                            ({"mirror_axes": [0, 1], "max_rotation_deg": 15.0}, (0, 1))):
            plans["deepstationing"] = entry
            tr = DeepStationingTrainerCPU({**plans, "continue_training": False}, "3d_fullres", 0,
                                          json.loads((folder / "dataset.json").read_text()),
                                          device=__import__("torch").device("cpu"))
            rot, dummy_2d, _, mirror = \
                tr.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
            assert dummy_2d and mirror == axes and tr.inference_allowed_mirroring_axes == axes
            assert math.isclose(rot[1], math.radians(15)) and math.isclose(rot[0], -rot[1])
            assert tr.initial_lr == DeepStationingTrainerCPU.learning_rate == 3e-3
        # a CpuConfig's learning rate reaches the trainer through the plans
        plans["deepstationing"] = {**entry, "learning_rate": 0.01}
        tr = DeepStationingTrainerCPU({**plans, "continue_training": False}, "3d_fullres", 0,
                                      json.loads((folder / "dataset.json").read_text()),
                                      device=__import__("torch").device("cpu"))
        assert tr.initial_lr == 0.01


def test_cpu_config_learning_rate_is_written_into_the_plans(tmp_path):
    from deepstationing.backbone.plans import Augmentation, CpuConfig, _apply_toolkit

    f = tmp_path / "plans.json"
    base = {"transpose_forward": [0, 1, 2],
            "foreground_intensity_properties_per_channel": {"0": {}}}
    for cpu, expect in ((CpuConfig(learning_rate=0.01), 0.01), (CpuConfig(), None)):
        f.write_text(json.dumps(base))
        _apply_toolkit(f, Augmentation(), None, cpu)
        assert json.loads(f.read_text())["deepstationing"].get("learning_rate") == expect


@pytest.mark.skipif(not LUNG2.exists(), reason=f"real CT fixture absent ({LUNG2})")
def test_predict_real_ct_keeps_geometry(trained, tmp_path):
    _, model = trained
    out = tmp_path / "real"
    assert main(["predict", str(LUNG2), "-o", str(out), "--model", str(model.root)]) == 0
    ct = read_image(LUNG2)
    for name, labels in (("organs", schema.ORGANS), ("stations", schema.STATIONS)):
        img = read_image(out / f"{name}.nii.gz", label=True)
        check_same_geometry(ct, img)
        assert set(np.unique(img.array)) <= {0, *labels.ids}


@pytest.mark.skipif(not LUNG2.exists(), reason=f"real CT fixture absent ({LUNG2})")
def test_real_ct_left_right_preserved(trained):
    """The same world image stored x-flipped gets the same labels at the same world points."""
    _, model = trained
    full = read_image(LUNG2)
    zs, ys, xs = slice(25, 37), slice(128, 384), slice(96, 416)
    crop = Image(full.array[zs, ys, xs], full.spacing,
                 full.index_to_world((zs.start, ys.start, xs.start)), full.direction)
    d = np.asarray(full.direction).reshape(3, 3).copy()
    d[:, 0] *= -1  # index x now runs towards patient right
    nx = crop.shape[2]
    flipped = Image(crop.array[:, :, ::-1].copy(), crop.spacing,
                    crop.index_to_world((0, 0, nx - 1)), d.ravel())
    parser = StationParser(model, [0])
    organs_a, stations_a = parser.predict(crop)
    organs_b, stations_b = parser.predict(flipped)
    check_same_geometry(crop, organs_a)
    check_same_geometry(flipped, stations_b)
    # an (untrained) network is a spatially varying function: the check is not vacuous
    assert len(np.unique(organs_a.array)) > 1
    assert np.array_equal(organs_b.array[:, :, ::-1], organs_a.array)
    assert np.array_equal(stations_b.array[:, :, ::-1], stations_a.array)
    # world check: voxel (z, y, 0) of the flipped image is voxel (z, y, nx-1) of the crop
    assert np.allclose(flipped.index_to_world((3, 7, 0)), crop.index_to_world((3, 7, nx - 1)))


@pytest.mark.skipif(not IBSI_DICOM.exists(), reason=f"real DICOM fixture absent ({IBSI_DICOM})")
def test_predict_dicom_folder(trained, tmp_path):
    _, model = trained
    out = tmp_path / "dicom"
    assert main(["predict", str(IBSI_DICOM), "-o", str(out), "--model", str(model.root)]) == 0
    ct = read_image(IBSI_DICOM)
    check_same_geometry(ct, read_image(out / "stations.nii.gz", label=True))
    check_same_geometry(ct, read_image(out / "organs.nii.gz", label=True))


def test_cli_train_anchor_stage(cohort, tmp_path, capsys):
    work = tmp_path / "runs"
    rc = main(["train", "organs", "--cohort", str(cohort.root), "--fold", "2", "--stages",
               "anchor", "--epochs", "1", "--iterations", "1", "--workdir", str(work)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "[anchor fold 2]" in err and "epoch 1/1" in err
    model = ModelFolder.open(work / "models" / f"{cohort.root.name}-cpu")
    assert model.stage_folders == ["anchor"] and model.folds(ANCHOR) == [2]
    assert model.stage(ANCHOR).cpu.patch_size == (32, 64, 64)
    assert checkpoint_epoch(model.checkpoint(ANCHOR, 2)) == 1
    # a re-run finds the fold trained and does nothing
    assert main(["train", "organs", "--cohort", str(cohort.root), "--fold", "2", "--stages",
                 "anchor", "--epochs", "1", "--iterations", "1", "--workdir", str(work)]) == 0
    err = capsys.readouterr().err
    assert "already trained (1 epochs)" in err and "training 1 x 1" not in err
    # a larger budget extends the fold from its checkpoint (it used to do nothing)
    assert main(["train", "organs", "--cohort", str(cohort.root), "--fold", "2", "--stages",
                 "anchor", "--epochs", "2", "--iterations", "1", "--workdir", str(work)]) == 0
    err = capsys.readouterr().err
    assert "extending from epoch 1 to 2" in err and "epoch 2/2" in err and "epoch 1/2" not in err
    model = ModelFolder.open(model.root)
    assert checkpoint_epoch(model.checkpoint(ANCHOR, 2)) == 2
    assert model.fold_record(ANCHOR, 2)["budget"]["epochs"] == 2
    runs = json.loads((model.checkpoint(ANCHOR, 2).parent / RUNS_FILE).read_text())
    assert [(r["start_epoch"], r["end_epoch"], r["finished"]) for r in runs] == [
        (0, 1, True), (1, 2, True)]


@pytest.mark.slow
def test_resume_after_killed_process(cohort, tmp_path):
    """A real interruption: kill the training process mid-run, re-run the same command."""
    import os
    import signal
    import subprocess
    import sys
    import time

    work = tmp_path / "runs"
    cmd = [sys.executable, "-m", "deepstationing", "train", "organs", "--cohort",
           str(cohort.root), "--fold", "3", "--stages", "anchor", "--epochs", "6",
           "--iterations", "3", "--workdir", str(work)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = None
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        found = list((work / "nnunet_results").glob("Dataset*/*/fold_3/checkpoint_latest.pth"))
        if found and checkpoint_epoch(found[0]) >= 2:  # written atomically: safe to read
            latest = found[0]
            break
        time.sleep(0.5)
    assert latest is not None, "training finished or stalled before a checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = checkpoint_epoch(latest)
    assert not (latest.parent / "checkpoint_final.pth").exists()
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    runs = json.loads((latest.parent / RUNS_FILE).read_text())
    assert runs[-1]["start_epoch"] >= done and runs[-1]["finished"]
    assert checkpoint_epoch(latest.parent / "checkpoint_final.pth") == 6


# ------------------------------------------------------------------ batch prediction, speed
def _reference_predict(parser, ct, organs=None):
    """The cascade composed from its building blocks, with concatenated float32 copies."""
    from deepstationing.backbone.channels import encode_channels
    from deepstationing.backbone.inputs import labels_on_grid, labels_to_case, stage_grid
    from deepstationing.training.stages import STATION_LABELS

    code = parser.definition.orientation
    organs = parser.organs.predict(ct) if organs is None else organs
    work = stage_grid(ct, parser.stations.spacing, code)
    organ_arr = labels_on_grid(organs, work, code).array
    x = np.concatenate([work.array.astype(np.float32)[None],
                        encode_channels(organ_arr, parser.channels,
                                        work.array_spacing).astype(np.float32)])
    local = parser.stations.predict(x, work.array_spacing)
    st = labels_to_case(local, work, ct, code)
    return st.with_array(STATION_LABELS.to_schema(st.array))


def test_prediction_unchanged_by_the_speed_work(trained, cohort):
    from deepstationing.backbone.channels import network_input

    _, model = trained
    parser = StationParser(model, [0])
    case = cohort.case(cohort.test_ids(0)[0])
    ct = read_image(case.ct)
    # the network step: argmax where the logits are == nnU-Net's predict_single_npy_array,
    # for one fold at a time (nnU-Net's own path knows one fold's plans)
    organs = read_image(case.organs, label=True)
    x = network_input(ct.array, organs.array, parser.channels, ct.array_spacing)
    for stage in (parser.stations, StagePredictor(model.stage_folder("stations-pred-all"),
                                                  [0], threads=1)):
        fast = stage.predict(x, ct.array_spacing)
        assert np.array_equal(fast, stage.predict_reference(x, {"spacing":
                                                               list(ct.array_spacing)}))
    x1 = network_input(ct.array, None, ChannelSpec("pred", ()), ct.array_spacing)
    for f in (0, 1, 2, 3):  # each fold has its own plans (normalisation statistics)
        anchors = StagePredictor(model.stage_folder("anchor"), [f], threads=1)
        assert np.array_equal(anchors.predict(x1, ct.array_spacing),
                              anchors.predict_reference(x1, {"spacing":
                                                             list(ct.array_spacing)}))
    _, fast = parser.predict(ct)
    assert np.array_equal(fast.array, _reference_predict(parser, ct).array)
    if LUNG2.exists():  # a real CT, resampled to the model's grid and back
        real = read_image(LUNG2)
        _, fast = parser.predict(real)
        assert np.array_equal(fast.array, _reference_predict(parser, real).array)


def test_batch_predict_skips_a_broken_case(trained, cohort, tmp_path, capsys):
    import shutil

    _, model = trained
    cts = tmp_path / "cts"
    cts.mkdir()
    for cid in cohort.test_ids(0)[:2]:
        shutil.copyfile(cohort.case(cid).ct, cts / f"{cid}.nii.gz")
    good = (cts / f"{cohort.test_ids(0)[0]}.nii.gz").read_bytes()
    (cts / "broken.nii.gz").write_bytes(good[: len(good) // 2])  # a copy cut short
    out = tmp_path / "out"
    assert main(["predict", str(cts), "-o", str(out), "--model", str(model.root),
                 "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "broken: FAILED: " in err and "broken.nii.gz" in err and "truncated" in err
    assert "2 of 3 case(s) predicted, 1 failed: broken" in err
    assert "stations: network" in err  # --verbose: the cost of each step
    for cid in cohort.test_ids(0)[:2]:
        check_same_geometry(read_image(cohort.case(cid).ct),
                            read_image(out / cid / "stations.nii.gz", label=True))
    assert not (out / "broken").exists()
