"""The main job end to end: phantom -> rules -> evaluate -> view, as the README's demo runs it."""

import csv
import math

from deepstationing.cli.main import main
from deepstationing.schema import STATIONS


def test_demo_runs_the_pipeline_on_the_phantom(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--cases", "2", "--preset", "small"]) == 0
    assert (out / "cohort" / "manifest.json").exists()
    assert sorted(p.name for p in (out / "rules").iterdir()) == ["case_000.nii.gz",
                                                                  "case_001.nii.gz"]
    with open(out / "evaluation" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * len(STATIONS)
    assert {r["label"] for r in rows} == set(STATIONS.keys)
    dsc = [float(r["dsc"]) for r in rows]
    mean = sum(dsc) / len(dsc)
    # the rules are a baseline: clearly better than nothing, clearly not the phantom's truth
    assert 0.25 < mean < 0.85, mean
    assert all(not math.isnan(d) for d in dsc)
    png = out / "case_000.png"
    assert png.exists() and png.stat().st_size > 50_000
    assert "| Average |" in capsys.readouterr().out

    # running again into the same demo folder works (overwrites)
    assert main(["demo", "-o", str(out), "--cases", "1", "--preset", "small"]) == 0


def test_demo_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("do not touch")
    assert main(["demo", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a demo output" in err and str(tmp_path) in err
    assert (tmp_path / "precious.txt").read_text() == "do not touch"
