"""Timeloop records for the architecture presets: each preset's own files (architecture YAML,
ERT, ART, exactly as packaged) and a handful of zoo layers, with random mappings that are legal
under the preset's dataflow constraints, run through Timeloop v3.0.3's ``timeloop-model``.

    python tests/data/presets/make_records.py --seed 0 --mappings 5 --presets NAME ...

writes ``tests/data/presets/NAME.jsonl.gz`` per preset (a preset's draws depend only on the seed
and its name, so one preset can be regenerated alone).

    python tests/data/presets/make_records.py --mapper --presets NAME ...

runs Timeloop's own mapper (``timeloop-mapper``) under each preset's constraint file instead and
writes its best mappings to ``tests/data/presets/mapper/NAME.jsonl.gz``. Uses
``bench/timeloop_diff.py``'s runner and record format (one group per (preset, layer): the files
Timeloop read, the mappings, Timeloop's parsed stats); ``tests/test_presets.py`` checks every
record against accelmap without Timeloop.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PRESETS = ("eyeriss_v1", "simba_like", "simple_ws", "simple_os", "tpu_like", "gemmini_like")
# (network, unique-layer index): 3x3 stride 1, 3x3 stride 2, 1x1 and the 7x7 stem of resnet18,
# a depthwise and a pointwise layer of mobilenet_v2, a matmul of bert_base
LAYERS = (("resnet18", 0), ("resnet18", 1), ("resnet18", 3), ("resnet18", 4), ("mobilenet_v2", 1),
          ("mobilenet_v2", 2), ("bert_base", 0))


def _bench():
    spec = importlib.util.spec_from_file_location("timeloop_diff", REPO / "bench" / "timeloop_diff.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def legal_mappings(workload, arch, constraints, n: int, seed: int):
    """n mappings drawn uniformly from the legal space under the preset's constraints."""
    import torch

    from accelmap.mapspace.space import MappingSpace

    space = MappingSpace(workload, arch, constraints)
    g = space.sample_legal(n, torch.Generator().manual_seed(seed), max_draws=400_000)
    return space.decode(g[:n]).to_mappings(workload, arch)


def generate(seed: int, n_maps: int, workers: int, presets=PRESETS, layers=LAYERS, log=print) -> list[dict]:
    from accelmap.arch.architecture import preset_constraints, preset_files
    from accelmap.arch.load import preset
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.workload.workload import problem_to_dict
    from accelmap.workload.zoo import get_network
    from accelmap.yamlio import dump_yaml

    tl = _bench()
    groups = []
    tmp = Path(tempfile.mkdtemp(prefix="presetrec"))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for name in presets:
                rng = random.Random(f"{seed}:{name}")
                arch = preset(name)
                cons = read_constraints(preset_constraints(name))
                a, e, r = preset_files(name)
                for net, li in layers:
                    w = get_network(net).unique_layers()[li].workload
                    d = tmp / f"{name}_{w.name}"
                    d.mkdir()
                    prob = d / "problem.yaml"
                    prob.write_text(dump_yaml(problem_to_dict(w)))
                    files = {"arch": a, "ert": e, "art": r, "problem": prob}
                    try:
                        maps = legal_mappings(w, arch, cons, n_maps, rng.randrange(2**31))
                    except Exception as exc:  # noqa: BLE001  no legal mapping for this pair
                        log(f"  skip {name} {net}/{w.name}: {exc}")
                        continue
                    yamls = [m.to_yaml() for m in maps]
                    res = list(pool.map(lambda iy, files=files, d=d: tl.run_timeloop(files, iy[1], d / f"m{iy[0]}"),
                                        enumerate(yamls)))
                    groups.append({"arch_name": name, "features": ["preset"], "layer": f"{net}/{w.name}",
                                   "kind": w.kind, "files": {k: Path(p).read_text() for k, p in files.items()},
                                   "mappings": yamls, "timeloop": res})
                    log(f"{name} {net}/{w.name}: {sum('error' not in x for x in res)}/{len(res)} accepted by Timeloop",
                        flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return groups


# Timeloop's own mapper under each preset's constraints: a short random-pruned search per layer
MAPPER_LAYERS = (("resnet18", 1), ("bert_base", 0))
MAPPER_YAML = """mapper:
  optimization-metrics: [edp]
  live-status: False
  num-threads: 2
  timeout: 1000
  victory-condition: 100
  search-size: 100
  algorithm: random-pruned
  max-permutations-per-if-visit: 4
"""


def run_mapper(files: dict, constraints: Path, workdir: Path, timeloop_bin: Path) -> dict:
    """timeloop-mapper on the preset's files and constraints: {'mapping': map.yaml text, 'stats':
    parsed stats} or {'error': ...}."""
    import subprocess

    tl = _bench()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "mapper.yaml").write_text(MAPPER_YAML)
    cmd = [str(timeloop_bin.parent / "timeloop-mapper"), str(files["arch"]), str(files["problem"]), "mapper.yaml",
           str(constraints), str(files["ert"]), str(files["art"])]
    try:
        p = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    stats, mp = workdir / "timeloop-mapper.stats.txt", workdir / "timeloop-mapper.map.yaml"
    if p.returncode != 0 or not stats.is_file() or not mp.is_file():
        return {"error": " | ".join((p.stdout + p.stderr).strip().splitlines()[-3:]) or f"exit {p.returncode}"}
    return {"mapping": factors_with_equals(mp.read_text()), "stats": tl.parse_stats(stats.read_text())}


