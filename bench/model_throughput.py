"""Cost-model throughput: mappings/s at batch 1, 1k, 64k and 1M, and the latency of one call.

Mappings are random factorizations/orders of the resnet18 layers on eyeriss_like with the
preset's bypass constraints (each spad keeps its own tensor), as a mapper would evaluate them.
Backends: the compiled kernel (the default on CPU) with and without the per-level breakdown,
the tensor model in eager PyTorch (float32, chunks of 4096), and the tensor model on CUDA when
a GPU is present. Timings on a shared machine are noisy: each figure is the median of several
repetitions, and the tensor model is measured in the same run as a baseline.

    python bench/model_throughput.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.mapspace.constraints import Constraints, read_constraints
from accelmap.mapspace.sampling import random_batch
from accelmap.mapspace.space import MappingSpace
from accelmap.model.cost_model import CostModel
from accelmap.workload.zoo import get_network

OUT = Path(__file__).parent / "results" / "model_throughput.json"  # cuda runs: model_throughput_cuda.json


def preset_keep(arch, workload) -> torch.Tensor:
    """[L, T] keep pattern from the preset's bypass constraints (everything kept otherwise)."""
    path = preset_constraints(arch.name)
    cons = read_constraints(path) if path else Constraints()
    return MappingSpace(workload, arch, cons).keep_fixed != 0


def rate(fn, n_maps: int, reps: int) -> tuple[float, list[float]]:
    fn()  # warm-up (and JIT compile)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_maps / statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and no 1M batch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="also run the tensor model under torch.compile")
    args = ap.parse_args()
    arch = preset("eyeriss_like")
    layers = [u.workload for u in get_network("resnet18").unique_layers()]
    sizes = [1, 1024, 65536] + ([] if args.quick else [1 << 20])
    reps = 3 if args.quick else 9
    rows = []
    gen = torch.Generator().manual_seed(args.seed)
    for size in sizes:
        # Large batches: one batch per layer would take minutes; cycle over the layers.
        use = layers if size <= 65536 else layers[:3]
        batches = [(w, random_batch(w, arch, size, gen, keep=preset_keep(arch, w))) for w in use]
        total = size * len(batches)
        configs = []
        if args.device == "cpu":
            configs += [("kernel", "search (no breakdown)", dict(backend="kernel"), False),
                        ("kernel", "full breakdown", dict(backend="kernel"), True)]
            if size <= 65536:
                configs.append(("torch eager f32", "full breakdown", dict(backend="torch", dtype=torch.float32), True))
        else:
            configs.append((f"torch {args.device} f32", "full breakdown",
                            dict(backend="torch", dtype=torch.float32, device=args.device), True))
        if args.compile:
            configs += [(c[0] + " compiled", c[1], dict(c[2], compiled=True), c[3]) for c in configs
                        if c[2].get("backend") == "torch"]
        for name, mode, kw, detail in configs:
            kw = dict(kw)
            compiled = kw.pop("compiled", False)
            models = [CostModel(w, arch, **kw) for w, _ in batches]
            if compiled:
                for m in models:
                    m._evaluate = torch.compile(m._evaluate, dynamic=False)
            dev_batches = [b.to(models[0].device) for _, b in batches]
            # eager CPU runs best in cache-sized chunks; a GPU wants large ones
            chunk = size if kw.get("backend") != "torch" else (4096 if args.device == "cpu" else 1 << 18)

            def run():
                for m, b in zip(models, dev_batches):
                    for i in range(0, len(b), chunk):
                        c = m(b[i : i + chunk], detail=detail)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                return c

            r, times = rate(run, total, reps if size > 1 else 1)
            row = {"batch": size, "backend": name, "mode": mode, "mappings_per_s": r, "layers": len(batches),
                   "median_s": statistics.median(times), "times_s": times}
            if size == 1:
                # latency per call at batch 1, median over 200 calls on one layer
                m, b = models[1], dev_batches[1]
                m(b)
                lat = []
                for _ in range(200):
                    t0 = time.perf_counter()
                    m(b, detail=detail)
                    lat.append(time.perf_counter() - t0)
                row["latency_ms"] = statistics.median(lat) * 1e3
                row["mappings_per_s"] = r = 1e3 / row["latency_ms"]  # one mapping per call
            rows.append(row)
            lat_s = f"   latency {row['latency_ms']:.3f} ms" if "latency_ms" in row else ""
            print(f"batch {size:>8}  {name:<18} {mode:<22} {r:>14,.0f} mappings/s{lat_s}", flush=True)
    # Baseline ratio in the same run: kernel (search) vs torch eager at 64k.
    by = {(r["batch"], r["backend"], r["mode"]): r["mappings_per_s"] for r in rows}
    ratio = None
    if (65536, "torch eager f32", "full breakdown") in by:
        ratio = by[(65536, "kernel", "search (no breakdown)")] / by[(65536, "torch eager f32", "full breakdown")]
        print(f"kernel / torch eager at 64k: {ratio:.1f}x")
    out = OUT if args.device == "cpu" else OUT.with_name(f"model_throughput_{args.device.replace(':', '')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": torch.get_num_threads(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "device": args.device},
        "arch": "eyeriss_like", "network": "resnet18", "rows": rows, "kernel_over_torch_64k": ratio,
    }, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
