"""Validity-aware auto-tuning: the VTA knob space and model (hand-computed), the rule model
against the model measurer (exhaustive), tuners (contract over the registry), the log and
resume, the command measurer (failures, timeouts, bad replies) and ``accelmap tune``."""

import json
import math
import sys

import numpy as np
import pytest

from accelmap.arch.load import preset
from accelmap.errors import AccelmapError
from accelmap.testing import check_tuner, drive_tuner
from accelmap.tune.knobs import PackedConv, divisors, knob_space_from_mapping_space, mapping_genomes, vta_conv2d_space
from accelmap.tune.log import TuneLog, read_records
from accelmap.tune.measurer import CommandMeasurer, MeasureResult, ModelMeasurer, TuneTask
from accelmap.tune.tuners import TUNERS, get_tuner
from accelmap.tune.validity import RuleValidity
from accelmap.tune.vta import BUFFER_OVERFLOW, UNSUPPORTED_SPLIT, UOP_OVERFLOW, VALID, simulate
from accelmap.workload.workload import conv2d

ARCH = preset("vta_like")
PROBLEM = """problem:
  shape:
    name: CNN-Layer
    dimensions: [R, S, P, Q, C, K, N]
    coefficients: [{{name: Wstride, default: 1}}, {{name: Hstride, default: 1}}, {{name: Wdilation, default: 1}},
                   {{name: Hdilation, default: 1}}]
    data-spaces:
    - {{name: Weights, projection: [[[C]], [[K]], [[R]], [[S]]]}}
    - {{name: Inputs, projection: [[[N]], [[C]], [[R, Wdilation], [P, Wstride]], [[S, Hdilation], [Q, Hstride]]]}}
    - {{name: Outputs, projection: [[[N]], [[K]], [[Q]], [[P]]], read-write: true}}
  instance: {{R: {R}, S: {R}, P: {P}, Q: {P}, C: {C}, K: {K}, N: 1}}
"""


def problem(tmp_path, name="layer", R=3, P=8, C=32, K=32):
    p = tmp_path / f"{name}.yaml"
    p.write_text(PROBLEM.format(R=R, P=P, C=C, K=K))
    return str(p)


def run_config(conv, **knobs):
    space = vta_conv2d_space(conv)
    cfg = {"tile_b": 1, "oc_nthread": 1, "h_nthread": 1, **knobs}
    pt = space.point_of(cfg)[None]
    return simulate(conv, pt, space), RuleValidity(space, ARCH).reasons(pt)[0]


# ---- the VTA template and model, by hand ---------------------------------------------------

def test_knob_space_size_is_the_product_of_divisor_counts_times_four():
    w = conv2d("l", C=64, K=128, P=14, Q=28, R=3, N=2)
    space = vta_conv2d_space(w)
    assert space.names == ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread")
    # tile_h over the 28 output rows (Q), tile_w over the 14 columns (P), channels in blocks of 16
    assert space.knob("tile_h").options == tuple(divisors(28)) and space.knob("tile_w").options == tuple(divisors(14))
    assert space.size == 2 * 6 * 4 * 3 * 4 * 4 == 2304
    idx = [0, 1, 777, 2303]
    pts = space.points(idx)
    assert space.indices(pts) == idx
    assert [space.indices(space.point_of(c)[None])[0] for c in space.configs(pts)] == idx
    assert space.config(pts[0]) == {k: 1 for k in space.names}  # index 0: every first option


def test_footprints_and_micro_ops_by_hand():
    conv = PackedConv("tiny", 1, 32, 32, 4, 4, 3, 3, 1, 1)  # 2 channel blocks each way, 4x4 output
    r, reason = run_config(conv, tile_h=4, tile_w=4, tile_ci=2, tile_co=2)
    # input tile: 2 blocks x 6 x 6 rows/cols x 16 B; weights 2 x 2 x 3 x 3 x 256 B; acc 2 x 4 x 4 x 64 B
    assert r["inp_bytes"][0] == 2 * 6 * 6 * 16 == 1152
    assert r["wgt_bytes"][0] == 2 * 2 * 9 * 256 == 9216
    assert r["acc_bytes"][0] == 2 * 4 * 4 * 64 == 2048
    # GEMM loops b,ci,w,kw,kh,co,h = 1,2,4,3,3,2,4: ci and w folded -> 3*3*2*4 micro-ops;
    # reset b,w,co,h: w, co folded -> 4; three ALU passes b,co,h,w: co, h folded -> 4 each
    assert r["uops"][0] == 72 + 4 + 3 * 4
    assert r["error"][0] == VALID and reason is None and r["cycles"][0] > conv.macs / 256
    # two threads on co: K/16/tile_co = 1 outer tile cannot be split in two
    r, reason = run_config(conv, tile_h=4, tile_w=4, tile_ci=2, tile_co=2, oc_nthread=2)
    assert r["error"][0] == UNSUPPORTED_SPLIT and reason == "unsupported_split"
    # with tile_co = 1 it can: every tile is held twice
    r, _ = run_config(conv, tile_h=4, tile_w=4, tile_ci=2, tile_co=1, oc_nthread=2)
    assert r["error"][0] == VALID and r["inp_bytes"][0] == 2 * 1152 and r["acc_bytes"][0] == 2 * 1 * 16 * 64


