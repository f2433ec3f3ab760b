"""``dataset import``: a clinic's CT + RTSTRUCT (or label maps) -> cohort, with a mapping file.

Real structure sets from ../shared/data/real: the IBSI phantom (CT series + GTV), the
Visible Human neck (4 CT slices + BODY, SpinalCord) and the dicompyler breast plan (BODY,
Heart, Lt Lung, ...; its CT is regenerated on the referenced grid, the fixture ships only
one slice). Round trips through our own export check exact labels and left/right.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest

from deepstationing.cli.main import main
from deepstationing.data.cohort import Cohort
from deepstationing.data.dicom.export import export_dicom
from deepstationing.data.dicom.rtstruct import rasterize_rtstruct, read_rtstruct
from deepstationing.data.dicom.series import read_series_reference, write_ct_series
from deepstationing.data.image import Image, read_image, write_image
from deepstationing.data.importer import REPORT_JSON, REPORT_MD, import_dataset
from deepstationing.data.roimap import RoiMapping
from deepstationing.errors import InputError
from deepstationing.phantom import generate_case
from deepstationing.schema import ORGANS, STATIONS
from dicom_tools import dice, plastimatch_masks

MAPPING = """\
organs:
  lung_l: [Lt Lung]
  heart: Heart
ignore: [BODY, Borders, "Scar"]
"""


def breast_ct(real_path, out, *, frame_of_reference_uid=None):
    """The dicompyler breast plan's CT grid (98 slices of 3 mm) as a CT series (zeros)."""
    h = pydicom.dcmread(real_path("dicompyler_breast_rtstruct/ct.0.dcm"),
                        stop_before_pixels=True)
    ps = [float(v) for v in h.PixelSpacing]
    x, y, z_top = (float(v) for v in h.ImagePositionPatient)
    grid = Image(np.zeros((98, 512, 512), np.int16), spacing=(ps[1], ps[0], 3.0),
                 origin=(x, y, z_top - 97 * 3.0))
    return write_ct_series(grid, out, patient_id=str(h.PatientID),
                           study_uid=str(h.StudyInstanceUID),
                           frame_of_reference_uid=frame_of_reference_uid
                           or str(h.FrameOfReferenceUID))


