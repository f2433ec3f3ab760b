"""Key-organ search, the parts that need no training: the channel weighting and its left-out
channels, the patient-level split, the frozen epochs of a resumed search, the ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepstationing.backbone.weighting import (
    ChannelWeighting,
    freeze_epochs,
    resumed_freeze_epochs,
    search_split,
)
from deepstationing.search.ranking import ranking, write_ranking


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


def _logit_gradient(net: ChannelWeighting, x: torch.Tensor) -> torch.Tensor:
    """d loss / d logits for a loss that wants the organ channels smaller."""
    loss = net(x)[:, 1:].pow(2).sum()
    (grad,) = torch.autograd.grad(loss, [net.channel_logits])
    return grad


def test_an_empty_channel_moves_only_through_the_normalisation_unless_left_out():
    """Channel 3 is all zero. In the softmax its logit still gets a gradient (raising it
    lowers the two others): ``-phi_3 * sum_j phi_j g_j``, the sign opposite to theirs. Left
    out, it gets none, its weight is exactly 0, and the two others share the softmax."""
    x = torch.ones(1, 4, 2, 2, 2)
    x[:, 3] = 0.0
    net = ChannelWeighting(torch.nn.Identity(), n_organs=3)
    grad = _logit_gradient(net, x)
    phi = net.weights().detach()
    g = torch.tensor([2 * 3 * 3 * phi[0] * 8, 2 * 3 * 3 * phi[1] * 8, 0.0])  # d loss / d phi
    assert torch.allclose(grad, phi * (g - (phi * g).sum()), atol=1e-5)
    assert grad[2] < 0 < grad[0]  # a descent step raises the empty channel's logit

    net.set_searched([True, True, False])
    assert net.weights().tolist() == [0.5, 0.5, 0.0]
    y = net(x)
    assert torch.allclose(y[:, 1:3], x[:, 1:3])  # the factor counts the searched channels
    assert torch.equal(y[:, 3], torch.zeros_like(y[:, 3]))
    assert _logit_gradient(net, x)[2].item() == 0.0
    with pytest.raises(ValueError, match="no organ channel"):
        net.set_searched([False, False, False])


def test_the_left_out_channels_travel_with_the_weights_and_old_checkpoints_load():
    net = ChannelWeighting(torch.nn.Identity(), n_organs=3)
    net.set_searched([True, False, True])
    state = net.state_dict()
    assert state["channel_searched"].tolist() == [True, False, True]
    fresh = ChannelWeighting(torch.nn.Identity(), n_organs=3)
    fresh.load_state_dict(state)
    assert fresh.channel_searched.tolist() == [True, False, True]
    legacy = {k: v for k, v in state.items() if k != "channel_searched"}
    fresh.load_state_dict(legacy)  # written before channels could be left out: all searched
    assert fresh.channel_searched.tolist() == [True, True, True]


@pytest.mark.parametrize("seed", range(5))
def test_search_split_keeps_every_patient_in_one_half(seed):
    rng = np.random.default_rng(seed)
    patients, cases = {}, []
    for p in range(int(rng.integers(3, 12))):
        for _ in range(int(rng.integers(1, 5))):
            case = f"c{len(cases):03d}"
            cases.append(case)
            patients[case] = f"P{p}"
    order = list(rng.permutation(cases))
    w, a = search_split(order, patients)
    assert sorted(w + a) == sorted(cases)  # together: every training case, once
    assert {patients[c] for c in w}.isdisjoint({patients[c] for c in a})
    assert w and a
    biggest = max(np.unique(list(patients.values()), return_counts=True)[1])
    assert abs(len(w) - len(a)) <= biggest
    assert search_split(sorted(cases), patients) == (w, a)  # the order given does not matter


def test_search_split_without_patients_alternates_cases():
    ids = [f"c{i}" for i in range(7)]
    assert search_split(ids) == (["c0", "c2", "c4", "c6"], ["c1", "c3", "c5"])
    with pytest.raises(ValueError, match="two patients"):
        search_split(["a", "b"], {"a": "P", "b": "P"})


def test_a_resumed_or_extended_search_keeps_its_frozen_epochs():
    assert freeze_epochs(10) == 2 and freeze_epochs(20) == 4
    assert resumed_freeze_epochs(None, done=0, num_epochs=10) == 2  # a new search
    assert resumed_freeze_epochs(2, done=10, num_epochs=20) == 2  # extended 10 -> 20
    assert resumed_freeze_epochs(2, done=5, num_epochs=10) == 2  # resumed, same total
    # stopped inside the frozen phase: the new total's schedule, never fewer than done
    assert resumed_freeze_epochs(4, done=1, num_epochs=10) == 2
    assert resumed_freeze_epochs(20, done=15, num_epochs=50) == 15


def test_ranking_puts_left_out_channels_last_and_says_so(tmp_path):
    state = {"organs": ["azygos", "heart", "spine", "sternum"], "freeze_epochs": 1,
             "searched": [False, True, True, True],
             "content": {"weights": [0, 3, 3, 2], "logits": [0, 3, 2, 3]},
             "halves": {"weights": ["a", "b", "c"], "logits": ["d", "e", "f"]},
             "trajectory": [{"epoch": 0, "weights": [0.0, 1 / 3, 1 / 3, 1 / 3]},
                            {"epoch": 2, "weights": [0.0, 0.5, 0.2, 0.3]}]}
    ranked = ranking(state)
    assert [(r.organ, r.rank, r.searched) for r in ranked] == [
        ("heart", 1, True), ("sternum", 2, True), ("spine", 3, True), ("azygos", 4, False)]
    doc = json.loads(write_ranking(state, tmp_path).read_text())
    assert doc["not_searched"] == ["azygos"]
    assert doc["organs"][-1] == {"rank": 4, "organ": "azygos", "weight": 0.0,
                                 "searched": False,
                                 "cases_with_content": {"weights": 0, "logits": 0}}
    assert doc["freeze_epochs"] == 1 and (tmp_path / "weights.png").stat().st_size > 0


def test_patients_reach_the_exported_dataset_and_cohorts_without_them_export_as_before(
        tmp_path):
    from deepstationing import schema
    from deepstationing.backbone.channels import ChannelSpec
    from deepstationing.backbone.datasets import ExportCase, export_dataset
    from deepstationing.backbone.env import Workspace
    from deepstationing.data.image import Image, write_image
    from deepstationing.training.stages import STATION_LABELS

    cases = []
    for i, patient in enumerate(("A", "A", None)):
        d = tmp_path / f"c{i}"
        d.mkdir()
        organs = np.zeros((4, 6, 6), np.uint8)
        organs[1:3, 2:4, 2:4] = schema.ORGANS.by_key("heart").id
        write_image(Image(np.zeros((4, 6, 6), np.int16)), d / "ct.nii.gz")
        write_image(Image(organs), d / "organs.nii.gz")
        cases.append(ExportCase(f"c{i}", d / "ct.nii.gz", d / "organs.nii.gz", i % 2,
                                d / "organs.nii.gz", "gt", patient))
    spec = ChannelSpec.parse("gt:heart")
    ws = Workspace(tmp_path / "ws")
    ref, _ = export_dataset(ws, "with", "with", cases, labels=STATION_LABELS, channels=spec,
                            spacing=(1.0, 1.0, 1.0))
    assert ref.dataset_json["deepstationing"]["patients"] == {"c0": "A", "c1": "A"}
    plain = [ExportCase(c.case_id, c.ct, c.target, c.fold, c.organs, "gt") for c in cases]
    ref, _ = export_dataset(ws, "without", "without", plain, labels=STATION_LABELS,
                            channels=spec, spacing=(1.0, 1.0, 1.0))
    assert "patients" not in ref.dataset_json["deepstationing"]
    source = json.loads((ref.raw_folder / "deepstationing_source.json").read_text())
    assert all("patient" not in c for c in source["cases"])
