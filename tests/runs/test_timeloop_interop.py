"""Timeloop interop: the mapper's printed loop nest (map.txt) read back, and export to Timeloop
inputs that read back to the same evaluation.

Golden numbers are Timeloop's own (shared/reference/timeloop/records): every record's ``map_txt``
must evaluate exactly like its ``mapping_yaml`` and, like test_reference_records, match
Timeloop's energy and cycles.
"""

import json
from collections import defaultdict
from dataclasses import replace

import pytest

from accelmap.arch.load import preset, read_architecture
from accelmap.errors import AccelmapError
from accelmap.mapping.loop_nest import looks_like_map_txt, parse_map_txt, read_map_txt
from accelmap.mapping.mapping import MappingBatch, parse_mapping, read_mapping
from accelmap.mapspace.constraints import Constraints, LevelConstraint, constraints_from_dict, read_constraints
from accelmap.model.cost_model import CostModel
from accelmap.model.evaluation import evaluate_mapping
from accelmap.model.reference import load_arch
from accelmap.runs.timeloop import mapper_settings
from accelmap.workload.load import read_problem_yaml
from accelmap.yamlio import parse_yaml

ARCHS = ("eyeriss_like", "simple_pe16x16")


def _records(ref, arch):
    by_layer = defaultdict(list)
    for line in open(ref / "records" / f"{arch}.jsonl"):
        r = json.loads(line)
        by_layer[r["layer"]["name"]].append(r)
    return by_layer


# ---- (a) map.txt of every reference record ------------------------------------------------

@pytest.mark.parametrize("arch_name", ARCHS)
def test_map_txt_evaluates_like_mapping_yaml_and_timeloop(ref, arch_name):
    arch = load_arch(ref, arch_name)
    e_err, c_err, n = [], [], 0
    for layer, recs in _records(ref, arch_name).items():
        w = read_problem_yaml(ref / "inputs/problems" / f"{layer}.yaml")
        from_yaml = [parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs]
        from_txt = [parse_map_txt(r["map_txt"], arch, w, f"{layer}.map.txt") for r in recs]
        model = CostModel(w, arch)
        a = model(MappingBatch.from_mappings(from_yaml, w, arch))
        b = model(MappingBatch.from_mappings(from_txt, w, arch))
        assert b.valid.all()
        assert a.energy.tolist() == b.energy.tolist(), layer
        assert a.cycles.tolist() == b.cycles.tolist(), layer
        for i, r in enumerate(recs):
            # the same factors, spatial axes and kept tensors as the record's parsed mapping
            for lv, rl in zip(from_txt[i].levels, r["mapping"]["levels"]):
                assert lv.name == rl["name"]
                assert dict(lv.temporal) == rl["temporal"]
                assert set(lv.keep) == set(rl["keep"])
                if rl["spatial"] is not None:
                    assert dict(lv.spatial) == rl["spatial"]
                    for d, f in rl["spatial"].items():
                        if f > 1:
                            on_x = rl["spatial_perm"].index(d) < rl["spatial_split"]
                            assert lv.spatial_axis(d) == (0 if on_x else 1), (layer, lv.name, d)
            e_err.append(abs(float(b.energy[i]) / r["summary"]["energy_pJ"] - 1))
            c_err.append(abs(float(b.cycles[i]) / r["summary"]["cycles_exact"] - 1))
            n += 1
    assert n == 168
    # the tolerances of test_reference_records
    assert sum(e_err) / n < 0.005 and max(e_err) < 0.03
    assert sum(c_err) / n < 0.005 and max(c_err) < 0.03


