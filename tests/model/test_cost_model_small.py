"""Hand-computed tiny cases for the cost model, and the validity mask.

The 1-D convolution below (K=2, P=4, R=3, stride 1; DRAM -> buf -> one MAC) is small enough to
count by hand; the comments give the counts.
"""

import pytest
import torch

from accelmap.arch.load import read_architecture
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.model.cost_model import CostModel
from accelmap.model.status import BAD_CAPACITY, BAD_FACTORS, BAD_FANOUT, BAD_KEEP
from accelmap.workload.workload import conv2d

ARCH = """
architecture:
  version: 0.3
  subtree:
  - name: system
    local:
    - {name: DRAM, class: DRAM, attributes: {block-size: 1, word-bits: 16}}
    - {name: buf, class: regfile, attributes: {memory_depth: 16, memory_width: 16, word-bits: 16,
       block-size: 1, read_bandwidth: 2}}
    - {name: mac, class: intmac, attributes: {datawidth: 16}}
"""
ERT = """
ERT:
  version: '0.4'
  tables:
  - {name: system.DRAM, actions: [{name: read, energy: 10}, {name: write, energy: 10}]}
  - {name: system.buf, actions: [{name: read, energy: 1}, {name: write, arguments: {a: 0}, energy: 0.5},
                                 {name: write, arguments: {a: 1}, energy: 1}]}
  - {name: system.mac, actions: [{name: mac_random, energy: 0.5}]}
"""
MAPPING = """
mapping:
- {target: DRAM, type: temporal, factors: K=2 P=2 C=1 Q=1 R=1 S=1 N=1, permutation: PKCQRSN}
- {target: buf, type: temporal, factors: K=1 P=2 R=3 C=1 Q=1 S=1 N=1, permutation: RPKCQSN}
"""


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "a.yaml").write_text(ARCH)
    (tmp_path / "e.yaml").write_text(ERT)
    arch = read_architecture(tmp_path / "a.yaml", tmp_path / "e.yaml")
    w = conv2d("tiny", C=1, K=2, P=4, Q=1, R=3, S=1)
    return arch, w


def test_tiny_conv_counts_by_hand(tiny):
    arch, w = tiny
    m = parse_mapping(MAPPING, arch.level_names)
    c = CostModel(w, arch)(MappingBatch.from_mappings([m], w, arch))
    # tensors in order: Weights, Inputs, Outputs
    # buf tiles: weights R=3; inputs W=(2-1)+3=4; outputs P=2.
    assert c.tile[0, 1].tolist() == [3, 4, 2]
    # Loops above buf: K2 (outer), P2 (inner). Weights ignore P: fetched once per K -> 6.
    # Inputs: first tile 4, P step slides by 2 (2 new), K step resets -> 4 + 2 + 4 + 2 = 12.
    # Outputs: every tile is new, 4 tiles x 2 = 8 = the whole output, so no fills back.
    assert c.fills[0, 1].tolist() == [6, 12, 0]
    # The MAC reads each operand once per MAC (24 MACs); outputs: 24 updates, 24-8 reads.
    assert c.reads[0, 1].tolist() == [24, 24, 16]
    assert c.updates[0, 1].tolist() == [0, 0, 24]
    # DRAM sends what buf fills and takes the 8 final outputs.
    assert c.reads[0, 0].tolist() == [6, 12, 0]
    assert c.updates[0, 0].tolist() == [0, 0, 8]
    # Energy: DRAM (6+12+8)*10 = 260; buf reads 64*1 + writes (18+24)*1 (max write variant) = 106;
    # MACs 24*0.5 = 12.
    assert float(c.energy[0]) == pytest.approx(378.0)
    # buf must read 64 words at 2 words/cycle: 32 cycles > 24 compute cycles.
    assert float(c.compute_cycles[0]) == 24 and float(c.cycles[0]) == 32
    assert float(c.utilization[0]) == pytest.approx(24 / 32)


def test_validity_reasons(tiny):
    arch, w = tiny
    good = parse_mapping(MAPPING, arch.level_names)
    bad_factor = parse_mapping(MAPPING.replace("K=2 P=2", "K=2 P=4"), arch.level_names)
    too_big = parse_mapping(MAPPING.replace("K=2 P=2", "K=1 P=1").replace("K=1 P=2 R=3", "K=2 P=4 R=3"),
                            arch.level_names)
    no_keep = parse_mapping(MAPPING + "- {target: DRAM, type: datatype, keep: [Weights, Inputs], bypass: [Outputs]}\n",
                            arch.level_names)
    batch = MappingBatch.from_mappings([good, bad_factor, too_big, no_keep], w, arch)
    c = CostModel(w, arch)(batch)
    assert c.valid.tolist() == [True, False, False, False]
    assert c.reason.tolist() == [0, BAD_FACTORS, BAD_CAPACITY, BAD_KEEP]


def test_fanout_reason(ref):
    import json

    from accelmap.arch.load import preset
    from accelmap.workload.load import read_problem_yaml

    arch = preset("simple_pe16x16")
    r = json.loads(open(ref / "records/simple_pe16x16.jsonl").readline())
    w = read_problem_yaml(ref / "inputs/problems" / f"{r['layer']['name']}.yaml")
    b = MappingBatch.from_mappings([parse_mapping(r["mapping_yaml"], arch.level_names)], w, arch)
    sp = b.spatial.clone()
    assert int(sp[0, 1].prod()) > 16  # the record uses more PEs than one row holds
    sp[0, 1, :, 0] *= sp[0, 1, :, 1]  # put every spatial factor on X: same factors, too wide
    sp[0, 1, :, 1] = 1
    bad = MappingBatch(b.temporal, b.order, sp, b.keep, b.spatial_order)
    assert int(CostModel(w, arch)(bad).reason[0]) == BAD_FANOUT


def test_float32_close_to_float64(ref):
    import json

    from accelmap.arch.load import preset
    from accelmap.workload.load import read_problem_yaml

    arch = preset("eyeriss_like")
    recs = [json.loads(line) for line in open(ref / "records/eyeriss_like.jsonl")][:21]
    w = read_problem_yaml(ref / "inputs/problems" / f"{recs[0]['layer']['name']}.yaml")
    b = MappingBatch.from_mappings([parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs], w, arch)
    c64 = CostModel(w, arch, torch.float64)(b)
    c32 = CostModel(w, arch, torch.float32)(b)
    assert torch.allclose(c32.energy.double(), c64.energy, rtol=1e-4)
    assert torch.allclose(c32.cycles.double(), c64.cycles, rtol=1e-4)
