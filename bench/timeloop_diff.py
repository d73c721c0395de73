"""Differential test of accelmap's cost model against Timeloop v3.0.3 (``timeloop-model``).

Random architectures (written as Timeloop v0.3 YAML + ERT/ART by accelmap's own writer), random
layers and random legal mappings (drawn from accelmap's :class:`~accelmap.mapspace.space.MappingSpace`)
go through ``timeloop-model`` and through accelmap (read back from the very files Timeloop read,
evaluated in one batch per (architecture, layer) with both the tensor model and the numba
kernel). Compared: total energy, cycles and every per-level, per-tensor scalar read, fill and
update. Crashes of either side are counted, not hidden.

    python bench/timeloop_diff.py --seed 0 --archs 120 --layers 4 --mappings 12 \
        --records tests/data/timeloop_diff/records.jsonl.gz

prints the table, writes ``bench/results/timeloop_diff.json`` (summary and every mismatch) and,
with ``--records``, the Timeloop results as test data that ``tests/model/test_timeloop_diff.py``
re-checks without Timeloop. ``--check FILE`` re-evaluates committed records instead of running
Timeloop.

Architecture features drawn (each arch names its features in the JSON): 1-3 spatial fanout
levels, meshX/meshY splits (fanout on X, Y or both), chains of 1-3 per-PE buffers, small
"dummy" buffers that mappings often bypass entirely, any keep/bypass subset per level,
finite and infinite read/write bandwidths on every level, block sizes 1-8, word widths
8/16/32 bits, a fanout from the innermost buffer to several MACs. Layers: conv (stride,
dilation, N > 1, P != Q, R != S), depthwise (custom shape), grouped, matmul, batched matmul.
Mappings: uniform legal draws plus draws biased to unroll sliding windows (P with R, Q with
S) and reduction dims spatially.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMELOOP = REPO.parent / "shared" / "timeloop" / "bin" / "timeloop-model"
OUT = REPO / "bench" / "results" / "timeloop_diff.json"
COUNTS = ("reads", "fills", "updates")
_STAT_KEYS = {"Scalar reads (per-instance)": "reads", "Scalar fills (per-instance)": "fills",
              "Scalar updates (per-instance)": "updates", "Utilized capacity": "tile",
              "Link transfers": "link_transfers", "Ingresses": "ingresses", "Spatial reductions": "spatial_reductions"}


# ---- Timeloop's output ---------------------------------------------------------------------

def parse_stats(text: str) -> dict:
    """Energy (pJ, the sum of every '... Energy (total)' line: levels, MACs, networks), cycles,
    and per level (and per network ``A <==> B``) and dataspace the counts of ``_STAT_KEYS``."""
    energy, terms = 0.0, 0
    for m in re.finditer(r"^\s*[A-Za-z ]*Energy \(total\)\s*:\s*([-\d.e+]+) pJ", text, re.M):
        energy += float(m.group(1))
        terms += 1 if float(m.group(1)) else 0
    cyc = re.search(r"^Cycles: (\d+)", text, re.M)
    levels: dict[str, dict] = {}
    cur, ds = None, None
    for line in text.splitlines():
        m = re.match(r"^=== (.+) ===$", line)
        if m:
            cur, ds = levels.setdefault(m.group(1), {}), None
            continue
        m = re.match(r"^(\S.*) <==> (\S.*)$", line)
        if m:
            cur, ds = levels.setdefault(f"{m.group(1)} <==> {m.group(2)}", {}), None
            continue
        if line.startswith(("Summary Stats", "Operational Intensity")):
            cur = None
        if cur is None:
            continue
        m = re.match(r"^    (\w+):$", line)
        if m:
            ds = cur.setdefault(m.group(1), {})
            continue
        m = re.match(r"^        ([A-Za-z ()\-]+?)\s*: ([-\d.e+]+)", line)
        if m and ds is not None and m.group(1) in _STAT_KEYS:
            ds[_STAT_KEYS[m.group(1)]] = float(m.group(2))
    # Each term is printed to 0.01 pJ: the total is known to +-0.005 pJ per non-zero term.
    return {"energy_pJ": energy, "energy_tol_pJ": 0.005 * terms, "cycles": int(cyc.group(1)) if cyc else None, "levels": levels}


def run_timeloop(files: dict[str, Path], mapping_yaml: str, workdir: Path, timeloop: Path = TIMELOOP) -> dict:
    """One ``timeloop-model`` run in ``workdir``: the parsed stats, or {'error': last lines}."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "map.yaml").write_text(mapping_yaml)
    for f in ("timeloop-model.stats.txt",):
        (workdir / f).unlink(missing_ok=True)
    cmd = [str(timeloop), str(files["arch"]), str(files["problem"]), "map.yaml", str(files["ert"]), str(files["art"])]
    try:
        p = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    stats = workdir / "timeloop-model.stats.txt"
    if p.returncode != 0 or not stats.is_file():
        tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {p.returncode}"}
    return parse_stats(stats.read_text())


