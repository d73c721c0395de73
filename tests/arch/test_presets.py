"""The architecture presets for the designs users model (eyeriss_v1, simba_like, simple_ws,
simple_os, tpu_like, gemmini_like): each loads with its dataflow constraints and its ERT/ART, and
each is checked against Timeloop v3.0.3 on its own records
(``tests/data/presets/NAME.jsonl.gz``: the preset's packaged files, zoo layers and random
mappings legal under the preset's constraints, run through ``timeloop-model`` by
``tests/data/presets/make_records.py``; each file's first line names the seed and the command).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "tests" / "data" / "presets"
TIMELOOP = REPO.parent / "shared" / "timeloop" / "bin" / "timeloop-model"
NEW = ("eyeriss_v1", "simba_like", "simple_ws", "simple_os", "tpu_like", "gemmini_like")
COUNTS = ("reads", "fills", "updates")


def _records(folder: Path = RECORDS):
    """{preset: meta} and every group of every preset's record file in ``folder``."""
    metas, groups = {}, []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            lines = [json.loads(x) for x in f]
        metas[path.name.split(".")[0]] = lines[0]["meta"]
        groups += lines[1:]
    return metas, groups


@pytest.mark.parametrize("name", NEW)
def test_preset_loads_with_its_constraints_and_tables(name):
    from accelmap.arch.architecture import list_presets, preset_constraints, preset_files
    from accelmap.arch.load import preset
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.workload.workload import conv2d

    assert name in list_presets()
    arch, ert, art = preset_files(name)
    assert ert is not None and art is not None and preset_constraints(name) is not None
    a = preset(name)
    cons = read_constraints(preset_constraints(name))
    cons.check(conv2d("c", C=64, K=64, P=14, R=3), a)
    # every component's energy and area come from the preset's own tables, none from the built-in one
    import warnings

    from accelmap.arch.load import read_architecture
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_architecture(arch, ert, art)
    assert not [w for w in caught if "built-in table" in str(w.message)]
    assert all(lv.read_energy > 0 for lv in a.levels) and a.compute.energy > 0


def test_preset_shapes():
    """The structure each preset stands for (hand-checked against its source design)."""
    from accelmap.arch.load import preset

    fan = {n: [i for i in range(len(preset(n).levels)) if preset(n).fanout(i) != (1, 1)] for n in NEW}
    assert len(fan["simba_like"]) >= 2                   # PE array, then the MAC vector in each PE
    e = preset("eyeriss_v1")
    assert "DummyBuffer" in e.level_names and e.compute.instances == 168
    t = preset("tpu_like")
    assert t.compute.instances == 128 * 128 and t.fanout(len(t.levels) - 2) == (128, 128)
    g = preset("gemmini_like")
    assert g.compute.instances == 256 and [lv.name for lv in g.levels] == ["DRAM", "Scratchpad", "Accumulator", "Registers"]
    assert {preset(n).compute.instances for n in ("simple_ws", "simple_os")} == {256}


def test_records_cover_every_preset_with_its_packaged_files():
    from accelmap.arch.architecture import preset_files

    metas, groups = _records()
    for name in NEW:
        assert "make_records.py" in metas[name]["command"] and metas[name]["preset"] == name
        gs = [g for g in groups if g["arch_name"] == name]
        assert len(gs) >= 4, name
        arch, ert, art = preset_files(name)
        # the records were run on the files the preset ships now, up to comments (stale records fail here)
        now = [yaml.safe_load(p.read_text()) for p in (arch, ert, art)]
        assert all([yaml.safe_load(g["files"][k]) for k in ("arch", "ert", "art")] == now for g in gs), name
        assert sum("error" not in r for g in gs for r in g["timeloop"]) >= 20, name


