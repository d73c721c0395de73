"""accelmap report: pages for map, codesign, front and tune directories carry their sections,
one loop nest per layer with the mapping's factors (read back as map.txt, it evaluates like the
mapping file), PNGs that decode, and nothing external; a loop nest checked by hand and against
Timeloop's own map.txt of every reference record; clear errors for directories of no known
kind; a render in headless Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess

import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset, read_architecture
from accelmap.errors import AccelmapError
from accelmap.mapping.loop_nest import format_map_txt
from accelmap.mapping.mapping import LevelMapping, Mapping, read_mapping
from accelmap.runs.report import write_report

# ---- fixtures: small real runs ---------------------------------------------------------------

@pytest.fixture(scope="module")
def map_run(tmp_path_factory):
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.model.objective import Objective
    from accelmap.runs.map import write_run
    from accelmap.search.network import map_layers
    from accelmap.workload.zoo import get_network

    out = tmp_path_factory.mktemp("map")
    layers = list(get_network("resnet18").unique_layers())[:3]
    arch = preset("eyeriss_like")
    outcomes = map_layers(layers, arch, read_constraints(preset_constraints("eyeriss_like")), Objective.parse("edp"),
                          "annealing", budget=3000, seed=0, workers=1, patience=None)
    settings = {"network": "resnet18", "arch": "eyeriss_like", "objective": "edp", "optimizer": "annealing",
                "budget": 3000, "seed": 0}
    write_run(out, outcomes, settings, complete=True)
    return out


SPACE = """
base: eyeriss_like
parameters:
  pe_x: [4, 32]
  pe_y: [4, 32]
  shared_glb.capacity: [4096, 131072]
"""


def _codesign_problem(tmp, objective="latency", budgets=None):
    from accelmap.arch.space import read_hardware_space
    from accelmap.codesign.problem import Budgets, CoDesignProblem
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.workload.network import Layer
    from accelmap.workload.workload import conv2d, linear

    space = tmp / "space.yaml"
    space.write_text(SPACE)
    layers = [Layer(linear("fc", in_features=512, out_features=1000)),
              Layer(conv2d("pw", C=256, K=512, P=7, R=1), count=2)]
    return CoDesignProblem(layers, read_hardware_space(space), read_constraints(preset_constraints("eyeriss_like")),
                           objective, budgets or Budgets())


@pytest.fixture(scope="module")
def codesign_run(tmp_path_factory):
    from accelmap.codesign.base import get_codesigner
    from accelmap.codesign.problem import Budgets
    from accelmap.runs.codesign import write_codesign_run

    out = tmp_path_factory.mktemp("codesign")
    budgets = Budgets(area_mm2=50.0)
    p = _codesign_problem(out, budgets=budgets)
    res = get_codesigner("genetic")(p, 60.0, 0, designs=3).run()  # one generation: about a second
    settings = {"network": "two_layers", "arch_space": str(out / "space.yaml"), "objective": "latency",
                "budgets": {"area_mm2": 50.0}, "method": "genetic", "seconds": 60.0, "designs": 3, "seed": 0}
    write_codesign_run(out / "run", p, res, settings)
    return out / "run"


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    from accelmap.codesign.problem import Budgets
    from accelmap.runs.codesign import sweep, write_sweep

    out = tmp_path_factory.mktemp("sweep")
    front = sweep(lambda o, b: _codesign_problem(out, o, b), ("latency", "power"), Budgets(), 3, "genetic", 60.0, 0,
                  designs=3)
    write_sweep(out / "front", _codesign_problem(out), front)
    return out / "front"


def _tune_dir(tmp):
    """Two layers, two tuners, 130 measurements each; every 4th invalid for 'random', the first
    64 of 'xgb' invalid one time in two; runtimes fall with the index."""
    d = tmp / "tune"
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({"kind": "tune", "settings": {"network": "tiny", "budget": 130},
                                               "runtime_unit": "ms"}))
    lines = []
    for layer in ("conv_a", "conv_b"):
        for tuner in ("random", "xgb"):
            for i in range(130):
                bad = (i % 4 == 3) if tuner == "random" else (i < 64 and i % 2 == 1)
                rt = None if bad else 100.0 - i * (0.5 if tuner == "xgb" else 0.3) + (layer == "conv_b")
                lines.append({"layer": layer, "tuner": tuner, "index": i, "config": {"tile_k": i % 8, "vt": 2},
                              "runtime": rt, "error": "overflow" if bad else None})
    with open(d / "records.jsonl", "w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    return d, lines


# ---- checks shared by every page -------------------------------------------------------------

def _self_contained(html: str) -> list:
    """No external references; every image a decodable PNG. Returns the decoded images."""
    from PIL import Image

    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert ref.startswith(("data:image/png;base64,", "#")), ref
    images = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        raw = base64.b64decode(b64, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        im = Image.open(io.BytesIO(raw))
        im.load()
        assert im.width > 200 and im.height > 100
        images.append(im)
    return images


def _nests(html: str) -> dict[str, str]:
    """Loop-nest text per <details> block, keyed by its summary title."""
    import html as h

    out = {}
    for title, body in re.findall(r"<details[^>]*><summary><b>(.*?)</b>.*?</summary><pre>(.*?)</pre></details>",
                                  html, flags=re.S):
        out[h.unescape(title)] = h.unescape(body)
    return out


def _check_nests(html: str, run, summary_layers, arch=None):
    """One nest per layer holding a loop line per non-trivial factor of its mapping file; with
    ``arch``, the nest read back as Timeloop's map.txt evaluates like the mapping file."""
    nests = _nests(html)
    assert len(nests) == len(summary_layers)
    for (title, text), rec in zip(nests.items(), summary_layers):
        assert rec["name"] in title
        m = read_mapping(run / rec["mapping_file"])
        loops = [(d, f) for lv in m.levels for d, f in lv.temporal if f > 1]
        loops += [(d, f) for lv in m.levels for d, f in (lv.spatial or ()) if f > 1]
        assert loops
        for d, f in loops:
            assert re.search(rf"^\|\s+for {d} in \[0:{f}\)", text, flags=re.M), (title, d, f)
        # as many loop lines over more than one step as non-trivial factors; every level named
        assert sorted(int(n) for n in re.findall(r"for \w+ in \[0:(\d+)\)", text) if int(n) > 1) == \
            sorted(f for _, f in loops)
        for lv in m.levels:
            assert re.search(rf"^{lv.name} \[", text, flags=re.M)
        if arch is not None:
            from accelmap.mapping.loop_nest import parse_map_txt
            from accelmap.model.evaluation import evaluate_mapping
            from accelmap.workload.load import read_problem_yaml

            w = read_problem_yaml(run / rec["problem_file"])
            a = evaluate_mapping(w, arch, read_mapping(run / rec["mapping_file"], arch.level_names)).costs
            b = evaluate_mapping(w, arch, parse_map_txt(text, arch, w)).costs
            assert (float(a.energy[0]), float(a.cycles[0])) == (float(b.energy[0]), float(b.cycles[0]))


