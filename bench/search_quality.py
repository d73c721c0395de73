"""Search quality.

1. Near the optimum: on three small layers whose pruned space can be enumerated, the default
   search (the default optimizer, budget and patience) against the exhaustive optimum.
2. Optimizers at equal budgets: best EDP against evaluations for every registered optimizer
   (but exhaustive) on the resnet18 layers on eyeriss_like (preset constraints), relative to
   the best any of them found.

    python bench/search_quality.py [--budget 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.mapspace.constraints import Constraints, read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.search.base import OPTIMIZERS
from accelmap.search.loop import optimize
from accelmap.search.network import DEFAULT_BUDGET, DEFAULT_OPTIMIZER, DEFAULT_PATIENCE
from accelmap.workload.workload import conv2d, linear
from accelmap.workload.zoo import get_network

OUT = Path(__file__).parent / "results" / "search_quality.json"
SMALL = [("eyeriss_like", linear("resnet18_fc", in_features=512, out_features=1000)),
         ("eyeriss_like", conv2d("dw3x3_c32_14", C=32, K=32, P=14, R=3, groups=32)),
         ("simple_pe16x16", linear("fc_64x100", in_features=64, out_features=100))]
CHECKPOINTS = (1000, 2000, 5000, 10000, 20000, 50000, 100000)


def constraints_for(arch: str) -> Constraints:
    p = preset_constraints(arch)
    return read_constraints(p) if p else Constraints()


def best_at(trace, n: int) -> float:
    vals = [edp for ev, _, edp in trace if ev <= n]
    return vals[-1] if vals else math.inf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-exhaustive", action="store_true")
    args = ap.parse_args()
    out = {"near_optimum": [], "optimizers": []}
    if not args.skip_exhaustive:
        print("near the optimum (exhaustive pruned space vs default search)")
        for arch_name, w in SMALL:
            sp = MappingSpace(w, preset(arch_name), constraints_for(arch_name))
            t0 = time.perf_counter()
            ex = optimize(sp, "edp", "exhaustive", budget=10**9)
            t_ex = time.perf_counter() - t0
            de = optimize(sp, "edp", DEFAULT_OPTIMIZER, DEFAULT_BUDGET, seed=args.seed, patience=DEFAULT_PATIENCE)
            ratio = float(de.costs.edp[0]) / float(ex.costs.edp[0])
            row = {"arch": arch_name, "layer": w.name, "pruned_points": ex.evaluations,
                   "optimum_edp": float(ex.costs.edp[0]), "default_edp": float(de.costs.edp[0]), "ratio": ratio,
                   "default_evaluations": de.evaluations, "exhaustive_seconds": t_ex, "default_seconds": de.seconds}
            out["near_optimum"].append(row)
            print(f"  {arch_name:<15}{w.name:<16} points {ex.evaluations:>9,}  default/optimum {ratio:.4f}  "
                  f"({de.evaluations:,} evals, {de.seconds:.2f} s; exhaustive {t_ex:.1f} s)", flush=True)
    print(f"optimizers at equal budgets ({args.budget:,} evaluations), resnet18 on eyeriss_like")
    arch = preset("eyeriss_like")
    cons = constraints_for("eyeriss_like")
    names = [n for n in sorted(OPTIMIZERS) if n != "exhaustive"]
    per_layer = []
    for u in get_network("resnet18").unique_layers():
        sp = MappingSpace(u.workload, arch, cons)
        res = {n: optimize(sp, "edp", n, args.budget, seed=args.seed) for n in names}
        best = min(float(r.costs.edp[0]) for r in res.values() if r.costs is not None)
        per_layer.append({n: [best_at(r.trace, c) / best for c in CHECKPOINTS if c <= args.budget]
                          for n, r in res.items()})
    cps = [c for c in CHECKPOINTS if c <= args.budget]
    print("  geomean over layers of best EDP / best of all optimizers, after N evaluations ('-': no legal point yet)")
    print("  " + f"{'optimizer':<12}" + "".join(f"{c:>10,}" for c in cps))
    for n in names:
        geo = [math.exp(sum(math.log(min(pl[n][i], 1e30)) for pl in per_layer) / len(per_layer)) for i in range(len(cps))]
        out["optimizers"].append({"optimizer": n, "checkpoints": cps, "geomean_ratio": geo})
        print("  " + f"{n:<12}" + "".join(f"{g:>10.3f}" if g < 1e29 else f"{'-':>10}" for g in geo))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
