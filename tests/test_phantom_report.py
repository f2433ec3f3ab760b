"""The realism report: its tissue masks recover the phantom's own lungs, and the command writes
the report, its numbers and its pictures against a real CT (skipped without the fixtures)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from deepstationing.phantom import generate_case
from deepstationing.phantom.realism import ct_stats, tissue_masks
from deepstationing.schema import ORGANS


def test_tissue_masks_find_the_phantoms_lungs_and_body():
    c = generate_case(2, seed=0, preset="small")
    m = tissue_masks(c.ct.array, c.ct.spacing)
    truth = np.isin(c.organs.array, [ORGANS.by_key(k).id for k in ("lung_r", "lung_l")])
    dice = 2 * (m["lung"] & truth).sum() / (m["lung"].sum() + truth.sum())
    assert dice > 0.9, dice
    body = c.body.array > 0
    dice_b = 2 * (m["body"] & body).sum() / (m["body"].sum() + body.sum())
    assert dice_b > 0.95, dice_b
    st = ct_stats(c.ct.array, m)
    assert -920 < st["lung_median_hu"] < -750 and -130 < st["fat_peak_hu"] < -70
    assert st["noise_sd_air_hu"] < st["noise_sd_fat_hu"]


def test_report_command_writes_numbers_and_pictures(tmp_path, real_path):
    real = real_path("pyradiomics_thorax/lung2_image.nrrd")
    out = tmp_path / "rep"
    res = subprocess.run([sys.executable, "-m", "deepstationing", "phantom", "--report",
                          str(out), "--cases", "1", "--preset", "small", "--real", str(real),
                          "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "realism.json").read_text())
    assert set(summary["stats"]) == {"phantom case_000", "lung2_image.nrrd"}
    real_stats = summary["stats"]["lung2_image.nrrd"]
    assert -900 < real_stats["lung_median_hu"] < -750 and real_stats["body_fraction_of_fov"] > 0.4
    import matplotlib.image

    for name in summary["pictures"]:
        assert matplotlib.image.imread(out / name).shape[0] > 200
    assert "lung2_image.nrrd" in (out / "realism.md").read_text()


def test_report_without_a_real_ct_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSTATIONING_REAL_DATA", str(tmp_path / "nowhere"))
    res = subprocess.run([sys.executable, "-m", "deepstationing", "phantom", "--report",
                          str(tmp_path / "r"), "--cases", "1", "--real",
                          str(tmp_path / "missing.nrrd")], capture_output=True, text=True)
    assert res.returncode == 2 and "missing.nrrd" in res.stderr
    assert "Traceback" not in res.stderr