# ---- map runs --------------------------------------------------------------------------------

def test_map_report_has_its_sections_loop_nests_and_only_embedded_images(map_run):
    path = write_report(map_run)
    assert path == map_run / "report.html"
    html = path.read_text()
    for sid in ("settings", "totals", "layers", "breakdown", "search", "mappings"):
        assert f'<section id="{sid}">' in html
    summary = json.loads((map_run / "summary.json").read_text())
    for rec in summary["layers"]:
        assert rec["name"] in html
        assert f"{rec['energy_pJ'] / 1e6:,.2f}" in html  # the per-layer table
    assert f"{summary['totals']['cycles']:,.0f}" in html
    images = _self_contained(html)
    assert len(images) == 3  # energy breakdown, cycles + utilization, search traces
    _check_nests(html, map_run, summary["layers"], preset("eyeriss_like"))
    # tile sizes come from the cost model: conv1's weights are 7*7*3*64 words at DRAM
    assert "DRAM [ Weights:9408 (9408) Inputs:" in html


def test_map_report_keeps_one_trace_line_per_optimizer(map_run, tmp_path):
    run = tmp_path / "two"
    shutil.copytree(map_run, run)
    recs = [json.loads(x) for x in (run / "trials.jsonl").read_text().splitlines()]
    with open(run / "trials.jsonl", "w") as f:
        for r in recs:
            f.write(json.dumps(dict(r, optimizer="annealing")) + "\n")
            f.write(json.dumps(dict(r, optimizer="genetic", best_score=r["best_score"] + 0.1)) + "\n")
    html = write_report(run, tmp_path / "out" / "r.html").read_text()
    assert "one line per optimizer (annealing, genetic)" in html


