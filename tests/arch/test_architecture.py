import math

import pytest

from accelmap.arch.architecture import list_presets
from accelmap.arch.load import preset, read_architecture


def test_presets_are_the_reference_architectures(ref):
    for name in ("eyeriss_like", "simple_pe16x16"):
        ours = preset(name)
        theirs = read_architecture(ref / "inputs/arch" / f"{name}.yaml", ref / "inputs/ert" / f"{name}.ERT.yaml",
                                   ref / "inputs/ert" / f"{name}.ART.yaml", name=name)
        assert ours == theirs
    assert {"eyeriss_like", "simple_pe16x16"} <= set(list_presets())


def test_eyeriss_numbers_from_the_reference_readme():
    a = preset("eyeriss_like")
    assert a.level_names == ("DRAM", "shared_glb", "ifmap_spad", "weights_spad", "psum_spad")
    glb = a.levels[1]
    assert glb.capacity == 65536 and glb.block_size == 4 and glb.read_bw == 16
    assert glb.read_energy == pytest.approx(74.1442) and glb.write_energy == pytest.approx(75.2148)
    assert [lv.capacity for lv in a.levels[2:]] == [12, 192, 16]
    assert a.levels[3].read_energy == pytest.approx(1.58552)
    assert a.levels[0].capacity is None and a.levels[0].read_energy == 512
    assert a.compute.instances == 168 and a.compute.energy == pytest.approx(2.20035)
    assert a.fanout(1) == (14, 12) and a.fanout(2) == (1, 1)
    # area: glb + 168 x (spads + mac), from the ART
    expect = 1162549.0 + 168 * (379.68 + 3634.68 + 414.68 + 1239.5)
    assert math.isclose(a.area_um2, expect, rel_tol=1e-9)


def test_simple_numbers():
    a = preset("simple_pe16x16")
    assert a.levels[0].read_bw == 8 and a.levels[1].capacity == 65536 and a.levels[1].block_size == 8
    assert a.levels[2].capacity == 64 and a.levels[2].read_bw is None
    assert a.fanout(1) == (16, 16)


# ---- Timeloop v0.3 files as Timeloop v3 reads them (issue 14, item 4) ------------------------

_V03 = """
architecture:
  version: 0.3
  subtree:
  - name: system
    local:
    - name: DRAM
      class: DRAM
      attributes: {type: LPDDR4, width: 64, word-bits: 16}
    subtree:
    - name: chip
      attributes: {technology: 45nm}
      local:
      - name: glb
        class: SRAM
        attributes: {sizeKB: 2, word_bits: 8, block_size: 4, n_rdwr_ports: 2}
      subtree:
      - name: PE[0..3]
        local:
        - name: pe_spad
          class: regfile
          attributes: {memory_depth: 16, memory_width: 64, word-bits: 16, meshX: 2}
        - name: mac
          class: intmac
          attributes: {datawidth: 8, meshX: 2}
        - name: weight_reg
          class: regfile
          attributes: {depth: 1, width: 16, word-bits: 16, meshX: 2, latency: 1ns}
"""


def _v03(tmp_path, text=_V03):
    p = tmp_path / "arch.yaml"
    p.write_text(text)
    with pytest.warns(UserWarning) as rec:
        a = read_architecture(p)
    return a, [str(w.message) for w in rec]


def test_v03_storage_listed_after_the_compute_unit_is_an_inner_level(tmp_path):
    a, _ = _v03(tmp_path)
    assert a.level_names == ("DRAM", "glb", "pe_spad", "weight_reg")
    assert a.compute.name == "mac" and a.compute.instances == 4 and a.compute.word_bits == 8
    assert a.levels[3].capacity == 1 and a.levels[3].instances == 4


def test_v03_attribute_spellings_and_sizes_as_timeloop_reads_them(tmp_path):
    a, _ = _v03(tmp_path)
    dram, glb, spad = a.levels[:3]
    assert dram.block_size == 4  # no block-size: width / word bits
    assert glb.word_bits == 8 and glb.block_size == 4  # word_bits, block_size spellings
    assert glb.capacity == 2 * 1024 * 8 // 8  # sizeKB
    assert spad.block_size == 4 and spad.capacity == 16 * 4  # depth rows of one block each


def test_v03_unused_attributes_are_named_in_one_warning(tmp_path):
    _, msgs = _v03(tmp_path)
    unused = [m for m in msgs if "does not use" in m]
    assert len(unused) == 1
    assert "latency" in unused[0] and "n_rdwr_ports" in unused[0] and "sizeKB" not in unused[0]


