"""The map command's run: check every input, search every layer, write the run directory (summary, mappings, plots)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from accelmap.arch.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.mapspace.bounds import LOWER_BOUND_NOTE
from accelmap.mapspace.constraints import Constraints
from accelmap.model.objective import Objective
from accelmap.options import check_device, require_positive
from accelmap.search.compile import compile_search, needs_compile
from accelmap.search.executor import Executor, PoolExecutor, can_fork, check_ray, make_executor
from accelmap.search.network import (
    DEFAULT_BUDGET,
    DEFAULT_OPTIMIZER,
    DEFAULT_PATIENCE,
    LayerOutcome,
    map_layers,
    totals,
)
from accelmap.workload.network import Layer


def write_run(out: Path, outcomes: list[LayerOutcome], settings: dict, complete: bool,
              plots_on: Executor | None = None) -> None:
    """summary.json, mappings/ and problems/ (Timeloop YAML, readable by accelmap evaluate),
    trials.jsonl, and the plots, drawn on ``plots_on`` (default this process; a pool draws them
    side by side, each worker importing matplotlib at once), after every other file is written."""
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
        names = list(MAP_PLOTS)
        pngs = (plots_on or Executor()).run(_plot, [(name, outcomes) for name in names])
        for i, png in pngs.items():
            if png is not None:
                (out / names[i]).write_bytes(png)
    except Exception as exc:  # plots are a convenience; never lose a run over them
        (out / "plots_error.txt").write_text(f"{type(exc).__name__}: {exc}\n")


MAP_PLOTS = {"energy_by_level.png": "energy_by_level_png", "convergence.png": "convergence_png"}  # file: drawer


def _plot(name: str, outcomes: list[LayerOutcome]) -> bytes | None:
    # matplotlib is imported here, in whichever process draws, never by the one that only writes
    from accelmap.runs import plots

    return getattr(plots, MAP_PLOTS[name])(outcomes)


def default_run_dir(network: str, arch: str) -> Path:
    return Path("runs") / f"{network}_{arch}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"


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
    imperfect: bool = False  # also search imperfect factors (ends that need not divide)


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
             device: str = "cpu", out: str | None = None, imperfect: bool = False,
             on_warning: Callable[[str], None] | None = None) -> MapPlan:
    """Load and check everything a mapping job needs (network, architecture, constraints,
    objective, optimizer, output directory) before any search starts: a bad option fails here,
    in seconds, never after the search. Arguments are as on ``accelmap map``; ``patience`` None
    or 0 uses the whole budget. ``imperfect``: each layer is searched with perfect factors
    first, then in the imperfect space seeded with that result, and keeps the better (see
    :func:`map_layer_imperfect`)."""
    from accelmap.arch.load import load_architecture
    from accelmap.mapspace.load import load_constraints
    from accelmap.runs.rundir import prepare_run_dir
    from accelmap.search.base import get_optimizer
    from accelmap.workload.load import load_network

    require_positive(budget, "--budget", "a positive number of evaluations")
    require_positive(workers, "--workers", "at least 1")
    if patience is not None and patience < 0:
        raise AccelmapError(f"patience must be 0 (off) or positive, got {patience}", field="--patience")
    get_optimizer(optimizer)
    dev = check_device(device)
    if dev != "cpu" and ray:
        raise AccelmapError("--device cuda runs the layers in this process; it cannot be combined with --ray",
                            field="--device")
    if ray:
        check_ray()  # before the run directory is made: a mistake leaves no empty folder behind
    obj = Objective.parse(objective, list(require))
    a = load_architecture(arch, ert, art)
    net = load_network(network, on_warning=on_warning)
    layers = tuple(net.unique_layers())
    cons = load_constraints(constraints, arch)
    for layer in layers:  # with --imperfect fixed factors need not divide a bound: residual ends cover it
        cons.check(layer.workload, a, divisible=not imperfect)
    run = prepare_run_dir(out, default_run_dir(net.name, a.name))
    is_file = arch.endswith((".yaml", ".yml"))
    settings = {"network": net.name, "arch": a.name, "constraints": cons.source,
                "objective": obj.name, "require": list(require), "optimizer": optimizer,
                "options": dict(options or {}), "budget": budget, "patience": patience, "seed": seed,
                "workers": workers, "ray": ray, "device": dev, "unique_layers": len(layers), "imperfect": imperfect,
                # the files themselves, so a run on a user's architecture can be re-evaluated later
                "arch_file": str(Path(arch).resolve()) if is_file else None,
                "ert": str(Path(ert).resolve()) if ert else None, "art": str(Path(art).resolve()) if art else None}
    return MapPlan(net.name, layers, a, cons, obj, optimizer, dict(options or {}), budget, patience or None, seed,
                   workers, ray, dev, run, settings, imperfect)


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
    if needs_compile(plan.device, in_process(plan)):
        compile_search(in_process(plan))  # once, before the workers start: they load it, not compile it
    ex = executor or plan_executor(plan)
    t0 = time.perf_counter()
    startup = time.time() - started
    with ex:
        if plan.imperfect:
            args = [(i, layer, plan.arch, plan.constraints, plan.objective, plan.optimizer, plan.budget, plan.seed,
                     plan.patience, plan.device, plan.options) for i, layer in enumerate(plan.layers)]
            done = ex.run(map_layer_imperfect, args, (lambda i, out: on_done(out)) if on_done else None)
            outcomes = [done[i] for i in sorted(done)]
        else:
            outcomes = map_layers(list(plan.layers), plan.arch, plan.constraints, plan.objective, plan.optimizer,
                                  plan.budget, plan.seed, min(plan.workers, len(plan.layers)), plan.patience,
                                  on_done=on_done, executor=ex, device=plan.device, options=plan.options)
        wall = time.perf_counter() - t0  # the search: the backend's start-up and shutdown left out
    complete = len(outcomes) == len(plan.layers)
    # Where the search ran on a local pool, the cores are free again: two forked processes draw
    # the two plots side by side (a fork inherits every import but matplotlib's, which each does
    # at once). After Ctrl-C, or where forking is not safe, this process draws them.
    local = isinstance(ex, PoolExecutor) and complete and can_fork()
    write_run(plan.run_dir, outcomes, dict(plan.settings, wall_seconds=wall, startup_seconds=startup), complete,
              plots_on=PoolExecutor(len(MAP_PLOTS)) if local else None)
    return MapResult(outcomes, totals(outcomes), complete, wall, plan.run_dir, startup)


def map_network(network: str, arch: str = "eyeriss_like", **kwargs) -> MapResult:
    """The best mapping of every unique layer of ``network`` on ``arch`` (see :func:`plan_map`
    for the arguments), with the run directory written: ``accelmap map`` in one call."""
    return run_map(plan_map(network, arch, **kwargs))


# ---- --imperfect: the perfect search, then the imperfect one seeded with its result ---------------


def map_layer_imperfect(index: int, layer: Layer, arch: Architecture, constraints: Constraints,
                        objective: Objective, optimizer: str, budget: int, seed: int, patience: int | None,
                        device: str = "cpu", options: dict | None = None,
                        perfect: LayerOutcome | None = None) -> LayerOutcome:
    """One layer with imperfect factors, never worse than without: the perfect search exactly
    as ``accelmap map`` runs it (same budget, same seed), then the same search in the imperfect
    space (a superset) whose samples start with the perfect result, over the whole budget (no
    patience stop), and the better of the two by the objective. Evaluations, legal points and seconds count both searches; the trace
    runs on from the perfect search's. A layer without a perfect mapping (or whose fixed
    factors do not divide) is searched in the imperfect space alone. ``perfect``: that layer's
    perfect outcome when the caller has it (same arguments), instead of searching it again."""
    import torch

    from accelmap.mapping.mapping import MappingBatch, parse_mapping
    from accelmap.mapspace.space import MappingSpace
    from accelmap.search.loop import optimize
    from accelmap.search.network import layer_outcome, map_layer

    w = layer.workload
    try:
        perfect = perfect or map_layer(index, layer, arch, constraints, objective, optimizer, budget, seed, patience, device,
                            options)
    except AccelmapError:
        pass  # no perfect space (fixed factors that do not divide a bound): the imperfect one alone
    seeds = None
    if perfect is not None and perfect.found:
        m = parse_mapping(perfect.mapping_yaml, arch.level_names)
        probe = MappingSpace(w, arch, constraints, imperfect=True)
        seeds = probe.encode(MappingBatch.from_mappings([m], w, arch))
    space = MappingSpace(w, arch, constraints, device=device, imperfect=True, seeds=seeds)
    # Seeded with the perfect result, the search starts from an incumbent that only a new basin
    # beats: a patience stop counted from it ended the search after its first 16-20k evaluations,
    # before it left the seed's basin. It spends its budget instead (vit_b16's q_proj on
    # simba_like, seeds 0-2: x1.000 each with patience 10,000; x0.982, x0.959, x0.984 without).
    res = optimize(space, objective, optimizer, budget, seed=seed + index, patience=None if seeds is not None else patience,
                   options=options)
    before = perfect.evaluations if perfect else 0
    trace = (perfect.trace if perfect else []) + [[ev + before, s, e] for ev, s, e in res.trace]
    spent = dict(evaluations=before + res.evaluations, legal=(perfect.legal if perfect else 0) + res.legal,
                 seconds=(perfect.seconds if perfect else 0.0) + res.seconds, trace=trace)
    found = res.costs is not None and bool(res.costs.valid[0])
    note = ""
    if perfect is not None and perfect.found:
        s_perfect = float(objective.score(space.evaluate(seeds))[0])
        if not (found and res.score < s_perfect):
            return replace(perfect, **spent)  # the imperfect search found nothing better
    if not found:
        if perfect is not None:
            # the perfect space's reason: residual mappings cost the model far more per mapping, so
            # the imperfect space's own draws are limited to what its search already spent
            note = (f"no legal mapping with imperfect factors in {res.evaluations:,} evaluations, and with "
                    f"perfect factors: {perfect.note}")
            return replace(perfect, note=note, **spent)
        note = "no legal mapping found within the budget"
        try:  # name what makes the space illegal
            space.sample_legal(1, torch.Generator().manual_seed(seed), max_draws=max(1024, budget))
        except AccelmapError as exc:
            note = str(exc)
    return layer_outcome(index, layer, arch, constraints, res, found, note,
                         res.mapping.to_yaml() if found else "", **spent)
