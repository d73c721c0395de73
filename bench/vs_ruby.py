"""accelmap ``--imperfect`` against Timeloop's ruby mapper (imperfect factors), issue 16.

    python bench/vs_ruby.py [--pairs simple_pe16x16:vit_q_proj,...] [--victory 3000] [--timeout 40000]
        [--cap 420] [--jobs 8] [--timeloop ../shared/timeloop] [--reference ../shared/reference/timeloop]

(bench/results/vs_ruby.json: the 8 default pairs with ``--jobs 8`` on a 16-core machine, each
Timeloop run on 2 threads.)

Per (architecture, layer) pair, both tools get the same files: the reference architecture
(Timeloop v0.3 spec with Accelergy's ERT and ART, ``shared/reference/timeloop/inputs``), the
layer as a ``CNN-Layer`` problem, and the reference mapper constraints plus ``remainders: R`` on
the array's spatial target (Timeloop's knob for residual ends; ruby gives residuals only where it
is set, and so does accelmap's imperfect space; ``R`` = the mesh axis). Mapping residuals at
every level makes ruby enumerate its whole factor space up front (more than 18 GiB here on one
layer), so the residuals are allowed where they buy utilization: the fan-out.

* Timeloop: ``timeloop-mapper`` with ``mapspace: {template: ruby}``, the settings of the
  reference long runs (random-pruned, 2 threads, victory-condition 3000, timeout 40000; 10x
  the reference defaults), wall time of the process. Its best mapping (map.txt) is re-evaluated
  with accelmap's model, which counts residual loops exactly as Timeloop (issue 16's records);
  Timeloop's own printed energy and cycles are kept beside it.
* accelmap: ``map_layer_imperfect`` with ``accelmap map``'s defaults (the perfect search, then
  the imperfect one seeded with it, the better kept), one process, single-threaded, seed 0;
  wall time of the call.

ratio = accelmap EDP / ruby's best EDP (both by the same exact model); time ratio = accelmap
seconds / Timeloop seconds. Writes bench/results/vs_ruby.json and prints a table.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the Timeloop runner of vs_timeloop_mapper.py
ROOT = BENCH.parent
OUT = BENCH / "results" / "vs_ruby.json"

# layers whose dims do not divide the arrays (14 x 12 eyeriss_like, 16 x 16 simple_pe16x16);
# CNN-Layer dims, bounds not given are 1, stride 1
LAYERS = {
    "vit_q_proj": {"P": 197, "C": 768, "K": 768},  # ViT-B/16 q/k/v and out projections, 197 tokens
    "vit_mlp0": {"P": 197, "C": 768, "K": 3072},  # ViT-B/16 MLP up-projection
    "vit_scores": {"P": 197, "C": 64, "K": 197},  # one head's Q K^T (197 x 197, head dim 64)
    "resnet18_fc": {"C": 512, "K": 1000},  # 1000-class head
    "mbv2_classifier": {"C": 1280, "K": 1000},
    "resnet18_l3_conv3x3": {"P": 14, "Q": 14, "R": 3, "S": 3, "C": 256, "K": 256},
    "resnet18_l4_conv3x3": {"P": 7, "Q": 7, "R": 3, "S": 3, "C": 512, "K": 512},
}
DEFAULT_PAIRS = ("simple_pe16x16:vit_q_proj,simple_pe16x16:vit_scores,simple_pe16x16:resnet18_fc,"
                 "simple_pe16x16:mbv2_classifier,eyeriss_like:vit_q_proj,eyeriss_like:resnet18_fc,"
                 "eyeriss_like:resnet18_l3_conv3x3,eyeriss_like:resnet18_l4_conv3x3")
SPATIAL_TARGET = {"simple_pe16x16": "GlobalBuffer", "eyeriss_like": "shared_glb"}


def problem_yaml(ref: Path, dims: dict) -> str:
    """The reference CNN-Layer problem with this layer's instance."""
    doc = yaml.safe_load((ref / "inputs" / "problems" / "resnet18_fc.yaml").read_text())
    inst = doc["problem"]["instance"]
    for d in ("R", "S", "P", "Q", "C", "K", "N"):
        inst[d] = dims.get(d, 1)
    return yaml.safe_dump(doc, sort_keys=False)


def constraints_yaml(ref: Path, arch: str, remainders: int) -> str:
    doc = yaml.safe_load((ref / "inputs" / "mapper" / f"{arch}.constraints.yaml").read_text())
    targets = doc["architecture_constraints"]["targets"]
    for t in targets:
        if t["target"] == SPATIAL_TARGET[arch] and t["type"] == "spatial":
            t["remainders"] = remainders
            break
    else:
        targets.append({"target": SPATIAL_TARGET[arch], "type": "spatial", "remainders": remainders})
    return yaml.safe_dump(doc, sort_keys=False)


