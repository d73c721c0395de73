"""CLI behaviour: the default evaluation, JSON output, and one clear line (exit 2) per bad input."""

import json

import pytest

from accelmap.model.evaluation import DEFAULT_MAPPING, DEFAULT_PROBLEM, example_path


def test_default_evaluation_matches_timeloop(cli, ref):
    code, out, _ = cli("evaluate", "--json")
    assert code == 0
    d = json.loads(out)
    rec = next(json.loads(line) for line in open(ref / "records/eyeriss_like.jsonl")
               if '"mapper_best"' in line and "resnet18_conv1" in line)
    assert d["cycles"] == rec["summary"]["cycles_exact"]
    assert d["energy_pJ"] == pytest.approx(rec["summary"]["energy_pJ"], rel=1e-6)
    assert d["valid"] is True and d["utilization"] == pytest.approx(2 / 3)
    assert set(d["energy_pJ_by_component"]) == {"DRAM", "shared_glb", "ifmap_spad", "weights_spad", "psum_spad", "mac"}
    for key in ("edp", "area_um2"):
        assert d[key] > 0


def test_readable_breakdown(cli):
    code, out, _ = cli("evaluate")
    assert code == 0 and "shared_glb" in out and "987.82 uJ" in out


def _problem_text():
    return example_path(DEFAULT_PROBLEM).read_text()


def _mapping_text():
    return example_path(DEFAULT_MAPPING).read_text()


BAD_CASES = {
    "missing file": (None, None, "file not found"),
    "yaml syntax": ("problem:\n  shape: [unclosed\n", None, "YAML syntax error"),
    "missing field": ("problem:\n  shape: {dimensions: [R]}\n", None, "problem.instance"),
    "zero size": ("P: 112", "P: 0", "problem.instance.P"),
    "negative size": ("K: 64", "K: -64", "problem.instance.K"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_problem(cli, tmp_path, case):
    a, b, expect = BAD_CASES[case]
    p = tmp_path / "p.yaml"
    if a is not None:
        p.write_text(a if b is None else _problem_text().replace(a, b))
    code, out, err = cli("evaluate", "--problem", str(p))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expect in err and "p.yaml" in err


MAP_CASES = {
    "unknown dimension": ("R=1 S=1 P=16", "R=1 Z=1 S=1 P=16", "unknown dimension 'Z'"),
    "unknown tensor": ("  - Inputs\n  - Outputs\n  bypass: []", "  - Inputs\n  - Psums\n  bypass: []",
                       "unknown tensor 'Psums'"),
    "bad product": ("P=16 Q=7", "P=8 Q=7", "factors of P multiply to 56, expected the bound 112"),
    "unknown level": ("target: psum_spad", "target: accumulator", "unknown level 'accumulator'"),
}


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_bad_mapping(cli, tmp_path, case):
    a, b, expect = MAP_CASES[case]
    text = _mapping_text()
    assert a in text
    m = tmp_path / "m.yaml"
    m.write_text(text.replace(a, b, 1))
    code, out, err = cli("evaluate", "--mapping", str(m))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert expect in err and "m.yaml" in err


def test_arch_without_compute_unit(cli, tmp_path):
    from accelmap.arch.architecture import preset_files

    text = preset_files("simple_pe16x16")[0].read_text()
    cut = text[: text.index("              - name: mac")]
    a = tmp_path / "a.yaml"
    a.write_text(cut)
    code, out, err = cli("evaluate", "--arch", str(a))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no compute unit" in err and "a.yaml" in err and "architecture.subtree" in err


def test_unknown_preset_and_network(cli):
    code, _, err = cli("evaluate", "--arch", "tpu_v9")
    assert code == 2 and "unknown architecture preset 'tpu_v9'" in err
    code, _, err = cli("zoo", "show", "alexnet9")
    assert code == 2 and "unknown network 'alexnet9'" in err


def test_zoo_and_presets_list(cli):
    code, out, _ = cli("zoo")
    assert code == 0 and "resnet50" in out and "bert_base" in out
    code, out, _ = cli("zoo", "show", "resnet18")
    assert code == 0 and "layer1.0.conv1" in out and "115,605,504" in out
    code, out, _ = cli("presets")
    assert code == 0 and "eyeriss_like" in out and "simple_pe16x16" in out