def test_energies_from_the_built_in_table_are_named_in_one_warning(tmp_path):
    a, msgs = _v03(tmp_path)  # no ERT given
    table = [m for m in msgs if "built-in table" in m]
    assert len(table) == 1
    for c in ("DRAM", "glb", "pe_spad", "weight_reg", "mac"):
        assert c in table[0]
    assert all(lv.energy_source == "table" for lv in a.levels)


def test_v03_permutations_with_whitespace_and_comments(tmp_path):
    from accelmap.mapspace.constraints import read_constraints

    p = tmp_path / "c.yaml"
    p.write_text("architecture_constraints:\n  targets:\n"
                 "  - {target: glb, type: temporal, factors: R=1, permutation: NPQR SCM}\n"
                 "  - {target: glb, type: spatial, factors: R=1, permutation: 'Q S  # rows first', split: 1}\n")
    c = read_constraints(p)
    assert c.levels[0].permutation == "NPQRSCM"
    assert c.levels[1].spatial_permutation == "QS" and c.levels[1].spatial_split == 1


def test_v03_problem_shape_by_name_and_bounds_beside_it():
    """CoSA/DOSA workload files: 'shape: cnn-layer' and the bounds directly under 'problem'."""
    from accelmap.workload.workload import problem_from_dict

    w = problem_from_dict({"problem": {"shape": "cnn-layer", "C": 64, "K": 32, "P": 7, "Q": 5, "R": 3, "S": 1,
                                       "N": 1, "Wstride": 2, "Hstride": 1, "Wdilation": 1, "Hdilation": 1}},
                          "cosa.yaml", "l")
    assert w.bound == {"R": 3, "S": 1, "P": 7, "Q": 5, "C": 64, "K": 32, "N": 1}
    assert w.tensor("Inputs").ranks[2] == (("R", 1), ("P", 2)) and w.tensor("Outputs").read_write
    assert w.tensor_size("Inputs") == 64 * (2 * 6 + 3) * 5


def test_v03_problem_data_spaces_and_read_write_spellings():
    from accelmap.workload.workload import problem_from_dict

    shape = {"name": "gemm", "dimensions": ["M", "N", "K"],
             "data_spaces": [{"name": "A", "projection": [[["M"]], [["K"]]]},
                             {"name": "B", "projection": [[["K"]], [["N"]]]},
                             {"name": "Z", "projection": [[["M"]], [["N"]]], "read_write": True}]}
    w = problem_from_dict({"problem": {"shape": shape, "instance": {"M": 4, "N": 3, "K": 2}}}, "g.yaml", "g")
    assert [t.read_write for t in w.tensors] == [False, False, True] and w.macs == 24


def test_v03_factor_bounds_as_dosa_writes_them():
    from accelmap.mapspace.constraints import constraints_from_dict
    from accelmap.mapspace.space import MappingSpace
    from accelmap.workload.workload import conv2d

    a = preset("simple_pe16x16")
    c = constraints_from_dict({"architecture_constraints": {"targets": [
        {"target": "GlobalBuffer", "type": "temporal", "factors": "C<=4 K>=2 R=1  # DOSA"},
        {"target": "GlobalBuffer", "type": "spatial", "factors": "K<=8"}]}})
    assert c.levels[0].temporal == (("R", 1),)
    space = MappingSpace(conv2d("x", C=16, K=32, P=8, R=3), a, c)
    dims = space.workload.dims
    glb, spatial_glb = 1, len(a.levels)  # slot of GlobalBuffer's temporal and spatial factors
    assert int(space.tables[dims.index("C")][:, glb].max()) == 4
    assert int(space.tables[dims.index("K")][:, glb].min()) == 2
    assert int(space.tables[dims.index("K")][:, spatial_glb].max()) == 8
    again = constraints_from_dict(c.to_timeloop())
    assert again.levels[0].bounds == c.levels[0].bounds and again.levels[1].bounds == c.levels[1].bounds


def test_v03_map_txt_without_repeated_sizes(ref):
    """Older Timeloop prints 'Weights:96' without '(96)' in a level header."""
    import json
    import re

    from accelmap.mapping.loop_nest import parse_map_txt
    from accelmap.workload.load import read_problem_yaml

    r = json.loads(open(ref / "records" / "eyeriss_like.jsonl").readline())
    a = preset("eyeriss_like")
    w = read_problem_yaml(ref / "inputs/problems" / f"{r['layer']['name']}.yaml")
    old = re.sub(r"(\w+:\d+) \(\d+\)", r"\1", r["map_txt"])
    assert old != r["map_txt"]
    assert parse_map_txt(old, a, w) == parse_map_txt(r["map_txt"], a, w)
