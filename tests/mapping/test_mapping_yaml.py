"""Timeloop mapping YAML: every reference record's mapping reads, writes and reads back."""

import json

import torch

from accelmap.arch.load import read_architecture
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.model.cost_model import CostModel
from accelmap.workload.load import read_problem_yaml
from accelmap.yamlio import parse_yaml


def test_every_record_round_trips(ref):
    n = 0
    for arch_name in ("eyeriss_like", "simple_pe16x16"):
        arch = read_architecture(ref / "inputs/arch" / f"{arch_name}.yaml")
        for line in open(ref / "records" / f"{arch_name}.jsonl"):
            r = json.loads(line)
            m = parse_mapping(r["mapping_yaml"], arch.level_names)
            text = m.to_yaml()
            assert parse_mapping(text, arch.level_names) == m
            # The written YAML says the same as Timeloop's: same directives per target and type.
            orig = {(d["target"], d["type"]): d for d in parse_yaml(r["mapping_yaml"])["mapping"]}
            ours = {(d["target"], d["type"]): d for d in parse_yaml(text)["mapping"]}
            assert orig.keys() == ours.keys()
            for k in orig:
                for field in ("factors", "permutation", "keep", "bypass", "split"):
                    assert orig[k].get(field) == ours[k].get(field), (k, field)
            # The parsed dict of the record agrees with the YAML.
            for lv in r["mapping"]["levels"]:
                mine = m.level(lv["name"])
                assert dict(mine.temporal) == lv["temporal"]
                assert mine.permutation == lv["temporal_perm"]
                assert sorted(mine.keep) == sorted(lv["keep"])
                if lv["spatial"]:
                    assert dict(mine.spatial) == lv["spatial"]
                    assert mine.spatial_split == lv["spatial_split"]
            n += 1
    assert n == 336


def test_batch_to_mappings_and_back_keeps_the_costs(ref):
    arch = read_architecture(ref / "inputs/arch/simple_pe16x16.yaml", ref / "inputs/ert/simple_pe16x16.ERT.yaml",
                             ref / "inputs/ert/simple_pe16x16.ART.yaml")
    recs = [json.loads(line) for line in open(ref / "records/simple_pe16x16.jsonl")]
    recs = [r for r in recs if r["layer"]["name"] == "resnet18_l2_conv3x3"]
    w = read_problem_yaml(ref / "inputs/problems/resnet18_l2_conv3x3.yaml")
    maps = [parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs]
    batch = MappingBatch.from_mappings(maps, w, arch)
    again = MappingBatch.from_mappings(batch.to_mappings(w, arch), w, arch)
    model = CostModel(w, arch)
    a, b = model(batch), model(again)
    assert torch.equal(a.energy, b.energy) and torch.equal(a.cycles, b.cycles)


def test_timeloop_mappers_own_factor_form_reads_the_same(ref):
    """timeloop-mapper v3.0.3 writes its map.yaml factors as 'R1 S1 P7' (no '='); Timeloop reads
    both forms, so accelmap does: every reference record, rewritten that way, parses the same."""
    import re

    for arch_name in ("eyeriss_like", "simple_pe16x16"):
        arch = read_architecture(ref / "inputs/arch" / f"{arch_name}.yaml")
        for line in open(ref / "records" / f"{arch_name}.jsonl"):
            r = json.loads(line)
            text = r["mapping_yaml"]
            compact = re.sub(r"\b([A-Z])=(\d+)", r"\1\2", text)
            assert compact != text
            assert parse_mapping(compact, arch.level_names) == parse_mapping(text, arch.level_names)
