"""Key-organ search: softmax channel weights, frozen then alternating, on a known answer.

The toy cohort ``one-informative`` defines its target from the heart channel only; spine
and sternum are random distractors and the CT is noise. The search must put the heart first,
keep every weight exactly at 1/3 during the frozen epochs, and move them afterwards.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepstationing.backbone.plans import CpuConfig
from deepstationing.backbone.weighting import ChannelWeighting, freeze_epochs
from deepstationing.data.image import read_image
from deepstationing.phantom.toy import write_toy_cohort
from deepstationing.stations.network import StationParser, train_stations
from deepstationing.training import TrainBudget, TrainOptions

EPOCHS = 10


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    cohort = write_toy_cohort(tmp / "toy", 8, kind="one-informative", seed=3)
    opts = TrainOptions(workdir=tmp / "runs", budget=TrainBudget(EPOCHS, 12, 1),
                        cpu=CpuConfig((16, 32, 32), (8, 16, 32), 2), progress=lambda m: None)
    model = train_stations(cohort, 0, channels="gt:spine,heart,sternum", options=opts,
                           role="search", trainer="DeepStationingSearchTrainerCPU")
    return cohort, model


def test_the_informative_organ_ranks_first(searched):
    _, model = searched
    folder = model.station_stage()
    assert folder.startswith("search-")
    state = json.loads((model.checkpoint(folder, 0).parent / "search_weights.json").read_text())
    assert state["organs"] == ["spine", "heart", "sternum"]
    final = np.array(state["trajectory"][-1]["weights"])
    assert final.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(final)) == 1, final  # the heart


def test_frozen_then_alternating(searched):
    _, model = searched
    folder = model.station_stage()
    state = json.loads((model.checkpoint(folder, 0).parent / "search_weights.json").read_text())
    traj = {e["epoch"]: np.array(e["weights"]) for e in state["trajectory"]}
    frozen = state["freeze_epochs"]
    assert frozen == freeze_epochs(EPOCHS) == 2
    assert sorted(traj) == list(range(EPOCHS + 1))
    for epoch in range(frozen + 1):  # the start and every frozen epoch: exactly uniform
        assert np.allclose(traj[epoch], 1 / 3, atol=1e-6), (epoch, traj[epoch])
    assert not np.allclose(traj[frozen + 1], traj[frozen])  # the first search epoch moves them
    assert np.abs(traj[EPOCHS] - 1 / 3).max() > 0.02


def test_a_search_model_predicts_like_any_other(searched):
    cohort, model = searched
    case = cohort.case(cohort.test_ids(0)[0])
    organs, stations = StationParser(model).predict(read_image(case.ct),
                                                    read_image(case.organs, label=True))
    truth = read_image(case.stations, label=True).array == 1
    pred = stations.array == 1
    assert 2 * (truth & pred).sum() / (truth.sum() + pred.sum()) > 0.3


def test_channel_weighting_is_a_softmax_over_organs_only():
    net = ChannelWeighting(torch.nn.Identity(), n_organs=3)
    with torch.no_grad():
        net.channel_logits[:] = torch.tensor([2.0, 0.0, -1.0])
    x = torch.ones(2, 4, 3, 3, 3)
    y = net(x)
    w = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), 0) * 3
    assert torch.allclose(y[:, 0], x[:, 0])  # the CT is not weighted
    for c in range(3):
        assert torch.allclose(y[:, c + 1], x[:, c + 1] * w[c])
    assert float(net.weights().detach().sum()) == pytest.approx(1.0)