def test_evaluate_cli_reads_map_txt(ref, cli, tmp_path):
    rec = next(r for r in _records(ref, "eyeriss_like")["resnet18_conv1"] if r["tag"] == "mapper_best")
    args = ["--arch", str(ref / "inputs/arch/eyeriss_like.yaml"), "--ert", str(ref / "inputs/ert/eyeriss_like.ERT.yaml"),
            "--art", str(ref / "inputs/ert/eyeriss_like.ART.yaml"),
            "--problem", str(ref / "inputs/problems/resnet18_conv1.yaml"), "--json"]
    txt = tmp_path / "timeloop-mapper.map.txt"
    txt.write_text(rec["map_txt"])
    no_suffix = tmp_path / "best_mapping"  # detected by its content
    no_suffix.write_text(rec["map_txt"])
    assert looks_like_map_txt(txt) and looks_like_map_txt(no_suffix)
    for path in (txt, no_suffix):
        code, out, err = cli("evaluate", *args, "--mapping", str(path))
        assert code == 0, err
        d = json.loads(out)
        assert d["cycles"] == rec["summary"]["cycles_exact"]  # 1,053,696: Timeloop's
        assert d["energy_pJ"] == pytest.approx(rec["summary"]["energy_pJ"], abs=0.02)


# ---- (c) malformed map.txt ------------------------------------------------------------------

GOOD = """
DRAM [ Weights:9408 (9408) Inputs:157323 (157323) Outputs:802816 (802816) ]
---------------------------------------------------------------------------
| for Q in [0:7)
|   for P in [0:16)
|     for K in [0:4)

shared_glb [ Inputs:2109 (2109) Outputs:1792 (1792) ]
-----------------------------------------------------
|       for C in [0:3)
|         for P in [0:7)
|           for Q in [0:8)
|             for K in [0:8) (Spatial-Y)
|               for Q in [0:2) (Spatial-X)
|                 for S in [0:7) (Spatial-X)

ifmap_spad [ Inputs:7 (7) ]
---------------------------
|                   for N in [0:1)

weights_spad [ Weights:14 (14) ]
--------------------------------
|                     for R in [0:7)

psum_spad [ Outputs:2 (2) ]
---------------------------
|                       for K in [0:2)
"""


@pytest.fixture(scope="module")
def conv1(ref):
    return load_arch(ref, "eyeriss_like"), read_problem_yaml(ref / "inputs/problems/resnet18_conv1.yaml")


def test_good_text_parses_to_timeloops_best(conv1):
    arch, w = conv1
    m = parse_map_txt(GOOD, arch, w)
    glb = m.level("shared_glb")
    # by hand from the text: spatial S, Q on X (S innermost), K on Y; temporal C outside P outside Q
    assert glb.spatial_permutation[:3] == "SQK" and glb.spatial_split == 2
    assert glb.permutation[:3] == "QPC" and glb.keep == ("Inputs", "Outputs") and glb.bypass == ("Weights",)
    c = evaluate_mapping(w, arch, m).costs
    assert float(c.cycles[0]) == 1053696  # Timeloop's cycles for its best mapping of resnet18_conv1


@pytest.mark.parametrize("edit, line, expect", [
    (("|     for K in [0:4)", "|     for K in 0:4"), 6, "bad loop line"),
    (("|     for K in [0:4)", "|     for Z in [0:4)"), 6, "unknown dimension 'Z'"),
    (("|     for K in [0:4)", "|     for K in [1:4)"), 6, "expected [0:N)"),
    (("shared_glb [ Inputs", "global_buf [ Inputs"), 8, "unknown storage level 'global_buf'"),
    (("shared_glb [ Inputs:2109 (2109)", "shared_glb [ Ifmaps:2109 (2109)"), 8, "unknown dataspace 'Ifmaps'"),
    (("|                     for R in [0:7)", "|                     for R in [0:7) (Spatial-X)"), 23,
     "no fan-out"),
    (("|           for Q in [0:8)", "|           for Q in [0:8)\nthis is not a loop"), 13, "unrecognized line"),
    (("|       for C in [0:3)", "|       for C in [0:3)\n|       for C in [0:1)\n|       for P in [0:5)"), 13,
     "second temporal loop over P"),
])
def test_malformed_map_txt_names_file_and_line(conv1, tmp_path, edit, line, expect):
    arch, w = conv1
    assert GOOD.count(edit[0]) == 1
    path = tmp_path / "bad.map.txt"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(AccelmapError) as e:
        read_map_txt(path, arch, w)
    assert str(path) in str(e.value) and f"line {line}" in str(e.value) and expect in str(e.value)


