"""The experiment's report: ``OUT/report.md`` and a self-contained ``OUT/report.html``.

Every number is read from the jobs' results (``OUT/jobs/*/status.json`` and the
``metrics.csv`` files they point to), never typed: Table 1 (stations x settings for DSC,
HD, HD95, ASSD), the ablations, the top-n curve, the organ table (stratified cascade vs
single network, anchors vs non-anchors), zone accuracy, the searched rankings, overlays of
truth and prediction for two held-out cases, and what the run was (command, versions,
scale, seeds, machine, wall times). The HTML embeds its pictures, so it can be mailed or
archived as one file.

>>> paper_orderings({"ct": [0.5, 0.6], "pred22": [0.7, 0.7], "top6": [0.8, 0.7],
...                  "gt22": [0.9, 0.8], "rules": [0.4, 0.5]})[0]
'CT only < +22 organ pred: holds in 2 of 2 folds (mean 55.0 vs 70.0 %)'
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import time
from pathlib import Path

import numpy as np

from deepstationing import schema
from deepstationing.data.atomic import atomic_output, write_text_atomic
from deepstationing.evaluation.heldout import mean_dsc
from deepstationing.evaluation.report import MetricRow, read_metrics_csv, summary_markdown
from deepstationing.experiments.jobs import JobStore
from deepstationing.experiments.scales import ABLATIONS, TABLE1

__all__ = ["write_report", "paper_orderings", "collect"]

ORDERINGS = [("ct", "pred22"), ("pred22", "top6"), ("pred22", "gt22"), ("rules", "pred22"),
             ("ct", "top6")]


def _title(setting: str) -> str:

    if setting in TABLE1:
        return TABLE1[setting]
    if setting in ABLATIONS:
        return ABLATIONS[setting]
    if setting.startswith("top"):
        return f"top-{setting[3:]} searched"
    return setting


def collect(store: JobStore) -> dict:
    """Everything the report needs, from the finished jobs."""
    settings: dict[str, dict] = {}
    for status_file in sorted((store.root / "jobs" / "stations").glob("*/*/status.json")):
        status = json.loads(status_file.read_text())
        if status.get("state") != "done":
            continue
        res = status["result"]
        name = res["setting"]
        entry = settings.setdefault(name, {"rows": [], "per_fold": {}, "zones": [],
                                           "specs": {}, "seconds": 0.0, "saved": {},
                                           "qc": []})
        rows = read_metrics_csv(status_file.parent / res["metrics"])
        entry["rows"] += rows
        entry["zones"] += res.get("zones", [])
        entry["qc"] += res.get("qc", [])
        entry["seconds"] += float(status.get("seconds", 0.0))
        if "fold" in res:
            entry["per_fold"][int(res["fold"])] = res["mean_dsc"]
            entry["specs"][int(res["fold"])] = res["spec"]
            for case, f in res.get("saved", {}).items():
                entry["saved"][case] = str(status_file.parent / f)
        else:  # the rules: one job for every fold
            entry["per_fold"] = _per_fold_from_rows(store, rows)
    organs = store.result("eval/organs") if store.is_done("eval/organs") else None
    searches = {}
    for status_file in sorted((store.root / "jobs" / "search").glob("*/*/status.json")):
        status = json.loads(status_file.read_text())
        if status.get("state") == "done":
            res = status["result"]
            searches[(res["source"], int(res["fold"]))] = {
                **res, "folder": str(status_file.parent)}
    jobs = []
    for status_file in sorted((store.root / "jobs").rglob("status.json")):
        status = json.loads(status_file.read_text())
        jobs.append((status["job"]["id"], status.get("state"), status.get("seconds", 0.0),
                     status.get("host", "")))
    return {"settings": settings, "organs": organs, "searches": searches, "jobs": jobs}


def _per_fold_from_rows(store: JobStore, rows: list[MetricRow]) -> dict[int, float]:
    from deepstationing.data.cohort import Cohort

    exp = json.loads((store.root / "experiment.json").read_text())
    cohort = Cohort(exp["cohort"])
    out = {}
    for fold in exp["folds"]:
        ids = set(cohort.test_ids(int(fold)))
        value = mean_dsc(r for r in rows if r.case in ids)
        if not math.isnan(value):
            out[int(fold)] = value
    return out


def paper_orderings(per_fold: dict[str, list[float]]) -> list[str]:
    """Whether the paper's orderings hold, fold by fold: one sentence each."""
    out = []
    for low, high in ORDERINGS:
        if low not in per_fold or high not in per_fold:
            continue
        a, b = per_fold[low], per_fold[high]
        n = min(len(a), len(b))
        holds = sum(x < y for x, y in zip(a[:n], b[:n]))
        out.append(f"{_title(low)} < {_title(high)}: holds in {holds} of {n} folds "
                   f"(mean {100 * np.mean(a):.1f} vs {100 * np.mean(b):.1f} %)")
    return out


