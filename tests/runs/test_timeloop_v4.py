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
from dataclasses import replace
from pathlib import Path

import pytest

from accelmap.errors import AccelmapError

DATA = Path(__file__).resolve().parents[1] / "data"
EX = DATA / "exercises"
SHAPES = DATA / "layer_shapes"
DESIGNS = ["eyeriss_like", "simba_like", "simple_output_stationary", "simple_weight_stationary"]
TIMELOOP = Path(__file__).resolve().parents[2].parent / "shared" / "timeloop" / "bin" / "timeloop-model"


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
    from accelmap.model.evaluation import evaluate_files

    r = _ref(design)
    return evaluate_files(str(EX / design / "arch.yaml"), str(EX / "_include" / "default_problem.yaml"),
                          str(r / "timeloop-mapper.map.yaml"), str(r / "timeloop-mapper.ERT.yaml"),
                          str(r / "timeloop-mapper.ART.yaml"))


def test_licence_and_source_are_committed():
    for d in (EX, SHAPES):
        assert "MIT License" in (d / "LICENSE").read_text()
        assert "timeloop-accelergy-exercises" in (d / "SOURCE.txt").read_text()


def _half_digit(design: str) -> float:
    """Half a unit of the last digit Timeloop prints in 'fJ/Compute' (two decimals), in pJ over
    the run: how far a printed energy may be from the exact one."""
    return 0.005e-3 * _reference_stats(design)["computes"]


@pytest.mark.parametrize("design", DESIGNS)
def test_exercise_design_matches_reference_stats(design):
    ref = _reference_stats(design)
    d = _evaluate(design).to_dict()
    assert d["valid"]
    assert d["macs"] == ref["computes"]
    assert d["cycles"] == ref["cycles"]  # exact
    # every component (leakage and clusters included) and the total, to Timeloop's printed digits
    comp = d["energy_pJ_by_component"]
    tol = _half_digit(design)
    for name, e in ref["by_component"].items():
        assert comp[name] == pytest.approx(e, abs=tol), name
    assert d["energy_pJ"] == pytest.approx(ref["energy_pJ"], abs=tol)
    assert abs(d["energy_pJ"] / ref["energy_pJ"] - 1) <= 0.005  # the acceptance bound


def _stats_sections(design: str) -> dict[str, str]:
    """The detailed per-level sections of Timeloop's stats.txt, by level name."""
    st = (_ref(design) / "timeloop-mapper.stats.txt").read_text().split("Summary Stats")[0]
    parts = re.split(r"^=== (\w+) ===$", st, flags=re.M)
    out: dict[str, str] = {}
    for name, text in zip(parts[1::2], parts[2::2]):
        out.setdefault(name, text)  # the detailed section comes first; a short listing follows
    return out


