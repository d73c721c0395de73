#!/usr/bin/env python3
"""An example measurer for ``accelmap tune --measurer 'command:python3 examples/vta_measurer.py'``.

It stands in for a board: it reads the JSON batch accelmap writes on stdin,
``{"target": NAME, "layer": {...}, "configs": [{knob: value}, ...], "indices": [...]}``,
evaluates each configuration with accelmap's VTA model and prints
``{"results": [{"runtime": SECONDS} | {"error": "CODE"}, ...]}`` on stdout, one entry per
configuration, in order. Runtimes are the model's cycles at VTA's 100 MHz clock.

To exercise a tuner's handling of flaky hardware it can also misbehave on purpose:

* ``--fail-every N``: every configuration whose index is a multiple of N fails with
  ``runtime_error`` (as a board crash or a wrong result would);
* ``--sleep-every N --sleep S``: every configuration whose index is 1 modulo N takes S seconds
  (a hang; with ``--timeout`` below S, accelmap records ``timeout`` for it and goes on).

Copy it and replace ``evaluate`` with a call to your board or simulator.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def evaluate(target: str, layer: dict, configs: list[dict], indices: list[int]) -> list[dict]:
    from accelmap.arch.load import load_architecture
    from accelmap.tune.knobs import PackedConv, vta_conv2d_space
    from accelmap.tune.measurer import ModelMeasurer, TuneTask
    from accelmap.workload.workload import conv2d

    p = layer["packed"]
    conv = PackedConv(p["name"], p["N"], p["C"], p["K"], p["H"], p["W"], p["kh"], p["kw"], p["sh"], p["sw"])
    space = vta_conv2d_space(conv)
    workload = conv2d(conv.name, C=conv.C, K=conv.K, P=conv.W, Q=conv.H, R=conv.kw, S=conv.kh, N=conv.N,
                      stride=(conv.sw, conv.sh))
    arch = load_architecture(target)
    task = TuneTask(workload, arch, space)
    import numpy as np

    points = np.array([space.point_of(c) for c in configs]).reshape(-1, len(space.knobs))
    from accelmap.tune.vta import VTAConfig

    clock_hz = VTAConfig.from_arch(arch).clock_mhz * 1e6
    return [{"runtime": r.runtime / clock_hz} if r.valid else {"error": r.error}
            for r in ModelMeasurer().measure(task, points)]


def main() -> None:
    ap = argparse.ArgumentParser(description="VTA model as a command measurer (JSON on stdin and stdout).")
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--sleep-every", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=30.0)
    a = ap.parse_args()
    batch = json.load(sys.stdin)
    results = evaluate(batch["target"], batch["layer"], batch["configs"], batch["indices"])
    for i, idx in enumerate(batch["indices"]):
        if a.fail_every and idx % a.fail_every == 0:
            results[i] = {"error": "runtime_error"}
        if a.sleep_every and idx % a.sleep_every == 1:
            time.sleep(a.sleep)
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