# ---- random architectures ------------------------------------------------------------------

def random_arch(rng: random.Random, name: str):
    """A random architecture and the list of features it exercises."""
    from accelmap.arch.architecture import Architecture, ComputeUnit, StorageLevel

    feats: set[str] = set()
    n_fan = rng.choices([1, 2, 3], [5, 4, 2])[0]
    feats.add(f"fanout_levels={n_fan}")
    bits = rng.choices([16, 8, 32], [6, 2, 2])[0]
    if bits != 16:
        feats.add(f"word_bits={bits}")

    def bw():
        if rng.random() < 0.45:
            return None
        feats.add("finite_bw")
        return float(rng.choice([1, 2, 4, 8, 16, 32]))

    def level(lname, cls, inst, mesh_x, cap, is_dram=False):
        blk = rng.choices([1, 2, 4, 8], [5, 2, 2, 1])[0]
        if blk > 1:
            feats.add("block>1")
        if cap is not None:
            cap = max(blk, cap // blk * blk)
        e = rng.uniform(100, 600) if is_dram else rng.uniform(0.05, 3.0) * (1 + math.log2(max(cap or 1, 1)))
        return StorageLevel(lname, cls, cap, bits, blk, inst, mesh_x, bw(), bw(),
                            round(e * blk ** 0.5, 4), round(e * blk ** 0.5 * rng.uniform(0.9, 1.3), 4),
                            round(rng.uniform(10, 5000), 2))

    levels = [level("DRAM", "DRAM", 1, 1, None, True)]
    if rng.random() < 0.85:
        levels.append(level("GLB", "SRAM", 1, 1, rng.choice([512, 1024, 2048, 4096, 8192, 16384])))
    inst, mx = 1, 1
    for f in range(n_fan):
        fx, fy = rng.choice([(2, 1), (4, 1), (1, 2), (1, 4), (2, 2), (3, 1), (4, 2), (2, 3), (4, 4), (8, 1),
                             (3, 3), (1, 3)])
        feats.add("mesh_xy" if fx > 1 and fy > 1 else ("mesh_x" if fx > 1 else "mesh_y"))
        inst, mx = inst * fx * fy, mx * fx
        last = f == n_fan - 1
        to_mac = last and rng.random() < 0.25  # the innermost buffer fans out to several MACs
        if to_mac:
            feats.add("fanout_to_macs")
            break
        chain = rng.choices([1, 2, 3], [5, 3, 2])[0] if last else rng.choices([1, 2], [3, 1])[0]
        if chain > 1:
            feats.add("buffer_chain")
        for c in range(chain):
            small = rng.random() < 0.15
            if small:
                feats.add("dummy_buffer")
            cap = rng.choice([1, 2, 4]) if small else rng.choice([4, 8, 16, 32, 64, 128, 256, 512])
            levels.append(level(f"B{f}_{c}", rng.choice(["regfile", "SRAM"]), inst, mx, cap))
    mac = ComputeUnit("mac", "intmac", inst, mx, round(rng.uniform(0.5, 4.0), 4), 1000.0, bits)
    return Architecture(name, tuple(levels), mac), sorted(feats)


# ---- random layers -------------------------------------------------------------------------

def random_layer(rng: random.Random, name: str):
    from accelmap.workload import workload as wl

    kind = rng.choices(["conv", "depthwise", "grouped", "matmul", "bmm"], [6, 2, 1, 2, 1])[0]
    small = lambda: rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 12, 16])  # noqa: E731
    if kind == "conv":
        R, S = rng.choice([1, 2, 3, 5]), rng.choice([1, 2, 3, 5])
        return wl.conv2d(name, C=rng.choice([1, 2, 3, 4, 6, 8, 16]), K=rng.choice([1, 2, 4, 6, 8, 16]),
                         P=small(), Q=small(), R=R, S=S, N=rng.choice([1, 1, 1, 2, 3, 4]),
                         stride=(rng.choice([1, 1, 2, 3]), rng.choice([1, 1, 2])),
                         dilation=(rng.choice([1, 1, 1, 2]), rng.choice([1, 1, 2])))
    if kind == "depthwise":
        C = rng.choice([2, 3, 4, 8, 16])
        return wl.conv2d(name, C=C, K=C * rng.choice([1, 1, 2]), P=small(), Q=small(), R=rng.choice([1, 3, 5]),
                         S=rng.choice([1, 3]), N=rng.choice([1, 1, 2]), stride=rng.choice([1, 2]), groups=C)
    if kind == "grouped":
        g = rng.choice([2, 3, 4])
        return wl.conv2d(name, C=g * rng.choice([1, 2, 4]), K=g * rng.choice([1, 2, 3]), P=small(), Q=small(),
                         R=rng.choice([1, 3]), S=rng.choice([1, 3]), stride=rng.choice([1, 2]), groups=g)
    if kind == "matmul":
        return wl.matmul(name, M=rng.choice([1, 2, 4, 6, 8, 16, 32]), K=rng.choice([2, 4, 8, 16, 32, 48]),
                         N=rng.choice([1, 2, 4, 8, 16, 32]))
    return wl.batched_matmul(name, batch=rng.choice([2, 3, 4]), M=rng.choice([2, 4, 8, 16]),
                             K=rng.choice([2, 4, 8, 16]), N=rng.choice([2, 4, 8]))


