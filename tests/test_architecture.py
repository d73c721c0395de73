import math

import pytest

from accelmap.architecture import list_presets, preset, read_architecture


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
