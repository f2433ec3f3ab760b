"""Plausibility QC (issue 22): silent on the phantom's truth, firing on known failures.

The known failures are built from the truth itself: the CT and its label maps mirrored
left-right without swapping the labels (what a network that follows the anatomy predicts
for a mirrored CT), the case cropped below the carina (a scan of the abdomen), labels on
the air outside the body and on a CT table, islands, a station moved or swollen. The
benchmark ``benchmarks/bench_qc.py`` does the same with a trained model's predictions.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from deepstationing.data.image import Image, read_image
from deepstationing.phantom import generate_cohort
from deepstationing.qc import (
    REFERENCE_FILE,
    check_case,
    read_reference,
    record_cases,
    record_training_cases,
)
from deepstationing.qc.body import body_mask
from deepstationing.qc.measures import mediastinal_envelope, side_offsets
from deepstationing.rules.landmarks import compute_landmarks
from deepstationing.schema import ORGANS, STATIONS

TEST_CASES = 6  # cases checked against a reference built from the other folds' cases


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("qc") / "ph", 20, seed=0, preset="small",
                           progress=None)


@pytest.fixture(scope="module")
def model(cohort, tmp_path_factory):
    """A model folder whose reference holds every case; fold f's view leaves fold f out."""
    root = tmp_path_factory.mktemp("qc_model")
    for fold in range(4):
        record_training_cases(root, cohort, fold)
    return root


def _load(case):
    return (read_image(case.ct), read_image(case.organs, label=True),
            read_image(case.stations, label=True))


def _fired(report):
    return {f.name: f for f in report.fired}


def _held_out(cohort, n=TEST_CASES):
    return list(cohort)[:n]


def test_silent_on_phantom_truth(cohort, model):
    for case in _held_out(cohort):
        ref = read_reference(model, folds=[case.fold])
        assert case.id not in ref.case_ids  # never its own reference
        report = check_case(*_load(case), reference=ref)
        assert report.verdict == "ok", (case.id, report.line())
        assert {f.name for f in report.findings} >= {
            "outside_body", "outside_mediastinum", "station_side", "organ_side", "fragments",
            "missing_stations", "missing_organs", "volume_range", "position_range",
            "rules_agreement"}
        assert report.skipped == []


def test_without_a_reference_the_cohort_checks_are_skipped_and_said_so(cohort):
    ct, organs, stations = _load(list(cohort)[1])
    report = check_case(ct, organs, stations)
    assert report.verdict == "ok", report.line()
    assert [s.name for s in report.skipped] == ["volume_range", "position_range"]
    assert "qc_reference.json" in report.skipped[0].reason


def _flip(img: Image) -> Image:
    """The array mirrored along the patient's left-right axis, geometry kept, labels not
    swapped: the anatomy of a mirrored patient, labelled as a network would."""
    return img.with_array(img.array[:, :, ::-1].copy())


def test_a_mirrored_case_is_implausible(cohort, model):
    case = list(cohort)[0]
    ct, organs, stations = (_flip(i) for i in _load(case))
    report = check_case(ct, organs, stations, reference=read_reference(model, [case.fold]))
    fired = _fired(report)
    assert report.verdict == "implausible"
    assert fired["station_side"].severity == "implausible"
    assert fired["station_side"].value < -5
    assert {lab.split()[0] for lab in fired["station_side"].labels} == {
        "1L", "1R", "2L", "2R", "4L", "4R"}
    assert fired["organ_side"].severity == "implausible"
    assert any(lab.startswith("lung_l") for lab in fired["organ_side"].labels)
    assert "rules_agreement" in fired  # the rules do not find the stations there either


def test_side_offsets_change_sign_with_the_flip(cohort):
    ct, organs, stations = _load(list(cohort)[2])
    keys = ("4L", "4R")
    here = side_offsets(stations, STATIONS, keys, compute_landmarks(organs))
    there = side_offsets(_flip(stations), STATIONS, keys, compute_landmarks(_flip(organs)))
    for k in keys:
        assert here[k] > 5 and there[k] < -5
        assert abs(here[k] + there[k]) < 3  # the same distance, on the other side


