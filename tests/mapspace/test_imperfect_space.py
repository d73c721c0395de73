"""MappingSpace(imperfect=True): ends that need not divide, residual ends from Timeloop's bound
rule, a superset of the perfect space, and every optimizer on it.
"""

import math

import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import covered_bound
from accelmap.mapspace.constraints import Constraints, LevelConstraint, read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.workload.workload import conv2d, linear

EYE = preset("eyeriss_like")
EYE_C = read_constraints(preset_constraints("eyeriss_like"))
PE16 = preset("simple_pe16x16")  # DRAM, GlobalBuffer (16 x 16 PEs), RegFile
KEEP_ALL = Constraints(tuple(LevelConstraint(lv, keep=("Weights", "Inputs", "Outputs"))
                             for lv in ("GlobalBuffer", "RegFile")))


def _bound_rule_holds(space, genomes) -> bool:
    """Every decoded mapping covers each bound exactly by Timeloop's rule, and Mapping.check agrees."""
    b = space.decode(genomes)
    for m in b.to_mappings(space.workload, space.arch):
        m.check(space.workload, space.arch)
        for d, bound in zip(space.workload.dims, space.workload.bounds):
            loops = [(f, r) for _, _, f, r in m.loops(d)]
            if covered_bound(loops) != bound or any(not 1 <= r <= f for f, r in loops):
                return False
    return True


def test_p13_by_hand():
    """P=13 over DRAM, GlobalBuffer (temporal, spatial) and RegFile: with RegFile P=8 the top
    (DRAM) takes ceil(13/8) = 2 and the RegFile loop runs 8, then 5: (2-1)*8 + 5 = 13."""
    w = linear("p13", in_features=1, out_features=1, tokens=13)
    sp = MappingSpace(w, PE16, KEEP_ALL, imperfect=True)
    P = list(w.dims).index("P")
    g = sp.sample(1, torch.Generator().manual_seed(0))
    fac = sp.layout.split(g)[0]
    fac[0, P] = 1
    fac[0, P, 2] = 8  # RegFile temporal
    b = sp.decode(g)
    assert b.temporal[0, :, P].tolist() == [2, 1, 8] and b.temporal_residual[0, :, P].tolist() == [2, 1, 5]
    # a GlobalBuffer spatial end of 14 with RegFile 1: DRAM 1 (the spatial loop is the outermost
    # that iterates, so its end is clamped to the 13 it can run), no residual at all
    fac[0, P] = 1
    fac[0, P, 3] = 14
    b = sp.decode(g)
    assert int(b.spatial[0, 1, P].prod()) == 13 and int(b.temporal[0, 0, P]) == 1 and b.temporal_residual is None
    # RegFile 4 under a spatial 3: DRAM ceil(13/12) = 2; the digits of 12 are 12 % 4 = 0 (RegFile
    # 4,1) and 3 % 3 = 0 (spatial 3,1), and 1 + 1 = 2 at DRAM: (2-1)*3*4 + (1-1)*4 + (1-1) + 1 = 13
    fac[0, P] = 1
    fac[0, P, 3], fac[0, P, 2] = 3, 4
    b = sp.decode(g)
    assert b.temporal[0, :, P].tolist() == [2, 1, 4] and b.temporal_residual[0, :, P].tolist() == [2, 1, 1]
    assert int(b.spatial_residual[0, 1, P].prod()) == 1 and int(b.spatial[0, 1, P].prod()) == 3
    assert _bound_rule_holds(sp, g)


def test_hand_counted_factor_space():
    """P=5 alone: the RegFile end e1 in 1..5, the GlobalBuffer spatial end e2 up to ceil(5/e1),
    its temporal end e3 up to ceil(5/(e1 e2)), DRAM the rest: 13 + 6 + 3 + 3 + 1 = 26 choices
    (e1 = 1..5), 4 of them perfect (5 in one of the 4 slots)."""
    w = linear("p5", in_features=1, out_features=1, tokens=5)
    imp = MappingSpace(w, PE16, KEEP_ALL, imperfect=True)
    per = MappingSpace(w, PE16, KEEP_ALL)
    P = list(w.dims).index("P")
    assert len(imp._enum_tables()[P]) == 26 and len(per.tables[P]) == 4
    # enumeration: the spatial dim's axis is free on the 16 x 16 mesh (2 choices where it is > 1)
    spatial = [row for row in imp._enum_tables()[P].tolist() if row[3] > 1]
    assert imp.pruned_size() == 26 + len(spatial) == sum(len(g) for g in imp.enumerate())
    ends = torch.cat(list(imp.enumerate()))
    assert _bound_rule_holds(imp, ends)
    # every perfect point is enumerated too
    keys = {tuple(r) for r in ends.tolist()}
    assert all(tuple(r) in keys for g in per.enumerate() for r in g.tolist())


