"""Whole-network mapping: every unique layer searched once, in parallel, with lower bounds and
a run directory (summary JSON, Timeloop mapping YAML per layer, trial log, plots)."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from accelmap.architecture import Architecture
from accelmap.constraints import Constraints
from accelmap.errors import AccelmapError
from accelmap.executor import Executor, make_executor
from accelmap.network import Layer
from accelmap.objective import Objective
from accelmap.options import check_device, require_positive
from accelmap.workload import Workload, problem_to_dict
from accelmap.yamlio import dump_yaml

DEFAULT_OPTIMIZER = "portfolio"  # also the CLI's default (kept literal there: it imports no torch)
DEFAULT_BUDGET = 100_000
DEFAULT_PATIENCE = 10_000


LOWER_BOUND_NOTE = ("cycles >= MACs / MAC units. energy >= MACs x E_mac + for each tensor, every word some MAC "
                    "uses once through DRAM (a read, or a write for outputs) and written once into every level "
                    "the constraints force to keep it (per-word energy = per-block energy / block size).")


@dataclass(frozen=True)
class Bound:
    """Lower bounds of one layer (see :func:`lower_bound`)."""

    energy_pJ: float
    cycles: float

    @property
    def edp(self) -> float:
        return self.energy_pJ * self.cycles


def lower_bound(workload: Workload, arch: Architecture, constraints: Constraints, box: bool = False) -> Bound:
    """cycles >= MACs / MAC units. energy >= MACs x E_mac + for each tensor, every word some MAC
    uses once through DRAM (a read, or a write for outputs) and written once into every level
    the constraints force to keep it (per-word energy = per-block energy / block size).
    ``box``: count each tensor's whole bounding box instead (stride holes included): not a
    bound for strided layers, kept as the DCP predictor's fixed normalization."""
    cycles = math.ceil(workload.macs / arch.compute.instances)
    energy = workload.macs * arch.compute.energy
    dram = arch.levels[0]
    for t in workload.tensors:
        size = workload.tensor_size(t.name) if box else workload.touched_size(t.name)
        e_dram = (dram.write_energy if t.read_write else dram.read_energy) / dram.block_size
        energy += size * e_dram
        for lv in arch.levels[1:]:
            if t.name in constraints.at(lv.name).keep:
                energy += size * lv.write_energy / lv.block_size
    return Bound(energy, float(cycles))


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

    from accelmap.search import optimize
    from accelmap.space import MappingSpace

    w = layer.workload
    space = MappingSpace(w, arch, constraints, device=device)
    res = optimize(space, objective, optimizer, budget, seed=seed + index, patience=patience, options=options)
    b = lower_bound(w, arch, constraints)
    found = res.costs is not None and bool(res.costs.valid[0])
    c = res.costs
    note = ""
    if not found:
        from accelmap.errors import AccelmapError

        try:  # name what makes the space illegal
            space.sample_legal(1, torch.Generator().manual_seed(seed), max_draws=200_000)
            note = "no legal mapping found within the budget"
        except AccelmapError as exc:
            note = str(exc)
    nan = float("nan")
    names = list(arch.level_names) + [arch.compute.name]
    return LayerOutcome(
        index=index, name=w.name, count=layer.count, dims=dict(zip(w.dims, w.bounds)), macs=w.macs, found=found,
        energy_pJ=float(c.energy[0]) if found else nan, cycles=float(c.cycles[0]) if found else nan,
        edp=float(c.edp[0]) if found else nan, utilization=float(c.utilization[0]) if found else nan,
        energy_by_level=dict(zip(names, c.energy_by_level[0].tolist())) if found else {},
        bound_energy_pJ=b.energy_pJ, bound_cycles=b.cycles, evaluations=res.evaluations, legal=res.legal,
        seconds=res.seconds, mapping_yaml=res.mapping.to_yaml() if res.mapping else "",
        problem_yaml=dump_yaml(problem_to_dict(w)), trace=[list(t) for t in res.trace], note=note)


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


