"""The one optimize() loop: any registered optimizer, a budget, a seed, a trial log."""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from accelmap.mapping.mapping import Mapping
from accelmap.mapspace.space import MappingSpace
from accelmap.model.cost_model import Costs
from accelmap.model.objective import Objective
from accelmap.search.base import get_optimizer

MAX_IDLE_ASKS = 8


@dataclass(frozen=True)
class SearchResult:
    """The best mapping found and how the search went.

    trace: (evaluations, best score, best EDP) after every ask/tell step (in an imperfect space
    the screen's estimates; ``score`` and ``costs`` are exact).
    """

    optimizer: str
    objective: str
    mapping: Mapping | None
    genome: torch.Tensor | None
    costs: Costs | None  # batch of one, with the per-level breakdown
    score: float
    evaluations: int
    legal: int
    seconds: float
    trace: tuple[tuple[int, float, float], ...] = field(repr=False, default=())


def optimize(space: MappingSpace, objective: Objective | str = "edp", optimizer: str = "annealing",
             budget: int = 100_000, seconds: float | None = None, seed: int = 0,
             patience: int | None = None, progress: Callable[[int, int], None] | None = None,
             options: dict | None = None, verify: int = 64) -> SearchResult:
    """Search ``space`` for the mapping minimising ``objective``.

    ``budget`` caps model evaluations, ``seconds`` wall time, ``patience`` the legal evaluations
    without any improvement of the best (Timeloop's victory condition), whichever comes first.
    The same seed gives the same result: all randomness comes from one generator.
    ``options`` are keyword arguments of the optimizer's constructor (e.g. DCP's ``checkpoint``).

    In an imperfect space the search ranks with the fast estimate (``MappingSpace.screen``:
    the exact residual model traces each mapping in Python, about 10^4 times slower), keeps the
    ``verify`` best distinct genomes it met, evaluates them exactly at the end and reports the
    best by the exact costs; ``evaluations`` counts the search's, not these. A perfect space is
    searched with the exact model throughout.
    """
    obj = Objective.parse(objective) if isinstance(objective, str) else objective
    if budget <= 0:
        from accelmap.errors import AccelmapError

        raise AccelmapError(f"budget must be a positive number of evaluations, got {budget}", field="--budget")
    gen = torch.Generator().manual_seed(seed)
    cls = get_optimizer(optimizer)
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [k for k in (options or {}) if k not in accepted or k == "objective"]
    if unknown:
        from accelmap.errors import AccelmapError

        raise AccelmapError(f"optimizer '{optimizer}' takes no option {', '.join(map(repr, unknown))}; its options: "
                            f"{[k for k in accepted if k not in ('self', 'space', 'generator', 'budget', 'objective')] or 'none'}",
                            field="options")
    opt = cls(space, gen, budget, objective=obj, **(options or {}))
    space.model  # noqa: B018 - built here, not in inference mode: later differentiable searches reuse it
    with torch.inference_mode(not cls.needs_grad):
        return _run(space, obj, opt, budget, seconds, patience, progress, verify, optimizer)


def _run(space: MappingSpace, obj: Objective, opt, budget: int, seconds: float | None, patience: int | None,
         progress: Callable[[int, int], None] | None, verify: int, name: str) -> SearchResult:
    t0 = time.perf_counter()
    evals, legal = 0, 0
    best_s, best_g, best_edp = math.inf, None, math.inf
    trace = []
    # patience counts legal evaluations since the batch that improved the best, as Timeloop's
    # victory condition counts valid mappings: on a space where most neighbours are illegal
    # (random architectures, 35-50%) counting every evaluation stopped the search after a few
    # steps of real progress
    last_gain = 0
    idle = 0  # consecutive empty asks
    kept_g, kept_s = None, None  # the best distinct genomes met (imperfect spaces: verified at the end)
    while evals < budget and not opt.finished:
        if seconds is not None and time.perf_counter() - t0 > seconds:
            break
        if patience is not None and legal - last_gain >= patience and math.isfinite(best_s):
            break
        g = opt.ask()
        if len(g) == 0:
            # An optimizer that proposes nothing several times running has nothing left to
            # propose, whether or not it set `finished` (this loop used to spin forever then).
            idle += 1
            if idle >= MAX_IDLE_ASKS:
                break
            continue
        idle = 0
        g = g[: budget - evals]
        costs = space.screen(g, invalid_costs=False)  # (scored +inf: their costs are not needed)
        s = obj.score(costs)
        opt.tell(g, s)
        if space.imperfect:
            kept_g, kept_s = _keep_best(kept_g, kept_s, g, s, verify)
        evals += len(g)
        legal += int(costs.valid.sum())
        i = int(torch.argmin(s))
        if float(s[i]) < best_s - 1e-12:
            best_s, best_g, best_edp = float(s[i]), g[i].clone(), float(costs.edp[i])
            last_gain = legal  # legal already counts this batch
        trace.append((evals, best_s, best_edp))
        if progress:
            progress(evals, budget)
    mapping = costs_best = None
    if kept_g is not None and math.isfinite(best_s):
        exact = obj.score(space.evaluate(kept_g))
        i = int(torch.argmin(exact))
        best_s, best_g = float(exact[i]), kept_g[i].clone()
        if not math.isfinite(best_s):
            best_g = None  # (cannot happen: the screen's validity is exact)
    if best_g is not None:
        with torch.inference_mode(False):  # plain tensors for the caller (inference ones refuse in-place edits)
            best_g = best_g.clone()
            batch = space.decode(best_g[None])
            costs_best = space.model(batch, detail=True)
        mapping = batch.to_mappings(space.workload, space.arch)[0]
    return SearchResult(name, obj.name, mapping, best_g, costs_best, best_s, evals, legal,
                        time.perf_counter() - t0, tuple(trace))


def _keep_best(kept_g: torch.Tensor | None, kept_s: torch.Tensor | None, g: torch.Tensor, s: torch.Tensor,
               k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best distinct legal genomes [<= k, G] and their scores among kept and new ones."""
    ok = torch.isfinite(s)
    g, s = g[ok], s[ok]
    if kept_g is not None:
        g, s = torch.cat([kept_g, g]), torch.cat([kept_s, s])
    if len(g) == 0:
        return kept_g, kept_s
    g, inv = torch.unique(g, dim=0, return_inverse=True)
    s = torch.full((len(g),), math.inf, dtype=s.dtype).scatter_reduce(0, inv, s, "amin")
    top = torch.argsort(s)[:k]
    return g[top], s[top]
