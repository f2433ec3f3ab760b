"""QC on the command line: ``predict`` checks every case, ``qc`` re-runs, ``view`` shows it.

``predict`` runs with a stand-in for the trained cascade that returns the phantom's truth
for each CT (and the mirrored truth for a mirrored CT, as a network that follows the
anatomy would): what is tested is the path from the command to the verdicts, qc.json and
the exit code, not a network (``benchmarks/bench_qc.py`` runs a trained one).
"""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from deepstationing.cli.main import main
from deepstationing.data.image import read_image, write_image
from deepstationing.phantom import generate_cohort
from deepstationing.qc import REFERENCE_FILE, read_qc, record_training_cases
from deepstationing.training.model import FORMAT as MODEL_FORMAT


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qc_cli")
    cohort = generate_cohort(tmp / "ph", 8, seed=3, preset="small", progress=None)
    model = tmp / "model"
    model.mkdir()
    (model / "deepstationing_model.json").write_text(
        json.dumps({"format": MODEL_FORMAT, "stages": {}}))
    for fold in range(4):
        record_training_cases(model, cohort, fold)
    cts = tmp / "cts"
    cts.mkdir()
    truth = {}
    for case in list(cohort)[:2]:
        ct = read_image(case.ct)
        organs, stations = (read_image(p, label=True) for p in (case.organs, case.stations))
        write_image(ct, cts / f"{case.id}.nii.gz")
        truth[case.id] = (organs.array, stations.array)
        flip = ct.with_array(ct.array[:, :, ::-1].copy())  # the patient mirrored
        write_image(flip, cts / f"{case.id}_mirrored.nii.gz")
        truth[f"{case.id}_mirrored"] = (organs.array[:, :, ::-1], stations.array[:, :, ::-1])
    return tmp, cohort, model, cts, truth


@pytest.fixture()
def anatomy_parser(setup, monkeypatch):
    """StationParser stand-in: the truth of the CT it is given (found by file name)."""
    import deepstationing.stations.network as network

    truth = setup[4]

    class Parser:
        organs = object()

        def __init__(self, model, folds, **kw):
            pass

        def predict(self, ct, organs=None, progress=None, timings=None):
            name = ct.path.rsplit("/", 1)[-1].split(".")[0]
            o, s = truth[name]
            return ct.with_array(o.copy()), ct.with_array(s.copy())

    monkeypatch.setattr(network, "StationParser", Parser)


def test_predict_checks_every_case_and_writes_qc_json(setup, anatomy_parser, tmp_path, capsys):
    tmp, cohort, model, cts, _ = setup
    out = tmp_path / "out"
    rc = main(["predict", str(cts), "-o", str(out), "--model", str(model)])
    err = capsys.readouterr().err
    assert rc == 0  # verdicts do not change the exit code unless asked
    lines = {ln.split("] ", 1)[1].split(":", 1)[0]: ln for ln in err.splitlines()
             if ": QC " in ln}
    case = cohort.case_ids[0]
    assert lines[case].endswith(f"{case}: QC ok")
    mirrored = lines[f"{case}_mirrored"]
    assert "QC implausible: station_side" in mirrored and "organ_side" in mirrored
    assert "QC: 2 ok, 2 implausible" in err
    report = read_qc(out / f"{case}_mirrored")
    assert report.verdict == "implausible"
    assert report.inputs["ct"] == str((cts / f"{case}_mirrored.nii.gz").resolve())
    assert report.inputs["model"] == str(model.resolve())
    assert report.inputs["reference"]["cases"] == len(cohort)
    assert report.skipped == []  # the model's reference: the cohort checks ran
    assert "qc.json" in err  # listed with the outputs


@pytest.mark.parametrize("level, code", [("implausible", 3), ("check", 3)])
def test_fail_on(setup, anatomy_parser, tmp_path, capsys, level, code):
    tmp, cohort, model, cts, _ = setup
    rc = main(["predict", str(cts), "-o", str(tmp_path / "o"), "--model", str(model),
               "--fail-on", level])
    assert rc == code


def test_fail_on_passes_good_cases_and_no_qc_switches_it_off(setup, anatomy_parser, tmp_path,
                                                               capsys):
    tmp, cohort, model, cts, _ = setup
    one = cts / f"{cohort.case_ids[1]}.nii.gz"
    assert main(["predict", str(one), "-o", str(tmp_path / "a"), "--model", str(model),
                 "--fail-on", "check"]) == 0
    assert (tmp_path / "a" / "qc.json").exists()
    capsys.readouterr()
    assert main(["predict", str(cts), "-o", str(tmp_path / "b"), "--model", str(model),
                 "--no-qc", "--fail-on", "implausible"]) == 0
    assert "QC" not in capsys.readouterr().err
    assert not list((tmp_path / "b").rglob("qc.json"))