def factors_with_equals(text: str) -> str:
    """Timeloop v3.0.3's mapper writes factors in its older form ('R1 S3'), which Timeloop reads
    the same as 'R=1 S=3'; accelmap's mapping reader takes only the latter, so the records hold it."""
    import re

    return re.sub(r"^(\s*factors:\s*)(.*)$",
                  lambda m: m.group(1) + re.sub(r"\b([A-Za-z]+)(\d+)\b", r"\1=\2", m.group(2)), text, flags=re.MULTILINE)


def generate_mapper(presets=PRESETS, layers=MAPPER_LAYERS, log=print) -> list[dict]:
    """One group per (preset, layer) in the records' format: Timeloop's best mapping under the
    preset's constraints, with the constraints file's text beside the others."""
    from accelmap.arch.architecture import preset_constraints, preset_files
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml
    from accelmap.workload.zoo import get_network

    tl = _bench()
    groups = []
    tmp = Path(tempfile.mkdtemp(prefix="presetmap"))
    try:
        for name in presets:
            a, e, r = preset_files(name)
            cons = preset_constraints(name)
            for net, li in layers:
                w = get_network(net).unique_layers()[li].workload
                d = tmp / f"{name}_{w.name}"
                d.mkdir()
                prob = d / "problem.yaml"
                prob.write_text(dump_yaml(problem_to_dict(w)))
                files = {"arch": a, "ert": e, "art": r, "problem": prob}
                res = run_mapper(files, cons, d / "run", tl.TIMELOOP)
                log(f"{name} {net}/{w.name}: {res.get('error', 'mapped')}", flush=True)
                if "error" in res:
                    continue
                groups.append({"arch_name": name, "features": ["preset", "timeloop-mapper"], "layer": f"{net}/{w.name}",
                               "kind": w.kind, "files": {k: Path(p).read_text() for k, p in files.items()},
                               "constraints": Path(cons).read_text(), "mappings": [res["mapping"]],
                               "timeloop": [res["stats"]]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return groups


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mappings", type=int, default=6, help="mappings per (preset, layer)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--presets", nargs="*", default=list(PRESETS))
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--mapper", action="store_true",
                    help="instead: Timeloop's mapper under each preset's constraints, to OUT_DIR/mapper/NAME.jsonl.gz")
    args = ap.parse_args(argv)
    tl = _bench()
    if not tl.TIMELOOP.is_file():
        print(f"no Timeloop at {tl.TIMELOOP}", file=sys.stderr)
        return 2
    if args.mapper:
        groups = generate_mapper(tuple(args.presets))
        for name in args.presets:
            meta = {"preset": name, "command": f"python tests/data/presets/make_records.py --mapper --presets {name}",
                    "mapper": MAPPER_YAML, "timeloop": "v3.0.3 (NVlabs/timeloop 6b41058)"}
            tl.write_records([g for g in groups if g["arch_name"] == name], args.out_dir / "mapper" / f"{name}.jsonl.gz",
                             meta)
        rows = tl.check_groups(groups, backends=("torch",))
        tl.print_table([tl.summarize(rows, groups, "torch")])
        return 0
    groups = generate(args.seed, args.mappings, args.workers, tuple(args.presets))
    for name in args.presets:
        meta = {"seed": args.seed, "mappings": args.mappings, "preset": name,
                "command": f"python tests/data/presets/make_records.py --seed {args.seed} --mappings {args.mappings} "
                           f"--presets {name}",
                "timeloop": "v3.0.3 (NVlabs/timeloop 6b41058)"}
        tl.write_records([g for g in groups if g["arch_name"] == name], args.out_dir / f"{name}.jsonl.gz", meta)
    rows = tl.check_groups(groups, backends=("torch", "kernel"))
    sums = [tl.summarize(rows, groups, be) for be in ("torch", "kernel")]
    tl.print_table(sums)
    for row in rows:
        if "crash" in row or ("torch" in row and (row["torch"]["mismatches"] or not row["torch"]["energy_ok"]
                                                  or row["torch"]["cycles_err"] != 0)):
            print("MISMATCH", row["arch"], row["layer"], row["mapping"], {k: v for k, v in row.get("torch", row).items()
                                                                       if k != "counts"})
    print(f"wrote {len(args.presets)} record files to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
