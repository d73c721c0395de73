"""Hardware sweeps: N hardware points drawn from a :class:`~accelmap.arch.space.HardwareSpace`,
every unique layer mapped on each, network totals per point.

Points are drawn log-uniformly in the space's ranges and rounded as co-design rounds them
(PE sides to sizes that divide some layer bound), so a seed fixes them. Each (point, layer)
pair is one task for an :class:`~accelmap.search.executor.Executor` (process pool or Ray); layer i
is searched with seed ``seed + i`` on every point, so the backend does not change results.
Totals over the network weight each layer by its count: energy and latency (cycles, layers run
one after another) add up; EDP = energy x latency; area is the hardware's; power = energy /
latency x clock.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from accelmap.arch.architecture import Architecture, write_architecture
from accelmap.arch.space import HardwareSpace
from accelmap.mapspace.constraints import Constraints
from accelmap.model.objective import Objective
from accelmap.search.executor import Executor
from accelmap.search.network import DEFAULT_BUDGET, DEFAULT_PATIENCE, LayerOutcome, map_layer
from accelmap.workload.network import Layer

TOTAL_KEYS = ("energy_pJ", "cycles", "edp", "area_mm2", "power_mW")


@dataclass(frozen=True)
class SweepPoint:
    index: int
    values: dict  # parameter name -> value (rounded)
    arch: Architecture
    outcomes: tuple[LayerOutcome, ...]  # finished layers, in layer order

    def totals(self, n_layers: int) -> dict:
        ok = [o for o in self.outcomes if o.found]
        e = sum(o.energy_pJ * o.count for o in ok)
        c = sum(o.cycles * o.count for o in ok)
        complete = len(ok) == n_layers
        nan = float("nan")
        return {"energy_pJ": e if complete else nan, "cycles": c if complete else nan,
                "edp": e * c if complete else nan, "area_mm2": self.arch.area_um2 / 1e6,
                "power_mW": e / c * self.arch.clock_ghz if complete and c else nan,
                "mapped_layers": len(ok), "complete": complete}


@dataclass(frozen=True)
class SweepResult:
    space: HardwareSpace
    layers: tuple[Layer, ...]
    points: tuple[SweepPoint, ...]
    complete: bool  # every task finished (no Ctrl-C)


def sample_points(space: HardwareSpace, layers: list[Layer], constraints: Constraints, n: int,
                  seed: int) -> list[tuple[dict, Architecture]]:
    """n (values, architecture) pairs, log-uniform in the ranges, rounded like co-design."""
    from accelmap.codesign.problem import CoDesignProblem

    problem = CoDesignProblem(layers, space, constraints, "edp")
    vals = problem.sample_values(n, torch.Generator().manual_seed(seed))
    out = []
    for k in range(n):
        v = vals[k]
        out.append(({name: float(x) for name, x in zip(space.names, v.tolist())},
                    problem.architecture(v, name=f"{space.base.name}_p{k:02d}")))
    return out


def run_sweep(layers: list[Layer], space: HardwareSpace, constraints: Constraints, objective: Objective,
              points: int, executor: Executor, seed: int = 0, optimizer: str = "annealing",
              budget: int = DEFAULT_BUDGET, patience: int | None = DEFAULT_PATIENCE,
              on_done: Callable[[int, LayerOutcome], None] | None = None) -> SweepResult:
    """Map every layer on every sampled point; ``on_done(point, outcome)`` as tasks finish.
    Ctrl-C keeps the finished tasks (``complete`` is then False)."""
    sampled = sample_points(space, layers, constraints, points, seed)
    L = len(layers)
    tasks = [(i, layer, arch, constraints, objective, optimizer, budget, seed, patience)
             for _, arch in sampled for i, layer in enumerate(layers)]
    done = executor.run(map_layer, tasks, (lambda t, o: on_done(t // L, o)) if on_done else None)
    pts = []
    for k, (values, arch) in enumerate(sampled):
        outs = tuple(done[k * L + i] for i in range(L) if k * L + i in done)
        pts.append(SweepPoint(k, values, arch, outs))
    return SweepResult(space, tuple(layers), tuple(pts), len(done) == len(tasks))


def write_sweep_run(out: str | Path, result: SweepResult, settings: dict) -> dict:
    """summary.json, points.csv, scatter.png and each point's architecture (archs/pNN.yaml with
    its ERT/ART, usable as ``accelmap map --arch``)."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    n = len(result.layers)
    rows = []
    for p in result.points:
        paths = write_architecture(p.arch, d / "archs", f"p{p.index:02d}")
        t = p.totals(n)
        rows.append({"point": p.index, "values": p.values, **t, "arch": str(paths[0].relative_to(d)),
                     "layers": [{k: v for k, v in asdict(o).items() if k not in ("trace", "problem_yaml")}
                                for o in p.outcomes]})
    summary = {"kind": "sweep", "settings": settings, "complete": result.complete, "space": result.space.source,
               "parameters": result.space.names, "points": rows}
    (d / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    with open(d / "points.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point", *result.space.names, *TOTAL_KEYS, "mapped_layers"])
        for r in rows:
            w.writerow([r["point"], *(f"{r['values'][k]:g}" for k in result.space.names),
                        *(f"{r[k]:.6g}" for k in TOTAL_KEYS), r["mapped_layers"]])
    try:
        plot_sweep(rows, d / "scatter.png")
    except Exception as exc:  # a plot is a convenience; never lose a sweep over it
        (d / "plots_error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    return summary


def plot_sweep(rows: list[dict], path: Path) -> None:
    """Latency against energy, one dot per fully mapped point, coloured by area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["complete"] and math.isfinite(r["cycles"])]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    if ok:
        sc = ax.scatter([r["cycles"] for r in ok], [r["energy_pJ"] / 1e6 for r in ok],
                        c=[r["area_mm2"] for r in ok], cmap="viridis", s=36)
        fig.colorbar(sc, ax=ax, label="area (mm^2)")
        for r in ok:
            ax.annotate(str(r["point"]), (r["cycles"], r["energy_pJ"] / 1e6), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("network latency (cycles)")
    ax.set_ylabel("network energy (uJ)")
    ax.set_title(f"hardware sweep: {len(ok)} of {len(rows)} points fully mapped")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