def test_accumulator_dependency_distance_by_hand():
    conv = PackedConv("tiny", 1, 32, 64, 4, 4, 3, 3, 1, 1)
    # 3x3: inside the innermost reduction loop (kh) only co1 x h1 entries are written
    for h, co, ok in ((1, 1, False), (2, 1, False), (1, 2, False), (4, 1, True), (1, 4, True), (2, 2, True)):
        r, reason = run_config(conv, tile_h=h, tile_w=4, tile_ci=1, tile_co=co)
        assert (r["error"][0] == VALID) == ok and (reason is None) == ok, (h, co)
    pw = PackedConv("pw", 1, 32, 32, 4, 4, 1, 1, 1, 1)
    r, _ = run_config(pw, tile_h=1, tile_w=2, tile_ci=2, tile_co=1)  # ci1 innermost reduction: 1*2*1 < 3
    assert r["error"][0] == UNSUPPORTED_SPLIT
    r, _ = run_config(pw, tile_h=1, tile_w=1, tile_ci=1, tile_co=1)  # no reduction inside the region
    assert r["error"][0] == VALID


def test_buffer_and_micro_op_overflow_by_hand():
    conv = PackedConv("big", 1, 256, 256, 14, 14, 3, 3, 1, 1)
    r, reason = run_config(conv, tile_h=14, tile_w=14, tile_ci=16, tile_co=1)  # 16*16*16 = 4096 input entries
    assert r["inp_bytes"][0] == 16 * 16 * 16 * 16 > 32 * 1024
    assert r["error"][0] == BUFFER_OVERFLOW and reason == "buffer_overflow"
    r, _ = run_config(conv, tile_h=2, tile_w=2, tile_ci=8, tile_co=16)  # 8*16*9 = 1152 weight entries > 1024
    assert r["wgt_bytes"][0] == 1152 * 256 and r["error"][0] == BUFFER_OVERFLOW
    # 11x11 kernel, 96 rows, 2 columns, 8 output blocks: GEMM loops w,kw folded -> 11*8*96 = 8448
    # micro-ops, + reset (w, co folded: 96) + 3 ALU passes (co, h folded: 2 each) = 8550 > 8192
    tall = PackedConv("tall", 1, 16, 128, 96, 2, 11, 11, 1, 1)
    r, reason = run_config(tall, tile_h=96, tile_w=2, tile_ci=1, tile_co=8)
    assert r["uops"][0] == 11 * 8 * 96 + 96 + 3 * 2 == 8550
    assert r["acc_bytes"][0] == 8 * 96 * 2 * 64 <= 128 * 1024 and r["inp_bytes"][0] == 106 * 12 * 16 <= 32 * 1024
    assert r["error"][0] == UOP_OVERFLOW and reason == "uop_overflow"


@pytest.mark.parametrize("conv", [
    PackedConv("c3", 1, 64, 64, 14, 14, 3, 3, 1, 1), PackedConv("pw", 1, 512, 128, 28, 28, 1, 1, 1, 1),
    PackedConv("s2", 2, 256, 1024, 7, 7, 1, 1, 2, 2), PackedConv("odd", 4, 32, 48, 6, 10, 3, 5, 2, 1),
    PackedConv("tall", 1, 16, 128, 96, 2, 11, 11, 1, 1), PackedConv("c7", 1, 512, 512, 7, 7, 3, 3, 1, 1)])
