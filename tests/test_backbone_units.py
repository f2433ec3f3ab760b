"""Unit tests of the nnU-Net backbone: channel specs, labels, dataset export, plans, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepstationing import schema
from deepstationing.backbone.channels import ChannelSpec, organ_channels
from deepstationing.backbone.datasets import ExportCase, export_dataset
from deepstationing.backbone.env import Workspace, nnunet_environment
from deepstationing.backbone.plans import CpuConfig
from deepstationing.cli.main import main
from deepstationing.data.image import Image, read_image, write_image
from deepstationing.data.orientation import (
    back_to_grid,
    from_orientation,
    orientation_code,
    to_model_grid,
    to_orientation,
)
from deepstationing.errors import InputError
from deepstationing.organs.cascade import merge_organs
from deepstationing.training.model import MODEL_FILE, ModelFolder
from deepstationing.training.stages import ANCHOR_LABELS, NON_ANCHOR_LABELS


# ------------------------------------------------------------------ channel specs
@pytest.mark.parametrize("text, source, n", [
    ("none", "pred", 0), ("pred:all", "pred", 22), ("gt:all", "gt", 22),
    ("pred:top6", "pred", 6), ("gt:anchors", "gt", 11), ("pred:heart,spine,trachea", "pred", 3),
    ("PRED:Heart", "pred", 1),
])
def test_channel_spec_parse(text, source, n):
    spec = ChannelSpec.parse(text)
    assert spec.source == source and len(spec.organs) == n
    assert spec.n_channels == n + 1
    assert ChannelSpec.parse(str(spec)) == spec  # text form round-trips
    names = spec.channel_names()
    assert names["0"] == "CT" and list(names.values())[1:] == ["noNorm"] * n


def test_channel_spec_order_and_aliases():
    assert ChannelSpec.parse("pred:top6").organs == schema.PAPER_TOP6_ORGANS
    assert ChannelSpec.parse("gt:all").organs == tuple(schema.ORGANS.keys)
    assert ChannelSpec.parse("gt:spine,heart").organs == ("spine", "heart")
    assert str(ChannelSpec.parse("pred:anchors")) == "pred:anchors"


@pytest.mark.parametrize("bad", ["pred", "foo:all", "pred:liver", "gt:heart,heart"])
def test_channel_spec_errors(bad):
    with pytest.raises(ValueError):
        ChannelSpec.parse(bad)


def test_organ_channels_binary_per_organ():
    m = np.zeros((2, 3, 4), np.uint8)
    heart, spine = schema.ORGANS.by_key("heart").id, schema.ORGANS.by_key("spine").id
    m[0, 0, 0] = heart
    m[1, 2, 3] = spine
    ch = organ_channels(m, ["spine", "heart"])
    assert ch.shape == (2, 2, 3, 4) and ch.dtype == np.uint8
    assert ch[0].sum() == 1 and ch[0, 1, 2, 3] == 1
    assert ch[1].sum() == 1 and ch[1, 0, 0, 0] == 1


# ------------------------------------------------------------------ labels
def test_stage_labels_are_consecutive_and_invert():
    assert ANCHOR_LABELS.dataset_labels()["background"] == 0
    assert sorted(ANCHOR_LABELS.dataset_labels().values()) == list(range(12))
    ids = np.arange(23)
    local = ANCHOR_LABELS.to_local(ids)
    back = ANCHOR_LABELS.to_schema(local)
    for oid in range(1, 23):
        anchor = schema.ORGANS.by_id(oid).anchor
        assert (back[oid] == oid) if anchor else (back[oid] == 0)
    # anchors and non-anchors partition the 22 organs
    assert set(ANCHOR_LABELS.keys) | set(NON_ANCHOR_LABELS.keys) == set(schema.ORGANS.keys)
    assert not set(ANCHOR_LABELS.keys) & set(NON_ANCHOR_LABELS.keys)


def test_merge_organs_anchor_wins():
    heart = schema.ORGANS.by_key("heart").id
    eso = schema.ORGANS.by_key("esophagus").id
    a = np.array([0, heart, heart, 0])
    n = np.array([eso, eso, 0, 0])
    assert merge_organs(a, n).tolist() == [eso, heart, heart, 0]


# ------------------------------------------------------------------ dataset export
def _tiny_case(folder, rng, shape=(6, 8, 10)):
    ct = rng.integers(-1000, 400, shape).astype(np.int16)
    organs = np.zeros(shape, np.uint8)
    organs[1:3, 2:5, 3:6] = schema.ORGANS.by_key("heart").id
    organs[4, 1:3, 1:3] = schema.ORGANS.by_key("esophagus").id
    stations = np.zeros(shape, np.uint8)
    stations[3, 5:7, 6:9] = schema.STATIONS.by_key("4R").id
    geo = dict(spacing=(0.8, 0.8, 5.0), origin=(-10.0, 20.0, 30.0))
    for name, arr in (("ct", ct), ("organs", organs), ("stations", stations)):
        write_image(Image(arr, **geo), folder / f"{name}.nii.gz")
    return ct, organs, stations


def test_export_dataset_writes_nnunet_layout(tmp_path):
    rng = np.random.default_rng(0)
    ws = Workspace(tmp_path / "ws")
    cases, truth = [], {}
    for i in range(3):
        d = tmp_path / f"c{i}"
        d.mkdir()
        truth[f"c{i}"] = _tiny_case(d, rng)
        cases.append(ExportCase(f"c{i}", d / "ct.nii.gz", d / "organs.nii.gz", i,
                                d / "organs.nii.gz", "gt"))
    labels = NON_ANCHOR_LABELS
    ref, written = export_dataset(ws, "k1", "nonanchor_test", cases, labels=labels,
                                  channels=ChannelSpec.parse("gt:heart,spine"),
                                  spacing=(5.0, 0.8, 0.8))
    assert written and ref.name == "Dataset601_nonanchor_test"
    dj = json.loads((ref.raw_folder / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "CT", "1": "noNorm", "2": "noNorm"}
    assert dj["labels"] == labels.dataset_labels() and dj["numTraining"] == 3
    assert dj["file_ending"] == ".nii.gz"
    files = sorted(p.name for p in (ref.raw_folder / "imagesTr").iterdir())
    assert files == [f"c{i}_{k:04d}.nii.gz" for i in range(3) for k in range(3)]
    ct, organs, _ = truth["c1"]
    img = read_image(ref.raw_folder / "imagesTr" / "c1_0000.nii.gz")
    assert np.array_equal(img.array, ct) and np.allclose(img.spacing, (0.8, 0.8, 5.0))
    heart = read_image(ref.raw_folder / "imagesTr" / "c1_0001.nii.gz").array
    spine = read_image(ref.raw_folder / "imagesTr" / "c1_0002.nii.gz").array
    assert np.array_equal(heart, organs == schema.ORGANS.by_key("heart").id)
    assert spine.sum() == 0 and set(np.unique(heart)) == {0, 1}
    lab = read_image(ref.raw_folder / "labelsTr" / "c1.nii.gz", label=True).array
    # heart is an anchor: not a non-anchor target; esophagus is non-anchor label 1
    assert set(np.unique(lab)) == {0, labels.dataset_labels()["esophagus"]}
    assert np.array_equal(lab > 0, organs == schema.ORGANS.by_key("esophagus").id)
    # same inputs again: reused, same id; another key: a new id
    ref2, written2 = export_dataset(ws, "k1", "nonanchor_test", cases, labels=labels,
                                    channels=ChannelSpec.parse("gt:heart,spine"),
                                    spacing=(5.0, 0.8, 0.8))
    assert not written2 and ref2.id == ref.id
    ref3, _ = export_dataset(ws, "k2", "other", cases[:1], labels=labels,
                             channels=ChannelSpec.parse("none"), spacing=(5.0, 0.8, 0.8))
    assert ref3.id == ref.id + 1
    assert sorted(p.name for p in (ref3.raw_folder / "imagesTr").iterdir()) == ["c0_0000.nii.gz"]


def test_export_rejects_geometry_mismatch(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "c"
    d.mkdir()
    _tiny_case(d, rng)
    write_image(Image(np.zeros((6, 8, 9), np.uint8)), d / "bad.nii.gz")
    case = ExportCase("c", d / "ct.nii.gz", d / "bad.nii.gz", 0)
    with pytest.raises(InputError, match="geometry mismatch"):
        export_dataset(Workspace(tmp_path / "ws"), "k", "x", [case], labels=ANCHOR_LABELS,
                       channels=ChannelSpec.parse("none"), spacing=(5.0, 0.8, 0.8))


# ------------------------------------------------------------------ plans, env
def test_cpu_config_strides_divide_patch():
    cfg = CpuConfig()
    upd = cfg.arch_kwargs_update(cfg.patch_size)
    assert upd["n_stages"] == 4 and len(upd["strides"]) == 4
    assert all(p % d == 0 for p, d in zip(cfg.patch_size, cfg.divisor()))
    # a thin axis (8 voxels) stops being downsampled at 8
    upd = CpuConfig(patch_size=(8, 32, 32), features=(4, 8, 16)).arch_kwargs_update([8, 32, 32])
    assert upd["strides"] == [[1, 1, 1], [2, 2, 2], [1, 2, 2]]
    assert CpuConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_environment_is_process_local_and_restored(tmp_path):
    os.environ.pop("nnUNet_raw", None)
    ws = Workspace(tmp_path / "w")
    with nnunet_environment(ws, n_proc_da=0, threads=None):
        assert os.environ["nnUNet_raw"] == str(ws.raw.resolve())
        assert os.environ["nnUNet_n_proc_DA"] == "0"
        assert os.path.isdir(os.environ["nnUNet_extTrainer"])
    assert "nnUNet_raw" not in os.environ
    assert ws.raw.is_dir() and ws.preprocessed.is_dir() and ws.results.is_dir()


# ------------------------------------------------------------------ orientation
def test_orientation_round_trip_keeps_world_positions():
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 5, (4, 5, 6)).astype(np.uint8)
    lps = Image(arr, spacing=(1.0, 2.0, 3.0), origin=(5.0, 6.0, 7.0))
    # the same world image stored with x running towards patient right (RPS)
    flipped = Image(arr[:, :, ::-1].copy(), spacing=(1.0, 2.0, 3.0),
                    origin=lps.index_to_world((0, 0, 5)),
                    direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert orientation_code(lps) == "LPS" and orientation_code(flipped) == "RPS"
    canon = to_orientation(flipped, "LPS")
    assert canon.same_geometry(lps) and np.array_equal(canon.array, arr)
    back = from_orientation(canon.array, "LPS", flipped)
    assert back.same_geometry(flipped) and np.array_equal(back.array, flipped.array)


def test_model_grid_resampling_keeps_world_position():
    arr = np.zeros((10, 40, 40), np.uint8)
    arr[4:6, 8:20, 24:32] = 3  # a block towards patient left (high x), on 4-voxel bounds
    img = Image(arr, spacing=(0.5, 0.5, 5.0), origin=(-10.0, -10.0, 0.0))
    coarse = to_model_grid(img, (5.0, 2.0, 2.0), label=True)
    assert coarse.shape == (10, 10, 10)
    assert np.allclose(coarse.array_spacing, (5.0, 2.0, 2.0))
    # the block's centre stays at the same world position
    def centre(im):
        idx = np.argwhere(im.array == 3).mean(axis=0)
        return np.asarray(im.index_to_world(idx))
    assert np.allclose(centre(coarse), centre(img), atol=1.0)
    back = back_to_grid(coarse, img)
    assert back.same_geometry(img)
    assert (back.array == 3).sum() == (arr == 3).sum()  # block edges fall on coarse voxels
    assert to_model_grid(img, img.array_spacing) is img  # already there: untouched


# ------------------------------------------------------------------ model folder errors
def test_model_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such model folder.*deepstationing train"):
        ModelFolder.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=f"no {MODEL_FILE}"):
        ModelFolder.open(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MODEL_FILE).write_text("{}")
    with pytest.raises(InputError, match="format None, this version reads format 3"):
        ModelFolder.open(tmp_path / "bad")
    (tmp_path / "bad" / MODEL_FILE).write_text('{"format": 3, "stages": {"x": {}}}')
    with pytest.raises(InputError, match="malformed"):
        ModelFolder.open(tmp_path / "bad")
    (tmp_path / "bad" / MODEL_FILE).write_text("{not json")
    with pytest.raises(InputError, match="malformed"):
        ModelFolder.open(tmp_path / "bad")


def test_cli_predict_errors(tmp_path, capsys):
    assert main(["predict", "ct.nii.gz", "-o", str(tmp_path / "o")]) == 2
    assert "no model given" in capsys.readouterr().err
    assert main(["predict", "ct.nii.gz", "-o", str(tmp_path / "o"),
                 "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such model folder" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
