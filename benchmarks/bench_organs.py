"""Organ benchmark: held-out per-organ DSC against iterations, one 22-organ network against
the stratified cascade (anchor -> non-anchor), on the phantom with a fold held out.

Trains, on a phantom cohort (default: 20 small-preset cases, seed 0, 4 patient-level folds):

* ``single``: one network for the 22 organs (fold ``--fold``);
* ``cascade``: the anchor network on every fold (the non-anchor network trains on
  out-of-fold anchor predictions, which need every fold), then the non-anchor network on
  CT + the 11 anchor channels (fold ``--fold``);

keeping a checkpoint every ``--snapshot-every`` epochs, then scores every kept checkpoint on
the held-out cases: the single network's 22 organs; the anchor network's 11 anchors; the
non-anchor network's 11 non-anchors with the anchors predicted by the final fold-``--fold``
anchor network as channels (the cascade as it runs at test time).

``--inner`` chooses settings without looking at the reported fold: the benchmark then runs
on the *inner* cohort of ``--fold`` (its training cases only,
:func:`deepstationing.data.cohort.inner_cohort`) and reports inner fold 0 (validation
cases inside the training folds). Settings chosen that way are then run once without
``--inner``, and those are the numbers to report.

Writes ``benchmarks/results/<out-name>.{json,md,png}``. Run from the repository root::

    python benchmarks/bench_organs.py                                  # the recorded run
    python benchmarks/bench_organs.py --inner --out-name organs_tune_lr1e-2 --lr 1e-2

Existing training in ``--workdir`` is reused (a finished setting is not retrained).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from bench_learning import finish_curve_plot, machine, training_speed  # noqa: E402
from bench_organ_grid import score  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="single,cascade", help="single, cascade or both")
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--preset", default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cohort-spacing", default=None, metavar="X,Y,Z",
                   help="the phantom's own grid in mm (default: the preset's, 2.8 x 2.8 x 5 "
                        "for small); e.g. 5.6,5.6,10 = the bench scale's cohort, scored there")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--inner", action="store_true",
                   help="tune: run on the training cases of --fold, report inner fold 0")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--snapshot-every", type=int, default=8)
    p.add_argument("--patch", default="32,64,64", help="patch z,y,x (voxels)")
    p.add_argument("--features", default="8,16,32,64", help="features per level")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 3e-3)")
    p.add_argument("--organ-spacing", default=None, metavar="X,Y,Z",
                   help="grid of the organ networks in mm (default: the cohort's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-organs")
    p.add_argument("--out-name", default="organs")
    p.add_argument("--note", default="", help="a sentence for the results (how it was run)")
    return p.parse_args(argv)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def score_snapshot(model, role: str, fold: int, cases, checkpoint: str, *, threads,
                   device: str, anchors: dict | None = None) -> dict[str, list[float]]:
    """Per-organ DSC of one stage's snapshot on held-out ``cases`` (fold ``fold`` only).

    ``anchors`` (non-anchor stage): the anchor maps of the cases, by case id.
    """
    from deepstationing import schema
    from deepstationing.backbone.predict import StagePredictor
    from deepstationing.data.image import read_image
    from deepstationing.evaluation.metrics import label_map_metrics
    from deepstationing.training.provenance import check_held_out

    check_held_out(model.fold_record(role, fold), [(c.id, c.ct) for c in cases],
                   where=model.root, what=f"fold {fold} of stage '{role}'")
    definition = model.stage(role)
    pred = StagePredictor(model.stage_folder(role), [fold], orientation=definition.orientation,
                          device=device, threads=threads, checkpoint=checkpoint)
    keys = definition.labels.keys
    ids = [schema.ORGANS.by_key(k).id for k in keys]
    out: dict[str, list[float]] = {k: [] for k in keys}
    for case in cases:
        ct = read_image(case.ct)
        local = pred.predict_case(ct, anchors[case.id] if anchors else None)
        organs = definition.labels.to_schema(local.array)
        truth = read_image(case.organs, label=True)
        metrics = label_map_metrics(truth.array, organs, truth.array_spacing, ids)
        for k, i in zip(keys, ids):
            out[k].append(float(metrics[i].dsc))
    return out


def _mean(values) -> float:
    import numpy as np

    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else float("nan")


def curve_of(model, role: str, fold: int, cases, iterations: int, args,
             anchors: dict | None = None) -> list[dict]:
    fold_dir = model.checkpoint(role, fold).parent
    snaps = sorted(fold_dir.glob("checkpoint_epoch_*.pth"))
    final_epoch = model.fold_record(role, fold)["epochs"]
    if not snaps or int(snaps[-1].stem.rsplit("_", 1)[1]) != final_epoch:
        snaps.append(fold_dir / "checkpoint_final.pth")
    curve = []
    for snap in snaps:
        epoch = final_epoch if snap.name == "checkpoint_final.pth" else \
            int(snap.stem.rsplit("_", 1)[1])
        per_case = score_snapshot(model, role, fold, cases, snap.name, threads=args.threads,
                                  device=args.device, anchors=anchors)
        per = {k: _mean(v) for k, v in per_case.items()}
        curve.append({"epoch": epoch, "iterations": epoch * iterations, "per_organ": per,
                      "per_case": per_case, "mean": _mean(per.values())})
        print(f"[{role}] {epoch * iterations} iterations: mean DSC "
              f"{100 * curve[-1]['mean']:.1f} %", file=sys.stderr, flush=True)
    return curve


def stage_time(model, role: str, fold: int) -> dict:
    runs = json.loads((model.checkpoint(role, fold).parent /
                       "deepstationing_runs.json").read_text())
    seconds, per_iteration = training_speed(runs)
    return {"train_minutes": round(seconds / 60, 1), "seconds_per_iteration":
            round(per_iteration, 3)}


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing import schema
    from deepstationing.backbone.plans import CpuConfig
    from deepstationing.data.cohort import Cohort, inner_cohort
    from deepstationing.organs.cascade import OrganCascade, train_organs
    from deepstationing.phantom import generate_cohort
    from deepstationing.training import ModelFolder, TrainBudget, TrainOptions

    work = Path(args.workdir)
    grid = tuple(float(v) for v in args.cohort_spacing.split(",")) \
        if args.cohort_spacing else None
    cohort_dir = work / (f"phantom_{args.preset}_{args.cases}_s{args.seed}"
                         + ("_" + "x".join(f"{v:g}" for v in grid) if grid else ""))
    cohort = Cohort(cohort_dir) if (cohort_dir / "manifest.json").exists() else \
        generate_cohort(cohort_dir, args.cases, seed=args.seed, preset=args.preset,
                        spacing=grid)
    fold = args.fold
    if args.inner:
        cohort = inner_cohort(cohort, args.fold, work / f"{cohort_dir.name}_inner{args.fold}")
        fold = 0
    test = [cohort.case(c) for c in cohort.test_ids(fold)]
    spacing = tuple(float(v) for v in args.organ_spacing.split(","))[::-1] \
        if args.organ_spacing else None
    cpu = CpuConfig(_ints(args.patch), _ints(args.features), args.batch,
                    learning_rate=args.lr)
    opts = TrainOptions(workdir=work / "runs", config="cpu",
                        cpu=cpu, budget=TrainBudget(args.epochs, args.iterations),
                        device=args.device, threads=args.threads, workers=args.workers,
                        snapshot_every=args.snapshot_every, spacing=spacing,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    model_dir = work / "models" / args.out_name
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    print(f"cohort {cohort.root} ({len(cohort)} cases), fold {fold} held out ({len(test)} "
          f"cases); stages {stages}; model {model_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    results: dict = {"stages": {}}
    if "single" in stages:
        model = train_organs(cohort, fold, options=opts, model_dir=model_dir,
                             stages=("single",))
        model = ModelFolder.open(model.root)
        results["stages"]["single"] = {
            "curve": curve_of(model, "single", fold, test, args.iterations, args),
            **stage_time(model, "single", fold)}
    if "cascade" in stages:
        model = train_organs(cohort, fold, options=opts, model_dir=model_dir,
                             stages=("anchor", "nonanchor"))
        model = ModelFolder.open(model.root)
        results["stages"]["anchor"] = {
            "curve": curve_of(model, "anchor", fold, test, args.iterations, args),
            **stage_time(model, "anchor", fold),
            "folds_minutes": {f: stage_time(model, "anchor", f)["train_minutes"]
                              for f in model.folds("anchor")}}
        anchors_model = OrganCascade(model, [fold], use="anchor", threads=args.threads,
                                     device=args.device)
        from deepstationing.data.image import read_image

        anchors = {c.id: anchors_model.predict(read_image(c.ct)) for c in test}
        results["stages"]["nonanchor"] = {
            "curve": curve_of(model, "nonanchor", fold, test, args.iterations, args,
                              anchors=anchors),
            **stage_time(model, "nonanchor", fold)}
        cascade = score(OrganCascade(model, [fold], use="cascade", threads=args.threads,
                                     device=args.device), test)
        results["rules"] = {"pred": cascade["rules_pred"], "gt": cascade["rules_gt"]}
    results["meta"] = {
        "command": "python benchmarks/bench_organs.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "cohort": {"preset": args.preset, "cases": args.cases, "seed": args.seed,
                   "fold": args.fold, "inner": args.inner, "root": str(cohort.root),
                   "spacing": args.cohort_spacing,
                   "test_cases": [c.id for c in test]},
        "network": cpu.to_json(), "organ_spacing": args.organ_spacing,
        "budget": {"epochs": args.epochs, "iterations": args.iterations,
                   "snapshot_every": args.snapshot_every},
        "total_minutes": round((time.perf_counter() - t0) / 60, 1), "note": args.note,
        "anchors": list(schema.ANCHOR_ORGANS), "non_anchors": list(schema.NON_ANCHOR_ORGANS)}
    RESULTS.mkdir(exist_ok=True)
    from deepstationing.data.atomic import write_json_atomic, write_text_atomic

    write_json_atomic(results, RESULTS / f"{args.out_name}.json")
    write_text_atomic(markdown(results), RESULTS / f"{args.out_name}.md")
    plot(results, RESULTS / f"{args.out_name}.png")
    print(f"wrote {RESULTS / args.out_name}.{{json,md,png}}", file=sys.stderr)
    return 0


def final_table(results: dict) -> dict[str, dict[str, float]]:
    """Per organ, the last checkpoint's DSC of each approach (``single``, ``cascade``).

    >>> r = {"stages": {"single": {"curve": [{"per_organ": {"heart": 0.8, "svc": 0.5}}]},
    ...                 "anchor": {"curve": [{"per_organ": {"heart": 0.9}}]},
    ...                 "nonanchor": {"curve": [{"per_organ": {"svc": 0.7}}]}}}
    >>> final_table(r)
    {'single': {'heart': 0.8, 'svc': 0.5}, 'cascade': {'heart': 0.9, 'svc': 0.7}}
    """
    st = results["stages"]
    out = {}
    if "single" in st:
        out["single"] = dict(st["single"]["curve"][-1]["per_organ"])
    if "anchor" in st and "nonanchor" in st:
        out["cascade"] = {**st["anchor"]["curve"][-1]["per_organ"],
                          **st["nonanchor"]["curve"][-1]["per_organ"]}
    return out


def group_means(per: dict[str, float], anchors, non_anchors) -> dict[str, float]:
    return {"anchors": _mean(per[k] for k in anchors if k in per),
            "non_anchors": _mean(per[k] for k in non_anchors if k in per),
            "all": _mean(per.values())}


def _grid(spacing: str | None) -> str:
    """The cohort's grid in words.

    >>> _grid("5.6,5.6,10"), _grid(None)
    ('5.6 x 5.6 x 10 mm', "the preset's own grid")
    """
    return " x ".join(spacing.split(",")) + " mm" if spacing else "the preset's own grid"


def markdown(results: dict) -> str:
    meta = results["meta"]
    c = meta["cohort"]
    where = (f"the inner cohort of fold {c['fold']} (its training cases), inner fold 0 held out"
             f" (validation cases inside the training folds)" if c["inner"] else
             f"fold {c['fold']} held out")
    lines = ["# Organ benchmark: held-out per-organ DSC, single network vs stratified cascade",
             "", f"Command: `{meta['command']}`  ",
             f"Date {meta['date']}; machine: {meta['machine']}.  ",
             f"Cohort: phantom `{c['preset']}` preset, {c['cases']} cases (seed {c['seed']}), "
             f"generated and scored at {_grid(c.get('spacing'))}; "
             f"{where}: {len(c['test_cases'])} cases.  ",
             f"Network (CPU configuration): {meta['network']}; organ grid "
             f"{meta['organ_spacing'] or 'the cohort''s own'} mm; budget "
             f"{meta['budget']['epochs']} epochs x {meta['budget']['iterations']} iterations "
             f"(batch {meta['network']['batch_size']}), a checkpoint scored every "
             f"{meta['budget']['snapshot_every']} epochs. Total time {meta['total_minutes']} "
             "min.", *([meta["note"]] if meta.get("note") else []), ""]
    table = final_table(results)
    anchors, non_anchors = meta["anchors"], meta["non_anchors"]
    if table:
        cols = list(table)
        lines += ["## Per organ at the end of training (held-out DSC %)", "",
                  "| organ | anchor | " + " | ".join(cols) + " |",
                  "|---" * (2 + len(cols)) + "|"]
        for k in anchors + non_anchors:
            cells = [f"{100 * table[c][k]:.1f}" if k in table[c] else "" for c in cols]
            lines.append(f"| {k} | {'yes' if k in anchors else ''} | " + " | ".join(cells)
                         + " |")
        for g, title in (("anchors", "mean anchors"), ("non_anchors", "mean non-anchors"),
                         ("all", "mean all 22")):
            cells = [f"**{100 * group_means(table[c], anchors, non_anchors)[g]:.1f}**"
                     for c in cols]
            lines.append(f"| **{title}** | | " + " | ".join(cells) + " |")
        lines.append("")
    if results.get("rules"):
        r = results["rules"]
        lines += [f"Margin rules on the held-out cases (mean station DSC): on the cascade's "
                  f"organs **{100 * r['pred']:.1f} %**, on the true organs {100 * r['gt']:.1f} %.",
                  ""]
    lines += ["## Mean held-out DSC (%) after N iterations", ""]
    for name, st in results["stages"].items():
        lines.append(f"- `{name}`: " + ", ".join(
            f"{p['iterations']}: {100 * p['mean']:.1f}" for p in st["curve"]))
    lines += ["", "## Training time", ""]
    for name, st in results["stages"].items():
        extra = ""
        if st.get("folds_minutes"):
            extra = " (per fold: " + ", ".join(f"fold {f} {m} min" for f, m in
                                               st["folds_minutes"].items()) + ")"
        lines.append(f"- `{name}`: {st['train_minutes']} min, {st['seconds_per_iteration']} s "
                     f"per iteration{extra}")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results["meta"]
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
        st = results["stages"]
        series = []
        if "single" in st:
            for g, keys in (("anchors", meta["anchors"]), ("non-anchors", meta["non_anchors"])):
                series.append((f"single network: {g}", st["single"]["curve"], keys, "-"))
        if "anchor" in st:
            series.append(("cascade: anchors", st["anchor"]["curve"], meta["anchors"], "--"))
        if "nonanchor" in st:
            series.append(("cascade: non-anchors", st["nonanchor"]["curve"],
                           meta["non_anchors"], "--"))
        for label, curve, keys, ls in series:
            xs = [p["iterations"] for p in curve]
            ys = [100 * _mean(p["per_organ"][k] for k in keys if k in p["per_organ"])
                  for p in curve]
            ax.plot(xs, ys, marker="o", ls=ls, label=label)
        finish_curve_plot(fig, ax, path, plt, "held-out mean organ DSC (%)",
                          "Organ networks on the phantom (held-out cases)")


if __name__ == "__main__":
    raise SystemExit(main())