def test_every_record_matches_timeloop(tmp_path):
    """Energy within Timeloop's print rounding, cycles and every per-level, per-tensor read, fill
    and update equal, on every Timeloop-accepted record (random legal mappings, and Timeloop's
    mapper's best mappings under the preset's constraints); one batch per (preset, layer)."""
    from accelmap.arch.load import read_architecture
    from accelmap.mapping.mapping import MappingBatch, parse_mapping
    from accelmap.model.cost_model import CostModel
    from accelmap.workload.load import read_problem_yaml

    groups = _records()[1] + _records(RECORDS / "mapper")[1]
    archs: dict[str, object] = {}
    bad, n = [], 0
    for gi, g in enumerate(groups):
        d = tmp_path / f"g{gi}"
        d.mkdir()
        files = {k: d / f"{k}.yaml" for k in g["files"]}
        for k, p in files.items():
            p.write_text(g["files"][k])
        if g["arch_name"] not in archs:
            with _quiet():
                archs[g["arch_name"]] = read_architecture(files["arch"], files["ert"], files["art"])
        arch = archs[g["arch_name"]]
        w = read_problem_yaml(files["problem"])
        ok = [i for i, r in enumerate(g["timeloop"]) if "error" not in r]
        maps = [parse_mapping(g["mappings"][i], arch.level_names) for i in ok]
        c = CostModel(w, arch, backend="torch")(MappingBatch.from_mappings(maps, w, arch))
        counts = [c.reads.tolist(), c.fills.tolist(), c.updates.tolist()]
        for b, i in enumerate(ok):
            tl, n = g["timeloop"][i], n + 1
            e = float(c.energy[b])
            if abs(e - tl["energy_pJ"]) > tl["energy_tol_pJ"] + 1e-9 * tl["energy_pJ"]:
                bad.append((g["arch_name"], g["layer"], i, "energy", e, tl["energy_pJ"]))
            if int(c.cycles[b]) != tl["cycles"] or not bool(c.valid[b]):
                bad.append((g["arch_name"], g["layer"], i, "cycles/valid", float(c.cycles[b]), tl["cycles"]))
            for li, lname in enumerate(arch.level_names):
                for ti, t in enumerate(w.tensors):
                    ds = tl["levels"].get(lname, {}).get(t.name) or {}
                    for ci, key in enumerate(COUNTS):
                        if abs(counts[ci][b][li][ti] - ds.get(key, 0.0)) > 0.5:
                            bad.append((g["arch_name"], g["layer"], i, f"{lname}.{t.name}.{key}",
                                        counts[ci][b][li][ti], ds.get(key, 0.0)))
    assert n >= 6 * 20 + 6
    assert not bad, bad[:10]


def _violations(mapping, cons, arch) -> list[str]:
    """Where a mapping breaks accelmap's reading of a constraint file: kept or bypassed tensors,
    fixed temporal/spatial factors (0, 'the rest', is not checked), Timeloop's factor bounds
    ('C<=16') and the X/Y side of a spatial dimension given by a permutation and split."""
    out = []
    for name in arch.level_names:
        c, lm = cons.at(name), mapping.level(name)
        out += [f"{name} keeps no {t}" for t in c.keep if t in lm.bypass]
        out += [f"{name} keeps {t}" for t in c.bypass if t not in lm.bypass]
        out += [f"{name} temporal {d}={lm.temporal_factor(d)} (wants {f})" for d, f in c.temporal
                if f > 0 and lm.temporal_factor(d) != f]
        out += [f"{name} spatial {d}={lm.spatial_factor(d)} (wants {f})" for d, f in c.spatial
                if f > 0 and lm.spatial_factor(d) != f]
        for kind, d, op, v in c.bounds:
            f = lm.temporal_factor(d) if kind == "temporal" else lm.spatial_factor(d)
            if not c.within(kind, d, f):
                out.append(f"{name} {kind} {d}={f} (wants {op}{v})")
        perm = (c.spatial_permutation or "").replace(" ", "")
        if perm and c.spatial_split is not None:
            for d in perm:
                if lm.spatial_factor(d) > 1 and lm.spatial_axis(d) != (0 if perm.index(d) < c.spatial_split else 1):
                    out.append(f"{name} spatial {d} on the wrong mesh axis")
    return out


