"""Co-design runs on disk and trade-off sweeps.

A run directory holds the design as Timeloop/Accelergy YAML (``design/``, readable by
``accelmap evaluate``), one mapping and problem YAML per layer, ``summary.json`` (settings,
hardware values, totals, per-layer costs, the convergence trace) and plots.

:func:`sweep` traces a front between two metrics twice: by epsilon-constraint (minimize the
first subject to a bound on the second, the bounds spread between the two single-objective
anchors) and by weighted sums of their logs, so the two can be compared by hypervolume.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from accelmap.arch.architecture import write_architecture
from accelmap.arch.space import HardwareSpace, read_hardware_space, resolve_space
from accelmap.codesign.base import get_codesigner
from accelmap.codesign.problem import TOTALS_KEY, Budgets, CoDesignProblem, CoDesignResult, Design
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import Constraints
from accelmap.mapspace.load import load_constraints
from accelmap.workload.load import load_network
from accelmap.workload.network import Layer
from accelmap.workload.workload import problem_to_dict
from accelmap.yamlio import dump_yaml

FRONT_METRICS = ("latency", "power", "area", "energy")


def design_files(problem: CoDesignProblem, d: Design, out: Path, name: str = "design") -> dict:
    """Write the architecture and every layer's legal mapping; return the per-layer records.

    A layer without a legal mapping on the design gets no mapping file: its record says
    ``found: false`` and carries no costs (the design's totals leave it out)."""
    arch = problem.architecture(d.values, name=name)
    arch_yaml, ert, art = write_architecture(arch, out / "design", name)
    (out / "mappings").mkdir(parents=True, exist_ok=True)
    (out / "problems").mkdir(parents=True, exist_ok=True)
    layers = []
    for li, layer in enumerate(problem.layers):
        w = layer.workload
        stem = f"{li:02d}_{w.name.replace('/', '_')}"
        (out / "problems" / f"{stem}.yaml").write_text(dump_yaml(problem_to_dict(w)))
        if d.valid and not d.valid[li]:
            layers.append({"name": w.name, "count": layer.count, "macs": w.macs, "found": False,
                           "note": "no legal mapping on this design", "problem_file": f"problems/{stem}.yaml"})
            continue
        batch = problem.spaces[li].decode(d.genomes[li][None])
        mapping = batch.to_mappings(w, arch)[0]
        (out / "mappings" / f"{stem}.yaml").write_text(mapping.to_yaml())
        layers.append({"name": w.name, "count": layer.count, "macs": w.macs, "found": True, "energy_pJ": d.energy[li],
                       "cycles": d.cycles[li], "mapping_file": f"mappings/{stem}.yaml",
                       "problem_file": f"problems/{stem}.yaml"})
    return {"architecture": str(arch_yaml.relative_to(out)), "ert": str(ert.relative_to(out)),
            "art": str(art.relative_to(out)), "layers": layers}


def write_codesign_run(out: Path, problem: CoDesignProblem, result: CoDesignResult, settings: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    d = result.best
    summary = {"kind": "codesign", "settings": settings, "method": result.method, "seconds": result.seconds,
               "designs_evaluated": result.designs_evaluated,
               "trace": [{"seconds": t, "score": s, "feasible": f} for t, s, f in result.trace]}
    if d is not None:
        summary.update(feasible=d.feasible, violation=d.violation, score=d.score, totals=d.totals,
                       hardware=dict(zip(problem.hw_space.names, d.values.tolist())),
                       base_hardware=dict(zip(problem.hw_space.names, problem.base_values().tolist())),
                       **design_files(problem, d, out))
        if d.unmapped:
            summary["unmapped"] = problem.unmapped_names(d)
        if not d.feasible:
            summary["infeasible"] = problem.describe_violation(d)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    try:
        plot_trace(result, out / "convergence.png")
    except Exception as exc:  # plots are a convenience; never lose a run over them
        (out / "plots_error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    return summary


def plot_trace(result: CoDesignResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [(t, s) for t, s, f in result.trace if f]
    if pts:
        ax.step([t for t, _ in pts], [s for _, s in pts], where="post", marker="o")
    ax.set_xlabel("seconds")
    ax.set_ylabel("best feasible score (log objective)")
    ax.set_title(f"co-design convergence ({result.method})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class CoDesignInputs:
    """What a co-design run reads: the network's unique layers, the hardware space, constraints."""

    network: str
    layers: tuple[Layer, ...]
    space: HardwareSpace
    constraints: Constraints

    def problem(self, objective: str = "latency", budgets: Budgets | None = None) -> CoDesignProblem:
        return CoDesignProblem(list(self.layers), self.space, self.constraints, objective, budgets or Budgets())


def load_inputs(network: str, arch_space: str = "eyeriss_edge", constraints: str | None = None,
                on_warning: Callable[[str], None] | None = None) -> CoDesignInputs:
    """``network``: zoo name or file; ``arch_space``: built-in space name or YAML; ``constraints``:
    as ``--constraints`` (None: the base preset's dataflow constraints, ``none``: none)."""
    space = read_hardware_space(resolve_space(arch_space))
    net = load_network(network, on_warning=on_warning)
    cons = load_constraints(constraints, space.base.name)
    return CoDesignInputs(net.name, tuple(net.unique_layers()), space, cons)


def codesign(network: str, arch_space: str = "eyeriss_edge", *, constraints: str | None = None,
             objective: str = "latency", budgets: Budgets | None = None, method: str = "gradient",
             seconds: float = 120.0, designs: int | None = None, seed: int = 0,
             on_improve: Callable | None = None) -> tuple[CoDesignProblem, CoDesignResult]:
    """Co-design ``network``'s hardware (within ``arch_space``) and every layer's mapping.
    Options are checked before any input is read; see :func:`run` for the search itself."""
    get_codesigner(method)
    if seconds <= 0:
        raise AccelmapError(f"seconds must be positive, got {seconds}", field="--seconds")
    if designs is not None and designs <= 0:
        raise AccelmapError(f"designs must be positive, got {designs}", field="--designs")
    problem = load_inputs(network, arch_space, constraints).problem(objective, budgets)
    return problem, run(problem, method, seconds, seed, on_improve, designs)


def run(problem: CoDesignProblem, method: str, seconds: float, seed: int,
        on_improve: Callable | None = None, designs: int | None = None, initial: tuple = ()) -> CoDesignResult:
    return get_codesigner(method)(problem, seconds, seed, on_improve, designs, initial).run()


def _point(d: Design | None, names: tuple[str, str]) -> tuple[float, float]:
    if d is None or not d.feasible:
        return (math.inf, math.inf)
    return tuple(d.totals[TOTALS_KEY[n]] for n in names)


def _with_budget(b: Budgets, name: str, value: float) -> Budgets:
    key = {"area": "area_mm2", "power": "power_mw", "latency": "latency_cycles", "energy": "energy_pj"}[name]
    old = getattr(b, key)
    return replace(b, **{key: value if old is None else min(old, value)})


def sweep(make_problem: Callable[[str, Budgets], CoDesignProblem], names: tuple[str, str], budgets: Budgets,
          points: int, method: str, seconds: float, seed: int,
          on_point: Callable[[str, int, Design | None], None] | None = None, designs: int | None = None) -> dict:
    """Epsilon-constraint and weighted-sum fronts of ``names`` = (first, second), each from
    ``points`` co-design runs of ``seconds``. The two anchors (each metric alone) are shared;
    every later run of either sweep is warm-started from the designs its sweep found so far
    (continuation along the front), so tight bounds start from a feasible point."""
    from accelmap.codesign.pareto import hypervolume_2d, missed_by, non_dominated, reference_point

    m1, m2 = names
    runs: dict[str, list] = {"epsilon": [], "weighted": []}

    def go(kind, i, objective, b):
        initial = tuple(r["design"] for r in runs[kind] if r["design"] is not None)
        res = run(make_problem(objective, b), method, seconds, seed + i, designs=designs, initial=initial)
        runs[kind].append({"objective": objective, "budgets": b.__dict__, "design": res.best,
                           "point": _point(res.best, names)})
        if on_point:
            on_point(kind, i, res.best)
        if res.interrupted:
            raise KeyboardInterrupt

    try:
        go("epsilon", 0, m1, budgets)  # anchor: the first metric alone
        go("epsilon", 1, m2, budgets)  # anchor: the second metric alone
        runs["weighted"] = [runs["epsilon"][0], runs["epsilon"][1]]
        hi = runs["epsilon"][0]["point"][1]
        lo = runs["epsilon"][1]["point"][1]
        if math.isfinite(hi) and math.isfinite(lo) and hi > lo:
            for i in range(1, points - 1):  # bounds on the second metric, geometric between anchors
                eps = lo * (hi / lo) ** (i / (points - 1))
                go("epsilon", i + 1, m1, _with_budget(budgets, m2, eps))
        for i in range(1, points - 1):
            w = i / (points - 1)
            go("weighted", i + 1, f"{1 - w:.4f}*{m1}+{w:.4f}*{m2}", budgets)
        interrupted = False
    except KeyboardInterrupt:  # keep the points that finished
        interrupted = True
    eps_pts = [r["point"] for r in runs["epsilon"]]
    ws_pts = [r["point"] for r in runs["weighted"]]
    finite = [p for p in eps_pts + ws_pts if all(math.isfinite(x) for x in p)]
    ref = reference_point(finite) if finite else (math.inf, math.inf)
    out = {"metrics": list(names), "reference": list(ref), "epsilon": [], "weighted": [], "complete": not interrupted}
    for kind, pts in (("epsilon", eps_pts), ("weighted", ws_pts)):
        out[f"hypervolume_{kind}"] = hypervolume_2d(pts, ref) if finite else 0.0
        nd = non_dominated(pts) if pts else []
        for r, on in zip(runs[kind], nd):
            out[kind].append({"objective": r["objective"], "point": list(r["point"]), "on_front": bool(on),
                              "budgets": {k: v for k, v in r["budgets"].items() if v is not None}})
    missed = missed_by(eps_pts, ws_pts)
    out["missed_by_weighted"] = [list(p) for p, m in zip(eps_pts, missed) if m]
    out["designs"] = runs
    return out


def write_sweep(out: Path, problem: CoDesignProblem, front: dict) -> None:
    """summary (fronts, hypervolumes), the front plot, and each front design's files."""
    from accelmap.codesign.pareto import plot_fronts

    out.mkdir(parents=True, exist_ok=True)
    runs = front.pop("designs")
    for kind, rs in runs.items():
        for i, r in enumerate(rs):
            if r["design"] is not None and r["design"].feasible:
                design_files(problem, r["design"], out / kind / f"{i:02d}", name=f"{kind}_{i:02d}")
    (out / "front.json").write_text(json.dumps(front, indent=1, default=float))
    eps = [p["point"] for p in front["epsilon"]]
    ws = [p["point"] for p in front["weighted"]]
    if any(all(math.isfinite(x) for x in p) for p in eps + ws):
        plot_fronts(torch.tensor(eps).numpy(), torch.tensor(ws).numpy(), tuple(front["metrics"]), out / "front.png",
                    title="epsilon-constraint vs weighted-sum")
