"""DCP against GAMMA on every unique layer of mobilenet_v2, resnet50 and vit_b16.

Two hardware points: eyeriss_like (in the predictor's training family) and the held-out
eyeriss_edge point ``HELDOUT_HARDWARE`` (never in training: zero-shot, then few-shot after
fine-tuning on <= 100 true evaluations there, ``dcp_data/finetuned_heldout.pt``). Per layer: DCP with at most 200 true
evaluations, GAMMA (the genetic optimizer, population 100) with 2,000 and with 20,000, and the
default ``accelmap map`` search (annealing, default budget and patience) as the reference best.
DCP's time per layer is the median of three identical runs (the machine is shared and noisy).
Layers without any legal mapping are listed and skipped. DCP times exclude loading the predictor
and the kernel's one-off compile (a warm-up search runs first).

    python bench/dcp_vs_gamma.py [--seed 0] [--checkpoint PATH]   # seed N != 0 writes dcp_vs_gamma_seedN.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.arch.space import read_hardware_space, resolve_space
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.predictor.dataset import HELDOUT_HARDWARE
from accelmap.search.dcp import geomean, predictor_for
from accelmap.search.loop import optimize
from accelmap.search.network import DEFAULT_BUDGET, DEFAULT_PATIENCE
from accelmap.workload.zoo import get_network

OUT = Path(__file__).parent / "results" / "dcp_vs_gamma.json"
NETWORKS = ("mobilenet_v2", "resnet50", "vit_b16")


def edp(res) -> float:
    return float(res.costs.edp[0]) if res.costs is not None and bool(res.costs.valid[0]) else math.inf


def run_arch(arch, cons, layers, seed: int, label: str, checkpoint: str | None = None) -> dict:
    rows, skipped = [], []
    for name, layer in layers:
        sp = MappingSpace(layer.workload, arch, cons)
        try:
            sp.sample_legal(1, torch.Generator().manual_seed(0), max_draws=200_000)
        except AccelmapError:
            skipped.append(name)
            continue
        times = []
        for _ in range(3):  # the same seed gives the same search: time it thrice, keep the median
            t0 = time.perf_counter()
            d = optimize(sp, "edp", "dcp", 200, seed=seed, options={"checkpoint": checkpoint})
            times.append(time.perf_counter() - t0)
        t_dcp = sorted(times)[1]
        g2 = optimize(sp, "edp", "genetic", 2000, seed=seed)
        g20 = optimize(sp, "edp", "genetic", 20000, seed=seed)
        ref = optimize(sp, "edp", "annealing", DEFAULT_BUDGET, seed=seed, patience=DEFAULT_PATIENCE)
        rows.append({"layer": name, "dcp": edp(d), "dcp_evaluations": d.evaluations, "dcp_seconds": t_dcp,
                     "gamma_2000": edp(g2), "gamma_20000": edp(g20), "default_map": edp(ref)})
    wins = sum(r["dcp"] <= r["gamma_2000"] * (1 + 1e-9) for r in rows)
    summ = {"arch": label, "layers": len(rows), "skipped": skipped, "dcp_wins_vs_gamma_2000": wins,
            "win_rate": wins / len(rows),
            "geomean_dcp_over_gamma_2000": geomean([r["dcp"] / r["gamma_2000"] for r in rows]),
            "geomean_dcp_over_gamma_20000": geomean([r["dcp"] / r["gamma_20000"] for r in rows]),
            "geomean_dcp_over_default_map": geomean([r["dcp"] / r["default_map"] for r in rows]),
            "max_dcp_evaluations": max(r["dcp_evaluations"] for r in rows),
            "max_dcp_seconds": max(r["dcp_seconds"] for r in rows),
            "median_dcp_seconds": sorted(r["dcp_seconds"] for r in rows)[len(rows) // 2], "rows": rows}
    print(f"{label:28s} layers {len(rows)}  DCP <= GAMMA-2000 on {wins}/{len(rows)} ({100 * wins / len(rows):.0f}%)  "
          f"geomean DCP/GAMMA-2000 {summ['geomean_dcp_over_gamma_2000']:.3f}  /GAMMA-20000 "
          f"{summ['geomean_dcp_over_gamma_20000']:.3f}  /default map {summ['geomean_dcp_over_default_map']:.3f}  "
          f"DCP max {summ['max_dcp_seconds']:.2f} s/layer (median {summ['median_dcp_seconds']:.2f})", flush=True)
    return summ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    model = predictor_for(args.checkpoint)
    cons = read_constraints(preset_constraints("eyeriss_like"))
    layers = []
    for n in NETWORKS:
        for layer in get_network(n).unique_layers():
            layers.append((f"{n}/{layer.workload.name}", layer))
    space = read_hardware_space(resolve_space("eyeriss_edge"))
    held = space.architecture(torch.tensor([float(HELDOUT_HARDWARE[n]) for n in space.names]), name="heldout")
    # warm-up: predictor, kernel compile
    warm = MappingSpace(layers[0][1].workload, preset("eyeriss_like"), cons)
    optimize(warm, "edp", "dcp", 200, seed=0, options={"checkpoint": args.checkpoint})
    out = {"predictor": getattr(model, "source", ""), "training": model.meta, "heldout_hardware": HELDOUT_HARDWARE,
           "results": []}
    out["results"].append(run_arch(preset("eyeriss_like"), cons, layers, args.seed, "eyeriss_like", args.checkpoint))
    out["results"].append(run_arch(held, cons, layers, args.seed, "held-out (zero-shot)", args.checkpoint))
    # few-shot: <= 100 true evaluations on the held-out hardware, then the same searches
    from accelmap.predictor.dataset import few_shot
    from accelmap.predictor.model import finetune
    from accelmap.workload.network import Layer

    t0 = time.perf_counter()
    fs = few_shot([Layer(layer.workload) for _, layer in layers], held, cons, model, 100, args.seed)
    tuned = finetune(model, fs["layer"], fs["hw"], fs["codes"], fs["y"], fs["anchor_layer"], fs["anchor_codes"],
                     seed=args.seed)
    path = Path("dcp_data") / "finetuned_heldout.pt"
    tuned.save(path, dict(tuned.meta, finetune={"arch": "heldout", "evaluations": fs["evaluations"]}))
    out["few_shot"] = {"evaluations": fs["evaluations"], "seconds": time.perf_counter() - t0}
    out["results"].append(run_arch(held, cons, layers, args.seed, "held-out (few-shot)", str(path)))
    out_path = OUT if args.seed == 0 else OUT.with_name(f"{OUT.stem}_seed{args.seed}.json")
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
