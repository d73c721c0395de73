"""accelmap codesign from the command line: a short run exits 0 with legal mappings only, a
design that cannot map a layer is never written or counted as a result, and a run without
budgets never fails "the budgets"."""

import json
import subprocess
import sys

import pytest

from accelmap.model.evaluation import evaluate_files
from accelmap.workload.workload import conv2d, linear, problem_to_dict
from accelmap.yamlio import dump_yaml

# ifmap_spad between 4 and 12 words around the base's 12: the 7-wide filter row of c7 needs 7
# input words there, so part of the space cannot map c7 (the base can)
SPACE = "base: eyeriss_like\nparameters:\n  ifmap_spad.capacity: {spad}\n  pe_x: [4, 16]\n"
C7 = conv2d("c7", C=4, K=8, P=8, R=7)
FC = linear("fc", in_features=64, out_features=32)


def network(tmp_path, workload):
    """A one-layer network: the layer's problem YAML."""
    p = tmp_path / f"{workload.name}.yaml"
    p.write_text(dump_yaml(problem_to_dict(workload)))
    return p


def space(tmp_path, spad: str):
    p = tmp_path / "space.yaml"
    p.write_text(SPACE.format(spad=spad))
    return p


def check_written_mappings_are_legal(run):
    s = json.loads((run / "summary.json").read_text())
    written = sorted(p.name for p in (run / "mappings").glob("*.yaml"))
    assert written == sorted(r["mapping_file"].split("/")[-1] for r in s["layers"] if r.get("found", True))
    for r in s["layers"]:
        if not r.get("found", True):
            continue
        ev = evaluate_files(str(run / s["architecture"]), str(run / r["problem_file"]), str(run / r["mapping_file"]),
                            str(run / s["ert"]), str(run / s["art"]))
        assert ev.to_dict()["valid"], f"{r['mapping_file']} is not a legal mapping on the design"
    return s


def test_a_short_run_without_budgets_exits_0_with_legal_mappings(tmp_path):
    """The reported failure in small: the real CLI in a fresh process, the default (gradient)
    method, a few seconds and no budgets, in a space where part of the hardware cannot map the
    layer. However far the search gets in that time, the run ends well."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "accelmap.cli", "codesign", str(network(tmp_path, C7)),
                        "--arch-space", str(space(tmp_path, "[4, 12]")), "--seconds", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr + r.stdout and "budget" not in r.stderr
    s = check_written_mappings_are_legal(out)
    assert s["feasible"] and s["totals"]["unmapped_layers"] == 0 and "unmapped" not in s
    assert len(s["layers"]) == 1 and s["layers"][0]["found"]


def test_a_run_cut_short_by_seconds_returns_the_base_design(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("codesign", str(network(tmp_path, FC)), "--arch-space", str(space(tmp_path, "[4, 12]")),
                            "--seconds", "0.001", "--out", str(out))
    assert code == 0, err
    s = check_written_mappings_are_legal(out)
    assert s["feasible"] and s["hardware"] == s["base_hardware"] and s["designs_evaluated"] >= 1


@pytest.fixture(scope="module")
def unmappable_run(tmp_path_factory):
    """No hardware of the space maps c7 (ifmap_spad holds at most 5 words), and no budgets."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from accelmap.cli import main

    tmp = tmp_path_factory.mktemp("unmappable")
    out = tmp / "run"
    argv = ["accelmap", "codesign", str(network(tmp, C7)), "--arch-space", str(space(tmp, "[4, 5]")),
            "--method", "random", "--designs", "2", "--out", str(out)]
    so, se = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = argv
    try:
        with redirect_stdout(so), redirect_stderr(se):
            main()
        code = 0
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.argv = old
    return code, so.getvalue(), se.getvalue(), out


def test_a_design_that_cannot_map_a_layer_is_not_a_result(unmappable_run):
    code, stdout, err, out = unmappable_run
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    # no budget was given: the error says which layer has no legal mapping, not "the budgets"
    assert "budget" not in lines[0] and "no legal mapping" in lines[0] and "c7" in lines[0]
    assert "latency" not in stdout  # no totals printed as if they were a result
    s = json.loads((out / "summary.json").read_text())
    assert not s["feasible"] and s["unmapped"] == ["c7"] and s["totals"]["unmapped_layers"] == 1
    assert s["totals"]["latency_cycles"] == 0 and s["totals"]["energy_pJ"] == 0  # c7 is not counted
    assert s["layers"][0]["found"] is False and "mapping_file" not in s["layers"][0]
    assert not list((out / "mappings").glob("*.yaml"))


def test_the_report_marks_the_unmapped_layer(unmappable_run):
    from accelmap.runs.report import write_report

    out = unmappable_run[3]
    html = write_report(out).read_text()
    assert "no legal mapping" in html and "Not a result" in html
