"""Evaluation results on disk: ``metrics.csv``, ``summary.md``, and matching of case files.

``metrics.csv`` has one row per (case, label) and the columns
``case,label,dsc,hd,hd95,assd,empty``: DSC as a fraction 0..1, distances in mm, ``nan`` where
a metric is undefined, and ``empty`` the empty-mask flag (``""``, ``"pred"``, ``"truth"`` or
``"both"``; see :mod:`deepstationing.evaluation.metrics`). Labels are station keys (``4R``),
organ keys (``trachea``) or, for other label maps, the integer value.

``summary.md`` lays results out like Table 1 of the DeepStationing paper: one table per metric
(DSC in %, HD, HD95 and ASSD in mm), one row per label plus an ``Average`` row, one column per
result set ("setting"), cells ``mean ± std`` over cases.

Examples
--------
>>> rows = [MetricRow("c1", "4R", 0.8, 10.0, 8.0, 1.0),
...         MetricRow("c2", "4R", 0.6, 20.0, 9.0, 2.0)]
>>> print(summary_markdown({"CT only": rows}).split("## HD (mm)")[0])
# Evaluation summary
<BLANKLINE>
Cases: 2 (CT only).
<BLANKLINE>
## DSC (%)
<BLANKLINE>
| Label | CT only |
|---|---|
| 4R | 70.0 ± 10.0 |
| Average | 70.0 ± 10.0 |
<BLANKLINE>
<BLANKLINE>
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstationing.data.atomic import write_text_atomic
from deepstationing.data.cohort import CASE_FILES
from deepstationing.data.image import IMAGE_SUFFIXES
from deepstationing.errors import InputError
from deepstationing.evaluation.metrics import EMPTY_FLAGS, METRIC_NAMES, Metrics
from deepstationing.schema import get_label_set

__all__ = [
    "CSV_COLUMNS",
    "MetricRow",
    "CasePair",
    "CaseMatch",
    "label_name",
    "rows_for_case",
    "write_metrics_csv",
    "read_metrics_csv",
    "SummaryStat",
    "summarize",
    "summary_markdown",
    "write_summary",
    "write_text_atomic",
    "case_id_of",
    "match_cases",
]

#: Columns of ``metrics.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = ("case", "label", *METRIC_NAMES, "empty")

_TITLES = {"dsc": "DSC (%)", "hd": "HD (mm)", "hd95": "HD95 (mm)", "assd": "ASSD (mm)"}


@dataclass(frozen=True)
class MetricRow:
    """One row of ``metrics.csv``: the metrics of one label in one case."""

    case: str
    label: str
    dsc: float
    hd: float
    hd95: float
    assd: float
    empty: str = ""

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))


def label_name(value: int, labels: str = "stations") -> str:
    """Name of label ``value`` in schema ``labels`` (``"stations"``, ``"organs"``, ``"all"``).

    >>> label_name(8), label_name(22, "organs"), label_name(8, "all")
    ('4R', 'trachea', '8')
    """
    if labels == "all":
        return str(int(value))
    return get_label_set(labels).by_id(int(value)).key


def rows_for_case(case: str, metrics: Mapping[int, Metrics],
                  labels: str = "stations") -> list[MetricRow]:
    """CSV rows of one case from :func:`~deepstationing.evaluation.metrics.label_map_metrics`."""
    return [MetricRow(case, label_name(v, labels), m.dsc, m.hd, m.hd95, m.assd, m.empty)
            for v, m in metrics.items()]


# ---------------------------------------------------------------------- files
def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.6g}"


def write_metrics_csv(rows: Sequence[MetricRow], path: str | os.PathLike) -> Path:
    """Write ``metrics.csv`` (columns :data:`CSV_COLUMNS`, ``nan`` for undefined values)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.case, r.label, *(_fmt(r.value(k)) for k in METRIC_NAMES), r.empty])
    return write_text_atomic(buf.getvalue(), path)


