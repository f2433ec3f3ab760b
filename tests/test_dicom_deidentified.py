"""RTSTRUCT and SEG from a de-identified CT series: valid for dciodvfy, saying what the source
says; library warnings logged, not printed.

A CT marked ``PatientIdentityRemoved YES`` must also name its De-identification Method or a
code sequence of it (PS3.3 C.7.1.1, Type 1C). highdicom copies the Patient module as it is,
so a source without a method gave SEGs with the two dciodvfy errors of the source. The
derived objects now carry the source's de-identification attributes, and add a method
saying that none was recorded when the source has none.
"""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from deepstationing.cli.main import main
from deepstationing.data.dicom.export import RTSTRUCT_FILE, SEG_FILES, export_dicom
from deepstationing.data.dicom.series import read_series_reference, write_ct_series
from deepstationing.data.dicom.values import METHOD_NOT_RECORDED, carry_deidentification
from deepstationing.data.image import write_image
from deepstationing.phantom import generate_case
from deepstationing.schema import ORGANS, STATIONS
from dicom_tools import dciodvfy_report

BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")


def _deidentify(folder, *, method: str | None, codes=()) -> None:
    """Mark every file of a written series de-identified, as an anonymiser would."""
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientIdentityRemoved = "YES"
        if method is not None:
            ds.DeidentificationMethod = method
        if codes:
            items = []
            for value, scheme, meaning in codes:
                item = Dataset()
                item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = \
                    value, scheme, meaning
                items.append(item)
            ds.DeidentificationMethodCodeSequence = items
        ds.save_as(f, enforce_file_format=True)


@pytest.fixture(scope="module")
def phantom_case():
    return generate_case(3, preset="small", spacing=(5.6, 5.6, 10.0))


@pytest.mark.parametrize("method, codes", [(None, ()), ("Basic profile, dates kept",
                                                         (BASIC_PROFILE,))])
def test_phantom_series_marked_deidentified(phantom_case, method, codes, tmp_path, dciodvfy):
    case = phantom_case
    write_ct_series(case.ct, tmp_path / "ct", uid_seed="deid")
    _deidentify(tmp_path / "ct", method=method, codes=codes)
    source_errors = dciodvfy_report(sorted((tmp_path / "ct").iterdir())[0])[0]
    if method is None:  # the source itself breaks the Type 1C rule (so did our SEGs)
        assert len(source_errors) == 2 and all("Type 1C" in e and "DeidentificationMethod"
                                               in e for e in source_errors), source_errors
    else:
        assert source_errors == []
    files = export_dicom(tmp_path / "ct", tmp_path / "out", stations=case.stations,
                         organs=case.organs)
    assert [f.name for f in files] == [RTSTRUCT_FILE, SEG_FILES["stations"],
                                       SEG_FILES["organs"]]
    for f in files:
        assert dciodvfy_report(f)[0] == [], f.name
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod == (method or METHOD_NOT_RECORDED)
        got = [(c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning)
               for c in ds.get("DeidentificationMethodCodeSequence", [])]
        assert got == list(codes)


def test_real_deidentified_series_visible_human(real_path, tmp_path, dciodvfy):
    """A real de-identified CT (Varian DICOM Import Export: method and five codes)."""
    folder = real_path("visible_human_neck_rtstruct")
    ref = read_series_reference(folder)
    src = ref.first
    assert src.PatientIdentityRemoved == "YES" and len(src.DeidentificationMethodCodeSequence) == 5
    body = np.where(ref.image.array > -300, ORGANS.by_key("lung_r").id, 0).astype(np.uint8)
    st = np.zeros(ref.image.shape, np.uint8)
    st[:, 240:280, 200:260] = STATIONS.by_key("4R").id
    files = export_dicom(ref, tmp_path / "out", stations=ref.image.with_array(st),
                         organs=ref.image.with_array(body))
    assert len(files) == 3
    for f in files:
        assert dciodvfy_report(f)[0] == [], f.name
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for kw in ("PatientIdentityRemoved", "DeidentificationMethod",
                   "DeidentificationMethodCodeSequence"):
            assert ds[kw].value == src[kw].value, (f.name, kw)


def test_real_ibsi_series_is_not_marked(real_path, tmp_path):
    """The IBSI series says nothing about de-identification: nothing is invented."""
    ref = read_series_reference(real_path("ibsi_ct_phantom/dicom/image"))
    assert "PatientIdentityRemoved" not in ref.first
    st = np.zeros(ref.image.shape, np.uint8)
    st[20:30, 80:120, 80:120] = STATIONS.by_key("7").id
    for f in export_dicom(ref, tmp_path / "out", stations=ref.image.with_array(st)):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert "PatientIdentityRemoved" not in ds and "DeidentificationMethod" not in ds


def test_carry_deidentification_edge_cases():
    def carried(**source):
        src, out = Dataset(), Dataset()
        for k, v in source.items():
            setattr(src, k, v)
        out.PatientIdentityRemoved = "YES"  # a stale partial copy, as highdicom makes
        out.DeidentificationMethod = ""
        carry_deidentification(src, out)
        return out

    empty = carried(PatientIdentityRemoved="YES", DeidentificationMethod="")
    assert empty.DeidentificationMethod == METHOD_NOT_RECORDED
    no_items = carried(PatientIdentityRemoved="YES", DeidentificationMethodCodeSequence=[])
    assert no_items.DeidentificationMethod == METHOD_NOT_RECORDED
    assert "DeidentificationMethodCodeSequence" not in no_items
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE
    codes_only = carried(PatientIdentityRemoved="YES", DeidentificationMethodCodeSequence=[code])
    assert "DeidentificationMethod" not in codes_only  # the code sequence suffices
    assert codes_only.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    no = carried(PatientIdentityRemoved="NO")
    assert no.PatientIdentityRemoved == "NO" and "DeidentificationMethod" not in no
    assert len(carried()) == 0  # the source says nothing: the target says nothing


def test_library_warnings_are_logged_not_printed(real_path, tmp_path, capsys, caplog,
                                                 recwarn):
    """highdicom's remark on the one-component Patient's Name 'PAT1' goes to the log."""
    folder = real_path("ibsi_ct_phantom/dicom/image")
    ref = read_series_reference(folder)
    st = np.zeros(ref.image.shape, np.uint8)
    st[20:30, 80:120, 80:120] = STATIONS.by_key("7").id
    write_image(ref.image.with_array(st), tmp_path / "stations.nii.gz")
    with caplog.at_level(logging.INFO, logger="deepstationing"):
        rc = main(["export", str(tmp_path / "stations.nii.gz"), "--ct", str(folder), "-o",
                   str(tmp_path / "out"), "--format", "seg"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "PAT1" not in err and "Warning" not in err, err
    assert [w for w in recwarn if "person name" in str(w.message)] == []
    logged = [r for r in caplog.records if r.name.startswith("deepstationing")
              and r.getMessage().startswith("highdicom: ")]
    assert logged and "PAT1" in logged[0].getMessage() and logged[0].levelno == logging.INFO
