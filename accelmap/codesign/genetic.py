"""The DiGamma-style genetic co-design baseline: hardware and per-layer mappings evolved together."""

from __future__ import annotations

import torch

from accelmap.codesign.base import CoDesigner, register


@register
class GeneticCoDesign(CoDesigner):
    """DiGamma-style genetic co-design (Kao et al., 2022): a genome of hardware parameters plus
    one GAMMA mapping genome per layer; elitism, crossover of hardware genes and of each
    layer's tiling/order, mutation of hardware genes (log-normal) and of mappings (GAMMA's
    moves). Fitness is the same penalized network score as every method's (budget overshoots
    and unmapped layers penalized), evaluated for the whole population in one batched call
    per layer."""

    name = "genetic"
    summary = "DiGamma-style genetic algorithm over hardware genes + per-layer GAMMA mapping genomes"
    size = 100
    elite = 10
    hw_mutation = 0.2  # per hardware gene
    map_mutation = 0.5  # per layer genome

    def search(self) -> None:
        p = self.problem
        N, gen = self.size, self.gen
        pools = p.seed_pools(256, gen)
        lo, hi = torch.log(p.low), torch.log(p.high)
        hwv = torch.log(torch.cat([p.base_values()[None], p.sample_values(N - 1, gen)]))
        maps = [pool[torch.randint(len(pool), (N,), generator=gen)] for pool in pools]
        fit = self._fitness(hwv, maps)
        while fit is not None and not self.out_of_time():
            order = torch.argsort(fit)
            half = order[: N // 2]
            ia = half[torch.randint(len(half), (N,), generator=gen)]
            ib = half[torch.randint(len(half), (N,), generator=gen)]
            child = torch.where(torch.rand(N, len(lo), generator=gen) < 0.5, hwv[ia], hwv[ib])
            mut = torch.rand(N, len(lo), generator=gen) < self.hw_mutation
            step = torch.randn(N, len(lo), generator=gen, dtype=torch.float64) * 0.15 * (hi - lo)
            child = torch.where(mut, child + step, child).clamp(min=lo, max=hi)
            cmaps = []
            for li, sp in enumerate(p.spaces):
                c = sp.crossover(maps[li][ia], maps[li][ib], gen)
                m = torch.rand(N, generator=gen) < self.map_mutation
                if m.any():
                    c[m] = sp.neighbours(c[m], gen)
                cmaps.append(c)
            cfit = self._fitness(child, cmaps)
            if cfit is None:  # the deadline passed inside the generation
                return
            elite = order[: self.elite]
            allv = torch.cat([hwv[elite], child])
            allm = [torch.cat([m[elite], c]) for m, c in zip(maps, cmaps)]
            allf = torch.cat([fit[elite], cfit])
            keep = torch.argsort(allf)[:N]
            hwv, maps, fit = allv[keep], [m[keep] for m in allm], allf[keep]

    def _fitness(self, logv: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor | None:
        """Penalized scores [N] of a population (its best is offered); None when the deadline
        passes before every layer is evaluated."""
        p = self.problem
        values = p.round(torch.exp(logv))
        hw = p.hardware(values)
        N = len(values)
        e = torch.empty(N, len(p.layers), dtype=torch.float64)
        c = torch.empty_like(e)
        bad = torch.zeros(N, len(p.layers), dtype=torch.bool)
        for li, m in enumerate(maps):
            if self.past_deadline():
                return None
            cost = p.torch_models[li](p.spaces[li].decode(m), hw=hw)
            e[:, li], c[:, li], bad[:, li] = cost.energy, cost.cycles, ~cost.valid
        score, viol = p.scores(p.totals(values, e, c, bad))
        self.evaluated += N - 1  # offer() counts the one it is given
        # the population's best by the ranking every method shares: all layers mapped first
        n_bad = bad.sum(1).tolist()
        i = min(range(N), key=lambda j: (n_bad[j], float(viol[j]), float(score[j])))
        self.offer(p.make_design(values[i], [m[i] for m in maps], e[i].tolist(), c[i].tolist(), bad[i].tolist(),
                                 [m[i : i + 1] for m in maps]))
        return score
