"""A CT that is readable but not in Hounsfield units (all zero, within 0..1) gives a warning
naming the file, in the library (logging) and on the command line (predict, rules, view)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from deepstationing.cli.main import main
from deepstationing.data.image import Image, ct_intensity_problems, read_ct, write_image
from deepstationing.phantom import generate_case


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctcheck") / "case_000"
    c = generate_case(0, seed=0, preset="small")
    c.write(d)
    zero = write_image(c.ct.with_array(np.zeros(c.ct.shape, np.int16)), d.parent / "zero.nii.gz")
    unit = write_image(c.ct.with_array(((c.ct.array.astype(np.float32) + 1024) / 4096).clip(0, 1)),
                       d.parent / "unit.nii.gz")
    return d, zero, unit


def test_problems_of_real_and_phantom_cts(case, real_path):
    from deepstationing.data.image import read_image

    d, zero, unit = case
    assert ct_intensity_problems(read_image(d / "ct.nii.gz")) == []
    assert ct_intensity_problems(read_image(real_path("pyradiomics_thorax/lung2_image.nrrd"))) \
        == []
    assert ct_intensity_problems(read_image(zero)) == [
        "all voxels are 0: an empty image, not a CT"]
    assert ct_intensity_problems(read_image(unit))[0].startswith(
        "intensities lie within 0..1, not in Hounsfield units")
    assert ct_intensity_problems(Image(np.full((2, 2, 2), -1024, np.int16)))[0].startswith(
        "all voxels are -1024")


def test_read_ct_logs_and_returns_the_image(case, caplog):
    _, zero, _ = case
    with caplog.at_level(logging.WARNING, logger="deepstationing"):
        img = read_ct(zero)
    assert img.shape[0] > 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{zero}: all voxels are 0: an empty image, not a CT"]


@pytest.mark.parametrize("which", ["zero", "unit"])
@pytest.mark.parametrize("command", ["predict", "rules", "view"])
def test_cli_warns_and_still_runs(case, command, which, tmp_path, capsys, request):
    d, zero, unit = case
    ct = zero if which == "zero" else unit
    if command == "predict":
        request.getfixturevalue("stand_in_model")
        argv = ["predict", ct, "-o", tmp_path / "out", "--model", "m"]
    elif command == "rules":
        argv = ["rules", "--organs", d / "organs.nii.gz", "--ct", ct, "-o",
                tmp_path / "st.nii.gz"]
    else:
        argv = ["view", ct, "-o", tmp_path / "v.png"]
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 0, err
    expected = ("all voxels are 0" if which == "zero" else
                "intensities lie within 0..1, not in Hounsfield units")
    lines = [ln for ln in err.splitlines() if ln.startswith("deepstationing: warning: ")]
    assert len(lines) == 1 and f"{ct}: {expected}" in lines[0], err


def test_good_ct_gives_no_warning(case, tmp_path, capsys):
    d, _, _ = case
    assert main(["view", str(d / "ct.nii.gz"), "-o", str(tmp_path / "v.png")]) == 0
    assert "warning" not in capsys.readouterr().err
