"""Network co-design: scores and rounding by hand, every registered method's contract, designs
that re-evaluate from their files, sweeps, and clear errors for bad spaces and budgets."""

import json
import math

import pytest
import torch

from accelmap.architecture import preset, preset_constraints
from accelmap.codesign import CODESIGNERS, Budgets, CoDesignProblem, Totals, get_codesigner
from accelmap.constraints import read_constraints
from accelmap.cost_model import CostModel, Hardware
from accelmap.hardware_space import read_hardware_space
from accelmap.network import Layer
from accelmap.workload import conv2d, linear

SPACE = """
base: eyeriss_like
parameters:
  pe_x: [4, 32]
  pe_y: [4, 32]
  shared_glb.capacity: [4096, 131072]
  weights_spad.capacity: [16, 256]
"""
# two small layers: primes of their bounds are {2, 5, 7}
LAYERS = [Layer(linear("fc", in_features=512, out_features=1000)),
          Layer(conv2d("pw", C=256, K=512, P=7, R=1), count=2)]
get_codesigner("gradient")  # fills the registry before the tests parametrize over it
BASE_AREA = float(Hardware.from_arch(preset("eyeriss_like")).total_area) / 1e6


@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "space.yaml"
    p.write_text(SPACE)
    return p


def make(space_file, objective="latency", budgets=Budgets()):
    return CoDesignProblem(LAYERS, read_hardware_space(space_file), read_constraints(preset_constraints("eyeriss_like")),
                           objective, budgets)


def test_rounding_clamps_and_snaps_pe_sides_to_useful_sizes(space_file):
    p = make(space_file)
    # {2,5,7}-smooth sizes in [4, 32]: 4 5 7 8 10 14 16 20 25 28 32, and the base's own (14, 12)
    assert p.pe_grids[0].tolist() == [4, 5, 7, 8, 10, 14, 16, 20, 25, 28, 32]
    assert p.pe_grids[1].tolist() == [4, 5, 7, 8, 10, 12, 14, 16, 20, 25, 28, 32]
    assert p.base_values().tolist() == [14, 12, 65536, 192]
    v = p.round(torch.tensor([[23.0, 100.0, 1000.0, 99.6]]))[0]
    # 23 -> 25 (|ln 23/25| = 0.083 < |ln 23/20| = 0.140); 100 -> 32; capacity clamped; integer
    assert v.tolist() == [25.0, 32.0, 4096.0, 100.0]


def test_scores_are_log_objective_plus_log_overshoot(space_file):
    p = make(space_file, "latency", Budgets(area_mm2=1.0, power_mw=500.0))
    t = Totals(energy=torch.tensor([2e9, 2e9]), cycles=torch.tensor([1e6, 1e6]), area=torch.tensor([2.0, 0.5]),
               power=torch.tensor([2000.0, 2000.0]), invalid=torch.tensor([0.0, 1.0]))
    score, viol = p.scores(t)
    # power = 2e9 pJ / 1e6 cycles x 1 GHz = 2000 mW, 4x over budget
    assert viol[0].item() == pytest.approx(math.log(2.0) + math.log(4.0))
    assert viol[1].item() == pytest.approx(math.log(4.0) + 10.0)  # area fine, one layer unmapped
    assert score[0].item() == pytest.approx(math.log(1e6) + 100 * viol[0].item())


def test_layer_weights_follow_the_objective_and_budgets(space_file):
    assert make(space_file, "latency").layer_weights(10.0, 4.0) == pytest.approx((0.01 / 10, 1 / 4))
    assert make(space_file, "edp").layer_weights(10.0, 4.0) == pytest.approx((1 / 10, 1 / 4))
    # power = E/C rewards slow mappings; the floor and a latency budget keep cycles in play
    assert make(space_file, "power", Budgets(latency_cycles=1e6)).layer_weights(10.0, 4.0) == \
        pytest.approx((1 / 10, 1 / 4))


@pytest.mark.parametrize("method", sorted(CODESIGNERS))
def test_every_method_returns_a_feasible_design_whose_totals_are_exact(space_file, method):
    p = make(space_file, "latency", Budgets(area_mm2=BASE_AREA))
    res = get_codesigner(method)(p, 5.0, 0).run()
    d = res.best
    assert d is not None and d.feasible and d.totals["area_mm2"] <= BASE_AREA
    assert res.seconds < 15
    times = [t for t, _, _ in res.trace]
    assert times == sorted(times)
    # recompute every layer on the written-out architecture with a fresh cost model
    arch = p.architecture(d.values)
    lat = en = 0.0
    for li, layer in enumerate(LAYERS):
        c = CostModel(layer.workload, arch)(p.spaces[li].decode(d.genomes[li][None]))
        assert bool(c.valid[0]), f"{method}: layer {li} mapping is illegal on its hardware"
        lat += float(c.cycles[0]) * layer.count
        en += float(c.energy[0]) * layer.count
    assert lat == pytest.approx(d.totals["latency_cycles"], rel=1e-12)
    assert en == pytest.approx(d.totals["energy_pJ"], rel=1e-12)
    assert float(Hardware.from_arch(arch).total_area) / 1e6 == pytest.approx(d.totals["area_mm2"], rel=1e-9)


def test_gradient_codesign_beats_the_base_hardware_at_its_area(space_file):
    p = make(space_file, "latency", Budgets(area_mm2=BASE_AREA))
    gen = torch.Generator().manual_seed(0)
    base = p.design(p.base_values(), p.seed_pools(16, gen), gen, 20)
    d = get_codesigner("gradient")(p, 6.0, 0).run().best
    assert d.feasible and d.totals["latency_cycles"] < 0.8 * base.totals["latency_cycles"]


