"""The station network *learns*: a known-answer cohort, a CPU budget of about a minute.

The target of the toy cohort (:mod:`deepstationing.phantom.toy`, kind ``between``) is,
like a station, defined by organs only: the fat between two spheres, and a shell on the far
side of one of them; the CT is noise. A network that fits it on held-out cases has learned
from its organ channels. 600 iterations (24 x 25, about 85 s on 2 cores), seeded: with the
CPU trainer's AdamW the held-out mean Dice was 0.785, 0.766 and 0.709 for seeds 0, 1, 2;
half that budget gave 0.29-0.53 and nnU-Net's SGD 0.22-0.42 (see ``docs/learning.md``).
"""

from __future__ import annotations

import numpy as np
import pytest

from deepstationing.backbone.plans import CpuConfig
from deepstationing.data.image import read_image
from deepstationing.phantom.toy import write_toy_cohort
from deepstationing.stations.network import StationParser, train_stations
from deepstationing.training import TrainBudget, TrainOptions

#: Held-out mean Dice of the two toy stations the network must reach.
MIN_DICE = 0.6


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    cohort = write_toy_cohort(tmp / "toy", 8, kind="between", seed=0)
    opts = TrainOptions(workdir=tmp / "runs", budget=TrainBudget(24, 25, 2), seed=0,
                        cpu=CpuConfig((16, 32, 32), (8, 16, 32), 2), progress=lambda m: None)
    model = train_stations(cohort, 0, channels="gt:heart,spine", options=opts)
    return cohort, model


def test_station_network_learns_a_known_answer(learned):
    cohort, model = learned
    parser = StationParser(model, [0])
    scores = []
    for cid in cohort.test_ids(0):
        case = cohort.case(cid)
        _, pred = parser.predict(read_image(case.ct), read_image(case.organs, label=True))
        truth = read_image(case.stations, label=True).array
        scores += [_dice(truth == s, pred.array == s) for s in (1, 2)]
    assert np.mean(scores) >= MIN_DICE, scores
