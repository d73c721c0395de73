"""Hardware spaces: parsing, base values reproduce the base architecture, gradients flow
through sizes, and rounded designs are architectures that evaluate consistently."""

import json

import pytest
import torch

from accelmap.arch.architecture import write_architecture
from accelmap.arch.hardware import Hardware
from accelmap.arch.load import preset, read_architecture
from accelmap.arch.space import read_hardware_space
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.model.cost_model import CostModel
from accelmap.workload.load import read_problem_yaml

SPACE = """
base: eyeriss_like
parameters:
  pe_x: [4, 32]
  pe_y: [4, 32]
  shared_glb.capacity: [16384, 262144]
  weights_spad.capacity: [64, 512]
  shared_glb.read_bandwidth: [4, 64]
"""


@pytest.fixture
def space(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SPACE)
    return read_hardware_space(p)


def test_base_values_reproduce_the_base(space):
    hw = space.hardware(space.base_values())
    ref = Hardware.from_arch(preset("eyeriss_like"))
    for f in ("capacity", "read_bw", "read_energy", "write_energy", "area", "instances", "fanout", "mac_instances"):
        assert torch.allclose(getattr(hw, f), getattr(ref, f), rtol=1e-12), f


def test_sizes_move_energy_area_and_gradients_flow(space, ref):
    v = space.base_values().clone()
    v[2] = 131072.0  # double the glb
    bigger = space.hardware(v)
    base = space.hardware(space.base_values())
    assert bigger.read_energy[1] > base.read_energy[1] and bigger.area[1] > base.area[1]
    v[0] = 28.0  # twice the PEs along X
    wide = space.hardware(v)
    assert float(wide.mac_instances) == 2 * 168 and wide.fanout[1, 0] == 28
    # gradient of a layer's relaxed energy with respect to every parameter
    r = json.loads(open(ref / "records/eyeriss_like.jsonl").readline())
    arch = preset("eyeriss_like")
    w = read_problem_yaml(ref / "inputs/problems" / f"{r['layer']['name']}.yaml")
    b = MappingBatch.from_mappings([parse_mapping(r["mapping_yaml"], arch.level_names)], w, arch)
    x = space.base_values().requires_grad_(True)
    c = CostModel(w, arch).relaxed(b.temporal.double().log(), b.spatial.double().log(), b.order, b.keep,
                                  hw=space.hardware(x), spatial_order=b.spatial_order)
    (g,) = torch.autograd.grad(torch.log(c.energy * c.area).sum(), x)
    assert torch.isfinite(g).all() and g[2] > 0  # a bigger glb costs energy per access and area


def test_rounded_design_is_an_architecture(space, tmp_path):
    v = space.base_values().clone()
    v[0], v[1], v[2] = 16.0, 16.0, 98304.0
    a = space.architecture(v)
    assert a.compute.instances == 256 and a.fanout(1) == (16, 16) and a.levels[1].capacity == 98304
    b = read_architecture(*write_architecture(a, tmp_path))
    assert b.compute.instances == 256 and b.levels[1].capacity == 98304
    assert b.levels[1].read_energy == pytest.approx(a.levels[1].read_energy)


@pytest.mark.parametrize("text, expect", [
    ("base: eyeriss_like\nparameters:\n  shared_glb.capacity: [65536, 1024]\n", "inverted range"),
    ("base: eyeriss_like\nparameters:\n  shared_glb.colour: [1, 2]\n", "unknown parameter"),
    ("base: eyeriss_like\nparameters: {}\n", "non-empty"),
    ("parameters:\n  pe_x: [1, 2]\n", "base"),
    ("base: eyeriss_like\nparameters:\n  DRAM.capacity: [1, 2]\n", "unlimited capacity"),
])
def test_bad_spaces(tmp_path, text, expect):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(AccelmapError, match=expect):
        read_hardware_space(p)


def test_batched_hardware_matches_one_point_at_a_time(space):
    """Row b of a mapping batch evaluated on hardware b (one call) equals separate calls, on the
    exact tensor path and against the compiled kernel."""
    import math

    from accelmap.arch.architecture import preset_constraints
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.mapspace.space import MappingSpace
    from accelmap.workload.zoo import get_network

    w = get_network("resnet18").unique_layers()[2].workload
    arch = preset("eyeriss_like")
    ms = MappingSpace(w, arch, read_constraints(preset_constraints("eyeriss_like")))
    g = ms.sample_legal(6, torch.Generator().manual_seed(1))
    vals = space.base_values().repeat(6, 1)
    vals[:, 0] = torch.tensor([14.0, 16, 8, 20, 12, 14])
    vals[:, 2] = torch.tensor([65536.0, 16384, 131072, 32768, 65536, 49152])
    hw = space.hardware(vals)
    assert hw.batched and hw.capacity.shape == (6, len(arch.levels))
    model = CostModel(w, arch, backend="torch")
    both = model(ms.decode(g), hw=hw)
    kernel = CostModel(w, arch, backend="kernel")
    for b in range(6):
        one = model(ms.decode(g[b : b + 1]), hw=space.hardware(vals[b]))
        k = kernel(ms.decode(g[b : b + 1]), hw=space.hardware(vals[b]))
        for f in ("energy", "cycles", "area", "power"):
            x = float(getattr(both, f)[b])
            assert x == pytest.approx(float(getattr(one, f)[0]), rel=1e-12), f
            if math.isfinite(x) and bool(both.valid[b]):
                assert x == pytest.approx(float(getattr(k, f)[0]), rel=1e-9), f
        assert bool(both.valid[b]) == bool(one.valid[0]) == bool(k.valid[0])