def test_rule_model_agrees_with_the_model_measurer_on_every_configuration(conv):
    space = vta_conv2d_space(conv)
    pts = space.enumerate()
    measured = simulate(conv, pts, space)["error"]
    codes = {VALID: None, UNSUPPORTED_SPLIT: "unsupported_split", BUFFER_OVERFLOW: "buffer_overflow",
             UOP_OVERFLOW: "uop_overflow"}
    rules = RuleValidity(space, ARCH)
    assert rules.reasons(pts) == [codes[int(e)] for e in measured]
    assert (rules.predict(pts) == (measured == VALID)).all()
    assert 0 < (measured == VALID).sum() < space.size  # both kinds occur


def test_mapping_space_knobs_decode_to_the_cost_model():
    from accelmap.mapspace.space import MappingSpace

    w = conv2d("fc", C=64, K=32, P=8, Q=1, R=1)
    ms = MappingSpace(w, preset("simple_pe16x16"))
    ks = knob_space_from_mapping_space(ms)
    pts = ks.sample(64, np.random.default_rng(0))
    genomes = mapping_genomes(ks, pts)
    fac = ms.layout.split(genomes)[0]
    assert (fac.prod(2) == np.array(w.bounds)).all()  # every factorization multiplies to the bounds
    res = ModelMeasurer().measure(TuneTask(w, ms.arch, ks), pts)
    c = ms.evaluate(genomes)
    assert [r.valid for r in res] == c.valid.tolist()
    assert [r.runtime for r in res if r.valid] == [float(x) for x, v in zip(c.cycles.tolist(), c.valid.tolist()) if v]


# ---- tuners ----------------------------------------------------------------------------------

def table_task(conv):
    w = conv2d(conv.name, C=conv.C, K=conv.K, P=conv.W, Q=conv.H, R=conv.kw, S=conv.kh, stride=(conv.sw, conv.sh))
    task = TuneTask(w, ARCH, vta_conv2d_space(w))
    res = ModelMeasurer().measure(task, task.space.enumerate())
    return task, res


drive = drive_tuner  # accelmap.testing's driver: a tuner against precomputed results


@pytest.mark.parametrize("tuner", list(TUNERS))
def test_tuner_contract(tuner):
    task, res = table_task(PackedConv("c", 1, 64, 64, 14, 14, 3, 3, 1, 1))
    seq = check_tuner(tuner, task, res, budget=150, batch=32, deterministic_order=tuner == "grid")
    assert len(seq) == 150  # the space is larger than the budget


def test_validity_tuner_never_measures_an_invalid_configuration():
    task, res = table_task(PackedConv("c7", 1, 512, 512, 7, 7, 3, 3, 1, 1))  # 77% invalid
    _, batches = drive("xgb-validity", task, res, budget=128, batch=64)
    assert not any(not res[i].valid for i in batches[0])  # the first batch
    assert all(res[i].valid for b in batches for i in b)
    _, batches = drive("xgb", task, res, budget=64, batch=64)
    assert sum(not res[i].valid for i in batches[0]) > 32  # AutoTVM's random start wastes most of it


def test_validity_tuner_stops_when_the_valid_configurations_run_out():
    task, res = table_task(PackedConv("c7", 1, 512, 512, 7, 7, 3, 3, 1, 1))
    seq, _ = drive("xgb-validity", task, res, budget=1000, batch=64)
    assert len(seq) == sum(r.valid for r in res)


def test_no_valid_point_is_a_clear_error():
    w = conv2d("huge", C=16, K=16, P=2, R=33)  # the smallest weight tile, 33*33 entries, exceeds 1024
    space = vta_conv2d_space(w)
    with pytest.raises(AccelmapError, match="no valid configuration"):
        get_tuner("xgb-validity")(space, 0, 64, RuleValidity(space, ARCH))


# ---- the log -----------------------------------------------------------------------------------

def test_log_ignores_and_repairs_a_truncated_last_line(tmp_path):
    p = tmp_path / "log.jsonl"
    with TuneLog(p) as log:
        for i in range(3):
            log.append({"layer": "l", "config_index": i, "index": i + 1})
    p.write_bytes(p.read_bytes() + b'{"layer": "l", "config_ind')  # killed mid-write
    assert [r["config_index"] for r in read_records(p)] == [0, 1, 2]
    with TuneLog(p) as log:
        log.append({"layer": "l", "config_index": 9, "index": 4})
    lines = p.read_text().splitlines()
    assert [json.loads(x)["config_index"] for x in lines] == [0, 1, 2, 9]
    p.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(AccelmapError, match="line 2"):
        read_records(p)


def records(path):
    return [json.loads(line) for line in open(path)]