def test_qc_command_reruns_from_the_folder(setup, anatomy_parser, tmp_path, capsys):
    tmp, cohort, model, cts, _ = setup
    out = tmp_path / "out"
    main(["predict", str(cts), "-o", str(out), "--model", str(model)])
    capsys.readouterr()
    case = cohort.case_ids[0]
    (out / case / "qc.json").unlink()
    with pytest.raises(SystemExit):  # nothing recorded, no --ct: an error naming the folder
        raise SystemExit(main(["qc", str(out)]))
    err = capsys.readouterr().err
    assert f"{out / case}: no CT to check against: give --ct" in err
    rc = main(["qc", str(out / case), "--ct", str(cts / f"{case}.nii.gz"), "--model",
               str(model)])
    assert rc == 0 and f"{case}: QC ok" in capsys.readouterr().out
    rc = main(["qc", str(out), "--fail-on", "implausible"])  # the batch, from qc.json
    text = capsys.readouterr().out
    assert rc == 3
    assert text.count("QC ok") == 2 and text.count("QC implausible") == 2
    # without the model's reference the cohort checks are skipped, and it says so
    (model / REFERENCE_FILE).rename(tmp_path / "ref.json")
    try:
        main(["qc", str(out / case)])
    finally:
        (tmp_path / "ref.json").rename(model / REFERENCE_FILE)
    text = capsys.readouterr().out
    assert "not checked: volume_range (the model folder has no qc_reference.json" in text


def test_view_shows_the_findings(setup, anatomy_parser, tmp_path, capsys):
    tmp, cohort, model, cts, _ = setup
    out = tmp_path / "out"
    main(["predict", str(cts / f"{cohort.case_ids[0]}_mirrored.nii.gz"), "-o", str(out),
          "--model", str(model)])
    capsys.readouterr()
    assert main(["view", str(out), "-o", str(tmp_path / "with.png")]) == 0
    printed = capsys.readouterr().out
    assert "QC implausible: station_side" in printed
    assert main(["view", "--ct", str(cts / f"{cohort.case_ids[0]}_mirrored.nii.gz"),
                 "--organs", str(out / "organs.nii.gz"), "--stations",
                 str(out / "stations.nii.gz"), "-o", str(tmp_path / "without.png")]) == 0
    with_qc, without = mpimg.imread(tmp_path / "with.png"), mpimg.imread(tmp_path / "without.png")
    assert with_qc.shape[0] > without.shape[0]  # the lines under the panels
    # ... drawn in red for the implausible findings
    strip = with_qc[without.shape[0] - 10:, :, :3]
    assert np.any((strip[..., 0] > 0.9) & (strip[..., 1] < 0.5) & (strip[..., 2] < 0.5))
    # and the CT came from the path qc.json records: the panels are not blank
    assert with_qc[: without.shape[0], :, :3].std() > 0.05


def test_model_reference_records_an_existing_models_cohort(setup, tmp_path, capsys):
    tmp, cohort, _, _, _ = setup
    model = tmp_path / "old_model"
    model.mkdir()
    (model / "deepstationing_model.json").write_text(
        json.dumps({"format": MODEL_FORMAT, "stages": {}}))
    assert main(["model", "reference", str(model), "--cohort", str(cohort.root)]) == 2
    assert "holds no trained fold; give --folds" in capsys.readouterr().err
    assert main(["model", "reference", str(model), "--cohort", str(cohort.root), "--folds",
                 "0"]) == 0
    data = json.loads((model / REFERENCE_FILE).read_text())
    assert sorted(data["cases"]) == sorted(cohort.train_ids(0))
    assert f"{len(cohort.train_ids(0))} training cases of folds 0" in capsys.readouterr().out


def test_a_failing_check_keeps_the_prediction(setup, tmp_path):
    """A bug or an unwritable qc.json in the checks: the case is predicted and written, its
    QC says 'error' with the reason."""
    from deepstationing.predict.batch import find_cases, predict_cases

    _, cohort, _, cts, truth = setup

    class Parser:
        def predict(self, ct, organs=None, progress=None, timings=None):
            o, s = truth[cohort.case_ids[0]]
            return ct.with_array(o.copy()), ct.with_array(s.copy())

    class Broken:
        def check(self, *args, **kwargs):
            raise RuntimeError("no luck")

    cases = [c for c in find_cases([cts]) if c.name == cohort.case_ids[0]]
    [result] = predict_cases(Parser(), cases, tmp_path, qc=Broken())
    assert result.ok and result.outputs == ["organs.nii.gz", "stations.nii.gz"]
    assert result.qc == {"verdict": "error", "error": "RuntimeError: no luck"}
    assert not (tmp_path / cohort.case_ids[0] / "qc.json").exists()


def test_a_damaged_reference_skips_the_cohort_checks(setup, tmp_path):
    from deepstationing.qc.run import QcRunner

    model = tmp_path / "m"
    model.mkdir()
    (model / REFERENCE_FILE).write_text("{not json")
    runner = QcRunner(model)
    assert runner.reference is None
    assert runner.why_not.startswith(f"{model / REFERENCE_FILE}: unreadable QC reference")
