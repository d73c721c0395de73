"""Timeloop records for the architecture presets: each preset's own files (architecture YAML,
ERT, ART, exactly as packaged) and a handful of zoo layers, with random mappings that are legal
under the preset's dataflow constraints, run through Timeloop v3.0.3's ``timeloop-model``.

    python tests/data/presets/make_records.py --seed 0 --mappings 5 --presets NAME ...

writes ``tests/data/presets/NAME.jsonl.gz`` per preset (a preset's draws depend only on the seed
and its name, so one preset can be regenerated alone). Uses ``bench/timeloop_diff.py``'s runner and record format (one group per (preset, layer): the
files Timeloop read, the mappings, Timeloop's parsed stats); ``tests/test_presets.py`` checks
every record against accelmap without Timeloop.
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

    from accelmap.space import MappingSpace

    space = MappingSpace(workload, arch, constraints)
    g = space.sample_legal(n, torch.Generator().manual_seed(seed), max_draws=400_000)
    return space.decode(g[:n]).to_mappings(workload, arch)


def generate(seed: int, n_maps: int, workers: int, presets=PRESETS, layers=LAYERS, log=print) -> list[dict]:
    from accelmap.architecture import preset, preset_constraints, preset_files
    from accelmap.constraints import read_constraints
    from accelmap.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml
    from accelmap.zoo import get_network

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
                    res = list(pool.map(lambda iy: tl.run_timeloop(files, iy[1], d / f"m{iy[0]}"), enumerate(yamls)))
                    groups.append({"arch_name": name, "features": ["preset"], "layer": f"{net}/{w.name}",
                                   "kind": w.kind, "files": {k: Path(p).read_text() for k, p in files.items()},
                                   "mappings": yamls, "timeloop": res})
                    log(f"{name} {net}/{w.name}: {sum('error' not in x for x in res)}/{len(res)} accepted by Timeloop",
                        flush=True)
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
    args = ap.parse_args(argv)
    tl = _bench()
    if not tl.TIMELOOP.is_file():
        print(f"no Timeloop at {tl.TIMELOOP}", file=sys.stderr)
        return 2
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