@pytest.fixture(scope="module")
def real_import(real_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real_import")
    src = tmp / "clinic"
    src.mkdir()
    os.symlink(real_data / "ibsi_ct_phantom" / "dicom", src / "ibsi")
    os.symlink(real_data / "visible_human_neck_rtstruct", src / "vhm")
    (src / "breast").mkdir()
    os.symlink(real_data / "dicompyler_breast_rtstruct" / "rtss.dcm", src / "breast" / "rs.dcm")

    def real_path(rel):
        return real_data / rel

    breast_ct(real_path, src / "breast" / "ct")
    (tmp / "rois.yaml").write_text(MAPPING)
    result = import_dataset(src, tmp / "cohort", mapping=RoiMapping.load(tmp / "rois.yaml"))
    return tmp, src, result


def _case(result, cid):
    return next(c for c in result.report["cases"] if c["id"] == cid)


def test_real_rtstructs_import_with_mapping_file(real_import):
    tmp, src, result = real_import
    cohort = Cohort(tmp / "cohort")
    assert cohort.case_ids == ["breast", "ibsi", "vhm"]
    assert cohort.manifest["generator"] == "deepstationing.import"
    assert [e["patient"] for e in cohort.manifest["cases"]] == ["P001", "P002", "P003"]
    breast = _case(result, "breast")
    assert breast["mapped"] == {"Heart": "heart", "Lt Lung": "lung_l"}
    assert sorted(breast["ignored"]) == ["BODY", "Borders", "Scar"]
    assert sorted(breast["unmapped"]) == ["Areola", "Breast", "Nodes", "Tumor Bed",
                                          "Tumor Bed Block"]
    assert breast["empty"] == ["Areola"]  # listed, not dropped
    assert sorted(set(ORGANS.keys) - set(breast["missing_organs"])) == ["heart", "lung_l"]
    assert breast["missing_stations"] == STATIONS.keys and not breast["has_stations"]
    # our spine is the bony spine: the spinal cord is not mapped onto it
    assert _case(result, "vhm")["unmapped"] == ["SpinalCord"]
    assert _case(result, "vhm")["ignored"] == ["BODY"]
    assert result.unmapped_rois()["GTV-1"] == ["ibsi"]
    report = json.loads((tmp / "cohort" / REPORT_JSON).read_text())
    assert report["unmapped_rois"] == result.unmapped_rois()
    md = (tmp / "cohort" / REPORT_MD).read_text()
    assert "`SpinalCord` | vhm" in md and "Tumor Bed Block" in md
    # files: CT for every case, organs only where an organ was found, no stations
    assert cohort.case("breast").has("organs") and not cohort.case("ibsi").has("organs")
    assert not any(c.has("stations") for c in cohort)
    ibsi = read_image(cohort.case("ibsi").ct)
    assert ibsi.shape == (60, 201, 204) and ibsi.array.dtype == np.int16
    meta = cohort.case("breast").meta()
    assert meta["import"]["ct"]["kind"] == "dicom" and meta["patient"] == "P001"


def test_real_rasterisation_agrees_with_plastimatch(real_import, plastimatch):
    """Our masks of every real ROI vs plastimatch's (--xor-contours), on the same CT grids."""
    tmp, src, result = real_import
    scores = {}
    for case, rs in (("breast", src / "breast" / "rs.dcm"),
                     ("ibsi", next((src / "ibsi" / "mask").iterdir())),
                     ("vhm", src / "vhm" / "RS_Body_SpinalCord.dcm")):
        ct = src / case / ("ct" if case == "breast" else "image" if case == "ibsi" else "")
        ref = read_series_reference(ct)
        ours = rasterize_rtstruct(read_rtstruct(rs), ref)
        pm = plastimatch_masks(rs, tmp / "pm" / case, referenced_ct=ct)
        for name, mask in ours.items():
            if mask.any():
                assert pm[name][1].same_geometry(ref.image)
                scores[f"{case}/{name}"] = dice(mask, pm[name][0])
    assert {"breast/Lt Lung", "breast/Heart", "ibsi/GTV-1", "vhm/BODY"} <= set(scores)
    low = {k: round(v, 4) for k, v in scores.items() if v < 0.98}
    assert not low, low
    # the imported organ map holds those masks (the heart keeps the voxels both claim)
    organs = read_image(Cohort(tmp / "cohort").case("breast").organs, label=True)
    lung = organs.array == ORGANS.by_key("lung_l").id
    heart = organs.array == ORGANS.by_key("heart").id
    ref = read_series_reference(src / "breast" / "ct")
    ours = rasterize_rtstruct(read_rtstruct(src / "breast" / "rs.dcm"), ref)
    assert np.array_equal(heart, ours["Heart"])
    assert np.array_equal(lung, ours["Lt Lung"] & ~ours["Heart"])
    # the left lung lies on the patient's left (+x in LPS), where its contours are
    x = organs.index_to_world(np.argwhere(lung).mean(axis=0))[0]
    contour_x = np.mean(np.concatenate([c[:, 0] for c in read_rtstruct(
        src / "breast" / "rs.dcm").rois[5].contours]))
    assert x > 30 and abs(x - contour_x) < 10


def test_frame_of_reference_mismatch_stops_the_import(real_path, tmp_path, capsys):
    src = tmp_path / "clinic"
    (src / "breast").mkdir(parents=True)
    os.symlink(real_path("dicompyler_breast_rtstruct/rtss.dcm"), src / "breast" / "rs.dcm")
    breast_ct(real_path, src / "breast" / "ct", frame_of_reference_uid="1.2.3.4.5")
    rc = main(["dataset", "import", str(src), "-o", str(tmp_path / "cohort")])
    err = capsys.readouterr().err
    assert rc == 2 and "rs.dcm" in err and "Frame of Reference" in err
    assert "1.2.3.4.5" in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "cohort").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cohort")]


