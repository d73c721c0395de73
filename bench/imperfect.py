"""What imperfect factors buy: per layer and per network, EDP, energy, cycles and utilization
of ``accelmap map`` without and with ``--imperfect`` (issue 16, item 4).

    python bench/imperfect.py [--networks vit_b16 mobilenet_v2 resnet50 bert_base]
        [--archs eyeriss_like simple_pe16x16] [--layers N] [--budget 100000] [--patience 10000]
        [--optimizer portfolio]

Per (architecture, network), the first ``--layers`` unique layers (all by default) are searched
as ``accelmap map`` does (:func:`accelmap.search.network.map_layer`, seed + layer index), then
with imperfect factors (:func:`accelmap.runs.map.map_layer_imperfect`, which reuses that perfect
result as its seed and keeps the better of the two, so the ratio is never above 1). Network
totals sum energy x count and cycles x count over the layers both runs mapped; EDP = energy x
cycles of those sums. Writes bench/results/imperfect.json and prints a table.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import time
from pathlib import Path

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.mapspace.constraints import Constraints, read_constraints
from accelmap.model.objective import Objective
from accelmap.runs.map import map_layer_imperfect, plan_map
from accelmap.search.network import map_layer
from accelmap.workload.load import load_network

OUT = Path(__file__).parent / "results" / "imperfect.json"
RESIDUAL = re.compile(r"=\d+,\d+")  # Timeloop's P=8,5 in a written mapping
KEYS = ("found", "energy_pJ", "cycles", "edp", "utilization", "evaluations", "seconds")


def constraints_for(arch: str) -> Constraints:
    p = preset_constraints(arch)
    return read_constraints(p) if p else Constraints()


def totals(rows: list[dict], side: str) -> dict:
    both = [r for r in rows if r["perfect"]["found"] and r["imperfect"]["found"]]
    e = sum(r[side]["energy_pJ"] * r["count"] for r in both)
    c = sum(r[side]["cycles"] * r["count"] for r in both)
    return {"layers": len(both), "energy_pJ": e, "cycles": c, "edp": e * c}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", nargs="+", default=["vit_b16", "mobilenet_v2", "resnet50", "bert_base"])
    ap.add_argument("--archs", nargs="+", default=["eyeriss_like", "simple_pe16x16"])
    ap.add_argument("--layers", type=int, default=0, help="the first N unique layers of each network (0: all)")
    d = inspect.signature(plan_map).parameters  # accelmap map's defaults, not restated
    ap.add_argument("--budget", type=int, default=d["budget"].default, help="evaluations per layer and search")
    ap.add_argument("--optimizer", default=d["optimizer"].default)
    ap.add_argument("--patience", type=int, default=d["patience"].default or 0, help="0: the whole budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    from accelmap.search.executor import single_threaded

    single_threaded()  # as accelmap map's workers search (many small tensor ops)
    obj = Objective.parse("edp")
    out = {"settings": vars(args), "runs": []}
    for arch_name in args.archs:
        arch, cons = preset(arch_name), constraints_for(arch_name)
        for net_name in args.networks:
            layers = list(load_network(net_name).unique_layers())
            layers = layers[: args.layers] if args.layers else layers
            rows = []
            for i, layer in enumerate(layers):
                t0 = time.perf_counter()
                per = map_layer(i, layer, arch, cons, obj, args.optimizer, args.budget, args.seed,
                                args.patience or None)
                imp = map_layer_imperfect(i, layer, arch, cons, obj, args.optimizer, args.budget, args.seed,
                                          args.patience or None, perfect=per)
                row = {"layer": layer.workload.name, "count": layer.count,
                       "dims": dict(zip(layer.workload.dims, layer.workload.bounds)),
                       "perfect": {k: getattr(per, k) for k in KEYS} | {"note": per.note},
                       "imperfect": {k: getattr(imp, k) for k in KEYS} | {"note": imp.note,
                                                                           "residual": bool(RESIDUAL.search(imp.mapping_yaml))},
                       "wall_seconds": time.perf_counter() - t0}
                row["edp_ratio"] = (imp.edp / per.edp) if per.found and imp.found else None
                rows.append(row)
                print(f"{arch_name:15s} {net_name:13s} {layer.workload.name[:40]:40s} "
                      + (f"EDP x{row['edp_ratio']:.3f}" if row["edp_ratio"] is not None else
                         f"perfect {'ok' if per.found else 'none'}, imperfect {'ok' if imp.found else 'none'}")
                      + f"  ({row['wall_seconds']:.0f} s)", flush=True)
            tp, ti = totals(rows, "perfect"), totals(rows, "imperfect")
            out["runs"].append({"arch": arch_name, "network": net_name, "layers": rows, "perfect": tp,
                                "imperfect": ti, "edp_ratio": ti["edp"] / tp["edp"] if tp["edp"] else None})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    print()
    head = f"{'arch':15s} {'network':13s} {'layer':34s} {'EDP perf':>10s} {'EDP imp':>10s} {'ratio':>6s} " \
           f"{'E ratio':>7s} {'cyc ratio':>9s} {'util p':>6s} {'util i':>6s}"
    print(head)
    print("-" * len(head))
    for run in out["runs"]:
        for r in run["layers"]:
            p, i = r["perfect"], r["imperfect"]
            if not (p["found"] and i["found"]):
                pe = f"{p['edp']:.3g}" if p["found"] else "-"
                ie = f"{i['edp']:.3g}" if i["found"] else "-"
                print(f"{run['arch']:15s} {run['network']:13s} {r['layer'][:34]:34s} {pe:>10s} {ie:>10s}")
                continue
            print(f"{run['arch']:15s} {run['network']:13s} {r['layer'][:34]:34s} {p['edp']:10.3g} {i['edp']:10.3g} "
                  f"{i['edp'] / p['edp']:6.3f} {i['energy_pJ'] / p['energy_pJ']:7.3f} {i['cycles'] / p['cycles']:9.3f} "
                  f"{p['utilization']:6.2f} {i['utilization']:6.2f}")
        tp, ti = run["perfect"], run["imperfect"]
        if tp["edp"]:
            print(f"{run['arch']:15s} {run['network']:13s} {'NETWORK (' + str(tp['layers']) + ' layers)':34s} "
                  f"{tp['edp']:10.3g} {ti['edp']:10.3g} {ti['edp'] / tp['edp']:6.3f} "
                  f"{ti['energy_pJ'] / tp['energy_pJ']:7.3f} {ti['cycles'] / tp['cycles']:9.3f}")
    ratios = [r["edp_ratio"] for run in out["runs"] for r in run["layers"] if r["edp_ratio"] is not None]
    if ratios:
        gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"\nlayers: {len(ratios)}, geometric mean EDP ratio (imperfect / perfect) {gm:.3f}, "
              f"worst {max(ratios):.3f}, strictly better on {sum(x < 1 for x in ratios)}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
