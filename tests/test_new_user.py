"""What a new user met on a fresh clone (issue 12): each case runs the real CLI and failed before
its fix (a traceback, a lost search, a silent misreading)."""

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = str(REPO / "accelmap" / "data" / "examples" / "resnet18_conv1.yaml")
PRESETS = REPO / "accelmap" / "data" / "presets"


def _one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_dcp_search_runs_from_the_command_line(cli, tmp_path):
    # crashed with AttributeError: 'OptionInfo' object has no attribute 'startswith'
    code, out, err = cli("dcp", "search", LAYER, "--budget", "20", "--workers", "1", "--out", str(tmp_path / "run"))
    assert code == 0, err
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["kind"] == "map" and s["settings"]["optimizer"] == "dcp" and s["layers"][0]["found"]


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_out_is_checked_before_the_search(cli, tmp_path, where):
    f = tmp_path / "taken"
    f.write_text("not a directory")
    out = f if where == "file" else f / "run"
    code, stdout, err = cli("map", "resnet18", "--out", str(out))
    _one_line_error(code, err, "--out", str(out) if where == "file" else str(out))
    assert "mapping" not in stdout  # no search ran
    assert f.read_text() == "not a directory"


def test_binary_file_given_as_yaml(cli, tmp_path):
    b = tmp_path / "binary.yaml"
    b.write_bytes(bytes(range(256)) * 8)
    for args in (["map", str(b)], ["evaluate", "--arch", str(b)], ["evaluate", "--problem", str(b)],
                 ["evaluate", "--mapping", str(b)], ["map", "resnet18", "--constraints", str(b)]):
        code, _, err = cli(*args)
        _one_line_error(code, err, "binary.yaml", "not a text file")


def test_technology_set_me_is_a_clear_error(cli, tmp_path):
    a = tmp_path / "arch.yaml"
    a.write_text((PRESETS / "simple_pe16x16.yaml").read_text().replace("technology: 45nm", "technology: SET ME", 1))
    assert "SET ME" in a.read_text()
    code, _, err = cli("evaluate", "--arch", str(a), "--problem", LAYER, "--mapping", "none.yaml")
    _one_line_error(code, err, "arch.yaml", "technology", "SET ME")


def test_bypass_list_holding_a_dict(cli, tmp_path):
    c = tmp_path / "cons.yaml"
    c.write_text("architecture_constraints:\n  targets:\n  - target: RegFile\n    type: bypass\n"
                 "    bypass: [{Weights: true}]\n")
    code, _, err = cli("map", LAYER, "--arch", "simple_pe16x16", "--constraints", str(c), "--budget", "10")
    _one_line_error(code, err, "cons.yaml", "bypass", "tensor names")


@pytest.mark.parametrize("density,ok", [("0.5", False), ("{Weights: 0.25}", False), ("{Weights: 1.0}", True)])
def test_densities_are_not_ignored(cli, tmp_path, density, ok):
    p = tmp_path / "p.yaml"
    text = Path(LAYER).read_text()
    assert "  instance: {R: 7," in text
    p.write_text(text.replace("  instance: {R: 7,", f"  instance: {{densities: {density}, R: 7,"))
    code, _, err = cli("evaluate", "--problem", str(p), "--json")
    if ok:
        assert code == 0, err  # density 1 is dense: read as written
    else:
        _one_line_error(code, err, "p.yaml", "densities", "not modelled")


def test_unmapped_layers_are_named_beside_partial_totals(cli, tmp_path):
    # vit_b16's patch embedding has no legal mapping on eyeriss_like under its constraints
    code, out, err = cli("map", "vit_b16", "--budget", "100", "--patience", "0", "--out", str(tmp_path / "run"))
    assert code == 0, err
    flat = " ".join(out.split())
    assert "partial totals" in flat and "conv_proj" in flat
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    conv = next(r for r in s["layers"] if r["name"] == "conv_proj")
    assert s["totals"]["partial"] and s["totals"]["unmapped"] == ["conv_proj"]
    assert s["totals"]["unmapped_macs"] == conv["macs"] * conv["count"]
    assert f"{(s['totals']['macs'] + s['totals']['unmapped_macs']) / 1e9:.3f} GMACs" in flat


