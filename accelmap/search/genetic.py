"""A genetic algorithm on mapping genomes (tournament selection, crossover, mutation)."""

from __future__ import annotations

import torch

from accelmap.search.base import _Population, register


@register
class Genetic(_Population):
    """GAMMA's operators (Kao & Krishna, ICCAD 2020): elitism, crossover of whole per-dim
    tilings and per-level orders, and mutation of a tile (move a prime factor between levels),
    of the parallel dims (move a factor between a temporal and a spatial loop, or flip a
    spatial dim's mesh axis) and of the loop order (swap two loops)."""

    name = "genetic"
    summary = "GAMMA-style genetic algorithm: elitism, tiling/order crossover, tile/parallel/order mutation"
    size = 100  # GAMMA's default population
    elite_frac = 0.1
    mutation_rate = 0.5

    def ask(self) -> torch.Tensor:
        if self._seeding():
            return self._seed_ask()
        child, mut = self._children()
        if mut.any():
            child[mut] = self.space.neighbours(child[mut], self.gen)
        return child

    def _children(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Crossover children [size, G] of the better half and which of them to mutate [size]."""
        a, b = self._parents()
        return self.space.crossover(a, b, self.gen), self._mutate()

    def _parents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Two parents [size, G] per child, drawn from the better half."""
        n = self.size
        order = torch.argsort(self.scores)
        parents = self.pop[order[: max(2, n // 2)]]  # the better half breeds
        ia = torch.randint(0, len(parents), (n,), generator=self.gen)
        ib = torch.randint(0, len(parents), (n,), generator=self.gen)
        return parents[ia], parents[ib]

    def _mutate(self) -> torch.Tensor:
        """Which children [size] to mutate."""
        return torch.rand(self.size, generator=self.gen) < self.mutation_rate

    def tell(self, genomes, scores) -> None:
        if self._seeding():
            self._seed_tell(genomes, scores)
            return
        n_elite = max(1, int(self.elite_frac * self.size))
        elite = torch.argsort(self.scores)[:n_elite]
        g = torch.cat([self.pop[elite], genomes])
        s = torch.cat([self.scores[elite], scores])
        keep = torch.argsort(s)[: self.size]
        self.pop, self.scores = g[keep], s[keep]
