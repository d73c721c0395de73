"""The tuning driver: one loop of ``next_batch`` -> measure -> log -> ``update`` per layer, and
the run directory (``summary.json`` + ``records.jsonl``).

**Resume.** The log is the state. A resumed run rebuilds each layer's tuner from the same seed
and replays it: every configuration the tuner proposes that the log already holds takes its
logged result instead of a measurement, so a deterministic tuner retraces the interrupted run
exactly and then goes on where it stopped; nothing logged is measured again and nothing
measured is lost (a batch that was in flight when the run was killed is measured again, since
none of it reached the log). A log written by another tuner, seed or target is refused.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from accelmap.errors import AccelmapError
from accelmap.tune.knobs import knob_space_from_mapping_space, vta_conv2d_space
from accelmap.tune.log import TuneLog
from accelmap.tune.measurer import Measurer, MeasureResult, TuneTask
from accelmap.tune.tuners import get_tuner


def is_vta_like(arch) -> bool:
    from accelmap.tune.vta import VTA_LEVELS

    return all(n in arch.level_names for n in VTA_LEVELS)


def make_task(workload, arch, constraints=None) -> TuneTask:
    """The knob space of a layer on a target: VTA's conv2d template on a VTA-like target, the
    mapping space's knobs (under ``constraints``) on any other."""
    if is_vta_like(arch):
        return TuneTask(workload, arch, vta_conv2d_space(workload))
    from accelmap.mapspace.space import MappingSpace

    return TuneTask(workload, arch, knob_space_from_mapping_space(MappingSpace(workload, arch, constraints)))


def check_space(task: TuneTask) -> None:
    """Refuse a VTA layer whose every configuration the rules call invalid, naming the commonest
    reason (the rules are only a pre-check here: tuners other than xgb-validity never see them)."""
    if task.template != "vta_conv2d":
        return
    from accelmap.tune.validity import RuleValidity

    rules = RuleValidity(task.space, task.arch)
    pts = task.space.enumerate()
    reasons = rules.reasons(pts)
    if all(r is not None for r in reasons):
        common = max(set(reasons), key=reasons.count)
        raise AccelmapError(f"layer '{task.name}' has no valid configuration on {task.arch.name}: all "
                            f"{len(reasons):,} of its knob space are invalid (most often: {common})", field="LAYER")


@dataclass
class LayerResult:
    name: str
    count: int
    dims: dict
    space_size: int
    knobs: str
    measurements: int = 0
    new_measurements: int = 0
    invalid: int = 0
    errors: dict = field(default_factory=dict)
    best_runtime: float | None = None
    best_config: dict | None = None
    best_index: int | None = None
    best_config_index: int | None = None
    seconds: float = 0.0
    complete: bool = False
    stopped: str | None = None  # why fewer than the budget's measurements were taken (space exhausted)


def _result(rec: dict) -> MeasureResult:
    return MeasureResult(None, rec["error"]) if rec.get("error") else MeasureResult(float(rec["runtime"]))


def tune_task(task: TuneTask, tuner: str, measurer: Measurer, budget: int, seed: int, log: TuneLog,
              previous: list[dict], batch_size: int = 64, count: int = 1,
              progress: Callable[[LayerResult], None] | None = None) -> LayerResult:
    """Tune one layer for ``budget`` measurements (logged ones included); ``previous`` are the log's
    records of this layer (resume)."""
    if budget <= 0:
        raise AccelmapError(f"measurements must be a positive number, got {budget}", field="--measurements")
    space = task.space
    tcls = get_tuner(tuner)
    target = task.arch.name
    for rec in previous:
        for key, want in (("tuner", tuner), ("seed", seed), ("target", target)):
            if rec.get(key) != want:
                raise AccelmapError(f"the log's records of layer '{task.name}' were written with {key} "
                                    f"{rec.get(key)!r}; resume with the same --{key} ({want!r} was given) or use "
                                    f"another --log", file=str(log.path))
        if not isinstance(rec.get("config_index"), int) or not 0 <= rec["config_index"] < space.size:
            raise AccelmapError(f"record {rec.get('index')} of layer '{task.name}' has configuration index "
                                f"{rec.get('config_index')!r}, outside this layer's knob space", file=str(log.path))
    validity = None
    if tcls.validity == "rules":
        from accelmap.tune.validity import RuleValidity

        validity = RuleValidity(space, task.arch)
    t0 = time.perf_counter()
    tuner_obj = tcls(space, seed, batch_size, validity)
    cache = {rec["config_index"]: rec for rec in previous}
    number = max((rec.get("index", 0) for rec in previous), default=0)
    w = task.layer
    res = LayerResult(task.name, count, dict(zip(w.dims, w.bounds)), space.size, space.describe())
    used, batch = 0, 0
    while used < budget:
        pts = tuner_obj.next_batch(min(batch_size, budget - used))
        if not len(pts):
            res.stopped = tuner_obj.stop_reason()
            break
        batch += 1
        idx = space.indices(pts)
        results: list[MeasureResult | None] = [None] * len(pts)
        todo = []
        for i, ci in enumerate(idx):
            if ci in cache:
                results[i] = _result(cache[ci])
            else:
                todo.append(i)
        if todo:
            new = measurer.measure(task, pts[todo])
            if len(new) != len(todo):
                raise AccelmapError(f"measurer {measurer.describe()} returned {len(new)} results for {len(todo)} "
                                    f"configurations")
            now = time.time()
            for i, r in zip(todo, new):
                number += 1
                rec = {"layer": task.name, "tuner": tuner, "seed": seed, "target": target,
                       "measurer": measurer.describe(), "index": number, "config_index": idx[i], "batch": batch,
                       "config": space.config(pts[i]), "runtime": r.runtime, "unit": measurer.unit,
                       "error": r.error, "time": round(now, 3)}
                log.append(rec)
                cache[idx[i]] = rec
                results[i] = r
                res.new_measurements += 1
        used += len(pts)
        if used < budget:  # after the last batch a refit (and annealing) would serve no proposal
            tuner_obj.update(pts, results)
        _summarize(res, cache.values())
        res.seconds = time.perf_counter() - t0
        if progress:
            progress(res)
    res.complete = True
    _summarize(res, cache.values())
    res.seconds = time.perf_counter() - t0
    return res


