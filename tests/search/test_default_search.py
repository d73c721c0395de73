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


class _TensorPortfolio:
    """The portfolio's step in tensor operations (what the compiled island updates replace)."""

    def ask(self):
        if self._seeding():
            return self._seed_ask()
        k, a, g, w = self.islands, self.a, self.g, self.w
        G = self.ann_g.shape[2]
        rows = torch.arange(k)[:, None]
        half = max(2, g // 2)
        self._gen_order = torch.argsort(self.gen_s, dim=1)
        better = self._gen_order[:, :half]
        pick = torch.randint(0, half, (k, 2, g), generator=self.gen)
        pa, pb = self.gen_g[rows, better.gather(1, pick[:, 0])], self.gen_g[rows, better.gather(1, pick[:, 1])]
        child = self.space.crossover(pa.reshape(k * g, G), pb.reshape(k * g, G), self.gen).reshape(k, g, G)
        mut = torch.rand(k, g, generator=self.gen) < self.mutation_rate
        out = torch.cat([self.ann_g, child, self.loc_g], 1)
        moved = torch.cat([torch.ones(k, a, dtype=torch.bool), mut, torch.ones(k, w, dtype=torch.bool)], 1)
        out[moved] = self.space.neighbours(out[moved], self.gen)
        self._asked = out.reshape(k * (a + g + w), G)
        return self._asked

    def tell(self, genomes, scores):
        step = self._step(genomes, scores)
        if step is None:
            return
        genomes, scores = step
        k, a, g, w = self.islands, self.a, self.g, self.w
        G, rows = genomes.shape[1], torch.arange(k)
        gk, sk = genomes.reshape(k, a + g + w, G), scores.reshape(k, a + g + w)
        ga, gc, gl = gk.split([a, g, w], 1)
        sa, sc, sl = sk.split([a, g, w], 1)
        self.spent += a
        u = torch.rand(k, a, generator=self.gen, dtype=scores.dtype)
        accept = torch.isfinite(sa) & ((sa <= self.ann_s) | (u < torch.exp(-(sa - self.ann_s).clamp(min=0)
                                                                            / self.temperature())))
        self.ann_g = torch.where(accept[..., None], ga, self.ann_g)
        self.ann_s = torch.where(accept, sa, self.ann_s)
        mn, i = self.ann_s.min(1)
        up = mn < self.ann_best_s
        self.ann_best_g = torch.where(up[:, None], self.ann_g[rows, i], self.ann_best_g)
        self.ann_best_s = torch.where(up, mn, self.ann_best_s)
        worst = torch.argsort(self.ann_s, dim=1, descending=True)[:, :int(a * self.restart_frac)]
        self.ann_g[rows[:, None], worst] = self.ann_best_g[:, None]
        self.ann_s[rows[:, None], worst] = self.ann_best_s[:, None]
        elite = self._gen_order[:, :max(1, int(self.elite_frac * g))]
        cg = torch.cat([self.gen_g[rows[:, None], elite], gc], 1)
        cs = torch.cat([self.gen_s.gather(1, elite), sc], 1)
        keep = torch.argsort(cs, dim=1)[:, :g]
        self.gen_g, self.gen_s = cg[rows[:, None], keep], cs.gather(1, keep)
        better = sl < self.loc_s
        self.loc_g = torch.where(better[..., None], gl, self.loc_g)
        self.loc_s = torch.where(better, sl, self.loc_s)
        mn, i = sk.min(1)
        up = mn < self.best_s
        self.best_g = torch.where(up[:, None], gk[rows, i], self.best_g)
        self.best_s = torch.where(up, mn, self.best_s)
        self.loc_g[up, ::2] = self.best_g[up, None]
        self.loc_s[up, ::2] = self.best_s[up, None]
        rep = self.best_s < self.gen_s.min(1).values
        wi = self.gen_s.argmax(1)
        self.gen_g[rows[rep], wi[rep]] = self.best_g[rep]
        self.gen_s[rows[rep], wi[rep]] = self.best_s[rep]


def test_compiled_island_steps_equal_the_tensor_step():
    """The default search with its compiled island updates takes the very steps of the tensor
    version: the same trace and the same best genome, on a constrained preset and a random-ish
    unconstrained space, at two seeds."""
    from accelmap.mapspace.constraints import Constraints
    from accelmap.search.portfolio import Portfolio

    tensor_cls = type("_TensorPortfolioOpt", (_TensorPortfolio, Portfolio), {"name": "tensor_portfolio"})
    spaces = [_space(), MappingSpace(conv2d("c", C=24, K=40, P=14, R=3, stride=2), preset("simba_like"), Constraints())]
    with OPTIMIZERS.registered(tensor_cls):
        for space in spaces:
            for seed in (0, 1):
                fast = optimize(space, "edp", "portfolio", 20_000, seed=seed, patience=3000)
                ref = optimize(space, "edp", "tensor_portfolio", 20_000, seed=seed, patience=3000)
                assert fast.trace == ref.trace and torch.equal(fast.genome, ref.genome)
                assert fast.evaluations > 5000  # several steps after the seeding