def mapper_yaml(ref: Path, victory: int, timeout: int) -> str:
    doc = yaml.safe_load((ref / "inputs" / "mapper" / "mapper.yaml").read_text())
    doc["mapper"].update({"victory-condition": victory, "timeout": timeout})
    doc["mapspace"] = {"template": "ruby"}
    return yaml.safe_dump(doc, sort_keys=False)


def run_ruby(timeloop: Path, ref: Path, arch: str, work: Path, cap: float) -> dict:
    """Timeloop's ruby mapper on the pair's files in ``work``, stopped with one SIGINT (Timeloop
    then reports its best) after ``cap`` seconds if it has not met its victory condition by then
    (``vs_timeloop_mapper.run_timeloop``)."""
    from vs_timeloop_mapper import run_timeloop

    inp = ref / "inputs"
    files = {"arch": inp / "arch" / f"{arch}.yaml", "problem": work / "problem.yaml",
             "constraints": work / "constraints.yaml", "ert": inp / "ert" / f"{arch}.ERT.yaml",
             "art": inp / "ert" / f"{arch}.ART.yaml"}
    tl = run_timeloop(files, work, cap, ref, timeloop / "bin" / "timeloop-mapper",
                      mapper_text=(work / "mapper.yaml").read_text())
    if "error" in tl:
        return {"error": tl["error"], "seconds": tl["wall_s"]}
    return {"seconds": tl["wall_s"], "capped": tl["capped"], "timeloop_energy_pJ": tl["energy_uJ_printed"] * 1e6,
            "timeloop_cycles": float(tl["cycles_printed"]), "map_txt": tl["map_txt"]}


def evaluate_map_txt(arch_obj, w, text: str) -> dict:
    """Timeloop's best re-scored with accelmap's model (``vs_timeloop_mapper.reevaluate``)."""
    from vs_timeloop_mapper import reevaluate

    out = reevaluate(text, w, arch_obj)
    out.pop("mapping_yaml")
    return out


def run_accelmap(arch_obj, w, cons) -> dict:
    from accelmap.model.objective import Objective
    from accelmap.runs.map import map_layer_imperfect, plan_map
    from accelmap.search.executor import single_threaded
    from accelmap.workload.network import Layer

    single_threaded()
    p = inspect.signature(plan_map).parameters
    budget, patience, optimizer = p["budget"].default, p["patience"].default, p["optimizer"].default
    t0 = time.perf_counter()
    out = map_layer_imperfect(0, Layer(w, 1), arch_obj, cons, Objective.parse("edp"), optimizer, budget, 0, patience)
    wall = time.perf_counter() - t0
    return {"seconds": wall, "edp": out.edp, "energy_pJ": out.energy_pJ, "cycles": out.cycles,
            "utilization": out.utilization, "residual": bool(re.search(r"=\d+,\d+", out.mapping_yaml)),
            "evaluations": out.evaluations, "mapping_yaml": out.mapping_yaml,
            "settings": {"optimizer": optimizer, "budget": budget, "patience": patience}}


def _prepare(ref: Path, arch: str, layer: str, victory: int, timeout: int, root: Path) -> Path:
    """The pair's folder with the three files both tools read."""
    from accelmap.model.reference import load_arch

    work = root / f"{arch}_{layer}"
    work.mkdir(parents=True, exist_ok=True)
    a = load_arch(ref, arch)
    rem = max(a.fanout(a.level_index(SPATIAL_TARGET[arch])))
    (work / "problem.yaml").write_text(problem_yaml(ref, LAYERS[layer]))
    (work / "constraints.yaml").write_text(constraints_yaml(ref, arch, rem))
    (work / "mapper.yaml").write_text(mapper_yaml(ref, victory, timeout))
    return work