# ---- random legal mappings -----------------------------------------------------------------

def random_mappings(workload, arch, n: int, seed: int):
    """n legal mappings: half uniform draws of the space, half draws kept only when they put a
    sliding window (P with R or Q with S) or a reduction dim on a spatial level."""
    import torch

    from accelmap.mapspace.space import MappingSpace

    space = MappingSpace(workload, arch)
    gen = torch.Generator().manual_seed(seed)
    g = space.sample_legal(4 * n, gen, max_draws=200_000)
    batch = space.decode(g)
    sp = batch.spatial.prod(-1)  # [B, L, D]
    dims = list(workload.dims)
    di = {d: dims.index(d) for d in dims}
    interesting = torch.zeros(len(g), dtype=torch.bool)
    for a, b in (("P", "R"), ("Q", "S")):
        if a in di and b in di:
            interesting |= ((sp[:, :, di[a]] > 1).any(1) & (sp[:, :, di[b]] > 1).any(1))
    for red in ("C", "R", "S"):
        if red in di:
            interesting |= (sp[:, :, di[red]] > 1).any(1)
    idx = list(range(len(g)))
    pick = [i for i in idx if interesting[i]][: n // 2]
    pick += [i for i in idx if i not in pick][: n - len(pick)]
    sel = batch[torch.tensor(pick, dtype=torch.long)]
    return sel.to_mappings(workload, arch)


# ---- accelmap's side -----------------------------------------------------------------------

def accelmap_eval(files: dict[str, Path], mapping_yamls: list[str], backends=("torch", "kernel")) -> dict:
    """Read the files Timeloop read and evaluate every mapping in one batch per backend.
    Returns {backend: {"energy": [...], "cycles": [...], "valid": [...], "counts": [B][L][T][3]}}
    plus level and tensor names, or {"crash": message}."""
    import traceback

    from accelmap.arch.load import read_architecture
    from accelmap.mapping.mapping import MappingBatch, parse_mapping
    from accelmap.model.cost_model import CostModel
    from accelmap.workload.load import read_problem_yaml

    try:
        arch = read_architecture(files["arch"], files["ert"], files["art"])
        w = read_problem_yaml(files["problem"])
        maps = [parse_mapping(y, arch.level_names) for y in mapping_yamls]
        for m in maps:
            m.check(w, arch)
        batch = MappingBatch.from_mappings(maps, w, arch)
        out = {"levels": list(arch.level_names), "tensors": [t.name for t in w.tensors]}
        for be in backends:
            c = CostModel(w, arch, backend=be)(batch)
            out[be] = {"energy": c.energy.tolist(), "cycles": c.cycles.tolist(), "valid": c.valid.tolist(),
                       "counts": [c.reads.tolist(), c.fills.tolist(), c.updates.tolist()]}
        return out
    except Exception as exc:  # counted as a crash, with its message
        return {"crash": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3)}


