import math

import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import Constraints, LevelConstraint, constraints_from_dict, read_constraints
from accelmap.mapspace.space import MappingSpace, ordered_factorizations
from accelmap.workload.workload import conv2d, linear

EYE = preset("eyeriss_like")
EYE_C = read_constraints(preset_constraints("eyeriss_like"))


def test_ordered_factorizations_by_hand():
    assert sorted(ordered_factorizations(12, 2)) == [(1, 12), (2, 6), (3, 4), (4, 3), (6, 2), (12, 1)]
    assert len(ordered_factorizations(64, 3)) == math.comb(6 + 2, 2)  # 2^6 into 3 slots
    assert ordered_factorizations(1, 3) == [(1, 1, 1)]


@pytest.fixture(scope="module")
def space():
    return MappingSpace(conv2d("c", C=64, K=64, P=56, R=3), EYE, EYE_C)


def _factor_products_ok(space, g):
    b = space.decode(g)
    prod = (b.temporal.long() * b.spatial.long().prod(-1)).prod(1)  # [N, D]
    return bool((prod == torch.tensor(space.workload.bounds)).all())


def test_samples_respect_bounds_and_constraints(space):
    gen = torch.Generator().manual_seed(0)
    g = space.sample(2000, gen)
    assert _factor_products_ok(space, g)
    b = space.decode(g)
    dims = list(space.workload.dims)
    L = {n: i for i, n in enumerate(EYE.level_names)}
    # psum_spad: only a K loop; weights_spad: the whole R; no N, P, R across PEs
    for d in "CRSPQN":
        assert (b.temporal[:, L["psum_spad"], dims.index(d)] == 1).all()
    assert (b.temporal[:, L["weights_spad"], dims.index("R")] == 3).all()
    for d in "NPR":
        assert (b.spatial[:, L["shared_glb"], dims.index(d)] == 1).all()
    # bypass: spads keep only their own tensor; the glb never keeps weights
    assert b.keep[:, L["psum_spad"]].tolist()[0] == [False, False, True]
    assert not b.keep[:, L["shared_glb"], 0].any()
    # the psum_spad loop order is fixed: K innermost
    assert (b.order[:, L["psum_spad"], dims.index("K")] == len(dims) - 1).all()


def test_genome_round_trip_and_moves_keep_legality(space):
    gen = torch.Generator().manual_seed(1)
    g = space.sample(500, gen)
    again = space.decode(space.encode(space.decode(g)))
    first = space.decode(g)
    for f in ("temporal", "spatial", "order", "keep"):
        assert torch.equal(getattr(again, f), getattr(first, f))
    n = space.neighbours(g, gen)
    assert _factor_products_ok(space, n)
    assert (n != g).any(1).float().mean() > 0.5  # most moves change something
    c = space.crossover(g, n, gen)
    assert _factor_products_ok(space, c)
    back = space.from_code(space.to_code(g))
    assert torch.equal(space.decode(back).temporal, space.decode(g).temporal)


def test_sample_legal_is_legal(space):
    g = space.sample_legal(300, torch.Generator().manual_seed(2))
    assert len(g) == 300 and bool(space.evaluate(g).valid.all())


def test_impossible_constraints_name_the_constraint():
    bad = constraints_from_dict({"architecture_constraints": {"targets": [
        {"target": "psum_spad", "type": "temporal", "factors": "K=5"}]}}, "c.yaml")
    with pytest.raises(AccelmapError, match="targets\\[0\\].*does not divide"):
        MappingSpace(conv2d("c", C=64, K=64, P=56, R=3), EYE, bad)
    missing = constraints_from_dict({"targets": [{"target": "l9_buffer", "type": "bypass", "keep": ["Inputs"]}]}, "c.yaml")
    with pytest.raises(AccelmapError, match="l9_buffer"):
        MappingSpace(conv2d("c", C=64, K=64, P=56, R=3), EYE, missing)
    nodim = constraints_from_dict({"targets": [{"target": "DRAM", "type": "temporal", "factors": "Z=2"}]}, "c.yaml")
    with pytest.raises(AccelmapError, match="dimension 'Z'"):
        MappingSpace(conv2d("c", C=64, K=64, P=56, R=3), EYE, nodim)
    # a 16x16 kernel's input row (16 words) cannot fit the 12-word ifmap_spad that must hold it
    sp = MappingSpace(conv2d("patch", C=3, K=768, P=14, R=16, stride=16), EYE, EYE_C)
    with pytest.raises(AccelmapError, match="no legal mapping.*capacity"):
        sp.sample_legal(1, torch.Generator().manual_seed(0), max_draws=20_000)


def test_pruned_enumeration_counts_and_is_legal_space():
    arch = preset("simple_pe16x16")
    cons = Constraints((LevelConstraint("GlobalBuffer", keep=("Weights", "Inputs", "Outputs")),
                        LevelConstraint("RegFile", keep=("Weights", "Inputs", "Outputs"))))
    sp = MappingSpace(linear("tiny", in_features=4, out_features=6), arch, cons)
    chunks = list(sp.enumerate(chunk=1000))
    g = torch.cat(chunks)
    assert len(g) == sp.pruned_size()
    assert len(torch.unique(g, dim=0)) == len(g)  # no point twice
    assert _factor_products_ok(sp, g)
