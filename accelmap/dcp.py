"""Dataflow Code Propagation (Xu et al., 2024) as a registered mapping optimizer.

Predictor calls are free; true-model evaluations are the budget. One search:

1. screen: a pool of random mappings, legality checked, ranked by the predictor;
2. propagate: Adam on the dataflow codes of the best ``starts`` through the predictor (each
   dim's split of its log bound over the free slots is a softmax, so decoded factor products
   stay exact; loop orders, axes and bypass stay the seed's, a small enumerated candidate set);
3. decode each code to the nearest legal mapping (:meth:`MappingSpace.from_code`), check legality,
   rank by the predictor and send the best ``first`` to the true model;
4. refine: neighbours of the best verified mappings, ranked by the predictor, the best of them
   verified, until the budget is spent.

Legality checks (capacity and fanout, which the space's rules alone do not settle) use the
model's validity mask only and are counted separately from cost evaluations
(``legality_checks``).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from accelmap.codes import CodeLayout, dataflow_code, hardware_code, layer_code
from accelmap.cost_model import Hardware
from accelmap.optimizers import Optimizer, register

_CACHE: dict[str, object] = {}


def predictor_for(path: str | None = None):
    """The predictor at ``path`` (default: $ACCELMAP_DCP_CHECKPOINT or the packaged one), cached."""
    from accelmap.predictor import CostPredictor, default_checkpoint

    p = str(path or os.environ.get("ACCELMAP_DCP_CHECKPOINT") or default_checkpoint())
    if p not in _CACHE:
        _CACHE[p] = CostPredictor.load(Path(p))
    return _CACHE[p]


@register
class DCP(Optimizer):
    name = "dcp"
    summary = "dataflow code propagation: gradient descent on codes through a learned cost predictor"
    pool = 32768
    starts = 128
    steps = 60
    lr = 0.1
    first = 80  # verified after propagation
    rounds = 40  # verified per refinement round
    refine_pool = 4096
    refine_from = 8  # verified mappings whose neighbours a refinement round screens
    per_group = 2  # first verification: at most this many per spatial unrolling before the rest

    def __init__(self, space, generator, budget):
        super().__init__(space, generator, budget)
        self.model = predictor_for()
        self.layout: CodeLayout = self.model.layout
        self.layout.check(space, getattr(self.model, "source", "<checkpoint>"))
        self.lc = layer_code(space.workload, self.layout)
        self.hc = hardware_code(Hardware.from_arch(space.arch))
        bad = self.model.check_hardware(self.hc)
        if bad:
            warnings.warn(f"{space.arch.name}: hardware code entries {bad} lie outside the predictor's training "
                          f"ranges; predictions there are extrapolation (consider accelmap dcp finetune)",
                          stacklevel=2)
        self.legality_checks = 0
        self.predictor_calls = 0
        self.best_g: torch.Tensor | None = None
        self.verified: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.stage = 0
        self.seen: set[tuple] = set()

    # ---- helpers -------------------------------------------------------------------------------------
    def _weights(self) -> tuple[float, float]:
        obj = getattr(self, "objective", None)
        if obj is None:
            return 1.0, 1.0
        terms = obj.terms[:1] if obj.lexicographic else obj.terms
        we = sum(w * {"energy": 1, "edp": 1, "power": 1}.get(m, 0) for m, w in terms)
        wc = sum(w * {"cycles": 1, "latency": 1, "edp": 1, "power": -1}.get(m, 0) for m, w in terms)
        return (we, wc) if (we, wc) != (0, 0) else (1.0, 1.0)

    def _predict(self, genomes: torch.Tensor) -> torch.Tensor:
        """[N] predicted objective (log) of genomes."""
        we, wc = self._weights()
        out = []
        with torch.no_grad():
            for g in genomes.split(16384):
                y = self.model(self.lc, self.hc, dataflow_code(self.space, g, self.layout))
                out.append(wc * y[:, 0] + we * y[:, 1])
        self.predictor_calls += len(genomes)
        return torch.cat(out).double() if out else torch.empty(0, dtype=torch.float64)

    def _legal(self, genomes: torch.Tensor) -> torch.Tensor:
        self.legality_checks += len(genomes)
        return self.space.evaluate(genomes).valid

    def _fresh(self, genomes: torch.Tensor, scores: torch.Tensor, k: int, per_group: int = 0) -> torch.Tensor:
        """The k best-predicted genomes not yet sent to the true model. With ``per_group`` > 0, at
        most that many per spatial unrolling come first, so that a predictor mistaken about one
        region of the space (likeliest on unseen hardware) does not spend the whole batch there."""
        order = torch.argsort(scores).tolist()
        if per_group:
            L = self.space.layout.L
            spatial = self.space.layout.split(genomes)[0][:, :, L:].flatten(1)
            count: dict[tuple, int] = {}
            first = []
            for i in order:
                key = tuple(spatial[i].tolist())
                count[key] = count.get(key, 0) + 1
                if count[key] <= per_group:
                    first.append(i)
            taken = set(first)
            order = first + [i for i in order if i not in taken]
        out = []
        for i in order:
            key = tuple(genomes[i].tolist())
            if key in self.seen:
                continue
            self.seen.add(key)
            out.append(genomes[i])
            if len(out) >= k:
                break
        return torch.stack(out) if out else genomes[:0]

    # ---- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> torch.Tensor:
        left = self.budget - sum(len(g) for g, _ in self.verified)
        if left <= 0:
            self.finished = True
            return torch.empty(0, self.space.layout.size, dtype=torch.int64)
        if self.stage == 0:
            self.stage = 1
            return self._propagate(min(self.first, left))
        return self._refine(min(self.rounds, left))

    def tell(self, genomes, scores) -> None:
        self.verified.append((genomes, scores))
        if not len(genomes):
            self.finished = True

    def _propagate(self, k: int) -> torch.Tensor:
        sp = self.space
        g = sp.sample(self.pool, self.gen)
        g = g[self._legal(g)]
        if not len(g):
            g = sp.sample(self.pool, self.gen)  # nothing legal in the pool: let the true model say why
            return g[:k]
        seeds = g[torch.argsort(self._predict(g))[: self.starts]]
        lay = sp.layout
        fac, order, axis, keep = lay.split(seeds)
        fixed_log, rest, logits = sp.log_split(seeds)
        logits.requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=self.lr)
        base_code = dataflow_code(sp, seeds, self.layout)
        we, wc = self._weights()
        logb2 = torch.log(torch.tensor(sp.workload.bounds, dtype=torch.float64).clamp(min=2))
        CD = len(self.layout.dims)
        idx = torch.tensor([self.layout.dims.index(d) for d in sp.workload.dims])
        trail = []
        for _ in range(self.steps):
            logf = sp.log_factors(fixed_log, rest, logits)
            sh = (logf / logb2[None, :, None]).float()  # [n, D, S] the code's share block
            block = torch.zeros(len(seeds), CD, lay.S, dtype=torch.float32)
            block = block.index_copy(1, idx, sh)
            code = torch.cat([block.flatten(1), base_code[:, CD * lay.S:]], 1)
            y = self.model(self.lc, self.hc, code)
            loss = (wc * y[:, 0] + we * y[:, 1]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.predictor_calls += len(seeds)
            trail.append(logf.detach())
        # decode the codes along the trajectory (later ones first) to the nearest factorizations
        cands = [seeds]
        for logf in trail[::-max(1, self.steps // 6)]:
            c = sp.to_code(seeds)
            c[:, : lay.D * lay.S] = (logf / logb2[None, :, None]).flatten(1)
            rf, _, _, _ = lay.split(sp.from_code(c))
            cands.append(torch.cat([rf.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1))
        c = torch.unique(torch.cat(cands), dim=0)
        c = c[self._legal(c)]
        return self._fresh(c, self._predict(c), k, self.per_group)

    def _refine(self, k: int) -> torch.Tensor:
        g = torch.cat([x for x, _ in self.verified])
        s = torch.cat([y for _, y in self.verified])
        ok = torch.isfinite(s)
        if not ok.any():
            self.finished = True
            return g[:0]
        best = g[ok][torch.argsort(s[ok])[: self.refine_from]]
        nb = self.space.neighbours(best.repeat(self.refine_pool // len(best), 1), self.gen)
        # a second move widens the neighbourhood
        nb = torch.cat([nb, self.space.neighbours(nb[: len(nb) // 2], self.gen)])
        nb = torch.unique(nb, dim=0)
        nb = nb[self._legal(nb)]
        if not len(nb):
            self.finished = True
            return nb
        out = self._fresh(nb, self._predict(nb), k)
        if not len(out):
            self.finished = True
        return out


def geomean(xs) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan
