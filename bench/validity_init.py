"""Validity-aware auto-tuning on vta_like: measurements to the best configuration per tuner.

Layers: the ResNet rows of DeepBench's inference server convolution set
(``code/kernels/conv_problems.h``, ``inference_server_set``) at batch 1, all nine (every one has
channel counts VTA can pack). Each layer's VTA conv2d knob space is measured exhaustively with
the ``model`` measurer first, to know the true best runtime and the invalid share. Then every
tuner runs with ``--seeds`` seeds (grid once: it has no randomness) against a lookup in that
table (the same numbers the model measurer returns) until it measures a configuration with the
best runtime, or ``--budget`` measurements (a run that never finds the best counts as the
budget; the tables say how many did not).

Reported per layer and tuner: median and IQR of measurements to the best and to within 1% of
it, the invalid share of the first batches, and the XGBoost ranking model's pairwise accuracy
and NDCG@64 on the layer's valid configurations when trained on ``--train`` random
measurements with invalid points as 0-labels (AutoTVM) or left out (the method).

    python bench/validity_init.py                  # writes bench/results/validity_init.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# w, h, c, n, k, filter_w, filter_h, pad_w, pad_h, wstride, hstride (DeepBench's order), batch 1
DEEPBENCH_RESNET = [
    (56, 56, 64, 1, 64, 3, 3, 1, 1, 1, 1),
    (56, 56, 64, 1, 256, 1, 1, 0, 0, 2, 2),
    (28, 28, 128, 1, 128, 3, 3, 1, 1, 1, 1),
    (28, 28, 128, 1, 512, 1, 1, 0, 0, 2, 2),
    (14, 14, 256, 1, 256, 1, 1, 0, 0, 1, 1),
    (14, 14, 256, 1, 256, 3, 3, 1, 1, 1, 1),
    (14, 14, 256, 1, 1024, 1, 1, 0, 0, 2, 2),
    (7, 7, 512, 1, 512, 1, 1, 0, 0, 1, 1),
    (7, 7, 2048, 1, 512, 1, 1, 3, 3, 2, 2),
]
TUNERS = ("random", "grid", "xgb", "xgb-validity", "xgb-validity-learned")
BATCHES_REPORTED = 4


def deepbench_layer(row):
    from accelmap.workload.workload import conv2d

    w, h, c, n, k, fw, fh, pw, ph, sw, sh = row
    out_w = (w + 2 * pw - fw) // sw + 1
    out_h = (h + 2 * ph - fh) // sh + 1
    name = f"db_{w}x{h}_c{c}_k{k}_{fw}x{fh}" + (f"_s{sw}" if sw > 1 else "")
    return conv2d(name, C=c, K=k, P=out_w, Q=out_h, R=fw, S=fh, N=n, stride=(sw, sh))


def exhaustive(row):
    """(task, runtimes [size] with nan for invalid, error codes [size])."""
    from accelmap.arch.load import preset
    from accelmap.tune.driver import make_task
    from accelmap.tune.measurer import ModelMeasurer

    task = make_task(deepbench_layer(row), preset("vta_like"))
    res = ModelMeasurer().measure(task, task.space.enumerate())
    runtimes = np.array([r.runtime if r.valid else np.nan for r in res])
    errors = [r.error for r in res]
    return task, runtimes, errors


def run_tuner(args):
    """One (layer, tuner, seed): measurements to the best and to 1%, invalid flags per measurement."""
    row, tuner, seed, budget, batch = args
    from accelmap.tune.measurer import MeasureResult
    from accelmap.tune.tuners import get_tuner
    from accelmap.tune.validity import RuleValidity

    task, runtimes, errors = exhaustive(row)
    space = task.space
    best = np.nanmin(runtimes)
    tcls = get_tuner(tuner)
    validity = RuleValidity(space, task.arch) if tcls.validity == "rules" else None
    t0 = time.perf_counter()
    tu = tcls(space, seed, batch, validity)
    n, to_best, to_1pct, invalid = 0, None, None, []
    while n < budget and to_best is None:
        pts = tu.next_batch(min(batch, budget - n))
        if not len(pts):
            break
        idx = space.keys(pts)
        results = [MeasureResult(float(runtimes[i])) if errors[i] is None else MeasureResult(None, errors[i]) for i in idx]
        for j, (i, r) in enumerate(zip(idx, results)):
            invalid.append(not r.valid)
            if r.valid and to_1pct is None and runtimes[i] <= best * 1.01:
                to_1pct = n + j + 1
            if r.valid and to_best is None and runtimes[i] == best:
                to_best = n + j + 1
        n += len(pts)
        tu.update(pts, results)
    return {"layer": task.name, "tuner": tuner, "seed": seed, "to_best": to_best, "to_1pct": to_1pct,
            "measured": n, "invalid": invalid, "seconds": time.perf_counter() - t0}


def ranking_quality(args):
    """Ranking model trained on ``train`` random measurements, with and without invalid points."""
    row, seed, train = args
    from accelmap.tune.ranking import RankingModel, ndcg, pairwise_accuracy, throughput_labels

    task, runtimes, _ = exhaustive(row)
    space = task.space
    rng = np.random.default_rng(seed)
    pick = rng.permutation(space.size)[:train]
    test = np.setdiff1d(np.nonzero(np.isfinite(runtimes))[0], pick)
    pts = space.points(np.arange(space.size))
    feats = space.features(pts)
    true = throughput_labels(runtimes)
    out = {"layer": task.name, "seed": seed, "train_invalid_share": float(np.isnan(runtimes[pick]).mean())}
    for label, rows in (("with_invalid", pick), ("valid_only", pick[np.isfinite(runtimes[pick])])):
        if not np.isfinite(runtimes[rows]).any():
            out[label] = None
            continue
        m = RankingModel(seed)
        m.fit(feats[rows], throughput_labels(runtimes[rows]))
        pred = m.predict(feats[test])
        out[label] = {"pairwise_accuracy": pairwise_accuracy(pred, true[test], np.random.default_rng(seed)),
                      "ndcg64": ndcg(pred, true[test], 64)}
    return out


def q(xs, p):
    return float(np.percentile(xs, p)) if len(xs) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=1000, help="measurements per run at most")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--train", type=int, default=128, help="random measurements the ranking study trains on")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--layers", type=int, default=len(DEEPBENCH_RESNET), help="first N layers only")
    ap.add_argument("--out", default=str(ROOT / "bench/results/validity_init.json"))
    a = ap.parse_args()
    t0 = time.time()
    rows = DEEPBENCH_RESNET[: a.layers]
    layers = []
    for row in rows:
        task, runtimes, errors = exhaustive(row)
        ok = np.isfinite(runtimes)
        best = float(np.nanmin(runtimes))
        codes: dict[str, int] = {}
        for e in errors:
            if e:
                codes[e] = codes.get(e, 0) + 1
        layers.append({"name": task.name, "deepbench": list(row), "dims": dict(zip(task.layer.dims, task.layer.bounds)),
                       "space": task.space.size, "valid": int(ok.sum()), "invalid_share": float(1 - ok.mean()),
                       "errors": codes, "best_cycles": best, "ideal_cycles": task.layer.macs / 256,
                       "best_count": int((runtimes == best).sum()), "within_1pct": int((runtimes <= best * 1.01).sum()),
                       "best_config": task.space.config(task.space.points([int(np.nanargmin(runtimes))])[0])})
    jobs = [(row, t, s, a.budget, a.batch) for row in rows for t in TUNERS for s in (range(1) if t == "grid" else range(a.seeds))]
    rjobs = [(row, s, a.train) for row in rows for s in range(a.seeds)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        runs = list(pool.map(run_tuner, jobs, chunksize=1))
        ranks = list(pool.map(ranking_quality, rjobs, chunksize=1))
    stats = []
    for lay in layers:
        for t in TUNERS:
            rs = [r for r in runs if r["layer"] == lay["name"] and r["tuner"] == t]
            tb = [r["to_best"] or a.budget for r in rs]
            t1 = [r["to_1pct"] or a.budget for r in rs]
            per_batch = []
            for b in range(BATCHES_REPORTED):
                shares = [np.mean(r["invalid"][b * a.batch:(b + 1) * a.batch]) for r in rs if len(r["invalid"]) > b * a.batch]
                per_batch.append(float(np.mean(shares)) if shares else None)
            stats.append({"layer": lay["name"], "tuner": t, "runs": len(rs),
                          "to_best": tb, "to_best_median": q(tb, 50), "to_best_q25": q(tb, 25), "to_best_q75": q(tb, 75),
                          "to_best_iqr": q(tb, 75) - q(tb, 25), "not_found": sum(r["to_best"] is None for r in rs),
                          "to_1pct": t1, "to_1pct_median": q(t1, 50), "to_1pct_iqr": q(t1, 75) - q(t1, 25),
                          "invalid_share_by_batch": per_batch,
                          "invalid_share": float(np.mean([np.mean(r["invalid"]) for r in rs])),
                          "first_batch_invalid_max": max(float(np.mean(r["invalid"][: a.batch])) for r in rs),
                          "seconds_mean": float(np.mean([r["seconds"] for r in rs]))})
    ranking = []
    for lay in layers:
        rr = [r for r in ranks if r["layer"] == lay["name"]]
        entry = {"layer": lay["name"], "train_invalid_share": float(np.mean([r["train_invalid_share"] for r in rr]))}
        for label in ("with_invalid", "valid_only"):
            ok = [r[label] for r in rr if r[label]]
            entry[label] = {k: float(np.mean([o[k] for o in ok])) for k in ("pairwise_accuracy", "ndcg64")} if ok else None
        ranking.append(entry)

    def stat(layer, tuner):
        return next(s for s in stats if s["layer"] == layer and s["tuner"] == tuner)

    ratios, spread = [], []
    for lay in layers:
        x, v = stat(lay["name"], "xgb"), stat(lay["name"], "xgb-validity")
        ratios.append(v["to_best_median"] / x["to_best_median"])
        spread.append(v["to_best_iqr"] < x["to_best_iqr"])
    pooled_x = [n for lay in layers for n in stat(lay["name"], "xgb")["to_best"]]
    pooled_v = [n for lay in layers for n in stat(lay["name"], "xgb-validity")["to_best"]]
    verdict = {
        "ratio_per_layer": dict(zip([lay["name"] for lay in layers], ratios)),
        "layers_at_or_below_0.416": int(sum(r <= 0.416 for r in ratios)),
        "ratio_geomean": float(np.exp(np.mean(np.log(ratios)))),
        "ratio_of_pooled_medians": float(np.median(pooled_v) / np.median(pooled_x)),
        "lower_iqr_layers": int(sum(spread)),
        "first_batch_invalid_max_xgb_validity": max(stat(lay["name"], "xgb-validity")["first_batch_invalid_max"]
                                                    for lay in layers),
    }
    result = {"command": "python bench/validity_init.py " + " ".join(sys.argv[1:]), "seeds": a.seeds,
              "budget": a.budget, "batch": a.batch, "train": a.train, "target": "vta_like", "runtime_unit": "cycles",
              "layers": layers, "tuners": stats, "ranking": ranking, "verdict": verdict,
              "seconds": round(time.time() - t0, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))

    print("| layer | space | invalid | best (cycles) | ideal | configs at best / within 1% |")
    print("|---|---|---|---|---|---|")
    for lay in layers:
        print(f"| {lay['name']} | {lay['space']:,} | {lay['invalid_share']:.0%} | {lay['best_cycles']:,.0f} | "
              f"{lay['ideal_cycles']:,.0f} | {lay['best_count']} / {lay['within_1pct']} |")
    print()
    print("| layer | tuner | to best: median [IQR] | not found | to 1%: median [IQR] | invalid share, batches 1-4 |")
    print("|---|---|---|---|---|---|")
    for s in stats:
        inv = " / ".join("-" if x is None else f"{x:.0%}" for x in s["invalid_share_by_batch"])
        print(f"| {s['layer']} | {s['tuner']} | {s['to_best_median']:.0f} [{s['to_best_q25']:.0f}-{s['to_best_q75']:.0f}] | "
              f"{s['not_found']} | {s['to_1pct_median']:.0f} [{s['to_1pct_iqr']:.0f}] | {inv} |")
    print()
    print("| layer | train invalid | pairwise acc. with invalid | without | NDCG@64 with invalid | without |")
    print("|---|---|---|---|---|---|")
    for r in ranking:
        w, v = r["with_invalid"] or {}, r["valid_only"] or {}
        print(f"| {r['layer']} | {r['train_invalid_share']:.0%} | {w.get('pairwise_accuracy', float('nan')):.3f} | "
              f"{v.get('pairwise_accuracy', float('nan')):.3f} | {w.get('ndcg64', float('nan')):.3f} | "
              f"{v.get('ndcg64', float('nan')):.3f} |")
    print()
    print(json.dumps(verdict, indent=1))
    print(f"{result['seconds']:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
