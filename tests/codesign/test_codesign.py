"""Network co-design: scores and rounding by hand, every registered method's contract, designs
that re-evaluate from their files, sweeps, and clear errors for bad spaces and budgets.

No test here reads the wall clock to judge anything: runs are bounded by ``designs`` (with an
unreachable ``seconds``), and deadlines are tested with a stand-in clock that jumps past them."""

import json
import math

import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.hardware import Hardware
from accelmap.arch.load import preset
from accelmap.arch.space import read_hardware_space
from accelmap.codesign.base import CODESIGNERS, get_codesigner
from accelmap.codesign.genetic import GeneticCoDesign
from accelmap.codesign.gradient import GradientCoDesign
from accelmap.codesign.problem import Budgets, CoDesignProblem, Totals
from accelmap.mapspace.constraints import read_constraints
from accelmap.testing import check_codesigner
from accelmap.workload.network import Layer
from accelmap.workload.workload import conv2d, linear

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
# Runs are bounded by designs; ``seconds`` is out of reach, so no result depends on the machine's load.
# the base design, then: two generations; one more design (gradient: its first descent's best start)
DESIGNS = {"genetic": 2 * GeneticCoDesign.size}
DESIGNS_DEFAULT = 2


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("space") / "space.yaml"
    p.write_text(SPACE)
    return p


@pytest.fixture(scope="module")
def area_runs(space_file):
    """One design-bounded run per method at the base's area (shared by the tests that read it)."""
    cache = {}

    def get(method):
        if method not in cache:
            p = make(space_file, "latency", Budgets(area_mm2=BASE_AREA))
            n = DESIGNS.get(method, DESIGNS_DEFAULT)
            # the shared contract (accelmap.testing): ends by its design budget (a generation of the
            # genetic method is counted whole), totals that a fresh cost model reproduces
            slack = GeneticCoDesign.size if method == "genetic" else 0
            cache[method] = (p, n, check_codesigner(method, p, n, seed=0, slack=slack))
        return cache[method]

    return get


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
def test_every_method_returns_a_feasible_design_whose_totals_are_exact(area_runs, method):
    p, n, res = area_runs(method)
    d = res.best
    assert d is not None and d.feasible and d.totals["area_mm2"] <= BASE_AREA


def test_gradient_codesign_beats_the_base_hardware_at_its_area(area_runs):
    p, _, res = area_runs("gradient")
    gen = torch.Generator().manual_seed(0)
    base = p.design(p.base_values(), p.seed_pools(16, gen), gen, 20)  # a longer polish than the run's own
    d = res.best
    assert d.feasible and d.totals["latency_cycles"] < 0.8 * base.totals["latency_cycles"]


