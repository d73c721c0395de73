"""Start-up costs a new user sees, as ratios to `python -c "import torch"` measured in the same run.

- `accelmap --help` and a one-line usage error (`accelmap map resnet18 --budget 0`)
- `accelmap evaluate` (the default layer and mapping; numba's cache warm)
- the README's first command, `accelmap map resnet18 --arch eyeriss_like`, cold (numba's cache
  empty, as after a fresh install: the one-off kernel compile included) and warm

Each command runs --runs times (the cold map --cold-runs times, each with a fresh empty cache);
the table shows medians. Writes bench/results/startup.json.

    python bench/startup.py [--runs 5] [--cold-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCELMAP = [sys.executable, "-m", "accelmap.cli"]


def timed(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0, r.returncode, r.stdout + r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cold-runs", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="accelmap_startup_"))
    cases = {
        "import torch": [sys.executable, "-c", "import torch"],
        "accelmap --help": ACCELMAP + ["--help"],
        "usage error (map --budget 0)": ACCELMAP + ["map", "resnet18", "--budget", "0"],
        "accelmap evaluate": ACCELMAP + ["evaluate"],
        "map resnet18 (warm)": ACCELMAP + ["map", "resnet18", "--arch", "eyeriss_like", "--out", str(work / "warm")],
    }
    expect = {"usage error (map --budget 0)": 2}
    timed(ACCELMAP + ["map", "resnet18", "--budget", "100", "--out", str(work / "prime")])  # warm numba's cache
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):  # interleaved, so load changes hit every case alike
        for name, cmd in cases.items():
            s, code, out = timed(cmd, cwd=str(work))
            if code != expect.get(name, 0):
                raise SystemExit(f"{name}: exit {code}\n{out[-2000:]}")
            times[name].append(s)
    cold, compile_s = [], []
    for i in range(args.cold_runs):
        cache = Path(tempfile.mkdtemp(prefix="numba_cache_"))
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))  # an empty cache: the kernel compiles, as after install
        s, code, out = timed(ACCELMAP + ["map", "resnet18", "--arch", "eyeriss_like", "--out", str(work / f"cold{i}")],
                             env=env, cwd=str(work))
        if code != 0:
            raise SystemExit(f"cold map: exit {code}\n{out[-2000:]}")
        cold.append(s)
        line = next((ln for ln in out.splitlines() if ln.startswith("compiled the cost kernel")), None)
        if line is None:
            raise SystemExit("the cold run did not show the compile step:\n" + out[-2000:])
        compile_s.append(float(line.split(" in ")[1].split(" s")[0]))
        shutil.rmtree(cache, ignore_errors=True)
    torch_s = statistics.median(times["import torch"])
    rows = [{"case": k, "median_s": statistics.median(v), "runs": v, "ratio_to_import_torch": statistics.median(v) / torch_s}
            for k, v in times.items()]
    rows.append({"case": "map resnet18 (cold: empty numba cache)", "median_s": statistics.median(cold), "runs": cold,
                 "ratio_to_import_torch": statistics.median(cold) / torch_s,
                 "compile_step_s": statistics.median(compile_s)})
    result = {"command": "python bench/startup.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
              "load_average_at_end": os.getloadavg(), "rows": rows}
    out = ROOT / "bench" / "results" / "startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{'case':42} {'median s':>9} {'x import torch':>15}")
    for r in rows:
        extra = f"   (compile step {r['compile_step_s']:.1f} s)" if "compile_step_s" in r else ""
        print(f"{r['case']:42} {r['median_s']:9.2f} {r['ratio_to_import_torch']:15.2f}{extra}")
    print(f"-> {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