def test_cli_run_directory_and_record_contract(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("tune", problem(tmp_path), "--measurements", "70", "--tuner", "xgb", "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["kind"] == "tune" and s["complete"] and s["settings"]["tuner"] == "xgb"
    assert s["settings"]["runtime_unit"] == "cycles"
    lay = s["layers"][0]
    recs = records(out / "records.jsonl")
    assert lay["measurements"] == len(recs) == 70 and lay["invalid"] == sum(r["error"] is not None for r in recs)
    assert [r["index"] for r in recs] == list(range(1, 71))
    best = min((r for r in recs if r["error"] is None), key=lambda r: r["runtime"])
    assert (lay["best_runtime"], lay["best_config"], lay["best_index"]) == (best["runtime"], best["config"], best["index"])
    for r in recs:
        assert {"layer", "tuner", "index", "config", "runtime", "error"} <= set(r)
        assert (r["runtime"] is None) == (r["error"] is not None)
        assert r["error"] in (None, "unsupported_split", "buffer_overflow", "uop_overflow")
    # the same seed gives the same measurements; a second run refuses to overwrite the log
    code, _, err = cli("tune", problem(tmp_path), "--measurements", "70", "--tuner", "xgb", "--out", str(out))
    assert code == 2 and "--resume" in err


def test_killed_run_resumes_without_repeating_or_losing_a_measurement(cli, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    args = ["tune", problem(tmp_path), "--measurements", "150", "--batch-size", "32", "--tuner", "xgb"]
    assert cli(*args, "--out", str(full))[0] == 0
    lines = (full / "records.jsonl").read_text().splitlines(keepends=True)
    part.mkdir()
    # killed in the middle of batch 3, halfway through writing record 71
    (part / "records.jsonl").write_text("".join(lines[:70]) + lines[70][: len(lines[70]) // 2])
    code, _, err = cli(*args, "--out", str(part), "--resume")
    assert code == 0, err
    got = records(part / "records.jsonl")
    assert len(got) == 150 and len({r["config_index"] for r in got}) == 150
    want = records(full / "records.jsonl")
    key = lambda r: (r["index"], r["config_index"], r["runtime"], r["error"])  # noqa: E731
    assert [key(r) for r in got] == [key(r) for r in want]  # the interrupted run, retraced exactly
    s = json.loads((part / "summary.json").read_text())
    assert s["layers"][0]["new_measurements"] == 80 and s["layers"][0]["measurements"] == 150
    # resuming with another tuner is refused
    code, _, err = cli(*args[:-1], "random", "--out", str(part), "--resume")
    assert code == 2 and "tuner" in err


FAKE = r'''#!{python}
import json, sys, time
batch = json.load(sys.stdin)
out = []
for c in batch["configs"]:
    if c["tile_w"] == 1 and c["tile_h"] == 1:
        time.sleep(30)
    if c["tile_w"] == 2:
        out.append({{"error": "runtime_error"}})
    else:
        out.append({{"runtime": 1e-6 * c["tile_h"] * c["tile_w"] + 1e-3 / c["tile_h"] / c["tile_w"]}})
{extra}
json.dump({{"results": out}}, sys.stdout)
'''


def fake(tmp_path, extra="", mode=0o755, name="measure.py"):
    p = tmp_path / name
    p.write_text(FAKE.format(python=sys.executable, extra=extra))
    p.chmod(mode)
    return str(p)


def test_command_measurer_records_failures_and_timeouts_and_goes_on(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("tune", problem(tmp_path, P=4), "--tuner", "grid", "--measurements", "8", "--batch-size", "4",
                       "--timeout", "0.5", "--measurer", f"command:{fake(tmp_path)}", "--out", str(out))
    assert code == 0, err
    recs = records(out / "records.jsonl")
    assert len(recs) == 8 and all(r["unit"] == "seconds" for r in recs)
    codes = {r["config_index"]: r["error"] for r in recs}
    assert codes[0] == "timeout"  # index 0: tile_h = tile_w = 1 sleeps
    assert sum(e == "runtime_error" for e in codes.values()) == sum(r["config"]["tile_w"] == 2 for r in recs) == 3
    assert all(r["runtime"] > 0 for r in recs if r["error"] is None) and any(r["error"] is None for r in recs)


BAD = {
    "not json": ('print("hello")\nsys.exit(0)', "not JSON"),
    "wrong count": ('out = out[:-1]', "results for"),
    "bad entry": ('out[0] = {"runtime": -1}', "result 0"),
    "non-zero exit": ('sys.exit(3)', "exited with code 3"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_replies_are_clear_errors_and_the_log_stays_clean(cli, tmp_path, case):
    extra, expect = BAD[case]
    # the first batch is answered properly, the second badly
    body = f'import os\nflag = {str(tmp_path / "seen")!r}\nif os.path.exists(flag):\n' + \
        "".join(f"    {line}\n" for line in extra.splitlines()) + "open(flag, 'w').close()"
    out = tmp_path / "run"
    code, _, err = cli("tune", problem(tmp_path, P=4), "--tuner", "random", "--measurements", "8", "--batch-size", "4",
                       "--measurer", f"command:{fake(tmp_path, body)}", "--out", str(out))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert expect in err and "measure.py" in err
    recs = records(out / "records.jsonl")  # every line parses
    assert len(recs) == 4 and {r["batch"] for r in recs} == {1}
    s = json.loads((out / "summary.json").read_text())
    assert not s["complete"] and expect in s["error"]


def test_missing_or_non_executable_command(cli, tmp_path):
    code, _, err = cli("tune", problem(tmp_path), "--measurer", f"command:{tmp_path / 'nope.py'}", "--out",
                       str(tmp_path / "a"))
    assert code == 2 and "not found" in err
    path = fake(tmp_path, mode=0o644)
    code, _, err = cli("tune", problem(tmp_path), "--measurer", f"command:{path}", "--out", str(tmp_path / "b"))
    assert code == 2 and "not executable" in err
    with pytest.raises(AccelmapError, match="needs a command"):
        CommandMeasurer(" ")


def test_layer_without_a_valid_configuration_exits_2(cli, tmp_path):
    path = problem(tmp_path, name="huge", R=33, P=2, C=16, K=16)
    code, _, err = cli("tune", path, "--out", str(tmp_path / "run"))
    assert code == 2 and "no valid configuration" in err and "all 16 of its knob space are invalid" in err
    assert read_records(tmp_path / "run" / "records.jsonl") == []


def test_network_skips_layers_vta_cannot_pack(cli, tmp_path):
    out = tmp_path / "run"
    code, outp, err = cli("tune", "resnet18", "--measurements", "3", "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert {x["name"] for x in s["skipped"]} == {"conv1", "fc"}  # 3 input channels, 1000 outputs
    assert len(s["layers"]) == 10 and all(lay["measurements"] == 3 for lay in s["layers"])
    assert len(records(out / "records.jsonl")) == 30


def test_measure_result_is_runtime_or_error():
    assert MeasureResult(1.0).valid and not MeasureResult(None, "timeout").valid
    with pytest.raises(ValueError):
        MeasureResult(None)
    assert math.isfinite(MeasureResult(2.5).runtime)


# ---- stopping short of the budget, and interrupted runs (issue 12, item 8) ---------------------

def test_a_layer_that_runs_out_of_configurations_says_so(cli, tmp_path):
    """3x3, 4x4 output, 32 -> 32 channels: 3 x 3 tile_h/tile_w x 2 x 2 channel tiles x 2 x 2
    threads = 144 configurations, few of them valid (VTA's model measurer, over all of them);
    xgb-validity measures only valid ones, so 40 measurements stop short, and say why."""
    path = problem(tmp_path, P=4)
    task = TuneTask(conv2d("l", C=32, K=32, P=4, R=3), ARCH, vta_conv2d_space(conv2d("l", C=32, K=32, P=4, R=3)))
    valid = sum(r.valid for r in ModelMeasurer().measure(task, task.space.enumerate()))
    assert task.space.size == 144 and 16 < valid < 40
    out = tmp_path / "run"
    code, text, err = cli("tune", path, "--measurements", "40", "--batch-size", "16", "--out", str(out))
    assert code == 0, err
    lay = json.loads((out / "summary.json").read_text())["layers"][0]
    assert lay["measurements"] == valid and lay["complete"] and lay["invalid"] == 0
    assert lay["stopped"].startswith(f"space exhausted: all {valid} configurations the validity rules allow")
    assert f"stopped at {valid} of 40 measurements: space exhausted" in " ".join(text.split())
    # a tuner without rules runs out at the size of the space
    out = tmp_path / "random"
    code, text, err = cli("tune", path, "--tuner", "random", "--measurements", "150", "--out", str(out))
    assert code == 0, err
    lay = json.loads((out / "summary.json").read_text())["layers"][0]
    assert lay["measurements"] == 144 and lay["stopped"] == "space exhausted: all 144 configurations measured"
    assert "stopped at 144 of 150 measurements" in " ".join(text.split())
    # a layer that gets its whole budget says nothing of the kind
    code, text, _ = cli("tune", path, "--tuner", "random", "--measurements", "20", "--out", str(tmp_path / "full"))
    assert code == 0 and "stopped at" not in text
    assert json.loads((tmp_path / "full" / "summary.json").read_text())["layers"][0]["stopped"] is None


def interrupt_after(monkeypatch, layer, index):
    """Ctrl-C right after the log has written record ``index`` of ``layer``."""
    real = TuneLog.append

    def append(self, rec):
        real(self, rec)
        if rec["layer"] == layer and rec["index"] == index:
            raise KeyboardInterrupt

    monkeypatch.setattr(TuneLog, "append", append)


def summary_layers(out):
    return {x["name"]: (x["measurements"], x["new_measurements"], x["complete"])
            for x in json.loads((out / "summary.json").read_text())["layers"]}


def test_interrupted_and_resumed_summaries_hold_every_layer_in_the_log(cli, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["tune", "resnet18", "--tuner", "random", "--measurements", "8", "--batch-size", "4", "--out", str(out)]
    # 1. Ctrl-C just after the second layer's last measurement was logged: all 8 are in the log
    interrupt_after(monkeypatch, "layer2.0.conv1", 8)
    code, text, _ = cli(*args)
    assert code == 130
    assert summary_layers(out) == {"layer1.0.conv1": (8, 8, True), "layer2.0.conv1": (8, 8, True)}
    assert "layer2.0.conv1" in text
    # 2. resumed, and stopped halfway through the third layer
    monkeypatch.undo()
    interrupt_after(monkeypatch, "layer2.0.conv2", 4)
    code, text, _ = cli(*args, "--resume")
    assert code == 130
    assert summary_layers(out) == {"layer1.0.conv1": (8, 0, True), "layer2.0.conv1": (8, 0, True),
                                   "layer2.0.conv2": (4, 4, False)}
    assert "layer2.0.conv2: interrupted at 4 of 8 measurements" in text
    # 3. resumed, and stopped before even the first layer was replayed: the summary still
    # holds the three layers the log has
    monkeypatch.undo()
    real = get_tuner("random").next_batch

    def stop(self, n):
        raise KeyboardInterrupt

    monkeypatch.setattr(get_tuner("random"), "next_batch", stop)
    code, _, _ = cli(*args, "--resume")
    assert code == 130
    assert summary_layers(out) == {"layer1.0.conv1": (8, 0, True), "layer2.0.conv1": (8, 0, True),
                                   "layer2.0.conv2": (4, 0, False)}
    assert len(records(out / "records.jsonl")) == 20
    # 4. and finished: every layer, nothing measured twice
    monkeypatch.setattr(get_tuner("random"), "next_batch", real)
    code, _, err = cli(*args, "--resume")
    assert code == 0, err
    got = summary_layers(out)
    assert len(got) == 10 and all(m == 8 and c for m, _, c in got.values())
    assert got["layer2.0.conv2"] == (8, 4, True) and got["layer1.0.conv1"] == (8, 0, True)
    recs = records(out / "records.jsonl")
    assert len(recs) == 80 and len({(r["layer"], r["config_index"]) for r in recs}) == 80


def test_summary_of_an_interrupted_run_knows_a_layer_that_had_run_out(tmp_path):
    """A layer the earlier run measured to exhaustion (fewer than the budget) counts as complete."""
    from accelmap.tune.driver import make_task, results_from_log

    task = make_task(conv2d("l", C=32, K=32, P=4, R=3), ARCH)
    pts = task.space.enumerate()
    ok = np.nonzero(RuleValidity(task.space, ARCH).predict(pts))[0].tolist()
    recs = [{"layer": "l", "index": i + 1, "config_index": c, "config": {}, "runtime": 1.0 + i, "error": None}
            for i, c in enumerate(ok)]
    n = len(ok)
    (r,) = results_from_log([(task, 1)], [], recs, recs, 40, "xgb-validity")
    assert r.measurements == n and r.complete and r.stopped.startswith(f"space exhausted: all {n} ")
    assert r.best_runtime == 1.0 and r.new_measurements == 0
    (r,) = results_from_log([(task, 1)], [], recs[:-1], recs[:5], 40, "xgb-validity")
    assert r.measurements == n - 1 and not r.complete and r.stopped is None and r.new_measurements == n - 6
