"""Timeloop v0.4 inputs: the exercises' dense designs against their reference outputs, the
layer-shape collection, specs with jinja2, round trips through v0.4 and v0.3, and one-line errors.

Reference numbers are Timeloop v4's own (tests/data/exercises/*/ref_outputs, copied with the
MIT licence from Accelergy-Project/timeloop-accelergy-exercises)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accelmap.errors import AccelmapError

DATA = Path(__file__).parent / "data"
EX = DATA / "exercises"
SHAPES = DATA / "layer_shapes"
DESIGNS = ["eyeriss_like", "simba_like", "simple_output_stationary", "simple_weight_stationary"]
TIMELOOP = Path(__file__).resolve().parents[1].parent / "shared" / "timeloop" / "bin" / "timeloop-model"


def _ref(design: str) -> Path:
    return EX / design / "ref_outputs" / "default_problem"


def _reference_stats(design: str) -> dict:
    """Energy (pJ, from the fJ/Compute total, which has more digits than 'Energy: uJ'), cycles,
    per-component energy and leakage, as Timeloop v4 printed them."""
    st = (_ref(design) / "timeloop-mapper.stats.txt").read_text()
    computes = int(re.search(r"^Computes = (\d+)", st, re.M)[1])
    per = dict(re.findall(r"^    (\w+)\s+= ([\d.]+)$", st.split("fJ/Compute")[1], re.M))
    return {"cycles": int(re.search(r"^Cycles: (\d+)", st, re.M)[1]), "computes": computes,
            "energy_pJ": float(per.pop("Total")) * computes * 1e-3,
            "by_component": {k: float(v) * computes * 1e-3 for k, v in per.items()}}


def _evaluate(design: str):
    from accelmap.evaluation import evaluate_files

    r = _ref(design)
    return evaluate_files(str(EX / design / "arch.yaml"), str(EX / "_include" / "default_problem.yaml"),
                          str(r / "timeloop-mapper.map.yaml"), str(r / "timeloop-mapper.ERT.yaml"),
                          str(r / "timeloop-mapper.ART.yaml"))


def test_licence_and_source_are_committed():
    for d in (EX, SHAPES):
        assert "MIT License" in (d / "LICENSE").read_text()
        assert "timeloop-accelergy-exercises" in (d / "SOURCE.txt").read_text()


# Energy differences that are the cost model's, not the reader's (see the test ids):
#  eyeriss_like: Timeloop v4 spreads the PE array over two containers (PE_column: Q on X, PE: C,S
#  on Y) and counts the input halo that neighbouring columns share (stride 2, S spread) once per
#  column; accelmap (like Timeloop v3 on the same array as one fanout, checked with the v3 binary
#  below) multicasts it: shared_glb Input reads 935,424 vs 1,354,752 -> energy -1.64%.
_COST_MODEL_GAPS = {"eyeriss_like": "two-level fanout multicast (issue 14)"}


@pytest.mark.parametrize("design", DESIGNS)
def test_exercise_design_matches_reference_stats(design):
    ref = _reference_stats(design)
    d = _evaluate(design).to_dict()
    assert d["valid"]
    assert d["macs"] == ref["computes"]
    assert d["cycles"] == ref["cycles"]  # exact
    # DRAM and MAC energies carry no leakage in Timeloop's report: they match to rounding
    comp = d["energy_pJ_by_component"]
    assert comp["DRAM"] == pytest.approx(ref["by_component"]["DRAM"], rel=2e-5)
    assert comp["mac"] == pytest.approx(ref["by_component"]["mac"], rel=2e-5)
    ratio = d["energy_pJ"] / ref["energy_pJ"]
    if design in _COST_MODEL_GAPS:
        pytest.xfail(f"{design}: energy ratio {ratio:.4f}: {_COST_MODEL_GAPS[design]}")
    assert abs(ratio - 1) <= 0.005, ratio


def test_eyeriss_like_gap_is_the_known_one():
    """The one design outside 0.5%: every component but shared_glb matches (leakage aside)."""
    ref = _reference_stats("eyeriss_like")
    comp = _evaluate("eyeriss_like").to_dict()["energy_pJ_by_component"]
    for name in ("mac", "DRAM", "psum_spad", "weights_spad", "ifmap_spad"):
        assert comp[name] == pytest.approx(ref["by_component"][name], rel=2e-3), name
    assert comp["shared_glb"] / ref["by_component"]["shared_glb"] == pytest.approx(0.7655, abs=2e-3)


def test_v4_architecture_structure_and_constraints():
    from accelmap.timeloop_v4 import read_v4_architecture

    v = read_v4_architecture(EX / "eyeriss_like" / "arch.yaml")
    a = v.arch
    assert a.name == "eyeriss_like"
    assert a.level_names == ("DRAM", "shared_glb", "inter_PE_column_spatial", "inter_PE_spatial", "ifmap_spad",
                             "weights_spad", "psum_spad")
    assert a.fanout(a.level_index("inter_PE_column_spatial")) == (14, 1)
    assert a.fanout(a.level_index("inter_PE_spatial")) == (1, 12)
    assert a.compute.instances == 168 and a.technology_nm == 65
    glb = a.levels[1]
    assert (glb.capacity, glb.block_size, glb.word_bits, glb.read_bw) == (16384 * 8, 8, 8, 16)
    w = a.levels[a.level_index("weights_spad")]
    assert (w.capacity, w.block_size) == (384, 2)  # depth 192 x (width 16 / datawidth 8), as Timeloop's "Size"
    c = v.constraints.at("inter_PE_spatial")
    assert c.spatial_split == 0 and c.spatial_permutation == "NPQRSCM" and ("Q", 1) in c.spatial
    assert v.constraints.at("shared_glb").bypass == ("Weights",)
    simba = read_v4_architecture(EX / "simba_like" / "arch.yaml").arch
    regs = simba.levels[simba.level_index("PEWeightRegs")]
    assert regs.instances == 256 and regs.capacity == 1  # width 512 / (datawidth 8 x cluster_size 64) = 1 word


def test_top_spec_with_jinja2_evaluates_like_the_files():
    from accelmap.evaluation import evaluate_spec

    r = _ref("simple_output_stationary")
    ev = evaluate_spec([str(EX / "top.yaml.jinja2"), "architecture=simple_output_stationary"],
                       mapping=str(r / "timeloop-mapper.map.yaml"), ert=str(r / "timeloop-mapper.ERT.yaml"),
                       art=str(r / "timeloop-mapper.ART.yaml"))
    direct = _evaluate("simple_output_stationary").to_dict()
    assert ev.to_dict()["energy_pJ"] == pytest.approx(direct["energy_pJ"], rel=1e-12)
    assert ev.to_dict()["cycles"] == direct["cycles"]


def test_deep_merge_key_and_anchors_across_included_text(tmp_path):
    from accelmap.spec import load_v4_file

    (tmp_path / "base.yaml").write_text("base_ignore: &b\n  x: {p: 1, q: 2}\n  y: [1, 2]\n  z: 3\n")
    (tmp_path / "top.yaml").write_text("{{include_text('base.yaml')}}\nout:\n  <<<: *b\n  x: {q: 5}\n  y: [9]\n"
                                       "shallow:\n  <<: *b\n  x: {q: 5}\n")
    doc = load_v4_file(tmp_path / "top.yaml")
    assert doc["out"] == {"x": {"p": 1, "q": 5}, "y": [9], "z": 3}
    assert doc["shallow"]["x"] == {"q": 5}  # YAML's << replaces the whole value
    assert doc["base_ignore"]["x"] == {"p": 1, "q": 2}  # the anchored original is not changed


def test_layer_shape_collection_loads():
    """Every problem file loads, with MACs the product of its instance dims; the sparse MM
    examples are refused naming their densities; problem_base.yaml is a base, not a problem."""
    from accelmap.spec import load_v4_file
    from accelmap.timeloop_v4 import problem_from_v4

    files = sorted(SHAPES.rglob("*.yaml"))
    assert len(files) == 1364
    loaded, refused = 0, 0
    for f in files:
        doc = load_v4_file(f)
        if "problem" not in doc:
            assert f.name == "problem_base.yaml"
            continue
        if "densities" in doc["problem"]["instance"]:
            with pytest.raises(AccelmapError, match="densities"):
                problem_from_v4(doc, str(f), f.stem)
            refused += 1
            continue
        w = problem_from_v4(doc, str(f), f.stem)
        inst = doc["problem"]["instance"]
        assert w.macs == math.prod(inst[d] for d in doc["problem"]["shape"]["dimensions"]), f
        loaded += 1
    assert (loaded, refused) == (1360, 3)


def test_folder_network_order_names_and_merging():
    from accelmap.network import load_network

    warnings: list[str] = []
    net = load_network(str(SHAPES / "gpt2"), on_warning=warnings.append)
    names = [layer.workload.name for layer in net.layers]
    assert names == sorted(p.stem for p in (SHAPES / "gpt2").glob("*.yaml")) and len(names) == 145
    assert net.name == "gpt2" and len(net.unique_layers()) == 7
    assert sum(u.count for u in net.unique_layers()) == 145
    alex = load_network(str(SHAPES / "alexnet"), on_warning=warnings.append)
    # alexnet's first layer spells HStride/WStride: named in a warning, ignored as Timeloop ignores them
    assert any("HStride" in w and "Hstride" in w for w in warnings)
    assert alex.layers[0].workload.bound["P"] == 55


def _cli(*args):
    """``accelmap ARGS`` through the CLI's own entry point (exit code, one-line errors), in this
    process: starting a Python with torch per call would cost seconds each."""
    import contextlib
    import io
    from types import SimpleNamespace

    from accelmap import cli

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["accelmap", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_map_a_folder_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = _cli("map", str(SHAPES / "alexnet"), "--arch", str(EX / "simple_weight_stationary" / "arch.yaml"),
             "--budget", "300", "--patience", "100", "--workers", "1", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((out / "summary.json").read_text())
    layers = summary["layers"]
    assert [x["name"] for x in layers] == [str(i) for i in range(8)]
    from accelmap.network import load_network

    net = load_network(str(SHAPES / "alexnet"), on_warning=lambda m: None)
    for x, layer in zip(layers, net.layers):
        assert x["macs"] == math.prod(layer.workload.bounds)


@pytest.mark.parametrize("design", DESIGNS)
def test_round_trip_v4_and_v3(design, tmp_path):
    from accelmap.architecture import read_architecture, write_architecture
    from accelmap.evaluation import evaluate_mapping
    from accelmap.mapping import read_mapping
    from accelmap.network import Layer
    from accelmap.timeloop_export import export_timeloop_v4, fold_fanout_levels
    from accelmap.timeloop_v4 import read_v4_architecture, read_v4_mapping
    from accelmap.workload import read_problem_yaml

    r = _ref(design)
    v = read_v4_architecture(EX / design / "arch.yaml", r / "timeloop-mapper.ERT.yaml", r / "timeloop-mapper.ART.yaml")
    w = read_problem_yaml(EX / "_include" / "default_problem.yaml")
    m = read_v4_mapping(r / "timeloop-mapper.map.yaml", v.arch, w)
    base = evaluate_mapping(w, v.arch, m).to_dict()
    cons = v.constraints_for([t.name for t in w.tensors])
    export_timeloop_v4(tmp_path / "v4", v.arch, cons, [Layer(w)], {w.name: m})
    v2 = read_v4_architecture(tmp_path / "v4" / "arch.yaml", tmp_path / "v4" / "arch.ERT.yaml",
                              tmp_path / "v4" / "arch.ART.yaml")
    w2 = read_problem_yaml(tmp_path / "v4" / "problems" / "default_problem.yaml")
    assert w2.signature() == w.signature()
    c2 = v2.constraints_for([t.name for t in w.tensors])
    for lv in v.arch.level_names:  # the same constraints per level, whatever entries carry them
        a, b = cons.at(lv), c2.at(lv)
        assert (set(a.temporal), a.permutation, set(a.spatial), a.spatial_permutation, a.spatial_split,
                set(a.keep), set(a.bypass)) == (set(b.temporal), b.permutation, set(b.spatial),
                                                 b.spatial_permutation, b.spatial_split, set(b.keep), set(b.bypass))
    again = evaluate_mapping(w2, v2.arch, read_v4_mapping(tmp_path / "v4" / "mappings" / "default_problem.yaml",
                                                          v2.arch, w2)).to_dict()
    fa, fm, _ = fold_fanout_levels(v.arch, m, cons)
    write_architecture(fa, tmp_path / "v3", "arch")
    fm.write(tmp_path / "v3" / "map.yaml")
    a3 = read_architecture(tmp_path / "v3" / "arch.yaml", tmp_path / "v3" / "arch.ERT.yaml",
                           tmp_path / "v3" / "arch.ART.yaml")
    v3 = evaluate_mapping(w, a3, read_mapping(tmp_path / "v3" / "map.yaml", a3.level_names)).to_dict()
    for d in (again, v3):
        assert d["energy_pJ"] == pytest.approx(base["energy_pJ"], rel=1e-9)
        assert d["cycles"] == base["cycles"]
        assert d["area_um2"] == pytest.approx(base["area_um2"], rel=1e-9)


@pytest.mark.skipif(not TIMELOOP.exists(), reason="Timeloop v3 binary not present")
def test_v3_export_of_a_v4_design_runs_in_timeloop_v3(tmp_path):
    """The folded v0.3 export is a valid Timeloop v3 input, and v3 agrees with accelmap on it."""
    from accelmap.architecture import write_architecture
    from accelmap.timeloop_export import fold_fanout_levels
    from accelmap.timeloop_v4 import read_v4_architecture, read_v4_mapping
    from accelmap.workload import problem_to_dict, read_problem_yaml
    from accelmap.evaluation import evaluate_mapping
    from accelmap.yamlio import dump_yaml

    r = _ref("eyeriss_like")
    v = read_v4_architecture(EX / "eyeriss_like" / "arch.yaml", r / "timeloop-mapper.ERT.yaml",
                             r / "timeloop-mapper.ART.yaml")
    w = read_problem_yaml(EX / "_include" / "default_problem.yaml")
    m = read_v4_mapping(r / "timeloop-mapper.map.yaml", v.arch, w)
    fa, fm, _ = fold_fanout_levels(v.arch, m)
    write_architecture(fa, tmp_path, "arch")
    fm.write(tmp_path / "map.yaml")
    (tmp_path / "prob.yaml").write_text(dump_yaml(problem_to_dict(w)))
    (tmp_path / "o").mkdir()
    p = subprocess.run([str(TIMELOOP), "arch.yaml", "arch.ERT.yaml", "arch.ART.yaml", "prob.yaml", "map.yaml", "-o",
                        "o"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:]
    st = (tmp_path / "o" / "timeloop-model.stats.txt").read_text()
    d = evaluate_mapping(w, v.arch, m).to_dict()
    assert int(re.search(r"^Cycles: (\d+)", st, re.M)[1]) == d["cycles"]
    computes = int(re.search(r"^Computes = (\d+)", st, re.M)[1])
    total = float(re.search(r"^    Total\s+= ([\d.]+)", st.split("fJ/Compute")[1], re.M)[1]) * computes * 1e-3
    assert d["energy_pJ"] == pytest.approx(total, rel=1e-3)


# ---- one-line errors through the CLI ---------------------------------------------------------

def _design_copy(tmp_path: Path, design: str = "simple_output_stationary") -> Path:
    d = tmp_path / "ex"
    shutil.copytree(EX, d, ignore=shutil.ignore_patterns("ref_outputs"))
    return d


def _one_line_error(r, *needles):
    """Exit 2 and exactly one error line on stderr, which names every needle (file, key)."""
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _eval_args(arch: Path) -> list[str]:
    r = _ref("simple_output_stationary")
    return ["evaluate", "--arch", str(arch), "--problem", str(EX / "_include" / "default_problem.yaml"),
            "--mapping", str(r / "timeloop-mapper.map.yaml")]


def test_cli_unknown_tag(tmp_path):
    d = _design_copy(tmp_path)
    arch = d / "simple_output_stationary" / "arch.yaml"
    arch.write_text(arch.read_text().replace("!Parallel", "!Paralel"))
    _one_line_error(_cli(*_eval_args(arch)), str(arch), "!Paralel")


def test_cli_constraint_naming_a_missing_level(tmp_path):
    d = _design_copy(tmp_path)
    extra = tmp_path / "cons.yaml"
    extra.write_text("constraints:\n  version: 0.4\n  targets:\n  - {target: NoSuchBuffer, type: temporal, "
                     "factors: [C=1]}\n")
    r = _cli("evaluate", "--spec", str(d / "top.yaml.jinja2"), "--spec", "architecture=simple_output_stationary",
             "--spec", str(extra), "--mapping", str(_ref("simple_output_stationary") / "timeloop-mapper.map.yaml"))
    _one_line_error(r, str(extra), "NoSuchBuffer", "constraints.targets[0].target")


def test_cli_jinja2_error_and_missing_include(tmp_path):
    d = _design_copy(tmp_path)
    bad = tmp_path / "bad.yaml.jinja2"
    bad.write_text("problem: {{ include('nowhere.yaml', 'problem') }}\n")
    _one_line_error(_cli("evaluate", "--spec", str(bad)), str(bad), "nowhere.yaml", "include")
    broken = tmp_path / "broken.yaml.jinja2"
    broken.write_text("a: {% if %}\n")
    _one_line_error(_cli("evaluate", "--spec", str(broken)), str(broken), "jinja2")
    # a variable the template needs and the command line did not give
    _one_line_error(_cli("evaluate", "--spec", str(d / "top.yaml.jinja2")), "architecture", "jinja2")


def test_cli_unmodelled_features_are_named(tmp_path):
    d = _design_copy(tmp_path)
    arch = d / "simple_output_stationary" / "arch.yaml"
    text = arch.read_text()
    arch.write_text(text.replace("    name: pe_spad\n", "    name: pe_spad\n    sparse_optimizations: {}\n"))
    _one_line_error(_cli(*_eval_args(arch)), "sparse_optimizations", str(arch))
    arch.write_text(text.replace("class: smartbuffer_SRAM", "class: cim_array", 1))
    _one_line_error(_cli(*_eval_args(arch)), "compute-in-memory", "class")
    arch.write_text(text)
    mm = next((SHAPES / "MM").rglob("*.yaml"))
    r = _cli("map", str(mm), "--arch", str(arch), "--budget", "10")
    _one_line_error(r, "densities", str(mm))


def test_variables_expressions_and_node_kinds(tmp_path):
    """Hand-checked: variables and attribute expressions (naming inherited and own attributes),
    !Hierarchical, a component spread over a mesh, !Nothing, and an unknown node key warned."""
    from accelmap.timeloop_v4 import read_v4_architecture

    f = tmp_path / "arch.yaml"
    f.write_text("""
