"""The relaxed model is differentiable (gradcheck in float64) and compiles with torch.compile."""

import json

import pytest
import torch

from accelmap.arch.hardware import Hardware
from accelmap.arch.load import preset
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.model.cost_model import CostModel
from accelmap.workload.load import read_problem_yaml


def _setup(ref, arch_name="eyeriss_like", n=3):
    arch = preset(arch_name)
    recs = [json.loads(line) for line in open(ref / "records" / f"{arch_name}.jsonl")][:n]
    w = read_problem_yaml(ref / "inputs/problems" / f"{recs[0]['layer']['name']}.yaml")
    b = MappingBatch.from_mappings([parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs], w, arch)
    return arch, w, b


def _jitter(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Move non-trivial log-factors off integers (and off ties) without touching factors of 1."""
    g = torch.Generator().manual_seed(seed)
    noise = 0.05 + 0.1 * torch.rand(x.shape, generator=g, dtype=torch.float64)
    return torch.where(x > 0, x + noise, x)


def test_relaxed_equals_exact_model_at_integer_points(ref):
    arch, w, b = _setup(ref)
    m = CostModel(w, arch)
    exact = m(b)
    rel = m.relaxed(b.temporal.double().log(), b.spatial.double().log(), b.order, b.keep,
                    spatial_order=b.spatial_order)
    # The relaxed model skips block and cycle rounding only.
    assert torch.allclose(rel.energy, exact.energy, rtol=2e-3)
    assert torch.allclose(rel.cycles, exact.cycles, rtol=1e-6)


@pytest.mark.parametrize("arch_name", ["eyeriss_like", "simple_pe16x16"])
def test_gradcheck_factors(ref, arch_name):
    arch, w, b = _setup(ref, arch_name)
    m = CostModel(w, arch)
    lt0 = _jitter(b.temporal.double().log(), 0).requires_grad_(True)
    ls0 = _jitter(b.spatial.double().log(), 1).requires_grad_(True)

    # Factors of 1 sit on kinks of the model (tiles that just abut: max(0, E - |T|); the
    # multicast count max(0, F - q)), so gradcheck varies the non-trivial factors only.
    used_t, used_s = b.temporal > 1, b.spatial > 1

    def f(lt, ls):
        lt = torch.where(used_t, lt, torch.zeros_like(lt))
        ls = torch.where(used_s, ls, torch.zeros_like(ls))
        c = m.relaxed(lt, ls, b.order, b.keep, spatial_order=b.spatial_order)
        return torch.log(c.energy), torch.log(c.cycles), c.capacity_excess[:, 1:], c.fanout_excess, c.factor_error

    assert torch.autograd.gradcheck(f, (lt0, ls0), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_hardware(ref):
    arch, w, b = _setup(ref)
    m = CostModel(w, arch)
    hw = m.hw
    lt = _jitter(b.temporal.double().log(), 2)
    ls = b.spatial.double().log()
    cap0 = hw.capacity.clone().requires_grad_(True)
    er0 = hw.read_energy.clone().requires_grad_(True)
    area0 = hw.area.clone().requires_grad_(True)

    def f(cap, er, area):
        h = Hardware(cap, hw.block, hw.read_bw, hw.write_bw, er, hw.write_energy, area, hw.instances, hw.fanout,
                     hw.mac_energy, hw.mac_area, hw.mac_instances, hw.clock_ghz)
        c = m.relaxed(lt, ls, b.order, b.keep, hw=h, spatial_order=b.spatial_order)
        return torch.log(c.energy), c.capacity_excess[:, 1:], torch.log(c.area)

    assert torch.autograd.gradcheck(f, (cap0, er0, area0), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_model_runs_under_torch_compile(ref):
    arch, w, b = _setup(ref, n=21)
    m = CostModel(w, arch, torch.float32)
    try:
        f = torch.compile(m._evaluate, dynamic=False)
        c = f(b.temporal.float(), b.spatial.float(), b.order, b.keep, b.spatial_order, m.hw, True)
    except Exception as exc:  # no C++ toolchain, unsupported platform
        pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}: {str(exc)[:200]}")
    ref_c = m(b)
    assert torch.allclose(c.energy, ref_c.energy, rtol=1e-5)
    assert torch.equal(c.cycles, ref_c.cycles)
