"""The default search: islands of annealing chains, a genetic population and greedy local
walkers, asked as one batched step."""

from __future__ import annotations

import math

import torch

from accelmap.search.annealing import Annealing
from accelmap.search.base import _Population, factor_depths, fits_mesh, outward_sample, register
from accelmap.search.genetic import Genetic


class _Island:
    """Annealing chains, a genetic population and greedy local walkers sharing one incumbent
    (the island's own best)."""

    def __init__(self, ann: Annealing, gen: Genetic, n_local: int):
        self.ann, self.gen_opt, self.n_local = ann, gen, n_local
        self.local: torch.Tensor | None = None
        self.local_s: torch.Tensor | None = None
        self.best_g: torch.Tensor | None = None
        self.best_s = math.inf
        self.parts = (0, 0, 0)
        self.mut: torch.Tensor | None = None
        self.child: torch.Tensor | None = None

    def start(self, pop: torch.Tensor, scores: torch.Tensor) -> None:
        order = torch.argsort(scores)
        self.ann.pop, self.ann.scores = pop.clone(), scores.clone()
        top = order[: self.gen_opt.size]
        self.gen_opt.pop, self.gen_opt.scores = pop[top].clone(), scores[top].clone()
        self.local = pop[order[0]].repeat(self.n_local, 1)
        self.local_s = scores[order[0]].repeat(self.n_local)
        self._share(pop, scores)

    def sources(self, child: torch.Tensor) -> torch.Tensor:
        """The points whose neighbours this step asks: chains, the mutated ones of this step's
        crossover children ``child``, walkers."""
        self.child, self.mut = child, self.gen_opt._mutate()
        return torch.cat([self.ann.pop, self.child[self.mut], self.local])

    def batch(self, nb: torch.Tensor) -> torch.Tensor:
        """This island's step from the neighbours of its :meth:`sources`."""
        na, nm = len(self.ann.pop), int(self.mut.sum())
        self.child[self.mut] = nb[na:na + nm]
        self.parts = (na, len(self.child), len(self.local))
        return torch.cat([nb[:na], self.child, nb[na + nm:]])

    def _share(self, genomes: torch.Tensor, scores: torch.Tensor) -> None:
        i = int(torch.argmin(scores))
        if float(scores[i]) < self.best_s:
            self.best_s, self.best_g = float(scores[i]), genomes[i].clone()
            half = torch.arange(0, len(self.local), 2)
            self.local[half], self.local_s[half] = self.best_g, self.best_s
        gs = self.gen_opt.scores
        if self.best_s < float(gs.min()):
            w = int(torch.argmax(gs))
            self.gen_opt.pop[w], gs[w] = self.best_g, self.best_s

    def tell(self, genomes: torch.Tensor, scores: torch.Tensor) -> None:
        na, ng, _ = self.parts
        n = len(scores)  # the last step may be cut short by the budget
        if n == 0:
            return
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


@register
class Portfolio(_Population):
    """``islands`` independent islands, each of annealing chains, a genetic population and a
    greedy local search from the island's best, all asked as one batch per step.

    Within an island, whenever a member improves the island's best, that point replaces the
    genetic population's worst member and restarts half of the local walkers; the annealing
    chains restart only rarely and to their own best. Annealing explores; the genetic
    crossover combines tilings of different basins; the local search (temperature 0) settles
    the basin quickly, which annealing alone does not do before a patience stop (its
    temperature follows the budget, not the patience). Islands share nothing: one shared
    incumbent pulled every member into its basin within a few steps, and on spaces with many
    basins (random architectures, 4-32-word buffers, bypass choices) which basin that was
    decided the result. 16 random-architecture layers x seeds 3-5 at the default budget and
    patience, geometric mean EDP over the best known: 1 island 1.29x, 4 islands 1.21x, 8
    islands 1.24x (same total sizes and budget); the presets eyeriss_like and simple_pe16x16
    stay within 1.3% in geometric mean.
    """

    name = "portfolio"
    summary = "islands of annealing + genetic + greedy local search, one batch per step (default)"
    islands = 4
    size = 512  # seeded points; the annealing chains of all islands
    n_genetic = 128
    n_local = 128
    # the annealing member keeps its chains apart (few restarts, to its own best): with the
    # restarts to the shared incumbent every member ended in the same basin more often
    # (3 layers x 3 seeds at the default budget: geometric mean EDP about 1% worse)
    restart_frac = 1 / 64
    # seeded with `size` legal points (not the first batch's few: on random architectures that
    # batch held 5-10 legal points, copied over all members, and the seed's basin decided the
    # result); the seeding draws them from `outward_sample`, where 10-90% are legal, not 0.1-0.5%
    seed_enough = None
    seed_batch = 2048

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
        k = self.islands
        per_step = (self.size + self.n_genetic + self.n_local) // k
        # the members' sizes as subclasses (no attributes set after construction)
        ann_cls = type("_PortfolioAnnealing", (Annealing,), {"size": self.size // k, "restart_frac": self.restart_frac})
        gen_cls = type("_PortfolioGenetic", (Genetic,), {"size": self.n_genetic // k})
        # each island's annealing cools over its share of the evaluations
        ann_budget = max(1, budget // k * (self.size // k) // per_step)
        self.isl = [_Island(ann_cls(space, generator, ann_budget, objective), gen_cls(space, generator, budget, objective),
                            self.n_local // k) for _ in range(k)]
        self._sizes: list[int] = []
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
        # one crossover and one neighbour call for all islands and members (their cost is
        # mostly per call)
        pa, pb = zip(*[isl.gen_opt._parents() for isl in self.isl])
        child = self.space.crossover(torch.cat(pa), torch.cat(pb), self.gen).split([len(p) for p in pa])
        src = [isl.sources(c) for isl, c in zip(self.isl, child)]
        self._sizes = [len(s) for s in src]
        nb = self.space.neighbours(torch.cat(src), self.gen).split(self._sizes)
        out = [isl.batch(b) for isl, b in zip(self.isl, nb)]
        self._sizes = [len(o) for o in out]
        return torch.cat(out)

    def tell(self, genomes, scores) -> None:
        if self._seeding():
            self._seed_tell(genomes, scores)
            if not self._seeding():  # seeded: deal the points out by rank, each island a mix
                order = torch.argsort(self.scores)
                for i, isl in enumerate(self.isl):
                    mine = order[i::len(self.isl)]
                    isl.start(self.pop[mine], self.scores[mine])
            return
        at = 0
        for isl, n in zip(self.isl, self._sizes):
            isl.tell(genomes[at:at + n], scores[at:at + n])
            at += n