def test_map_report_without_its_architecture_still_shows_tables_and_nests(map_run, tmp_path):
    run = tmp_path / "lost"
    shutil.copytree(map_run, run)
    s = json.loads((run / "summary.json").read_text())
    s["settings"]["arch"] = "my_arch"  # a name from a YAML file that is not here
    (run / "summary.json").write_text(json.dumps(s))
    html = write_report(run).read_text()
    assert "The architecture &#39;my_arch&#39; could not be loaded" in html
    assert len(_self_contained(html)) == 2  # energy by level from summary.json, search traces
    _check_nests(html, run, s["layers"])
    assert "DRAM [ Weights Inputs Outputs ] " in html  # keep lists instead of tile sizes


# ---- codesign runs and fronts ------------------------------------------------------------------

def test_codesign_report_shows_hardware_budgets_trace_and_nests(codesign_run):
    html = write_report(codesign_run).read_text()
    s = json.loads((codesign_run / "summary.json").read_text())
    for sid in ("settings", "design", "convergence", "layers", "breakdown", "mappings"):
        assert f'<section id="{sid}">' in html
    for name, v in s["hardware"].items():
        assert f"<td>{name}</td>" in html
    assert re.search(r"<td>area</td><td class=\"n\">≤ 50 mm²</td>.*?<td class=\"ok\">met</td>", html)
    assert len(_self_contained(html)) == 3  # convergence, energy breakdown, cycles + utilization
    design = read_architecture(codesign_run / s["architecture"], codesign_run / s["ert"], codesign_run / s["art"])
    _check_nests(html, codesign_run, s["layers"], design)


def test_front_report_shows_points_hypervolumes_and_hardware(sweep_run):
    html = write_report(sweep_run).read_text()
    f = json.loads((sweep_run / "front.json").read_text())
    assert f"{f['hypervolume_epsilon']:.4g}" in html and f"{f['hypervolume_weighted']:.4g}" in html
    for sid in ("front", "points", "hardware"):
        assert f'<section id="{sid}">' in html
    assert len(_self_contained(html)) == 1
    assert html.count("<td>epsilon</td>") == 2 * len(f["epsilon"])  # points table + hardware table


# ---- tune runs ---------------------------------------------------------------------------------

def test_tune_report_best_configs_and_invalid_shares(tmp_path):
    d, recs = _tune_dir(tmp_path)
    html = write_report(d).read_text()
    for sid in ("settings", "overview", "tuners", "convergence", "invalid", "best"):
        assert f'<section id="{sid}">' in html
    assert len(_self_contained(html)) == 2
    for layer in ("conv_a", "conv_b"):
        valid = [r for r in recs if r["layer"] == layer and r["runtime"] is not None]
        best = min(valid, key=lambda r: r["runtime"])
        assert best["tuner"] == "xgb" and best["index"] == 129
        assert re.search(rf"<td>{layer}</td><td>xgb</td><td class=\"n\">{best['runtime']:.4g}</td>"
                         rf"<td class=\"n\">129</td><td class=\"mono\">tile_k=1 vt=2</td>", html)
    n_bad = sum(r["error"] is not None for r in recs)
    assert f"{n_bad:,} ({n_bad / len(recs):.1%})" in html
    assert "<td>random</td><td>overflow</td><td class=\"n\">64</td>" in html  # 32 per layer, two layers
    assert "<td>xgb</td><td>overflow</td><td class=\"n\">64</td>" in html
    assert "batch of 64" in html


def test_tune_shares_per_batch_of_64(tmp_path, monkeypatch):
    import accelmap.runs.plots as plots

    seen = {}
    real = plots.invalid_share_png
    monkeypatch.setattr(plots, "invalid_share_png", lambda shares, batch: seen.update(shares) or real(shares, batch))
    d, _ = _tune_dir(tmp_path)
    write_report(d)
    assert seen["xgb"] == [0.5, 0.0, 0.0]  # 32 of the first 64, none after; 130 = 64 + 64 + 2
    assert seen["random"] == [16 / 64, 16 / 64, 0.0]  # indices 3, 7, ...; 128 and 129 are valid


def test_tune_record_without_a_required_field_names_the_line(tmp_path):
    d, _ = _tune_dir(tmp_path)
    with open(d / "records.jsonl", "a") as f:
        f.write(json.dumps({"layer": "conv_a", "index": 5, "runtime": 1.0, "error": None}) + "\n")
    with pytest.raises(AccelmapError, match=r"records.jsonl: field 'line 521.tuner'"):
        write_report(d)


# ---- loop nest by hand -------------------------------------------------------------------------