def _ours(task) -> dict:
    """accelmap on one prepared pair (a worker process: single-threaded)."""
    ref, arch, work = task
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.model.reference import load_arch
    from accelmap.workload.load import read_problem_yaml

    from accelmap.model.cost_model import CostModel
    from accelmap.search.executor import single_threaded

    single_threaded()
    a = load_arch(Path(ref), arch)
    w = read_problem_yaml(Path(work) / "problem.yaml")
    CostModel(w, a).compile_kernel()  # the one-off compilation (a cache load after the first), not timed
    return run_accelmap(a, w, read_constraints(Path(work) / "constraints.yaml"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default=DEFAULT_PAIRS)
    ap.add_argument("--victory", type=int, default=3000)
    ap.add_argument("--timeout", type=int, default=40000)
    ap.add_argument("--cap", type=float, default=420.0, help="stop Timeloop (Ctrl-C: it reports its best) after "
                                                               "this many seconds")
    ap.add_argument("--jobs", type=int, default=1, help="pairs run at a time: Timeloop runs (2 threads each), then "
                                                        "accelmap's (1 thread each)")
    ap.add_argument("--timeloop", default=str(ROOT.parent / "shared" / "timeloop"))
    ap.add_argument("--reference", default=str(ROOT.parent / "shared" / "reference" / "timeloop"))
    ap.add_argument("--work", help="keep each pair's files (and Timeloop's outputs) here")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from vs_timeloop_mapper import geomean

    from accelmap.model.reference import load_arch
    from accelmap.workload.load import read_problem_yaml

    ref, timeloop = Path(args.reference).resolve(), Path(args.timeloop).resolve()  # (Timeloop runs in the pair's folder)
    root = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vs_ruby_"))
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    works = [_prepare(ref, a, ly, args.victory, args.timeout, root) for a, ly in pairs]
    settings = {"victory-condition": args.victory, "timeout": args.timeout, "threads": 2, "algorithm": "random-pruned",
                "mapspace": "ruby", "cap_seconds": args.cap, "jobs": args.jobs, "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as ex:  # each a Timeloop process
        tls = list(ex.map(lambda pw: run_ruby(timeloop, ref, pw[0][0], pw[1], args.cap), zip(pairs, works)))
    print(f"Timeloop: {len(pairs)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
    from accelmap.model.cost_model import compile_kernel

    print(f"compiling the cost model's kernel once (cached for the workers): {compile_kernel():.0f} s", flush=True)
    with ProcessPoolExecutor(args.jobs) as ex:
        ours = list(ex.map(_ours, [(str(ref), a, str(wk)) for (a, _), wk in zip(pairs, works)]))
    rows = []
    for (arch, layer), work, tl, am in zip(pairs, works, tls, ours):
        row = {"arch": arch, "layer": layer, "dims": LAYERS[layer],
               "remainders": yaml.safe_load((work / "constraints.yaml").read_text()), "ruby": tl}
        if "error" in tl:
            row["error"] = tl["error"]
        else:
            a = load_arch(ref, arch)
            tl.update(evaluate_map_txt(a, read_problem_yaml(work / "problem.yaml"), tl["map_txt"]))
            row.update(accelmap=am, ratio=am["edp"] / tl["edp"], time_ratio=am["seconds"] / tl["seconds"])
        rows.append(row)
    ok = [r for r in rows if "error" not in r]
    s = {"pairs": len(ok), "geomean_edp_ratio": geomean([r["ratio"] for r in ok]),
         "worst_edp_ratio": max((r["ratio"] for r in ok), default=math.nan),
         "geomean_time_ratio": geomean([r["time_ratio"] for r in ok]),
         "worst_time_ratio": max((r["time_ratio"] for r in ok), default=math.nan)}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"command": "python bench/vs_ruby.py " + " ".join(argv or sys.argv[1:]),
                                    "timeloop": settings, "summary": s, "rows": rows}, indent=1))
    print(f"\n{'arch':<16}{'layer':<22}{'ruby EDP':>12}{'accelmap EDP':>14}{'ratio':>8}{'ruby s':>9}{'ours s':>8}"
          f"{'time x':>8}  residual (ruby / ours)")
    for r in rows:
        if "error" in r:
            print(f"{r['arch']:<16}{r['layer']:<22}  {r['error'][:60]}")
            continue
        print(f"{r['arch']:<16}{r['layer']:<22}{r['ruby']['edp']:>12.4g}{r['accelmap']['edp']:>14.4g}{r['ratio']:>8.4f}"
              f"{r['ruby']['seconds']:>9.1f}{r['accelmap']['seconds']:>8.1f}{r['time_ratio']:>8.3f}  "
              f"{r['ruby']['residual']} / {r['accelmap']['residual']}")
    print(f"\npairs {s['pairs']}: EDP ratio geomean {s['geomean_edp_ratio']:.4f}, worst {s['worst_edp_ratio']:.4f}; "
          f"time ratio geomean {s['geomean_time_ratio']:.4f}, worst {s['worst_time_ratio']:.4f}; wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
