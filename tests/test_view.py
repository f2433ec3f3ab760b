"""``deepstationing view``: a PNG of the right size with overlays and a legend."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest

from deepstationing.data.image import read_image
from deepstationing.phantom import generate_case
from deepstationing.schema import STATIONS
from deepstationing.viz import render_case


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("view") / "case_000"
    generate_case(0, seed=0, preset="small").write(d)
    return d


def _has_colour(img, rgb, tol=0.02):
    return np.any(np.all(np.abs(img[..., :3] - np.asarray(rgb) / 255.0) < tol, axis=-1))


def test_view_cli_case_folder(case_dir, tmp_path):
    out = tmp_path / "v.png"
    res = subprocess.run([sys.executable, "-m", "deepstationing", "view", str(case_dir), "-o",
                          str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    img = mpimg.imread(out)
    # 5 panels + legend per row, 2 rows (organs, stations) at 100 dpi
    assert img.shape[1] == int(round((3.0 * 5 + 3.2) * 100))
    assert img.shape[0] == int(round((3.2 * 2 + 0.6) * 100))
    # legend patches are drawn in the exact schema colours of the stations present
    st = read_image(case_dir / "stations.nii.gz", label=True).array
    for s in STATIONS:
        if (st == s.id).any():
            assert _has_colour(img, s.color), s.key
    assert img[..., :3].std() > 0.05  # not a blank image


def test_view_compare_row_and_subset(case_dir, tmp_path):
    st = read_image(case_dir / "stations.nii.gz", label=True)
    ct = read_image(case_dir / "ct.nii.gz")
    other = st.with_array(np.where(st.array == STATIONS.by_key("7").id, 0, st.array))
    out = render_case(tmp_path / "cmp.png", ct=ct, stations=st, compare=other,
                      compare_name="rules", axial_mm=[ct.origin[2] + 5 * (ct.shape[0] // 2)])
    img = mpimg.imread(out)
    assert img.shape[1] == int(round((3.0 * 3 + 3.2) * 100))  # 1 axial + cor + sag + legend
    assert img.shape[0] == int(round((3.2 * 2 + 0.6) * 100))
    with pytest.raises(ValueError):
        render_case(tmp_path / "none.png")


def test_view_rejects_mismatched_geometry(case_dir, tmp_path):
    ct = read_image(case_dir / "ct.nii.gz")
    st = read_image(case_dir / "stations.nii.gz", label=True)
    bad = st.with_array(st.array)
    bad.spacing = (1.0, 1.0, 5.0)
    from deepstationing.errors import InputError

    with pytest.raises(InputError):
        render_case(tmp_path / "bad.png", ct=ct, stations=bad)


# ---------------------------------------------------------------- positional CT
def _view(argv, capsys):
    from deepstationing.cli.main import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_view_positional_ct_file_draws_the_ct(case_dir, tmp_path, capsys):
    out = tmp_path / "ct.png"
    code, err = _view(["view", case_dir / "ct.nii.gz", "-o", out], capsys)
    assert code == 0, err
    img = mpimg.imread(out)
    # one row (the CT alone): 5 panels + legend column
    assert img.shape[:2] == (int(round((3.2 + 0.6) * 100)), int(round((3.0 * 5 + 3.2) * 100)))
    assert img[..., :3].std() > 0.05
    for s in STATIONS:  # no overlay colours without label maps
        assert not _has_colour(img, s.color, tol=0.004), s.key


def test_view_positional_ct_with_overlays(case_dir, tmp_path, capsys):
    out = tmp_path / "ct_st.png"
    code, err = _view(["view", case_dir / "ct.nii.gz", "--stations",
                       case_dir / "stations.nii.gz", "-o", out], capsys)
    assert code == 0, err
    img = mpimg.imread(out)
    assert img.shape[0] == int(round((3.2 + 0.6) * 100))  # one row: the stations
    st = read_image(case_dir / "stations.nii.gz", label=True).array
    for s in STATIONS:
        if (st == s.id).any():
            assert _has_colour(img, s.color), s.key


def test_view_positional_dicom_folder(real_path, tmp_path, capsys):
    out = tmp_path / "dicom.png"
    code, err = _view(["view", real_path("ibsi_ct_phantom/dicom/image"), "-o", out], capsys)
    assert code == 0, err
    assert mpimg.imread(out)[..., :3].std() > 0.05


def test_view_positional_errors(case_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _view(["view", empty, "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"deepstationing: error: {empty}: neither a case folder (ct.nii.gz, organs.nii.gz, "
        "stations.nii.gz) nor a DICOM series folder")
    code, err = _view(["view", tmp_path / "nope.nii.gz", "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "nope.nii.gz: no such file or folder" in err
    code, err = _view(["view", case_dir / "ct.nii.gz", "--ct", case_dir / "ct.nii.gz", "-o",
                       tmp_path / "x.png"], capsys)
    assert code == 2 and "two CTs given" in err
    assert not (tmp_path / "x.png").exists()
