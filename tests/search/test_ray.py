"""The Ray backend: the same seed gives the same mappings and sweep points on Ray as on the
process pool; Ctrl-C keeps finished tasks; a clear error without Ray.

A local Ray cluster with 2 CPUs is started once for the module and shut down at the end.
"""

import csv
import json
import math
import sys
import time

import pytest

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset, read_architecture
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import read_constraints
from accelmap.model.objective import Objective
from accelmap.search.executor import Executor, PoolExecutor, make_executor
from accelmap.search.network import map_layers
from accelmap.workload.zoo import get_network

BUDGET, PATIENCE, SEED = 3000, 1000, 5


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_executor(ray_session):
    from accelmap.search.executor import RayExecutor

    ex = RayExecutor("auto")
    assert not ex.started_local and ex.cpus == 2  # joins the session above
    yield ex
    ex.close()
    assert ray_session.is_initialized()  # not the executor's to shut down


def _outcome_key(o):
    return (o.index, o.name, o.found, o.energy_pJ, o.cycles, o.mapping_yaml, o.evaluations)


def test_map_resnet18_same_on_ray_and_pool(ray_executor):
    arch = preset("eyeriss_like")
    cons = read_constraints(preset_constraints("eyeriss_like"))
    layers = list(get_network("resnet18").unique_layers())
    assert len(layers) == 12
    seen = []
    args = (layers, arch, cons, Objective.parse("edp"), "annealing", BUDGET, SEED)
    on_ray = map_layers(*args, patience=PATIENCE, on_done=seen.append, executor=ray_executor)
    on_pool = map_layers(*args, patience=PATIENCE, executor=PoolExecutor(2))
    assert len(seen) == 12 and sorted(o.index for o in seen) == list(range(12))  # progress per layer
    assert [o.index for o in on_ray] == list(range(12))
    assert all(o.found for o in on_ray)
    assert [_outcome_key(o) for o in on_ray] == [_outcome_key(o) for o in on_pool]


def test_sweep_same_on_ray_and_pool(ray_executor, tmp_path):
    from accelmap.arch.space import read_hardware_space, resolve_space
    from accelmap.codesign.sweep import run_sweep, write_sweep_run

    space = read_hardware_space(resolve_space("eyeriss_edge"))
    cons = read_constraints(preset_constraints("eyeriss_like"))
    r18 = {lay.workload.name: lay for lay in get_network("resnet18").unique_layers()}
    layers = [r18["conv1"], r18["layer1.0.conv1"], r18["fc"]]  # counts 1, 4, 1
    obj = Objective.parse("edp")
    a = run_sweep(layers, space, cons, obj, 2, ray_executor, SEED, budget=BUDGET, patience=PATIENCE)
    b = run_sweep(layers, space, cons, obj, 2, PoolExecutor(2), SEED, budget=BUDGET, patience=PATIENCE)
    assert a.complete and b.complete
    assert [p.values for p in a.points] == [p.values for p in b.points]
    assert [p.values for p in a.points][0] != [p.values for p in a.points][1]
    for pa, pb in zip(a.points, b.points):
        assert [_outcome_key(o) for o in pa.outcomes] == [_outcome_key(o) for o in pb.outcomes]
        assert pa.totals(3) == pb.totals(3)
    # totals by hand from the per-layer results: count-weighted sums, EDP = E x latency
    p = a.points[0]
    t = p.totals(3)
    e = sum(o.energy_pJ * o.count for o in p.outcomes)
    c = sum(o.cycles * o.count for o in p.outcomes)
    assert [o.count for o in p.outcomes] == [1, 4, 1]
    assert t["energy_pJ"] == e and t["cycles"] == c and t["edp"] == e * c and t["complete"]
    assert t["power_mW"] == pytest.approx(e / c)  # pJ per cycle at 1 GHz = mW
    out = tmp_path / "sweep"
    write_sweep_run(out, a, {"seed": SEED})
    s = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "points.csv")))
    assert len(s["points"]) == len(rows) == 2 and (out / "scatter.png").stat().st_size > 0
    assert float(rows[0]["energy_pJ"]) == pytest.approx(e, rel=1e-5)
    back = read_architecture(out / s["points"][0]["arch"], out / "archs/p00.ERT.yaml", out / "archs/p00.ART.yaml")
    assert back.area_um2 / 1e6 == pytest.approx(t["area_mm2"], rel=1e-12)
    assert back.compute.instances == int(p.values["pe_x"] * p.values["pe_y"])


