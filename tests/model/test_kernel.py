"""The compiled kernel and the tensor model are two implementations of one model: they must
agree on every output, on random mappings of many layer kinds, keep patterns and both presets."""

import pytest
import torch

from accelmap.arch.load import preset
from accelmap.mapspace.sampling import random_batch
from accelmap.model import kernel
from accelmap.model.cost_model import CostModel
from accelmap.workload.workload import batched_matmul, conv2d, linear

pytestmark = pytest.mark.skipif(not kernel.HAVE_NUMBA, reason="numba not installed")

LAYERS = [
    conv2d("conv3x3", C=64, K=64, P=56, R=3),
    conv2d("conv7x7_s2", C=3, K=64, P=112, R=7, stride=2),
    conv2d("pw", C=144, K=24, P=56, R=1),
    conv2d("dw", C=144, K=144, P=56, R=3, groups=144),
    conv2d("dilated", C=32, K=32, P=28, R=3, dilation=2),
    conv2d("grouped", C=64, K=64, P=14, R=3, groups=4),
    linear("fc", in_features=512, out_features=1000),
    batched_matmul("attn", batch=12, M=197, K=64, N=197),
]
FIELDS = ["energy", "cycles", "reason", "reads", "fills", "updates", "tile", "instances", "energy_by_level",
          "energy_by_level_tensor", "compute_cycles", "level_cycles", "capacity_excess", "fanout_excess",
          "factor_error"]


@pytest.mark.parametrize("arch_name", ["eyeriss_like", "simple_pe16x16"])
@pytest.mark.parametrize("w", LAYERS, ids=lambda w: w.name)
def test_kernel_equals_tensor_model(arch_name, w):
    arch = preset(arch_name)
    g = torch.Generator().manual_seed(7)
    b = random_batch(w, arch, 600, g)
    # random keep patterns (the outermost level keeps everything in most of them)
    keep = torch.rand(b.keep.shape, generator=g) < 0.6
    keep[:500, 0] = True
    b = type(b)(b.temporal, b.order, b.spatial, keep, b.spatial_order)
    ck = CostModel(w, arch, backend="kernel")(b)
    ct = CostModel(w, arch, backend="torch")(b)
    for f in FIELDS:
        a, c = getattr(ck, f).double(), getattr(ct, f).double()
        same = torch.isclose(a, c, rtol=1e-9, atol=1e-6) | (torch.isinf(a) & torch.isinf(c))
        assert bool(same.all()), (f, int((~same).reshape(len(b), -1).any(1).sum()))
    assert ck.valid.any() or arch_name == "simple_pe16x16"


def test_search_mode_keeps_the_totals():
    arch = preset("eyeriss_like")
    w = LAYERS[0]
    b = random_batch(w, arch, 300)
    m = CostModel(w, arch, backend="kernel")
    full, fast = m(b), m(b, detail=False)
    assert torch.equal(full.energy, fast.energy) and torch.equal(full.cycles, fast.cycles)
    assert torch.equal(full.reason, fast.reason) and fast.reads.numel() == 0


@pytest.mark.parametrize("arch_name", ["eyeriss_like", "simple_pe16x16"])
def test_without_invalid_costs_only_invalid_mappings_change(arch_name):
    """The early stop at an invalid mapping: the same reason for every mapping, the same energy
    and cycles for every valid one, +inf for the invalid ones (of every reason)."""
    arch = preset(arch_name)
    for w in LAYERS[:4]:
        g = torch.Generator().manual_seed(3)
        b = random_batch(w, arch, 600, g)
        keep = torch.rand(b.keep.shape, generator=g) < 0.6
        keep[:450, 0] = True  # the rest mostly bypass a tensor at the outermost level (a reason of its own)
        b = type(b)(b.temporal, b.order, b.spatial, keep, b.spatial_order)
        m = CostModel(w, arch, backend="kernel")
        full, fast = m(b, detail=False), m(b, detail=False, invalid_costs=False)
        assert torch.equal(full.reason, fast.reason)
        ok = full.valid
        assert torch.equal(full.energy[ok], fast.energy[ok]) and torch.equal(full.cycles[ok], fast.cycles[ok])
        assert torch.isinf(fast.energy[~ok]).all() and torch.isinf(fast.cycles[~ok]).all()
        assert len(set(full.reason.tolist())) >= 3  # valid and at least two reasons of failure
        assert torch.equal(m(b, detail=False, validity_only=True).reason, full.reason)
