"""Dataflow Code Propagation (Xu et al., 2024) as a registered mapping optimizer.

Predictor calls are free; true-model evaluations are what a search spends. One search:

1. screen: a pool of random mappings, legality checked, ranked by the predictor;
2. propagate: Adam on the dataflow codes of the best ``starts`` through the predictor (each
   dim's split of its log bound over the free slots is a softmax, so decoded factor products
   stay exact; loop orders, axes and bypass stay the seed's, a small enumerated candidate set);
3. decode each code to the nearest legal mapping (:meth:`MappingSpace.from_code`), check legality,
   rank by the predictor and send the best ``first`` to the true model;
4. refine: neighbours of the best verified mappings, ranked by the predictor, the best of them
   verified, until the verification budget (``verify`` true evaluations, 200 by default, the
   method's and the benchmark's figure) is spent; then the search is finished.
5. polish (only when asked, ``polish`` > 0): plain local search with the true model from the
   best verified mappings, counted apart from verification.

The search's ``budget`` caps both: verification spends ``min(verify, budget)`` and polishing
``min(polish, budget - verified)``, so ``accelmap map --optimizer dcp`` (budget 100,000) stops
after 200 verified mappings, and ``--budget 50`` after 50.

Legality checks (capacity and fanout, which the space's rules alone do not settle) use the
model's validity mask only and are counted separately from cost evaluations
(``legality_checks``). Candidates already sent to the true model, or repeated within a batch,
are dropped before any of that by exact genome keys (a seen-set), not by sorting the batch.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from accelmap.arch.hardware import Hardware
from accelmap.errors import AccelmapError
from accelmap.predictor.codes import CodeLayout, dataflow_code, hardware_code, layer_code
from accelmap.search.base import Optimizer, register

# predictors loaded in this process, by resolved checkpoint path: a worker process that maps
# many layers loads its predictor once
_CACHE: dict[str, object] = {}


def predictor_for(checkpoint: str | Path | None = None):
    """The predictor at ``checkpoint`` (None: the packaged one), loaded once per process."""
    from accelmap.predictor.model import CostPredictor, default_checkpoint

    path = Path(checkpoint).resolve() if checkpoint else default_checkpoint()
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = CostPredictor.load(path)
    return _CACHE[key]


def row_keys(genomes: torch.Tensor) -> list[bytes]:
    """One exact, hashable key per row of an integer batch [N, G] (its bytes)."""
    a = np.ascontiguousarray(genomes.numpy())
    if a.shape[1] == 0:
        return [b""] * len(a)
    return a.view(np.dtype((np.void, a.shape[1] * a.itemsize))).ravel().tolist()


def _adam_step(x: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, lr: float,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """One Adam step (Kingma & Ba; torch.optim.Adam's defaults) on ``x`` in place, with first
    and second moments ``m``, ``v`` (same shape) updated in place; ``t`` counts from 1.
    Written out because torch.optim's constructor imports torch._dynamo (seconds per process)."""
    b1, b2 = betas
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (v.sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
    x.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise AccelmapError(f"dcp option {name} must be an integer >= {low}, got {value!r}", field=name)
    return value


@register
class DCP(Optimizer):
    name = "dcp"
    needs_grad = True
    summary = ("dataflow code propagation: gradient descent on codes through a learned cost predictor, "
               "then at most 200 true evaluations")
    pool = 16384
    starts = 128
    steps = 40
    lr = 0.1
    first = 80  # verified after propagation
    rounds = 40  # verified per refinement round
    refine_pool = 2048
    refine_from = 8  # verified mappings whose neighbours a refinement round screens
    walk_keep = 256  # predictor-only local search before propagation: the points it keeps,
    walk_rounds = 2  # its rounds,
    walk_width = 8  # neighbours per kept point per round (plus as many two-move ones / 2)
    per_group = 2  # first verification: at most this many per spatial unrolling before the rest
    polish_batch = 256  # true evaluations per polishing round

    def __init__(self, space, generator, budget, objective=None, checkpoint: str | Path | None = None,
                 verify: int = 200, polish: int = 0):
        """``checkpoint``: the predictor (None: the packaged one); ``verify``: true evaluations
        of predictor-ranked candidates; ``polish``: true evaluations of local search after that
        (0: none). Both are capped by ``budget``."""
        super().__init__(space, generator, budget, objective)
        self.verify_budget = min(_count(verify, "verify", 1), budget)
        self.polish_budget = min(_count(polish, "polish", 0), budget - self.verify_budget)
        self.model = predictor_for(checkpoint)
        self.layout: CodeLayout = self.model.layout
        self.layout.check(space, getattr(self.model, "source", "<checkpoint>"))
        self.lc = layer_code(space.workload, self.layout)
        self.hc = hardware_code(Hardware.from_arch(space.arch))
        bad = self.model.check_hardware(self.hc)
        if bad:
            warnings.warn(f"{space.arch.name}: hardware code entries {bad} lie outside the predictor's training "
                          f"ranges; predictions there are extrapolation (consider accelmap dcp finetune)",
                          stacklevel=2)
        # The layer and hardware codes are the same for every row of this search: fold them and the
        # input standardization into the first linear layer once (its input is then the dataflow
        # code alone), instead of concatenating and standardizing [N, C] inputs at every call.
        with torch.no_grad():
            first = self.model.net[0]
            c = self.layout.layer_size + self.layout.hardware_size
            mean, std = self.model.mean, self.model.std
            const = (torch.cat([self.lc, self.hc]) - mean[:c]) / std[:c]
            self._w1 = (first.weight[:, c:] / std[c:]).contiguous()  # [H, C_m]
            self._b1 = first.bias + first.weight[:, :c] @ const - self._w1 @ mean[c:]  # [H]
        self.legality_checks = 0
        self.predictor_calls = 0
        self.verified_evaluations = 0
        self.polish_evaluations = 0
        self.verified: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.stage = 0
        self.phase = "verify"  # what the batch last asked for spends
        self.seen: set[bytes] = set()  # keys of every genome sent to the true model

    def counts(self) -> dict:
        return {"verified": self.verified_evaluations, "polish": self.polish_evaluations,
                "predictor_calls": self.predictor_calls, "legality_checks": self.legality_checks}

    # ---- helpers -------------------------------------------------------------------------------------
    def _weights(self) -> tuple[float, float]:
        obj = self.objective
        if obj is None:
            return 1.0, 1.0
        terms = obj.terms[:1] if obj.lexicographic else obj.terms
        we = sum(w * {"energy": 1, "edp": 1, "power": 1}.get(m, 0) for m, w in terms)
        wc = sum(w * {"cycles": 1, "latency": 1, "edp": 1, "power": -1}.get(m, 0) for m, w in terms)
        return (we, wc) if (we, wc) != (0, 0) else (1.0, 1.0)

    def _model(self, dataflow: torch.Tensor) -> torch.Tensor:
        """The predictor on this search's layer and hardware: dataflow codes [N, C_m] -> [N, 2]
        (the same function as ``self.model(self.lc, self.hc, dataflow)``)."""
        h = torch.addmm(self._b1, dataflow, self._w1.T)
        for m in self.model.net[1:]:
            h = m(h)
        return h

    def _predict(self, genomes: torch.Tensor) -> torch.Tensor:
        """[N] predicted objective (log) of genomes."""
        we, wc = self._weights()
        out = []
        with torch.no_grad():
            for g in genomes.split(16384):
                y = self._model(dataflow_code(self.space, g, self.layout))
                out.append(wc * y[:, 0] + we * y[:, 1])
        self.predictor_calls += len(genomes)
        return torch.cat(out).double() if out else torch.empty(0, dtype=torch.float64)

    def _legal(self, genomes: torch.Tensor) -> torch.Tensor:
        self.legality_checks += len(genomes)
        return self.space.reasons(genomes) == 0

    def _unseen(self, genomes: torch.Tensor) -> tuple[torch.Tensor, list[bytes]]:
        """The rows never sent to the true model, each once, in their first order, with their keys."""
        keys = row_keys(genomes)
        batch: set[bytes] = set()
        idx = []
        for i, k in enumerate(keys):
            if k not in self.seen and k not in batch:
                batch.add(k)
                idx.append(i)
        return genomes[idx], [keys[i] for i in idx]

    def _take(self, genomes: torch.Tensor, keys: list[bytes], scores: torch.Tensor, k: int,
              per_group: int = 0) -> torch.Tensor:
        """The k best-scored of unseen, distinct ``genomes`` (marked seen). With ``per_group`` >
        0, at most that many per spatial unrolling come first, so that a predictor mistaken about
        one region of the space (likeliest on unseen hardware) does not spend the whole batch there."""
        order = torch.argsort(scores).tolist()
        if per_group:
            L = self.space.layout.L
            spatial = row_keys(self.space.layout.split(genomes)[0][:, :, L:].flatten(1))
            count: dict[bytes, int] = {}
            first, rest = [], []
            for i in order:
                count[spatial[i]] = count.get(spatial[i], 0) + 1
                (first if count[spatial[i]] <= per_group else rest).append(i)
            order = first + rest
        pick = order[:k]
        self.seen.update(keys[i] for i in pick)
        return genomes[pick]

    def _none(self) -> torch.Tensor:
        return torch.empty(0, self.space.layout.size, dtype=torch.int64)

    def _done(self) -> torch.Tensor:
        self.finished = True
        return self._none()

    # ---- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> torch.Tensor:
        left = self.verify_budget - self.verified_evaluations
        if left > 0:
            self.phase = "verify"
            if self.stage == 0:
                self.stage = 1
                out = self._propagate(min(self.first, left))
            else:
                out = self._refine(min(self.rounds, left))
            if len(out):
                return out
            self.verify_budget = self.verified_evaluations  # nothing new to verify: on to polishing
        left = self.polish_budget - self.polish_evaluations
        if left > 0:
            self.phase = "polish"
            out = self._polish(min(self.polish_batch, left))
            if len(out):
                return out
        return self._done()

    def tell(self, genomes, scores) -> None:
        self.verified.append((genomes, scores))
        if self.phase == "verify":
            self.verified_evaluations += len(genomes)
        else:
            self.polish_evaluations += len(genomes)
        # finished as soon as the budgets are spent: no further ask, no further screening
        if (self.verified_evaluations >= self.verify_budget and self.polish_evaluations >= self.polish_budget):
            self.finished = True

    def _propagate(self, k: int) -> torch.Tensor:
        sp = self.space
        g = sp.sample(self.pool, self.gen)
        # half the pool with its meshes refilled (twice): random factorizations seldom use the
        # whole PE array, and a pool without such mappings cannot offer them to the predictor
        g[len(g) // 2:] = sp.refill_meshes(g[len(g) // 2:], self.gen)
        g = g[self._legal(g)]
        if not len(g):
            g, keys = self._unseen(sp.sample(self.pool, self.gen)[:k])  # nothing legal: let the true model say why
            self.seen.update(keys)
            return g
        seeds = self._walk(g, self._predict(g))[: self.starts]
        lay = sp.layout
        fac, order, axis, keep = lay.split(seeds)
        fixed_log, rest, logits = sp.log_split(seeds)
        m, v = torch.zeros_like(logits), torch.zeros_like(logits)
        base_code = dataflow_code(sp, seeds, self.layout)
        we, wc = self._weights()
        logb2 = torch.log(torch.tensor(sp.workload.bounds, dtype=torch.float64).clamp(min=2))
        CD = len(self.layout.dims)
        idx = torch.tensor([self.layout.dims.index(d) for d in sp.workload.dims])
        # the codes decoded later: every (steps // 6)-th along the trajectory, the last first
        every = max(1, self.steps // 6)
        keep_at = set(range(self.steps - 1, -1, -every))
        trail = []
        for t in range(self.steps):
            logits.requires_grad_(True)
            logf = sp.log_factors(fixed_log, rest, logits)
            sh = (logf / logb2[None, :, None]).float()  # [n, D, S] the code's share block
            block = torch.zeros(len(seeds), CD, lay.S, dtype=torch.float32)
            block = block.index_copy(1, idx, sh)
            code = torch.cat([block.flatten(1), base_code[:, CD * lay.S:]], 1)
            y = self._model(code)
            loss = (wc * y[:, 0] + we * y[:, 1]).sum()
            # the gradient of the logits only: the predictor's own weights need none
            (grad,) = torch.autograd.grad(loss, [logits])
            logits = logits.detach()
            _adam_step(logits, grad, m, v, t + 1, self.lr)
            self.predictor_calls += len(seeds)
            if t in keep_at:
                trail.append(logf.detach())
        # decode the codes along the trajectory (later ones first) to the nearest factorizations
        cands = [seeds]
        for logf in trail[::-1]:
            c = sp.to_code(seeds)
            c[:, : lay.D * lay.S] = (logf / logb2[None, :, None]).flatten(1)
            rf, _, _, _ = lay.split(sp.from_code(c))
            cands.append(torch.cat([rf.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1))
        c, keys = self._unseen(torch.cat(cands))
        ok = self._legal(c)
        c, keys = c[ok], [kk for kk, o in zip(keys, ok.tolist()) if o]
        return self._take(c, keys, self._predict(c), k, self.per_group)

    def _walk(self, g: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Local search on the predictor alone (free): the ``walk_keep`` best of legal ``g``
        [N, G] by predicted ``scores`` [N], improved for ``walk_rounds`` rounds by their legal
        neighbours; returns them best first."""
        top, s = self._distinct(g, scores, self.walk_keep)
        for _ in range(self.walk_rounds):
            nb = self.space.neighbours(top.repeat(self.walk_width, 1), self.gen)
            nb = torch.cat([nb, self.space.neighbours(nb[: len(nb) // 2], self.gen)])
            nb = nb[self._legal(nb)]
            top, s = self._distinct(torch.cat([top, nb]), torch.cat([s, self._predict(nb)]), self.walk_keep)
        return top

    @staticmethod
    def _distinct(g: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k best-scored distinct rows of g [N, G] and their scores, best first."""
        order = torch.argsort(scores).tolist()
        keys = row_keys(g)
        seen: set[bytes] = set()
        pick = []
        for i in order:
            if keys[i] not in seen:
                seen.add(keys[i])
                pick.append(i)
                if len(pick) == k:
                    break
        return g[pick], scores[pick]

    def _best_verified(self, n: int) -> torch.Tensor | None:
        g = torch.cat([x for x, _ in self.verified])
        s = torch.cat([y for _, y in self.verified])
        ok = torch.isfinite(s)
        if not ok.any():
            return None
        return g[ok][torch.argsort(s[ok])[:n]]

    def _refine(self, k: int) -> torch.Tensor:
        best = self._best_verified(self.refine_from)
        if best is None:
            return self._none()
        nb = self.space.neighbours(best.repeat(self.refine_pool // len(best), 1), self.gen)
        # a second move widens the neighbourhood
        nb = torch.cat([nb, self.space.neighbours(nb[: len(nb) // 2], self.gen)])
        nb, keys = self._unseen(nb)
        if not len(nb):
            return nb
        ok = self._legal(nb)
        nb, keys = nb[ok], [kk for kk, o in zip(keys, ok.tolist()) if o]
        if not len(nb):
            return nb
        return self._take(nb, keys, self._predict(nb), k)

    def _polish(self, k: int) -> torch.Tensor:
        """Neighbours (one move) of the best verified mappings, unseen ones, no predictor: the
        true model judges them all."""
        best = self._best_verified(self.refine_from)
        if best is None:
            return self._none()
        nb, keys = self._unseen(self.space.neighbours(best.repeat(max(1, 2 * k // len(best)), 1), self.gen))
        nb, keys = nb[:k], keys[:k]
        self.seen.update(keys)
        return nb


def geomean(xs) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan
