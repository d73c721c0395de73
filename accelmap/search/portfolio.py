"""The default search: islands of annealing chains, a genetic population and greedy local
walkers, asked as one batched step."""

from __future__ import annotations

import math

import torch

from accelmap.search.annealing import Annealing
from accelmap.search import islands
from accelmap.search.base import _Population, factor_depths, fits_mesh, outward_sample, register
from accelmap.search.genetic import Genetic


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

    The islands are held as batched tensors (island x member x genome) and stepped together:
    the same search, draw for draw, as one object per island and member, at about half the
    per-step cost (each tensor operation costs mostly its dispatch at these sizes).
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
    t_start, t_end = Annealing.t_start, Annealing.t_end
    elite_frac, mutation_rate = Genetic.elite_frac, Genetic.mutation_rate

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
        k = self.islands
        self.a, self.g, self.w = self.size // k, self.n_genetic // k, self.n_local // k  # per island
        # each island's annealing cools over its share of the evaluations
        self.ann_budget = max(1, budget // k * self.a // (self.a + self.g + self.w))
        self.spent = 0  # evaluations of each island's annealing chains
        self._depth: list | None = None
        self._asked: torch.Tensor | None = None
        self._gen_order: torch.Tensor | None = None  # ask's ranking of each genetic population
        # per island i: annealing chains ann_g[i] [a, G] and their own best; a genetic population
        # gen_g[i] [g, G]; walkers loc_g[i] [w, G]; the island's best best_g[i] [G] (set by start)
        self.ann_g = self.ann_s = self.ann_best_g = self.ann_best_s = None
        self.gen_g = self.gen_s = self.loc_g = self.loc_s = self.best_g = self.best_s = None

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
        islands._jit()
        k, a, g, w = self.islands, self.a, self.g, self.w
        G = self.ann_g.shape[2]
        # crossover children of each island's better genetic half, some of them mutated: one
        # crossover and one neighbour call for all islands and members (their cost is mostly per call)
        half = max(2, g // 2)
        self._gen_order = torch.argsort(self.gen_s, dim=1)  # tell's elite too: the population is unchanged until then
        pick = torch.randint(0, half, (k, 2, g), generator=self.gen)  # ranks of both parents of each child
        pa, pb = torch.empty(k * g, G, dtype=torch.int64), torch.empty(k * g, G, dtype=torch.int64)
        islands._parents(self.gen_g.numpy(), self._gen_order.numpy(), pick.numpy(), pa.numpy(), pb.numpy())
        child = self.space.crossover(pa, pb, self.gen).reshape(k, g, G)
        mut = torch.rand(k, g, generator=self.gen) < self.mutation_rate
        # island by island: its chains, children, walkers; neighbours of all but the unmutated children
        out = torch.empty(k * (a + g + w), G, dtype=torch.int64)
        moved = torch.empty(len(out), dtype=torch.int64)
        m = islands._assemble(self.ann_g.numpy(), child.numpy(), self.loc_g.numpy(), mut.numpy(), out.numpy(),
                              moved.numpy())
        moved = moved[:m]
        out[moved] = self.space.neighbours(out[moved], self.gen)
        self._asked = out
        return out

    def start(self, pop: torch.Tensor, scores: torch.Tensor) -> None:
        """Deal the seeded points out by rank (island i: ranks i, i + k, ...), each island a mix:
        all its points are annealing chains, its best ``g`` the genetic population, its best
        every walker's start."""
        k, a, g, w = self.islands, self.a, self.g, self.w
        rows = torch.arange(k)
        mine = torch.argsort(scores)[: k * a].reshape(a, k).t()  # [k, a]
        self.ann_g, self.ann_s = pop[mine].clone(), scores[mine].clone()
        self.ann_best_g = torch.zeros_like(self.ann_g[:, 0])
        self.ann_best_s = torch.full((k,), math.inf, dtype=scores.dtype)  # set by the first step
        order = torch.argsort(self.ann_s, dim=1)
        self.gen_g, self.gen_s = self.ann_g[rows[:, None], order[:, :g]], self.ann_s.gather(1, order[:, :g])
        self.loc_g = self.ann_g[rows, order[:, 0]][:, None].repeat(1, w, 1)
        self.loc_s = self.ann_s[rows, order[:, 0]][:, None].repeat(1, w)
        self.best_s, i = self.ann_s.min(1)
        self.best_g = self.ann_g[rows, i]
        self.loc_g[:, ::2], self.loc_s[:, ::2] = self.best_g[:, None], self.best_s[:, None]

    def temperature(self) -> float:
        frac = min(1.0, self.spent / self.ann_budget)
        return self.t_start * (self.t_end / self.t_start) ** frac

    def _step(self, genomes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """What :meth:`tell` steps the islands with: None while seeding (the seeding takes the
        batch), else the asked genomes and their scores, the rows a budget cut left out at +inf."""
        if self._seeding():
            self._seed_tell(genomes, scores)
            if not self._seeding():
                self.start(self.pop, self.scores.double())
            return None
        n = len(scores)
        if n < len(self._asked):  # the last step, cut short by the budget: the rest count as illegal
            return self._asked, torch.cat([scores, torch.full((len(self._asked) - n,), math.inf, dtype=scores.dtype)])
        return genomes, scores

    def tell(self, genomes, scores) -> None:
        step = self._step(genomes, scores)
        if step is None:
            return
        genomes, scores = step
        k, a, g, w = self.islands, self.a, self.g, self.w
        G = genomes.shape[1]
        u = torch.rand(k, a, generator=self.gen, dtype=scores.dtype)
        scores, u = scores.double(), u.double()  # (searches score in float64 already)
        gk, sk = genomes.reshape(k, a + g + w, G).contiguous(), scores.reshape(k, a + g + w)  # island by island
        ga, gc, gl = (x.contiguous() for x in gk.split([a, g, w], 1))
        sa, sc, sl = (x.contiguous() for x in sk.split([a, g, w], 1))
        # annealing: Metropolis acceptance, then the worst chains restart from the best their
        # island's chains have met (rarely: restart_frac)
        self.spent += a
        p = torch.exp(-(sa - self.ann_s).clamp(min=0) / self.temperature())
        islands._accept(ga.numpy(), sa.numpy(), u.numpy(), p.numpy(), self.ann_g.numpy(), self.ann_s.numpy(),
                        self.ann_best_g.numpy(), self.ann_best_s.numpy())
        worst = torch.argsort(self.ann_s, dim=1, descending=True)[:, :int(a * self.restart_frac)].contiguous()
        # genetic: the elite and this step's children, the best g of them survive
        ne = max(1, int(self.elite_frac * g))
        cg, cs = torch.empty(k, ne + g, G, dtype=torch.int64), torch.empty(k, ne + g, dtype=torch.float64)
        islands._restart_elite(worst.numpy(), self.ann_g.numpy(), self.ann_s.numpy(), self.ann_best_g.numpy(),
                               self.ann_best_s.numpy(), self.gen_g.numpy(), self.gen_s.numpy(), self._gen_order.numpy(),
                               gc.numpy(), sc.numpy(), cg.numpy(), cs.numpy())
        keep = torch.argsort(cs, dim=1)[:, :g].contiguous()
        # then greedy walkers; a new island best restarts half the island's walkers there, and
        # replaces the island's genetic worst while it is better than the whole population
        islands._survive(cg.numpy(), cs.numpy(), keep.numpy(), self.gen_g.numpy(), self.gen_s.numpy(), gl.numpy(),
                         sl.numpy(), self.loc_g.numpy(), self.loc_s.numpy(), gk.numpy(), sk.numpy(),
                         self.best_g.numpy(), self.best_s.numpy())
