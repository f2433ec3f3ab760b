"""Phantom cohorts: determinism, independence, parallel == serial, folds, files, L/R on disk."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepstationing.data.cohort import CASE_FILES, Cohort
from deepstationing.data.image import read_image
from deepstationing.phantom import PRESETS, generate_case, generate_cohort
from deepstationing.phantom.params import grid_for
from deepstationing.schema import ORGANS, STATIONS


def _arrays(case):
    return [case.ct.array, case.organs.array, case.stations.array, case.nodes.array]


def test_same_seed_identical_different_seed_differs():
    a, b = generate_case(3, seed=7), generate_case(3, seed=7)
    for x, y in zip(_arrays(a), _arrays(b)):
        assert np.array_equal(x, y)
    assert a.meta == b.meta and a.nodes_list == b.nodes_list
    c = generate_case(3, seed=8)
    assert a.meta["params"] != c.meta["params"]
    assert a.ct.shape != c.ct.shape or not np.array_equal(a.ct.array, c.ct.array)


def test_presets_and_spacing():
    assert PRESETS["full"].spacing == (0.7, 0.7, 5.0) and PRESETS["full"].shape_xy == (512, 512)
    c = generate_case(0, spacing=(5.6, 5.6, 5.0))
    assert c.ct.spacing == (5.6, 5.6, 5.0) and c.ct.shape[1:] == (64, 64)
    assert grid_for("small")[1] == (128, 128)
    with pytest.raises(ValueError):
        generate_case(0, preset="huge")


def test_cohort_files_manifest_folds_and_parallel(tmp_path):
    ser = generate_cohort(tmp_path / "serial", 5, seed=4, preset="small", progress=False)
    par = generate_cohort(tmp_path / "par", 5, seed=4, preset="small", workers=2,
                          progress=False)
    man = json.loads((tmp_path / "serial" / "manifest.json").read_text())
    assert man["format"] == 1 and man["generator"] == "deepstationing.phantom"
    assert man["n_folds"] == 4 and man["preset"] == "small" and man["seed"] == 4
    assert {"name", "version", "spacing"} <= set(man)
    assert [e["id"] for e in man["cases"]] == [f"case_{i:03d}" for i in range(5)]
    # folds: a balanced partition; train/test never share a patient
    folds = [e["fold"] for e in man["cases"]]
    assert sorted(np.bincount(folds, minlength=4).tolist()) == [1, 1, 1, 2]
    for f in range(4):
        assert set(ser.test_ids(f)).isdisjoint(ser.train_ids(f))
        assert set(ser.test_ids(f)) | set(ser.train_ids(f)) == set(ser.case_ids)
    assert json.loads((tmp_path / "par" / "manifest.json").read_text()) == \
        {**man, "name": "par"}
    for cid in ser.case_ids:
        for role in ("ct", "organs", "stations", "nodes"):
            a = read_image(ser.case(cid).path(role)).array
            b = read_image(par.case(cid).path(role)).array
            assert np.array_equal(a, b), (cid, role)
        for role in CASE_FILES:
            assert ser.case(cid).path(role).exists()
    # case k does not depend on the cohort size
    one = generate_case(2, seed=4, preset="small")
    assert np.array_equal(read_image(ser.case("case_002").ct).array, one.ct.array)
    meta = ser.case("case_002").meta()
    assert set(meta["landmarks"]) >= {"z_cric", "z_notch", "z_apex_r", "z_apex_l", "z_bcv",
                                      "z_archtop", "z_archbot", "z_azy", "z_lpa", "z_car",
                                      "z_dia", "carina_lps"}
    nodes = ser.case("case_002").nodes_list()
    assert nodes and set(nodes[0]) >= {"id", "station", "zone", "center_mm", "short_axis_mm",
                                       "long_axis_mm"}


def test_left_right_in_world_after_nifti_round_trip(tmp_path):
    case = generate_case(5, seed=0, preset="small")
    case.write(tmp_path / "c")
    org = read_image(tmp_path / "c" / "organs.nii.gz", label=True)
    st = read_image(tmp_path / "c" / "stations.nii.gz", label=True)
    assert org.same_geometry(case.organs) and st.same_geometry(case.organs)

    def world_x(img, labels, key):
        idx = np.argwhere(img.array == labels.by_key(key).id).mean(axis=0)
        return img.index_to_world(idx)[0]

    # +x is patient left in LPS: right-sided structures have smaller world x
    for rk, lk in (("lung_r", "lung_l"), ("bcv_r", "bcv_l"), ("ijv_r", "ijv_l"),
                   ("cca_r", "cca_l"), ("bronchus_r", "bronchus_l")):
        assert world_x(org, ORGANS, rk) < world_x(org, ORGANS, lk), (rk, lk)
    for right in ("svc", "azygos"):
        assert world_x(org, ORGANS, right) < world_x(org, ORGANS, "descending_aorta")
    for rk, lk in (("1R", "1L"), ("2R", "2L"), ("4R", "4L")):
        assert world_x(st, STATIONS, rk) < world_x(st, STATIONS, lk), (rk, lk)
    # node centres in nodes.json are world positions inside their station
    nodes = json.loads((tmp_path / "c" / "nodes.json").read_text())
    for n in nodes:
        k, r_, c_ = (int(round(v)) for v in st.world_to_index(n["center_mm"]))
        assert st.array[k, r_, c_] == STATIONS.by_key(n["station"]).id


def test_cli_writes_cohort_and_refuses_foreign_folder(tmp_path):
    out = tmp_path / "coh"
    cmd = [sys.executable, "-m", "deepstationing", "phantom", "--cases", "2", "--out", str(out),
           "--seed", "3", "--spacing", "5.6", "5.6", "5"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "case_001" in res.stderr  # per-case progress on stderr
    coh = Cohort(out)
    assert coh.case_ids == ["case_000", "case_001"]
    assert np.allclose(read_image(coh.case("case_000").ct).spacing, (5.6, 5.6, 5.0))
    # re-running over a phantom cohort is allowed
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    cmd[cmd.index(str(out))] = str(foreign)
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2
    assert "not a phantom cohort" in res.stderr and "Traceback" not in res.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["deepstationing.phantom.params",
                                  "deepstationing.phantom.shapes"])
def test_docstring_examples(name):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(name))
    assert res.attempted > 0 and res.failed == 0
