"""RTSTRUCT and SEG out: validated by dciodvfy and plastimatch, read back exactly, L/R kept.

A phantom case is written as a DICOM CT series (our converter), its truth exported as an
RT structure set and DICOM SEGs; external tools nobody here wrote check the files: dciodvfy
(zero errors), plastimatch (reads the contours back to masks), highdicom (reads the SEG).
The same on the real IBSI CT series.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from deepstationing.data.dicom.export import RTSTRUCT_FILE, SEG_FILES, export_dicom
from deepstationing.data.dicom.rtstruct import (
    rasterize_rtstruct,
    read_rtstruct,
    rois_from_label_map,
    write_rtstruct,
)
from deepstationing.data.dicom.seg import read_seg
from deepstationing.data.dicom.series import read_series_reference, write_ct_series
from deepstationing.data.image import Image, read_image, write_image
from deepstationing.data.regrid import on_grid
from deepstationing.errors import InputError
from deepstationing.phantom import generate_case
from deepstationing.schema import ORGANS, STATIONS
from dicom_tools import dciodvfy_report, dice, plastimatch_masks


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """Phantom case 0 (small preset) as a DICOM CT series, with its truth and exports."""
    tmp = tmp_path_factory.mktemp("phantom_dicom")
    case = generate_case(0, preset="small")
    write_ct_series(case.ct, tmp / "ct", patient_id="PH000", uid_seed="phantom-0")
    files = export_dicom(tmp / "ct", tmp / "out", stations=case.stations, organs=case.organs)
    return case, tmp, files


def _world_x(image: Image, mask: np.ndarray) -> float:
    return image.index_to_world(np.argwhere(mask).mean(axis=0))[0]


def test_ct_series_round_trip_and_dciodvfy_clean(phantom, dciodvfy):
    case, tmp, _ = phantom
    ref = read_series_reference(tmp / "ct")
    assert ref.image.same_geometry(case.ct)
    assert np.array_equal(ref.image.array, case.ct.array)
    assert len(ref.headers) == case.ct.shape[0] and ref.first.PatientID == "PH000"
    for k in (0, case.ct.shape[0] // 2):
        errors, _ = dciodvfy_report(sorted((tmp / "ct").iterdir())[k])
        assert errors == []


def test_rtstruct_dciodvfy_references_and_decimal_strings(phantom, dciodvfy):
    case, tmp, files = phantom
    assert [f.name for f in files] == [RTSTRUCT_FILE, SEG_FILES["stations"], SEG_FILES["organs"]]
    errors, _ = dciodvfy_report(tmp / "out" / RTSTRUCT_FILE)
    assert errors == []
    ds = pydicom.dcmread(tmp / "out" / RTSTRUCT_FILE)
    ref = read_series_reference(tmp / "ct")
    assert ds.Modality == "RTSTRUCT" and ds.ApprovalStatus == "UNAPPROVED"
    assert ds.PatientID == "PH000" and ds.StudyInstanceUID == ref.study_uid
    assert ds.FrameOfReferenceUID == ref.frame_of_reference_uid
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ref.series_uid
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == \
        ref.sop_instance_uids
    names = [r.ROIName for r in ds.StructureSetROISequence]
    assert names[:12] == [f"LNS_{s}" for s in STATIONS.keys]
    assert names[12:] == [o.roi_name for o in ORGANS]
    colours = {r.ReferencedROINumber: tuple(r.ROIDisplayColor) for r in ds.ROIContourSequence}
    assert colours[8] == STATIONS.by_key("4R").color
    # every contour names the CT slice it lies on, and every DS value fits 16 characters
    z_of_uid = {h.SOPInstanceUID: float(h.ImagePositionPatient[2]) for h in ref.headers}
    raw = pydicom.dcmread(tmp / "out" / RTSTRUCT_FILE, defer_size=None)
    for rc in raw.ROIContourSequence:
        for c in rc.ContourSequence:
            uid = c.ContourImageSequence[0].ReferencedSOPInstanceUID
            assert np.isclose(float(c.ContourData[2]), z_of_uid[uid])
            assert c.NumberOfContourPoints * 3 == len(c.ContourData)
    text = (tmp / "out" / RTSTRUCT_FILE).read_bytes()
    assert b"-40.400001525878906" not in text
    for rc in raw.ROIContourSequence[:3]:
        for c in rc.ContourSequence[:5]:
            assert all(len(str(v)) <= 16 for v in c["ContourData"].value)


def test_plastimatch_reads_our_rtstruct_back(phantom, plastimatch, tmp_path):
    """plastimatch's rasterisation of our contours vs the exported label maps."""
    case, tmp, _ = phantom
    masks = plastimatch_masks(tmp / "out" / RTSTRUCT_FILE, tmp_path / "pm",
                              referenced_ct=tmp / "ct")
    scores = {}
    for labels, truth in ((STATIONS, case.stations), (ORGANS, case.organs)):
        for lab in labels:
            mask, img = masks[lab.roi_name]
            assert img.same_geometry(case.ct)
            scores[lab.key] = dice(mask, truth.array == lab.id)
    low = {k: round(v, 4) for k, v in scores.items() if v < 0.97}
    assert not low, low
    # lateralised structures come back on the patient's right (-x in LPS)
    for r, left in (("LNS_4R", "LNS_4L"), ("LNS_2R", "LNS_2L"), ("LNS_1R", "LNS_1L"),
                    ("Lung_R", "Lung_L")):
        assert _world_x(case.ct, masks[r][0]) < _world_x(case.ct, masks[left][0])


