"""Mapping optimizers behind one ask/tell interface, registered by name.

``ask()`` returns a batch of genomes to evaluate; ``tell(genomes, scores)`` reports their scores
(lower is better, +inf for illegal). :func:`accelmap.search.optimize` drives any of them with a
budget, a seed, a progress bar and a trial log; an optimizer never evaluates anything itself.
"""

from __future__ import annotations

import importlib
import math
from typing import ClassVar

import torch

from accelmap.errors import AccelmapError
from accelmap.space import MappingSpace

OPTIMIZERS: dict[str, type["Optimizer"]] = {}


def register(cls: type["Optimizer"]) -> type["Optimizer"]:
    if cls.name in OPTIMIZERS:
        raise ValueError(f"optimizer name '{cls.name}' is already registered")
    OPTIMIZERS[cls.name] = cls
    return cls


def get_optimizer(name: str) -> type["Optimizer"]:
    if name not in OPTIMIZERS:
        raise AccelmapError(f"unknown optimizer '{name}'; expected one of {', '.join(sorted(OPTIMIZERS))}",
                            field="--optimizer")
    return OPTIMIZERS[name]


class Optimizer:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, space: MappingSpace, generator: torch.Generator, budget: int):
        self.space, self.gen, self.budget = space, generator, budget
        self.finished = False

    def ask(self) -> torch.Tensor:
        raise NotImplementedError

    def tell(self, genomes: torch.Tensor, scores: torch.Tensor) -> None:
        pass


@register
class RandomSearch(Optimizer):
    name = "random"
    summary = "uniform samples of the space (Timeloop's random-pruned family); keeps the best"
    batch = 4096

    def ask(self) -> torch.Tensor:
        return self.space.sample(self.batch, self.gen)


@register
class Exhaustive(Optimizer):
    name = "exhaustive"
    summary = "every point of the pruned space (orders of trivial loops skipped); refuses > 5M points"

    def __init__(self, space, generator, budget):
        super().__init__(space, generator, budget)
        self._it = space.enumerate()

    def ask(self) -> torch.Tensor:
        try:
            return next(self._it)
        except StopIteration:
            self.finished = True
            return torch.empty(0, self.space.layout.size, dtype=torch.int64)


class _Population(Optimizer):
    """Shared start: draw random samples until ``size`` legal ones are found."""

    size = 64
    seed_enough: int | None = None  # legal points that end the seeding (None: size)

    def __init__(self, space, generator, budget):
        super().__init__(space, generator, budget)
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


