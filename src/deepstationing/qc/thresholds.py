"""The limits of every QC finding, in one place (where each value came from: ``docs/qc.md``).

Each finding has two limits: crossing ``check`` asks a person to look; crossing
``implausible`` says the prediction should not be used as it is. ``above`` findings fire
when the value is greater than the limit, ``below`` findings when it is smaller.

The defaults were set on the phantom (:mod:`deepstationing.phantom`): silent on the ground
truth of every case of a 20-case small cohort and on held-out predictions of a station
network, and firing on a phantom model run on a real CT, on a left-right mirrored CT and on
a CT cropped below the carina (``benchmarks/bench_qc.py``, ``benchmarks/results/qc.md``).

Examples
--------
>>> DEFAULT_THRESHOLDS.outside_body.severity(25.0)
'implausible'
>>> DEFAULT_THRESHOLDS.station_side.severity(8.0), DEFAULT_THRESHOLDS.station_side.severity(-2.0)
('ok', 'check')
>>> Limit(1.0, 5.0, "above").describe()
'> 1 (check), > 5 (implausible)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Limit", "Thresholds", "DEFAULT_THRESHOLDS", "SEVERITIES"]

#: Severities, mildest first; a case's verdict is the worst of its findings'.
SEVERITIES: tuple[str, ...] = ("ok", "check", "implausible")


@dataclass(frozen=True)
class Limit:
    """The two limits of one finding.

    Attributes:
        check: crossing it gives severity ``check``.
        implausible: crossing it gives ``implausible`` (further out than ``check``).
        direction: ``"above"`` (fires when the value is greater) or ``"below"``.
    """

    check: float
    implausible: float
    direction: str = "above"

    def __post_init__(self) -> None:
        if self.direction not in ("above", "below"):
            raise ValueError(f"direction must be 'above' or 'below', got {self.direction!r}")
        worse = self.implausible >= self.check if self.direction == "above" \
            else self.implausible <= self.check
        if not worse:
            raise ValueError(f"the implausible limit {self.implausible} must lie beyond the "
                             f"check limit {self.check} ({self.direction})")

    def crossed(self, value: float, limit: float) -> bool:
        return value > limit if self.direction == "above" else value < limit

    def severity(self, value: float) -> str:
        """``"ok"``, ``"check"`` or ``"implausible"`` for a measured value."""
        if self.crossed(value, self.implausible):
            return "implausible"
        if self.crossed(value, self.check):
            return "check"
        return "ok"

    def limit_for(self, severity: str) -> float:
        """The limit that gives ``severity`` (the check limit for ``"ok"``)."""
        return self.implausible if severity == "implausible" else self.check

    def describe(self) -> str:
        op = ">" if self.direction == "above" else "<"
        return f"{op} {self.check:g} (check), {op} {self.implausible:g} (implausible)"


@dataclass(frozen=True)
class Thresholds:
    """Limits of the findings (frozen; make variants with :func:`dataclasses.replace`).

    Values in percent are percentages of a label's volume; offsets and distances are in mm.
    """

    outside_body: Limit = Limit(2.0, 10.0)
    """Worst label: % of its voxels outside the body."""

    outside_mediastinum: Limit = Limit(15.0, 40.0)
    """Worst station: % of its voxels outside the mediastinal envelope."""

    station_side: Limit = Limit(3.0, -5.0, "below")
    """Worst lateral station (1R/1L, 2R/2L, 4R/4L): mean distance (mm) of its voxels from
    the tracheal midline towards its own side; negative on the wrong side, near 0 when it
    straddles the midline."""

    organ_side: Limit = Limit(0.0, -10.0, "below")
    """The same for the lateral organs of :data:`SIDE_ORGANS`."""

    fragments: Limit = Limit(35.0, 60.0)
    """Worst label: % of its volume in islands more than 10 mm from its largest piece,
    less the largest such share the training cohort has for that label."""

    missing_stations: Limit = Limit(0.0, 3.0)
    """Number of stations absent that the training cases have (all 12 without a
    reference)."""

    missing_organs: Limit = Limit(0.0, 3.0)
    """Number of organs absent that the training cases have (all 22 without a
    reference)."""

    volume_ratio: Limit = Limit(2.5, 5.0)
    """Worst label: how many times larger (or smaller) than the cohort's largest
    (smallest) volume of that label it is; 1 inside the cohort's range."""

    position: Limit = Limit(20.0, 40.0)
    """Worst label: distance (mm) of its centroid, relative to the carina, outside the box
    of the cohort's centroids of that label."""

    rules_agreement: Limit = Limit(20.0, 5.0, "below")
    """Mean Dice (%) of the predicted stations with the margin rules run on the predicted
    organs."""

    min_ml: float = 0.1
    """Labels (or parts of labels) smaller than this (ml) are not judged: single voxels."""

    presence: float = 0.9
    """A label counts as expected when at least this fraction of the training cases have
    it."""

    side_organs: tuple[str, ...] = field(default=(
        "lung_r", "lung_l", "bronchus_r", "bronchus_l", "cca_r", "cca_l", "ijv_r", "ijv_l",
        "bcv_r"))
    """Organs whose side is checked (the left brachiocephalic vein crosses the midline to
    join the SVC, so its centroid lies near the midline by anatomy)."""

    multipart: tuple[str, ...] = ("pulmonary_vein", "azygos")
    """Organs not judged for fragments: the pulmonary veins are four vessels that enter the
    atrium apart, and the azygos arch runs almost horizontally, so on 5 mm slices the arch
    and the vertical vein often fall apart (2 pieces 20 mm apart in 1 of 20 phantom
    cases)."""

    def to_json(self) -> dict:
        return asdict(self)


#: The toolkit's limits.
DEFAULT_THRESHOLDS = Thresholds()
SIDE_ORGANS = DEFAULT_THRESHOLDS.side_organs
