"""Training budgets: epochs, iterations per epoch, validation iterations; the defaults.

Kept apart from :mod:`.train` so that the trainers (imported by nnU-Net under a bare
module name) can read the defaults without importing the training driver.

>>> DEFAULT_BUDGETS["cpu"]
TrainBudget(epochs=50, iterations=25, val_iterations=5)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainBudget", "DEFAULT_BUDGETS"]


@dataclass(frozen=True)
class TrainBudget:
    """Epochs, iterations per epoch and validation iterations (``None``: trainer default)."""

    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "iterations": self.iterations,
                "val_iterations": self.val_iterations}

    @classmethod
    def from_json(cls, obj: dict) -> TrainBudget:
        return cls(obj.get("epochs"), obj.get("iterations"), obj.get("val_iterations"))

    def resolved(self, config: str) -> TrainBudget:
        """Every field set: ``None`` fields take the configuration's default.

        >>> TrainBudget(epochs=3).resolved("cpu")
        TrainBudget(epochs=3, iterations=25, val_iterations=5)
        """
        d = DEFAULT_BUDGETS[config]
        return TrainBudget(*(v if v is not None else dv for v, dv in
                             zip((self.epochs, self.iterations, self.val_iterations),
                                 (d.epochs, d.iterations, d.val_iterations))))


#: Default budgets: the paper's 1000 x 250 (nnU-Net's) for ``full``; a small one for ``cpu``.
DEFAULT_BUDGETS = {"full": TrainBudget(1000, 250, 50), "cpu": TrainBudget(50, 25, 5)}
