"""The key-organ search's channel weighting (paper section 2.2, Eq. 4-5) and its schedule.

Every organ channel ``c`` of the station network's input is multiplied by a weight
``phi_c = softmax(alpha)_c`` of learnable logits ``alpha`` (one per organ, all 0 at the
start, so every organ starts with weight 1/C); the CT channel is not weighted. The
network sees ``[X, C * phi_1 * Y_1, ..., C * phi_C * Y_C]``: the constant factor ``C`` (the
number of organ channels) makes the uniform start exactly the unweighted network's input
and changes neither the ranking nor the softmax's competition between organs.

Schedule (paper: "we first fix the alpha for 200 epochs and alternatively update the alpha
and the network weights for another 800 epochs"), as the trainers implement it
(:class:`deepstationing.backbone.trainers.deepstationing_trainers.KeyOrganSearchMixin`):

1. the training cases of the fold are split in two halves (:func:`search_split`): *W*
   for the network weights and *A* for the logits, so the logits are always fitted on
   batches the weights never trained on (as in differentiable architecture search);
2. epochs ``0 .. F-1`` (``F`` = 20 % of the epochs, :func:`freeze_epochs`): only the
   weights are trained, on *W*; the logits stay exactly at their start;
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
>>> search_split(["a", "b", "c", "d", "e"])
(['a', 'c', 'e'], ['b', 'd'])
>>> freeze_epochs(1000), freeze_epochs(40), freeze_epochs(3)
(200, 8, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ChannelWeighting", "search_split", "freeze_epochs", "FREEZE_FRACTION"]

#: Fraction of the epochs during which the logits are frozen (paper: 200 of 1000).
FREEZE_FRACTION = 0.2


class ChannelWeighting(nn.Module):
    """A network whose organ input channels are weighted by ``C * softmax(logits)``.

    Args:
        network: the segmentation network (nnU-Net's ``PlainConvUNet``); its ``decoder``
            is reachable through this wrapper, so nnU-Net can switch deep supervision.
        n_organs: number of organ channels (the input has ``1 + n_organs`` channels, the
            CT first).
    """

    def __init__(self, network: nn.Module, n_organs: int):
        super().__init__()
        if n_organs < 2:
            raise ValueError("the key-organ search needs at least two organ channels")
        self.network = network
        self.channel_logits = nn.Parameter(torch.zeros(int(n_organs)))

    @property
    def decoder(self) -> nn.Module:
        return self.network.decoder

    def weights(self) -> torch.Tensor:
        """The organ weights ``phi`` (softmax of the logits; they sum to 1)."""
        return torch.softmax(self.channel_logits, 0)

    def forward(self, x: torch.Tensor):
        w = self.weights() * self.channel_logits.numel()
        scale = torch.cat([w.new_ones(1), w]).view(1, -1, *([1] * (x.dim() - 2)))
        return self.network(x * scale.to(x.dtype))


def search_split(case_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Training cases for the weights (*W*) and for the logits (*A*): alternate halves of
    the sorted ids (deterministic, sizes differ by at most one)."""
    ids = sorted(case_ids)
    if len(ids) < 2:
        raise ValueError("the key-organ search needs at least two training cases")
    return ids[0::2], ids[1::2]


def freeze_epochs(num_epochs: int, fraction: float = FREEZE_FRACTION) -> int:
    """Epochs with frozen logits: ``fraction`` of the run, at least one, leaving one to search."""
    return min(max(1, int(math.floor(num_epochs * fraction + 0.5))), max(1, num_epochs - 1))
