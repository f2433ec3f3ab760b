"""TotalSegmentator folder input, the geometric aorta split, and the ``rules`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepstationing.cli.main import main
from deepstationing.data.image import read_image, write_image
from deepstationing.rules.inference import rule_stations
from deepstationing.rules.totalseg import read_totalsegmentator_folder, split_aorta
from deepstationing.schema import ORGANS, STATIONS
from test_rules_landmarks import TOY_Z, toy_thorax

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / \
    "totalseg_thorax_crops"

_AORTA = ("aortic_arch", "ascending_aorta", "descending_aorta")


def _write_ts_folder(img, folder: Path, drop: tuple[str, ...] = ()) -> None:
    """Write the toy organ map as TotalSegmentator class files (one aorta, lobes...)."""
    a = img.array
    aorta = np.isin(a, [ORGANS.by_key(k).id for k in _AORTA])
    write_image(img.with_array(aorta.astype(np.uint8)), folder / "aorta.nii.gz")
    for organ in ORGANS:
        if organ.key in _AORTA or not organ.totalseg or organ.key in drop:
            continue
        m = (a == organ.id).astype(np.uint8)
        cls = organ.totalseg[0] if organ.key != "spine" else "vertebrae_T5"
        write_image(img.with_array(m), folder / f"{cls}.nii.gz")
    write_image(img.with_array(np.zeros_like(a)), folder / "celiac_trunk.nii.gz")


def test_split_aorta_recovers_the_three_segments():
    img = toy_thorax()
    a = img.array
    whole = np.isin(a, [ORGANS.by_key(k).id for k in _AORTA])
    parts, notes = split_aorta(img.with_array(whole))
    for key in _AORTA:
        truth = a == ORGANS.by_key(key).id
        dice = 2 * (parts[key] & truth).sum() / (parts[key].sum() + truth.sum())
        assert dice > 0.9, (key, dice)
    assert any("split" in n for n in notes)
    # the split level is the arch bottom of the toy
    z = img.origin[2] + np.flatnonzero(parts["aortic_arch"].any(axis=(1, 2)))[0] * 5.0
    assert z == TOY_Z["z_archbot"] + 5.0 or z == TOY_Z["z_archbot"]


def test_folder_input_maps_names_and_reports_missing(tmp_path):
    img = toy_thorax()
    _write_ts_folder(img, tmp_path, drop=("esophagus",))
    organs, missing, notes = read_totalsegmentator_folder(tmp_path)
    assert organs.same_geometry(img)
    assert {"azygos", "bronchus_r", "bronchus_l", "esophagus"} <= set(missing)
    assert "trachea" not in missing and "aortic_arch" not in missing
    text = " ".join(notes)
    assert "esophagus" in text and "celiac_trunk" in text
    assert "TotalSegmentator has no class" in text
    kept = (img.array == ORGANS.by_key("trachea").id)
    np.testing.assert_array_equal(organs.array == ORGANS.by_key("trachea").id, kept)
    res = rule_stations(organs)
    assert res.volumes_ml()["8"] == 0  # no esophagus: station 8 left empty
    assert res.volumes_ml()["6"] > 0 and res.volumes_ml()["2R"] > 0


def test_folder_on_other_grids_is_resampled(tmp_path):
    img = toy_thorax()
    _write_ts_folder(img, tmp_path)
    # the heart on a grid shifted by whole voxels and padded: nearest neighbour is exact
    heart = read_image(tmp_path / "heart.nii.gz", label=True)
    big = np.zeros((heart.shape[0], heart.shape[1] + 4, heart.shape[2] + 6), np.uint8)
    big[:, 2:-2, 3:-3] = heart.array
    origin = np.asarray(heart.origin) - np.array([3 * heart.spacing[0], 2 * heart.spacing[1], 0])
    from deepstationing.data.image import Image

    write_image(Image(big, heart.spacing, tuple(origin)), tmp_path / "heart.nii.gz")
    organs, _, notes = read_totalsegmentator_folder(tmp_path)
    assert any("heart.nii.gz" in n and "resampled" in n for n in notes)
    np.testing.assert_array_equal(organs.array == ORGANS.by_key("heart").id,
                                  img.array == ORGANS.by_key("heart").id)


def test_folder_without_known_classes_is_an_input_error(tmp_path):
    from deepstationing.errors import InputError

    write_image(toy_thorax().with_array(np.zeros((61, 121, 161), np.uint8)),
                tmp_path / "celiac_trunk.nii.gz")
    with pytest.raises(InputError, match="no TotalSegmentator mask"):
        read_totalsegmentator_folder(tmp_path)


@pytest.mark.skipif(not (REAL / "aorta").is_dir(), reason="real TotalSegmentator crops absent")
def test_real_totalsegmentator_aorta_crop(tmp_path, capsys):
    out = tmp_path / "rules.nii.gz"
    assert main(["rules", "--organs", str(REAL / "aorta"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    for organ in ("trachea", "esophagus", "lung_r", "azygos"):
        assert organ in err
    stations = read_image(out, label=True)
    organs, missing, _ = read_totalsegmentator_folder(REAL / "aorta")
    assert stations.same_geometry(organs)
    assert "trachea" in missing
    assert stations.array.max() <= len(STATIONS)
    given = organs.array > 0
    for p in sorted((REAL / "aorta").glob("*.nii.gz")):
        if p.name.startswith("ct"):
            continue
        m = read_image(p, label=True)
        if m.same_geometry(stations):
            given |= m.array > 0
    assert not np.any((stations.array > 0) & given)
    # the aorta is split: arch, ascending and descending all found
    for key in _AORTA:
        assert key not in missing


def test_cli_on_a_label_map(tmp_path, capsys):
    img = toy_thorax()
    a = img.array.copy()
    a[a == ORGANS.by_key("azygos").id] = 0
    organs = tmp_path / "organs.nii.gz"
    write_image(img.with_array(a), organs)
    out, lm = tmp_path / "st.nii.gz", tmp_path / "lm.json"
    assert main(["rules", "--organs", str(organs), "-o", str(out), "--landmarks", str(lm)]) == 0
    err = capsys.readouterr().err
    assert "azygos" in err and "wrote" in err
    st = read_image(out, label=True)
    np.testing.assert_array_equal(st.array, rule_stations(img.with_array(a)).stations.array)
    import json

    data = json.loads(lm.read_text())
    assert data["z_car"] == TOY_Z["z_car"] and "z_azy" in data["estimated"]


def test_cli_rejects_a_station_map_as_organs(tmp_path, capsys):
    img = toy_thorax()
    bad = tmp_path / "bad.nii.gz"
    write_image(img.with_array(np.full(img.shape, 30, np.uint8)), bad)
    assert main(["rules", "--organs", str(bad), "-o", str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "bad.nii.gz" in err and "not an organ id" in err
    assert not (tmp_path / "o.nii.gz").exists()
