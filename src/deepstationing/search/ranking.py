"""The ranking of the organs from a key-organ search, its trajectories and top-n channel specs.

A search stage's fold folder holds ``search_weights.json`` (written by the trainer, see
:mod:`deepstationing.backbone.weighting`): the organ order, the epochs with frozen weights,
the weights after every epoch, the two halves of the training cases, and per organ channel
the number of cases of each half where it has a voxel and whether it was searched. From it:

* :func:`ranking` — the searched organs sorted by their final weight (best first), then
  the organs left out of the search because they have no voxel in the training cases of
  one half or both (weight 0, in channel order): an empty channel's weight could only move
  through the softmax's normalisation, which is no evidence of use;
* :func:`top_spec` — the top-n organs as a ``--channels`` spec (``pred:esophagus,...``);
* :func:`write_ranking` — ``ranking.json`` (weights summing to 1) and ``weights.png`` (the
  weight of every organ over the epochs, the frozen epochs shaded).

Examples
--------
>>> state = {"organs": ["heart", "spine", "trachea"], "freeze_epochs": 1,
...          "trajectory": [{"epoch": 0, "weights": [1/3, 1/3, 1/3]},
...                         {"epoch": 2, "weights": [0.2, 0.5, 0.3]}]}
>>> [(r.organ, r.rank) for r in ranking(state)]
[('spine', 1), ('trachea', 2), ('heart', 3)]
>>> top_spec(ranking(state), 2, source="pred")
'pred:spine,trachea'
>>> state["searched"] = [True, False, True]       # the spine had no voxel: not searched
>>> state["trajectory"][-1]["weights"] = [0.4, 0.0, 0.6]
>>> [(r.organ, r.rank, r.searched) for r in ranking(state)]
[('trachea', 1, True), ('heart', 2, True), ('spine', 3, False)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deepstationing import schema
from deepstationing.data.atomic import atomic_output, write_json_atomic
from deepstationing.errors import InputError

__all__ = ["RankedOrgan", "read_search_state", "ranking", "searched_flags", "top_spec",
           "write_ranking", "plot_trajectories", "SEARCH_FILE", "NON_BOUNDARY_ORGANS"]

SEARCH_FILE = "search_weights.json"
#: Organs that define no station boundary in the phantom's protocol (``docs/phantom.md``).
NON_BOUNDARY_ORGANS = ("heart", "cca_r", "cca_l", "bcv_r", "pulmonary_vein")


@dataclass(frozen=True)
class RankedOrgan:
    organ: str
    weight: float
    rank: int
    #: ``False``: left out of the search (no voxel in the training cases of a half).
    searched: bool = True


def read_search_state(path: str | os.PathLike) -> dict:
    """``search_weights.json`` of a search fold (a file or its fold folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / SEARCH_FILE
    if not p.exists():
        raise InputError(p, "no key-organ search weights here (is this a search stage's "
                            "fold folder?)")
    try:
        state = json.loads(p.read_text())
        n = len(state["organs"])
        if not state["trajectory"] or any(len(e["weights"]) != n for e in state["trajectory"]):
            raise ValueError("trajectory does not match the organ list")
        if len(state.get("searched") or [True] * n) != n:
            raise ValueError("'searched' does not match the organ list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(p, f"malformed search weights ({exc})") from None
    return state


def searched_flags(state: dict) -> list[bool]:
    """Which organ channels took part in the search (all, for a state that does not say)."""
    return [bool(v) for v in (state.get("searched") or [True] * len(state["organs"]))]


def ranking(state: dict) -> list[RankedOrgan]:
    """The searched organs by final weight, best first, then the organs left out of the
    search (ties: channel order)."""
    final = state["trajectory"][-1]["weights"]
    searched = searched_flags(state)
    order = sorted(range(len(final)), key=lambda i: (not searched[i], -final[i], i))
    return [RankedOrgan(state["organs"][i], float(final[i]), r + 1, searched[i])
            for r, i in enumerate(order)]


def top_spec(ranked: Sequence[RankedOrgan], n: int, *, source: str = "pred") -> str:
    """The top-``n`` organs as a ``--channels`` spec."""
    if not 1 <= n <= len(ranked):
        raise ValueError(f"top-n must be 1..{len(ranked)}, got {n}")
    return f"{source}:{','.join(r.organ for r in ranked[:n])}"


def write_ranking(state: dict, out_dir: str | os.PathLike, *, meta: dict | None = None) -> Path:
    """Write ``ranking.json`` and ``weights.png`` into ``out_dir``; returns the JSON path."""
    out = Path(out_dir)
    ranked = ranking(state)
    boundary = [r.organ for r in ranked[:6] if r.organ not in NON_BOUNDARY_ORGANS]
    content = state.get("content") or {}
    index = {o: i for i, o in enumerate(state["organs"])}

    def cases_with_content(organ: str) -> dict:
        return {half: counts[index[organ]] for half, counts in content.items()}

    doc = {
        "organs": [{"rank": r.rank, "organ": r.organ, "weight": round(r.weight, 6),
                    "searched": r.searched,
                    **({"cases_with_content": cases_with_content(r.organ)} if content else {})}
                   for r in ranked],
        "not_searched": [r.organ for r in ranked if not r.searched],
        "weights_sum": round(sum(r.weight for r in ranked), 6),
        "top6_spec": top_spec(ranked, min(6, len(ranked))),
        "top6_boundary_defining": len(boundary),
        "non_boundary_ranks": {r.organ: r.rank for r in ranked
                               if r.organ in NON_BOUNDARY_ORGANS},
        "freeze_epochs": state.get("freeze_epochs"),
        "epochs": state["trajectory"][-1]["epoch"],
        "halves": state.get("halves"),
        "paper_top6": list(schema.PAPER_TOP6_ORGANS),
        **(meta or {}),
    }
    path = write_json_atomic(doc, out / "ranking.json")
    plot_trajectories(state, out / "weights.png")
    return path


def plot_trajectories(state: dict, path: str | os.PathLike, *, top: int = 6) -> Path:
    """The weight of every organ over the epochs (the ``top`` final ones named)."""
    import matplotlib.style
    from matplotlib.figure import Figure

    epochs = [e["epoch"] for e in state["trajectory"]]
    weights = list(zip(*[e["weights"] for e in state["trajectory"]]))
    ranked = ranking(state)
    best = {r.organ for r in ranked[:top] if r.searched}
    # a Figure without pyplot changes no backend; the default style undoes nnU-Net's seaborn
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(7.5, 4.2), dpi=120)
        ax = fig.add_subplot()
        frozen = state.get("freeze_epochs") or 0
        if frozen:
            ax.axvspan(0, frozen, color="0.9", label=f"frozen ({frozen} epochs)")
        for organ, series in zip(state["organs"], weights):
            label = schema.ORGANS.by_key(organ)
            colour = [c / 255 for c in label.color]
            if organ in best:
                ax.plot(epochs, series, color=colour, lw=2, label=label.name)
            else:
                ax.plot(epochs, series, color=colour, lw=0.8, alpha=0.5)
        ax.axhline(1 / max(1, sum(searched_flags(state))), color="k", lw=0.6, ls=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("organ weight (softmax)")
        ax.set_title(f"Key-organ search: weights of the {len(state['organs'])} organ channels "
                     f"(top {min(top, len(ranked))} named)", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_output(path) as staged:
            fig.savefig(staged.path, format="png")
    return Path(path)