@pytest.mark.parametrize("arch, cons, w", [
    (EYE, EYE_C, conv2d("c13", C=6, K=10, P=13, R=3)),
    (PE16, KEEP_ALL, linear("tok", in_features=24, out_features=20, tokens=197)),
])
def test_moves_keep_the_bound_rule_and_reach_imperfect_mappings(arch, cons, w):
    sp = MappingSpace(w, arch, cons, imperfect=True)
    gen = torch.Generator().manual_seed(2)
    g = sp.sample(200, gen)
    nb = sp.neighbours(g, gen)
    kids = sp.crossover(g, nb, gen)
    code = sp.to_code(nb) + 0.1 * torch.randn(len(nb), sp.to_code(nb).shape[1], generator=gen, dtype=torch.float64)
    rounded = sp.from_code(code)
    for batch in (g, nb, kids, rounded):
        assert _bound_rule_holds(sp, batch)
    b = sp.decode(g)
    assert 0.2 < float(b.imperfect.float().mean()) < 0.99  # both kinds are drawn
    # ends that do not divide the bound, spatial ones too
    ends = b.temporal.long() * b.spatial.long().prod(-1)  # [N, L, D]
    bounds = torch.tensor(w.bounds)
    assert bool(((bounds[None, None] % ends) != 0).any())
    assert bool(((bounds[None, None] % b.spatial.long().prod(-1)) != 0).any())
    # decode reads canonical ends: encode(decode(g)) decodes to the same mappings
    again = sp.decode(sp.encode(b))
    for f in ("temporal", "spatial", "temporal_residual", "spatial_residual", "order", "keep"):
        assert torch.equal(getattr(again, f), getattr(b, f))
    # spatial ends stay within the mesh after the axis repair (the model masks the rest)
    assert bool(sp.evaluate(g[:24]).valid.any())


