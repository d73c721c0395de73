"""How well the imperfect search's fast screen (``CostModel.screen``) ranks residual mappings,
against the exact residual model (which equals Timeloop's counts, issue 16's records).

    python bench/imperfect_screen.py [--networks vit_b16] [--archs eyeriss_like simple_pe16x16]
        [--samples 20000] [--exact 300]

Per (architecture, unique layer): ``--samples`` draws of the imperfect mapping space (as a search
draws them), screened; the first ``--exact`` legal ones with residual ends evaluated exactly.
Reported: validity agreement, the screen/exact ratio of energy, cycles and EDP (median, 10th and
90th percentile, extremes), Spearman's rank correlation of EDP, whether the screen's best is the
exact best among them, and both speeds (mappings/s, one thread). Writes
bench/results/imperfect_screen.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "imperfect_screen.json"


def _ranks(x):
    import torch

    r = torch.empty_like(x)
    r[torch.argsort(x)] = torch.arange(len(x), dtype=x.dtype)
    return r


def spearman(a, b) -> float:
    ra, rb = _ranks(a.double()), _ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", nargs="+", default=["vit_b16"])
    ap.add_argument("--archs", nargs="+", default=["eyeriss_like", "simple_pe16x16"])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--exact", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    import torch

    from accelmap.arch.architecture import preset_constraints
    from accelmap.arch.load import preset
    from accelmap.errors import AccelmapError
    from accelmap.mapspace.constraints import Constraints, read_constraints
    from accelmap.mapspace.space import MappingSpace
    from accelmap.search.executor import single_threaded
    from accelmap.workload.load import load_network

    single_threaded()
    rows = []
    q = lambda x: {k: float(x.quantile(v)) for k, v in (("min", 0), ("p10", .1), ("median", .5), ("p90", .9), ("max", 1))}  # noqa: E731
    for arch_name in args.archs:
        arch = preset(arch_name)
        p = preset_constraints(arch_name)
        cons = read_constraints(p) if p else Constraints()
        for net in args.networks:
            for layer in load_network(net).unique_layers():
                w = layer.workload
                try:
                    sp = MappingSpace(w, arch, cons, imperfect=True)
                except AccelmapError as exc:
                    rows.append({"arch": arch_name, "layer": w.name, "error": str(exc)})
                    continue
                g = sp.sample(args.samples, torch.Generator().manual_seed(args.seed))
                b = sp.decode(g)
                sp.model.screen(b[:64])  # (the kernel's one-off compilation or cache load, not timed)
                t0 = time.perf_counter()
                c = sp.model.screen(b)
                t_screen = time.perf_counter() - t0
                idx = torch.nonzero(c.valid & b.imperfect).flatten()[: args.exact]
                if len(idx) == 0:
                    rows.append({"arch": arch_name, "layer": w.name, "error": "no legal residual mapping drawn"})
                    continue
                t0 = time.perf_counter()
                e = sp.model(b[idx])
                t_exact = time.perf_counter() - t0
                se, sc, sedp = c.energy[idx], c.cycles[idx], c.edp[idx]
                ok = e.valid
                best_exact = float(e.edp[ok].min())
                row = {"arch": arch_name, "layer": w.name, "compared": int(len(idx)),
                       "validity_agrees": float((e.valid == c.valid[idx]).double().mean()),
                       "energy_ratio": q(se[ok] / e.energy[ok]), "cycles_ratio": q(sc[ok] / e.cycles[ok]),
                       "edp_ratio": q(sedp[ok] / e.edp[ok]), "spearman_edp": spearman(sedp[ok], e.edp[ok]),
                       "screen_best_is_exact_best": float(e.edp[ok][torch.argmin(sedp[ok])]) == best_exact,
                       "screen_per_s": len(b) / t_screen, "exact_per_s": len(idx) / t_exact}
                rows.append(row)
                print(f"{arch_name:15s} {w.name[:38]:38s} n={row['compared']:4d} valid agree {row['validity_agrees']:.3f} "
                      f"EDP ratio median {row['edp_ratio']['median']:.4f} [{row['edp_ratio']['p10']:.3f}, "
                      f"{row['edp_ratio']['p90']:.3f}] spearman {row['spearman_edp']:.4f} best {row['screen_best_is_exact_best']}"
                      f"  screen {row['screen_per_s']:,.0f}/s exact {row['exact_per_s']:,.0f}/s", flush=True)
    ok = [r for r in rows if "error" not in r]
    summary = {"layers": len(ok), "validity_agrees_min": min(r["validity_agrees"] for r in ok),
               "spearman_min": min(r["spearman_edp"] for r in ok),
               "spearman_median": sorted(r["spearman_edp"] for r in ok)[len(ok) // 2],
               "screen_best_is_exact_best": sum(r["screen_best_is_exact_best"] for r in ok),
               "speedup_median": sorted(r["screen_per_s"] / r["exact_per_s"] for r in ok)[len(ok) // 2]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"settings": vars(args), "summary": summary, "rows": rows}, indent=1))
    print(f"\n{summary}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
