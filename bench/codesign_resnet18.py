"""Co-design of ResNet-18 under an "edge" budget: the analytical method against baselines.

Edge budget: the area of the eyeriss_like preset (45 nm) as the area budget; the hardware space
is the built-in ``eyeriss_edge`` (PE array sides 4..32, every buffer's size), the preset's
dataflow constraints hold. Every run gets the same wall time (``--seconds``) on this machine.

1. genetic (DiGamma-style), random-hardware and Bayesian-optimization (optuna TPE, mapper
   inside) baselines: min latency s.t. area <= edge budget.
2. gradient (ours) on the same problem: its latency, and the time it needs to reach the genetic
   baseline's final score against the time the baseline needed for it.
3. gradient, constrained by the genetic design G (epsilon-constraint, one run each):
   min latency s.t. power <= P_G, area <= A_G;  min power s.t. latency <= L_G, area <= A_G;
   min area s.t. latency <= L_G, power <= P_G.  Ratios against G next to the paper's figures.
4. latency/power fronts (gradient): epsilon-constraint vs weighted-sum sweeps, hypervolumes.
5. every design is written out and re-evaluated from its files (accelmap evaluate's API).

    python bench/codesign_resnet18.py [--seconds 90] [--front-seconds 40] [--points 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.hardware import Hardware
from accelmap.arch.load import preset
from accelmap.arch.space import read_hardware_space, resolve_space
from accelmap.codesign.base import get_codesigner
from accelmap.codesign.problem import Budgets, CoDesignProblem
from accelmap.mapspace.constraints import read_constraints
from accelmap.model.evaluation import evaluate_files
from accelmap.runs.codesign import sweep, write_codesign_run, write_sweep
from accelmap.workload.zoo import get_network

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "codesign_resnet18.json"
RUNS = RESULTS / "codesign_resnet18"
PAPER = {"latency_x": 1.7, "power_saving": 0.375, "area_x": 3.0, "speedup": 6.2}


def reevaluate(run_dir: Path, summary: dict) -> dict:
    """Totals recomputed from the written architecture, problem and mapping files."""
    e = c = 0.0
    legal = True
    for layer in summary["layers"]:
        ev = evaluate_files(str(run_dir / summary["architecture"]), str(run_dir / layer["problem_file"]),
                            str(run_dir / layer["mapping_file"]), str(run_dir / summary["ert"]),
                            str(run_dir / summary["art"])).to_dict()
        legal &= bool(ev["valid"])
        e += ev["energy_pJ"] * layer["count"]
        c += ev["cycles"] * layer["count"]
    t = summary["totals"]
    return {"legal": legal, "latency_cycles": c, "energy_pJ": e,
            "max_rel_diff": max(abs(c / t["latency_cycles"] - 1), abs(e / t["energy_pJ"] - 1))}


def reach_time(trace, score: float) -> float:
    for t, s, feasible in trace:
        if feasible and s <= score + 1e-12:
            return t
    return math.inf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--front-seconds", type=float, default=40.0)
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-front", action="store_true")
    args = ap.parse_args()
    space = read_hardware_space(resolve_space("eyeriss_edge"))
    layers = list(get_network("resnet18").unique_layers())
    cons = read_constraints(preset_constraints("eyeriss_like"))
    edge_area = float(Hardware.from_arch(preset("eyeriss_like")).total_area) / 1e6
    edge = Budgets(area_mm2=edge_area)

    def problem(objective: str, budgets: Budgets) -> CoDesignProblem:
        return CoDesignProblem(layers, space, cons, objective, budgets)

    out: dict = {"settings": vars(args) | {"edge_area_mm2": edge_area, "space": "eyeriss_edge",
                                          "network": "resnet18"}, "runs": {}}
    designs = {}

    def go(key: str, method: str, objective: str, budgets: Budgets):
        p = problem(objective, budgets)
        t0 = time.perf_counter()
        res = get_codesigner(method)(p, args.seconds, args.seed).run()
        wall = time.perf_counter() - t0
        run_dir = RUNS / key
        summary = write_codesign_run(run_dir, p, res, {"method": method, "objective": objective,
                                                       "budgets": budgets.__dict__})
        d = res.best
        rec = {"method": method, "objective": objective, "budgets": {k: v for k, v in budgets.__dict__.items()
                                                                     if v is not None},
               "wall_seconds": wall, "designs_evaluated": res.designs_evaluated, "feasible": d.feasible,
               "score": d.score, "totals": d.totals, "hardware": dict(zip(space.names, d.values.tolist())),
               "trace": res.trace, "reevaluated": reevaluate(run_dir, summary)}
        out["runs"][key] = rec
        designs[key] = d
        t = d.totals
        print(f"{key:22s} {method:9s} latency {t['latency_cycles']:>12,.0f}  power {t['power_mW']:8.1f} mW  "
              f"area {t['area_mm2']:.3f} mm^2  feasible {d.feasible}  designs {res.designs_evaluated:,}  "
              f"{wall:.0f} s  re-eval diff {rec['reevaluated']['max_rel_diff']:.1e}", flush=True)
        return rec

    g = go("genetic", "genetic", "latency", edge)
    go("random", "random", "latency", edge)
    go("bayesian", "bayesian", "latency", edge)
    ours = go("gradient", "gradient", "latency", edge)
    tg = g["totals"]
    L, P, A = tg["latency_cycles"], tg["power_mW"], tg["area_mm2"]
    lat = go("gradient_latency_at_G", "gradient", "latency", Budgets(area_mm2=A, power_mw=P))
    pw = go("gradient_power_at_G", "gradient", "power", Budgets(area_mm2=A, latency_cycles=L))
    ar = go("gradient_area_at_G", "gradient", "area", Budgets(power_mw=P, latency_cycles=L))
    t_ga = g["trace"][-1][0]  # when the genetic baseline found its final design
    t_ours = reach_time(ours["trace"], g["score"])
    out["comparison"] = {
        "latency_x": L / lat["totals"]["latency_cycles"] if lat["feasible"] else None,
        "power_saving": 1 - pw["totals"]["power_mW"] / P if pw["feasible"] else None,
        "area_x": A / ar["totals"]["area_mm2"] if ar["feasible"] else None,
        "same_problem_latency_x": L / ours["totals"]["latency_cycles"],
        "genetic_seconds_to_final": t_ga, "gradient_seconds_to_genetic_final": t_ours,
        "speedup": t_ga / t_ours if t_ours > 0 else None,
        "wall_speedup": args.seconds / t_ours if t_ours > 0 else None, "paper": PAPER}
    c = out["comparison"]
    print("\nagainst the genetic design G (same wall time):")
    print(f"  lower latency at <= power and area : {c['latency_x']:.2f}x   (paper 1.7x)")
    print(f"  lower power at <= latency and area : {100 * c['power_saving']:.1f}%  (paper 37.5%)")
    print(f"  lower area at <= latency and power : {c['area_x']:.2f}x   (paper 3x)")
    print(f"  time to G's score: genetic {t_ga:.1f} s, gradient {t_ours:.1f} s -> {c['speedup']:.1f}x "
          f"(vs the whole {args.seconds:.0f} s: {c['wall_speedup']:.1f}x; paper 6.2x)")
    if not args.skip_front:
        t0 = time.perf_counter()
        front = sweep(problem, ("latency", "power"), edge, args.points, "gradient", args.front_seconds, args.seed)
        write_sweep(RUNS / "front_latency_power", problem("latency", edge), front)
        out["front"] = {k: v for k, v in front.items()} | {"seconds": time.perf_counter() - t0}
        print(f"\nlatency/power front: hypervolume epsilon-constraint {front['hypervolume_epsilon']:.4g}, "
              f"weighted sum {front['hypervolume_weighted']:.4g} (reference {front['reference']}); "
              f"{len(front['missed_by_weighted'])} epsilon point(s) the weighted sum misses")
    RESULTS.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
