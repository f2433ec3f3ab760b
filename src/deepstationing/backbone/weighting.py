"""The key-organ search's channel weighting (paper section 2.2, Eq. 4-5) and its schedule.

Every organ channel ``c`` of the station network's input is multiplied by a weight
``phi_c = softmax(alpha)_c`` of learnable logits ``alpha`` (one per organ, all 0 at the
start, so every organ starts with weight 1/C); the CT channel is not weighted. The
network sees ``[X, C * phi_1 * Y_1, ..., C * phi_C * Y_C]``: the constant factor ``C`` (the
number of organ channels) makes the uniform start exactly the unweighted network's input
and changes neither the ranking nor the softmax's competition between organs.

**Channels without content are not searched.** An organ channel that has no voxel in the
training cases of either half (below) gives the loss no gradient of its own: its logit
moves only through the softmax's normalisation, ``d loss / d alpha_c = -phi_c * sum_j
phi_j g_j`` (``g_j = d loss / d phi_j``, ``g_c = 0``), and raising it is how the search
lowers every other channel's weight at once, so an empty channel's "largest weight" would
mean nothing (the logits' Adam turns even a tiny gradient of constant sign into full-size
steps). Such channels are left out of the softmax (:meth:`ChannelWeighting.set_searched`):
their weight is exactly 0 (their input too, in training and prediction alike), the
softmax and the factor ``C`` run over the searched channels only, and the ranking puts
them after every searched channel (:func:`deepstationing.search.ranking.ranking`).

Schedule (paper: "we first fix the alpha for 200 epochs and alternatively update the alpha
and the network weights for another 800 epochs"), as the trainers implement it
(:class:`deepstationing.backbone.trainers.deepstationing_trainers.KeyOrganSearchMixin`):

1. the training cases of the fold are split in two halves by patient
   (:func:`search_split`): *W* for the network weights and *A* for the logits, so the
   logits are always fitted on patients the weights never trained on (as in
   differentiable architecture search);
2. epochs ``0 .. F-1`` (``F`` = 20 % of the epochs, :func:`freeze_epochs`): only the
   weights are trained, on *W*; the logits stay exactly at their start. ``F`` is fixed
   when a search starts: resuming or extending it keeps the frozen epochs it trained
   (:func:`resumed_freeze_epochs`);
3. from epoch ``F`` on, every training iteration does one weight step on a *W* batch (the
   logits fixed: they are not in the weights' optimiser) and then one logit step on an
   *A* batch (the weights fixed: the gradient is taken with respect to the logits only),
   with the same Dice + CE loss; this is first-order DARTS.

Examples
--------
>>> import torch
>>> net = ChannelWeighting(torch.nn.Identity(), n_organs=3)
>>> x = torch.ones(1, 4, 1, 1, 1)
>>> net(x).flatten().tolist()                     # uniform start: the plain input
[1.0, 1.0, 1.0, 1.0]
>>> with torch.no_grad():
...     net.channel_logits[:] = torch.tensor([0.0, 0.0, 1.0])
>>> [round(v, 3) for v in net.weights().tolist()]     # softmax: sums to 1
[0.212, 0.212, 0.576]
>>> net.set_searched([True, False, True])      # channel 2 has no content: weight 0
>>> [round(v, 3) for v in net.weights().tolist()]
[0.269, 0.0, 0.731]
>>> search_split(["a", "b", "c", "d", "e"])       # one case per patient: alternate ids
(['a', 'c', 'e'], ['b', 'd'])
>>> search_split(["a1", "a2", "b", "c", "d"], {"a1": "A", "a2": "A"})  # patients stay whole
(['a1', 'a2', 'd'], ['b', 'c'])
>>> freeze_epochs(1000), freeze_epochs(40), freeze_epochs(3)
(200, 8, 1)
>>> resumed_freeze_epochs(2, done=10, num_epochs=20)   # extended 10 -> 20: still 2 frozen
2
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["ChannelWeighting", "search_split", "freeze_epochs", "resumed_freeze_epochs",
           "FREEZE_FRACTION"]

#: Fraction of the epochs during which the logits are frozen (paper: 200 of 1000).
FREEZE_FRACTION = 0.2


class ChannelWeighting(nn.Module):
    """A network whose organ input channels are weighted by ``C * softmax(logits)``.

    Args:
        network: the segmentation network (nnU-Net's ``PlainConvUNet``); its ``decoder``
            is reachable through this wrapper, so nnU-Net can switch deep supervision.
        n_organs: number of organ channels (the input has ``1 + n_organs`` channels, the
            CT first).

    The buffer ``channel_searched`` (saved with the weights) marks the channels in the
    softmax; the others have weight 0 and ``C`` counts the searched ones only. A
    checkpoint written before the buffer existed loads with every channel searched.
    """

    def __init__(self, network: nn.Module, n_organs: int):
        super().__init__()
        if n_organs < 2:
            raise ValueError("the key-organ search needs at least two organ channels")
        self.network = network
        self.channel_logits = nn.Parameter(torch.zeros(int(n_organs)))
        self.register_buffer("channel_searched", torch.ones(int(n_organs), dtype=torch.bool))

    @property
    def decoder(self) -> nn.Module:
        return self.network.decoder

    def set_searched(self, searched: Sequence[bool]) -> None:
        """Which channels take part in the softmax (the others get weight 0)."""
        mask = torch.as_tensor([bool(v) for v in searched], dtype=torch.bool)
        if mask.shape != self.channel_searched.shape:
            raise ValueError(f"{mask.numel()} flags for {self.channel_searched.numel()} "
                             "organ channels")
        if not mask.any():
            raise ValueError("no organ channel to search (every one is left out)")
        self.channel_searched.copy_(mask.to(self.channel_searched.device))

    def weights(self) -> torch.Tensor:
        """The organ weights ``phi`` (softmax of the searched logits; they sum to 1)."""
        logits = self.channel_logits.masked_fill(~self.channel_searched, float("-inf"))
        return torch.softmax(logits, 0)

    def forward(self, x: torch.Tensor):
        w = self.weights() * self.channel_searched.sum()
        scale = torch.cat([w.new_ones(1), w]).view(1, -1, *([1] * (x.dim() - 2)))
        return self.network(x * scale.to(x.dtype))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "channel_searched"
        if key not in state_dict:  # a checkpoint from before channels could be left out
            state_dict[key] = torch.ones_like(self.channel_searched)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def search_split(case_ids: Sequence[str],
                 patients: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Training cases for the weights (*W*) and for the logits (*A*), split by patient.

    Every case of a patient (``patients[case]``; a case not listed is its own patient)
    lands in the same half. Patients are taken largest first (then by name) and each goes
    to the half with fewer cases so far (*W* on a tie): deterministic, halves as even as
    whole patients allow; with one case per patient the halves alternate the sorted ids.
    """
    ids = sorted(case_ids)
    groups: dict[str, list[str]] = {}
    for case in ids:
        groups.setdefault(str((patients or {}).get(case, case)), []).append(case)
    if len(groups) < 2:
        raise ValueError("the key-organ search needs training cases of at least two patients "
                         f"(got {len(ids)} case(s) of {len(groups)})")
    halves: tuple[list[str], list[str]] = ([], [])
    for _, cases in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        halves[len(halves[1]) < len(halves[0])].extend(cases)
    return sorted(halves[0]), sorted(halves[1])


def freeze_epochs(num_epochs: int, fraction: float = FREEZE_FRACTION) -> int:
    """Epochs with frozen logits: ``fraction`` of the run, at least one, leaving one to search."""
    return min(max(1, int(math.floor(num_epochs * fraction + 0.5))), max(1, num_epochs - 1))


def resumed_freeze_epochs(recorded: int | None, *, done: int, num_epochs: int,
                          fraction: float = FREEZE_FRACTION) -> int:
    """The frozen epochs of a search resumed or extended after ``done`` epochs.

    Once the search has left its frozen phase (``done >= recorded``), the recorded number
    is what was trained and stays. A search stopped inside its frozen phase continues with
    the new total's schedule, but never fewer frozen epochs than it has already done.
    """
    if recorded is not None and done >= recorded:
        return int(recorded)
    return max(int(done), freeze_epochs(num_epochs, fraction))
