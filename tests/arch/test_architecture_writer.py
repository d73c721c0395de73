"""Architectures written as Timeloop/Accelergy YAML read back to the same model."""

import dataclasses
import json

import pytest
import torch

from accelmap.arch.architecture import write_architecture
from accelmap.arch.load import preset, read_architecture
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.model.cost_model import CostModel
from accelmap.workload.load import read_problem_yaml


@pytest.mark.parametrize("name", ["eyeriss_like", "simple_pe16x16"])
def test_write_read_round_trip(tmp_path, ref, name):
    a = preset(name)
    arch_p, ert_p, art_p = write_architecture(a, tmp_path)
    b = read_architecture(arch_p, ert_p, art_p, name=name)
    strip = lambda lv: dataclasses.replace(lv, path="")  # noqa: E731  node names may differ
    assert [strip(x) for x in a.levels] == [strip(x) for x in b.levels]
    assert dataclasses.replace(a.compute, path="") == dataclasses.replace(b.compute, path="")
    assert [a.fanout(i) for i in range(len(a.levels))] == [b.fanout(i) for i in range(len(b.levels))]
    recs = [json.loads(line) for line in open(ref / "records" / f"{name}.jsonl")][:21]
    w = read_problem_yaml(ref / "inputs/problems" / f"{recs[0]['layer']['name']}.yaml")
    maps = [parse_mapping(r["mapping_yaml"], a.level_names) for r in recs]
    ca = CostModel(w, a)(MappingBatch.from_mappings(maps, w, a))
    cb = CostModel(w, b)(MappingBatch.from_mappings(maps, w, b))
    assert torch.equal(ca.energy, cb.energy) and torch.equal(ca.cycles, cb.cycles)


def test_changed_sizes_survive(tmp_path):
    a = preset("eyeriss_like").with_level("shared_glb", capacity=32768, read_bw=8.0)
    b = read_architecture(*write_architecture(a, tmp_path, "small_glb"))
    assert b.levels[1].capacity == 32768 and b.levels[1].read_bw == 8.0