def results_from_log(tasks, finished: list[LayerResult], records: list[dict], previous: list[dict], budget: int,
                     tuner: str, live: dict[str, LayerResult] | None = None) -> list[LayerResult]:
    """Every layer of ``tasks`` (``[(TuneTask, count)]``) whose measurements are in the log, in
    task order, for the summary of a run that stopped early (Ctrl-C, an error).

    A layer that ``tune_task`` finished keeps its result; any other layer with records in
    ``records`` (the log as it now is) is summarized from them: the one in progress when the
    run stopped, one interrupted right after its last measurement was logged, and on
    ``--resume`` those the earlier run measured that this one did not reach. Its
    ``new_measurements`` are the records numbered after the ``previous`` ones (the log before
    this run); it is ``complete`` when the budget is in the log, or when ``tuner`` would have
    nothing left to propose after the logged configurations (then ``stopped`` says why).
    ``live``: the last progress report of each layer (its seconds so far)."""
    done = {r.name: r for r in finished}
    out = []
    for task, count in tasks:
        if task.name in done:
            out.append(done[task.name])
            continue
        recs = layer_records(records, task.name)
        if not recs:
            continue
        w = task.layer
        res = LayerResult(task.name, count, dict(zip(w.dims, w.bounds)), task.space.size, task.space.describe())
        _summarize(res, {rec["config_index"]: rec for rec in recs}.values())
        before = max((rec.get("index", 0) for rec in layer_records(previous, task.name)), default=0)
        res.new_measurements = sum(rec.get("index", 0) > before for rec in recs)
        res.complete = res.measurements >= budget
        if not res.complete:
            res.stopped = _exhausted(task, tuner, [rec["config_index"] for rec in recs])
            res.complete = res.stopped is not None
        if live and task.name in live:
            res.seconds = live[task.name].seconds
        out.append(res)
    return out


def _exhausted(task: TuneTask, tuner: str, config_indices: list[int]) -> str | None:
    """The tuner's stop reason if, with these configurations measured, it has none left to propose."""
    tcls = get_tuner(tuner)
    validity = None
    if tcls.validity == "rules":
        from accelmap.tune.validity import RuleValidity

        validity = RuleValidity(task.space, task.arch)
    try:
        t = tcls(task.space, 0, 64, validity)
    except AccelmapError:
        return None
    t.skip(task.space.points(config_indices))
    return None if t.has_next() else t.stop_reason()


def _summarize(res: LayerResult, records) -> None:
    recs = sorted(records, key=lambda r: r.get("index", 0))
    res.measurements = len(recs)
    errors: dict[str, int] = {}
    best = None
    for r in recs:
        if r.get("error"):
            errors[r["error"]] = errors.get(r["error"], 0) + 1
        elif best is None or r["runtime"] < best["runtime"]:
            best = r
    res.errors = dict(sorted(errors.items()))
    res.invalid = sum(errors.values())
    if best is not None:
        res.best_runtime, res.best_config = best["runtime"], best["config"]
        res.best_index, res.best_config_index = best["index"], best["config_index"]


def resolve_layers(spec: str):
    """A Timeloop problem YAML or a zoo network -> (name, [Layer])."""
    from accelmap.workload.load import read_problem_yaml
    from accelmap.workload.network import Layer
    from accelmap.workload.zoo import get_network

    if spec.endswith((".yaml", ".yml")):
        return Path(spec).stem, [Layer(read_problem_yaml(spec))]
    net = get_network(spec)
    return net.name, list(net.unique_layers())


def write_summary(out: Path, settings: dict, results: list[LayerResult], skipped: list[dict], complete: bool,
                  error: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = Path(settings["log"])
    dest = out / "records.jsonl"
    if log.exists() and log.resolve() != dest.resolve():
        shutil.copyfile(log, dest)
    summary = {"kind": "tune", "complete": complete, "error": error, "settings": settings,
               "layers": [asdict(r) for r in results], "skipped": skipped,
               "totals": {"layers": len(results), "measurements": sum(r.measurements for r in results),
                          "new_measurements": sum(r.new_measurements for r in results),
                          "invalid": sum(r.invalid for r in results)}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def default_run_dir(name: str, target: str) -> Path:
    return Path("runs") / f"tune_{name}_{target}_{time.strftime('%Y%m%d-%H%M%S')}"


def layer_records(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("layer") == name]

