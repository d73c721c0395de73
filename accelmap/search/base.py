"""Mapping optimizers behind one ask/tell interface, registered by name.

``ask()`` returns a batch of genomes to evaluate; ``tell(genomes, scores)`` reports their scores
(lower is better, +inf for illegal). :func:`accelmap.search.loop.optimize` drives any of them with a
budget, a seed, a progress bar and a trial log; an optimizer never evaluates anything itself.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from accelmap.mapspace import moves
from accelmap.mapspace.space import MappingSpace
from accelmap.model.objective import Objective
from accelmap.registry import Registry

OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer", "--optimizer")  # filled by accelmap.search
register = OPTIMIZERS.register
get_optimizer = OPTIMIZERS.get


class Optimizer:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # whether ask/tell use autograd (gradient descent on relaxed mappings); the others run under
    # torch.inference_mode, which skips autograd's bookkeeping on every small tensor operation
    needs_grad: ClassVar[bool] = False

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


def fits_mesh(space: MappingSpace, genomes: torch.Tensor) -> torch.Tensor:
    """[N] bool: the spatial factors on each mesh axis multiply to at most its fanout (the
    cost model's fanout check, read off the genome without evaluating it)."""
    lay = space.layout
    fac, _, axis, _ = lay.split(genomes)
    ok = torch.ones(len(genomes), dtype=torch.bool)
    for f, li in enumerate(space.fan_levels):
        val = fac[:, :, lay.L + f]
        for a, cap in enumerate(space.arch.fanout(li)):
            ok &= torch.where(axis[:, f] == a, val, torch.ones_like(val)).prod(1) <= cap
    return ok


def outward_sample(space: MappingSpace, n: int, generator: torch.Generator, depth: list | None = None) -> torch.Tensor:
    """n genomes like :meth:`MappingSpace.sample`, each dim's factorization the outermost of k
    rows drawn from its table (k = 1, 2, 4 or 8 per genome): uniform draws put most of a dim's
    factors in the inner levels, whose buffers then overflow (random architectures with 4- to
    32-word buffers: 0.1-0.5% of uniform draws legal). ``depth``: :func:`factor_depths`."""
    depth = depth or factor_depths(space)
    g = space.sample(n, generator)
    fac, _, axis, _ = space.layout.split(g)
    k = 2 ** torch.randint(0, 4, (n,), generator=generator)
    drawn = torch.arange(8)[None] < k[:, None]  # [n, 8]
    if moves.use():  # the same draws, the picks compiled
        cand = torch.stack([torch.randint(len(t), (n, 8), generator=generator) for t in space.tables])
        moves._outward(fac.numpy(), space._table_cat.numpy(), space._table_off.numpy(), torch.cat(depth).numpy(),
                       cand.numpy(), drawn.numpy())
        return _finish_outward(space, g, fac, axis)
    for d, table in enumerate(space.tables):
        cand = torch.randint(len(table), (n, 8), generator=generator)
        deep = torch.where(drawn, depth[d][cand], torch.full(cand.shape, math.inf, dtype=torch.float64))
        fac[:, d] = table[cand.gather(1, deep.argmin(1, keepdim=True)).squeeze(1)]
    return _finish_outward(space, g, fac, axis)


def _finish_outward(space: MappingSpace, g: torch.Tensor, fac: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    space._repair_axes(fac, axis)
    if space.seeds is not None:  # the space's seeds stay first, as sample() returns them
        k = min(len(g), len(space.seeds))
        g[:k] = space.seeds[:k]
    return g


def factor_depths(space: MappingSpace) -> list[torch.Tensor]:
    """Per dim, [rows of its table]: sum over slots of log(factor) x the slot's level (spatial
    slots half a level below their fan level): low for factorizations whose factors sit outside."""
    lay = space.layout
    level = torch.tensor([float(li) for li in range(lay.L)] + [li + 0.5 for li in space.fan_levels], dtype=torch.float64)
    return [(torch.log(t.double()) * level[None]).sum(1) for t in space.tables]


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