def test_mappings_keep_the_presets_dataflow():
    """Timeloop's mapper, searching under each preset's constraint file, finds mappings that
    accelmap's reading of the same file allows (the file means the same to both), and every
    random mapping in the records (drawn from accelmap's constrained space) keeps it too."""
    from accelmap.arch.architecture import preset_constraints
    from accelmap.arch.load import preset
    from accelmap.mapping.mapping import parse_mapping
    from accelmap.mapspace.constraints import read_constraints

    metas, mapped = _records(RECORDS / "mapper")
    assert set(metas) == set(NEW) and {g["arch_name"] for g in mapped} == set(NEW)
    bad = []
    for g in mapped + _records()[1]:
        arch = preset(g["arch_name"])
        cons = read_constraints(preset_constraints(g["arch_name"]))
        if "constraints" in g:   # the file Timeloop's mapper searched under is the preset's
            assert yaml.safe_load(g["constraints"]) == yaml.safe_load(preset_constraints(g["arch_name"]).read_text())
        for y in g["mappings"]:
            v = _violations(parse_mapping(y, arch.level_names), cons, arch)
            if v:
                bad.append((g["arch_name"], g["layer"], "mapper" if "constraints" in g else "random", v))
    assert not bad, bad[:5]


class _quiet:
    """The exercises' files keep attributes accelmap names in a warning (e.g. update_fifo_depth)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def test_presets_command_lists_each_new_preset_on_one_line(cli):
    code, text, err = cli("presets")
    assert code == 0, err
    for name in NEW:
        lines = [ln for ln in text.splitlines() if f" {name} " in ln]
        assert len(lines) == 1, (name, lines)


def test_map_cli_on_a_new_preset(cli, tmp_path):
    """accelmap map on gemmini_like under its DOSA constraints: the mapping it writes keeps the
    dataflow (C at most 16 under each accumulator, K at most 16 across the columns)."""
    from accelmap.workload.workload import conv2d, problem_to_dict
    from accelmap.yamlio import dump_yaml

    p = tmp_path / "conv.yaml"
    p.write_text(dump_yaml(problem_to_dict(conv2d("conv", C=32, K=32, P=8, R=3))))
    out = tmp_path / "run"
    code, _, err = cli("map", str(p), "--arch", "gemmini_like", "--budget", "3000", "--workers", "1",
                          "--out", str(out), "--seed", "0")
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] and s["totals"]["mapped"] == 1
    layer = s["layers"][0]
    from accelmap.arch.load import preset
    from accelmap.mapping.mapping import parse_mapping

    a = preset("gemmini_like")
    m = parse_mapping((out / layer["mapping_file"]).read_text(), a.level_names)
    spatial = {lv.name: dict(lv.spatial or ()) for lv in m.levels}
    assert spatial["Accumulator"].get("C", 1) <= 16 and spatial["Scratchpad"].get("K", 1) <= 16
    assert all(f == 1 for d, f in spatial["Accumulator"].items() if d != "C")
    assert all(f == 1 for d, f in m.level("Registers").temporal)
    code, js, err = cli("evaluate", "--arch", "gemmini_like", "--problem", str(out / layer["problem_file"]),
                        "--mapping", str(out / layer["mapping_file"]), "--json")
    assert code == 0, err
    d = json.loads(js)
    assert d["valid"] and d["cycles"] == layer["cycles"]


@pytest.mark.skipif(not TIMELOOP.is_file(), reason="needs ../shared/timeloop")
def test_live_fresh_records_match(tmp_path):
    """A fresh draw (another seed) on one preset and layer, through timeloop-model and accelmap."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_records", REPO / "tests" / "data" / "presets" / "make_records.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with _quiet():
        groups = mod.generate(seed=12345, n_maps=2, workers=2, presets=("simba_like",),
                              layers=(("resnet18", 1),), log=lambda *a, **k: None)
        tl = mod._bench()
        rows = tl.check_groups(groups, backends=("torch",))
    done = [r for r in rows if "torch" in r]
    assert done and all(not r["torch"]["mismatches"] and r["torch"]["energy_ok"] and r["torch"]["cycles_err"] == 0
                        for r in done)
