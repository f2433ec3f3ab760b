"""``predict --ray`` writes what the local path writes, and keys finished cases by model.

A real (tiny, 200-iteration) station network on CT + two ground-truth organ channels, a
phantom case written as a DICOM CT series, its organ map given with ``--organs``, and every
output format: the local run and the run on a local Ray instance must give the same
label maps voxel for voxel, the same RTSTRUCT contours and the same SEG frames.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest

from deepstationing.api import train
from deepstationing.cli.main import main
from deepstationing.data.dicom.series import write_ct_series
from deepstationing.data.image import read_image
from deepstationing.phantom import generate_cohort

pytest.importorskip("ray")

FILES = ["organs.nii.gz", "stations.nii.gz", "rtstruct.dcm", "seg_stations.dcm",
         "seg_organs.dcm"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray_predict")
    cohort = generate_cohort(tmp / "ph", 4, preset="small", spacing=(5.6, 5.6, 10.0),
                             n_folds=2, progress=None)
    # long enough to predict some station voxels (an empty map writes no station SEG)
    model = train("stations", cohort, 0, channels="gt:heart,trachea", epochs=12, iterations=25,
                  workdir=tmp / "runs", network=((16, 32, 32), (8, 16, 32), 2, 2, 1e-2))
    case = cohort.case(cohort.test_ids(0)[0])
    write_ct_series(read_image(case.ct), tmp / "ct", uid_seed="ray")
    return tmp, model, case


def _contours(path):
    ds = pydicom.dcmread(path)
    names = {r.ROINumber: r.ROIName for r in ds.StructureSetROISequence}
    return {names[c.ReferencedROINumber]: [list(map(float, k.ContourData))
                                          for k in getattr(c, "ContourSequence", [])]
            for c in ds.ROIContourSequence}


def _predict(setup, out, *extra):
    tmp, model, case = setup
    return main(["predict", str(tmp / "ct"), "-o", str(out), "--model", str(model),
                 "--organs", str(case.organs), "--format", "nifti,rtstruct,seg", "--no-qc",
                 *extra])


def test_ray_writes_the_files_of_the_local_path(setup, tmp_path, capsys):
    import ray

    assert _predict(setup, tmp_path / "local") == 0
    try:
        assert _predict(setup, tmp_path / "ray", "--ray", "local") == 0
        status = tmp_path / "ray" / "jobs" / "cases" / "ct" / "status.json"
        first = json.loads(status.read_text())["started"]
        err = capsys.readouterr().err
        # the same model, settings and input: the finished case is kept
        assert _predict(setup, tmp_path / "ray", "--ray", "local") == 0
        assert json.loads(status.read_text())["started"] == first
        # the same case with another model folder is predicted again
        tmp, model, _ = setup
        other = tmp_path / "other_model"
        shutil.copytree(model, other)
        assert main(["predict", str(tmp / "ct"), "-o", str(tmp_path / "ray"), "--model",
                     str(other), "--organs", str(setup[2].organs), "--format",
                     "nifti,rtstruct,seg", "--no-qc", "--ray", "local"]) == 0
        again = json.loads(status.read_text())
        assert again["job"]["params"]["settings"]["model"] == str(other.resolve())
    finally:
        ray.shutdown()
    assert "ct:" in err and " 0 stations" not in err
    for name in FILES:
        assert (tmp_path / "local" / name).exists() and (tmp_path / "ray" / name).exists(), name
    for name in ("organs.nii.gz", "stations.nii.gz"):
        a, b = (read_image(tmp_path / d / name, label=True) for d in ("local", "ray"))
        assert np.array_equal(a.array, b.array) and a.spacing == b.spacing, name
    given = read_image(setup[2].organs, label=True)
    assert np.array_equal(read_image(tmp_path / "ray" / "organs.nii.gz", label=True).array,
                          given.array)  # --organs reached the Ray worker
    assert _contours(tmp_path / "local" / "rtstruct.dcm") == \
        _contours(tmp_path / "ray" / "rtstruct.dcm")
    for name in ("seg_stations.dcm", "seg_organs.dcm"):
        a, b = (pydicom.dcmread(tmp_path / d / name) for d in ("local", "ray"))
        assert np.array_equal(a.pixel_array, b.pixel_array), name
        assert [s.SegmentLabel for s in a.SegmentSequence] == \
            [s.SegmentLabel for s in b.SegmentSequence]