def test_our_reader_and_highdicom_read_back_exactly(phantom, dciodvfy):
    case, tmp, _ = phantom
    ref = read_series_reference(tmp / "ct")
    back = rasterize_rtstruct(read_rtstruct(tmp / "out" / RTSTRUCT_FILE), ref)
    for lab in STATIONS:
        assert np.array_equal(back[lab.roi_name], case.stations.array == lab.id), lab.key
    for kind, labels, truth in (("stations", STATIONS, case.stations),
                                ("organs", ORGANS, case.organs)):
        path = tmp / "out" / SEG_FILES[kind]
        assert dciodvfy_report(path)[0] == []
        seg, seg_labels = read_seg(path, ref)
        assert np.array_equal(seg.array, truth.array)
        assert seg_labels == list(labels)
    ds = pydicom.dcmread(tmp / "out" / SEG_FILES["stations"])
    s4r = ds.SegmentSequence[7]
    t = s4r.SegmentedPropertyTypeCodeSequence[0]
    assert (s4r.SegmentNumber, s4r.SegmentLabel, t.CodeValue, t.CodingSchemeDesignator) == \
        (8, "LNS_4R", "127932007", "SCT")
    assert t.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"
    assert s4r.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"


def test_flipped_x_label_map_gives_the_same_structures(phantom, tmp_path):
    """Labels stored with a mirrored x axis land on the same patient side."""
    case, tmp, _ = phantom
    st = case.stations
    nx = st.shape[2]
    flipped = Image(st.array[:, :, ::-1].copy(), st.spacing, st.index_to_world((0, 0, nx - 1)),
                    (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_image(flipped, tmp_path / "flipped.nii.gz")
    export_dicom(tmp / "ct", tmp_path / "out", stations=read_image(tmp_path / "flipped.nii.gz",
                                                                   label=True),
                 formats=("rtstruct",))
    ref = read_series_reference(tmp / "ct")
    back = rasterize_rtstruct(read_rtstruct(tmp_path / "out" / RTSTRUCT_FILE), ref)
    for lab in STATIONS:
        assert np.array_equal(back[lab.roi_name], st.array == lab.id), lab.key
    assert _world_x(ref.image, back["LNS_4R"]) < _world_x(ref.image, back["LNS_4L"])


def test_ct_with_flipped_x_axis_keeps_left_and_right(tmp_path):
    """A CT stored right-to-left: DICOM keeps its orientation, contours stay on their side."""
    case = generate_case(1, preset="small", spacing=(5.6, 5.6, 10.0))
    ct, st = case.ct, case.stations
    nx = ct.shape[2]
    mirror = dict(spacing=ct.spacing, origin=ct.index_to_world((0, 0, nx - 1)),
                  direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    ct_f = Image(ct.array[:, :, ::-1].copy(), **mirror)
    st_f = Image(st.array[:, :, ::-1].copy(), **mirror)
    ref = write_ct_series(ct_f, tmp_path / "ct", uid_seed="flip")
    ref = read_series_reference(tmp_path / "ct")
    assert np.allclose(ref.image.direction_matrix[:, 0], (-1, 0, 0))
    rois = rois_from_label_map(st_f, STATIONS)
    write_rtstruct(rois, ref, tmp_path / "rs.dcm")
    ss = read_rtstruct(tmp_path / "rs.dcm")
    x = {r.name: np.mean(np.concatenate(r.contours)[:, 0]) for r in ss.rois}
    assert x["LNS_4R"] < x["LNS_4L"] and x["LNS_1R"] < x["LNS_1L"]
    back = rasterize_rtstruct(ss, ref)
    # the slice normal (row x column) points to the feet here, so the series reads back
    # with its slices in the other order: the contours must be where the labels are in the
    # world, each naming the CT slice at its z (traced from the label map's own geometry)
    assert np.allclose(ref.image.direction_matrix[:, 2], (0, 0, -1))
    on_ct = on_grid(st_f, ref.image).array
    assert not np.array_equal(on_ct, st_f.array)
    for lab in STATIONS:
        assert np.array_equal(back[lab.roi_name], on_ct == lab.id), lab.key
    z_of_uid = {h.SOPInstanceUID: float(h.ImagePositionPatient[2]) for h in ref.headers}
    raw = pydicom.dcmread(tmp_path / "rs.dcm")
    for rc in raw.ROIContourSequence:
        for c in rc.ContourSequence:
            uid = c.ContourImageSequence[0].ReferencedSOPInstanceUID
            assert np.isclose(float(c.ContourData[2]), z_of_uid[uid])


def test_frame_of_reference_mismatch_is_a_one_line_error(phantom, tmp_path):
    case, tmp, _ = phantom
    other = write_ct_series(case.ct, tmp_path / "other_ct", uid_seed="another-scan")
    ss = read_rtstruct(tmp / "out" / RTSTRUCT_FILE)
    with pytest.raises(InputError) as exc:
        rasterize_rtstruct(ss, other)
    msg = str(exc.value)
    assert "\n" not in msg and RTSTRUCT_FILE in msg and "Frame of Reference" in msg
    assert other.frame_of_reference_uid in msg


def test_bad_inputs_are_refused(phantom, tmp_path):
    case, tmp, _ = phantom
    with pytest.raises(InputError, match="not on the voxel grid"):
        shifted = Image(case.stations.array, case.stations.spacing,
                        np.add(case.stations.origin, (1.3, 0, 0)))
        export_dicom(tmp / "ct", tmp_path / "o1", stations=shifted)
    with pytest.raises(InputError, match="every ROI is empty"):
        export_dicom(tmp / "ct", tmp_path / "o2",
                     stations=case.stations.with_array(np.zeros(case.stations.shape, np.uint8)),
                     formats=("rtstruct",))
    with pytest.raises(InputError, match="not station ids"):
        export_dicom(tmp / "ct", tmp_path / "o3", stations=case.organs, formats=("rtstruct",))
    with pytest.raises(InputError, match="not an RT Structure Set"):
        read_rtstruct(sorted((tmp / "ct").iterdir())[0])
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match="junk.dcm"):
        read_rtstruct(tmp_path / "junk.dcm")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_real_ibsi_series_export_and_reimport(real_path, dciodvfy, plastimatch, tmp_path):
    """On a real CT series: the IBSI GTV mask as a station and the thresholded lung."""
    ct_dir = real_path("ibsi_ct_phantom/dicom/image")
    ref = read_series_reference(ct_dir)
    gtv = read_image(real_path("ibsi_ct_phantom/nifti/mask/mask.nii.gz"), label=True)
    stations = np.where(gtv.array > 0, STATIONS.by_key("4R").id, 0).astype(np.uint8)
    organs = np.where((ref.image.array < -400) & (gtv.array == 0),
                      ORGANS.by_key("lung_r").id, 0).astype(np.uint8)
    files = export_dicom(ref, tmp_path / "out", stations=gtv.with_array(stations),
                         organs=ref.image.with_array(organs))
    for f in files:
        assert dciodvfy_report(f)[0] == [], f.name
    ds = pydicom.dcmread(files[0])
    assert ds.FrameOfReferenceUID == ref.frame_of_reference_uid
    assert ds.PatientID == ref.first.PatientID
    masks = plastimatch_masks(files[0], tmp_path / "pm", referenced_ct=ct_dir)
    assert dice(masks["LNS_4R"][0], stations > 0) >= 0.97
    assert dice(masks["Lung_R"][0], organs > 0) >= 0.97
    seg, _ = read_seg(files[1], ref)
    assert np.array_equal(seg.array, stations)


def test_missing_tool_skips_or_fails_when_required(monkeypatch):
    import dicom_tools

    monkeypatch.setattr(dicom_tools.shutil, "which", lambda name: None)
    monkeypatch.delenv("DEEPSTATIONING_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dicom3tools"):
        dicom_tools.require_tool("dciodvfy")
    monkeypatch.setenv("DEEPSTATIONING_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="DEEPSTATIONING_REQUIRE_TOOLS=1"):
        dicom_tools.require_tool("plastimatch")


def test_contour_over_64_kb_reads_back_everywhere(tmp_path, dciodvfy, plastimatch):
    """One region with a wiggly outline: a contour of some 6000 vertices, over 64 kB of
    Contour Data. In Explicit VR it had to become UN, which plastimatch (no mask at all) and
    pydicom's reader could not read; the structure set is written in Implicit VR."""
    from scipy import ndimage

    ct = Image(np.zeros((3, 512, 512), np.int16), spacing=(0.7, 0.7, 2.5))
    ref = write_ct_series(ct, tmp_path / "ct", uid_seed="wiggly")
    noise = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(512, 512)), 1.2) > 0
    regions, _ = ndimage.label(noise)
    biggest = regions == np.argmax(np.bincount(regions.ravel())[1:]) + 1
    lab = np.zeros(ct.shape, np.uint8)
    lab[1][ndimage.binary_fill_holes(biggest)] = STATIONS.by_key("4R").id
    path = export_dicom(ref, tmp_path / "out", stations=ct.with_array(lab),
                        formats=("rtstruct",))[0]
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    assert contour.NumberOfContourPoints > 5000
    assert len("\\".join(str(v) for v in contour.ContourData)) > 0xFFFF
    assert dciodvfy_report(path)[0] == []
    masks = plastimatch_masks(path, tmp_path / "pm", referenced_ct=tmp_path / "ct")
    assert dice(masks["LNS_4R"][0], lab > 0) == 1.0
    back = rasterize_rtstruct(read_rtstruct(path), ref)
    assert np.array_equal(back["LNS_4R"], lab > 0)
    # such a file in Explicit VR (what was written before, and other tools write): the
    # long Contour Data is stored as UN; our reader still reads it
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    with pytest.warns(UserWarning, match="changed from 'DS' to 'UN'"):
        ds.save_as(tmp_path / "explicit.dcm", enforce_file_format=True)
    legacy = pydicom.dcmread(tmp_path / "explicit.dcm")
    assert legacy.ROIContourSequence[0].ContourSequence[0]["ContourData"].VR == "UN"
    back = rasterize_rtstruct(read_rtstruct(tmp_path / "explicit.dcm"), ref)
    assert np.array_equal(back["LNS_4R"], lab > 0)


def test_roi_contour_sequence_bytes_are_pydicoms_encoding():
    """The hand-encoded ROI Contour Sequence is byte for byte what pydicom writes for the
    same datasets (Implicit VR Little Endian; odd lengths padded, UIDs with NUL)."""
    import struct

    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from deepstationing.data.dicom.encoding import roi_contour_sequence

    sop_class = "1.2.840.10008.5.1.4.1.1.2"
    uids = ["1.2.3.4", "1.2.3.45", "1.2.826.0.1.3680043.8.498.123"]
    rois = [(1, (255, 0, 0), [(0, 3, ["1", "2.5", "-3", "4", "5", "-6.25", "7", "8", "9"]),
                              (2, 2, ["10.5", "0", "3", "4", "5", "6"])]),
            (7, (12, 200, 3), [(0, 1, ["-174.3945", "12", "0"])])]
    ours = roi_contour_sequence([(n, color, [(k, m, "\\".join(v).encode("ascii"))
                                             for k, m, v in contours])
                                 for n, color, contours in rois], sop_class, uids)

    items = []
    for number, color, contours in rois:
        cs = []
        for i, (k, n, values) in enumerate(contours, start=1):
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, uids[k]
            c = Dataset()
            c.ContourImageSequence = [ref]
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = n
            c.ContourNumber = i
            c.add(DataElement(0x30060050, "DS", values))
            cs.append(c)
        item = Dataset()
        item.ROIDisplayColor = list(color)
        item.ContourSequence = cs
        item.ReferencedROINumber = number
        items.append(item)
    ds = Dataset()
    ds.ROIContourSequence = items
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    write_dataset(fp, ds)
    assert fp.getvalue() == struct.pack("<HHI", 0x3006, 0x0039, len(ours)) + ours