variables:
  version: 0.4
  BUF_DEPTH: 2 ** 10
  WORD: 8
architecture:
  version: 0.4
  nodes:
  - !Container {name: sys, attributes: {technology: "45nm", datawidth: WORD}}
  - !Component {name: DRAM, class: DRAM, attributes: {width: WORD * 8}}
  - !Hierarchical
    nodes:
    - !Component
      name: buf
      class: SRAM
      attributes: {read_bandwidth: "width // datawidth", depth: BUF_DEPTH, width: datawidth * 4}
      constraints: {dataspace: {bypass: [Weights]}}
    - !Component
      name: reg
      class: regfile
      spatial: {meshX: 4, meshY: 2}
      spatail: {meshX: 3}
      attributes: {depth: "max(2, BUF_DEPTH // 256)", width: datawidth}
    - !Nothing
  - !Component {name: mac, class: intmac}
""")
    warnings: list[str] = []
    v = read_v4_architecture(f, warn=warnings.append)
    a = v.arch
    assert a.level_names == ("DRAM", "buf", "reg")
    dram, buf, reg = a.levels
    assert (dram.block_size, dram.capacity) == (8, None)
    assert (buf.capacity, buf.block_size, buf.read_bw, buf.word_bits) == (4096, 4, 4.0, 8)
    assert (reg.instances, reg.mesh_x, reg.capacity) == (8, 4, 4)
    assert a.fanout(1) == (4, 2) and a.compute.instances == 8
    assert v.constraints.at("buf").bypass == ("Weights",)
    assert any("spatail" in w for w in warnings)


def test_bad_expression_names_the_attribute(tmp_path):
    from accelmap.timeloop_v4 import read_v4_architecture

    f = tmp_path / "arch.yaml"
    f.write_text("architecture:\n  version: 0.4\n  nodes:\n  - !Component {name: DRAM, class: DRAM}\n"
                 "  - !Component {name: buf, class: SRAM, attributes: {depth: NOPE * 2, width: 8, datawidth: 8}}\n"
                 "  - !Component {name: mac, class: intmac}\n")
    with pytest.raises(AccelmapError, match="NOPE") as e:
        read_v4_architecture(f)
    assert e.value.field == "architecture.nodes[1].attributes.depth" and e.value.file == str(f)


def test_cli_spec_evaluate_map_and_export_v4(tmp_path):
    r = _ref("simple_output_stationary")
    top = [str(EX / "top.yaml.jinja2"), "architecture=simple_output_stationary"]
    res = _cli("evaluate", "--spec", top[0], "--spec", top[1], "--mapping", str(r / "timeloop-mapper.map.yaml"),
               "--ert", str(r / "timeloop-mapper.ERT.yaml"), "--art", str(r / "timeloop-mapper.ART.yaml"), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    d = json.loads(res.stdout)
    assert d["arch"] == "simple_output_stationary"
    assert d["energy_pJ"] == pytest.approx(_evaluate("simple_output_stationary").to_dict()["energy_pJ"], rel=1e-12)

    out = tmp_path / "run"
    res = _cli("map", "--spec", top[0], "--spec", top[1], "--budget", "3000", "--patience", "0", "--workers", "1",
               "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    layers = json.loads((out / "summary.json").read_text())["layers"]
    assert len(layers) == 1 and layers[0]["macs"] == 3 * 32 * 3 * 3 * 112 * 112

    exp = tmp_path / "exp"
    res = _cli("export", "timeloop", "--arch", str(EX / "simba_like" / "arch.yaml"), "--network",
               str(SHAPES / "alexnet"), "--format", "v4", "--out", str(exp))
    assert res.returncode == 0, res.stdout + res.stderr
    from accelmap.network import load_network
    from accelmap.timeloop_v4 import read_v4_architecture

    assert "!Container" in (exp / "arch.yaml").read_text()
    back = read_v4_architecture(exp / "arch.yaml", exp / "arch.ERT.yaml", exp / "arch.ART.yaml")
    orig = read_v4_architecture(EX / "simba_like" / "arch.yaml")
    assert back.arch.level_names == orig.arch.level_names
    assert [lv.instances for lv in back.arch.levels] == [lv.instances for lv in orig.arch.levels]
    assert [lv.capacity for lv in back.arch.levels] == [lv.capacity for lv in orig.arch.levels]
    re_net = load_network(str(exp / "problems"), on_warning=lambda m: None)
    src_net = load_network(str(SHAPES / "alexnet"), on_warning=lambda m: None)
    assert [x.workload.signature() for x in re_net.unique_layers()] == \
        [x.workload.signature() for x in src_net.unique_layers()]


def test_v4_mapping_styles_container_targets_and_mapper_settings():
    """The mapper's ``C1 M8`` factors, ``DIM=N`` lists and list permutations read alike; a
    container's own name targets its fanout level; mapper settings become accelmap options."""
    from accelmap.timeloop_v4 import mapper_settings, mapping_from_v4, read_v4_architecture

    a = read_v4_architecture(EX / "eyeriss_like" / "arch.yaml")
    containers = dict(a.containers)
    one = mapping_from_v4({"mapping": [{"target": "psum_spad", "type": "temporal", "factors": "C1 M8 R1",
                                        "permutation": "MCR"},
                                       {"target": "PE", "type": "spatial", "factors": "C3 S3", "permutation": "SC",
                                        "split": 0}]}, "<m>", a.arch, containers)
    two = mapping_from_v4({"mapping": [{"target": "psum_spad", "type": "temporal", "factors": ["C=1", "M=8", "R=1"],
                                        "permutation": ["M", "C", "R"]},
                                       {"target": "inter_PE_spatial", "type": "spatial", "factors": ["C=3", "S=3"],
                                        "permutation": ["S", "C"], "split": 0}]}, "<m>", a.arch, containers)
    assert one == two
    lv = one.level("inter_PE_spatial")
    assert lv.spatial == (("C", 3), ("S", 3)) and lv.spatial_axis("C") == 1 and lv.keep == ()
    assert mapper_settings({"optimization_metrics": ["edp"]}) == {"objective": "edp"}
    assert mapper_settings({"optimization_metrics": ["delay", "energy"]}) == {"objective": "lex:cycles,energy"}


@pytest.mark.parametrize("design", DESIGNS)
def test_v4_map_txt_reads_like_its_map_yaml(design):
    """Timeloop v4's printed nest (levels without loops share a rule; it ends with '<< Compute >>')
    is the same mapping as the map.yaml printed beside it."""
    from accelmap.evaluation import evaluate_files

    r = _ref(design)
    assert "<< Compute >>" in (r / "timeloop-mapper.map.txt").read_text()
    txt = evaluate_files(str(EX / design / "arch.yaml"), str(EX / "_include" / "default_problem.yaml"),
                         str(r / "timeloop-mapper.map.txt"), str(r / "timeloop-mapper.ERT.yaml"),
                         str(r / "timeloop-mapper.ART.yaml"))
    yml = _evaluate(design)
    assert float(txt.costs.energy[0]) == float(yml.costs.energy[0])
    assert float(txt.costs.cycles[0]) == float(yml.costs.cycles[0]) == _reference_stats(design)["cycles"]
