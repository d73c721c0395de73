"""Contract tests every registered optimizer must pass, and the objective parser."""

import math

import pytest
import torch

from accelmap.architecture import preset, preset_constraints
from accelmap.constraints import read_constraints
from accelmap.errors import AccelmapError
from accelmap.objective import Objective
from accelmap.optimizers import OPTIMIZERS, Optimizer, register
from accelmap.search import optimize
from accelmap.space import MappingSpace
from accelmap.workload import conv2d, linear

EYE = preset("eyeriss_like")
EYE_C = read_constraints(preset_constraints("eyeriss_like"))


@pytest.fixture(scope="module")
def small_space():  # small enough for exhaustive in a test
    from accelmap.constraints import Constraints, LevelConstraint

    keep_all = ("Weights", "Inputs", "Outputs")
    cons = Constraints((LevelConstraint("GlobalBuffer", keep=keep_all), LevelConstraint("RegFile", keep=keep_all)))
    return MappingSpace(linear("fc", in_features=8, out_features=12), preset("simple_pe16x16"), cons)


@pytest.fixture(scope="module")
def conv_space():
    return MappingSpace(conv2d("c", C=32, K=64, P=28, R=3), EYE, EYE_C)


def test_registry_has_the_four_and_refuses_duplicates():
    assert {"exhaustive", "random", "genetic", "annealing"} <= set(OPTIMIZERS)

    class Dup(Optimizer):
        name = "random"

    with pytest.raises(ValueError):
        register(Dup)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_contract(name, small_space, conv_space):
    space = small_space if name == "exhaustive" else conv_space
    budget = 10**9 if name == "exhaustive" else 6000
    a = optimize(space, "edp", name, budget, seed=3)
    b = optimize(space, "edp", name, budget, seed=3)
    # respects the budget, is reproducible, returns a legal mapping whose score is its EDP
    assert a.evaluations <= budget
    assert a.score == b.score and torch.equal(a.genome, b.genome)
    assert a.costs is not None and bool(a.costs.valid[0])
    assert math.isclose(a.score, math.log(float(a.costs.edp[0])), rel_tol=1e-9)
    a.mapping.check(space.workload, space.arch)
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