def test_a_scan_cropped_below_the_carina_is_implausible(cohort, model):
    case = list(cohort)[0]
    ct, organs, stations = _load(case)
    k_car = int(np.flatnonzero((organs.array == ORGANS.by_key("trachea").id)
                               .any(axis=(1, 2))).min())

    def crop(img):
        return Image(img.array[:k_car].copy(), img.spacing, img.origin, img.direction)

    report = check_case(crop(ct), crop(organs), crop(stations),
                        reference=read_reference(model, [case.fold]))
    fired = _fired(report)
    assert report.verdict == "implausible"
    assert fired["missing_stations"].severity == "implausible"
    assert {"1L", "1R", "2L", "2R", "3A", "4L", "4R"} <= set(fired["missing_stations"].labels)
    assert "trachea" in fired["missing_organs"].labels
    assert ("position_range", "no carina (no trachea in the organ map)") in {
        (s.name, s.reason) for s in report.skipped}


def test_labels_outside_the_body_and_on_the_table(cohort):
    ct, organs, stations = _load(list(cohort)[3])
    body = body_mask(ct)
    assert not (organs.array[~body]).any() and not (stations.array[~body]).any()
    hu = ct.array.copy()
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    table_row = rows.max() + 4  # a 5.6 mm plate 11 mm behind the patient's back
    hu[:, table_row:table_row + 2, 10:-10] = 400
    table_ct = ct.with_array(hu)
    assert not body_mask(table_ct)[:, table_row:table_row + 2].any()  # the table is not body
    st = stations.array.copy()
    st[30:40, table_row:table_row + 2, 50:70] = STATIONS.by_key("7").id  # on the table
    st[30:40, 2:6, 2:8] = STATIONS.by_key("4R").id  # in the air in front of the patient
    report = check_case(table_ct, organs, stations.with_array(st))
    fired = _fired(report)
    assert fired["outside_body"].severity == "implausible"
    assert {lab.split()[0] for lab in fired["outside_body"].labels} == {"4R", "7"}
    assert {lab.split()[0] for lab in fired["outside_mediastinum"].labels} >= {"7"}


def test_islands_a_swollen_and_a_moved_station(cohort, model):
    case = list(cohort)[1]
    ct, organs, stations = _load(case)
    ref = read_reference(model, [case.fold])
    st = stations.array.copy()
    st[st == STATIONS.by_key("3P").id] = 0
    st[st == STATIONS.by_key("7").id] = 0
    box = np.argwhere(stations.array == STATIONS.by_key("7").id)
    lo, hi = box.min(axis=0), box.max(axis=0) + 1
    # station 7 moved 12 slices (60 mm) down
    st[lo[0] - 12:hi[0] - 12, lo[1]:hi[1], lo[2]:hi[2]][
        stations.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == STATIONS.by_key("7").id] = \
        STATIONS.by_key("7").id
    from scipy import ndimage

    grown = ndimage.binary_dilation(stations.array == STATIONS.by_key("3P").id,
                                    iterations=4) & (st == 0)
    st[grown] = STATIONS.by_key("3P").id  # swollen into the free voxels around it
    # 4R: a second copy of itself 100 mm lower (two equal pieces, half its volume away)
    r4 = stations.array == STATIONS.by_key("4R").id
    st[:-20][r4[20:]] = STATIONS.by_key("4R").id
    report = check_case(ct, organs, stations.with_array(st), reference=ref)
    fired = _fired(report)
    assert fired["volume_range"].labels[0].startswith("3P")
    assert any(lab.startswith("7 ") and "superior" not in lab
               for lab in fired["position_range"].labels)
    assert fired["fragments"].labels[0].startswith("4R")


def test_the_envelope_holds_the_truth_and_not_the_neck_or_abdomen(cohort):
    ct, organs, stations = _load(list(cohort)[0])
    env = mediastinal_envelope(organs)
    inside = env[stations.array > 0].mean()
    assert inside > 0.99
    lungs = np.isin(organs.array, [ORGANS.by_key(k).id for k in ("lung_r", "lung_l")])
    below = int(np.flatnonzero(lungs.any(axis=(1, 2))).min())
    assert not env[:below].any()  # nothing under the lowest lung slice
    top = int(np.flatnonzero((organs.array == ORGANS.by_key("trachea").id)
                             .any(axis=(1, 2))).max())
    assert not env[top + 3:].any()  # nothing 15 mm above the trachea
    assert mediastinal_envelope(organs.with_array(np.zeros_like(organs.array))) is None