def _zone_table(settings: dict) -> list[str]:
    zones = [z.name for z in schema.ZONES]
    lines = ["| setting | nodes | all | " + " | ".join(zones) + " |",
             "|---|---|---|" + "---|" * len(zones)]
    for name, entry in settings.items():
        z = entry["zones"]
        if not z:
            continue
        cells = []
        for zone in zones:
            mine = [r["correct"] for r in z if r["zone"] == zone]
            cells.append(f"{100 * np.mean(mine):.1f}" if mine else "n/a")
        lines.append(f"| {_title(name)} | {len(z)} | "
                     f"{100 * np.mean([r['correct'] for r in z]):.1f} | " + " | ".join(cells)
                     + " |")
    return lines


def _qc_lines(settings: dict) -> list[str]:
    """The plausibility QC of the held-out predictions: verdicts per setting, and the cases
    that are not ``ok`` with the findings that fired."""
    rows = [(name, entry["qc"]) for name, entry in settings.items() if entry.get("qc")]
    if not rows:
        return []
    lines = ["## Plausibility QC of the held-out predictions", "",
             "Every held-out prediction is checked as `deepstationing predict` checks a case "
             "(`docs/qc.md`): labels outside the body, stations outside the mediastinum or "
             "on the wrong side, islands, missing stations and organs, volumes and positions "
             "outside the training cohort's, agreement with the margin rules on the "
             "predicted organs.", "",
             "| setting | cases | ok | check | implausible | findings that fired (cases) |",
             "|---|---|---|---|---|---|"]
    flagged = []
    for name, qc in rows:
        verdicts = [q["verdict"] for q in qc]
        counts: dict[str, int] = {}
        for q in qc:
            for f in q["fired"]:
                counts[f] = counts.get(f, 0) + 1
        fired = ", ".join(f"{f} ({n})" for f, n in sorted(counts.items(), key=lambda x: -x[1]))
        lines.append(f"| {_title(name)} | {len(qc)} | {verdicts.count('ok')} | "
                     f"{verdicts.count('check')} | {verdicts.count('implausible')} | "
                     f"{fired or '-'} |")
        flagged += [(name, q) for q in qc if q["verdict"] != "ok"]
    lines.append("")
    if flagged:
        lines += [f"- {_title(name)}, {q['case']}: {q['line']}" for name, q in flagged[:20]]
        if len(flagged) > 20:
            lines.append(f"- ... and {len(flagged) - 20} more")
        lines.append("")
    return lines


def _figure_curve(points: list[tuple[int, float, float]], path: Path) -> Path:
    import matplotlib.style
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(5.5, 3.4), dpi=110)
        ax = fig.add_subplot()
        ns = [p[0] for p in points]
        ax.errorbar(ns, [100 * p[1] for p in points], yerr=[100 * p[2] for p in points],
                    marker="o", capsize=3)
        ax.set_xlabel("number of searched organs (top-n)")
        ax.set_ylabel("held-out mean DSC (%)")
        ax.set_xticks(ns)
        ax.grid(alpha=0.3)
        ax.set_title("Station DSC with CT + the top-n searched organs", fontsize=10)
        fig.tight_layout()
        with atomic_output(path) as staged:
            fig.savefig(staged.path, format="png")
    return path