def test_cli_design_reevaluates_with_accelmap_evaluate(cli, tmp_path, space_file):
    prob = tmp_path / "pw.yaml"
    from accelmap.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob.write_text(dump_yaml(problem_to_dict(LAYERS[1].workload)))
    out = tmp_path / "run"
    code, stdout, err = cli("codesign", str(prob), "--arch-space", str(space_file), "--seconds", "3",
                            "--area-budget", f"{BASE_AREA}", "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["feasible"] and (out / "convergence.png").stat().st_size > 0
    lat = en = 0.0
    for layer in s["layers"]:
        code, js, err = cli("evaluate", "--arch", str(out / s["architecture"]), "--ert", str(out / s["ert"]),
                            "--art", str(out / s["art"]), "--problem", str(out / layer["problem_file"]),
                            "--mapping", str(out / layer["mapping_file"]), "--json")
        assert code == 0, err
        ev = json.loads(js)
        assert ev["valid"]
        lat += ev["cycles"] * layer["count"]
        en += ev["energy_pJ"] * layer["count"]
        assert ev["area_um2"] / 1e6 == pytest.approx(s["totals"]["area_mm2"], rel=1e-9)
    assert lat == pytest.approx(s["totals"]["latency_cycles"], rel=1e-12)
    assert en == pytest.approx(s["totals"]["energy_pJ"], rel=1e-12)


def test_sweep_traces_both_fronts(space_file, tmp_path):
    from accelmap.codesign_run import sweep, write_sweep

    budgets = Budgets(area_mm2=BASE_AREA)
    front = sweep(lambda o, b: make(space_file, o, b), ("latency", "power"), budgets, 3, "gradient", 2.5, 0)
    assert len(front["epsilon"]) == 3 and len(front["weighted"]) == 3
    lo_lat, hi_pow = front["epsilon"][0]["point"]  # the latency anchor
    hi_lat, lo_pow = front["epsilon"][1]["point"]  # the power anchor
    assert lo_lat <= hi_lat and lo_pow <= hi_pow
    eps = front["epsilon"][2]
    assert lo_pow <= eps["budgets"]["power_mw"] <= hi_pow
    # an infeasible run is reported as an infinite point, never as a point over its bound
    assert eps["point"][1] <= eps["budgets"]["power_mw"] * (1 + 1e-9) or math.isinf(eps["point"][1])
    assert front["hypervolume_epsilon"] > 0 and front["hypervolume_weighted"] > 0
    write_sweep(tmp_path / "f", make(space_file), front)
    assert (tmp_path / "f" / "front.png").stat().st_size > 0
    assert json.loads((tmp_path / "f" / "front.json").read_text())["metrics"] == ["latency", "power"]


@pytest.mark.parametrize("space_text, args, expect", [
    ("base: eyeriss_like\nparameters:\n  pe_x: [32, 4]\n", [], "inverted range"),
    ("base: eyeriss_like\nparameters:\n  pe_x: [4, 4]\n", [], "empty or inverted"),
    ("base: eyeriss_like\nparameters:\n  shared_glb.size: [4, 8]\n", [], "unknown parameter 'shared_glb.size'"),
    (SPACE, ["--area-budget", "0.05"], "area"),
    (SPACE, ["--pareto", "latency,colour"], "expected two different metrics"),
    (SPACE, ["--method", "magic"], "unknown co-design method"),
])
def test_bad_input_is_one_line_with_exit_code_2(cli, tmp_path, space_text, args, expect):
    p = tmp_path / "space.yaml"
    p.write_text(space_text)
    prob = tmp_path / "fc.yaml"
    from accelmap.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob.write_text(dump_yaml(problem_to_dict(LAYERS[0].workload)))
    code, out, err = cli("codesign", str(prob), "--arch-space", str(p), "--seconds", "2", "--out",
                         str(tmp_path / "run"), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in err


def test_infeasible_budget_names_the_constraint_and_the_gap(cli, tmp_path, space_file):
    prob = tmp_path / "fc.yaml"
    from accelmap.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob.write_text(dump_yaml(problem_to_dict(LAYERS[0].workload)))
    code, out, err = cli("codesign", str(prob), "--arch-space", str(space_file), "--seconds", "2",
                         "--area-budget", "0.05", "--out", str(tmp_path / "run"))
    assert code == 2
    # the smallest design of the space is far above 0.05 mm^2: say so, with the overshoot
    assert "no design found meets the budgets" in err and "area" in err and "exceeds the budget 0.05 by" in err
    assert (tmp_path / "run" / "summary.json").exists()  # the best infeasible point is still written


def test_unknown_builtin_space(cli):
    code, out, err = cli("codesign", "resnet18", "--arch-space", "no_such_space", "--seconds", "1")
    assert code == 2 and "unknown hardware space 'no_such_space'" in err and "eyeriss_edge" in err


@pytest.mark.parametrize("method", ["gradient", "genetic"])
def test_same_seed_and_design_budget_give_the_same_design(space_file, method):
    p = make(space_file, "latency", Budgets(area_mm2=BASE_AREA))
    n = 6 if method == "gradient" else 300
    a = get_codesigner(method)(p, 120.0, 3, designs=n).run().best
    b = get_codesigner(method)(p, 120.0, 3, designs=n).run().best
    assert a.values.tolist() == b.values.tolist() and a.totals == b.totals
    assert all(torch.equal(x, y) for x, y in zip(a.genomes, b.genomes))
