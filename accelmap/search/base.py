"""Mapping optimizers behind one ask/tell interface, registered by name.

``ask()`` returns a batch of genomes to evaluate; ``tell(genomes, scores)`` reports their scores
(lower is better, +inf for illegal). :func:`accelmap.search.loop.optimize` drives any of them with a
budget, a seed, a progress bar and a trial log; an optimizer never evaluates anything itself.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from accelmap.mapspace.space import MappingSpace
from accelmap.model.objective import Objective
from accelmap.registry import Registry

OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer", "--optimizer")  # filled by accelmap.search
register = OPTIMIZERS.register
get_optimizer = OPTIMIZERS.get


class Optimizer:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, space: MappingSpace, generator: torch.Generator, budget: int,
                 objective: Objective | None = None):
        """``objective``: what the search minimises; the loop scores every batch itself, but
        model-guided optimizers (dcp) rank candidates by it before asking."""
        self.space, self.gen, self.budget, self.objective = space, generator, budget, objective
        self.finished = False

    def ask(self) -> torch.Tensor:
        raise NotImplementedError

    def tell(self, genomes: torch.Tensor, scores: torch.Tensor) -> None:
        pass


class _Population(Optimizer):
    """Shared start: draw random samples until ``size`` legal ones are found."""

    size = 64
    seed_enough: int | None = None  # legal points that end the seeding (None: size)

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
        self.pop: torch.Tensor | None = None
        self.scores: torch.Tensor | None = None
        self._seed_g: list[torch.Tensor] = []
        self._seed_s: list[torch.Tensor] = []

    def _seeding(self) -> bool:
        return self.pop is None

    def _seed_ask(self) -> torch.Tensor:
        return self.space.sample(max(4 * self.size, 1024), self.gen)

    def _seed_tell(self, genomes, scores) -> None:
        self._seed_g.append(genomes)
        self._seed_s.append(scores)
        g, s = torch.cat(self._seed_g), torch.cat(self._seed_s)
        n_ok = int(torch.isfinite(s).sum())
        if n_ok >= (self.seed_enough or self.size) or len(g) >= 64 * self.size:
            idx = torch.argsort(s)[: self.size]
            if not torch.isfinite(s[idx[0]]):
                return  # keep drawing: no legal point yet
            idx = idx[torch.isfinite(s[idx])]
            # fill up with copies of legal points if too few were found
            reps = math.ceil(self.size / len(idx))
            idx = idx.repeat(reps)[: self.size]
            self.pop, self.scores = g[idx].clone(), s[idx].clone()
            self._seed_g, self._seed_s = [], []

