"""Contract tests every registered optimizer must pass, and the objective parser."""


import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.mapspace.constraints import read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.model.objective import Objective
from accelmap.search.base import OPTIMIZERS, Optimizer, register
from accelmap.search.loop import optimize
from accelmap.testing import check_optimizer
from accelmap.workload.workload import conv2d, linear

EYE = preset("eyeriss_like")
EYE_C = read_constraints(preset_constraints("eyeriss_like"))


@pytest.fixture(scope="module")
def small_space():  # small enough for exhaustive in a test
    from accelmap.mapspace.constraints import Constraints, LevelConstraint

    keep_all = ("Weights", "Inputs", "Outputs")
    cons = Constraints((LevelConstraint("GlobalBuffer", keep=keep_all), LevelConstraint("RegFile", keep=keep_all)))
    return MappingSpace(linear("fc", in_features=8, out_features=12), preset("simple_pe16x16"), cons)


@pytest.fixture(scope="module")
def conv_space():
    return MappingSpace(conv2d("c", C=32, K=64, P=28, R=3), EYE, EYE_C)


def test_registry_has_the_four_and_refuses_duplicates():
    assert {"exhaustive", "random", "genetic", "annealing", "portfolio"} <= set(OPTIMIZERS)

    class Dup(Optimizer):
        name = "random"

    with pytest.raises(ValueError):
        register(Dup)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_contract(name, small_space, conv_space):
    space = small_space if name == "exhaustive" else conv_space
    budget = 10**9 if name == "exhaustive" else 6000
    # respects the budget, is reproducible, returns a legal mapping whose score is its EDP
    check_optimizer(name, space, budget, seed=3)
    if name not in ("random", "exhaustive"):
        # beats random sampling at the same budget (median of three seeds each)
        ours = sorted(optimize(space, "edp", name, budget, seed=s).score for s in range(3))[1]
        rnd = sorted(optimize(space, "edp", "random", budget, seed=s).score for s in range(3))[1]
        assert ours < rnd


def test_exhaustive_finds_the_optimum_and_refuses_huge_spaces(small_space, conv_space):
    ex = optimize(small_space, "edp", "exhaustive", 10**9)
    assert ex.evaluations == small_space.pruned_size()
    for name in ("annealing", "genetic", "random"):
        assert optimize(small_space, "edp", name, 20000, seed=0).score >= ex.score - 1e-12
    with pytest.raises(AccelmapError, match="exhaustive limit"):
        optimize(conv_space, "edp", "exhaustive", 100)


def test_budget_must_be_positive(conv_space):
    with pytest.raises(AccelmapError, match="budget"):
        optimize(conv_space, "edp", "random", 0)


def test_objectives_and_result_constraints(conv_space):
    e = optimize(conv_space, "energy", "annealing", 8000, seed=0)
    c = optimize(conv_space, "cycles", "annealing", 8000, seed=0)
    assert float(e.costs.energy[0]) <= float(c.costs.energy[0])
    assert float(c.costs.cycles[0]) <= float(e.costs.cycles[0])
    lex = Objective.parse("lex:cycles,energy")
    assert lex.lexicographic and [m for m, _ in lex.terms] == ["cycles", "energy"]
    w = Objective.parse("0.7*energy+0.3*cycles")
    assert w.terms == (("energy", 0.7), ("cycles", 0.3))
    req = Objective.parse("energy", ["utilization>=0.9"])
    r = optimize(conv_space, req, "annealing", 8000, seed=0)
    assert float(r.costs.utilization[0]) >= 0.9
    with pytest.raises(AccelmapError):
        Objective.parse("speed")
    with pytest.raises(AccelmapError):
        Objective.parse("edp", ["power < 3"])


# ---- issue 17: the default search does not stall ----------------------------------------------

PE16 = preset("simple_pe16x16")
PE16_C = read_constraints(preset_constraints("simple_pe16x16"))


def _stalled_layer():
    """ResNet-18 layer2.0.conv1 (3x3, stride 2, C=64, K=128, 28x28): annealing used to stop at
    258,048 cycles (7/8 of the 16x16 mesh) where a full mesh gives 225,792."""
    return conv2d("layer2.0.conv1", C=64, K=128, P=28, R=3, stride=2)


def test_patience_counts_evaluations_since_the_last_improvement(conv_space):
    g0 = conv_space.sample_legal(1, torch.Generator().manual_seed(0))

    class Same(Optimizer):  # the same legal point every step: the first batch is the last gain
        name = "same"

        def ask(self):
            return g0.repeat(100, 1)

    with OPTIMIZERS.registered(Same):
        r = optimize(conv_space, "edp", "same", 10_000, seed=0, patience=300)
    # best at 100 evaluations, stop once 300 more brought nothing: 400
    assert r.evaluations == 400


STALLED_MAPPING = """
mapping:
- {target: DRAM, type: datatype, keep: [Weights, Inputs, Outputs], bypass: []}
- {target: DRAM, type: temporal, factors: R=3 S=1 P=14 Q=1 C=1 K=1 N=1, permutation: PSNCQKR}
- {target: GlobalBuffer, type: datatype, keep: [Weights], bypass: [Inputs, Outputs]}
- {target: GlobalBuffer, type: temporal, factors: R=1 S=1 P=2 Q=1 C=1 K=64 N=1, permutation: QRKSCPN}
- {target: GlobalBuffer, type: spatial, factors: R=1 S=1 P=1 Q=7 C=16 K=2 N=1, permutation: CKQNPSR, split: 1}
- {target: RegFile, type: datatype, keep: [Weights, Inputs, Outputs], bypass: []}
- {target: RegFile, type: temporal, factors: R=1 S=3 P=1 Q=4 C=4 K=1 N=1, permutation: PCKQSRN}
"""


def test_fill_move_reaches_a_full_mesh_from_the_stalled_split():
    w = _stalled_layer()
    space = MappingSpace(w, PE16, PE16_C)
    lay = space.layout
    # the mapping annealing stalled at: C=16 on X, Q=7 x K=2 on Y (224 of 256 PEs)
    m = parse_mapping(STALLED_MAPPING, PE16.level_names)
    g = space.encode(MappingBatch.from_mappings([m], w, PE16))
    c0 = space.evaluate(g)
    assert bool(c0.valid[0]) and float(c0.cycles[0]) == 258_048
    nb = space.neighbours(g.repeat(4000, 1), torch.Generator().manual_seed(0))
    f = lay.split(nb)[0]
    # every neighbour is a factorization of the layer's bounds from the space's tables
    assert torch.equal(f.prod(2), torch.tensor(w.bounds).expand(len(nb), -1))
    for di, table in enumerate(space.tables):
        assert (f[:, di, None, :] == table[None]).all(2).any(1).all()
    # one move reaches legal mappings that use all 16 x 16 PEs (prime moves alone need two or
    # more, through Q=1 first); which of them is fast is the search's job (test below)
    full = f[:, :, lay.L].prod(1) == 256
    c = space.evaluate(nb)
    assert (c.valid & full).any()


def test_default_search_reaches_the_full_mesh_on_the_stalled_layer():
    import inspect

    from accelmap.runs.map import plan_map
    from accelmap.search.network import DEFAULT_BUDGET, DEFAULT_PATIENCE

    default = inspect.signature(plan_map).parameters["optimizer"].default
    space = MappingSpace(_stalled_layer(), PE16, PE16_C)
    r = optimize(space, "edp", default, DEFAULT_BUDGET, seed=0, patience=DEFAULT_PATIENCE)
    assert float(r.costs.cycles[0]) == 225_792 == space.workload.macs / 256  # every PE busy
