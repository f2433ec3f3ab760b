"""The protocol's settings and scales: Table 1's columns, the ablations, how big a run is.

>>> SCALES["demo"].n_folds, TABLE1["ct"]
(2, 'CT only')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from deepstationing.backbone.plans import CpuConfig

__all__ = ["Scale", "SCALES", "TABLE1", "ABLATIONS", "PAPER_RANDOM6", "CLINICIAN6"]

#: Table 1's columns: setting name -> (title, channel spec or a search to take the top-6 of).
TABLE1 = {"ct": "CT only", "gt22": "+22 organ GT", "pred22": "+22 organ pred",
          "top6": "+6 searched organ pred", "rules": "margin rules (pred organs)"}
ABLATIONS = {"random6": "(1) random 6", "best6": "(2) 6 best-segmented",
             "anchors": "(3) anchor organs", "clinician6": "(4) clinician's 6",
             "single-top6": "(5) searched 6, single-network organs",
             "gt-top6": "(6) searched 6, GT organs"}
#: The paper's ablation lists (section 3).
PAPER_RANDOM6 = ("bcv_l", "pulmonary_vein", "ijv_r", "heart", "spine", "trachea")
CLINICIAN6 = ("trachea", "aortic_arch", "spine", "lung_r", "lung_l", "descending_aorta")


@dataclass(frozen=True)
class Scale:
    """How big the protocol is run."""

    name: str
    cases: int
    preset: str
    spacing: tuple[float, float, float] | None
    n_folds: int
    config: str
    cpu: CpuConfig | None
    organ_budget: tuple[int, int]
    station_budget: tuple[int, int]
    search_budget: tuple[int, int]
    sweep: tuple[int, ...] = ()
    sweep_folds: tuple[int, ...] = (0,)
    #: folds whose station networks and searches are trained and evaluated (``None``: all);
    #: the organ cascade is always trained on every fold (out-of-fold channels need it)
    station_folds: tuple[int, ...] | None = None
    ablations: bool = False
    single: bool = False
    seed: int = 0
    #: what the scale runs and costs, in words (not compared: rewording it keeps an
    #: experiment folder of this scale resumable)
    description: str = field(default="", compare=False)
    #: the organ stages' network (``None``: ``cpu``) and grid (z, y, x mm; ``None``: the
    #: training cases' own, nnU-Net's rule): organ stages may run finer than station stages
    organ_cpu: CpuConfig | None = None
    organ_spacing: tuple[float, float, float] | None = None
    #: the station stages' (and the search's) grid (``None``: nnU-Net's rule)
    station_spacing: tuple[float, float, float] | None = None
    #: the anchor stage's budget where it differs from ``organ_budget`` (``None``: the same)
    anchor_budget: tuple[int, int] | None = None

    def organ_budget_for(self, role: str) -> tuple[int, int]:
        """The training budget of organ stage ``role`` (``anchor``, ``nonanchor``, ``single``).

        >>> SCALES["demo"].organ_budget_for("anchor"), SCALES["demo"].organ_budget_for("nonanchor")
        ((64, 25), (40, 25))
        """
        return self.anchor_budget if role == "anchor" and self.anchor_budget else \
            self.organ_budget

    def cpu_for(self, kind: str) -> CpuConfig | None:
        """The CPU network of ``"organs"`` or ``"stations"`` stages."""
        return (self.organ_cpu or self.cpu) if kind == "organs" else self.cpu

    def spacing_for(self, kind: str) -> tuple[float, float, float] | None:
        """The grid of ``"organs"`` or ``"stations"`` stages."""
        return self.organ_spacing if kind == "organs" else self.station_spacing

    def to_json(self) -> dict:
        d = asdict(self)
        d["cpu"] = self.cpu.to_json() if self.cpu else None
        d["organ_cpu"] = self.organ_cpu.to_json() if self.organ_cpu else None
        return d

    @classmethod
    def from_json(cls, obj: dict) -> Scale:
        d = dict(obj)
        d["cpu"] = CpuConfig.from_json(d["cpu"]) if d.get("cpu") else None
        d["organ_cpu"] = CpuConfig.from_json(d["organ_cpu"]) if d.get("organ_cpu") else None
        for k in ("spacing", "organ_budget", "station_budget", "search_budget", "sweep",
                  "organ_spacing", "station_spacing", "anchor_budget",
                  "sweep_folds", "station_folds"):
            d[k] = tuple(d[k]) if d.get(k) is not None else None
        return cls(**d)


SCALES: dict[str, Scale] = {
    "demo": Scale(
        "demo", cases=12, preset="small", spacing=(5.6, 5.6, 10.0), n_folds=2, config="cpu",
        cpu=CpuConfig((16, 32, 32), (8, 16, 32), 2, learning_rate=1e-2),
        organ_budget=(40, 25), station_budget=(24, 25), search_budget=(24, 25),
        anchor_budget=(64, 25), station_folds=(0,),
        description="12 phantom cases at 5.6 x 5.6 x 10 mm, 2 folds (the organ cascade on "
                    "both, the station networks and the search with fold 0 held out), a tiny "
                    "CPU network trained with AdamW 1e-2 for 1600 iterations (anchor organs) "
                    "and 1000 (non-anchor organs) per organ stage and 600 per station "
                    "network: every Table 1 setting and the report in about a quarter of an "
                    "hour on 2 CPU cores (two jobs at a time)"),
    "bench": Scale(
        "bench", cases=20, preset="small", spacing=(5.6, 5.6, 10.0), n_folds=4, config="cpu",
        cpu=CpuConfig((16, 32, 32), (8, 16, 32), 2, learning_rate=1e-2),
        organ_budget=(96, 25), station_budget=(40, 25), search_budget=(40, 25),
        sweep=(3, 6, 12), sweep_folds=(0, 1, 2, 3),
        description="20 phantom cases at 5.6 x 5.6 x 10 mm, all 4 folds (organ cascade, "
                    "Table 1's station networks, the search and a top-3/6/12 sweep on "
                    "each), the demo's tiny CPU network with AdamW 1e-2, 2400 iterations "
                    "per organ stage and 1000 per station network, search and sweep: "
                    "Table 1 over 4 folds in about an hour and a quarter on 2 CPU cores "
                    "(--jobs 2 --threads 1)"),
    "cpu": Scale(
        "cpu", cases=20, preset="small", spacing=None, n_folds=4, config="cpu", cpu=None,
        organ_budget=(40, 50), station_budget=(60, 50), search_budget=(30, 50),
        sweep=(3, 6, 9, 12, 15, 18, 21), ablations=True, single=True,
        description="20 phantom cases (small preset, 2.8 x 2.8 x 5 mm), 4 folds, the CPU "
                    "configuration with budgets that learn (about 3000 iterations per "
                    "station network)"),
    "test": Scale(
        "test", cases=4, preset="small", spacing=(11.2, 11.2, 20.0), n_folds=2, config="cpu",
        cpu=CpuConfig((8, 16, 16), (4, 8), 1), organ_budget=(1, 2), station_budget=(1, 2),
        search_budget=(2, 2), sweep=(3, 6), ablations=True, single=True,
        description="4 tiny phantom cases, 2 folds, one or two iterations per network: the "
                    "test suite's check that every job of the protocol runs"),
    "full": Scale(
        "full", cases=40, preset="full", spacing=None, n_folds=4, config="full", cpu=None,
        organ_budget=(1000, 250), station_budget=(1000, 250), search_budget=(1000, 250),
        sweep=(3, 6, 9, 12, 15, 18, 21), ablations=True, single=True,
        description="40 phantom cases at the paper's geometry (512 x 512 x ~75, 0.7 x 0.7 x "
                    "5 mm), 4 folds, nnU-Net's own configuration and the paper's 1000 x 250 "
                    "schedule: for GPUs"),
}
