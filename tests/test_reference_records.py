"""The cost model against the real Timeloop v3 + Accelergy on every reference record.

Golden numbers are Timeloop's own outputs (shared/reference/timeloop/records); each record
is evaluated from its own architecture, ERT/ART, problem and mapping YAML. Nothing is fitted.
"""

import json
from collections import defaultdict

import pytest

from accelmap.architecture import read_architecture
from accelmap.cost_model import CostModel
from accelmap.mapping import MappingBatch, parse_mapping
from accelmap.workload import read_problem_yaml

ARCHS = ["eyeriss_like", "simple_pe16x16"]
COUNT_KEYS = {"reads": "Scalar reads (per-instance)", "fills": "Scalar fills (per-instance)",
              "updates": "Scalar updates (per-instance)", "tile": "Utilized capacity"}


def evaluate_all(ref, arch_name):
    arch = read_architecture(ref / "inputs/arch" / f"{arch_name}.yaml", ref / "inputs/ert" / f"{arch_name}.ERT.yaml",
                             ref / "inputs/ert" / f"{arch_name}.ART.yaml")
    records = [json.loads(line) for line in open(ref / "records" / f"{arch_name}.jsonl")]
    by_layer = defaultdict(list)
    for r in records:
        by_layer[r["layer"]["name"]].append(r)
    out = []
    for layer, recs in by_layer.items():
        w = read_problem_yaml(ref / "inputs/problems" / f"{layer}.yaml")
        maps = [parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs]
        costs = CostModel(w, arch)(MappingBatch.from_mappings(maps, w, arch))
        for i, r in enumerate(recs):
            out.append((arch, w, r, costs[i : i + 1]))
    return out


@pytest.fixture(scope="module", params=ARCHS)
def evaluated(request, ref):
    return evaluate_all(ref, request.param)


def test_energy_and_cycles_match_timeloop(evaluated):
    e_err, c_err = [], []
    for arch, w, r, c in evaluated:
        assert bool(c.valid[0]), f"{r['layer']['name']} {r['tag']} judged invalid"
        e_err.append(abs(float(c.energy[0]) / r["summary"]["energy_pJ"] - 1))
        c_err.append(abs(float(c.cycles[0]) / r["summary"]["cycles_exact"] - 1))
        assert float(c.utilization[0]) == pytest.approx(r["summary"]["utilization_exact"], rel=0.03)
    assert len(e_err) == 168
    assert sum(e_err) / len(e_err) < 0.005 and max(e_err) < 0.03
    assert sum(c_err) / len(c_err) < 0.005 and max(c_err) < 0.03


def test_per_level_counts_exact(evaluated):
    """Reads, fills, updates and tile sizes per level and tensor equal Timeloop's."""
    mismatches = []
    for arch, w, r, c in evaluated:
        for lv in r["stats"]["levels"]:
            if lv["name"] == "mac":
                continue
            li = arch.level_index(lv["name"])
            for tname, ds in lv["dataspaces"].items():
                ti = w.tensor_index(tname)
                for attr, key in COUNT_KEYS.items():
                    got = float(getattr(c, attr)[0, li, ti])
                    if abs(got - ds[key]) > 0.5:
                        mismatches.append((r["layer"]["name"], r["tag"], lv["name"], tname, attr, ds[key], got))
    assert not mismatches, mismatches[:10]


def test_energy_by_component(evaluated):
    for arch, w, r, c in evaluated:
        ref_by = r["summary"]["energy_pJ_by_component"]
        names = list(arch.level_names) + [arch.compute.name]
        for name, got in zip(names, c.energy_by_level[0].tolist()):
            assert got == pytest.approx(ref_by[name], rel=1e-6, abs=0.02), (r["layer"]["name"], name)
