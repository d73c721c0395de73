"""DCP from the command line against the default search, in the same run.

Per network (mobilenet_v2, resnet50, vit_b16 on eyeriss_like), three commands, each a fresh
process as a user types it:

* ``accelmap map NET --arch eyeriss_like`` (the default search: the baseline),
* ``accelmap dcp search NET --arch eyeriss_like``,
* ``accelmap map NET --arch eyeriss_like --optimizer dcp``.

Each command runs once cold and ``--repeats`` times warm, the commands interleaved so that load
on the shared machine falls on all of them alike. Cold is the first command after install: numba's cache
(``accelmap/__pycache__/*.nbi``, ``*.nbc``) is pointed at a new empty directory
(``NUMBA_CACHE_DIR``; a copy of the package on ``PYTHONPATH`` would not be imported, the
editable install's finder comes first), so the kernel is compiled as on a fresh clone; warm
runs use the installed package's cache.
Recorded per run: the command's wall time (process start to exit), the search's own wall time
(``settings.wall_seconds`` of the run's summary.json), the median per-layer search time, the
true evaluations and the network EDP. The table reports medians over the warm runs and the
ratios to the default command's median measured in the same run.

    python bench/dcp_cli.py [--networks mobilenet_v2,resnet50,vit_b16] [--repeats 3] [--no-cold]

Writes bench/results/dcp_cli.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "dcp_cli.json"
NETWORKS = ("mobilenet_v2", "resnet50", "vit_b16")
COMMANDS = {
    "default map": ["map", "{net}", "--arch", "eyeriss_like"],
    "dcp search": ["dcp", "search", "{net}", "--arch", "eyeriss_like"],
    "map --optimizer dcp": ["map", "{net}", "--arch", "eyeriss_like", "--optimizer", "dcp"],
}


def accelmap_cmd() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    exe = Path(sys.executable).parent / "accelmap"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "accelmap.cli"]


def run_one(kind: str, net: str, tmp: Path, cold: bool) -> dict:
    out = tmp / f"run_{len(list(tmp.iterdir()))}"
    args = accelmap_cmd() + [a.format(net=net) for a in COMMANDS[kind]] + ["--out", str(out)]
    env = dict(os.environ)
    if cold:  # an empty numba cache, as after install (the editable install outranks a PYTHONPATH copy)
        cache = tmp / "numba_cache_cold"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        env["NUMBA_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    p = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp)
    wall = time.perf_counter() - t0
    if p.returncode != 0 or not (out / "summary.json").exists():
        raise SystemExit(f"{' '.join(args)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text())
    layers = s["layers"]
    secs = sorted(x["seconds"] for x in layers)
    row = {"network": net, "command": kind, "cold": cold, "argv": " ".join(args[len(accelmap_cmd()):]),
           "wall_seconds": wall, "search_wall_seconds": s["settings"].get("wall_seconds"),
           "median_layer_seconds": statistics.median(secs), "max_layer_seconds": secs[-1],
           "layers": len(layers), "mapped": s["totals"]["mapped"],
           "evaluations_per_layer_max": max(x["evaluations"] for x in layers),
           "edp": s["totals"]["edp"], "energy_pJ": s["totals"]["energy_pJ"], "cycles": s["totals"]["cycles"]}
    shutil.rmtree(out, ignore_errors=True)
    if cold:
        shutil.rmtree(tmp / "numba_cache_cold", ignore_errors=True)
    print(f"  {net:13s} {kind:20s} {'cold' if cold else 'warm'}  {wall:7.1f} s  median layer "
          f"{row['median_layer_seconds']:.2f} s  EDP {row['edp'] * 1e-12:.4g} J*cyc", flush=True)
    return row


def summarize(rows: list[dict], networks) -> list[dict]:
    out = []
    for net in networks:
        base = [r for r in rows if r["network"] == net and r["command"] == "default map" and not r["cold"]]
        base_cold = [r for r in rows if r["network"] == net and r["command"] == "default map" and r["cold"]]
        b_wall = statistics.median(r["wall_seconds"] for r in base)
        b_edp = statistics.median(r["edp"] for r in base)
        for kind in COMMANDS:
            warm = [r for r in rows if r["network"] == net and r["command"] == kind and not r["cold"]]
            cold = [r for r in rows if r["network"] == net and r["command"] == kind and r["cold"]]
            w = statistics.median(r["wall_seconds"] for r in warm)
            edp = statistics.median(r["edp"] for r in warm)
            d = {"network": net, "command": kind, "runs_warm": len(warm), "wall_warm_median": w,
                 "wall_warm_over_default": w / b_wall,
                 "wall_cold": cold[0]["wall_seconds"] if cold else None,
                 "wall_cold_over_default_cold": (cold[0]["wall_seconds"] / base_cold[0]["wall_seconds"]
                                                 if cold and base_cold else None),
                 "search_wall_median": statistics.median(r["search_wall_seconds"] for r in warm),
                 "median_layer_seconds": statistics.median(r["median_layer_seconds"] for r in warm),
                 "evaluations_per_layer_max": max(r["evaluations_per_layer_max"] for r in warm),
                 "edp": edp, "edp_over_default": edp / b_edp, "mapped": warm[0]["mapped"], "layers": warm[0]["layers"]}
            if kind == "dcp search":
                d["acceptance"] = {"median_layer_le_1s": d["median_layer_seconds"] <= 1.0,
                                   "warm_wall_le_1.5x_default": d["wall_warm_over_default"] <= 1.5,
                                   "edp_le_default": d["edp_over_default"] <= 1 + 1e-9}
            out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--repeats", type=int, default=3, help="Warm runs per command (the median is reported).")
    ap.add_argument("--no-cold", action="store_true", help="Skip the cold runs.")
    args = ap.parse_args()
    networks = [n.strip() for n in args.networks.split(",")]
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcp_cli_") as td:
        tmp = Path(td)
        # untimed: fill the installed package's numba cache (the cold runs use their own)
        subprocess.run(accelmap_cmd() + ["map", "resnet18", "--budget", "500", "--out", str(tmp / "warmup")],
                       capture_output=True, cwd=tmp, check=True)
        shutil.rmtree(tmp / "warmup", ignore_errors=True)
        for net in networks:
            print(f"{net}:", flush=True)
            if not args.no_cold:
                for kind in COMMANDS:
                    rows.append(run_one(kind, net, tmp, cold=True))
            for rep in range(args.repeats):
                for kind in COMMANDS:  # interleaved: load bursts fall on every command alike
                    rows.append(run_one(kind, net, tmp, cold=False))
            write(rows, [n for n in networks if any(r["network"] == n for r in rows)], args.repeats, t0)
    summ = write(rows, networks, args.repeats, t0)
    print()
    head = (f"{'network':13s} {'command':20s} {'warm wall s':>11s} {'x default':>9s} {'cold wall s':>11s} "
            f"{'x default':>9s} {'layer s (med)':>13s} {'evals/layer':>11s} {'EDP (J*cyc)':>11s} {'EDP x def':>9s}")
    print(head)
    print("-" * len(head))
    for d in summ:
        cold = f"{d['wall_cold']:11.1f}" if d["wall_cold"] is not None else f"{'-':>11s}"
        cr = f"{d['wall_cold_over_default_cold']:9.2f}" if d["wall_cold_over_default_cold"] is not None else f"{'-':>9s}"
        print(f"{Path(d['network']).stem:13s} {d['command']:20s} {d['wall_warm_median']:11.1f} "
              f"{d['wall_warm_over_default']:9.2f} {cold} {cr} {d['median_layer_seconds']:13.2f} "
              f"{d['evaluations_per_layer_max']:11,d} {d['edp'] * 1e-12:11.4g} {d['edp_over_default']:9.3f}")
    print(f"wrote {OUT}")


def write(rows: list[dict], networks, repeats: int, t0: float) -> list[dict]:
    """The results so far (after every network, so a long run interrupted keeps what it measured)."""
    summ = summarize(rows, networks)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_at_end": os.getloadavg()},
           "method": "wall = process start to exit of the command; medians of the warm runs; ratios against the "
                     "default `accelmap map` measured in the same run; cold = numba's cache pointed at a new empty "
                     "directory (NUMBA_CACHE_DIR), so the kernel is compiled as after install",
           "repeats": repeats, "seconds": time.perf_counter() - t0, "summary": summ, "runs": rows}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    return summ


if __name__ == "__main__":
    main()
