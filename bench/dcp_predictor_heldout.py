"""The packaged DCP predictor's ranking on hardware it never saw.

Every unique layer of the training networks on the held-out ``eyeriss_edge`` point
(``HELDOUT_HARDWARE``), sampled the way the training set was (``pair_samples``: random legal
mappings plus the points a short local search visits), predicted EDP against true EDP per layer:
Spearman, Kendall, and the mean absolute error of log EDP after removing the per-layer offset
(ranking is what the search uses). Layers split by whether ``accelmap dcp train`` held them out
for validation (unseen layer and unseen hardware) or trained on them (on other hardware).

    python bench/dcp_predictor_heldout.py      # writes bench/results/dcp_predictor_heldout.json
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.hardware import Hardware
from accelmap.arch.space import read_hardware_space, resolve_space
from accelmap.mapspace.constraints import read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.predictor.codes import hardware_code, layer_code
from accelmap.predictor.dataset import HELDOUT_HARDWARE, NETWORKS, pair_samples
from accelmap.predictor.model import kendall, spearman
from accelmap.search.dcp import predictor_for
from accelmap.workload.zoo import get_network

OUT = Path(__file__).parent / "results" / "dcp_predictor_heldout.json"


def main() -> None:
    model = predictor_for()
    cons = read_constraints(preset_constraints("eyeriss_like"))
    space = read_hardware_space(resolve_space("eyeriss_edge"))
    held = space.architecture(torch.tensor([float(HELDOUT_HARDWARE[n]) for n in space.names]), name="heldout")
    hc = hardware_code(Hardware.from_arch(held))
    val = [(v["name"], v["bounds"]) for v in model.meta.get("val_layers", [])]
    rows, seen = [], set()
    gen = torch.Generator().manual_seed(0)
    for net in NETWORKS:
        for layer in get_network(net).unique_layers():
            w = layer.workload
            if w.signature() in seen:
                continue
            seen.add(w.signature())
            sp = MappingSpace(w, held, cons)
            d = pair_samples(sp, model.layout, cons, 512, 1024, gen)
            if d is None:
                continue
            with torch.no_grad():
                y = model(layer_code(w, model.layout), hc, d.codes)
            pred = (y[:, 0] + y[:, 1]).double()
            true = (d.log_cycles + d.log_energy).double()
            err = (pred - true) - (pred - true).mean()
            rows.append({"layer": f"{net}/{w.name}", "validation_layer": (w.name, dict(w.bound)) in val,
                         "samples": len(true), "spearman": spearman(pred, true), "kendall": kendall(pred, true),
                         "mae_log_edp": float(err.abs().mean())})
    out = {"hardware": HELDOUT_HARDWARE, "predictor": getattr(model, "source", ""), "rows": rows}
    for label, sel in (("all layers", rows), ("validation layers", [r for r in rows if r["validation_layer"]]),
                       ("training layers", [r for r in rows if not r["validation_layer"]])):
        if not sel:
            continue
        s = {"layers": len(sel), "spearman_median": statistics.median(r["spearman"] for r in sel),
             "spearman_mean": statistics.fmean(r["spearman"] for r in sel),
             "kendall_mean": statistics.fmean(r["kendall"] for r in sel),
             "mae_log_edp_mean": statistics.fmean(r["mae_log_edp"] for r in sel)}
        out[label] = s
        print(f"{label:18s} layers {s['layers']:3d}  Spearman median {s['spearman_median']:.3f} mean "
              f"{s['spearman_mean']:.3f}  Kendall mean {s['kendall_mean']:.3f}  MAE log EDP {s['mae_log_edp_mean']:.3f}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
