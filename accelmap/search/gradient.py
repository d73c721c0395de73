"""Gradient descent on the relaxed (continuous log-factor) cost model, rounded to legal mappings."""

from __future__ import annotations

import math

import torch

from accelmap.search.base import _Population, register


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
    needs_grad = True
    summary = "relaxed-model gradient descent on log tile factors, rounding, then parallel local search"
    size = 64
    steps = 150
    lr = 0.1
    penalty = 10.0

    def __init__(self, space, generator, budget, objective=None):
        super().__init__(space, generator, budget, objective)
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
