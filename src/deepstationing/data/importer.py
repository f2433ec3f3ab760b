"""Import a clinic's CTs and contours as a cohort: ``deepstationing dataset import``.

Source layout: ``SRC`` holds one folder per case (any depth inside; other files directly in
``SRC``, e.g. a README, are ignored; a ``SRC`` with DICOM or image files of its own is one
case). In a case folder:

* the CT: a DICOM CT series (any sub-folder; when there are several, the one the RT
  structure sets reference), or else a NIfTI/NRRD/MHA file named ``ct.*`` or ``image.*``;
* contours: RT Structure Set files (their ROIs mapped to our labels by a
  :class:`~deepstationing.data.roimap.RoiMapping`), label maps ``organs.*`` / ``stations.*``
  with the schema's ids, and binary masks ``masks/<ROI name>.nii.gz`` (mapped by name too).

Each case becomes a cohort case (:mod:`deepstationing.data.cohort`): ``ct.nii.gz`` (HU),
``organs.nii.gz`` / ``stations.nii.gz`` when any organ / station was found, and
``meta.json`` (source files, what each ROI became). The cohort gets the manifest and
patient-level folds every cohort has (cases of one DICOM PatientID share a fold; the
manifest holds pseudonyms ``P001``..., not the IDs) and an import report
(``import_report.json`` and ``import_report.md``) listing per case the mapped, ignored,
unmapped and empty ROIs, the labels merged from several ROIs, overlaps between labels (the
smaller structure keeps the voxels), and the organs and stations that are missing. Nothing
is dropped silently.

Structure sets are rasterised on the CT grid with :mod:`deepstationing.data.dicom.contours`
(pixel centres inside the contours; keyholes and contours inside contours make holes, by
the even-odd rule; the same masks as
``plastimatch convert --xor-contours``) after checking their Frame of Reference against the
CT's. Any bad input stops the import with one line naming the file, and leaves nothing
behind, unless ``skip_bad`` is set: then the case is listed under ``failed`` in the report
and the others are imported.

>>> import numpy as np, tempfile, pathlib
>>> from deepstationing.data.image import Image, write_image
>>> src = pathlib.Path(tempfile.mkdtemp()) / "clinic"
>>> ct = Image(np.full((4, 8, 8), -1000, np.int16), spacing=(2.0, 2.0, 3.0))
>>> for name in ("pat1", "pat2"):
...     _ = write_image(ct, src / name / "ct.nii.gz")
...     mask = np.zeros((4, 8, 8), np.uint8); mask[1:3, 2:5, 1:4] = 1
...     _ = write_image(ct.with_array(mask), src / name / "masks" / "Lung_R.nii.gz")
...     _ = write_image(ct.with_array(mask), src / name / "masks" / "BODY.nii.gz")
>>> result = import_dataset(src, src.parent / "cohort")
>>> result.cohort.case_ids, result.report["cases"][0]["mapped"], result.unmapped_rois()
(['pat1', 'pat2'], {'Lung_R': 'lung_r'}, {'BODY': ['pat1', 'pat2']})
>>> len(result.report["cases"][0]["missing_organs"]), result.report["cases"][0]["has_stations"]
(21, False)
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstationing import __version__
from deepstationing.data.atomic import write_json_atomic, write_text_atomic
from deepstationing.data.cohort import CASE_FILES, Cohort, CohortWriter
from deepstationing.data.dicom.rtstruct import rasterize_rtstruct, read_rtstruct
from deepstationing.data.dicom.series import SeriesReference, read_series_reference
from deepstationing.data.image import IMAGE_SUFFIXES, Image, read_image, write_image
from deepstationing.data.regrid import on_grid
from deepstationing.data.roimap import IGNORED, MAPPED, RoiMapping
from deepstationing.errors import DeepStationingError, InputError
from deepstationing.schema import ORGANS, STATIONS, Label, LabelSet

__all__ = ["CaseSource", "ImportResult", "find_cases", "import_dataset", "GENERATOR",
           "REPORT_JSON", "REPORT_MD"]

log = logging.getLogger(__name__)

GENERATOR = "deepstationing.import"
REPORT_JSON = "import_report.json"
REPORT_MD = "import_report.md"
_CT_STEMS = ("ct", "image")
_LABEL_STEMS = {"organs": ORGANS, "stations": STATIONS}


@dataclass
class CaseSource:
    """What one case folder of the source holds (see the module docstring)."""

    id: str
    folder: Path
    ct_series: dict[str, Path] = field(default_factory=dict)  # SeriesInstanceUID -> folder
    ct_files: list[Path] = field(default_factory=list)
    rtstructs: list[Path] = field(default_factory=list)
    label_maps: dict[str, Path] = field(default_factory=dict)  # "organs"/"stations" -> file
    masks: list[Path] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _image_stem(p: Path) -> str | None:
    name = p.name.lower()
    for sfx in IMAGE_SUFFIXES:
        if name.endswith(sfx):
            return p.name[: -len(sfx)]
    return None


def _is_dicom_file(p: Path) -> bool:
    if p.suffix.lower() == ".dcm":
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _safe_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "case"


def _scan(case: CaseSource) -> CaseSource:
    import pydicom

    tags = ["Modality", "SeriesInstanceUID", "SOPClassUID"]
    for p in sorted(case.folder.rglob("*")):
        rel = p.relative_to(case.folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        stem = _image_stem(p)
        if stem is not None:
            low = stem.lower()
            if "masks" in (part.lower() for part in rel.parts[:-1]):
                case.masks.append(p)
            elif low in _LABEL_STEMS:
                case.label_maps[low] = p
            elif low in _CT_STEMS:
                case.ct_files.append(p)
            else:
                case.unused.append(str(rel))
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=tags)
        except Exception:  # not DICOM (pydicom raises several types)
            case.unused.append(str(rel))
            continue
        modality = str(ds.get("Modality", "")).upper()
        if modality == "CT":
            uid = str(ds.get("SeriesInstanceUID", ""))
            folder = case.ct_series.setdefault(uid, p.parent)
            if folder != p.parent:
                raise InputError(p, f"CT series {uid} is split over the folders {folder} and "
                                    f"{p.parent}; keep a series in one folder")
        elif modality == "RTSTRUCT":
            case.rtstructs.append(p)
        else:
            case.unused.append(f"{rel} ({modality or 'unknown modality'})")
    return case


def find_cases(src: str | os.PathLike) -> list[CaseSource]:
    """The case folders of ``src`` with what each holds."""
    root = Path(src)
    if not root.is_dir():
        raise InputError(root, "no such folder" if not root.exists() else
                               "not a folder; give the folder that holds one folder per case")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    own_data = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
                and (_image_stem(p) is not None or _is_dicom_file(p))]
    folders = subdirs if subdirs and not own_data else [root]
    cases, seen = [], set()
    for folder in folders:
        cid = _safe_id(folder.name)
        base, n = cid, 2
        while cid in seen:
            cid, n = f"{base}_{n}", n + 1
        seen.add(cid)
        cases.append(_scan(CaseSource(cid, folder)))
    if not cases:
        raise InputError(root, "holds no case folders")
    return cases


# ---------------------------------------------------------------------- one case
@dataclass
class _Found:
    label: Label
    roi: str
    mask: np.ndarray


def _choose_ct(case: CaseSource) -> tuple[Image, SeriesReference | None, dict]:
    if case.ct_series:
        uids = list(case.ct_series)
        if len(uids) > 1:
            referenced = set()
            for rs in case.rtstructs:
                referenced |= set(read_rtstruct(rs).referenced_series_uids)
            uids = [u for u in uids if u in referenced]
            if len(uids) != 1:
                raise InputError(case.folder, f"holds {len(case.ct_series)} CT series and the "
                                              "structure sets do not single one out; keep one "
                                              "CT series per case folder")
        ref = read_series_reference(case.ct_series[uids[0]])
        info = {"kind": "dicom", "folder": str(ref.folder), "series_uid": ref.series_uid,
                "frame_of_reference_uid": ref.frame_of_reference_uid,
                "slices": len(ref.headers)}
        return ref.image, ref, info
    if len(case.ct_files) != 1:
        what = "no CT (no DICOM CT series, no ct.nii.gz / image.nii.gz)" if not case.ct_files \
            else f"{len(case.ct_files)} CT files ({', '.join(p.name for p in case.ct_files)})"
        raise InputError(case.folder, f"holds {what}")
    image = read_image(case.ct_files[0])
    return image, None, {"kind": "image", "file": str(case.ct_files[0])}


def _ct_int16(image: Image) -> Image:
    arr = image.array
    if arr.dtype == np.int16:
        return image
    if (arr.dtype.kind in "iu" or np.all(np.mod(arr, 1) == 0)) and arr.size and \
            arr.min() >= -32768 and arr.max() <= 32767:
        return image.with_array(arr.astype(np.int16))
    return image.with_array(arr.astype(np.float32))


def _combine(found: list[_Found], labels: LabelSet, shape) -> tuple[np.ndarray, list[dict]]:
    """One label map from per-label masks; where labels overlap the smaller one wins."""
    by_label: dict[int, np.ndarray] = {}
    for f in found:
        if f.label in labels:
            by_label[f.label.id] = by_label.get(f.label.id, np.zeros(shape, bool)) | f.mask
    out = np.zeros(shape, np.uint8)
    overlaps = []
    ids = sorted(by_label, key=lambda i: -int(by_label[i].sum()))  # largest painted first
    for n, a in enumerate(ids):
        for b in ids[n + 1:]:
            both = int((by_label[a] & by_label[b]).sum())
            if both:
                overlaps.append({"labels": [labels.by_id(a).key, labels.by_id(b).key],
                                 "voxels": both, "kept_by": labels.by_id(b).key})
        out[by_label[a]] = a
    return out, overlaps


def _import_case(case: CaseSource, mapping: RoiMapping) -> tuple[Image, dict, dict]:
    ct, ref, ct_info = _choose_ct(case)
    rep: dict = {"id": case.id, "source": str(case.folder), "ct": ct_info,
                 "rtstructs": [str(p) for p in case.rtstructs], "mapped": {}, "ignored": [],
                 "unmapped": [], "empty": [], "outside_ct": [], "merged": {}, "overlaps": [],
                 "unused_files": list(case.unused) + [
                     f"{p.relative_to(case.folder)} (not the CT used)" for p in case.ct_files
                     if ref is not None], "warnings": []}
    found: list[_Found] = []

    def take(name: str, status: str, label: Label | None, mask_fn) -> None:
        if status == IGNORED:
            rep["ignored"].append(name)
        elif status != MAPPED or label is None:
            rep["unmapped"].append(name)
        else:
            mask = mask_fn()
            if not mask.any():
                rep["outside_ct"].append(name)
                return
            rep["mapped"][name] = label.key
            found.append(_Found(label, name, mask))

    for rs_path in case.rtstructs:
        ss = read_rtstruct(rs_path)
        if ref is None:
            rep["warnings"].append(f"{rs_path.name}: the CT is not DICOM, so the structure "
                                   "set's Frame of Reference cannot be checked")
        decided = [(roi, *mapping.match(roi.name)) for roi in ss.rois]
        wanted = [roi.name for roi, status, _ in decided if status == MAPPED and roi.contours]
        masks = rasterize_rtstruct(ss, ref if ref is not None else ct, names=wanted) \
            if wanted or ref is not None else {}
        for roi, status, label in decided:
            if not roi.contours:
                rep["empty"].append(roi.name)
                if status != MAPPED:
                    (rep["ignored"] if status == IGNORED else rep["unmapped"]).append(roi.name)
                continue
            take(roi.name, status, label, lambda m=masks, n=roi.name: m[n])
    for mask_path in case.masks:
        name = _image_stem(mask_path) or mask_path.name
        status, label = mapping.match(name)

        def load(p=mask_path):
            img = on_grid(read_image(p, label=True), ct, reference_name="the case's CT")
            return img.array > 0

        take(name, status, label, load)
    for kind, path in sorted(case.label_maps.items()):
        labels = _LABEL_STEMS[kind]
        img = on_grid(read_image(path, label=True), ct, reference_name="the case's CT")
        values = set(np.unique(img.array).tolist()) - {0}
        bad = sorted(v for v in values if v > len(labels))
        if bad:
            raise InputError(path, f"values {bad[:5]} are not {kind[:-1]} ids 1-{len(labels)}")
        for v in sorted(values):
            lab = labels.by_id(v)
            found.append(_Found(lab, f"{path.name}:{v}", img.array == v))
            rep["mapped"][f"{path.name}:{v}"] = lab.key
    per_label: dict[str, list[str]] = {}
    for f in found:
        per_label.setdefault(f.label.key, []).append(f.roi)
    rep["merged"] = {k: v for k, v in per_label.items() if len(v) > 1}
    maps = {}
    for kind, labels in (("organs", ORGANS), ("stations", STATIONS)):
        arr, overlaps = _combine(found, labels, ct.shape)
        rep["overlaps"] += overlaps
        present = set(np.unique(arr).tolist()) - {0}
        rep[f"missing_{kind}"] = [lab.key for lab in labels if lab.id not in present]
        rep[f"has_{kind}"] = bool(present)
        if present:
            maps[kind] = ct.with_array(arr)
    patient = str(ref.first.get("PatientID", "")) if ref is not None else ""
    return ct, {"maps": maps, "patient": patient or f"case:{case.id}"}, rep


# ---------------------------------------------------------------------- cohort
@dataclass
class ImportResult:
    """The imported cohort and its import report (also written into the cohort)."""

    cohort: Cohort
    report: dict

    def unmapped_rois(self) -> dict[str, list[str]]:
        """Unmapped ROI name -> the cases it occurs in."""
        return self.report["unmapped_rois"]


def _markdown(report: dict) -> str:
    lines = [f"# Import report: {report['cohort']}", "",
             f"Source `{report['source']}`, mapping file `{report['mapping'] or '(built-in)'}`,"
             f" {len(report['cases'])} case(s) imported, {len(report['failed'])} failed.", ""]
    if report["unmapped_rois"]:
        lines += ["## Unmapped ROIs", "", "Add them to the mapping file (under a label, or "
                  "under `ignore`):", "", "| ROI | cases |", "|---|---|"]
        lines += [f"| `{name}` | {', '.join(cases)} |"
                  for name, cases in report["unmapped_rois"].items()]
        lines.append("")
    lines += ["## Cases", "", "| case | mapped | ignored | unmapped | empty | missing organs |"
              " missing stations |", "|---|---|---|---|---|---|---|"]
    for c in report["cases"]:
        mapped = ", ".join(f"{k} -> {v}" for k, v in c["mapped"].items()) or "-"
        lines.append(f"| {c['id']} | {mapped} | {', '.join(c['ignored']) or '-'} | "
                     f"{', '.join(c['unmapped']) or '-'} | {', '.join(c['empty']) or '-'} | "
                     f"{len(c['missing_organs'])} of 22 | {len(c['missing_stations'])} of 12 |")
    notes = [(c["id"], n) for c in report["cases"] for n in
             [f"{k} merged from {', '.join(v)}" for k, v in c["merged"].items()]
             + [f"{o['labels'][0]} / {o['labels'][1]} overlap in {o['voxels']} voxels (kept "
                f"by {o['kept_by']})" for o in c["overlaps"]]
             + [f"ROI {r} lies outside the CT" for r in c["outside_ct"]] + c["warnings"]]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {cid}: {n}" for cid, n in notes]
    if report["failed"]:
        lines += ["", "## Failed cases", ""] + [f"- `{f['source']}`: {f['error']}"
                                               for f in report["failed"]]
    return "\n".join(lines) + "\n"


def import_dataset(src: str | os.PathLike, out: str | os.PathLike, *,
                   mapping: RoiMapping | None = None, n_folds: int = 4, seed: int = 0,
                   skip_bad: bool = False,
                   progress: Callable[[str], None] | None = None) -> ImportResult:
    """Import the cases of ``src`` into the cohort folder ``out`` (see the module docstring).

    Args:
        src: folder of case folders.
        out: cohort folder to create (or an earlier import to replace).
        mapping: the clinic's ROI names (default: the schema's built-in names only).
        n_folds, seed: patient-level split.
        skip_bad: list a case that cannot be imported in the report instead of stopping.
        progress: called with one line per case.
    """
    mapping = mapping or RoiMapping()
    src_r, out_r = Path(src).resolve(), Path(out).resolve()
    if out_r == src_r or src_r in out_r.parents or out_r in src_r.parents:
        raise InputError(out, f"the cohort folder and the source folder {src} contain one "
                              "another; write the cohort elsewhere")
    cases = find_cases(src)
    report: dict = {"cohort": Path(out).name, "source": str(src), "mapping": mapping.source,
                    "created_by": f"deepstationing {__version__}", "cases": [], "failed": []}
    pseudonyms: dict[str, str] = {}
    with CohortWriter(out, generator=GENERATOR, n_folds=n_folds, seed=seed,
                      cohort_files=(REPORT_JSON, REPORT_MD)) as writer:
        for i, case in enumerate(cases, start=1):
            try:
                ct, result, rep = _import_case(case, mapping)
            except DeepStationingError as exc:
                if not skip_bad:
                    raise
                report["failed"].append({"source": str(case.folder), "error": str(exc)})
                if progress:
                    progress(f"{i}/{len(cases)} {case.id}: FAILED {exc}")
                continue
            folder = writer.case_folder(case.id)
            write_image(_ct_int16(ct), folder / CASE_FILES["ct"])
            for kind, img in result["maps"].items():
                write_image(img, folder / CASE_FILES[kind])
            patient = pseudonyms.setdefault(result["patient"], f"P{len(pseudonyms) + 1:03d}")
            write_json_atomic({"id": case.id, "patient": patient, "import": rep},
                              folder / CASE_FILES["meta"])
            writer.add_case(case.id, patient=patient)
            report["cases"].append(rep)
            if progress:
                progress(f"{i}/{len(cases)} {case.id}: {len(rep['mapped'])} mapped, "
                         f"{len(rep['unmapped'])} unmapped, {len(rep['ignored'])} ignored ROIs")
        unmapped: dict[str, list[str]] = {}
        for rep in report["cases"]:
            for name in rep["unmapped"]:
                unmapped.setdefault(name, []).append(rep["id"])
        report["unmapped_rois"] = dict(sorted(unmapped.items()))
        if not report["cases"]:
            raise InputError(src, "no case could be imported: " +
                             "; ".join(f["error"] for f in report["failed"][:3]))
        write_json_atomic(report, writer.staging / REPORT_JSON)
        write_text_atomic(_markdown(report), writer.staging / REPORT_MD)
        cohort = writer.finish(source=str(src), mapping=mapping.source)
    return ImportResult(cohort, json.loads(json.dumps(report)))
