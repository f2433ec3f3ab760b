"""``deepstationing export`` and ``predict --format``: DICOM out through the command line.

``predict`` runs with a stand-in for the trained cascade (it returns the phantom's truth):
what is tested here is the path from the command to validated DICOM files, not the network
(the slow backbone tests train and predict for real).
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from deepstationing.cli.main import main
from deepstationing.data.dicom.series import write_ct_series
from deepstationing.data.image import read_image, write_image
from deepstationing.phantom import generate_case
from deepstationing.schema import STATIONS
from dicom_tools import dciodvfy_report, dice, plastimatch_masks


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_export")
    case = generate_case(2, preset="small", spacing=(2.8, 2.8, 5.0))
    write_ct_series(case.ct, tmp / "ct", uid_seed="cli")
    write_image(case.stations, tmp / "stations.nii.gz")
    write_image(case.organs, tmp / "organs.nii.gz")
    model = tmp / "model"
    model.mkdir()
    (model / "deepstationing_model.json").write_text(json.dumps({"format": 3, "stages": {}}))
    return case, tmp


class TruthParser:
    """Stands in for StationParser: 'predicts' the phantom truth on the input grid."""

    truth = None

    def __init__(self, model, folds, **kw):
        self.organs = object()

    def predict(self, ct, organs=None, progress=None, timings=None):
        case = type(self).truth
        assert ct.same_geometry(case.ct)
        if progress:
            progress("organs")
            progress("stations")
        return case.ct.with_array(case.organs.array), case.ct.with_array(case.stations.array)


def test_predict_dicom_input_writes_validated_rtstruct_and_seg(case_dir, monkeypatch, capsys,
                                                               dciodvfy, plastimatch, tmp_path):
    case, tmp = case_dir
    import deepstationing.stations.network as network

    TruthParser.truth = case
    monkeypatch.setattr(network, "StationParser", TruthParser)
    out = tmp_path / "pred"
    rc = main(["predict", str(tmp / "ct"), "-o", str(out), "--model", str(tmp / "model"),
               "--format", "nifti,rtstruct,seg"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["organs.nii.gz", "rtstruct.dcm", "seg_organs.dcm", "seg_stations.dcm",
                     "stations.nii.gz"]
    for f in ("rtstruct.dcm", "seg_organs.dcm", "seg_stations.dcm"):
        assert dciodvfy_report(out / f)[0] == [], f
    stations = read_image(out / "stations.nii.gz", label=True)
    masks = plastimatch_masks(out / "rtstruct.dcm", tmp_path / "pm", referenced_ct=tmp / "ct")
    per_station = {lab.key: dice(masks[lab.roi_name][0], stations.array == lab.id)
                   for lab in STATIONS}
    assert min(per_station.values()) >= 0.97, per_station
    assert "rtstruct.dcm" in capsys.readouterr().err


def test_predict_dicom_format_needs_dicom_input(case_dir, capsys):
    _, tmp = case_dir
    rc = main(["predict", str(tmp / "stations.nii.gz"), "-o", str(tmp / "x"), "--model",
               str(tmp / "model"), "--format", "rtstruct"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs a DICOM CT series" in err and err.count("\n") == 1
    rc = main(["predict", str(tmp / "ct"), "-o", str(tmp / "x"), "--format", "pdf"])
    assert rc == 2 and "unknown format 'pdf'" in capsys.readouterr().err


def test_export_command(case_dir, tmp_path, capsys, dciodvfy):
    case, tmp = case_dir
    rc = main(["export", str(tmp / "stations.nii.gz"), f"organs={tmp / 'organs.nii.gz'}",
               "--ct", str(tmp / "ct"), "-o", str(tmp_path / "rt"), "--format", "rtstruct"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "rt").iterdir()) == ["rtstruct.dcm"]
    ds = pydicom.dcmread(tmp_path / "rt" / "rtstruct.dcm")
    names = [r.ROIName for r in ds.StructureSetROISequence]
    present = sorted(set(np.unique(case.stations.array).tolist()) - {0})
    assert names[:len(present)] == [STATIONS.by_id(i).roi_name for i in present]
    assert "Lung_R" in names and "Trachea" in names
    assert dciodvfy_report(tmp_path / "rt" / "rtstruct.dcm")[0] == []
    capsys.readouterr()
    # bad input: one line naming the file, exit code 2, nothing written
    rc = main(["export", str(tmp / "stations.nii.gz"), "--ct", str(tmp / "organs.nii.gz"),
               "-o", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert rc == 2 and "organs.nii.gz" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    rc = main(["export", str(tmp / "ct"), "--ct", str(tmp / "ct"), "-o", str(tmp_path / "b2")])
    assert rc == 2 and "stations=FILE" in capsys.readouterr().err