def _figure_settings(settings: dict, order: list[str], path: Path) -> Path:
    import matplotlib.style
    from matplotlib.figure import Figure

    names = [n for n in order if n in settings]
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(6.5, 3.4), dpi=110)
        ax = fig.add_subplot()
        for i, name in enumerate(names):
            vals = [100 * v for v in settings[name]["per_fold"].values()]
            ax.bar(i, np.mean(vals), color="C0" if name != "rules" else "0.6", alpha=0.8)
            ax.plot([i] * len(vals), vals, "k.", ms=6)
        ax.set_xticks(range(len(names)), [_title(n) for n in names], rotation=20, ha="right",
                      fontsize=8)
        ax.set_ylabel("held-out mean DSC (%)")
        ax.set_title("Table 1 settings: mean over folds (bars), each fold (dots)", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        with atomic_output(path) as staged:
            fig.savefig(staged.path, format="png")
    return path


def _overlays(ctx, settings: dict, figures: Path) -> list[tuple[str, Path]]:
    from deepstationing.data.cohort import Cohort
    from deepstationing.data.image import read_image
    from deepstationing.viz import render_case

    name = "top6" if "top6" in settings else next(iter(settings), None)
    if name is None or name == "rules":
        return []
    cohort = Cohort(ctx.cohort)
    out = []
    for case_id, pred_file in list(settings[name]["saved"].items())[:2]:
        case = cohort.case(case_id)
        png = figures / f"overlay_{case_id}.png"
        render_case(png, ct=read_image(case.ct), stations=read_image(case.stations, label=True),
                    compare=read_image(pred_file, label=True),
                    compare_name=f"prediction ({_title(name)})",
                    title=f"{case_id}: truth (top row) and held-out prediction "
                          f"({_title(name)}, bottom row)")
        out.append((case_id, png))
    return out


def write_report(ctx, store: JobStore) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/`` into the experiment's folder."""

    out = Path(ctx.out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    data = collect(store)
    exp = json.loads((out / "experiment.json").read_text())
    settings = data["settings"]
    scale = ctx.scale
    lines = _intro_lines(scale)
    lines += _table1_lines(settings, exp, figures)
    lines += _ablation_lines(settings, exp)
    lines += _topn_lines(settings, scale, figures)
    lines += _search_lines(data["searches"], figures)
    lines += _organ_lines(data["organs"])
    # ---- zones
    zone_lines = _zone_table(settings)
    if len(zone_lines) > 2:
        lines += ["## Lymph-node zone accuracy (%)", "",
                  "A node counts as correct when most of its voxels lie in a predicted "
                  "station of its own zone (supraclavicular, superior, aortic, inferior).", ""]
        lines += zone_lines + [""]
    # ---- plausibility QC
    lines += _qc_lines(settings)
    # ---- overlays
    overlays = _overlays(ctx, settings, figures)
    if overlays:
        lines += ["## Held-out cases: truth and prediction", ""]
        lines += [f"![{cid}](figures/{png.name})" for cid, png in overlays] + [""]
    lines += _run_lines(exp, scale, data["jobs"])
    text = "\n".join(lines) + "\n"
    md_path = write_text_atomic(text, out / "report.md")
    html_path = write_text_atomic(to_html(text, out), out / "report.html")
    return {"markdown": md_path, "html": html_path}


def _intro_lines(scale) -> list[str]:
    """The report's title, its scale and what the held-out evaluation is."""
    lines = ["# DeepStationing on the phantom: the paper's protocol", ""]
    lines += [f"*Scale `{scale.name}`: {scale.description}.*", ""]
    if scale.name in ("demo", "bench"):
        held = scale.cases // scale.n_folds
        folds = ("one held-out fold" if scale.station_folds and len(scale.station_folds) == 1
                 else f"{scale.n_folds} held-out folds")
        lines += [f"> **Not the method's performance at convergence**: a coarse grid, "
                  f"{scale.cases} cases, {folds} of {held} cases and minutes of training per "
                  "network on a CPU. The networks learn, but far from convergence. Run "
                  "`--scale cpu` (a day and a half on 2 CPU cores) or `--scale full` (GPUs) "
                  "for the paper's protocol at budgets that converge.", ""]
    lines += ["Held-out evaluation: patient-level cross-validation with the cohort's folds; "
              "each fold's test cases are predicted by that fold's models only (station "
              "network and organ cascade). The phantom is a test bed with a known answer, "
              "not a substitute for clinical validation.", ""]
    return lines


def _table1_lines(settings: dict, exp: dict, figures: Path) -> list[str]:
    """Table 1, its per-fold figure, the paper's orderings and the per-fold table."""
    table1 = {TABLE1[n]: settings[n]["rows"] for n in TABLE1 if n in settings}
    if not table1:
        return []
    lines: list[str] = []
    md = summary_markdown(table1, labels=list(schema.STATIONS.keys),
                          title="Table 1: station parsing, held-out cases")
    lines += md.replace("# Table 1", "## Table 1", 1).replace("\n## ", "\n### ").splitlines()
    lines += ["", "![Table 1 settings per fold](figures/table1_folds.png)", ""]
    _figure_settings(settings, list(TABLE1), figures / "table1_folds.png")
    per_fold = {n: list(settings[n]["per_fold"].values()) for n in TABLE1 if n in settings}
    lines += ["### The paper's orderings on the phantom (mean DSC per fold)", ""]
    lines += [f"- {s}" for s in paper_orderings(per_fold)] + [""]
    shown = [f for f in exp["folds"]
             if any(f in settings[n]["per_fold"] for n in TABLE1 if n in settings)]
    lines += ["| setting | " + " | ".join(f"fold {f}" for f in shown) + " |",
              "|---|" + "---|" * len(shown)]
    for n in TABLE1:
        if n in settings:
            pf = settings[n]["per_fold"]
            lines.append(f"| {TABLE1[n]} | " + " | ".join(
                f"{100 * pf[f]:.1f}" if f in pf else "" for f in shown) + " |")
    lines.append("")
    return lines


def _ablation_lines(settings: dict, exp: dict) -> list[str]:
    """The ablations' table (section 3): which six organs."""
    abl = [n for n in ABLATIONS if n in settings]
    if not abl:
        return []
    lines = ["## Ablations (section 3): which six organs", "",
             "| setting | organs (fold 0) | DSC (%) | HD95 (mm) |", "|---|---|---|---|"]
    for n in ["ct", "top6"] + abl:
        if n not in settings:
            continue
        rows = settings[n]["rows"]
        dsc = mean_dsc(rows)
        hd = np.nanmean([r.hd95 for r in rows]) if rows else float("nan")
        spec = settings[n]["specs"].get(exp["folds"][0], "")
        lines.append(f"| {_title(n)} | {spec.split(':', 1)[-1].replace(',', ', ')} | "
                     f"{100 * dsc:.1f} | {hd:.1f} |")
    lines.append("")
    return lines


def _topn_lines(settings: dict, scale, figures: Path) -> list[str]:
    """The top-n sweep (Fig. 3b): its curve and table, when more than one n ran."""
    tops = sorted((int(n[3:]), n) for n in settings if re.fullmatch(r"top\d+", n))
    if len(tops) <= 1:
        return []
    points, counts = [], []
    for n, name in tops:
        folds = [f for f in settings[name]["per_fold"] if f in scale.sweep_folds]
        vals = [settings[name]["per_fold"][f] for f in folds]
        if vals:
            points.append((n, float(np.mean(vals)), float(np.std(vals))))
            counts.append(len(vals))
    _figure_curve(points, figures / "topn.png")
    lines = ["## Top-n searched organs (Fig. 3b)", "", "![top-n](figures/topn.png)", "",
             "| top-n | DSC (%), mean over folds | sd between folds | folds |", "|---|---|---|---|"]
    lines += [f"| {n} | {100 * m:.1f} | {100 * sd:.1f} | {k} |"
              for (n, m, sd), k in zip(points, counts)] + [""]
    return lines


def _search_lines(searches: dict, figures: Path) -> list[str]:
    """The key-organ searches' top-6 per fold and the first search's weights figure."""
    if not searches:
        return []
    lines = ["## Key-organ search: top-6 per fold", "",
             "| source | fold | top-6 (weight) |", "|---|---|---|"]
    for (source, fold), res in sorted(searches.items()):
        top = ", ".join(f"{r['organ']} ({r['weight']:.3f})" for r in res["ranking"][:6])
        lines.append(f"| {source} | {fold} | {top} |")
    lines.append("")
    first = sorted(searches)[0]
    src = Path(searches[first]["folder"]) / "weights.png"
    if src.exists():
        (figures / "search_weights.png").write_bytes(src.read_bytes())
        lines += [f"![organ weights during the search ({first[0]}, fold {first[1]})]"
                  "(figures/search_weights.png)", ""]
    lines += [f"Paper's top-6: {', '.join(schema.PAPER_TOP6_ORGANS)}.", ""]
    return lines


def _organ_lines(o: dict | None) -> list[str]:
    """The organ table: stratified cascade vs single network, anchors vs non-anchors."""
    if not o:
        return []
    cols = [c for c in ("cascade", "single") if c in o]
    lines = ["## Organ segmentation (held-out, out-of-fold predictions)", "",
             "| organ | anchor | " + " | ".join(
                 {"cascade": "stratified cascade", "single": "single network"}[c]
                 for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for key in schema.ORGANS.keys:
        lines.append(f"| {key} | {'yes' if key in schema.ANCHOR_ORGANS else ''} | "
                     + " | ".join(f"{100 * o[c]['per_organ'][key]:.1f}" for c in cols)
                     + " |")
    for label, k in (("mean anchors", "anchors"), ("mean non-anchors", "non_anchors"),
                     ("mean all 22", "all")):
        lines.append(f"| **{label}** | | " + " | ".join(f"{100 * o[c][k]:.1f}"
                                                        for c in cols) + " |")
    lines.append("")
    return lines


def _run_lines(exp: dict, scale, jobs: list) -> list[str]:
    """What the run was: command, versions, machine, cohort, budgets and the jobs' times."""
    total = sum(s for _, state, s, _ in jobs if state == "done")
    lines = ["## The run", "",
             f"- Command: `{exp['command']}`",
             f"- deepstationing {exp['deepstationing']}, nnU-Net {exp['nnunetv2']}, PyTorch "
             f"{exp['torch']}, Python {exp['python']}",
             f"- Machine: {exp['machine']}, {exp['cpus']} CPU cores, GPU: {exp['gpu'] or 'none'}"
             f"; device `{exp['device']}`",
             f"- Cohort: `{exp['cohort']}` ({scale.cases} phantom cases, preset "
             f"{scale.preset}, seed {scale.seed}), folds {exp['folds']}",
             f"- Budgets (epochs x iterations): organs {scale.organ_budget}"
             + (f" (anchor stage {scale.anchor_budget})" if scale.anchor_budget else "")
             + f", stations "
             f"{scale.station_budget}, search {scale.search_budget}; config {scale.config}",
             f"- Time of the jobs: {total / 60:.1f} min summed over jobs (jobs that ran side "
             f"by side each count; started "
             f"{exp['started']}, report written {time.strftime('%Y-%m-%d %H:%M')})", "",
             "| job | state | seconds | host |", "|---|---|---|---|"]
    lines += [f"| {j} | {st} | {s:.0f} | {h} |" for j, st, s, h in jobs
              if j != "report"] + [""]
    return lines


def to_html(markdown_text: str, base: Path) -> str:
    """A self-contained HTML page of the report (pictures embedded)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match: re.Match) -> str:
        src = match.group(1)
        p = base / src
        if not p.exists():
            return match.group(0)
        data = base64.b64encode(p.read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
             "font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th:first-child,td:first-child{text-align:left}img{max-width:100%}"
             "blockquote{background:#fff4e5;border-left:4px solid #f0a020;margin:0;"
             "padding:.5em 1em}code{background:#f3f3f3;padding:0 3px}")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape('DeepStationing report')}</title><style>{style}</style>"
            f"</head><body>{body}</body></html>\n")
