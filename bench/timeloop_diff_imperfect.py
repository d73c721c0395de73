"""Differential records of imperfect (residual) mappings: random architectures and layers as
``bench/timeloop_diff.py`` draws them, random mappings whose loops have residual ends
(Timeloop v3's ``factors: P=8,5``, temporal and spatial, at any level), run through
``timeloop-model`` v3.0.3.

    python bench/timeloop_diff_imperfect.py --seed 16 --archs 48 --layers 3 --mappings 16 \
        --records tests/data/timeloop_diff_imperfect/records.jsonl.gz

writes the records (the same schema as ``tests/data/timeloop_diff/records.jsonl.gz``: one
group per (architecture, layer) with the input files' text, the mapping YAMLs and Timeloop's
parsed stats or its error, so ``bench/timeloop_diff.py --check FILE`` and
``tests/mapping/test_imperfect.py`` read them) and prints how many mappings Timeloop accepted,
rejected (with the reasons, counted) and how many loops had a residual.

    python bench/timeloop_diff_imperfect.py --measure tests/data/timeloop_diff_imperfect/records.jsonl.gz

measures accelmap's cost model (its residual path) on committed records: energy and cycles
errors, the counts that differ by class, written to bench/results/timeloop_diff_imperfect_measure.json;
``--check FILE`` runs the shared checker of ``bench/timeloop_diff.py`` (both backends).

How a mapping is drawn: a legal perfect mapping from accelmap's mapping space gives the loop
orders, bypasses and which mesh axis each spatial dim uses. Then, per dimension (most of them),
every loop but the outermost (DRAM's temporal loop) may get a new end: any integer, not only a
divisor, spatial ones up to what the mesh axis has left; a loop of end 1 sometimes becomes a
real loop. The residual ends then follow from Timeloop's bound rule: with F the product of the
inner ends, the outermost loop runs r = ceil(bound / F) iterations, and the inner residual ends
are the mixed-radix digits of (bound - 1) mod F (each 1 <= r <= f). The outermost end is r,
or sometimes larger (Timeloop ignores it for the bound but counts it in cycles).
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timeloop_diff as td  # the shared helpers: random archs, layers, Timeloop runs

REPO = td.REPO
RECORDS = REPO / "tests" / "data" / "timeloop_diff_imperfect" / "records.jsonl.gz"


def _slots(arch) -> list[tuple[int, str]]:
    """Loop slots of one dimension, outermost first: each level's temporal loop, then the
    spatial loop of the fan-out below it (Timeloop's tiling levels)."""
    out = []
    for li in range(len(arch.levels)):
        out.append((li, "t"))
        if arch.fanout(li) != (1, 1):
            out.append((li, "s"))
    return out


def imperfectify(temporal, spatial, arch, bounds, rng: random.Random, p_dim: float = 0.75):
    """Residual ends for one mapping, in place on nested lists.

    temporal: [L][D] ends, spatial: [L][D][2] ends (one axis non-1 per dim); returns
    (temporal_residual [L][D], spatial_residual [L][D][2]) with the ends changed as the module
    docstring says. The bound rule holds by construction."""
    L, D = len(temporal), len(bounds)
    tres = [[temporal[li][d] for d in range(D)] for li in range(L)]
    sres = [[list(spatial[li][d]) for d in range(D)] for li in range(L)]
    slots = _slots(arch)
    for d in rng.sample(range(D), D):
        B = bounds[d]
        if B == 1 or rng.random() > p_dim:
            continue
        inner = slots[1:]
        ends = {}
        for li, kind in inner:
            if kind == "t":
                f = temporal[li][d]
                if f == 1 and rng.random() > 0.15:
                    ends[(li, kind)] = 1
                    continue
                ends[(li, kind)] = f if rng.random() < 0.3 else rng.randint(1, max(2, min(B, f + f // 2 + 2)))
            else:
                fan = arch.fanout(li)
                sp = spatial[li][d]
                axis = 0 if sp[0] > 1 else (1 if sp[1] > 1 else rng.choice([a for a in (0, 1) if fan[a] > 1]))
                others = 1
                for d2 in range(D):
                    if d2 != d:
                        others *= spatial[li][d2][axis]
                room = fan[axis] // others
                f = sp[axis]
                if room <= 1 or (f == 1 and rng.random() > 0.4):
                    ends[(li, kind)] = f
                    continue
                ends[(li, kind, axis)] = f if rng.random() < 0.25 else rng.randint(1, room)
        # keep the inner ends' product within the bound most of the time
        while math.prod(ends.values()) > B and rng.random() < 0.85:
            k = rng.choice([k for k, v in ends.items() if v > 1])
            ends[k] = max(1, ends[k] // 2)
        F = math.prod(ends.values())
        x = (B - 1) % F
        res = {}
        for k in reversed(list(ends)):  # innermost first: mixed-radix digits of (B - 1) mod F
            res[k] = x % ends[k] + 1
            x //= ends[k]
        r_top = (B - 1) // F + 1
        f_top = r_top + (rng.randint(1, 3) if rng.random() < 0.15 else 0)
        temporal[0][d], tres[0][d] = f_top, r_top
        for k, f in ends.items():
            li = k[0]
            if k[1] == "t":
                temporal[li][d], tres[li][d] = f, res[k]
            else:
                axis = k[2] if len(k) == 3 else (0 if spatial[li][d][0] > 1 else 1)
                spatial[li][d] = [1, 1]
                sres[li][d] = [1, 1]
                spatial[li][d][axis], sres[li][d][axis] = f, res[k]
    return tres, sres


def random_imperfect_mappings(workload, arch, n: int, seed: int):
    """n mappings with residual ends (nearly all imperfect; a few may come out perfect),
    each checked against accelmap's bound rule."""
    import torch

    from accelmap.mapping.mapping import MappingBatch

    rng = random.Random(seed)
    base = td.random_mappings(workload, arch, n, seed)
    batch = MappingBatch.from_mappings(base, workload, arch)
    out = []
    for b in range(len(base)):
        for _ in range(4):  # a few tries for a mapping that has a residual at all
            tem = batch.temporal[b].tolist()
            spa = batch.spatial[b].tolist()
            tres, sres = imperfectify(tem, spa, arch, list(workload.bounds), rng)
            one = MappingBatch(torch.tensor([tem]), batch.order[b:b + 1], torch.tensor([spa]), batch.keep[b:b + 1],
                               batch.spatial_order[b:b + 1], torch.tensor([tres]), torch.tensor([sres]))
            if one.has_residuals:
                break
        m = one.to_mappings(workload, arch)[0]
        m.check(workload, arch)  # the bound rule holds by construction
        out.append(m)
    return out


def run_timeloop(files: dict, mapping_yaml: str, workdir: Path) -> dict:
    """``timeloop_diff.run_timeloop`` plus what residual loops change beyond the counts:
    the MACs Timeloop counts (``computes``) and its utilization."""
    r = td.run_timeloop(files, mapping_yaml, workdir)
    stats = workdir / "timeloop-model.stats.txt"
    if "error" not in r and stats.is_file():
        text = stats.read_text()
        m = re.search(r"^Computes = (\d+)", text, re.MULTILINE)
        r["computes"] = int(m.group(1)) if m else None
        m = re.search(r"^Utilization: ([\d.]+)", text, re.MULTILINE)
        r["utilization"] = float(m.group(1)) if m else None
    return r


def generate(seed: int, n_archs: int, n_layers: int, n_maps: int, workers: int, log=print) -> list[dict]:
    """Groups as ``timeloop_diff.generate`` writes them, with residual mappings."""
    rng = random.Random(seed)
    groups = []
    tmp = Path(tempfile.mkdtemp(prefix="tldiffimp"))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for ai in range(n_archs):
                arch, feats = td.random_arch(rng, f"imp{seed}_{ai}")
                for li in range(n_layers):
                    w = td.random_layer(rng, f"layer{li}")
                    d = tmp / f"a{ai}_l{li}"
                    files = td._write_inputs(arch, w, d)
                    try:
                        maps = random_imperfect_mappings(w, arch, n_maps, rng.randrange(2**31))
                    except Exception as exc:  # noqa: BLE001  no legal perfect mapping to start from
                        log(f"  skip {arch.name} {w.name} ({w.kind}): {exc}")
                        continue
                    yamls = [m.to_yaml() for m in maps]
                    runs = [(files, y, d / f"m{i}") for i, y in enumerate(yamls)]
                    res = list(pool.map(lambda job: run_timeloop(*job), runs))
                    groups.append({"arch_name": arch.name, "features": feats, "layer": w.name, "kind": w.kind,
                                   "files": {k: p.read_text() for k, p in files.items()},
                                   "mappings": yamls, "timeloop": res})
                if (ai + 1) % 5 == 0:
                    log(f"arch {ai + 1}/{n_archs}: {len(groups)} groups", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return groups


def residual_stats(groups: list[dict]) -> dict:
    """What the records cover: mappings, Timeloop's rejections by reason, residual loops by kind."""
    from accelmap.yamlio import parse_yaml

    c = collections.Counter()
    reasons = collections.Counter()
    for g in groups:
        for y, r in zip(g["mappings"], g["timeloop"]):
            c["mappings"] += 1
            if "error" in r:
                c["rejected"] += 1
                reasons[re.sub(r"\d+", "N", r["error"].split(" | ")[-1])[:160]] += 1
            else:
                c["accepted"] += 1
            kinds = set()
            for e in parse_yaml(y)["mapping"]:
                for tok in str(e.get("factors", "")).split():
                    if "," in tok:
                        kinds.add(e["type"])
                        c[f"residual_loops_{e['type']}"] += 1
            c["imperfect_mappings"] += bool(kinds)
            c["spatial_residual_mappings"] += "spatial" in kinds
    return {**c, "archs": len({g["arch_name"] for g in groups}), "groups": len(groups),
            "rejection_reasons": dict(reasons.most_common())}


UNDERFLOW = 2.0 ** 62  # Timeloop stores a negative output fill, round(share - partition), in a uint64


def measure(path: Path) -> int:
    """Energy, cycles and count agreement of the cost model on the records (the tensor
    backend; the kernel backend routes residual batches to the same path). Records where
    Timeloop printed a wrapped count (>= 2^62, a negative fill stored unsigned) are reported
    and left out."""
    import json
    import statistics

    _, groups = td.read_records(path)
    t0 = time.time()
    rows = td.check_groups(groups, backends=("torch",))
    took = time.time() - t0
    done = [r for r in rows if "torch" in r]
    wrapped = [r for r in done if any(m[3] >= UNDERFLOW for m in r["torch"]["mismatches"])]
    kept = [r for r in done if r not in wrapped]
    ee = [abs(r["torch"]["energy_err"]) for r in kept]
    ce = [abs(r["torch"]["cycles_err"]) for r in kept]
    counts = sum(r["torch"]["counts"] for r in kept)
    mism = sum(len(r["torch"]["mismatches"]) for r in kept)
    classes = collections.Counter(f"{m[2]}:{m[1]}" for r in kept for m in r["torch"]["mismatches"])
    out = {"records": str(path), "archs": len({g["arch_name"] for g in groups}), "accepted": len(done),
           "crashes": sum("crash" in r for r in rows),
           "timeloop_wrapped_counts": len(wrapped), "compared": len(kept),
           "energy_mean_err": statistics.fmean(ee), "energy_median_err": statistics.median(ee),
           "energy_worst_err": max(ee), "cycles_mean_err": statistics.fmean(ce), "cycles_worst_err": max(ce),
           "energy_within_1e-6": sum(e <= 1e-6 for e in ee), "energy_within_0.5pct": sum(e <= 5e-3 for e in ee),
           "cycles_exact": sum(c == 0 for c in ce),
           "mappings_all_counts_equal": sum(not r["torch"]["mismatches"] for r in kept),
           "count_agreement": 1 - mism / max(1, counts), "counts": counts,
           "mismatch_classes": dict(classes.most_common()), "seconds": took}
    res = REPO / "bench" / "results" / "timeloop_diff_imperfect_measure.json"
    res.parent.mkdir(parents=True, exist_ok=True)
    prev = json.loads(res.read_text()) if res.is_file() else {}
    runs = prev.get("runs", {}) if isinstance(prev.get("runs"), dict) else {}
    runs[path.name] = out  # one entry per records file measured
    res.write_text(json.dumps({"command": "python bench/timeloop_diff_imperfect.py --measure FILE", "runs": runs},
                              indent=1) + "\n")
    print(f"{out['compared']} of {out['accepted']} accepted mappings over {out['archs']} architectures compared "
          f"({len(wrapped)} with Timeloop's wrapped uint64 fills left out), {out['crashes']} crashes, {took:.0f} s")
    print(f"energy error mean {out['energy_mean_err']:.3%} median {out['energy_median_err']:.3%} worst "
          f"{out['energy_worst_err']:.1%}; cycles error mean {out['cycles_mean_err']:.3%} worst "
          f"{out['cycles_worst_err']:.1%}; cycles exact {out['cycles_exact']}")
    print(f"energy within 1e-6: {out['energy_within_1e-6']}, within 0.5%: {out['energy_within_0.5pct']}; mappings "
          f"with every count equal: {out['mappings_all_counts_equal']}; counts equal {out['count_agreement']:.3%} "
          f"of {counts}")
    print("mismatches by class:", json.dumps(out["mismatch_classes"]))
    print(f"wrote {res}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--layers", type=int, default=3, help="layers per architecture")
    ap.add_argument("--mappings", type=int, default=8, help="mappings per (architecture, layer)")
    ap.add_argument("--workers", type=int, default=2, help="concurrent timeloop-model processes")
    ap.add_argument("--records", type=Path, help="write the generated cases here (.jsonl.gz)")
    ap.add_argument("--check", type=Path, help="evaluate committed records with accelmap (bench/timeloop_diff.py's "
                                               "checker; needs a cost model that models residuals)")
    ap.add_argument("--measure", type=Path, help="measure the cost model on committed records (errors, mismatch "
                                                 "classes); writes bench/results/timeloop_diff_imperfect_measure.json")
    ap.add_argument("--timeloop", type=Path, default=td.TIMELOOP)
    args = ap.parse_args(argv)
    if args.measure:
        return measure(args.measure)
    if args.check:
        return td.main(["--check", str(args.check), "--out", str(REPO / "bench/results/timeloop_diff_imperfect.json")])
    if not args.timeloop.is_file():
        print(f"no Timeloop at {args.timeloop}", file=sys.stderr)
        return 2
    t0 = time.time()
    groups = generate(args.seed, args.archs, args.layers, args.mappings, args.workers)
    stats = residual_stats(groups)
    meta = {"seed": args.seed, "archs": args.archs, "layers": args.layers, "mappings": args.mappings,
            "command": "python bench/timeloop_diff_imperfect.py " + " ".join(argv if argv is not None
                                                                              else sys.argv[1:]),
            "timeloop": "v3.0.3 (NVlabs/timeloop 6b41058)", "imperfect": True, "stats": stats}
    if args.records:
        td.write_records(groups, args.records, meta)
        print(f"wrote {args.records}")
    print(f"{stats['mappings']} mappings over {stats['archs']} architectures ({stats['groups']} layers) in "
          f"{time.time() - t0:.0f} s: {stats.get('accepted', 0)} accepted by Timeloop, {stats.get('rejected', 0)} "
          f"rejected; {stats.get('imperfect_mappings', 0)} with a residual "
          f"({stats.get('spatial_residual_mappings', 0)} spatial); residual loops: "
          f"{stats.get('residual_loops_temporal', 0)} temporal, {stats.get('residual_loops_spatial', 0)} spatial")
    for why, n in stats["rejection_reasons"].items():
        print(f"  rejected {n:>5}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