def test_the_reference_records_training_cases_once_and_merges(cohort, tmp_path):
    root = tmp_path / "m"
    threads = [threading.Thread(target=record_training_cases, args=(root, cohort, f))
               for f in (0, 1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads((root / REFERENCE_FILE).read_text())
    assert sorted(data["cases"]) == sorted(cohort.case_ids)  # no fold's cases lost
    for case in cohort:
        assert data["cases"][case.id]["trained_in"] == sorted(
            {0, 1, 2, 3} - {case.fold})
    assert read_reference(root, [0]).n_cases == len(cohort.train_ids(0))
    assert read_reference(root).n_cases == len(cohort)
    assert sorted(p.name for p in root.iterdir()) == [f".{REFERENCE_FILE}.lock",
                                                      REFERENCE_FILE]  # no temporary file
    # offsets are from the carina: the same anatomy shifted in the scanner gives the same
    case = cohort.case(cohort.case_ids[0])
    entry = data["cases"][case.id]["stations"]["7"]
    assert entry["offset_mm"][2] < 0  # station 7 lies below the carina
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    for role in ("organs", "stations"):
        img = read_image(case.path(role), label=True)
        from deepstationing.data.image import write_image

        write_image(Image(img.array, img.spacing, (img.origin[0] + 40, img.origin[1] - 25,
                                                   img.origin[2] + 300), img.direction),
                    shifted / f"{role}.nii.gz")
    from deepstationing.data.cohort import Case

    record_cases(tmp_path / "m2", [Case("x", shifted, 0)], 1)
    moved = json.loads((tmp_path / "m2" / REFERENCE_FILE).read_text())["cases"]["x"]
    assert np.allclose(moved["stations"]["7"]["offset_mm"], entry["offset_mm"], atol=0.01)


def test_a_broken_case_leaves_no_reference_and_says_so(cohort, tmp_path, caplog):
    import shutil

    from deepstationing.phantom import generate_cohort as gen

    c = gen(tmp_path / "c", 4, seed=1, preset="small", spacing=(11.2, 11.2, 20.0),
            progress=None)
    case = c.case(c.train_ids(0)[0])
    case.stations.write_bytes(b"not an image")
    assert record_training_cases(tmp_path / "m", c, 0) is None
    assert "QC reference not updated" in caplog.text and str(case.stations) in caplog.text
    assert not (tmp_path / "m" / REFERENCE_FILE).exists()
    shutil.rmtree(tmp_path / "c")


def test_real_ct_body_matches_the_clinical_body_contour_and_leaves_the_table(real_path):
    """Visible Human neck: our body mask against the BODY ROI of its RT structure set."""
    ct = read_image(real_path("visible_human_neck_rtstruct/Image.nii.gz"))
    roi = read_image(real_path("visible_human_neck_rtstruct/Mask.nii.gz"), label=True)
    body = body_mask(ct)
    ref = roi.array == 2  # BODY (1 is the spinal cord inside it)
    dice = 2 * (body & ref).sum() / (body.sum() + ref.sum())
    assert dice > 0.97
    table = (ct.array > -500) & ~ref
    table[:, :380] = False  # the couch lies below row 380
    assert table.sum() > 5000 and not (body & table).any()


def test_real_ct_table_is_not_body(real_path):
    """lung2: a contrast chest CT with its table and blankets."""
    ct = read_image(real_path("pyradiomics_thorax/lung2_image.nrrd"))
    body = body_mask(ct)
    k = ct.shape[0] // 2
    assert body[k, 250:300, 240:270].all()  # the mediastinum, filled
    assert body[k, 200:350, 100:400].mean() > 0.99  # the lungs too
    couch = ct.array[:, 480:] > -500  # the curved couch under the patient's back
    assert couch.sum() > 50000 and not body[:, 480:].any()
