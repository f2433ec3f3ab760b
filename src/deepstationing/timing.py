"""Per-step wall-clock timings of a pipeline (what ``predict --verbose`` prints).

>>> t = Timings()
>>> with t("read"):
...     pass
>>> with t("read"):       # the same step again: times add up
...     pass
>>> list(t.steps), t.total() >= 0
(['read'], True)
>>> print(Timings({"read": 0.25, "organs: anchor network": 2.5}).table())
  read                              0.25 s
  organs: anchor network            2.50 s
  total                             2.75 s
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

__all__ = ["Timings"]


class Timings:
    """Ordered step -> seconds; ``with timings("step"):`` adds the block's time."""

    def __init__(self, steps: dict[str, float] | None = None):
        self.steps: dict[str, float] = dict(steps or {})

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.steps[step] = self.steps.get(step, 0.0) + time.perf_counter() - t0

    def total(self) -> float:
        return float(sum(self.steps.values()))

    def table(self) -> str:
        rows = [f"  {k:32s}{v:6.2f} s" for k, v in self.steps.items()]
        return "\n".join(rows + [f"  {'total':32s}{self.total():6.2f} s"])