@pytest.mark.parametrize("design", DESIGNS)
def test_leakage_and_clusters_as_timeloop_v4_reports_them(design):
    """Leakage = the ERT's leak energy x cycles x utilized instances, per storage level (none
    for the MACs); accesses of a clustered level are charged per utilized cluster. Checked
    against the per-level lines of Timeloop v4's stats.txt (two printed decimals)."""
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture

    r = _ref(design)
    arch = read_v4_architecture(EX / design / "arch.yaml", r / "timeloop-mapper.ERT.yaml",
                                r / "timeloop-mapper.ART.yaml").arch
    ev = _evaluate(design)
    cycles = float(ev.costs.cycles[0])
    inst = ev.costs.instances[0]
    sections = _stats_sections(design)
    checked = 0
    for i, lv in enumerate(arch.levels):
        if lv.name not in sections or "Leakage energy (total)" not in sections[lv.name]:
            continue
        sec = sections[lv.name]
        leak = float(re.search(r"Leakage energy \(total\)\s+: ([\d.]+) pJ", sec)[1])
        assert lv.leak_energy * cycles * float(inst[i]) == pytest.approx(leak, abs=0.005 + 1e-9 * leak), lv.name
        assert int(re.search(r"Cluster size\s+: (\d+)", sec)[1]) == lv.cluster_size, lv.name
        used = int(re.search(r"Utilized instances \(max\)\s+: (\d+)", sec)[1])
        clusters = int(re.search(r"Utilized clusters \(max\)\s+: (\d+)", sec)[1])
        assert used == int(inst[i]) and clusters == min(used, lv.instances // lv.cluster_size), lv.name
        checked += 1
    assert checked == sum(1 for lv in arch.levels if lv.cls != "dummy_storage")
    if design == "simba_like":  # the one clustered level: 48 utilized instances in 4 clusters of 64
        regs = arch.levels[arch.level_index("PEWeightRegs")]
        assert (regs.cluster_size, regs.instances) == (64, 256)


def test_v4_architecture_structure_and_constraints():
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture

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
    from accelmap.runs.spec import evaluate_spec

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
    from accelmap.workload.timeloop_v4 import problem_from_v4

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
    from accelmap.workload.load import load_network

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
    from accelmap.workload.load import load_network

    net = load_network(str(SHAPES / "alexnet"), on_warning=lambda m: None)
    for x, layer in zip(layers, net.layers):
        assert x["macs"] == math.prod(layer.workload.bounds)


@pytest.mark.parametrize("design", DESIGNS)
def test_round_trip_v4_and_v3(design, tmp_path):
    from accelmap.arch.load import read_architecture
    from accelmap.mapping.mapping import read_mapping
    from accelmap.mapping.timeloop_v4 import read_v4_mapping
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture
    from accelmap.model.evaluation import evaluate_mapping
    from accelmap.runs.timeloop import export_timeloop, export_timeloop_v4
    from accelmap.workload.load import read_problem_yaml
    from accelmap.workload.network import Layer

    r = _ref(design)
    v = read_v4_architecture(EX / design / "arch.yaml", r / "timeloop-mapper.ERT.yaml", r / "timeloop-mapper.ART.yaml")
    w = read_problem_yaml(EX / "_include" / "default_problem.yaml")
    m = read_v4_mapping(r / "timeloop-mapper.map.yaml", v.arch, w)
    base_ev = evaluate_mapping(w, v.arch, m)
    base, base_inst = base_ev.to_dict(), [float(x) for x in base_ev.costs.instances[0]]
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
    assert again["energy_pJ"] == pytest.approx(base["energy_pJ"], rel=1e-9)
    assert again["cycles"] == base["cycles"]
    assert again["area_um2"] == pytest.approx(base["area_um2"], rel=1e-9)
    assert [(lv.leak_energy, lv.cluster_size) for lv in v2.arch.levels] == \
        [(lv.leak_energy, lv.cluster_size) for lv in v.arch.levels]

    # v0.3: the containers become storage levels of depth 0 that bypass every tensor
    export_timeloop(tmp_path / "v3", v.arch, cons, run=None, layers=[Layer(w)])
    m.write(tmp_path / "v3" / "map.yaml")
    a3 = read_architecture(tmp_path / "v3" / "arch.yaml", tmp_path / "v3" / "arch.ERT.yaml",
                           tmp_path / "v3" / "arch.ART.yaml")
    assert a3.level_names == v.arch.level_names
    v3 = evaluate_mapping(w, a3, read_mapping(tmp_path / "v3" / "map.yaml", a3.level_names)).to_dict()
    # Timeloop v3 has no leakage: the v0.3 design is the same design without it, clusters kept
    assert [lv.cluster_size for lv in a3.levels] == [lv.cluster_size for lv in v.arch.levels]
    leak = sum(lv.leak_energy * base["cycles"] * n for lv, n in zip(v.arch.levels, base_inst))
    assert v3["energy_pJ"] == pytest.approx(base["energy_pJ"] - leak, rel=1e-9)
    assert v3["cycles"] == base["cycles"]
    assert v3["area_um2"] == pytest.approx(base["area_um2"], rel=1e-9)


@pytest.mark.skipif(not TIMELOOP.exists(), reason="Timeloop v3 binary not present")
def test_v3_export_of_a_v4_design_runs_in_timeloop_v3(tmp_path):
    """The v0.3 export of a v0.4 design (containers as depth-0 levels) is a valid Timeloop v3
    input, and v3 agrees with accelmap on it: eyeriss, whose PE_column and PE containers are two
    fanout levels back to back, included."""
    from accelmap.arch.load import read_architecture
    from accelmap.mapping.timeloop_v4 import read_v4_mapping
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture
    from accelmap.model.evaluation import evaluate_mapping
    from accelmap.runs.timeloop import export_timeloop
    from accelmap.workload.load import read_problem_yaml
    from accelmap.workload.network import Layer

    r = _ref("eyeriss_like")
    v = read_v4_architecture(EX / "eyeriss_like" / "arch.yaml", r / "timeloop-mapper.ERT.yaml",
                             r / "timeloop-mapper.ART.yaml")
    w = read_problem_yaml(EX / "_include" / "default_problem.yaml")
    m = read_v4_mapping(r / "timeloop-mapper.map.yaml", v.arch, w)
    export_timeloop(tmp_path, v.arch, v.constraints_for([t.name for t in w.tensors]), layers=[Layer(w)])
    paths = (tmp_path / "arch.yaml", tmp_path / "arch.ERT.yaml", tmp_path / "arch.ART.yaml")
    m.write(tmp_path / "map.yaml")
    (tmp_path / "prob.yaml").write_text((tmp_path / "problems" / f"{w.name}.yaml").read_text())
    (tmp_path / "o").mkdir()
    p = subprocess.run([str(TIMELOOP), "arch.yaml", "arch.ERT.yaml", "arch.ART.yaml", "prob.yaml", "map.yaml", "-o",
                        "o"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:]
    st = (tmp_path / "o" / "timeloop-model.stats.txt").read_text()
    # the v0.3 files as accelmap reads them: without leakage (v3 has none)
    d = evaluate_mapping(w, read_architecture(*paths), m).to_dict()
    assert int(re.search(r"^Cycles: (\d+)", st, re.M)[1]) == d["cycles"]
    computes = int(re.search(r"^Computes = (\d+)", st, re.M)[1])
    total = float(re.search(r"^    Total\s+= ([\d.]+)", st.split("fJ/Compute")[1], re.M)[1]) * computes * 1e-3
    assert d["energy_pJ"] == pytest.approx(total, abs=0.005e-3 * computes)  # two printed decimals of fJ/Compute


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
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture

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
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture

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
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture
    from accelmap.workload.load import load_network

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
    from accelmap.mapping.timeloop_v4 import mapping_from_v4
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture
    from accelmap.runs.spec import mapper_settings

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
    from accelmap.model.evaluation import evaluate_files

    r = _ref(design)
    assert "<< Compute >>" in (r / "timeloop-mapper.map.txt").read_text()
    txt = evaluate_files(str(EX / design / "arch.yaml"), str(EX / "_include" / "default_problem.yaml"),
                         str(r / "timeloop-mapper.map.txt"), str(r / "timeloop-mapper.ERT.yaml"),
                         str(r / "timeloop-mapper.ART.yaml"))
    yml = _evaluate(design)
    assert float(txt.costs.energy[0]) == float(yml.costs.energy[0])
    assert float(txt.costs.cycles[0]) == float(yml.costs.cycles[0]) == _reference_stats(design)["cycles"]


# ---- leakage and clusters on a tiny design, by hand ------------------------------------------
# K=8 weights, DRAM -> 4 PEs, each PE a register file `reg` keeping only Weights (1 pJ a read,
# 3 pJ a write) and a MAC; DRAM and MAC energies 0. Every ERT entry has a leak action (DRAM 0.25,
# reg 0.5, mac 7 pJ per instance-cycle). Mapping "k4": K=4 spread over the PEs, K=2 in time at
# reg (2 cycles); "k2": K=2 spread, K=4 in time (4 cycles, 2 of the 4 PEs used).
# reg per utilized instance: k4 2 reads + 2 fills = 2 x 1 + 2 x 3 = 8 pJ; k2 4 x 1 + 4 x 3 = 16 pJ.

_TINY_PROBLEM = """problem:
  shape:
    name: CNN-Layer
    dimensions: [R, S, P, Q, C, K, N]
    data-spaces:
    - {name: Weights, projection: [[[C]], [[K]], [[R]], [[S]]]}
    - {name: Inputs, projection: [[[N]], [[C]], [[R], [P]], [[S], [Q]]]}
    - {name: Outputs, projection: [[[N]], [[K]], [[Q]], [[P]]], read-write: true}
  instance: {R: 1, S: 1, P: 1, Q: 1, C: 1, K: 8, N: 1}
"""
_TINY_V3_ARCH = """architecture:
  version: 0.3
  subtree:
  - name: system
    attributes: {technology: 45nm}
    local:
    - {name: DRAM, class: DRAM, attributes: {word-bits: 16, block-size: 1}}
    subtree:
    - name: PE[0..3]
      local:
      - {name: reg, class: regfile, attributes: {word-bits: 16, memory_depth: 4, meshX: 4, REG}}
      - {name: mac, class: intmac, attributes: {datawidth: 16, meshX: 4}}
"""
_TINY_V3_ERT = """ERT:
  version: '0.4'
  tables:
  - name: system.DRAM
    actions: [{name: read, energy: 0.0}, {name: write, energy: 0.0}, {name: leak, energy: 0.25}]
  - name: system.PE[0..3].reg
    actions: [{name: read, energy: 1.0}, {name: write, energy: 3.0}, {name: leak, energy: 0.5}]
  - name: system.PE[0..3].mac
    actions: [{name: mac_random, energy: 0.0}, {name: leak, energy: 7.0}]
"""
_TINY_V3_ART = """ART:
  version: '0.4'
  tables:
  - {name: system.DRAM, area: 0.0}
  - {name: "system.PE[0..3].reg", area: 0.0}
  - {name: "system.PE[0..3].mac", area: 0.0}
"""
_TINY_V3_MAP = """mapping:
- {target: DRAM, type: datatype, keep: [Weights, Inputs, Outputs], bypass: []}
- {target: DRAM, type: temporal, factors: R=1 S=1 P=1 Q=1 C=1 K=1 N=1, permutation: KRSPQCN}
- {target: DRAM, type: spatial, factors: R=1 S=1 P=1 Q=1 C=1 K=SP N=1, permutation: KRSPQCN, split: 7}
- {target: reg, type: datatype, keep: [Weights], bypass: [Inputs, Outputs]}
- {target: reg, type: temporal, factors: R=1 S=1 P=1 Q=1 C=1 K=TM N=1, permutation: KRSPQCN}
"""
# (reg attributes, mapping, energy pJ): by hand, and the same numbers from Timeloop v3.0.3
# (test_tiny_cluster_cases_in_timeloop_v3), which charges clusters and ignores the leak entries.
_TINY_V3_CASES = [
    ("cluster-size: 2, memory_width: 32", "k4", 16.0),  # 4 used, 4/2 = 2 clusters: 2 x 8
    ("block-size: 1, memory_width: 32", "k4", 16.0),  # cluster = 32 / (16 x 1) = 2, as above
    ("block-size: 1, memory_width: 16", "k4", 32.0),  # one instance a cluster: 4 x 8
    ("cluster-size: 4, memory_width: 64", "k2", 16.0),  # 2 used, 1 cluster: min(2, 1) x 16
    ("cluster-size: 2, memory_width: 32", "k2", 32.0),  # 2 used, 2 clusters: min(2, 2) x 16
]


def _tiny_files(tmp_path: Path, reg: str, mapping: str) -> tuple[Path, ...]:
    sp, tm = {"k4": (4, 2), "k2": (2, 4)}[mapping]
    files = {"arch.yaml": _TINY_V3_ARCH.replace("REG", reg), "ERT.yaml": _TINY_V3_ERT, "ART.yaml": _TINY_V3_ART,
             "prob.yaml": _TINY_PROBLEM,
             "map.yaml": _TINY_V3_MAP.replace("K=SP", f"K={sp}").replace("K=TM", f"K={tm}")}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tuple(tmp_path / n for n in ("arch.yaml", "prob.yaml", "map.yaml", "ERT.yaml", "ART.yaml"))


def _both_backends(arch, w, m) -> list:
    from accelmap.mapping.mapping import MappingBatch
    from accelmap.model.cost_model import CostModel

    batch = MappingBatch.from_mappings([m], w, arch)
    return [CostModel(w, arch, backend=b)(batch) for b in ("torch", "kernel")]


@pytest.mark.parametrize("reg,mapping,energy", _TINY_V3_CASES)
def test_tiny_cluster_cases_v3_by_hand(tmp_path, reg, mapping, energy):
    from accelmap.arch.load import read_architecture
    from accelmap.mapping.mapping import read_mapping
    from accelmap.workload.load import read_problem_yaml

    arch_f, prob_f, map_f, ert_f, art_f = _tiny_files(tmp_path, reg, mapping)
    arch = read_architecture(arch_f, ert_f, art_f)
    assert arch.levels[1].leak_energy == 0.0  # Timeloop v3 has no leakage
    w = read_problem_yaml(prob_f)
    for c in _both_backends(arch, w, read_mapping(map_f, arch.level_names)):
        assert bool(c.valid[0])
        assert float(c.energy[0]) == energy
        assert float(c.energy_by_level[0, 1]) == energy  # all of it at reg


@pytest.mark.skipif(not TIMELOOP.exists(), reason="Timeloop v3 binary not present")
def test_tiny_cluster_cases_in_timeloop_v3(tmp_path):
    """Timeloop v3.0.3 gives the hand-computed numbers (cluster-size read, or derived from a
    width wider than the block; leak entries ignored)."""
    for i, (reg, mapping, energy) in enumerate(_TINY_V3_CASES):
        d = tmp_path / str(i)
        d.mkdir()
        files = _tiny_files(d, reg, mapping)
        p = subprocess.run([str(TIMELOOP), *[f.name for f in files]], cwd=d, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stdout[-2000:]
        st = (d / "timeloop-model.stats.txt").read_text()
        computes = int(re.search(r"^Computes = (\d+)", st, re.M)[1])
        total = float(re.search(r"^    Total\s+= ([\d.]+)", st.split("fJ/Compute")[1], re.M)[1]) * computes * 1e-3
        assert total == pytest.approx(energy, abs=1e-9), (reg, mapping)


_TINY_V4_ARCH = """architecture:
  version: 0.4
  nodes:
  - !Container {name: system, attributes: {technology: 45nm, datawidth: 16}}
  - !Component {name: DRAM, class: DRAM, attributes: {width: 16}}
  - !Container {name: PE, spatial: {meshX: 4}}
  - !Component {name: reg, class: regfile, attributes: {depth: 4, width: 32, cluster_size: 2}}
  - !Component {name: mac, class: intmac}
"""
_TINY_V4_ERT = """ERT:
  version: '0.4'
  tables:
  - name: system_top_level.DRAM[1..1]
    actions: [{name: read, energy: 0.0}, {name: write, energy: 0.0}, {name: leak, energy: 0.25}]
  - name: system_top_level.reg[1..4]
    actions: [{name: read, energy: 1.0}, {name: write, energy: 3.0}, {name: update, energy: 3.0},
              {name: leak, energy: 0.5}]
  - name: system_top_level.mac[1..4]
    actions: [{name: compute, energy: 0.0}, {name: leak, energy: 7.0}]
"""
_TINY_V4_MAP = """mapping:
- {target: DRAM, type: dataspace, keep: [Weights, Inputs, Outputs]}
- {target: DRAM, type: temporal, factors: [K=1], permutation: [K]}
- {target: PE, type: spatial, factors: [K=SP], permutation: [K]}
- {target: reg, type: dataspace, keep: [Weights], bypass: [Inputs, Outputs]}
- {target: reg, type: temporal, factors: [K=TM], permutation: [K]}
"""


def _tiny_v4(tmp_path: Path, mapping: str):
    from accelmap.mapping.timeloop_v4 import read_v4_mapping
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture
    from accelmap.workload.load import read_problem_yaml

    sp, tm = {"k4": (4, 2), "k2": (2, 4)}[mapping]
    (tmp_path / "arch.yaml").write_text(_TINY_V4_ARCH)
    (tmp_path / "ERT.yaml").write_text(_TINY_V4_ERT)
    (tmp_path / "prob.yaml").write_text(_TINY_PROBLEM)
    (tmp_path / "map.yaml").write_text(_TINY_V4_MAP.replace("K=SP", f"K={sp}").replace("K=TM", f"K={tm}"))
    arch = read_v4_architecture(tmp_path / "arch.yaml", tmp_path / "ERT.yaml").arch
    w = read_problem_yaml(tmp_path / "prob.yaml")
    return arch, w, read_v4_mapping(tmp_path / "map.yaml", arch, w)


@pytest.mark.parametrize("mapping,cycles,reg,dram", [
    # k4: accesses 2 clusters x 8 = 16, leak 0.5 x 2 cycles x 4 used = 4; DRAM leak 0.25 x 2 x 1
    ("k4", 2, 16.0 + 4.0, 0.5),
    # k2: accesses min(2 used, 2 clusters) x 16 = 32, leak 0.5 x 4 x 2 = 4; DRAM leak 0.25 x 4 x 1
    ("k2", 4, 32.0 + 4.0, 1.0),
])
def test_tiny_leak_and_cluster_v4_by_hand(tmp_path, mapping, cycles, reg, dram):
    """Timeloop v4's leakage (ERT 'leak' x cycles x utilized instances, storage only: the MAC's
    leak entry is not charged) and cluster_size, in both backends."""
    arch, w, m = _tiny_v4(tmp_path, mapping)
    lv = arch.levels[arch.level_index("reg")]
    assert (lv.cluster_size, lv.block_size, lv.capacity, lv.leak_energy) == (2, 1, 4, 0.5)
    r = arch.level_index("reg")
    for c in _both_backends(arch, w, m):
        assert bool(c.valid[0]) and float(c.cycles[0]) == cycles
        assert float(c.energy_by_level[0, r]) == reg
        assert float(c.energy_by_level[0, 0]) == dram
        assert float(c.energy_by_level[0, -1]) == 0.0  # MAC: compute 0, its leak not charged
        assert float(c.energy[0]) == reg + dram
        # the per-tensor breakdown splits leakage equally among the three tensors, as Timeloop does
        assert float(c.energy_by_level_tensor[0, r].sum()) == pytest.approx(reg, rel=1e-12)
        assert float(c.energy_by_level_tensor[0, r, 1]) == pytest.approx(4.0 / 3, rel=1e-12)


def test_levels_without_leak_add_nothing_when_cycles_are_inf(tmp_path):
    """A design that never finishes (zero DRAM bandwidth, as co-design may propose) has infinite
    cycles: a level that leaks is charged inf, one that does not stays finite (0 x inf is not
    a nan that would poison the total and every comparison made with it)."""
    import torch

    from accelmap.mapping.mapping import MappingBatch
    from accelmap.model.cost_model import CostModel

    arch, w, m = _tiny_v4(tmp_path, "k4")
    model = CostModel(w, arch, backend="torch")
    slow = replace(model.hw, read_bw=torch.zeros_like(model.hw.read_bw))
    c = model(MappingBatch.from_mappings([m], w, arch), hw=slow)
    assert math.isinf(float(c.cycles[0])) and math.isinf(float(c.energy[0]))
    c = model(MappingBatch.from_mappings([m], w, arch), hw=replace(slow, leak_energy=torch.zeros_like(slow.leak_energy)))
    assert math.isinf(float(c.cycles[0])) and float(c.energy[0]) == 16.0  # reg's accesses only


@pytest.mark.parametrize("design", ["simba_like", "eyeriss_like"])
def test_exercise_designs_kernel_agrees_with_tensor_model(design):
    """The compiled kernel charges leakage and clusters as the tensor model does (simba_like has
    both; tests/model/test_kernel.py's designs have neither)."""
    from accelmap.mapping.timeloop_v4 import read_v4_mapping
    from accelmap.mapspace.timeloop_v4 import read_v4_architecture
    from accelmap.workload.load import read_problem_yaml

    r = _ref(design)
    arch = read_v4_architecture(EX / design / "arch.yaml", r / "timeloop-mapper.ERT.yaml",
                                r / "timeloop-mapper.ART.yaml").arch
    w = read_problem_yaml(EX / "_include" / "default_problem.yaml")
    t, k = _both_backends(arch, w, read_v4_mapping(r / "timeloop-mapper.map.yaml", arch, w))
    assert float(k.energy[0]) == pytest.approx(float(t.energy[0]), rel=1e-12)
    assert torch_allclose(k.energy_by_level_tensor, t.energy_by_level_tensor)
    assert float(k.cycles[0]) == float(t.cycles[0])


def torch_allclose(a, b) -> bool:
    import torch

    return bool(torch.allclose(a.to(torch.float64), b.to(torch.float64), rtol=1e-12, atol=1e-9))
