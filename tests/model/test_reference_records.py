"""The cost model against the real Timeloop v3 + Accelergy on every reference record.

Golden numbers are Timeloop's own outputs (shared/reference/timeloop/records); each record
is evaluated from its own architecture, ERT/ART, problem and mapping YAML. Nothing is fitted.
Both backends (the tensor model and the compiled kernel) are checked.
"""

import pytest

from accelmap.model import kernel
from accelmap.model.reference import check_records

BACKENDS = ["torch"] + (["kernel"] if kernel.HAVE_NUMBA else [])


@pytest.fixture(scope="module", params=[(a, b) for a in ("eyeriss_like", "simple_pe16x16") for b in BACKENDS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def checked(request, ref):
    arch, backend = request.param
    return check_records(ref, arch, backend)


def test_energy_and_cycles_match_timeloop(checked):
    assert len(checked) == 168
    e = [abs(c.energy_error) for c in checked]
    cy = [abs(c.cycles_error) for c in checked]
    assert all(bool(c.costs.valid[0]) for c in checked)
    assert sum(e) / len(e) < 0.005 and max(e) < 0.03
    assert sum(cy) / len(cy) < 0.005 and max(cy) < 0.03
    for c in checked:
        assert float(c.costs.utilization[0]) == pytest.approx(c.record["summary"]["utilization_exact"], rel=0.03)


def test_per_level_counts_exact(checked):
    """Reads, fills, updates and tile sizes per level and tensor equal Timeloop's."""
    bad = [(c.record["layer"]["name"], c.record["tag"], m) for c in checked for m in c.count_mismatches()]
    assert not bad, bad[:10]


def test_energy_by_component(checked):
    for c in checked:
        ref_by = c.record["summary"]["energy_pJ_by_component"]
        names = list(c.arch.level_names) + [c.arch.compute.name]
        for name, got in zip(names, c.costs.energy_by_level[0].tolist()):
            assert got == pytest.approx(ref_by[name], rel=1e-6, abs=0.02), (c.record["layer"]["name"], name)
