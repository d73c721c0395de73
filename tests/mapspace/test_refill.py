"""MappingSpace.refill_meshes: whole-batch mesh refills (DCP's screening pool uses them)."""

import torch

from accelmap.arch.load import preset
from accelmap.mapspace.constraints import Constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.workload.workload import conv2d


def _all_outermost(space: MappingSpace, n: int) -> torch.Tensor:
    """n copies of one genome with every factor at the outermost level (no spatial loop)."""
    g = space.sample(n, torch.Generator().manual_seed(0))
    fac = space.layout.split(g)[0]
    fac[:] = 1
    fac[:, :, 0] = torch.tensor(space.workload.bounds)
    return g


def test_one_refill_fills_an_axis_of_an_empty_mesh_and_keeps_the_bounds():
    # C = K = 16 on a 16 x 16 mesh: with nothing spatial, one refill moves the largest divisor of
    # a dim's temporal factor that fits a 16-wide axis, 16 (by hand), onto the mesh
    space = MappingSpace(conv2d("t", C=16, K=16, P=1, R=1), preset("simple_pe16x16"), Constraints())
    g = _all_outermost(space, 64)
    out = space.refill_meshes(g, torch.Generator().manual_seed(1), moves=1)
    b = space.decode(out)
    used = b.spatial.long().prod(-1).prod(-1).prod(-1)  # [N] PEs in use
    assert (used == 16).all()
    prod = (b.temporal.long() * b.spatial.long().prod(-1)).prod(1)  # [N, D]
    assert (prod == torch.tensor(space.workload.bounds)).all()
    assert torch.equal(g, _all_outermost(space, 64))  # the input is left as it was


def test_refills_raise_the_pools_mesh_use_and_respect_the_mesh():
    space = MappingSpace(conv2d("t", C=64, K=64, P=14, R=3), preset("simple_pe16x16"), Constraints())
    g = space.sample(2048, torch.Generator().manual_seed(0))
    out = space.refill_meshes(g, torch.Generator().manual_seed(1))
    fan = torch.tensor([space.arch.fanout(li) for li in range(len(space.arch.levels))])  # [L, 2]
    fits = lambda x: (space.decode(x).spatial.long().prod(2) <= fan[None]).all(2).all(1)  # [N]
    assert fits(out)[fits(g)].all()  # a refill never overflows a mesh that was not overflowing
    use = lambda x: space.decode(x).spatial.double().prod(-1).prod(-1).prod(-1)  # [N] PEs in use
    ok = fits(g)
    assert use(out)[ok].mean() > use(g)[ok].mean()
