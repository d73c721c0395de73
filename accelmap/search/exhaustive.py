"""Every point of a small mapping space, in order (enumeration where the space allows it)."""

from __future__ import annotations

import torch

from accelmap.search.base import Optimizer, register


@register
class Exhaustive(Optimizer):
    name = "exhaustive"
    summary = "every point of the pruned space (orders of trivial loops skipped); refuses > 5M points"

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
        self._it = space.enumerate()

    def ask(self) -> torch.Tensor:
        try:
            return next(self._it)
        except StopIteration:
            self.finished = True
            return torch.empty(0, self.space.layout.size, dtype=torch.int64)
