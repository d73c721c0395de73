"""Random search: independent legal samples, the baseline every optimizer must beat."""

from __future__ import annotations

import torch

from accelmap.search.base import Optimizer, register


@register
class RandomSearch(Optimizer):
    name = "random"
    summary = "uniform samples of the space (Timeloop's random-pruned family); keeps the best"
    batch = 4096

    def ask(self) -> torch.Tensor:
        return self.space.sample(self.batch, self.gen)
