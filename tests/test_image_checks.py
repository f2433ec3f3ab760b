"""What ITK reads silently is refused with one line naming the file: truncated voxel data,
zero / negative / non-finite spacing, singular or non-orthonormal directions."""

from __future__ import annotations

import gzip
import struct

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from deepstationing.data.headers import header_problem
from deepstationing.data.image import Image, geometry_problem, read_image, write_image
from deepstationing.errors import InputError

NOISE = np.random.default_rng(0).integers(-1000, 1000, (6, 20, 30)).astype(np.int16)  # z y x


def _cut(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ---------------------------------------------------------------- truncated files
@pytest.mark.parametrize("name,compress", [("ct.nii.gz", False), ("ct.nii", False),
                                           ("ct.nrrd", False), ("ct.nrrd", True),
                                           ("ct.mha", False), ("ct.mha", True)])
def test_truncated_file_is_refused(tmp_path, name, compress):
    path = tmp_path / name
    if name.endswith(".gz"):
        write_image(Image(NOISE), path)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(NOISE), str(path), compress)
    assert read_image(path).array.tolist() == NOISE.tolist()  # complete: fine
    _cut(path)
    with pytest.raises(InputError, match=rf"^{tmp_path / name}: truncated file") as exc:
        read_image(path)
    assert "\n" not in str(exc.value)


def test_itk_alone_reads_a_truncated_nifti_as_zeros(tmp_path):
    """Why the check exists: ITK fills the missing tail with zeros and says nothing."""
    path = _cut(write_image(Image(NOISE), tmp_path / "ct.nii.gz"))
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert arr.shape == NOISE.shape and (arr == 0).mean() > 0.3


def test_truncated_inside_the_header(tmp_path):
    path = write_image(Image(NOISE), tmp_path / "ct.nii.gz")
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(InputError, match="truncated file: the gzip stream ends inside the header"):
        read_image(path)


def test_complete_gzip_variants_are_accepted(tmp_path):
    """The trailer shortcut never refuses a complete file: other members, padding, plain."""
    raw = tmp_path / "ct.nii"
    sitk.WriteImage(sitk.GetImageFromArray(NOISE), str(raw))
    data = raw.read_bytes()
    two_members = tmp_path / "two.nii.gz"
    two_members.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    padded = tmp_path / "padded.nii.gz"
    padded.write_bytes(gzip.compress(data) + b"\0" * 512)
    not_gzipped = tmp_path / "plain.nii.gz"  # a .nii.gz that is not compressed: ITK reads it
    not_gzipped.write_bytes(data)
    for path in (two_members, padded, not_gzipped):
        assert header_problem(path) is None, path
        np.testing.assert_array_equal(read_image(path).array, NOISE)


def test_real_truncated_nifti_and_nrrd(real_path, tmp_path):
    for rel, name in (("totalseg_thorax_crops/aorta/aorta.nii.gz", "aorta.nii.gz"),
                      ("pyradiomics_thorax/lung2_image.nrrd", "lung2.nrrd")):
        path = tmp_path / name
        path.write_bytes(real_path(rel).read_bytes())
        assert header_problem(path) is None
        _cut(path, 0.95)
        with pytest.raises(InputError, match=rf"{name}: truncated file"):
            read_image(path)


def test_a_write_that_comes_out_short_is_an_error(tmp_path, monkeypatch):
    """ITK ignores failed writes (a full disk); the written size is checked."""
    from deepstationing.errors import OutputError

    real = sitk.WriteImage

    def short_write(image, path, *args):
        real(image, path, *args)
        with open(path, "r+b") as fh:
            fh.truncate(400)

    monkeypatch.setattr(sitk, "WriteImage", short_write)
    for name in ("a.nii.gz", "a.nii", "a.nrrd", "a.mha"):
        with pytest.raises(OutputError, match=rf"{name}: cannot write: the file came out "
                                              "incomplete, is the disk full"):
            write_image(Image(NOISE), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- spacing and direction
def _nifti(path, *, pixdim=None, srow=None, qform_code=1, sform_code=0):
    """A NIfTI file whose header fields are set byte by byte (nibabel would fix them)."""
    nib.save(nib.Nifti1Image(NOISE.T.copy(), np.diag([0.7, 0.7, 5.0, 1.0])), path)
    raw = bytearray(path.read_bytes())
    if pixdim is not None:
        struct.pack_into("<3f", raw, 80, *pixdim)
    struct.pack_into("<hh", raw, 252, qform_code, sform_code)
    if srow is not None:
        struct.pack_into("<12f", raw, 280, *np.asarray(srow, float).ravel())
    path.write_bytes(bytes(raw))
    return path


def _nrrd(path, fields):
    header = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 30 20 6\nendian: little\n"
              f"encoding: raw\n{fields}\n\n")
    path.write_bytes(header.encode() + NOISE.tobytes())
    return path