@pytest.fixture(scope="module")
def exported_cases(tmp_path_factory):
    """Two phantom scans of one patient and one of another, as CT series + our RTSTRUCT."""
    tmp = tmp_path_factory.mktemp("round_trip")
    cases = {}
    for name, index, patient in (("a_scan1", 4, "PAT-A"), ("a_scan2", 5, "PAT-A"),
                                 ("b_scan1", 6, "PAT-B")):
        case = generate_case(index, preset="small", spacing=(5.6, 5.6, 10.0))
        write_ct_series(case.ct, tmp / "src" / name / "CT", patient_id=patient,
                        uid_seed=name)
        export_dicom(tmp / "src" / name / "CT", tmp / "src" / name / "RS", formats=("rtstruct",),
                     stations=case.stations, organs=case.organs)
        cases[name] = case
    return tmp, cases


def test_round_trip_of_our_rtstruct_is_exact(exported_cases):
    tmp, cases = exported_cases
    result = import_dataset(tmp / "src", tmp / "cohort")  # built-in names only
    cohort = result.cohort
    assert result.unmapped_rois() == {}
    for name, case in cases.items():
        st = read_image(cohort.case(name).stations, label=True)
        org = read_image(cohort.case(name).organs, label=True)
        assert st.same_geometry(case.ct)
        assert np.array_equal(st.array, case.stations.array)
        assert np.array_equal(org.array, case.organs.array)
        # LNS_4R comes back as station 4R, on the patient's right (-x) of 4L
        xr = st.index_to_world(np.argwhere(st.array == STATIONS.by_key("4R").id).mean(0))[0]
        xl = st.index_to_world(np.argwhere(st.array == STATIONS.by_key("4L").id).mean(0))[0]
        assert xr < xl
    folds = {c.id: c.fold for c in cohort}
    assert folds["a_scan1"] == folds["a_scan2"] != folds["b_scan1"]
    patients = {e["id"]: e["patient"] for e in cohort.manifest["cases"]}
    assert patients["a_scan1"] == patients["a_scan2"] != patients["b_scan1"]
    assert "PAT-A" not in (tmp / "cohort" / "manifest.json").read_text()


