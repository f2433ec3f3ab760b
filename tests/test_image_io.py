"""Image I/O: round trips keep world coordinates (patient left stays left); bad input errors."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from deepstationing.data.image import (
    Image,
    check_same_geometry,
    read_dicom_series,
    read_image,
    write_image,
)
from deepstationing.errors import InputError, OutputError

IBSI_DICOM = "ibsi_ct_phantom/dicom/image"


def _world_of_corners(img: Image) -> np.ndarray:
    z, y, x = (s - 1 for s in img.shape)
    corners = [(0, 0, 0), (z, 0, 0), (0, y, 0), (0, 0, x), (z, y, x)]
    return np.array([img.index_to_world(c) for c in corners])


# ---------------------------------------------------------------- geometry basics
def test_index_world_round_trip_with_flipped_direction():
    # x index runs towards patient RIGHT (direction -1): a common RAS-stored layout
    img = Image(np.zeros((3, 4, 5), np.int16), spacing=(0.7, 0.8, 5.0),
                origin=(10.0, -20.0, 30.0), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert img.index_to_world((0, 0, 1)) == pytest.approx((10.0 - 0.7, -20.0, 30.0))
    assert img.index_to_world((2, 0, 0)) == pytest.approx((10.0, -20.0, 40.0))
    assert img.world_to_index(img.index_to_world((1, 2, 3))) == pytest.approx((1, 2, 3))
    assert img.axis_towards(0) == (2, -1)  # towards patient left = decreasing x index
    assert img.axis_towards(2) == (0, 1)


def test_write_read_round_trip_keeps_geometry_and_side(tmp_path):
    arr = np.zeros((6, 7, 8), np.uint8)
    arr[:, :, :2] = 1  # a block on the low-x side
    for direction in [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)]:
        img = Image(arr, spacing=(0.7, 0.7, 5.0), origin=(-100.0, 50.0, 20.0),
                    direction=direction)
        out = write_image(img, tmp_path / "a.nii.gz")
        back = read_image(out, label=True)
        assert back.same_geometry(img)
        np.testing.assert_array_equal(back.array, arr)
        # the labelled block is at the same world position (patient side preserved)
        idx = np.argwhere(back.array == 1).mean(axis=0)
        assert back.index_to_world(idx) == pytest.approx(img.index_to_world(idx))


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    img = Image(np.ones((2, 3, 4), np.int16))
    target = tmp_path / "sub" / "x.nii.gz"
    write_image(img, target)
    write_image(img.with_array(np.full((2, 3, 4), 7, np.int16)), target)  # overwrite
    assert read_image(target).array.max() == 7
    assert [p.name for p in target.parent.iterdir()] == ["x.nii.gz"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "x.nii.gz"
    write_image(Image(np.full((2, 3, 4), 3, np.int16)), target)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", boom)
    with pytest.raises(OutputError, match=r"x\.nii\.gz: cannot write \(disk full\)"):
        write_image(Image(np.zeros((2, 3, 4), np.int16)), target)
    monkeypatch.undo()
    assert read_image(target).array.max() == 3
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]


# ---------------------------------------------------------------- real fixtures
def test_real_nrrd_round_trip_keeps_world_coordinates(real_path, tmp_path):
    src = real_path("pyradiomics_thorax/lung2_image.nrrd")
    img = read_image(src)
    assert img.shape == (61, 512, 512)
    assert img.spacing == pytest.approx((0.6269531, 0.6269531, 5.0))
    back = read_image(write_image(img, tmp_path / "lung2.nii.gz"))
    assert back.same_geometry(img)
    np.testing.assert_array_equal(back.array, img.array)
    np.testing.assert_allclose(_world_of_corners(back), _world_of_corners(img), atol=1e-3)


def test_real_totalseg_nifti_keeps_its_affine(real_path, tmp_path):
    nib = pytest.importorskip("nibabel")
    src = real_path("totalseg_thorax_crops/aorta/aorta.nii.gz")
    img = read_image(src, label=True)
    out = write_image(img, tmp_path / "aorta.nii.gz")
    np.testing.assert_allclose(nib.load(out).affine, nib.load(src).affine, atol=1e-4)
    # independent check of the orientation: the NIfTI affine is RAS; patient left is -R.
    # Our LPS image must put the voxel centroid at the same physical point.
    ras = nib.load(src)
    data = np.asarray(ras.dataobj)
    ijk = np.argwhere(data > 0).mean(axis=0)
    ras_point = ras.affine @ np.r_[ijk, 1.0]
    lps_expected = (-ras_point[0], -ras_point[1], ras_point[2])
    zyx = np.argwhere(img.array > 0).mean(axis=0)
    assert img.index_to_world(zyx) == pytest.approx(lps_expected, abs=1e-3)


def test_real_dicom_series_matches_its_nifti_version(real_path):
    series = read_image(real_path(IBSI_DICOM))
    nifti = read_image(real_path("ibsi_ct_phantom/nifti/image/phantom.nii.gz"))
    assert series.same_geometry(nifti)
    np.testing.assert_array_equal(series.array, nifti.array)
    # first DICOM file's ImagePositionPatient is the LPS position of one corner slice
    first = pydicom.dcmread(sorted(real_path(IBSI_DICOM).glob("*.dcm"))[0])
    ipp = [float(v) for v in first.ImagePositionPatient]
    last = series.shape[0] - 1
    corners = {tuple(np.round(series.index_to_world((k, 0, 0)), 2)) for k in (0, last)}
    assert tuple(np.round(ipp, 2)) in corners


# ---------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.nii\.gz: no such file"):
        read_image(tmp_path / "nope.nii.gz")


def test_not_an_image(tmp_path):
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("this is not an image")
    with pytest.raises(InputError, match=r"notes\.nii\.gz: not a readable image"):
        read_image(bad)


def test_empty_file(tmp_path):
    bad = tmp_path / "empty.nrrd"
    bad.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        read_image(bad)


def test_2d_image(tmp_path):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 6), np.int16)), str(path))
    with pytest.raises(InputError, match=r"slice\.nii\.gz: 2D image"):
        read_image(path)
    one_slice = tmp_path / "one.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 5, 6), np.int16)), str(one_slice))
    with pytest.raises(InputError, match=r"one\.nii\.gz: 2D image"):
        read_image(one_slice)


def test_non_finite_voxels(tmp_path):
    arr = np.zeros((3, 4, 5), np.float32)
    arr[1, 2, 3] = np.nan
    arr[0, 0, 0] = np.inf
    for name in ("nan.nii.gz", "nan.nrrd", "nan.mha"):  # ITK's NIfTI reader zeroes NaN
        path = tmp_path / name
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
        with pytest.raises(InputError, match=rf"{name}: 2 non-finite voxel"):
            read_image(path)


def test_label_map_must_be_non_negative_integers(tmp_path):
    path = tmp_path / "lab.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 4, 5), 0.5, np.float32)), str(path))
    with pytest.raises(InputError, match="non-integer"):
        read_image(path, label=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 4, 5), -1, np.int16)), str(path))
    with pytest.raises(InputError, match="negative"):
        read_image(path, label=True)


def test_single_dicom_file_is_refused(real_path):
    one = sorted(real_path(IBSI_DICOM).glob("*.dcm"))[0]
    with pytest.raises(InputError, match="single DICOM file"):
        read_image(one)


def _copy_series(real_path, tmp_path, name="series"):
    dst = tmp_path / name
    shutil.copytree(real_path(IBSI_DICOM), dst)
    return dst


def test_dicom_folder_with_two_series(real_path, tmp_path):
    folder = _copy_series(real_path, tmp_path)
    second_uid = pydicom.uid.generate_uid()
    for f in sorted(folder.glob("*.dcm"))[:5]:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = second_uid
        ds.save_as(folder / f"second_{f.name}")
    with pytest.raises(InputError, match=r"series: folder holds 2 DICOM series"):
        read_image(folder)


def test_dicom_series_with_missing_slice(real_path, tmp_path):
    folder = _copy_series(real_path, tmp_path)
    files = sorted(folder.glob("*.dcm"), key=lambda f: float(pydicom.dcmread(
        f, stop_before_pixels=True).ImagePositionPatient[2]))
    files[30].unlink()
    with pytest.raises(InputError, match=r"series: DICOM series has missing slices.*1 slice"):
        read_image(folder)


def test_dicom_wrong_modality(real_path, tmp_path):
    folder = _copy_series(real_path, tmp_path)
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    with pytest.raises(InputError, match="modality is MR, expected CT"):
        read_image(folder)
    assert read_dicom_series(folder, modality=None).shape[0] == 60


def test_folder_without_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="no DICOM image series"):
        read_image(tmp_path)


def test_label_geometry_mismatch_names_the_label_file(tmp_path):
    ct = Image(np.zeros((4, 5, 6), np.int16), spacing=(0.7, 0.7, 5.0))
    write_image(ct, tmp_path / "ct.nii.gz")
    for name, lab in {
        "shape.nii.gz": Image(np.zeros((4, 5, 7), np.uint8), spacing=(0.7, 0.7, 5.0)),
        "spacing.nii.gz": Image(np.zeros((4, 5, 6), np.uint8), spacing=(0.7, 0.7, 3.0)),
        "origin.nii.gz": Image(np.zeros((4, 5, 6), np.uint8), spacing=(0.7, 0.7, 5.0),
                               origin=(0, 0, 10)),
        "direction.nii.gz": Image(np.zeros((4, 5, 6), np.uint8), spacing=(0.7, 0.7, 5.0),
                                  direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1)),
    }.items():
        write_image(lab, tmp_path / name)
        with pytest.raises(InputError, match=rf"{name}: geometry mismatch: {name.split('.')[0]}"):
            check_same_geometry(read_image(tmp_path / "ct.nii.gz"),
                                read_image(tmp_path / name, label=True))


def test_written_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from deepstationing.data.atomic import write_json_atomic

    old = os.umask(0o022)
    try:
        img_path = write_image(Image(np.zeros((2, 3, 4), np.int16)), tmp_path / "a.nii.gz")
        json_path = write_json_atomic({"a": 1}, tmp_path / "a.json")
    finally:
        os.umask(old)
    for p in (img_path, json_path):  # not mkstemp's owner-only 0600
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