def read_metrics_csv(path: str | os.PathLike) -> list[MetricRow]:
    """Read a ``metrics.csv`` written by :func:`write_metrics_csv`.

    Raises:
        InputError: missing file, wrong header or a malformed row.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != CSV_COLUMNS:
            raise InputError(p, f"not a metrics.csv: header {','.join(header) or '(none)'}, "
                                f"expected {','.join(CSV_COLUMNS)}")
        rows = []
        for n, rec in enumerate(reader, start=2):
            try:
                if len(rec) != len(CSV_COLUMNS) or rec[-1] not in EMPTY_FLAGS:
                    raise ValueError
                rows.append(MetricRow(rec[0], rec[1], *(float(x) for x in rec[2:6]), rec[6]))
            except ValueError:
                raise InputError(p, f"malformed row {n}: {','.join(rec)}") from None
    return rows


# ---------------------------------------------------------------------- summary
@dataclass(frozen=True)
class SummaryStat:
    """Mean, standard deviation (population, ``ddof=0``) and count of the valid values."""

    mean: float
    std: float
    n: int


def summarize(rows: Sequence[MetricRow]) -> dict[str, dict[str, SummaryStat]]:
    """``{label: {metric: (mean, std, n)}}`` over cases, NaN values left out.

    The standard deviation is the population one (``ddof=0``); a label with no valid value
    has ``n == 0`` and NaN mean and std. Labels keep the order of first appearance.
    """
    values: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        per = values.setdefault(r.label, {k: [] for k in METRIC_NAMES})
        for k in METRIC_NAMES:
            v = r.value(k)
            if not math.isnan(v):
                per[k].append(v)
    out: dict[str, dict[str, SummaryStat]] = {}
    for label, per in values.items():
        out[label] = {}
        for k, vals in per.items():
            if vals:
                a = np.asarray(vals, float)
                out[label][k] = SummaryStat(float(a.mean()), float(a.std()), a.size)
            else:
                out[label][k] = SummaryStat(math.nan, math.nan, 0)
    return out


def _cell(stat: SummaryStat | None, scale: float) -> str:
    if stat is None or stat.n == 0:
        return "n/a"
    return f"{stat.mean * scale:.1f} ± {stat.std * scale:.1f}"


def _average(stats: Sequence[SummaryStat]) -> SummaryStat | None:
    valid = [s for s in stats if s.n > 0]
    if not valid:
        return None
    return SummaryStat(float(np.mean([s.mean for s in valid])),
                       float(np.mean([s.std for s in valid])), len(valid))


def summary_markdown(results: Mapping[str, Sequence[MetricRow]],
                     labels: Sequence[str] | None = None,
                     title: str = "Evaluation summary") -> str:
    """The paper's Table 1 layout as Markdown, one column per result set.

    Args:
        results: ``{setting name: rows}``, e.g. ``{"CT only": rows_a, "+6 organs": rows_b}``.
        labels: row order; default: labels in order of first appearance over all settings.
        title: first heading.

    Each metric gets a table with one row per label and an ``Average`` row; a cell is
    ``mean ± std`` over cases (NaN left out; ``n/a`` if a label has no valid value). DSC is
    shown in percent, distances in mm, all with one decimal.
    """
    if not results:
        raise ValueError("no result sets to summarise")
    names = list(results)
    stats = {name: summarize(rows) for name, rows in results.items()}
    if labels is None:
        labels = list(dict.fromkeys(lab for name in names for lab in stats[name]))
    n_cases = {name: len({r.case for r in rows}) for name, rows in results.items()}
    lines = [f"# {title}", ""]
    if len(set(n_cases.values())) == 1:
        lines.append(f"Cases: {next(iter(n_cases.values()))} ({', '.join(names)}).")
    else:
        lines.append("Cases: " + "; ".join(f"{n} ({name})" for name, n in n_cases.items()) + ".")
    lines.append("")
    head = "| Label | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(names)
    for metric in METRIC_NAMES:
        scale = 100.0 if metric == "dsc" else 1.0
        lines += [f"## {_TITLES[metric]}", "", head, rule]
        for lab in labels:
            cells = [_cell(stats[n].get(lab, {}).get(metric), scale) for n in names]
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        avg = [_cell(_average([stats[n][lab][metric] for lab in labels if lab in stats[n]]),
                     scale) for n in names]
        lines.append("| Average | " + " | ".join(avg) + " |")
        lines.append("")
    empties = {flag: sum(r.empty == flag for rows in results.values() for r in rows)
               for flag in EMPTY_FLAGS[1:]}
    lines += [
        "Notes:",
        "",
        "- Cells: mean ± standard deviation (population, ddof=0) over cases. DSC in %, HD, "
        "HD95 and ASSD in mm (HD95: larger of the two area-weighted directed 95th "
        "percentiles; ASSD: area-weighted mean over both surfaces).",
        "- Average row: mean of the per-label means ± mean of the per-label standard "
        "deviations (the convention of the DeepStationing paper's Table 1), over labels with "
        "a value; `n/a`: no valid value.",
        "- Empty masks: prediction or truth empty → DSC 0 (counted), distances undefined "
        "(left out); both empty → all metrics undefined (left out). Label-case pairs with "
        f"empty prediction: {empties['pred']}, empty truth: {empties['truth']}, "
        f"both empty: {empties['both']}.",
        "",
    ]
    return "\n".join(lines)


def write_summary(results: Mapping[str, Sequence[MetricRow]], path: str | os.PathLike,
                  labels: Sequence[str] | None = None) -> Path:
    """Write :func:`summary_markdown` to ``path`` atomically."""
    return write_text_atomic(summary_markdown(results, labels), path)


# ---------------------------------------------------------------------- case matching
@dataclass(frozen=True)
class CasePair:
    """A prediction file and its truth file, with the case id they share."""

    case: str
    pred: Path
    truth: Path


@dataclass(frozen=True)
class CaseMatch:
    """Result of :func:`match_cases`: matched pairs (sorted by case id) and the leftovers."""

    pairs: list[CasePair]
    pred_only: list[Path] = field(default_factory=list)
    truth_only: list[Path] = field(default_factory=list)


def case_id_of(path: str | os.PathLike) -> str:
    """File name without its image extension (``case_001.nii.gz`` -> ``case_001``).

    >>> case_id_of("/p/case_001.nii.gz"), case_id_of("b.mha"), case_id_of("folder")
    ('case_001', 'b', 'folder')
    """
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _cases_in(folder: Path, labels: str) -> dict[str, Path]:
    """Case id -> label map file in ``folder``: image files, or case subfolders (cohort)."""
    role = "organs" if labels == "organs" else "stations"
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
            path = entry
        elif entry.is_dir() and (entry / CASE_FILES[role]).is_file():
            path = entry / CASE_FILES[role]
        else:
            continue
        case = case_id_of(entry)
        if case in found:
            raise InputError(entry, f"case {case!r} appears twice in the folder "
                                    f"(also {found[case].name})")
        found[case] = path
    if not found:
        raise InputError(folder, "no label maps found: expected image files (.nii.gz, .nii, "
                                 f".nrrd, .mha) or case folders holding {CASE_FILES[role]}")
    return found


def match_cases(pred: str | os.PathLike, truth: str | os.PathLike,
                labels: str = "stations") -> CaseMatch:
    """Pair prediction and truth label maps: two files, or two folders matched by case id.

    A folder holds either label-map files (case id = file name without extension) or case
    subfolders holding ``stations.nii.gz`` (``organs.nii.gz`` with ``labels="organs"``),
    as a cohort does (case id = subfolder name); the two sides may use different layouts.

    Raises:
        InputError: a path is missing, one is a file and the other a folder, a folder holds
            no label maps or one case twice.
    """
    p, t = Path(pred), Path(truth)
    for path, what in ((p, "prediction"), (t, "truth")):
        if not path.exists():
            raise InputError(path, f"{what}: no such file or folder")
    if p.is_file() and t.is_file():
        return CaseMatch([CasePair(case_id_of(p), p, t)])
    if p.is_file() != t.is_file():
        raise InputError(p, "--pred and --truth must both be files or both be folders "
                            f"(truth {t} is a {'file' if t.is_file() else 'folder'})")
    pc, tc = _cases_in(p, labels), _cases_in(t, labels)
    pairs = [CasePair(c, pc[c], tc[c]) for c in sorted(pc.keys() & tc.keys())]
    return CaseMatch(pairs, [pc[c] for c in sorted(pc.keys() - tc.keys())],
                     [tc[c] for c in sorted(tc.keys() - pc.keys())])