def test_loop_nest_orders_levels_loops_and_spatial_axes():
    m = Mapping((
        LevelMapping("DRAM", (("K", 4), ("C", 2), ("P", 1)), "CK", keep=("W", "I", "O")),
        LevelMapping("buf", (("K", 1), ("C", 3), ("P", 7)), "PC", spatial=(("K", 2), ("C", 1), ("P", 5)),
                     spatial_permutation="KP", spatial_split=1, keep=("I",), bypass=("W", "O")),
        LevelMapping("reg", (("K", 1), ("C", 1), ("P", 1)), "KCP", keep=("O",), bypass=("W", "I")),
    ))
    text = format_map_txt(m, ["K", "C", "P"], tiles={"DRAM": {"W": 24}, "buf": {"I": 3}, "reg": {"O": 1}})
    # permutations list the innermost loop first; omitted dims (P at DRAM) go outside; factor-1
    # loops vanish; Y spatial loops (P: after the split) enclose X loops (K); a level without a
    # temporal loop prints one of size 1 over the last dim
    assert text.splitlines() == [
        "",
        "DRAM [ W:24 (24) ] ",
        "------------------",
        "| for K in [0:4)",
        "|   for C in [0:2)",
        "",
        "buf [ I:3 (3) ] ",
        "---------------",
        "|     for C in [0:3)",
        "|       for P in [0:7)",
        "|         for P in [0:5) (Spatial-Y)",
        "|           for K in [0:2) (Spatial-X)",
        "",
        "reg [ O:1 (1) ] ",
        "---------------",
        "|             for P in [0:1)",
        "",
    ]


def test_loop_nest_is_timeloops_map_txt_on_every_reference_record(ref):
    from collections import defaultdict

    from accelmap.mapping.mapping import MappingBatch, parse_mapping
    from accelmap.model.cost_model import CostModel
    from accelmap.model.reference import load_arch
    from accelmap.workload.load import read_problem_yaml

    n = 0
    for arch_name in ("eyeriss_like", "simple_pe16x16"):
        arch = load_arch(ref, arch_name)
        by_layer = defaultdict(list)
        for line in (ref / "records" / f"{arch_name}.jsonl").read_text().splitlines():
            r = json.loads(line)
            by_layer[r["layer"]["name"]].append(r)
        for layer, recs in by_layer.items():
            w = read_problem_yaml(ref / "inputs/problems" / f"{layer}.yaml")
            ms = [parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs]
            batch = MappingBatch.from_mappings(ms, w, arch)
            tile = CostModel(w, arch, torch.float64)(batch).tile  # [B, L, T] words per instance
            for b, (m, r) in enumerate(zip(ms, recs)):
                tiles = {lv.name: {t.name: int(tile[b, li, ti]) for ti, t in enumerate(w.tensors)
                                   if batch.keep[b, li, ti]} for li, lv in enumerate(arch.levels)}
                assert format_map_txt(m, list(w.dims), tiles) == r["map_txt"], (arch_name, layer, r["tag"])
                n += 1
    assert n == 336


# ---- errors and the command line ---------------------------------------------------------------

def test_unknown_directories_are_one_clear_error(tmp_path, cli):
    with pytest.raises(AccelmapError, match=r"empty: no summary.json; expected a run directory of accelmap map"):
        (tmp_path / "empty").mkdir()
        write_report(tmp_path / "empty")
    with pytest.raises(AccelmapError, match="not a directory"):
        write_report(tmp_path / "missing")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "summary.json").write_text('{"settings": {"x": 1}}')
    with pytest.raises(AccelmapError, match=r"odd/summary.json: field 'settings': not a summary of accelmap map"):
        write_report(tmp_path / "odd")
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "summary.json").write_text('{"settings": {"arch_space": "s"}, "parameters": [], "points": []}')
    with pytest.raises(AccelmapError, match=r"a hardware sweep \(accelmap sweep\) has no report page yet"):
        write_report(tmp_path / "hw")
    code, out, err = cli("report", str(tmp_path / "empty"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "summary.json" in err


def test_cli_writes_the_page_where_asked_and_prints_its_path(map_run, tmp_path, cli):
    dest = tmp_path / "pages" / "map.html"
    code, out, err = cli("report", str(map_run), "--out", str(dest))
    assert code == 0, err
    assert out.strip() == str(dest) and dest.read_text().startswith("<!DOCTYPE html>")


# ---- a real browser ----------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium for a headless render")
def test_chromium_renders_a_non_blank_page(map_run, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    page = write_report(map_run, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1400,3000", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = mpimg.imread(shot)
    assert img.shape[:2] == (3000, 1400)
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std(axis=0).max() > 0.05  # not one colour
    assert len(np.unique((rgb[::97] * 255).astype(np.uint8), axis=0)) > 50  # text, plots, tables