def test_map_cli_on_ray(ray_executor, cli, tmp_path):
    from accelmap.workload.workload import conv2d, problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob = tmp_path / "small_conv.yaml"
    prob.write_text(dump_yaml(problem_to_dict(conv2d("small_conv", C=16, K=32, P=14, R=3))))
    runs, texts = {}, {}
    for backend in (["--ray", "auto"], ["--workers", "1"]):
        out = tmp_path / backend[0].strip("-")
        code, texts[backend[0]], err = cli("map", str(prob), "--budget", "2000", "--seed", "2", "--out", str(out),
                                           *backend)
        assert code == 0, err
        runs[backend[0]] = json.loads((out / "summary.json").read_text())
    assert runs["--ray"]["settings"]["ray"] == "auto"
    assert "mapping on the running Ray session (2 CPUs)" in texts["--ray"] and "Ray" not in texts["--workers"]
    la, lb = runs["--ray"]["layers"][0], runs["--workers"]["layers"][0]
    assert (la["energy_pJ"], la["cycles"]) == (lb["energy_pJ"], lb["cycles"])


@pytest.mark.parametrize("backend", ["serial", "pool", "ray"])
def test_interrupt_keeps_finished_tasks(backend, request, tmp_path):
    ex = {"serial": Executor, "pool": lambda: PoolExecutor(2)}.get(backend)
    ex = ex() if ex else request.getfixturevalue("ray_executor")
    seen = []

    def on_done(i, result):
        seen.append(i)
        raise KeyboardInterrupt  # Ctrl-C while the other tasks still run

    marks = [tmp_path / f"task{i}.done" for i in range(3)]
    def task(seconds: float, path: str) -> None:  # local and self-contained: Ray's workers get it by value
        import time

        time.sleep(seconds)
        open(path, "w").close()

    fn = task if backend == "ray" else _sleep_then_mark  # a pool pickles by reference
    done = ex.run(fn, [(0.0, str(marks[0])), (30.0, str(marks[1])), (30.0, str(marks[2]))], on_done)
    assert done == {0: None} and seen == [0]
    # awaited tasks would have finished (and written their marks) before run() returned
    assert marks[0].exists() and not marks[1].exists() and not marks[2].exists()


def _sleep_then_mark(seconds: float, path: str) -> None:
    time.sleep(seconds)
    open(path, "w").close()


def test_pool_after_the_parallel_kernel_ran_in_this_process():
    """numba's GNU OpenMP threads cannot survive a fork: once the compiled kernel's parallel
    loop has run here, the pool spawns its workers instead (it used to lose every task)."""
    import torch

    from accelmap.mapspace.space import MappingSpace
    from accelmap.model import kernel
    from accelmap.search.executor import _start_method

    if not kernel.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    arch = preset("simple_pe16x16")
    r18 = {lay.workload.name: lay for lay in get_network("resnet18").unique_layers()}
    layers = [r18["fc"], r18["layer4.0.downsample.0"]]
    space = MappingSpace(layers[0].workload, arch, read_constraints(preset_constraints("simple_pe16x16")))
    space.evaluate(space.sample(256, torch.Generator().manual_seed(0)))  # the parallel kernel, here
    import numba

    assert _start_method() == ("spawn" if numba.threading_layer() == "omp" else "fork")
    args = (layers, arch, read_constraints(preset_constraints("simple_pe16x16")), Objective.parse("edp"),
            "annealing", 2000, SEED)
    pooled = map_layers(*args, patience=500, executor=PoolExecutor(2))
    serial = map_layers(*args, patience=500, workers=1)
    assert [_outcome_key(o) for o in pooled] == [_outcome_key(o) for o in serial]


def test_missing_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(AccelmapError, match=r"pip install 'accelmap\[ray\]'"):
        make_executor(2, "auto")


def test_missing_ray_cli_one_line(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("map", "resnet18", "--ray", "auto", "--budget", "10")
    assert code == 2 and "accelmap[ray]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # the option is checked before the run directory is made


def test_totals_incomplete_point_is_nan():
    from accelmap.codesign.sweep import SweepPoint

    p = SweepPoint(0, {}, preset("eyeriss_like"), ())
    t = p.totals(2)
    assert not t["complete"] and t["mapped_layers"] == 0 and math.isnan(t["energy_pJ"])