def compare(tl: dict, ours: dict, b: int, levels: list[str], tensors: list[str]) -> dict:
    """Errors of mapping b: energy/cycles relative errors and the list of count mismatches."""
    e, cyc = ours["energy"][b], ours["cycles"][b]
    out = {"energy_err": e / tl["energy_pJ"] - 1 if tl["energy_pJ"] else (0.0 if e == 0 else math.inf),
           "energy_ok": abs(e - tl["energy_pJ"]) <= tl.get("energy_tol_pJ", 0.0) + 1e-9 * abs(tl["energy_pJ"]),
           "cycles_err": cyc / tl["cycles"] - 1, "valid": ours["valid"][b], "mismatches": [], "counts": 0}
    for li, lname in enumerate(levels):
        for ti, tname in enumerate(tensors):
            ds = tl["levels"].get(lname, {}).get(tname)
            for ci, key in enumerate(COUNTS):
                want = ds.get(key, 0.0) if ds else 0.0
                got = ours["counts"][ci][b][li][ti]
                out["counts"] += 1
                if abs(got - want) > 0.5:
                    out["mismatches"].append([lname, tname, key, want, got])
    return out


# ---- generation ----------------------------------------------------------------------------

def _write_inputs(arch, workload, d: Path) -> dict[str, Path]:
    from accelmap.arch.architecture import write_architecture
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    a, ert, art = write_architecture(arch, d, "arch")
    prob = d / "problem.yaml"
    prob.write_text(dump_yaml(problem_to_dict(workload)))
    return {"arch": a, "ert": ert, "art": art, "problem": prob}


def generate(seed: int, n_archs: int, n_layers: int, n_maps: int, workers: int, log=print) -> list[dict]:
    """Groups: one per (architecture, layer): the input files' text, the mappings and
    Timeloop's results for each."""
    rng = random.Random(seed)
    groups = []
    tmp = Path(tempfile.mkdtemp(prefix="tldiff"))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for ai in range(n_archs):
                arch, feats = random_arch(rng, f"rand{seed}_{ai}")
                for li in range(n_layers):
                    w = random_layer(rng, f"layer{li}")
                    d = tmp / f"a{ai}_l{li}"
                    files = _write_inputs(arch, w, d)
                    try:
                        maps = random_mappings(w, arch, n_maps, rng.randrange(2**31))
                    except Exception as exc:  # noqa: BLE001  no legal mapping for this pair
                        log(f"  skip {arch.name} {w.name} ({w.kind}): {exc}")
                        continue
                    yamls = [m.to_yaml() for m in maps]
                    res = list(pool.map(lambda iy: run_timeloop(files, iy[1], d / f"m{iy[0]}"), enumerate(yamls)))
                    groups.append({"arch_name": arch.name, "features": feats, "layer": w.name, "kind": w.kind,
                                   "files": {k: p.read_text() for k, p in files.items()},
                                   "mappings": yamls, "timeloop": res})
                log(f"arch {ai + 1}/{n_archs}: {len(groups)} groups", flush=True) if (ai + 1) % 10 == 0 else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return groups


