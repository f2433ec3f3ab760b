"""DICOM series robustness on the real IBSI series: broken files are named, localizers are
left out with a warning naming them, impossible PixelSpacing is refused."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest

from deepstationing.data.image import read_image
from deepstationing.errors import InputError

IBSI_DICOM = "ibsi_ct_phantom/dicom/image"


@pytest.fixture(scope="module")
def reference(real_path):
    return read_image(real_path(IBSI_DICOM))


@pytest.fixture()
def series(real_path, tmp_path):
    dst = tmp_path / "series"
    shutil.copytree(real_path(IBSI_DICOM), dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def _by_position(folder):
    return sorted(folder.glob("*.dcm"), key=lambda f: float(pydicom.dcmread(
        f, stop_before_pixels=True).ImagePositionPatient[2]))


@pytest.mark.parametrize("index", [30, 0, -1])  # middle, and both ends (no gap there)
@pytest.mark.parametrize("keep", [-10, 40_000, 1000])  # bytes kept (negative: cut that many)
def test_truncated_file_is_named(series, index, keep):
    victim = _by_position(series)[index]
    data = victim.read_bytes()
    victim.write_bytes(data[:keep])
    with pytest.raises(InputError, match=rf"^{victim}: truncated file") as exc:
        read_image(series)
    assert "missing slices" not in str(exc.value) and "\n" not in str(exc.value)


def test_unreadable_dicom_file_is_named(series):
    bad = series / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10")
    with pytest.raises(InputError, match=rf"^{bad}: (unreadable|incomplete) DICOM file"):
        read_image(series)


def test_other_files_in_the_folder_are_ignored(series, real_path, reference):
    (series / "README.txt").write_text("scanned 2020")
    shutil.copy(real_path("ibsi_ct_phantom/dicom/mask/DCM_RS_00060.dcm"), series / ".hidden")
    img = read_image(series)
    np.testing.assert_array_equal(img.array, reference.array)


def _add_scout(series, *, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
               orientation=(1, 0, 0, 0, 0, -1), new_series=False, name="scout.dcm"):
    ds = pydicom.dcmread(_by_position(series)[0])
    ds.ImageType = list(image_type)
    ds.ImageOrientationPatient = list(orientation)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 999
    if new_series:
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesNumber = 99
    ds.save_as(series / name)
    return series / name


@pytest.mark.parametrize("kind", ["image_type_and_orientation", "image_type_only",
                                  "orientation_only", "own_series"])
def test_localizer_is_left_out_and_named(series, reference, caplog, kind):
    if kind == "image_type_only":
        _add_scout(series, orientation=(1, 0, 0, 0, 1, 0))
    elif kind == "orientation_only":
        _add_scout(series, image_type=("ORIGINAL", "PRIMARY", "AXIAL"))
    else:
        _add_scout(series, new_series=kind == "own_series")
    with caplog.at_level(logging.WARNING, logger="deepstationing"):
        img = read_image(series)
    assert img.same_geometry(reference)
    np.testing.assert_array_equal(img.array, reference.array)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "localizer" in warnings[0] and "scout.dcm" in warnings[0]
    assert str(series) in warnings[0]


def test_two_real_series_still_refused(series):
    uid = pydicom.uid.generate_uid()
    for f in _by_position(series)[:5]:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid
        ds.save_as(series / f"second_{f.name}")
    with pytest.raises(InputError, match="folder holds 2 DICOM series"):
        read_image(series)


@pytest.mark.parametrize("spacing,message", [(["0", "0.977"], r"zero PixelSpacing 0\\0\.977"),
                                              (["-0.977", "0.977"], "negative PixelSpacing"),
                                              ([np.nan, "0.977"], "non-finite PixelSpacing")])
def test_impossible_pixel_spacing_is_refused(series, spacing, message):
    for f in series.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = spacing
        ds.save_as(f)
    with pytest.raises(InputError, match=rf"^{series}: {message}.* in DCM_IMG_"):
        read_image(series)


def test_cli_shows_the_localizer_warning(series, tmp_path, capsys):
    from deepstationing.cli.main import main

    _add_scout(series)
    assert main(["view", "--ct", str(series), "-o", str(tmp_path / "v.png")]) == 0
    err = capsys.readouterr().err
    assert "deepstationing: warning: " in err and "scout.dcm" in err