def test_superset_of_the_perfect_space():
    w = conv2d("c", C=8, K=12, P=14, R=3)
    per = MappingSpace(w, EYE, EYE_C)
    imp = MappingSpace(w, EYE, EYE_C, imperfect=True)
    g = per.sample(500, torch.Generator().manual_seed(3))
    a, b = per.decode(g), imp.decode(g)
    assert b.temporal_residual is None and b.spatial_residual is None  # a perfect batch pays nothing
    for f in ("temporal", "spatial", "order", "keep"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert torch.equal(imp.canonical(g), g)  # perfect genomes are canonical ends
    # the imperfect space's draws cover every perfect factorization of a small dim
    P = list(w.dims).index("P")
    drawn = {tuple(r) for r in imp.layout.split(imp.sample(3000, torch.Generator().manual_seed(4)))[0][:, P].tolist()}
    assert {tuple(r) for r in per.tables[P].tolist()} <= drawn


def test_perfect_space_is_unchanged_by_the_option():
    w = conv2d("c", C=8, K=12, P=14, R=3)
    a, b = MappingSpace(w, EYE, EYE_C), MappingSpace(w, EYE, EYE_C, imperfect=False)
    ga, gb = a.sample(300, torch.Generator().manual_seed(5)), b.sample(300, torch.Generator().manual_seed(5))
    assert torch.equal(ga, gb)
    assert torch.equal(a.neighbours(ga, torch.Generator().manual_seed(6)), b.neighbours(gb, torch.Generator().manual_seed(6)))
    assert a.decode(ga).temporal_residual is None


def test_remainders_limit_where_residuals_go():
    """'remainders: 3' at the RegFile only: residual ends (r != f) there, at most 3, nowhere else."""
    w = linear("tok", in_features=4, out_features=4, tokens=197)
    cons = Constraints(KEEP_ALL.levels + (LevelConstraint("RegFile", remainders=3),))
    sp = MappingSpace(w, PE16, cons, imperfect=True)
    gen = torch.Generator().manual_seed(7)
    g = torch.cat([sp.sample(1000, gen), sp.neighbours(sp.sample(1000, gen), gen)])
    b = sp.decode(g)
    assert b.has_residuals
    t, s = b.residual_ends()
    rf = list(PE16.level_names).index("RegFile")
    diff_t = t != b.temporal
    assert not diff_t[:, :rf].any() and not (s != b.spatial).any()
    assert bool((t[:, rf][diff_t[:, rf]] <= 3).all())
    assert _bound_rule_holds(sp, g)


def test_fixed_factor_that_does_not_divide():
    """A constraint's fixed end (RegFile P=8 on P=13) is refused by the perfect space and kept as
    an end by the imperfect one (DRAM 2, RegFile 8,5)."""
    w = linear("p13", in_features=2, out_features=2, tokens=13)
    cons = Constraints(KEEP_ALL.levels + (LevelConstraint("RegFile", temporal=(("P", 8),)),))
    with pytest.raises(AccelmapError, match="does not divide"):
        MappingSpace(w, PE16, cons)
    sp = MappingSpace(w, PE16, cons, imperfect=True)
    b = sp.decode(sp.sample(300, torch.Generator().manual_seed(8)))
    P = list(w.dims).index("P")
    assert bool((b.temporal[:, 2, P] == 8).all()) and b.has_residuals
    assert _bound_rule_holds(sp, sp.sample(300, torch.Generator().manual_seed(8)))


def test_seeds_come_first():
    w = conv2d("c", C=8, K=12, P=14, R=3)
    per = MappingSpace(w, EYE, EYE_C)
    seed = per.sample(2, torch.Generator().manual_seed(9))
    sp = MappingSpace(w, EYE, EYE_C, imperfect=True, seeds=seed)
    assert torch.equal(sp.sample(10, torch.Generator().manual_seed(0))[:2], seed)
    # the default search's outward-biased seeding keeps them first too
    from accelmap.search.base import outward_sample

    assert torch.equal(outward_sample(sp, 10, torch.Generator().manual_seed(0))[:2], seed)


def _tiny_spaces():
    w = conv2d("tiny", C=3, K=5, P=7, R=1)
    return MappingSpace(w, PE16, KEEP_ALL, imperfect=True)


@pytest.mark.parametrize("name", ["annealing", "genetic", "random", "gradient", "portfolio", "exhaustive", "dcp"])
def test_every_optimizer_runs_on_an_imperfect_space(name, monkeypatch):
    from accelmap.search import OPTIMIZERS
    from accelmap.search.base import _Population
    from accelmap.search.loop import optimize

    assert name in OPTIMIZERS.names()
    sp = MappingSpace(conv2d("tiny", C=3, K=5, P=7, R=1), PE16, KEEP_ALL, imperfect=True)
    budget = 160
    cls = OPTIMIZERS.get(name)
    # small populations and seeding draws: the residual cost model costs milliseconds per mapping
    monkeypatch.setattr(_Population, "_seed_ask", lambda self: self.space.sample(4 * self.size, self.gen))
    for attr, v in (("size", 8), ("n_genetic", 8), ("n_local", 8), ("steps", 10), ("pool", 128), ("starts", 8),
                    ("first", 16), ("rounds", 8), ("refine_pool", 64), ("batch", 32),
                    ("walk_keep", 8), ("walk_rounds", 1), ("walk_width", 2)):
        if hasattr(cls, attr):
            monkeypatch.setattr(cls, attr, v)
    if name == "dcp":  # the packaged predictor knows eyeriss_like's levels
        sp = MappingSpace(conv2d("tiny", C=3, K=5, P=7, R=1), EYE, EYE_C, imperfect=True)
        budget = 24  # its legality screens evaluate hundreds of mappings per verified one
        monkeypatch.setattr(cls, "refine_pool", 32)
    if name == "exhaustive":
        # a space small enough to enumerate: one dim of 7, the rest trivial
        sp = MappingSpace(linear("p7", in_features=1, out_features=1, tokens=7), PE16, KEEP_ALL, imperfect=True)
        budget = sp.pruned_size()
    res = optimize(sp, "edp", name, budget=budget, seed=0)
    assert res.mapping is not None and bool(res.costs.valid[0]) and math.isfinite(res.score)
    res.mapping.check(sp.workload, sp.arch)  # the bound rule, residual ends within their ends
    assert res.evaluations <= budget
    # the search ranked with the screen, but reports the exact costs of what it returns
    from accelmap.mapping.mapping import MappingBatch
    from accelmap.model.objective import Objective

    exact = sp.model(MappingBatch.from_mappings([res.mapping], sp.workload, sp.arch))
    assert res.score == pytest.approx(float(Objective.parse("edp").score(exact)[0]), rel=1e-12)
    assert float(res.costs.edp[0]) == pytest.approx(float(exact.edp[0]), rel=1e-12)
    if name == "exhaustive":
        # the whole space was seen: its best is at least as good as the best perfect mapping
        per = MappingSpace(sp.workload, PE16, KEEP_ALL)
        best_perfect = optimize(per, "edp", "exhaustive", budget=per.pruned_size(), seed=0)
        assert res.evaluations == budget and res.score <= best_perfect.score


def test_gradient_rounding_targets_residual_factorizations():
    """The relaxed descent's log ends are rounded per loop to integers and the rest follows the
    bound rule: the rounded genomes decode to legal covers, some of them imperfect."""
    from accelmap.search.gradient import Gradient

    sp = MappingSpace(linear("tok", in_features=24, out_features=20, tokens=197), PE16, KEEP_ALL, imperfect=True)
    gen = torch.Generator().manual_seed(11)
    seeds = sp.sample(32, gen)
    opt = type("G", (Gradient,), {"steps": 15})(sp, gen, 1000)
    out = opt._descend(seeds)
    assert _bound_rule_holds(sp, out) and sp.decode(out).has_residuals