@register
class Annealing(_Population):
    name = "annealing"
    summary = "parallel simulated annealing: many chains, batched neighbour moves, geometric cooling"
    size = 1024
    t_start, t_end = 0.3, 0.003  # temperatures on log(objective)
    restart_frac = 1 / 8  # chains restarted from the best point after every step

    def __init__(self, space, generator, budget):
        super().__init__(space, generator, budget)
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
        n = self.size
        order = torch.argsort(self.scores)
        parents = self.pop[order[: max(2, n // 2)]]  # the better half breeds
        ia = torch.randint(0, len(parents), (n,), generator=self.gen)
        ib = torch.randint(0, len(parents), (n,), generator=self.gen)
        child = self.space.crossover(parents[ia], parents[ib], self.gen)
        return child, torch.rand(n, generator=self.gen) < self.mutation_rate

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


@register
class Gradient(_Population):
    """Gradient descent on the relaxed model, then parallel local search (Liang et al., ICCAD 2022).

    The best legal random samples seed the starts. Per start, each dim's split of its log
    bound over the free slots is a softmax of logits, so factor products stay exact; Adam
    lowers log EDP plus penalties on capacity and fanout excess (loop orders, axes and
    bypass stay those of the seed). Factors are rounded to the nearest legal factorization
    per dim, then all incumbents' neighbours are evaluated as one batch per step and
    improvements kept (greedy parallel local search).
    """

    name = "gradient"
    summary = "relaxed-model gradient descent on log tile factors, rounding, then parallel local search"
    size = 64
    steps = 150
    lr = 0.1
    penalty = 10.0

    def __init__(self, space, generator, budget):
        super().__init__(space, generator, budget)
        self._descended = False

    def ask(self) -> torch.Tensor:
        if self._seeding():
            return self._seed_ask()
        if not self._descended:
            self._descended = True
            return self._descend(self.pop)
        return self.space.neighbours(self.pop, self.gen)

    def tell(self, genomes, scores) -> None:
        if self._seeding():
            self._seed_tell(genomes, scores)
            return
        n = len(scores)
        better = scores < self.scores[:n]
        self.pop[:n] = torch.where(better[:, None], genomes, self.pop[:n])
        self.scores[:n] = torch.where(better, scores, self.scores[:n])

    def _descend(self, seeds: torch.Tensor) -> torch.Tensor:
        sp = self.space
        lay = sp.layout
        fac, order, axis, keep = lay.split(seeds)
        logb = torch.log(torch.tensor(sp.workload.bounds, dtype=torch.float64))
        fixed_log, rest, logits = sp.log_split(seeds)
        logits = logits.requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=self.lr)
        model = sp.model
        batch = sp.decode(seeds)

        for _ in range(self.steps):
            logf = sp.log_factors(fixed_log, rest, logits)
            lt, ls = sp.place(logf, axis, 0.0)
            c = model.relaxed(lt, ls, batch.order, batch.keep, spatial_order=batch.spatial_order)
            cap = torch.where(torch.isfinite(c.capacity_excess), c.capacity_excess, torch.zeros_like(c.capacity_excess))
            capn = torch.relu(cap / model.hw.capacity.clamp(max=1e12)[None]).sum(1)
            loss = (torch.log(c.energy) + torch.log(c.cycles) + self.penalty * (capn + torch.relu(c.fanout_excess).flatten(1).sum(1))).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logf = sp.log_factors(fixed_log, rest, logits)
        code = sp.to_code(seeds)
        a = lay.D * lay.S
        code[:, :a] = (logf / logb.clamp(min=math.log(2))[None, :, None]).flatten(1)
        rounded = sp.from_code(code)
        # keep the seed's loop orders, axes and bypass (from_code re-derives them from the code)
        rf, _, _, _ = lay.split(rounded)
        return torch.cat([rf.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1)


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
    # start from the first batch that holds a legal point: the seeding's draws count towards
    # the patience, and on a space with few legal points waiting for `size` of them used it up
    # before the search began (random architectures: stopped after 12,288 draws at 4x the best)
    seed_enough = 1

    def __init__(self, space, generator, budget):
        super().__init__(space, generator, budget)
        per_step = self.size + self.n_genetic + self.n_local
        # the members' sizes as subclasses (no attributes set after construction)
        ann_cls = type("_PortfolioAnnealing", (Annealing,), {"size": self.size, "restart_frac": self.restart_frac})
        gen_cls = type("_PortfolioGenetic", (Genetic,), {"size": self.n_genetic})
        # annealing cools over its own share of the evaluations
        self.ann = ann_cls(space, generator, max(1, budget * self.size // per_step))
        self.gen_opt = gen_cls(space, generator, budget)
        self.local: torch.Tensor | None = None
        self.local_s: torch.Tensor | None = None
        self.best_g: torch.Tensor | None = None
        self.best_s = math.inf
        self._parts = (0, 0, 0)

    def ask(self) -> torch.Tensor:
        if self._seeding():
            return self._seed_ask()
        # one neighbour call for all members (its cost is mostly per call, not per genome)
        child, mut = self.gen_opt._children()
        src = torch.cat([self.ann.pop, child[mut], self.local])
        nb = self.space.neighbours(src, self.gen)
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


# registered in their own modules (they import this one)
importlib.import_module("accelmap.dcp")
