"""Wall time of ``accelmap map resnet18`` (default budget) on the local process pool vs Ray.

Each run is the real command in a fresh process, alternating pool and Ray runs, 3 of each:

    accelmap map resnet18 --workers N --out TMP          (process pool, N = CPU count)
    accelmap map resnet18 --ray auto --out TMP           (no cluster running: starts a local
                                                          one with the same CPU count)

Two times per run: the whole command (Python start-up, imports, Ray start-up and shutdown,
writing the run directory) and the search alone (``wall_seconds`` in summary.json: from the
first task submitted to the last result, without the backend's start-up and shutdown). The
medians and the Ray/pool ratios of both go to bench/results/ray_vs_pool.json. The machine is
shared and noisy; the same seed gives the same mappings on both backends (checked here too).

    python bench/ray_vs_pool.py [--runs 3] [--network resnet18]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "ray_vs_pool.json"


def run_once(network: str, backend: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "accelmap.cli", "map", network, "--out", str(out), *backend]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text())
    return {"command": " ".join(["accelmap", *cmd[3:]]), "total_s": total, "search_s": s["settings"]["wall_seconds"],
            "energy_pJ": s["totals"]["energy_pJ"], "cycles": s["totals"]["cycles"],
            "mappings": sorted(p.read_text() for p in (out / "mappings").glob("*.yaml"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--network", default="resnet18")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    backends = {"pool": ["--workers", str(cpus)], "ray": ["--ray", "auto"]}
    runs: dict[str, list[dict]] = {k: [] for k in backends}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for name, flags in backends.items():
                res = run_once(args.network, flags, Path(tmp) / f"{name}{r}")
                runs[name].append(res)
                print(f"run {r + 1} {name:4s}: command {res['total_s']:6.1f} s, search {res['search_s']:6.1f} s",
                      flush=True)
    same = all(a["mappings"] == b["mappings"] for a in runs["pool"] for b in runs["ray"])
    med = {name: {k: statistics.median(x[k] for x in rs) for k in ("total_s", "search_s")} for name, rs in runs.items()}
    ratio = {"including_ray_startup": med["ray"]["total_s"] / med["pool"]["total_s"],
             "excluding_ray_startup": med["ray"]["search_s"] / med["pool"]["search_s"]}
    import ray

    result = {
        "network": args.network, "runs": args.runs, "cpus": cpus, "machine": platform.platform(),
        "python": platform.python_version(), "ray": ray.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
        "median": med, "ratio_ray_over_pool": ratio, "identical_mappings": same,
        "runs_detail": {k: [{kk: vv for kk, vv in x.items() if kk != "mappings"} for x in v] for k, v in runs.items()},
        "note": "shared, noisy machine; command = whole process incl. imports and Ray start-up/shutdown, "
                "search = summary.json wall_seconds (backend start-up/shutdown excluded)",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"\n{args.network}, default budget, {cpus} CPUs, median of {args.runs} runs")
    print(f"{'backend':8s} {'command (s)':>12s} {'search (s)':>11s}")
    for name in backends:
        print(f"{name:8s} {med[name]['total_s']:12.1f} {med[name]['search_s']:11.1f}")
    print(f"{'ray/pool':8s} {ratio['including_ray_startup']:12.2f} {ratio['excluding_ray_startup']:11.2f}")
    print(f"identical mappings on both backends: {same}; written to {OUT}")


if __name__ == "__main__":
    main()
