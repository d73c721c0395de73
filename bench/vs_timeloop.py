"""accelmap's default search against Timeloop's mapper on the 16 reference (arch, layer) pairs.

Same problem files and the same constraint files as the Timeloop runs. For each pair: our EDP,
the mapper's best (`mapper_best`, victory-condition 300) and the long-run best (10x budget,
`longrun_best.jsonl`, 13 pairs), the ratios, and our search time against 1/10 of Timeloop's
mapper wall time. Our search time excludes the one-off JIT compilation of the kernel (done in a
warm-up search first) and process start-up.

    python bench/vs_timeloop.py [--reference DIR] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from accelmap.mapspace.constraints import read_constraints
from accelmap.model.objective import Objective
from accelmap.model.reference import load_arch
from accelmap.search.network import DEFAULT_BUDGET, DEFAULT_OPTIMIZER, DEFAULT_PATIENCE, map_layer
from accelmap.workload.load import read_problem_yaml
from accelmap.workload.network import Layer

OUT = Path(__file__).parent / "results" / "vs_timeloop.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=str(Path(__file__).resolve().parents[2] / "shared/reference/timeloop"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ref = Path(args.reference)
    longrun = {(r["arch"], r["layer"]["name"]): r for r in map(json.loads, open(ref / "records/longrun_best.jsonl"))}
    obj = Objective.parse("edp")
    rows = []
    warmed = False
    print(f"{'arch':<16}{'layer':<22}{'ours EDP':>12}{'TL best':>12}{'TL long':>12}{'/best':>8}{'/long':>8}"
          f"{'ours s':>8}{'TL s':>8}{'ratio t':>9}")
    for arch_name in ("eyeriss_like", "simple_pe16x16"):
        arch = load_arch(ref, arch_name)
        cons = read_constraints(ref / "inputs/mapper" / f"{arch_name}.constraints.yaml")
        for r in map(json.loads, open(ref / "records" / f"{arch_name}.jsonl")):
            if r["tag"] != "mapper_best":
                continue
            w = read_problem_yaml(ref / "inputs/problems" / f"{r['layer']['name']}.yaml")
            if not warmed:
                map_layer(0, Layer(w), arch, cons, obj, DEFAULT_OPTIMIZER, 5000, 0, None)
                warmed = True
            o = map_layer(0, Layer(w), arch, cons, obj, DEFAULT_OPTIMIZER, DEFAULT_BUDGET, args.seed, DEFAULT_PATIENCE)
            short = r["summary"]["edp_pJ_cycles"]
            lr = longrun.get((arch_name, w.name))
            long_edp = lr["summary"]["edp_pJ_cycles"] if lr else None
            best = min(short, long_edp) if long_edp else short
            tl_s = r["timeloop_mapper_wall_s"]
            row = {"arch": arch_name, "layer": w.name, "edp": o.edp, "timeloop_short_edp": short,
                   "timeloop_long_edp": long_edp, "ratio_best": o.edp / best, "ratio_short": o.edp / short,
                   "ratio_long": o.edp / long_edp if long_edp else None, "seconds": o.seconds,
                   "timeloop_seconds": tl_s, "time_ratio": o.seconds / tl_s, "evaluations": o.evaluations,
                   "longrun_seconds": lr.get("timeloop_mapper_wall_s") if lr else None}
            rows.append(row)
            lr_s = f"{long_edp * 1e-12:>12.4g}" if long_edp else f"{'-':>12}"
            rl = f"{row['ratio_long']:>8.3f}" if long_edp else f"{'-':>8}"
            print(f"{arch_name:<16}{w.name:<22}{o.edp * 1e-12:>12.4g}{short * 1e-12:>12.4g}{lr_s}"
                  f"{row['ratio_best']:>8.3f}{rl}{o.seconds:>8.2f}{tl_s:>8.1f}{row['time_ratio']:>9.3f}", flush=True)
    geo = math.exp(sum(math.log(r["ratio_best"]) for r in rows) / len(rows))
    worst = max(r["ratio_best"] for r in rows)
    slowest = max(r["time_ratio"] for r in rows)
    print(f"geomean EDP / Timeloop's best: {geo:.3f}; worst pair {worst:.3f}; "
          f"largest search time / Timeloop mapper time: {slowest:.3f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"rows": rows, "geomean_ratio_best": geo, "worst_ratio_best": worst,
                               "max_time_ratio": slowest, "seed": args.seed}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