def test_map_txt_missing_level_and_bad_factors(conv1, tmp_path):
    arch, w = conv1
    cut = GOOD[: GOOD.index("psum_spad")]
    with pytest.raises(AccelmapError, match=r"line \d+.*levels \['psum_spad'\] are missing"):
        parse_map_txt(cut, arch, w, "cut.map.txt")
    with pytest.raises(AccelmapError, match="factors of K multiply to 32"):
        parse_map_txt(GOOD.replace("for K in [0:4)", "for K in [0:2)"), arch, w, "k.map.txt")
    with pytest.raises(AccelmapError, match="no level header"):
        parse_map_txt("\n\n", arch, w, "empty.map.txt")


def test_evaluate_cli_bad_map_txt_is_one_line(cli, tmp_path, ref):
    path = tmp_path / "bad.map.txt"
    path.write_text(GOOD.replace("|   for P in [0:16)", "|   for P in [0:16"))
    code, _, err = cli("evaluate", "--arch", "eyeriss_like", "--problem",
                       str(ref / "inputs/problems/resnet18_conv1.yaml"), "--mapping", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(path) in err and "line 5" in err


# ---- constraints and mapper settings --------------------------------------------------------

def test_constraints_write_read_back(tmp_path):
    from accelmap.arch.architecture import preset_constraints

    for name in ARCHS:
        c = read_constraints(preset_constraints(name))
        c.write(tmp_path / f"{name}.yaml")
        back = read_constraints(tmp_path / f"{name}.yaml")
        assert [replace(x, source="") for x in back.levels] == [replace(x, source="") for x in c.levels]
    c = Constraints((LevelConstraint("GlobalBuffer", temporal=(("K", 0),), permutation="KC", spatial=(("C", 4),),
                                     spatial_permutation="CK", spatial_split=1, keep=("Weights",),
                                     bypass=("Inputs",)),))
    back = constraints_from_dict(parse_yaml(c.to_yaml()))
    merged = back.at("GlobalBuffer")
    assert (merged.temporal, merged.permutation, merged.spatial, merged.spatial_permutation, merged.spatial_split,
            merged.keep, merged.bypass) == ((("K", 0),), "KC", (("C", 4),), "CK", 1, ("Weights",), ("Inputs",))
    # Timeloop's second section is read too
    both = constraints_from_dict({"architecture_constraints": {"targets": [{"target": "DRAM", "type": "bypass",
                                                                             "keep": ["Weights"]}]},
                                  "mapspace_constraints": {"targets": [{"target": "DRAM", "type": "temporal",
                                                                        "factors": "N=1"}]}})
    assert both.at("DRAM").keep == ("Weights",) and both.at("DRAM").temporal == (("N", 1),)


@pytest.mark.parametrize("objective, metrics", [("edp", ["edp"]), ("energy", ["energy"]), ("cycles", ["delay"]),
                                                ("lex:cycles,energy", ["delay", "energy"]),
                                                ("0.7*energy+0.3*cycles", ["edp"]), ("power", ["edp"])])
def test_mapper_settings(objective, metrics):
    doc, notes = mapper_settings(objective, budget=3000, patience=500, threads=2)
    m = doc["mapper"]
    assert m["optimization-metrics"] == metrics
    assert m["search-size"] == 3000 and m["victory-condition"] == 500 and m["algorithm"] == "random-pruned"
    assert any("no Timeloop equivalent" in n for n in notes) == (metrics == ["edp"] and objective != "edp")
    assert mapper_settings("edp", patience=None)[0]["mapper"]["victory-condition"] == 0


# ---- (b) export a map run, read it back, same evaluation ------------------------------------

def _layers():
    from accelmap.workload.zoo import get_network

    r18 = {lay.workload.name: lay for lay in get_network("resnet18").unique_layers()}
    dw = next(lay for lay in get_network("mobilenet_v2").unique_layers() if lay.workload.kind == "depthwise")
    return [r18["conv1"], r18["layer2.0.downsample.0"], dw]


@pytest.mark.parametrize("arch_name", ARCHS)
def test_export_run_round_trip(cli, tmp_path, arch_name):
    from accelmap.arch.architecture import preset_constraints
    from accelmap.model.objective import Objective
    from accelmap.runs.map import write_run
    from accelmap.search.network import map_layers

    arch = preset(arch_name)
    cons = read_constraints(preset_constraints(arch_name))
    layers = _layers()
    assert layers[2].workload.kind == "depthwise"
    outcomes = map_layers(layers, arch, cons, Objective.parse("edp"), budget=3000, seed=3, workers=1, patience=1000)
    assert all(o.found for o in outcomes)
    run = tmp_path / "run"
    write_run(run, outcomes, {"network": "mixed", "arch": arch.name, "constraints": cons.source, "objective": "edp",
                              "require": [], "optimizer": "annealing", "budget": 3000, "patience": 1000, "seed": 3,
                              "workers": 1}, True)
    out = tmp_path / "tl"
    code, text, err = cli("export", "timeloop", "--run", str(run), "--out", str(out))
    assert code == 0, err
    back_arch = read_architecture(out / "arch.yaml", out / "arch.ERT.yaml", out / "arch.ART.yaml")
    back_cons = read_constraints(out / "constraints.yaml")
    assert [replace(x, source="") for x in back_cons.levels] == [replace(x, source="") for x in cons.levels]
    expected = {e["name"]: e for e in json.loads((out / "expected.json").read_text())["layers"]}
    for layer, o in zip(layers, outcomes):
        w = layer.workload
        before = evaluate_mapping(w, arch, parse_mapping(o.mapping_yaml, arch.level_names)).costs
        e = expected[w.name]
        w2 = read_problem_yaml(out / e["problem"])
        assert w2.signature() == w.signature() and w2.kind == w.kind
        m2 = read_mapping(out / e["mapping"], back_arch.level_names)
        back_cons.check(w2, back_arch)
        after = evaluate_mapping(w2, back_arch, m2).costs
        assert float(after.energy[0]) == float(before.energy[0]), w.name
        assert float(after.cycles[0]) == float(before.cycles[0]), w.name
        assert float(after.area[0]) == float(before.area[0])
        assert (e["energy_pJ"], e["cycles"]) == (float(before.energy[0]), float(before.cycles[0]))
        assert float(before.energy[0]) == pytest.approx(o.energy_pJ, rel=1e-9) and float(before.cycles[0]) == o.cycles
    mapper = parse_yaml((out / "mapper.yaml").read_text())["mapper"]
    assert mapper["optimization-metrics"] == ["edp"] and mapper["search-size"] == 3000
    readme = (out / "README.txt").read_text()
    assert (f"timeloop-model arch.yaml arch.ERT.yaml arch.ART.yaml problems/conv1.yaml mappings/conv1.yaml "
            f"-o out/conv1") in readme
    assert "timeloop-mapper arch.yaml arch.ERT.yaml arch.ART.yaml problems/conv1.yaml constraints.yaml mapper.yaml" \
        in readme


def test_export_network_without_run(cli, tmp_path):
    out = tmp_path / "tl"
    code, _, err = cli("export", "timeloop", "--arch", "simple_pe16x16", "--network", "resnet18",
                       "--constraints", "none", "--out", str(out))
    assert code == 0, err
    assert len(list((out / "problems").glob("*.yaml"))) == 12 and not (out / "mappings").exists()
    assert read_constraints(out / "constraints.yaml").levels == ()


@pytest.mark.parametrize("args, expect", [
    (["--out", "X"], "missing --arch"),
    (["--arch", "eyeriss_like", "--run", "/nonexistent/run", "--out", "X"], "/nonexistent/run"),
    (["--arch", "eyeriss_like", "--network", "resnet18", "--run", "R", "--out", "X"], "not both"),
])
def test_bad_export_input(cli, tmp_path, args, expect):
    args = [str(tmp_path / a) if a in ("X", "R") else a for a in args]
    code, _, err = cli("export", "timeloop", *args)
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1