def _mha(path, fields):
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = "
              f"False\nDimSize = 30 20 6\nElementType = MET_SHORT\n{fields}"
              "ElementDataFile = LOCAL\n")
    path.write_bytes(header.encode() + NOISE.tobytes())
    return path


ROT = "space: left-posterior-superior\nspace directions: "
BAD_HEADERS = {
    # name: (writer, expected message); ITK alone reads the first five as 1 mm or |s| mm
    "zero_pixdim": (lambda p: _nifti(p / "a.nii", pixdim=[0.7, 0, 5]),
                    r"zero voxel spacing in the header \(pixdim 0\.7, 0, 5\)"),
    "nan_pixdim": (lambda p: _nifti(p / "a.nii", pixdim=[0.7, np.nan, 5]),
                   r"non-finite voxel spacing in the header \(pixdim 0\.7, nan, 5\)"),
    "inf_pixdim": (lambda p: _nifti(p / "a.nii", pixdim=[np.inf, 0.7, 5]),
                   r"non-finite voxel spacing in the header \(pixdim inf, 0\.7, 5\)"),
    "negative_pixdim": (lambda p: _nifti(p / "a.nii", pixdim=[0.7, -0.7, 5]),
                        r"negative voxel spacing in the header \(pixdim 0\.7, -0\.7, 5\)"),
    "zero_pixdim_with_sform": (lambda p: _nifti(p / "a.nii", pixdim=[0.7, 0, 5], sform_code=1,
                                                srow=[[-0.7, 0, 0, 0], [0, -0.7, 0, 0],
                                                      [0, 0, 5, 0]]),
                               "zero voxel spacing in the header"),
    "singular_sform": (lambda p: _nifti(p / "a.nii", sform_code=1,
                                        srow=[[-0.7, -0.7, 0, 0], [0, 0, 0.7, 0],
                                              [0, 0, 5, 0]]),
                       r"singular direction matrix in the header.*\(sform "),
    "zero_sform_axis": (lambda p: _nifti(p / "a.nii", sform_code=1,
                                         srow=[[-0.7, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5, 0]]),
                        r"zero voxel spacing in the header \(a zero axis vector: sform"),
    "sheared_sform": (lambda p: _nifti(p / "a.nii", sform_code=1, qform_code=0,
                                       srow=[[-0.7, 0.3, 0, 0], [0, -0.7, 0, 0],
                                             [0, 0, 5, 0]]),
                      "not orthonormal, axes sheared"),
    "nrrd_zero": (lambda p: _nrrd(p / "a.nrrd", "spacings: 0.7 0 5"),
                  r"zero voxel spacing in the header \(spacings 0\.7, 0, 5\)"),
    "nrrd_negative": (lambda p: _nrrd(p / "a.nrrd", "spacings: 0.7 -0.7 5"),
                      "negative voxel spacing in the header"),
    "nrrd_nan": (lambda p: _nrrd(p / "a.nrrd", "spacings: 0.7 nan 5"),
                 "non-finite voxel spacing in the header"),
    "nrrd_zero_direction": (lambda p: _nrrd(p / "a.nrrd", ROT + "(0.7,0,0) (0,0,0) (0,0,5)"),
                            "zero voxel spacing in the header"),
    "nrrd_singular": (lambda p: _nrrd(p / "a.nrrd", ROT + "(0.7,0,0) (0.7,0,0) (0,0,5)"),
                      r"singular direction matrix in the header.*space directions"),
    "nrrd_sheared": (lambda p: _nrrd(p / "a.nrrd", ROT + "(0.7,0,0) (0.3,0.7,0) (0,0,5)"),
                     r"direction matrix \(.*\) is not orthonormal"),
    "mha_zero": (lambda p: _mha(p / "a.mha", "ElementSpacing = 0.7 0 5\n"),
                 r"zero voxel spacing in the header \(ElementSpacing 0\.7, 0, 5\)"),
    "mha_negative": (lambda p: _mha(p / "a.mha", "ElementSpacing = -0.7 0.7 5\n"),
                     "negative voxel spacing in the header"),
    "mha_nan": (lambda p: _mha(p / "a.mha", "ElementSpacing = 0.7 0.7 nan\n"),
                "non-finite voxel spacing in the header"),
    "mha_singular": (lambda p: _mha(p / "a.mha", "TransformMatrix = 1 0 0 1 0 0 0 0 1\n"),
                     r"singular direction matrix in the header.*TransformMatrix"),
    "mha_sheared": (lambda p: _mha(p / "a.mha", "TransformMatrix = 1 0 0 0.3 1 0 0 0 1\n"),
                    "is not orthonormal"),
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_bad_spacing_or_direction_is_refused(case, tmp_path):
    make, message = BAD_HEADERS[case]
    path = make(tmp_path)
    with pytest.raises(InputError, match=rf"^{path}: .*{message}") as exc:
        read_image(path)
    assert "\n" not in str(exc.value)


def test_itk_alone_reads_zero_spacing_as_one_mm(tmp_path):
    """Why the header is read: ITK substitutes 1 mm for a zero pixdim without a word."""
    path = BAD_HEADERS["zero_pixdim"][0](tmp_path)
    assert sitk.ReadImage(str(path)).GetSpacing()[1] == pytest.approx(1.0)


def test_good_headers_pass(tmp_path):
    ok = [_nifti(tmp_path / "q.nii"),
          _nifti(tmp_path / "s.nii", sform_code=1, srow=[[-0.7, 0, 0, 5], [0, -0.7, 0, 6],
                                                         [0, 0, 5, 7]]),
          _nrrd(tmp_path / "a.nrrd", ROT + "(0.7,0,0) (0,-0.7,0) (0,0,5)"),
          _mha(tmp_path / "a.mha", "ElementSpacing = 0.7 0.7 5\n"
                                   "TransformMatrix = 0 1 0 1 0 0 0 0 -1\n")]
    for path in ok:
        img = read_image(path)
        assert sorted(img.spacing) == pytest.approx([0.7, 0.7, 5.0], abs=1e-6), path
        np.testing.assert_array_equal(img.array, NOISE)


@pytest.mark.parametrize("spacing,direction,message", [
    ((0.7, 0.0, 5.0), None, r"zero voxel spacing \(0\.7, 0, 5\)"),
    ((0.7, -0.7, 5.0), None, "negative voxel spacing"),
    ((0.7, np.nan, 5.0), None, "non-finite voxel spacing"),
    ((0.7, np.inf, 5.0), None, "non-finite voxel spacing"),
    ((1, 1, 1), (1, 0, 0, 1, 0, 0, 0, 0, 1), "singular direction matrix"),
    ((1, 1, 1), (1, 0, 0, 0, 0, 0, 0, 0, 1), "singular direction matrix"),
    ((1, 1, 1), (1, 0.3, 0, 0, 1, 0, 0, 0, 1), "not orthonormal"),
    ((1, 1, 1), (2, 0, 0, 0, 2, 0, 0, 0, 2), "not orthonormal"),
    ((1, 1, 1), (1, 0, 0, 0, np.nan, 0, 0, 0, 1), "non-finite direction"),
])
def test_image_refuses_impossible_geometry(spacing, direction, message):
    kwargs = {} if direction is None else {"direction": direction}
    with pytest.raises(InputError, match=message):
        Image(np.zeros((2, 3, 4)), spacing=spacing, path="x.nii.gz", **kwargs)
    assert geometry_problem(spacing, direction=direction or (1, 0, 0, 0, 1, 0, 0, 0, 1))


def test_image_accepts_rotations_and_flips_with_rounding():
    c, s = np.cos(0.3), np.sin(0.3)
    for direction in [(-1, 0, 0, 0, -1, 0, 0, 0, 1), (c, -s, 0, s, c, 0, 0, 0, 1),
                      (1, 0, 0, 0, 0.999999, -0.001, 0, 0.001, 0.999999)]:
        assert geometry_problem((0.7, 0.7, 5), direction=direction) is None


def test_nifti_with_header_extensions(tmp_path):
    """Extensions (TotalSegmentator writes one) sit between header and voxels."""
    img = nib.Nifti1Image(NOISE.T.copy(), np.diag([0.7, 0.7, 5.0, 1.0]))
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * 1000))
    path = tmp_path / "ext.nii.gz"
    nib.save(img, path)
    assert header_problem(path) is None
    np.testing.assert_array_equal(read_image(path).array, NOISE)
    _cut(path, 0.9)
    with pytest.raises(InputError, match="ext.nii.gz: truncated file"):
        read_image(path)
