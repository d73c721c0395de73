"""The default search: annealing, genetic and gradient in one batched loop, sharing incumbents."""

from __future__ import annotations

import math

import torch

from accelmap.search.annealing import Annealing
from accelmap.search.base import _Population, factor_depths, fits_mesh, moved_neighbours, outward_sample, register
from accelmap.search.genetic import Genetic


@register
class Portfolio(_Population):
    """Annealing chains, a genetic population and a greedy local search from the incumbent,
    asked as one batch per step and sharing one incumbent.

    One random draw seeds all three. Whenever any member improves the best point, it replaces
    the genetic population's worst member and restarts half of the local-search walkers; the
    annealing chains restart only rarely and to their own best, so they stay spread over
    several basins. Annealing explores; the genetic crossover combines tilings of different
    basins; the local search (temperature 0) settles the incumbent's basin quickly, which
    annealing alone does not do before a patience stop (its temperature follows the budget,
    not the patience).
    """

    name = "portfolio"
    summary = "annealing + genetic + greedy local search in one batch per step, sharing the incumbent (default)"
    size = 512  # seeded points; the annealing chains
    n_genetic = 128
    n_local = 128
    # the annealing member keeps its chains apart (few restarts, to its own best): with the
    # restarts to the shared incumbent every member ended in the same basin more often
    # (3 layers x 3 seeds at the default budget: geometric mean EDP about 1% worse)
    restart_frac = 1 / 64
    share_annealing = False
    # seeded with `size` legal points (not the first batch's few: on random architectures that
    # batch held 5-10 legal points, copied over all members, and the seed's basin decided the
    # result); the seeding draws them from `outward_sample`, where 10-90% are legal, not 0.1-0.5%
    seed_enough = None
    seed_batch = 2048

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
        per_step = self.size + self.n_genetic + self.n_local
        # the members' sizes as subclasses (no attributes set after construction)
        ann_cls = type("_PortfolioAnnealing", (Annealing,), {"size": self.size, "restart_frac": self.restart_frac})
        gen_cls = type("_PortfolioGenetic", (Genetic,), {"size": self.n_genetic})
        # annealing cools over its own share of the evaluations
        self.ann = ann_cls(space, generator, max(1, budget * self.size // per_step), objective)
        self.gen_opt = gen_cls(space, generator, budget, objective)
        self.local: torch.Tensor | None = None
        self.local_s: torch.Tensor | None = None
        self.best_g: torch.Tensor | None = None
        self.best_s = math.inf
        self._parts = (0, 0, 0)
        self._depth: list | None = None

    def _seed_ask(self) -> torch.Tensor:
        """``seed_batch`` points that fit the mesh, biased towards small inner tiles (checked
        without evaluations, so the budget goes to points that may be legal)."""
        self._depth = self._depth or factor_depths(self.space)
        got, have = [], 0
        for _ in range(16):
            g = outward_sample(self.space, 2 * self.seed_batch, self.gen, self._depth)
            got.append(g[fits_mesh(self.space, g)])
            have += len(got[-1])
            if have >= self.seed_batch:
                break
        return torch.cat(got)[: self.seed_batch]

    def ask(self) -> torch.Tensor:
        if self._seeding():
            return self._seed_ask()
        # one neighbour call for all members (its cost is mostly per call, not per genome)
        child, mut = self.gen_opt._children()
        src = torch.cat([self.ann.pop, child[mut], self.local])
        nb = moved_neighbours(self.space, src, self.gen)
        na, nm = len(self.ann.pop), int(mut.sum())
        child[mut] = nb[na:na + nm]
        self._parts = (na, len(child), len(self.local))
        return torch.cat([nb[:na], child, nb[na + nm:]])

    def _share(self, genomes: torch.Tensor, scores: torch.Tensor) -> None:
        i = int(torch.argmin(scores))
        if float(scores[i]) < self.best_s:
            self.best_s, self.best_g = float(scores[i]), genomes[i].clone()
            half = torch.arange(0, len(self.local), 2)
            self.local[half], self.local_s[half] = self.best_g, self.best_s
        if self.share_annealing:
            self.ann.best_g, self.ann.best_s = self.best_g, self.best_s
        gs = self.gen_opt.scores
        if self.best_s < float(gs.min()):
            w = int(torch.argmax(gs))
            self.gen_opt.pop[w], gs[w] = self.best_g, self.best_s

    def tell(self, genomes, scores) -> None:
        if self._seeding():
            self._seed_tell(genomes, scores)
            if not self._seeding():  # seeded: hand the points to the members
                order = torch.argsort(self.scores)
                self.ann.pop, self.ann.scores = self.pop.clone(), self.scores.clone()
                top = order[: self.n_genetic]
                self.gen_opt.pop, self.gen_opt.scores = self.pop[top].clone(), self.scores[top].clone()
                self.local = self.pop[order[0]].repeat(self.n_local, 1)
                self.local_s = self.scores[order[0]].repeat(self.n_local)
                self._share(self.pop, self.scores)
            return
        na, ng, _ = self._parts
        n = len(scores)  # the last step may be cut short by the budget
        if n > 0:
            self.ann.tell(genomes[: min(n, na)], scores[: min(n, na)])
        if n > na:
            k = min(n, na + ng)
            self.gen_opt.tell(genomes[na:k], scores[na:k])
        if n > na + ng:
            lg, ls = genomes[na + ng:], scores[na + ng:]
            m = len(ls)
            better = ls < self.local_s[:m]
            self.local[:m] = torch.where(better[:, None], lg, self.local[:m])
            self.local_s[:m] = torch.where(better, ls, self.local_s[:m])
        self._share(genomes, scores)
