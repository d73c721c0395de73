"""The tune command's run: check every input and the output places, then tune layer after layer
into an append-only log and a run directory (``summary.json``), keeping what finished on Ctrl-C."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from accelmap.arch.load import load_architecture
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import Constraints
from accelmap.mapspace.load import load_constraints
from accelmap.runs.rundir import check_output_file, prepare_run_dir
from accelmap.tune.driver import (
    LayerResult,
    check_space,
    default_run_dir,
    is_vta_like,
    layer_records,
    make_task,
    resolve_layers,
    results_from_log,
    tune_task,
    write_summary,
)
from accelmap.tune.log import TuneLog, read_records
from accelmap.tune.measurer import Measurer, TuneTask, make_measurer
from accelmap.tune.tuners import get_tuner


@dataclass(frozen=True)
class TunePlan:
    """Everything a tune run needs, checked: the layers' tasks (with their repeat counts), the
    layers that cannot be tuned on the target and why, the log and what it already holds."""

    network: str
    target: str
    tuner: str
    measurer: Measurer
    measurements: int
    batch_size: int
    seed: int
    run_dir: Path
    log_path: Path
    previous: list = field(repr=False)
    tasks: list = field(repr=False)  # (TuneTask, count)
    skipped: list = field(repr=False)  # {"name", "reason"}
    settings: dict = field(repr=False)


@dataclass(frozen=True)
class TuneRun:
    results: list  # LayerResult per layer that has measurements
    complete: bool  # False: interrupted (Ctrl-C); the log and summary keep what was measured


def plan_tune(layer: str, target: str = "vta_like", *, tuner: str = "xgb-validity", measurements: int = 1000,
              measurer: str = "model", timeout: float = 10.0, batch_size: int = 64, log: str | None = None,
              resume: bool = False, seed: int = 0, out: str | None = None, command: str = "") -> TunePlan:
    """Check the options, the target, the layers and the log before any measurement."""
    get_tuner(tuner)
    m = make_measurer(measurer, timeout)
    arch = load_architecture(target)
    name, layers = resolve_layers(layer)
    if resume and log is None and out is None:
        raise AccelmapError("--resume needs the interrupted run's --log FILE or --out DIR", field="--resume")
    run_dir = prepare_run_dir(out, default_run_dir(name, arch.name))
    log_path = Path(log) if log else run_dir / "records.jsonl"
    if log:
        check_output_file(log_path, "--log")
    previous = read_records(log_path)
    if previous and not resume:
        raise AccelmapError(f"the log already holds {len(previous)} measurements; pass --resume to continue it, or "
                            f"choose another --log/--out", file=str(log_path))
    if resume and not log_path.exists():
        raise AccelmapError("--resume: there is no log to continue", file=str(log_path))
    # VTA's knob space carries its own rules; any other target gets what --constraints would default to
    cons = Constraints() if is_vta_like(arch) else load_constraints(None, target)
    tasks, skipped = [], []
    for lay in layers:
        try:
            task = make_task(lay.workload, arch, cons)
            check_space(task)
            tasks.append((task, lay.count))
        except AccelmapError as exc:
            if len(layers) == 1:
                raise
            skipped.append({"name": lay.workload.name, "reason": exc.detail})
    if not tasks:
        raise AccelmapError(f"no layer of {name} can be tuned on {arch.name} (e.g. {skipped[0]['reason']})")
    settings = {"network": name, "layer": layer, "target": arch.name, "tuner": tuner, "measurer": m.describe(),
                "measurements": measurements, "batch_size": batch_size, "seed": seed, "timeout": timeout,
                "log": str(log_path), "runtime_unit": m.unit, "resumed": resume, "command": command}
    return TunePlan(name, arch.name, tuner, m, measurements, batch_size, seed, run_dir, log_path, previous, tasks,
                    skipped, settings)


def run_tune(plan: TunePlan,
             on_task: Callable[[TuneTask], Callable[[LayerResult], None] | None] | None = None) -> TuneRun:
    """Tune every task of ``plan`` in order (layer i with seed ``seed + i``). ``on_task(task)``
    may return a callback that receives the layer's result as it improves. Ctrl-C ends the run
    with what was measured (complete False); the summary is written in every case."""
    results: list[LayerResult] = []
    complete, error, live = False, None, {}
    tlog = TuneLog(plan.log_path).open()
    try:
        for i, (task, count) in enumerate(plan.tasks):
            show = on_task(task) if on_task else None

            def seen(r, show=show):
                live[r.name] = r
                if show:
                    show(r)

            results.append(tune_task(task, plan.tuner, plan.measurer, plan.measurements, plan.seed + i, tlog,
                                     layer_records(plan.previous, task.name), plan.batch_size, count, seen))
            if show:
                show(results[-1])
        complete = True
    except KeyboardInterrupt:
        pass
    except AccelmapError as exc:
        error = str(exc)
        raise
    finally:
        tlog.close()
        if not complete:  # every layer with measurements in the log, not only those that returned
            results = results_from_log(plan.tasks, results, read_records(plan.log_path), plan.previous,
                                       plan.measurements, plan.tuner, live)
        write_summary(plan.run_dir, plan.settings, results, plan.skipped, complete, error)
    return TuneRun(results, complete)