def test_compile_is_its_own_step(cli, tmp_path, monkeypatch):
    """The one-off compile (kernel and moves) is shown on its own, before the layers' searches start."""
    from accelmap.search import compile as search_compile

    calls = []
    monkeypatch.setattr(search_compile, "needs_compile", lambda *args: not calls)
    monkeypatch.setattr(search_compile, "compile_search", lambda *args: calls.append(1) or 12.0)
    code, out, err = cli("map", LAYER, "--budget", "50", "--workers", "1", "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert calls == [1] and "compiled the cost kernel and search moves in 12 s" in out



def test_evaluate_needs_no_compiled_kernel():
    """One mapping's link transfers run as plain Python in the kernel's routine: accelmap evaluate
    neither compiles the kernel nor loads numba, and gives Timeloop's numbers."""
    import subprocess
    import sys

    code = ("import sys; from accelmap.model.evaluation import evaluate_files; e = evaluate_files(); "
            "print(int(e.costs.cycles[0]), round(float(e.costs.energy[0]) / 1e6, 2), 'numba' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1053696", "987.82", "False"]  # Timeloop: 1,053,696 cycles, 987.82 uJ


def test_kernel_compiles_one_signature_whatever_the_integer_widths():
    import torch

    from accelmap.arch.load import preset
    from accelmap.mapspace.constraints import Constraints
    from accelmap.mapspace.space import MappingSpace
    from accelmap.model import kernel
    from accelmap.workload.workload import conv2d

    if not kernel.HAVE_NUMBA:
        pytest.skip("numba not installed")
    space = MappingSpace(conv2d("t", C=8, K=8, P=4), preset("simple_pe16x16"), Constraints())
    batch = space.decode(space.sample(3, torch.Generator().manual_seed(0)))
    plan = space.model.kernel_plan(space.model.hw)
    a = lambda x, dt: np.ascontiguousarray(x.numpy().astype(dt))  # noqa: E731
    first = kernel.evaluate(plan, a(batch.temporal, np.int32), a(batch.spatial, np.int32), a(batch.order, np.int8),
                            a(batch.spatial_order, np.int8), a(batch.keep, np.bool_))
    wide = kernel.evaluate(plan, a(batch.temporal, np.int64), a(batch.spatial, np.int64), a(batch.order, np.int64),
                           a(batch.spatial_order, np.int64), a(batch.keep, np.bool_))
    assert np.array_equal(first["energy"], wide["energy"]) and np.array_equal(first["cycles"], wide["cycles"])
    assert len(kernel._evaluate_batch_serial.signatures) == 1 and len(kernel._evaluate_batch.signatures) <= 1


def test_an_optimizer_that_proposes_nothing_ends_the_search():
    """An ask() that returns no mapping and never sets `finished` used to loop forever (no time
    limit, no budget spent)."""
    import torch

    from accelmap.arch.load import preset
    from accelmap.mapspace.constraints import Constraints
    from accelmap.mapspace.space import MappingSpace
    from accelmap.search.base import OPTIMIZERS, Optimizer
    from accelmap.search.loop import optimize
    from accelmap.workload.workload import conv2d

    class Mute(Optimizer):
        name = "mute-test"
        summary = "proposes nothing"

        def ask(self):
            return torch.empty(0, self.space.layout.size, dtype=torch.int64)

        def tell(self, genomes, scores):
            raise AssertionError("nothing was asked")

    with OPTIMIZERS.registered(Mute):
        space = MappingSpace(conv2d("t", C=4, K=4, P=4), preset("simple_pe16x16"), Constraints())
        res = optimize(space, "edp", "mute-test", budget=1000)
    assert res.evaluations == 0 and res.mapping is None


def test_an_unknown_optimizer_option_is_a_clear_error():
    from accelmap.arch.load import preset
    from accelmap.errors import AccelmapError
    from accelmap.mapspace.constraints import Constraints
    from accelmap.mapspace.space import MappingSpace
    from accelmap.search.loop import optimize
    from accelmap.workload.workload import conv2d

    space = MappingSpace(conv2d("t", C=4, K=4, P=4), preset("simple_pe16x16"), Constraints())
    with pytest.raises(AccelmapError, match="takes no option 'checkpoint'"):
        optimize(space, "edp", "annealing", budget=100, options={"checkpoint": "p.pt"})