def check_groups(groups: list[dict], backends=("torch", "kernel")) -> list[dict]:
    """Evaluate every group with accelmap; one row per mapping."""
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="tlcheck"))
    try:
        for gi, g in enumerate(groups):
            d = tmp / f"g{gi}"
            d.mkdir()
            files = {k: d / f"{k}.yaml" for k in g["files"]}
            for k, p in files.items():
                p.write_text(g["files"][k])
            ok = [i for i, r in enumerate(g["timeloop"]) if "error" not in r]
            ours = accelmap_eval(files, [g["mappings"][i] for i in ok], backends) if ok else {}
            for i, r in enumerate(g["timeloop"]):
                row = {"group": gi, "arch": g["arch_name"], "layer": g["layer"], "kind": g["kind"], "mapping": i}
                if "error" in r:
                    row["timeloop_error"] = r["error"]
                elif "crash" in ours:
                    row["crash"] = ours["crash"]
                else:
                    b = ok.index(i)
                    for be in backends:
                        row[be] = compare(r, ours[be], b, ours["levels"], ours["tensors"])
                rows.append(row)
            shutil.rmtree(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def summarize(rows: list[dict], groups: list[dict], backend: str) -> dict:
    done = [r for r in rows if backend in r]
    ee = [abs(r[backend]["energy_err"]) for r in done]
    ce = [abs(r[backend]["cycles_err"]) for r in done]
    ncounts = sum(r[backend]["counts"] for r in done)
    nmis = sum(len(r[backend]["mismatches"]) for r in done)
    classes: dict[str, int] = {}
    for r in done:
        for lv, t, key, _, _ in r[backend]["mismatches"]:
            k = f"{key}:{t}"
            classes[k] = classes.get(k, 0) + 1
    return {
        "backend": backend, "triples": len(done), "archs": len({g["arch_name"] for g in groups}),
        "layers": len(groups), "timeloop_rejected": sum("timeloop_error" in r for r in rows),
        "crashes": sum("crash" in r for r in rows),
        "energy_mean_err": sum(ee) / max(1, len(ee)), "energy_worst_err": max(ee, default=0.0),
        "cycles_mean_err": sum(ce) / max(1, len(ce)), "cycles_worst_err": max(ce, default=0.0),
        # exact: every count equal, cycles equal, energy within Timeloop's print rounding
        "exact_triples": sum(not r[backend]["mismatches"] and r[backend]["energy_ok"]
                             and r[backend]["cycles_err"] == 0 for r in done),
        "counts": ncounts, "count_agreement": 1 - nmis / max(1, ncounts),
        "triples_with_count_mismatch": sum(bool(r[backend]["mismatches"]) for r in done),
        "accelmap_invalid": sum(not r[backend]["valid"] for r in done),
        "mismatch_classes": classes,
    }


def print_table(summaries: list[dict]) -> None:
    print(f"{'backend':<8}{'triples':>8}{'archs':>6}{'TL rej':>7}{'crash':>6}{'E mean':>10}{'E worst':>10}"
          f"{'cyc mean':>10}{'cyc worst':>10}{'counts ok':>11}{'exact':>7}")
    for s in summaries:
        print(f"{s['backend']:<8}{s['triples']:>8}{s['archs']:>6}{s['timeloop_rejected']:>7}{s['crashes']:>6}"
              f"{s['energy_mean_err']:>10.2e}{s['energy_worst_err']:>10.2e}{s['cycles_mean_err']:>10.2e}"
              f"{s['cycles_worst_err']:>10.2e}{s['count_agreement']:>11.5%}{s['exact_triples']:>7}")
    for s in summaries[:1]:
        if s["mismatch_classes"]:
            print("count mismatches by class:", json.dumps(s["mismatch_classes"], sort_keys=True))


def write_records(groups: list[dict], path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", compresslevel=9) as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for g in groups:
            f.write(json.dumps(g, separators=(",", ":")) + "\n")


def read_records(path: Path) -> tuple[dict, list[dict]]:
    with gzip.open(path, "rt") as f:
        lines = [json.loads(x) for x in f]
    return lines[0]["meta"], lines[1:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--layers", type=int, default=3, help="layers per architecture")
    ap.add_argument("--mappings", type=int, default=8, help="mappings per (architecture, layer)")
    ap.add_argument("--workers", type=int, default=2, help="concurrent timeloop-model processes")
    ap.add_argument("--records", type=Path, help="also write the generated cases here (.jsonl.gz)")
    ap.add_argument("--check", type=Path, help="re-check committed records instead of running Timeloop")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--timeloop", type=Path, default=TIMELOOP)
    ap.add_argument("--merge-into", type=Path,
                    help="add this run's meta and summary to an existing results JSON (its 'other_runs') "
                         "instead of writing --out: fresh seeds beside the committed records")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.check:
        meta, groups = read_records(args.check)
    else:
        if not args.timeloop.is_file():
            print(f"no Timeloop at {args.timeloop}", file=sys.stderr)
            return 2
        groups = generate(args.seed, args.archs, args.layers, args.mappings, args.workers)
        meta = {"seed": args.seed, "archs": args.archs, "layers": args.layers, "mappings": args.mappings,
                "command": "python bench/timeloop_diff.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "timeloop": "v3.0.3 (NVlabs/timeloop 6b41058)"}
        if args.records:
            write_records(groups, args.records, meta)
    t1 = time.time()
    rows = check_groups(groups)
    sums = [summarize(rows, groups, be) for be in ("torch", "kernel")]
    print_table(sums)
    crashes = sorted({r["crash"] for r in rows if "crash" in r})
    for c in crashes[:10]:
        print("crash:", c)
    agree = sum(1 for r in rows if "torch" in r and abs(r["torch"]["energy_err"] - r["kernel"]["energy_err"]) < 1e-12
                and r["torch"]["cycles_err"] == r["kernel"]["cycles_err"]
                and r["torch"]["mismatches"] == r["kernel"]["mismatches"])
    print(f"torch == kernel on {agree}/{sum('torch' in r for r in rows)} triples; "
          f"timeloop {t1 - t0:.0f} s, accelmap {time.time() - t1:.0f} s")
    if args.merge_into:
        doc = json.loads(args.merge_into.read_text())
        runs = [r for r in doc.get("other_runs", []) if r["meta"].get("command") != meta.get("command")]
        doc["other_runs"] = runs + [{"meta": meta, "summary": sums, "crashes": crashes}]
        args.merge_into.write_text(json.dumps(doc, indent=1))
        print(f"added to {args.merge_into}")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    worst = sorted((r for r in rows if "torch" in r), key=lambda r: -abs(r["torch"]["energy_err"]))[:20]
    bad = [r for r in rows if "crash" in r or ("torch" in r and r["torch"]["mismatches"])]
    args.out.write_text(json.dumps({"meta": meta, "summary": sums, "crashes": crashes, "worst_energy": worst,
                                    "mismatched": bad[:200], "timeloop_errors": sorted({r["timeloop_error"] for r in rows
                                                                                      if "timeloop_error" in r})},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
