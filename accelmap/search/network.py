"""Whole-network mapping: every unique layer searched once, in parallel, with lower bounds and
a run directory (summary JSON, Timeloop mapping YAML per layer, trial log, plots)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from accelmap.arch.architecture import Architecture
from accelmap.mapspace.bounds import lower_bound
from accelmap.mapspace.constraints import Constraints
from accelmap.model.objective import Objective
from accelmap.search.executor import Executor, make_executor
from accelmap.workload.network import Layer
from accelmap.workload.workload import problem_to_dict
from accelmap.yamlio import dump_yaml

DEFAULT_OPTIMIZER = "portfolio"  # also the CLI's default (kept literal there: it imports no torch)
DEFAULT_BUDGET = 100_000
DEFAULT_PATIENCE = 10_000


@dataclass(frozen=True)
class LayerOutcome:
    """What one layer's search produced (plain data: it crosses process boundaries)."""

    index: int
    name: str
    count: int
    dims: dict
    macs: int
    found: bool
    energy_pJ: float
    cycles: float
    edp: float
    utilization: float
    energy_by_level: dict
    bound_energy_pJ: float
    bound_cycles: float
    evaluations: int
    legal: int
    seconds: float
    mapping_yaml: str
    problem_yaml: str
    trace: list
    note: str = ""  # why no mapping was found

    @property
    def gap_energy(self) -> float:
        return self.energy_pJ / self.bound_energy_pJ

    @property
    def gap_cycles(self) -> float:
        return self.cycles / self.bound_cycles

    @property
    def gap_edp(self) -> float:
        return self.edp / (self.bound_energy_pJ * self.bound_cycles)


def map_layer(index: int, layer: Layer, arch: Architecture, constraints: Constraints, objective: Objective,
              optimizer: str, budget: int, seed: int, patience: int | None, device: str = "cpu",
              options: dict | None = None) -> LayerOutcome:
    import torch

    from accelmap.mapspace.space import MappingSpace
    from accelmap.search.loop import optimize

    w = layer.workload
    space = MappingSpace(w, arch, constraints, device=device)
    res = optimize(space, objective, optimizer, budget, seed=seed + index, patience=patience, options=options)
    found = res.costs is not None and bool(res.costs.valid[0])
    note = ""
    if not found:
        from accelmap.errors import AccelmapError

        try:  # name what makes the space illegal
            space.sample_legal(1, torch.Generator().manual_seed(seed), max_draws=200_000)
            note = "no legal mapping found within the budget"
        except AccelmapError as exc:
            note = str(exc)
    return layer_outcome(index, layer, arch, constraints, res, found, note,
                         res.mapping.to_yaml() if res.mapping else "", evaluations=res.evaluations,
                         legal=res.legal, seconds=res.seconds, trace=[list(t) for t in res.trace])


def layer_outcome(index: int, layer: Layer, arch: Architecture, constraints: Constraints, res, found: bool,
                  note: str, mapping_yaml: str, **spent) -> LayerOutcome:
    """The outcome of one layer's search ``res`` (a SearchResult); ``spent``: evaluations, legal,
    seconds and trace as the caller counts them."""
    w, c = layer.workload, res.costs
    b = lower_bound(w, arch, constraints)
    nan = float("nan")
    names = list(arch.level_names) + [arch.compute.name]
    return LayerOutcome(
        index=index, name=w.name, count=layer.count, dims=dict(zip(w.dims, w.bounds)), macs=w.macs, found=found,
        energy_pJ=float(c.energy[0]) if found else nan, cycles=float(c.cycles[0]) if found else nan,
        edp=float(c.edp[0]) if found else nan, utilization=float(c.utilization[0]) if found else nan,
        energy_by_level=dict(zip(names, c.energy_by_level[0].tolist())) if found else {},
        bound_energy_pJ=b.energy_pJ, bound_cycles=b.cycles, mapping_yaml=mapping_yaml,
        problem_yaml=dump_yaml(problem_to_dict(w)), note="" if found else note, **spent)


def map_layers(layers: list[Layer], arch: Architecture, constraints: Constraints, objective: Objective,
               optimizer: str = "annealing", budget: int = DEFAULT_BUDGET, seed: int = 0, workers: int = 1,
               patience: int | None = DEFAULT_PATIENCE,
               on_done: Callable[[LayerOutcome], None] | None = None,
               executor: Executor | None = None, device: str = "cpu",
               options: dict | None = None) -> list[LayerOutcome]:
    """Search every layer, on ``executor`` (default: a local pool of ``workers`` processes, or
    this process for one). Results arrive through ``on_done`` as layers finish; Ctrl-C cancels
    the rest and returns the layers that finished (the caller keeps them). Layer i is searched
    with seed ``seed + i`` wherever it runs, so the backend does not change the results.
    ``options`` are the optimizer's keyword arguments (e.g. DCP's predictor checkpoint)."""
    args = [(i, layer, arch, constraints, objective, optimizer, budget, seed, patience, device, options)
            for i, layer in enumerate(layers)]
    ex = executor or make_executor(min(workers, max(1, len(layers))))
    done = ex.run(map_layer, args, (lambda i, out: on_done(out)) if on_done else None)
    return [done[i] for i in sorted(done)]


def totals(outcomes: list[LayerOutcome]) -> dict:
    ok = [o for o in outcomes if o.found]
    e = sum(o.energy_pJ * o.count for o in ok)
    c = sum(o.cycles * o.count for o in ok)
    be = sum(o.bound_energy_pJ * o.count for o in ok)
    bc = sum(o.bound_cycles * o.count for o in ok)
    missing = [o for o in outcomes if not o.found]
    # Totals over the mapped layers only; "unmapped" names the rest so no reader takes the
    # sums for the whole network.
    return {"layers": len(outcomes), "mapped": len(ok), "macs": sum(o.macs * o.count for o in ok),
            "energy_pJ": e, "cycles": c, "edp": e * c, "gap_energy": e / be if be else None,
            "gap_cycles": c / bc if bc else None, "search_seconds": sum(o.seconds for o in outcomes),
            "partial": bool(missing), "unmapped": [o.name for o in missing],
            "unmapped_macs": sum(o.macs * o.count for o in missing)}


# ---- the whole job: what `accelmap map` and `accelmap dcp search` both call ------------------




