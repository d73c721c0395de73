"""Contract checks a third-party algorithm can reuse in its own tests.

Register a class, then call the check with a small problem; each raises AssertionError naming
the broken promise::

    from accelmap.search.base import OPTIMIZERS
    from accelmap.testing import check_optimizer

    with OPTIMIZERS.registered(MyOptimizer):
        check_optimizer("mine", space, budget=4000)

accelmap's own tests run the same checks over every registered optimizer, co-design method and
tuner.
"""

from __future__ import annotations

import math

from accelmap.codesign.base import get_codesigner
from accelmap.codesign.problem import CoDesignProblem, CoDesignResult
from accelmap.mapspace.space import MappingSpace
from accelmap.search.loop import SearchResult, optimize
from accelmap.tune.measurer import MeasureResult, TuneTask
from accelmap.tune.tuners import get_tuner
from accelmap.tune.validity import RuleValidity


def check_optimizer(name: str, space: MappingSpace, budget: int = 6000, seed: int = 3) -> SearchResult:
    """The search respects the budget, is reproducible from its seed, and returns a legal
    mapping whose score is the log of its EDP (the objective used here)."""
    import torch

    a = optimize(space, "edp", name, budget, seed=seed)
    b = optimize(space, "edp", name, budget, seed=seed)
    assert a.evaluations <= budget, f"{name}: {a.evaluations} evaluations for a budget of {budget}"
    assert a.score == b.score and torch.equal(a.genome, b.genome), f"{name}: the same seed gave another result"
    assert a.costs is not None and bool(a.costs.valid[0]), f"{name}: no legal mapping returned"
    assert math.isclose(a.score, math.log(float(a.costs.edp[0])), rel_tol=1e-9), f"{name}: score is not log(EDP)"
    a.mapping.check(space.workload, space.arch)
    return a


def check_codesigner(method: str, problem: CoDesignProblem, designs: int, seed: int = 0,
                     slack: int = 0) -> CoDesignResult:
    """A design-bounded run ends by its budget (``slack``: designs a method may finish past it,
    e.g. the rest of a generation), records its improvements in time order, and reports network
    totals that a fresh cost model reproduces on the architecture it writes out."""
    from accelmap.arch.hardware import Hardware
    from accelmap.model.cost_model import CostModel

    res = get_codesigner(method)(problem, math.inf, seed, designs=designs).run()
    d = res.best
    assert d is not None, f"{method}: no design"
    assert designs <= res.designs_evaluated <= designs + slack, f"{method}: {res.designs_evaluated} designs"
    times = [t for t, _, _ in res.trace]
    assert times == sorted(times), f"{method}: trace out of time order"
    arch = problem.architecture(d.values)
    lat = en = 0.0
    for li, layer in enumerate(problem.layers):
        c = CostModel(layer.workload, arch)(problem.spaces[li].decode(d.genomes[li][None]))
        assert bool(c.valid[0]), f"{method}: layer {li}'s mapping is illegal on its hardware"
        lat += float(c.cycles[0]) * layer.count
        en += float(c.energy[0]) * layer.count
    assert math.isclose(lat, d.totals["latency_cycles"], rel_tol=1e-12), f"{method}: latency total"
    assert math.isclose(en, d.totals["energy_pJ"], rel_tol=1e-12), f"{method}: energy total"
    area = float(Hardware.from_arch(arch).total_area) / 1e6
    assert math.isclose(area, d.totals["area_mm2"], rel_tol=1e-9), f"{method}: area total"
    return res


def drive_tuner(name: str, task: TuneTask, results: list[MeasureResult], budget: int, batch: int,
                seed: int = 0) -> tuple[list[int], list[list[int]]]:
    """Run tuner ``name`` on ``task`` against precomputed ``results`` (one per point of the knob
    space, in enumeration order). Returns the measured indices in order, and per batch."""
    cls = get_tuner(name)
    validity = RuleValidity(task.space, task.arch) if cls.validity == "rules" else None
    t = cls(task.space, seed, batch, validity)
    seq: list[int] = []
    batches: list[list[int]] = []
    while len(seq) < budget:
        pts = t.next_batch(min(batch, budget - len(seq)))
        assert len(pts) <= min(batch, budget - len(seq)), f"{name}: a batch larger than asked"
        if not len(pts):
            break
        idx = task.space.indices(pts)
        seq += idx
        batches.append(idx)
        t.update(pts, [results[i] for i in idx])
    return seq, batches


def check_tuner(name: str, task: TuneTask, results: list[MeasureResult], budget: int = 150, batch: int = 32,
                deterministic_order: bool = False) -> list[int]:
    """Distinct points of the space, never re-proposed, within the budget, the same sequence for
    the same seed (and, unless ``deterministic_order``, another for another seed)."""
    seq, _ = drive_tuner(name, task, results, budget, batch)
    assert len(seq) == min(budget, task.space.size) and len(set(seq)) == len(seq), f"{name}: repeated points"
    assert all(0 <= i < task.space.size for i in seq), f"{name}: a point outside the space"
    assert drive_tuner(name, task, results, budget, batch)[0] == seq, f"{name}: the same seed gave another order"
    if not deterministic_order:
        assert drive_tuner(name, task, results, budget, batch, seed=1)[0] != seq, f"{name}: ignores its seed"
    return seq
