"""accelmap's default search against Timeloop's long-run mapper on (architecture, layer) pairs
run fresh through ``timeloop-mapper`` (issue 17: "default vs Timeloop's long-run mapper").

For each pair both tools read the very same files: the architecture YAML with its ERT and ART,
the problem YAML and (for the reference architectures) the constraints YAML.

* Timeloop: ``timeloop-mapper`` with the reference mapper settings
  (``shared/reference/timeloop/inputs/mapper/mapper.yaml``) made 10x longer: random-pruned,
  victory-condition 3000, timeout 40000, 2 threads, max-permutations-per-if-visit 16, metric edp.
  A run that has not met its victory condition after ``--cap`` seconds gets one SIGINT (Timeloop then
  writes its best so far) and its row says ``capped: true``. Its best mapping
  (``timeloop-mapper.map.txt``) is re-evaluated with accelmap's cost model; Timeloop's own
  printed energy and cycles (``stats.txt``) are kept beside it.
* accelmap: the default search of ``accelmap map`` (optimizer, budget and patience read from
  ``plan_map``'s signature, as bench/default_vs_best.py does), one layer via
  ``accelmap.search.network.map_layer``, single-threaded as in map's workers, after a short
  warm-up search that compiles the kernel (outside the timed search).

``ratio`` = accelmap default EDP / Timeloop best EDP (both by accelmap's model; below 1: the
default is better). Pairs: (a) eyeriss_like and simple_pe16x16 with their constraint files on
network layers that are not among the 12 reference problems; (b) random architectures of the
differential tester (bench/timeloop_diff.py, ``random_arch(random.Random(1000 + k))``), no
constraints. Rows are written to the JSON after every pair; a rerun skips pairs already there
(``--redo`` measures them again). Errors (Timeloop finds no valid mapping, crashes, layers
accelmap cannot take) are rows with ``error``, never a crash of this script.

    nice -n 10 python bench/vs_timeloop_mapper.py [--cap 300] [--pairs N] [--diagnose]

(the committed results: ``--cap 200`` on the 24 pairs (2 shared cores, an hour), then
``--cap 300 --redo --only random3/mobilenet_v2/features.0.0,random3/bert_base/pooler.dense,
simple_pe16x16/mobilenet_v2/features.2.conv.1.0``: the pair whose first run failed and the two
capped pairs nearest 1.0; then the same with ``--only random1/vit_b16/encoder.layers.0-11.\
self_attention.scores,random3/resnet50/layer3.0.conv2,random1/resnet50/layer3.1-5.conv1``, three
more capped ones; each row keeps its ``cap_s``.)

prints the table and the summary (geomean, worst, pairs above 1.0) and writes
bench/results/vs_timeloop_mapper.json. ``--diagnose`` then reruns accelmap on every pair above
1.0 with ``--optimizer genetic`` (default budget) and with the default at 10x budget and
patience, to tell a stuck default from a Timeloop best that accelmap's search cannot reach.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "results" / "vs_timeloop_mapper.json"
REF = ROOT.parent / "shared" / "reference" / "timeloop"
MAPPER = ROOT.parent / "shared" / "timeloop" / "bin" / "timeloop-mapper"
# The reference settings (mapper.yaml) with the long-run budget of records/longrun_best.jsonl.
LONG_RUN = {"algorithm": "random-pruned", "victory-condition": 3000, "timeout": 40000, "num-threads": 2,
            "max-permutations-per-if-visit": 16, "optimization-metrics": ["edp"]}

# (architecture, network, unique-layer name). Spread over each network, not its first layers;
# on the reference architectures none is one of the 12 reference problems (checked at run time).
# Reference and random architectures alternate so that a partial run is balanced.
PAIRS = [
    ("eyeriss_like", "resnet50", "layer2.0.conv2"),
    ("random0", "resnet50", "layer1.0.conv1"),
    ("simple_pe16x16", "resnet50", "layer3.0.downsample.0"),
    ("random1", "resnet50", "layer3.1-5.conv1"),
    ("eyeriss_like", "vit_b16", "encoder.layers.0-11.mlp.0"),
    ("random2", "resnet50", "layer2.0.conv3"),
    ("simple_pe16x16", "vit_b16", "encoder.layers.0-11.self_attention.q_proj"),
    ("random3", "resnet50", "layer3.0.conv2"),
    ("eyeriss_like", "mobilenet_v2", "features.5-6.conv.1.0"),
    ("random0", "mobilenet_v2", "features.15-16.conv.1.0"),
    ("simple_pe16x16", "mobilenet_v2", "features.14.conv.2"),
    ("random1", "mobilenet_v2", "features.4.conv.2"),
    ("eyeriss_like", "bert_base", "encoder.layer.0-11.attention.self.context"),
    ("random2", "mobilenet_v2", "features.12-13.conv.0.0"),
    ("simple_pe16x16", "bert_base", "encoder.layer.0-11.output.dense"),
    ("random3", "mobilenet_v2", "features.0.0"),
    ("eyeriss_like", "resnet50", "layer4.0.conv3"),
    ("random0", "bert_base", "encoder.layer.0-11.attention.self.query"),
    ("simple_pe16x16", "mobilenet_v2", "features.2.conv.1.0"),
    ("random1", "vit_b16", "encoder.layers.0-11.self_attention.scores"),
    ("simple_pe16x16", "resnet50", "fc"),
    ("random2", "vit_b16", "encoder.layers.0-11.mlp.3"),
    ("eyeriss_like", "mobilenet_v2", "features.18.0"),
    ("random3", "bert_base", "pooler.dense"),
]


def default_settings() -> dict:
    """What ``accelmap map`` uses when given no options (read from plan_map, not restated)."""
    from accelmap.runs.map import plan_map

    p = inspect.signature(plan_map).parameters
    return {"optimizer": p["optimizer"].default, "budget": p["budget"].default, "patience": p["patience"].default}


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def find_layer(network: str, name: str):
    from accelmap.workload.load import load_network

    for layer in load_network(network).unique_layers():
        if layer.workload.name == name:
            return layer.workload
    raise KeyError(f"{network} has no unique layer {name!r}")


def reference_signatures(ref: Path) -> dict:
    from accelmap.workload.load import read_problem_yaml

    return {read_problem_yaml(p).signature(): p.stem for p in sorted((ref / "inputs" / "problems").glob("*.yaml"))}


def write_files(arch_name: str, workload, d: Path, ref: Path) -> dict[str, Path]:
    """The files both tools read: arch, ert, art, problem and (reference archs) constraints."""
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    d.mkdir(parents=True, exist_ok=True)
    if arch_name.startswith("random"):
        sys.path.insert(0, str(BENCH))
        # the differential tester's generator and writer
        from timeloop_diff import _write_inputs, random_arch

        k = int(arch_name[len("random"):])
        arch, _ = random_arch(random.Random(1000 + k), arch_name)
        return _write_inputs(arch, workload, d)
    prob = d / "problem.yaml"
    prob.write_text(dump_yaml(problem_to_dict(workload)))
    inp = ref / "inputs"
    return {"arch": inp / "arch" / f"{arch_name}.yaml", "ert": inp / "ert" / f"{arch_name}.ERT.yaml",
            "art": inp / "ert" / f"{arch_name}.ART.yaml", "problem": prob,
            "constraints": inp / "mapper" / f"{arch_name}.constraints.yaml"}


def mapper_yaml(ref: Path) -> str:
    from accelmap.yamlio import dump_yaml, load_yaml

    doc = load_yaml(ref / "inputs" / "mapper" / "mapper.yaml")
    doc["mapper"].update(LONG_RUN)
    return dump_yaml(doc)


def run_timeloop(files: dict[str, Path], d: Path, cap: float, ref: Path, mapper: Path,
                 mapper_text: str | None = None) -> dict:
    """One long ``timeloop-mapper`` run in ``d``: its printed energy/cycles and map.txt, or an error.
    ``mapper_text``: the mapper input (default: the reference settings with ``LONG_RUN``)."""
    (d / "mapper.yaml").write_text(mapper_text or mapper_yaml(ref))
    for f in d.glob("timeloop-mapper.*"):
        f.unlink()
    inputs = [files["arch"], files["problem"], d / "mapper.yaml"]
    inputs += [files["constraints"]] if "constraints" in files else []
    inputs += [files["ert"], files["art"]]
    # One SIGINT at the cap: Timeloop stops its threads and writes the best so far. (Not GNU
    # timeout: it signals the child and then its whole process group, and a second SIGINT makes
    # Timeloop abandon its evaluations and abort while writing stats.) KILL 60 s later if needed.
    cmd = [str(mapper)] + [str(p) for p in inputs]
    t0 = time.perf_counter()
    with open(d / "mapper.log", "w") as logf:
        p = subprocess.Popen(cmd, cwd=d, stdout=logf, stderr=subprocess.STDOUT)
        capped = False
        try:
            p.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            capped = True
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                return {"error": "timeloop-mapper did not stop 60 s after SIGINT", "wall_s": time.perf_counter() - t0,
                        "capped": True}
    wall = time.perf_counter() - t0
    log = (d / "mapper.log").read_text(errors="replace")
    stats, maptxt = d / "timeloop-mapper.stats.txt", d / "timeloop-mapper.map.txt"
    if not stats.is_file() or not maptxt.is_file():
        tail = " | ".join(log.strip().splitlines()[-3:])
        return {"error": f"timeloop-mapper (exit {p.returncode}) wrote no best mapping: {tail}"[:500],
                "wall_s": wall, "capped": capped}
    text = stats.read_text()
    e = re.search(r"^Energy: ([\d.e+]+) uJ", text, re.MULTILINE)
    c = re.search(r"^Cycles: (\d+)", text, re.MULTILINE)
    if not e or not c:
        tail = " | ".join(log.strip().splitlines()[-2:])
        return {"error": f"timeloop-mapper's stats.txt has no Energy/Cycles line: {tail}"[:500], "wall_s": wall,
                "capped": capped}
    sys.path.insert(0, str(BENCH))
    # sums every 'Energy (total)' line, each printed to 0.01 pJ
    from timeloop_diff import parse_stats

    energy_pJ = parse_stats(text)["energy_pJ"]
    return {"energy_uJ_printed": float(e.group(1)), "cycles_printed": int(c.group(1)), "energy_pJ_summed": energy_pJ,
            "edp_timeloop": energy_pJ * int(c.group(1)), "map_txt": maptxt.read_text(), "wall_s": wall,
            "capped": capped, "exit": p.returncode}


def reevaluate(map_txt: str, w, arch) -> dict:
    """Timeloop's best mapping evaluated by accelmap's cost model."""
    from accelmap.mapping.loop_nest import parse_map_txt
    from accelmap.mapping.mapping import MappingBatch
    from accelmap.model.cost_model import CostModel

    m = parse_map_txt(map_txt, arch, w, "timeloop-mapper.map.txt")
    c = CostModel(w, arch)(MappingBatch.from_mappings([m], w, arch))
    return {"valid": bool(c.valid[0]), "energy_pJ": float(c.energy[0]), "cycles": float(c.cycles[0]),
            "edp": float(c.edp[0]), "utilization": float(c.utilization[0]), "residual": m.is_imperfect,
            "mapping_yaml": m.to_yaml()}


def accelmap_search(w, arch, cons, optimizer: str, budget: int, patience: int | None, seed: int = 0) -> dict:
    from accelmap.model.objective import Objective
    from accelmap.search.network import map_layer
    from accelmap.workload.network import Layer

    t0 = time.perf_counter()
    o = map_layer(0, Layer(w), arch, cons, Objective.parse("edp"), optimizer, budget, seed, patience)
    wall = time.perf_counter() - t0
    out = {"optimizer": optimizer, "budget": budget, "patience": patience, "seed": seed, "found": o.found,
           "search_s": o.seconds, "wall_s": wall, "evaluations": o.evaluations}
    if o.found:
        out.update(edp=o.edp, energy_pJ=o.energy_pJ, cycles=o.cycles, mapping_yaml=o.mapping_yaml)
    else:
        out["note"] = o.note
    return out


def load_inputs(files: dict[str, Path], arch_name: str):
    """Architecture, workload and constraints read back from the files Timeloop read."""
    from accelmap.arch.load import read_architecture
    from accelmap.mapspace.constraints import Constraints, read_constraints
    from accelmap.workload.load import read_problem_yaml

    arch = read_architecture(files["arch"], files["ert"], files["art"], name=arch_name)
    w = read_problem_yaml(files["problem"])
    cons = read_constraints(files["constraints"]) if "constraints" in files else Constraints()
    return arch, w, cons


def measure_pair(arch_name: str, network: str, layer: str, args, ref_sigs: dict) -> dict:
    row: dict = {"arch": arch_name, "network": network, "layer": layer, "cap_s": args.cap}
    try:
        w0 = find_layer(network, layer)
        row["dims"] = dict(zip(w0.dims, w0.bounds))
        if not arch_name.startswith("random") and w0.signature() in ref_sigs:
            return dict(row, error=f"same shape as reference problem {ref_sigs[w0.signature()]}")
        d = Path(args.workdir) / f"{arch_name}__{network}__{layer}"
        files = write_files(arch_name, w0, d, Path(args.reference))
        row["files"] = {k: str(p) for k, p in files.items()}
        arch, w, cons = load_inputs(files, arch_name)
    except Exception as exc:  # noqa: BLE001 - a layer or file accelmap cannot take is a row
        return dict(row, error=f"inputs: {type(exc).__name__}: {exc}"[:500])
    ds = default_settings()
    try:
        ours = accelmap_search(w, arch, cons, ds["optimizer"], ds["budget"], ds["patience"])
    except Exception as exc:  # noqa: BLE001
        return dict(row, error=f"accelmap: {type(exc).__name__}: {exc}"[:500])
    row["default"] = ours
    tl = run_timeloop(files, d, args.cap, Path(args.reference), Path(args.mapper))
    row["timeloop"] = {k: v for k, v in tl.items() if k != "map_txt"}
    if "error" in tl:
        return dict(row, error=tl["error"])
    row["timeloop"]["map_txt"] = tl["map_txt"]
    row["capped"] = tl["capped"]
    try:
        row["timeloop_accelmap"] = reevaluate(tl["map_txt"], w, arch)
    except Exception as exc:  # noqa: BLE001
        return dict(row, error=f"re-evaluating Timeloop's best: {type(exc).__name__}: {exc}"[:500])
    tla = row["timeloop_accelmap"]
    row["model_agreement"] = {"energy": tla["energy_pJ"] / tl["energy_pJ_summed"] - 1,
                              "cycles": tla["cycles"] / tl["cycles_printed"] - 1}
    if not tla["valid"]:
        return dict(row, error="accelmap's model calls Timeloop's best mapping invalid")
    if not ours["found"]:
        return dict(row, error=f"accelmap's default found no legal mapping: {ours.get('note', '')}"[:500],
                    ratio=math.inf)
    row["ratio"] = ours["edp"] / tla["edp"]
    row["ratio_vs_timeloop_printed"] = ours["edp"] / tl["edp_timeloop"]
    return row


def diagnose(row: dict, args) -> dict:
    """For a pair above 1.0: genetic at the default budget, the default at 10x budget and patience."""
    ds = default_settings()
    arch, w, cons = load_inputs({k: Path(p) for k, p in row["files"].items()}, row["arch"])
    tl = row["timeloop_accelmap"]["edp"]
    out = {}
    runs = {"genetic": ("genetic", ds["budget"], ds["patience"]),
            "default_10x": (ds["optimizer"], 10 * ds["budget"], 10 * ds["patience"] if ds["patience"] else None)}
    for key, (opt, budget, patience) in runs.items():
        r = accelmap_search(w, arch, cons, opt, budget, patience)
        r.pop("mapping_yaml", None)
        if r["found"]:
            r["ratio"] = r["edp"] / tl
        out[key] = r
    return out


def fmt_row(r: dict) -> str:
    head = f"{r['arch']:<15}{r['network']:<13}{r['layer'][:34]:<35}"
    if "ratio" not in r or not math.isfinite(r["ratio"]):
        return head + "  " + r.get("error", "")[:70]
    tl, tla, ours = r["timeloop"], r["timeloop_accelmap"], r["default"]
    return (head + f"{ours['edp']:>11.4g}{tla['edp']:>11.4g}{tl['edp_timeloop']:>11.4g}{r['ratio']:>8.3f}"
            f"{'  cap' if r['capped'] else '     '}{ours['wall_s']:>8.1f}{tl['wall_s']:>8.1f}")


HEADER = (f"{'arch':<15}{'network':<13}{'layer':<35}{'ours EDP':>11}{'TL (am)':>11}{'TL (own)':>11}{'ratio':>8}"
          f"{'':5}{'ours s':>8}{'TL s':>8}")


def summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if "ratio" in r and math.isfinite(r["ratio"])]
    rs = [r["ratio"] for r in ok]
    groups = {}
    for name, sel in (("reference_archs", lambda r: not r["arch"].startswith("random")),
                      ("random_archs", lambda r: r["arch"].startswith("random"))):
        g = [r["ratio"] for r in ok if sel(r)]
        groups[name] = {"pairs": len(g), "geomean": geomean(g), "worst": max(g, default=None)}
    # capped Timeloop runs stopped before their victory condition: the geomean without them too
    unc = [r["ratio"] for r in ok if not r.get("capped")]
    return {"pairs": len(ok), "geomean": geomean(rs), "worst": max(rs, default=None),
            "uncapped_pairs": len(unc), "geomean_uncapped": geomean(unc),
            "worst_pair": max(ok, key=lambda r: r["ratio"])["layer"] if ok else None,
            "above_1": [f"{r['arch']} {r['network']} {r['layer']} {r['ratio']:.4f}" for r in ok if r["ratio"] > 1.0],
            "capped": sum(bool(r.get("capped")) for r in ok),
            "default_no_mapping": [f"{r['arch']} {r['layer']}" for r in rows if r.get("ratio") == math.inf],
            "errors": [f"{r['arch']} {r['network']} {r['layer']}: {r['error'][:120]}" for r in rows
                       if "error" in r and r.get("ratio") != math.inf],
            "groups": groups,
            "max_model_disagreement": max((max(abs(r["model_agreement"]["energy"]), abs(r["model_agreement"]["cycles"]))
                                           for r in ok), default=None)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cap", type=float, default=300, help="seconds before a Timeloop run gets SIGINT")
    ap.add_argument("--pairs", type=int, default=len(PAIRS), help="the first N pairs of the list")
    ap.add_argument("--only", default="", help="comma list of ARCH/NETWORK/LAYER to run (default: the list)")
    ap.add_argument("--redo", action="store_true", help="measure pairs already in the results again")
    ap.add_argument("--diagnose", action="store_true", help="rerun accelmap (genetic, 10x) on pairs above 1.0")
    ap.add_argument("--reference", default=str(REF))
    ap.add_argument("--mapper", default=str(MAPPER))
    ap.add_argument("--workdir", default="/tmp/vs_timeloop_mapper", help="Timeloop's work dirs (kept)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    if not Path(args.mapper).is_file():
        print(f"no timeloop-mapper at {args.mapper}", file=sys.stderr)
        return 2
    from accelmap.search.executor import single_threaded

    single_threaded()  # as in map's workers
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.is_file() else {}
    res.update(default=default_settings(), timeloop_settings=LONG_RUN, timeloop="v3.0.3 (NVlabs/timeloop 6b41058)")
    rows: list[dict] = res.setdefault("rows", [])

    def save() -> None:
        rows.sort(key=lambda r: next((i for i, p in enumerate(PAIRS) if p == (r["arch"], r["network"], r["layer"])),
                                     len(PAIRS)))
        res["summary"] = summary(rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=float))

    pairs = [tuple(s.split("/", 2)) for s in args.only.split(",")] if args.only else PAIRS[: args.pairs]
    ref_sigs = reference_signatures(Path(args.reference))
    # compile the kernel once, outside any timed search
    from accelmap.arch.load import preset
    from accelmap.mapspace.constraints import Constraints

    accelmap_search(find_layer("resnet50", "fc"), preset("simple_pe16x16"), Constraints(),
                    default_settings()["optimizer"], 2000, 500)
    print(HEADER, flush=True)
    for r in rows:
        print(fmt_row(r), flush=True)
    for pair in pairs:
        done = [r for r in rows if (r["arch"], r["network"], r["layer"]) == pair]
        if done and not args.redo:
            continue
        for r in done:
            rows.remove(r)
        row = measure_pair(*pair, args, ref_sigs)
        rows.append(row)
        print(fmt_row(row), flush=True)
        save()
    if args.diagnose:
        for r in rows:
            if r.get("ratio", 0) > 1.0 and math.isfinite(r["ratio"]) and "diagnosis" not in r:
                r["diagnosis"] = diagnose(r, args)
                print(f"diagnosis {r['arch']} {r['layer']}: " + ", ".join(
                    f"{k} {v.get('ratio', float('inf')):.4f}" for k, v in r["diagnosis"].items()), flush=True)
                save()
    save()
    s = res["summary"]
    print(f"pairs {s['pairs']}: geomean {s['geomean']:.4f}, worst {s['worst']} ({s['worst_pair']}), "
          f"above 1.0: {len(s['above_1'])}, capped Timeloop runs: {s['capped']} "
          f"(geomean of the {s['uncapped_pairs']} uncapped: {s['geomean_uncapped']:.4f}); "
          + ", ".join(f"{k} {g['pairs']} pairs geomean {g['geomean']:.4f} worst {g['worst']}"
                      for k, g in s["groups"].items()))
    for x in s["above_1"]:
        print("  above 1.0:", x)
    for x in s["errors"] + s["default_no_mapping"]:
        print("  error:", x)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
