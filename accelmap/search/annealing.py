"""Parallel simulated annealing over the mapping space's neighbourhood moves."""

from __future__ import annotations

import math

import torch

from accelmap.search.base import _Population, register


@register
class Annealing(_Population):
    name = "annealing"
    summary = "parallel simulated annealing: many chains, batched neighbour moves, geometric cooling"
    size = 1024
    t_start, t_end = 0.3, 0.003  # temperatures on log(objective)
    restart_frac = 1 / 8  # chains restarted from the best point after every step

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
        self.spent = 0
        self.best_g: torch.Tensor | None = None
        self.best_s = math.inf

    def ask(self) -> torch.Tensor:
        if self._seeding():
            return self._seed_ask()
        return self.space.neighbours(self.pop, self.gen)

    def temperature(self) -> float:
        frac = min(1.0, self.spent / max(1, self.budget))
        return self.t_start * (self.t_end / self.t_start) ** frac

    def tell(self, genomes, scores) -> None:
        self.spent += len(genomes)
        if self._seeding():
            self._seed_tell(genomes, scores)
            return
        t = self.temperature()
        n = len(scores)  # the last step may be cut short by the budget
        delta = scores - self.scores[:n]
        u = torch.rand(n, generator=self.gen, dtype=scores.dtype)
        accept = torch.isfinite(scores) & ((delta <= 0) | (u < torch.exp(-delta.clamp(min=0) / t)))
        self.pop[:n] = torch.where(accept[:, None], genomes, self.pop[:n])
        self.scores[:n] = torch.where(accept, scores, self.scores[:n])
        # restart the worst eighth of the chains from the best points found so far
        i = int(torch.argmin(self.scores))
        if float(self.scores[i]) < self.best_s:
            self.best_s, self.best_g = float(self.scores[i]), self.pop[i].clone()
        if self.best_g is not None:
            k = int(len(self.pop) * self.restart_frac)
            worst = torch.argsort(self.scores, descending=True)[:k]
            self.pop[worst] = self.best_g
            self.scores[worst] = self.best_s