def test_nifti_label_maps_and_masks_and_replacing_an_import(exported_cases, tmp_path):
    _, cases = exported_cases
    case = cases["b_scan1"]
    src = tmp_path / "src"
    write_image(case.ct, src / "n1" / "ct.nii.gz")
    write_image(case.organs, src / "n1" / "organs.nii.gz")
    # stations as per-ROI masks named the clinic's way, one stored with a flipped x axis
    nx = case.ct.shape[2]
    for key, name in (("4R", "LN 4R"), ("7", "Station_7")):
        m = (case.stations.array == STATIONS.by_key(key).id).astype(np.uint8)
        img = case.ct.with_array(m)
        if key == "4R":
            img = Image(m[:, :, ::-1].copy(), case.ct.spacing,
                        case.ct.index_to_world((0, 0, nx - 1)), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
        write_image(img, src / "n1" / "masks" / f"{name}.nii.gz")
    write_image(case.ct.with_array((case.ct.array > 0).astype(np.uint8)),
                src / "n1" / "masks" / "Couch.nii.gz")
    (src / "n1" / "notes.txt").write_text("plan notes")
    out = tmp_path / "cohort"
    result = import_dataset(src, out, mapping=RoiMapping.from_dict({"ignore": ["Couch"]}))
    rep = result.report["cases"][0]
    assert rep["mapped"]["LN 4R"] == "4R" and rep["mapped"]["Station_7"] == "7"
    assert rep["ignored"] == ["Couch"] and rep["unused_files"] == ["notes.txt"]
    assert sorted(set(STATIONS.keys) - set(rep["missing_stations"])) == ["4R", "7"]
    st = read_image(result.cohort.case("n1").stations, label=True)
    for key in ("4R", "7"):
        assert np.array_equal(st.array == STATIONS.by_key(key).id,
                              case.stations.array == STATIONS.by_key(key).id)
    org = read_image(result.cohort.case("n1").organs, label=True)
    assert np.array_equal(org.array, case.organs.array)
    # re-running replaces the earlier import; a foreign folder is refused
    import_dataset(src, out)
    assert Cohort(out).case_ids == ["n1"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("keep")
    with pytest.raises(InputError, match="not an import cohort"):
        import_dataset(src, foreign)
    assert (foreign / "keep.txt").read_text() == "keep"
    with pytest.raises(InputError, match="contain one another"):
        import_dataset(src, src / "cohort")
    assert not (src / "cohort").exists()


def test_skip_bad_lists_failed_cases(exported_cases, tmp_path):
    tmp, _ = exported_cases
    src = tmp_path / "src"
    src.mkdir()
    (src / "README.txt").write_text("export of 2024-05")  # not data: SRC stays a folder of cases
    os.symlink(tmp / "src" / "a_scan1", src / "good")
    (src / "broken").mkdir()
    (src / "broken" / "ct.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match="ct.nii.gz"):
        import_dataset(src, tmp_path / "c1")
    result = import_dataset(src, tmp_path / "c2", skip_bad=True)
    assert result.cohort.case_ids == ["good"]
    assert "broken" in result.report["failed"][0]["source"]
    assert "ct.nii.gz" in result.report["failed"][0]["error"]


@pytest.mark.parametrize("text, problem", [
    ("organs:\n  lungs: [Lungs]\n", "unknown organ 'lungs'"),
    ("stations:\n  4X: [LN 4X]\n", "unknown station '4X'"),
    ("organs:\n  heart: [Heart]\nstations:\n  4R: [heart]\n", "given for both"),
    ("organs: [a, b]\n", "must map label keys"),
    ("organs:\n  heart: {a: 1}\n", "expected a ROI name"),
    ("colours: {}\n", "unknown key"),
    ("organs:\n  heart: [Heart\n", "not a readable YAML"),
])
def test_bad_mapping_files_are_refused(tmp_path, text, problem):
    path = tmp_path / "rois.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        RoiMapping.load(path)
    assert problem in str(exc.value) and str(path) in str(exc.value)


def test_wildcards_that_claim_two_labels_are_an_error():
    m = RoiMapping.from_dict({"organs": {"lung_l": ["Lung*"], "lung_r": ["*R"]}})
    assert m.match("Lung_L")[1].key == "lung_l"
    with pytest.raises(InputError, match="lung_l and lung_r"):
        m.match("Lung_R")


def test_example_mapping_file_and_cli(exported_cases, tmp_path, capsys):
    from deepstationing.cli.dataset import example_map_text

    (tmp_path / "rois.yaml").write_text(example_map_text())
    m = RoiMapping.load(tmp_path / "rois.yaml")
    for name, key in (("Lung-Left", "lung_l"), ("LN 4R", "4R"), ("Station_4R", "4R"),
                      ("4R", "4R"), ("Trachea", "trachea"), ("Esophagus_upper", "esophagus")):
        assert m.match(name)[1].key == key, name
    assert m.match("SpinalCord")[0] == "ignored"
    tmp, _ = exported_cases
    rc = main(["dataset", "import", str(tmp / "src"), "-o", str(tmp_path / "cohort"), "--map",
               str(tmp_path / "rois.yaml")])
    out = capsys.readouterr().out
    assert rc == 0 and "imported 3 case(s)" in out and "import_report.md" in out
    assert main(["dataset", "example-map"]) == 0
    assert "stations:" in capsys.readouterr().out