def test_cli_design_reevaluates_with_accelmap_evaluate(cli, tmp_path, space_file):
    prob = tmp_path / "pw.yaml"
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob.write_text(dump_yaml(problem_to_dict(LAYERS[1].workload)))
    out = tmp_path / "run"
    code, stdout, err = cli("codesign", str(prob), "--arch-space", str(space_file), "--designs", "2",
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
    from accelmap.runs.codesign import sweep, write_sweep

    budgets = Budgets(area_mm2=BASE_AREA)
    # the sweep's logic is the subject: 3 designs per point, the genetic method's first population
    # for the anchors (after the base design), the warm starts for the later points
    front = sweep(lambda o, b: make(space_file, o, b), ("latency", "power"), budgets, 3, "genetic", math.inf, 0,
                  designs=3)
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
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob.write_text(dump_yaml(problem_to_dict(LAYERS[0].workload)))
    code, out, err = cli("codesign", str(prob), "--arch-space", str(p), "--designs", "1", "--out",
                         str(tmp_path / "run"), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in err


def test_infeasible_budget_names_the_constraint_and_the_gap(cli, tmp_path, space_file):
    prob = tmp_path / "fc.yaml"
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    prob.write_text(dump_yaml(problem_to_dict(LAYERS[0].workload)))
    code, out, err = cli("codesign", str(prob), "--arch-space", str(space_file), "--designs", "1",
                         "--area-budget", "0.05", "--out", str(tmp_path / "run"))
    assert code == 2
    # the smallest design of the space is far above 0.05 mm^2: say so, with the overshoot
    assert "no design found meets the budgets" in err and "area" in err and "exceeds the budget 0.05 by" in err
    assert (tmp_path / "run" / "summary.json").exists()  # the best infeasible point is still written


def test_unknown_builtin_space(cli):
    code, out, err = cli("codesign", "resnet18", "--arch-space", "no_such_space", "--seconds", "1")
    assert code == 2 and "unknown hardware space 'no_such_space'" in err and "eyeriss_edge" in err


@pytest.mark.parametrize("method", ["gradient", "genetic"])
def test_same_seed_and_design_budget_give_the_same_design(area_runs, monkeypatch, method):
    """A second run with the same seed and designs, as on a loaded machine: every descent step
    of the gradient method takes 100 s on this clock, every generation of the genetic one
    100 s. The gradient descent was once cut at 40% of the time left, so a slow machine
    descended fewer steps and ended on another design; nothing but the deadline itself may
    read the clock (and here it never comes: the slow run takes 4,000 s of its 6,000)."""
    import accelmap.codesign.base as cd
    from accelmap.model.cost_model import CostModel

    p, n, first = area_runs(method)
    clock = JumpClock()
    monkeypatch.setattr(cd, "time", clock)
    owner, name = (CostModel, "relaxed") if method == "gradient" else (GeneticCoDesign, "_fitness")
    orig = getattr(owner, name)
    calls = []

    def slow(*args, **kwargs):
        calls.append(1)
        clock.offset += 100.0 / (len(LAYERS) if method == "gradient" else 1)
        return orig(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)
    seconds = 6000.0
    again = get_codesigner(method)(p, seconds, 0, designs=n).run()
    if method == "gradient":  # the whole first descent ran, and no other
        assert len(calls) == GradientCoDesign.first_steps * len(LAYERS)
    assert again.seconds < seconds  # the deadline itself never came (on this clock)
    a, b = first.best, again.best
    assert a.values.tolist() == b.values.tolist() and a.totals == b.totals
    assert all(torch.equal(x, y) for x, y in zip(a.genomes, b.genomes))


# ---- deadlines, the base design, unmapped layers ---------------------------------------------------

class JumpClock:
    """A stand-in for ``time.perf_counter`` in accelmap.codesign that moves only when told: by
    ``offset`` increments, or ``by`` seconds at ``jump()`` (a deadline passes at a chosen point
    of the search). The machine's own speed never shows."""

    def __init__(self, by: float = 1e6):
        self.by, self.offset = by, 0.0

    def perf_counter(self) -> float:
        return self.offset

    def jump(self) -> None:
        self.offset = self.by


def count_calls(monkeypatch, owner, name, log: list, tag: str, after=None):
    """Wrap owner.name so every call appends ``tag`` to ``log`` (then runs ``after(count)``)."""
    orig = getattr(owner, name)
    n = [0]

    def wrapped(*args, **kwargs):
        n[0] += 1
        log.append(tag)
        if after is not None:
            after(n[0])
        return orig(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def instrument(monkeypatch, clock: JumpClock, jump_on: str, at: int) -> list:
    """Log polish/mutation steps ('step'), relaxed descent calls ('descent'), exact population
    evaluations ('population') and offered designs ('design'); the clock jumps past any
    deadline at call ``at`` of ``jump_on`` and logs 'DEADLINE'."""
    import accelmap.codesign.base as cd
    from accelmap.mapspace.space import MappingSpace
    from accelmap.model.cost_model import CostModel

    monkeypatch.setattr(cd, "time", clock)
    log: list = []

    def after(tag):
        def f(k):
            if k == at and tag == jump_on:
                clock.jump()
                log.append("DEADLINE")
        return f

    count_calls(monkeypatch, MappingSpace, "neighbours", log, "step", after("step"))
    count_calls(monkeypatch, CostModel, "relaxed", log, "descent", after("descent"))
    count_calls(monkeypatch, cd.CoDesigner, "offer", log, "design", after("design"))
    count_calls(monkeypatch, GeneticCoDesign, "_fitness", log, "population", after("population"))
    return log


class ShortDescent(GradientCoDesign):
    """The gradient method with a short first descent (not registered): the deadline checks
    after the descent are the subject, not the descent."""

    first_steps = 4


@pytest.mark.parametrize("method", sorted(CODESIGNERS))
def test_the_deadline_stops_every_method_inside_its_loops(space_file, monkeypatch, method):
    """Once the deadline passes (here in the middle of the search, past the base design), no
    new polish step, descent step or generation starts, and at most the design being built
    is finished (without further polish) and offered."""
    p = make(space_file, "latency")
    clock = JumpClock()
    # the base design takes at most 2 layers x 10 polish steps; jump inside the search proper
    jump_on, at = ("population", 3) if method == "genetic" else ("step", 25)
    log = instrument(monkeypatch, clock, jump_on, at)
    res = (ShortDescent if method == "gradient" else get_codesigner(method))(p, 1000.0, 0).run()
    assert "DEADLINE" in log, "the search ended before the clock jumped"
    after = log[log.index("DEADLINE") + 1:]
    assert "step" not in after and "population" not in after
    assert "descent" not in after
    assert after.count("design") <= 1
    assert res.best is not None and res.best.unmapped == 0


def test_the_gradient_descent_stops_at_the_deadline(space_file, monkeypatch):
    p = make(space_file, "latency")
    log = instrument(monkeypatch, JumpClock(), "descent", 2 * len(LAYERS) + 1)  # the third step's first layer
    res = get_codesigner("gradient")(p, 1000.0, 0).run()
    after = log[log.index("DEADLINE") + 1:]
    # the step under way stops before its next layer; no design is started after the descent
    assert after == []
    assert res.best is not None and res.best.values.tolist() == p.base_values().tolist()


@pytest.mark.parametrize("method", sorted(CODESIGNERS))
def test_the_base_design_comes_first_so_a_short_run_returns_it(space_file, method):
    p = make(space_file, "latency")
    for kw in ({"designs": 1}, {}):  # one design; a deadline already past when the run starts
        res = get_codesigner(method)(p, 1000.0 if kw else -1.0, 0, **kw).run()
        d = res.best
        assert res.designs_evaluated == 1 and d.values.tolist() == p.base_values().tolist()
        assert d.unmapped == 0 and d.feasible and all(d.valid)


R7 = conv2d("c7", C=4, K=8, P=8, R=7)  # a 7-wide filter row: its input row needs 7 ifmap_spad words


def small_spad_problem(tmp_path, ifmap_words: str, budgets=Budgets()) -> CoDesignProblem:
    p = tmp_path / "spad.yaml"
    p.write_text(f"base: eyeriss_like\nparameters:\n  ifmap_spad.capacity: {ifmap_words}\n  pe_x: [4, 16]\n")
    return CoDesignProblem([Layer(R7), LAYERS[0]], read_hardware_space(p),
                           read_constraints(preset_constraints("eyeriss_like")), "latency", budgets)


def test_a_design_with_an_unmapped_layer_ranks_below_every_design_that_maps_all(tmp_path):
    p = small_spad_problem(tmp_path, "[4, 64]", Budgets(latency_cycles=1.0))
    v = p.base_values()
    g = [torch.zeros(1), torch.zeros(1)]
    # maps both layers but misses the latency budget by e^15 (a violation of 15, more than the
    # 10 an unmapped layer costs), against one that leaves the first layer unmapped
    over = p.make_design(v, g, [1.0, 1.0], [math.exp(15) / 2, math.exp(15) / 2], [False, False], [])
    hole = p.make_design(v, g, [1.0, 1.0], [1.0, math.exp(3)], [True, False], [])
    assert hole.violation < over.violation  # the raw penalty alone would prefer the hole
    assert over.rank < hole.rank and over.unmapped == 0 and hole.unmapped == 1
    # totals leave the unmapped layer out; the reason names it
    assert hole.totals["latency_cycles"] == pytest.approx(math.exp(3)) and hole.totals["energy_pJ"] == 1.0
    assert hole.valid == [False, True] and "no legal mapping (c7)" in p.describe_violation(hole)
    runner = get_codesigner("random")(p, 1.0, 0)
    runner.offer(hole)
    runner.offer(over)
    assert runner.best is over


def test_search_keeps_the_base_when_the_space_holds_designs_that_cannot_map_a_layer(tmp_path):
    # ifmap_spad below 7 words leaves c7 unmapped; the base (12 words) maps both layers. The run
    # is warm-started (as a sweep's later points are) from a design at 5 words, which is re-scored.
    p = small_spad_problem(tmp_path, "[4, 12]")
    gen = torch.Generator().manual_seed(0)
    small = p.base_values().clone()
    small[0] = 5.0
    start = p.design(small, p.seed_pools(16, gen, small), gen, 2)
    assert start.unmapped == 1
    seen = []
    runner = get_codesigner("random")(p, math.inf, 1, designs=2, initial=(start,))
    orig = runner.offer
    runner.offer = lambda d: (seen.append((d.values[0].item(), d.unmapped)), orig(d))
    res = runner.run()
    assert seen[:2] == [(12.0, 0), (5.0, 1)]  # the base first, then the warm start
    assert res.best.unmapped == 0 and res.best.values[0] >= 7
