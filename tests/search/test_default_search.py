"""The default search's legality-aware parts: patience over legal evaluations, the mesh check
read off genomes, the outward seeding; the islands' independence."""

import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.mapspace.constraints import read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.model.status import BAD_FANOUT
from accelmap.search.base import OPTIMIZERS, Optimizer, fits_mesh, outward_sample
from accelmap.search.loop import optimize
from accelmap.workload.workload import conv2d

PE16 = preset("simple_pe16x16")
PE16_C = read_constraints(preset_constraints("simple_pe16x16"))


def _space():
    return MappingSpace(conv2d("c", C=32, K=64, P=28, R=3), PE16, PE16_C)


def test_patience_counts_legal_evaluations_only():
    space = _space()
    g = space.sample(20000, torch.Generator().manual_seed(0))
    c = space.evaluate(g)
    good, bad = g[c.valid][:1], g[~c.valid][:100]
    assert len(good) == 1 and len(bad) == 100

    class Mixed(Optimizer):  # one legal point, then the same legal point and 99 illegal ones per step
        name = "mixed"

        def ask(self):
            return torch.cat([good, bad[:99]])

    with OPTIMIZERS.registered(Mixed):
        r = optimize(space, "edp", "mixed", 100_000, seed=0, patience=5)
    # best in the first batch (1 legal); 5 more legal evaluations without a gain take 5 batches
    # of 100 (as Timeloop's victory condition, illegal mappings do not count): 600 evaluations
    assert r.evaluations == 600 and r.legal == 6


def test_mesh_check_agrees_with_the_cost_model():
    space = _space()
    g = space.sample(4000, torch.Generator().manual_seed(1))
    fac = space.layout.split(g)[0]
    fac[:, :, space.layout.L:] = 1  # no spatial factors: every axis fits
    assert fits_mesh(space, g).all()
    g = space.sample(4000, torch.Generator().manual_seed(1))
    c = space.evaluate(g)
    over = c.reason == BAD_FANOUT
    assert over.any() and (~over).any()
    # factors always multiply to the bounds here, so the model's first failure is the mesh's
    assert torch.equal(fits_mesh(space, g), ~over)


def test_outward_samples_are_table_rows_and_more_often_legal():
    space = _space()
    gen = torch.Generator().manual_seed(2)
    g = outward_sample(space, 4000, gen)
    f = space.layout.split(g)[0]
    for d, table in enumerate(space.tables):
        assert (f[:, d, None, :] == table[None]).all(2).any(1).all()
    uniform = float(space.evaluate(space.sample(4000, gen)).valid.float().mean())
    outward = float(space.evaluate(g).valid.float().mean())
    assert outward > uniform


def test_portfolio_islands_share_nothing():
    from accelmap.search.portfolio import Portfolio

    space = _space()
    gen = torch.Generator().manual_seed(4)
    opt = Portfolio(space, gen, 100_000)
    while opt._seeding():  # seed with the space's own scores
        g = opt.ask()
        opt.tell(g, torch.log(space.evaluate(g).edp).where(space.evaluate(g).valid, torch.tensor(float("inf"))))
    k = opt.islands
    order = torch.argsort(opt.scores)
    for i in range(k):  # dealt by rank: island i holds ranks i, i + k, ...
        assert torch.equal(opt.ann_s[i], opt.scores[order[i::k]])
        assert float(opt.best_s[i]) == float(opt.scores[order[i]])
    g = opt.ask()
    s = torch.full((len(g),), float("inf"))
    s[0] = -1.0  # a new best in island 0's part of the batch only
    before = opt.best_s.clone()
    opt.tell(g, s)
    assert float(opt.best_s[0]) == -1.0 and torch.equal(opt.best_g[0], g[0])
    assert torch.equal(opt.best_s[1:], before[1:])
    assert (opt.loc_s[0, ::2] == -1.0).all() and (opt.loc_s[1:] > -1.0).all()  # walkers of island 0 only
