"""``deepstationing evaluate``: output files, folder matching, errors; summary layout."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from deepstationing.cli.main import main
from deepstationing.data.image import Image, write_image
from deepstationing.evaluation.report import (
    CSV_COLUMNS,
    MetricRow,
    read_metrics_csv,
    summary_markdown,
)
from deepstationing.schema import ORGANS, STATIONS

SPACING_XYZ = (0.7, 0.7, 5.0)
SHAPE = (8, 24, 24)  # z, y, x


def sid(key: str) -> int:
    return STATIONS.by_key(key).id


def truth_map() -> np.ndarray:
    a = np.zeros(SHAPE, np.uint8)
    a[1:4, 2:10, 2:10] = sid("4R")
    a[1:4, 12:20, 12:20] = sid("7")
    a[5:7, 2:10, 12:20] = sid("1L")
    return a


def pred_map() -> np.ndarray:
    a = np.zeros(SHAPE, np.uint8)
    a[1:4, 2:10, 2:10] = sid("4R")  # identical
    a[2:5, 12:20, 12:20] = sid("7")  # one 5 mm slice up
    # 1L missed (prediction empty); 2R predicted where the truth has none
    a[5:7, 14:18, 2:6] = sid("2R")
    return a


def write(path, array, spacing=SPACING_XYZ):
    return write_image(Image(array, spacing=spacing), path)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture()
def folders(tmp_path):
    pred, truth = tmp_path / "ct_only", tmp_path / "truth"
    for case in ("case_a", "case_b"):
        write(pred / f"{case}.nii.gz", pred_map())
        write(truth / f"{case}.nii.gz", truth_map())
    return pred, truth


def test_two_folders_write_metrics_csv_and_summary(folders, tmp_path, capsys):
    pred, truth = folders
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "[1/2] case_a" in err and "[2/2] case_b" in err

    rows = read_csv(out / "metrics.csv")
    assert rows[0] == ["case", "label", "dsc", "hd", "hd95", "assd", "empty"]
    assert len(rows) == 1 + 2 * 12
    assert [r[1] for r in rows[1:13]] == STATIONS.keys  # station names, schema order
    assert [r[0] for r in rows[1:]] == ["case_a"] * 12 + ["case_b"] * 12
    by_label = {r[1]: r for r in rows[1:13]}
    assert by_label["4R"] == ["case_a", "4R", "1", "0", "0", "0", ""]
    assert by_label["1L"] == ["case_a", "1L", "0", "nan", "nan", "nan", "pred"]
    assert by_label["2R"] == ["case_a", "2R", "0", "nan", "nan", "nan", "truth"]
    assert by_label["3A"] == ["case_a", "3A", "nan", "nan", "nan", "nan", "both"]
    s7 = by_label["7"]
    assert float(s7[2]) == pytest.approx(2 / 3, abs=1e-6)  # 2 of 3 slices overlap
    assert float(s7[3]) == pytest.approx(5.0) and float(s7[4]) == pytest.approx(5.0)
    assert 0 < float(s7[5]) < 5.0 and s7[6] == ""
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]

    md = (out / "summary.md").read_text()
    assert "Cases: 2 (ct_only)." in md
    dsc = md.split("## DSC (%)")[1].split("## HD (mm)")[0].strip().splitlines()
    assert dsc[0] == "| Label | ct_only |"
    body = dsc[2:]
    assert [ln.split("|")[1].strip() for ln in body] == STATIONS.keys + ["Average"]
    assert "| 4R | 100.0 ± 0.0 |" in body
    assert "| 7 | 66.7 ± 0.0 |" in body
    assert "| 1L | 0.0 ± 0.0 |" in body
    assert "| 3A | n/a |" in body
    # Average over labels with a value: 4R 100, 7 66.7, 1L 0, 2R 0 -> 41.7
    assert body[-1] == "| Average | 41.7 ± 0.0 |"
    for title in ("## HD (mm)", "## HD95 (mm)", "## ASSD (mm)"):
        assert title in md
    assert "| 7 | 5.0 ± 0.0 |" in md.split("## HD (mm)")[1]
    assert "mean of the per-label means" in md
    assert "empty prediction: 2, empty truth: 2, both empty: 16" in md  # 8 absent x 2 cases

    back = read_metrics_csv(out / "metrics.csv")
    assert len(back) == 24
    first = back[0]
    assert (first.case, first.label, first.dsc, first.empty) == ("case_a", "1L", 0.0, "pred")
    assert math.isnan(first.hd) and math.isnan(first.assd)
    assert back[STATIONS.keys.index("7")].hd == pytest.approx(5.0)


def test_single_files_name_option_and_cohort_truth(tmp_path, capsys):
    p = write(tmp_path / "preds" / "case_000.nii.gz", pred_map())
    cohort = tmp_path / "cohort"
    write(cohort / "case_000" / "stations.nii.gz", truth_map())
    out = tmp_path / "o1"
    assert main(["evaluate", "--pred", str(p), "--truth",
                 str(cohort / "case_000" / "stations.nii.gz"), "-o", str(out),
                 "--name", "CT only"]) == 0
    assert "[1/1]" not in capsys.readouterr().err  # no progress for a single case
    rows = read_csv(out / "metrics.csv")
    assert {r[0] for r in rows[1:]} == {"case_000"} and len(rows) == 13
    assert "| Label | CT only |" in (out / "summary.md").read_text()

    # a folder of prediction files against a cohort folder (case subfolders)
    out2 = tmp_path / "o2"
    assert main(["evaluate", "--pred", str(tmp_path / "preds"), "--truth", str(cohort),
                 "-o", str(out2)]) == 0
    assert read_csv(out2 / "metrics.csv") == rows


def test_labels_all_and_organs(tmp_path, capsys):
    truth = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    truth[1:4, 2:10, 2:10] = 30
    pred[1:4, 2:10, 2:10] = 30
    pred[5:7, 2:10, 2:10] = 5
    write(tmp_path / "p" / "c1.nii.gz", pred)
    write(tmp_path / "t" / "c1.nii.gz", truth)
    write(tmp_path / "p" / "c2.nii.gz", truth)
    write(tmp_path / "t" / "c2.nii.gz", truth)
    out = tmp_path / "all"
    assert main(["evaluate", "--pred", str(tmp_path / "p"), "--truth", str(tmp_path / "t"),
                 "-o", str(out), "--labels", "all"]) == 0
    rows = read_csv(out / "metrics.csv")[1:]
    assert [(r[0], r[1], r[6]) for r in rows] == [
        ("c1", "5", "truth"), ("c1", "30", ""), ("c2", "5", "both"), ("c2", "30", "")]

    # the same maps as stations: value 30 is no station -> warned about, not evaluated
    out = tmp_path / "st"
    assert main(["evaluate", "--pred", str(tmp_path / "p"), "--truth", str(tmp_path / "t"),
                 "-o", str(out)]) == 0
    assert "label values above 12 are not stations" in capsys.readouterr().err
    assert len(read_csv(out / "metrics.csv")) == 1 + 2 * 12

    organs = np.zeros(SHAPE, np.uint8)
    organs[1:4, 2:10, 2:10] = ORGANS.by_key("trachea").id
    write(tmp_path / "po" / "c1.nii.gz", organs)
    write(tmp_path / "to" / "c1" / "organs.nii.gz", organs)
    out = tmp_path / "org"
    assert main(["evaluate", "--pred", str(tmp_path / "po"), "--truth", str(tmp_path / "to"),
                 "-o", str(out), "--labels", "organs"]) == 0
    rows = read_csv(out / "metrics.csv")[1:]
    assert [r[1] for r in rows] == ORGANS.keys
    assert rows[ORGANS.keys.index("trachea")][2:] == ["1", "0", "0", "0", ""]


def test_geometry_mismatch_is_a_one_line_error_naming_the_prediction(folders, tmp_path, capsys):
    pred, truth = folders
    bad = write(pred / "case_b.nii.gz", pred_map(), spacing=(0.7, 0.7, 2.5))
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out)]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("[")]
    assert len(lines) == 1
    assert lines[0].startswith(f"deepstationing: error: {bad}: geometry mismatch: spacing")
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_missing_files_error_or_skip(folders, tmp_path, capsys):
    pred, truth = folders
    extra = write(truth / "case_c.nii.gz", truth_map())
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(extra) in err[0] and "--allow-missing" in err[0]
    assert not (out / "metrics.csv").exists()

    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out),
                 "--allow-missing"]) == 0
    assert "warning" in capsys.readouterr().err
    assert {r[0] for r in read_csv(out / "metrics.csv")[1:]} == {"case_a", "case_b"}

    missing = tmp_path / "nope"
    assert main(["evaluate", "--pred", str(missing), "--truth", str(truth), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]

    single = pred / "case_a.nii.gz"
    assert main(["evaluate", "--pred", str(single), "--truth", str(truth), "-o", str(out)]) == 2
    assert "both be files or both be folders" in capsys.readouterr().err


def test_summary_average_row_is_mean_of_means_and_mean_of_stds():
    # two settings (columns), three labels, four cases each; one label has no valid HD
    rng = np.random.default_rng(3)
    results = {}
    for name in ("CT only", "+6 organs"):
        rows = []
        for case in range(4):
            for lab in ("1L", "1R", "7"):
                dsc = float(rng.uniform(0.6, 0.9))
                hd = math.nan if lab == "7" else float(rng.uniform(5, 30))
                rows.append(MetricRow(f"c{case}", lab, dsc, hd, hd, 1.0))
        results[name] = rows
    md = summary_markdown(results)
    table = md.split("## DSC (%)")[1].split("##")[0]
    assert "| Label | CT only | +6 organs |" in table
    avg = [ln for ln in table.splitlines() if ln.startswith("| Average")][0]
    cells = [c.strip() for c in avg.strip("|").split("|")[1:]]
    for name, cell in zip(results, cells):
        per = {lab: [r.dsc * 100 for r in results[name] if r.label == lab]
               for lab in ("1L", "1R", "7")}
        mean = np.mean([np.mean(v) for v in per.values()])
        std = np.mean([np.std(v) for v in per.values()])
        assert cell == f"{mean:.1f} ± {std:.1f}"
    hd_table = md.split("## HD (mm)")[1].split("##")[0]
    assert "| 7 | n/a | n/a |" in hd_table
    assert "Cases: 4 (CT only, +6 organs)." in md


def test_read_metrics_csv_rejects_foreign_files(tmp_path):
    from deepstationing.errors import InputError

    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a metrics.csv"):
        read_metrics_csv(f)
    f.write_text(",".join(CSV_COLUMNS) + "\nc,4R,0.5,1,1,1,weird\n")
    with pytest.raises(InputError, match="malformed row 2"):
        read_metrics_csv(f)