def write_run(out: Path, outcomes: list[LayerOutcome], settings: dict, complete: bool) -> None:
    """summary.json, mappings/ and problems/ (Timeloop YAML, readable by accelmap evaluate),
    trials.jsonl, and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "mappings").mkdir(exist_ok=True)
    (out / "problems").mkdir(exist_ok=True)
    layers = []
    with open(out / "trials.jsonl", "w") as log:
        for o in outcomes:
            stem = f"{o.index:02d}_{o.name.replace('/', '_')}"
            if o.mapping_yaml:
                (out / "mappings" / f"{stem}.yaml").write_text(o.mapping_yaml)
            (out / "problems" / f"{stem}.yaml").write_text(o.problem_yaml)
            for ev, score, edp in o.trace:
                log.write(json.dumps({"layer": o.name, "evaluations": ev, "best_score": score, "best_edp": edp}) + "\n")
            d = asdict(o)
            for k in ("mapping_yaml", "problem_yaml", "trace"):
                d.pop(k)
            d.update(gap_energy=o.gap_energy, gap_cycles=o.gap_cycles, gap_edp=o.gap_edp,
                     mapping_file=f"mappings/{stem}.yaml", problem_file=f"problems/{stem}.yaml")
            layers.append(d)
    summary = {"kind": "map", "settings": settings, "complete": complete, "totals": totals(outcomes), "layers": layers,
               "lower_bound": LOWER_BOUND_NOTE}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    try:
        from accelmap.plots import plot_convergence, plot_energy_by_level

        plot_energy_by_level(outcomes, out / "energy_by_level.png")
        plot_convergence(outcomes, out / "convergence.png")
    except Exception as exc:  # plots are a convenience; never lose a run over them
        (out / "plots_error.txt").write_text(f"{type(exc).__name__}: {exc}\n")


def default_run_dir(network: str, arch: str) -> Path:
    return Path("runs") / f"{network}_{arch}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"


# ---- the whole job: what `accelmap map` and `accelmap dcp search` both call ------------------

@dataclass(frozen=True)
class MapPlan:
    """One network-mapping job with every input loaded and checked (see :func:`plan_map`)."""

    network: str
    layers: tuple[Layer, ...]  # the unique layers, in network order
    arch: Architecture
    constraints: Constraints
    objective: Objective
    optimizer: str
    options: dict  # the optimizer's keyword arguments
    budget: int
    patience: int | None
    seed: int
    workers: int
    ray: str | None
    device: str
    run_dir: Path
    settings: dict  # what summary.json records of the request


@dataclass(frozen=True)
class MapResult:
    outcomes: list[LayerOutcome]  # the layers that finished, in network order
    totals: dict
    complete: bool  # False after Ctrl-C: the finished layers were still written
    wall_seconds: float  # the search alone: process start-up, compile and writing left out
    run_dir: Path
    startup_seconds: float = 0.0  # from ``started`` (see run_map) to the search's start

    @property
    def unmapped(self) -> list[LayerOutcome]:
        return [o for o in self.outcomes if not o.found]


def plan_map(network: str, arch: str = "eyeriss_like", *, ert: str | None = None, art: str | None = None,
             constraints: str | None = None, objective: str = "edp", require: tuple[str, ...] = (),
             optimizer: str = DEFAULT_OPTIMIZER, options: dict | None = None, budget: int = DEFAULT_BUDGET,
             patience: int | None = DEFAULT_PATIENCE, seed: int = 0, workers: int = 2, ray: str | None = None,
             device: str = "cpu", out: str | None = None,
             on_warning: Callable[[str], None] | None = None) -> MapPlan:
    """Load and check everything a mapping job needs (network, architecture, constraints,
    objective, optimizer, output directory) before any search starts: a bad option fails here,
    in seconds, never after the search. Arguments are as on ``accelmap map``; ``patience`` None
    or 0 uses the whole budget."""
    from accelmap.architecture import load_architecture
    from accelmap.constraints import load_constraints
    from accelmap.network import load_network
    from accelmap.optimizers import get_optimizer
    from accelmap.rundir import prepare_run_dir

    require_positive(budget, "--budget", "a positive number of evaluations")
    require_positive(workers, "--workers", "at least 1")
    if patience is not None and patience < 0:
        raise AccelmapError(f"patience must be 0 (off) or positive, got {patience}", field="--patience")
    get_optimizer(optimizer)
    dev = check_device(device)
    if dev != "cpu" and ray:
        raise AccelmapError("--device cuda runs the layers in this process; it cannot be combined with --ray",
                            field="--device")
    obj = Objective.parse(objective, list(require))
    a = load_architecture(arch, ert, art)
    net = load_network(network, on_warning=on_warning)
    layers = tuple(net.unique_layers())
    cons = load_constraints(constraints, arch)
    for layer in layers:
        cons.check(layer.workload, a)
    run = prepare_run_dir(out, default_run_dir(net.name, a.name))
    is_file = arch.endswith((".yaml", ".yml"))
    settings = {"network": net.name, "arch": a.name, "constraints": cons.source,
                "objective": obj.name, "require": list(require), "optimizer": optimizer,
                "options": dict(options or {}), "budget": budget, "patience": patience, "seed": seed,
                "workers": workers, "ray": ray, "device": dev, "unique_layers": len(layers),
                # the files themselves, so a run on a user's architecture can be re-evaluated later
                "arch_file": str(Path(arch).resolve()) if is_file else None,
                "ert": str(Path(ert).resolve()) if ert else None, "art": str(Path(art).resolve()) if art else None}
    return MapPlan(net.name, layers, a, cons, obj, optimizer, dict(options or {}), budget, patience or None, seed,
                   workers, ray, dev, run, settings)


def kernel_needs_compile(device: str = "cpu", parallel: bool = False) -> bool:
    """True when searching on ``device`` would first compile the CPU kernel (once after install):
    the serial one that single-threaded worker processes use, with ``parallel`` (a search in
    this process, on all its cores) the multi-threaded one too."""
    if device != "cpu":
        return False
    from accelmap import kernel

    return not kernel.is_compiled(parallel)


def compile_kernel(parallel: bool = False) -> float:
    """Compile the CPU kernel into numba's cache now (see cost_model.compile_kernel_in_child);
    returns the seconds it took."""
    from accelmap.cost_model import compile_kernel_in_child

    t0 = time.perf_counter()
    compile_kernel_in_child(parallel)
    return time.perf_counter() - t0


def in_process(plan: MapPlan) -> bool:
    """Whether the plan's layers are searched in this process (one worker, or one layer), where
    the kernel runs multi-threaded, rather than in single-threaded worker processes."""
    return plan.ray is None and min(plan.workers, len(plan.layers)) == 1


def plan_executor(plan: MapPlan) -> Executor:
    """Where the plan's layers run: a process pool of ``workers``, Ray with ``ray``, or this
    process (one worker, one layer, or CUDA, whose one GPU is shared by one process)."""
    return make_executor(1 if plan.device != "cpu" else min(plan.workers, len(plan.layers)), plan.ray)


def run_map(plan: MapPlan, on_done: Callable[[LayerOutcome], None] | None = None,
            executor: Executor | None = None, started: float | None = None) -> MapResult:
    """Search every unique layer of ``plan`` and write its run directory (also after Ctrl-C,
    with the layers that finished). ``executor`` defaults to the plan's (a process pool of
    ``workers``, Ray with ``ray``, this process on CUDA). ``started``: when the job began
    (``time.time()``; the CLI passes its process start, default now): the time from it to the
    search is reported as start-up, apart from the search time."""
    started = time.time() if started is None else started
    if kernel_needs_compile(plan.device, in_process(plan)):
        compile_kernel(in_process(plan))  # once, before the workers start: they load it, not compile it
    ex = executor or plan_executor(plan)
    t0 = time.perf_counter()
    startup = time.time() - started
    with ex:
        outcomes = map_layers(list(plan.layers), plan.arch, plan.constraints, plan.objective, plan.optimizer,
                              plan.budget, plan.seed, min(plan.workers, len(plan.layers)), plan.patience,
                              on_done=on_done, executor=ex, device=plan.device, options=plan.options)
        wall = time.perf_counter() - t0  # the search: the backend's start-up and shutdown left out
    complete = len(outcomes) == len(plan.layers)
    write_run(plan.run_dir, outcomes, dict(plan.settings, wall_seconds=wall, startup_seconds=startup), complete)
    return MapResult(outcomes, totals(outcomes), complete, wall, plan.run_dir, startup)


def map_network(network: str, arch: str = "eyeriss_like", **kwargs) -> MapResult:
    """The best mapping of every unique layer of ``network`` on ``arch`` (see :func:`plan_map`
    for the arguments), with the run directory written: ``accelmap map`` in one call."""
    return run_map(plan_map(network, arch, **kwargs))
