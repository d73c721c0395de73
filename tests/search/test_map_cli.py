"""accelmap map: the run directory, its mappings readable by accelmap evaluate, and bad input."""

import json

import pytest


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    from accelmap.workload.workload import conv2d, problem_to_dict
    from accelmap.yamlio import dump_yaml

    p = tmp_path_factory.mktemp("p") / "small_conv.yaml"
    p.write_text(dump_yaml(problem_to_dict(conv2d("small_conv", C=16, K=32, P=14, R=3))))
    return p


def test_map_writes_a_run_that_evaluate_reads_back(cli, tmp_path, problem):
    out = tmp_path / "run"
    code, text, err = cli("map", str(problem), "--arch", "eyeriss_like", "--budget", "6000",
                          "--workers", "1", "--out", str(out), "--seed", "1")
    assert code == 0, err
    assert "small_conv" in text and "gap" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] and s["totals"]["mapped"] == 1 and s["settings"]["seed"] == 1
    layer = s["layers"][0]
    assert layer["evaluations"] <= 6000 and layer["gap_energy"] >= 1 and layer["gap_cycles"] >= 1
    for f in ("energy_by_level.png", "convergence.png", "trials.jsonl"):
        assert (out / f).stat().st_size > 0
    # the written Timeloop mapping evaluates to the same numbers
    code, js, err = cli("evaluate", "--arch", "eyeriss_like", "--problem",
                        str(out / layer["problem_file"]), "--mapping", str(out / layer["mapping_file"]), "--json")
    assert code == 0, err
    d = json.loads(js)
    assert d["valid"] and d["cycles"] == layer["cycles"]
    assert d["energy_pJ"] == pytest.approx(layer["energy_pJ"], rel=1e-9)
    # same seed, same mapping
    out2 = tmp_path / "run2"
    cli("map", str(problem), "--budget", "6000", "--workers", "1", "--out", str(out2), "--seed", "1")
    assert (out2 / "mappings").glob("*.yaml").__next__().read_text() == \
        (out / "mappings").glob("*.yaml").__next__().read_text()


def test_map_on_a_pool_writes_both_plots(cli, tmp_path):
    # with a local pool the plots are drawn by two forked processes; the files must be the same kind
    from accelmap.workload.workload import conv2d, problem_to_dict
    from accelmap.yamlio import dump_yaml

    folder = tmp_path / "net"
    folder.mkdir()
    for name, k in (("a", 16), ("b_with_a_much_longer_layer_name_than_the_first", 32)):
        (folder / f"{name}.yaml").write_text(dump_yaml(problem_to_dict(conv2d(name, C=8, K=k, P=7, R=3))))
    out = tmp_path / "run"
    code, _, err = cli("map", str(folder), "--budget", "2000", "--workers", "2", "--out", str(out))
    assert code == 0, err
    assert not (out / "plots_error.txt").exists()
    for f in ("energy_by_level.png", "convergence.png"):
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_optimizers_listed(cli):
    code, text, _ = cli("optimizers")
    assert code == 0 and all(n in text for n in ("annealing", "genetic", "random", "exhaustive"))


@pytest.mark.parametrize("args, expect", [
    (["map", "alexnet9"], "unknown network 'alexnet9'"),
    (["map", "resnet18", "--arch", "tpu_v9"], "unknown architecture preset 'tpu_v9'"),
    (["map", "resnet18", "--budget", "0"], "budget must be a positive"),
    (["map", "resnet18", "--optimizer", "magic"], "unknown optimizer 'magic'"),
    (["map", "resnet18", "--objective", "speed"], "unknown metric 'speed'"),
])
def test_bad_map_input(cli, args, expect):
    code, _, err = cli(*args)
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("target, expect", [
    ("- {target: accumulator, type: bypass, keep: [Outputs]}", "level 'accumulator'"),
    ("- {target: DRAM, type: temporal, factors: Z=2}", "dimension 'Z'"),
    ("- {target: psum_spad, type: temporal, factors: K=5}", "does not divide"),
    ("- {target: ifmap_spad, type: temporal, factors: R=0}\n  - {target: weights_spad, type: temporal, factors: R=0}",
     "all the rest"),
])
def test_bad_constraints(cli, tmp_path, problem, target, expect):
    c = tmp_path / "c.yaml"
    c.write_text("architecture_constraints:\n  targets:\n  " + target + "\n")
    code, _, err = cli("map", str(problem), "--constraints", str(c), "--budget", "2000",
                       "--workers", "1", "--out", str(tmp_path / "r"))
    assert code == 2 and expect in err and "c.yaml" in err and len(err.strip().splitlines()) == 1


def test_impossible_layer_is_an_error(cli, tmp_path):
    from accelmap.workload.workload import conv2d, problem_to_dict
    from accelmap.yamlio import dump_yaml

    p = tmp_path / "patch.yaml"  # a 16-wide kernel cannot fit eyeriss's 12-word ifmap_spad
    p.write_text(dump_yaml(problem_to_dict(conv2d("patch", C=3, K=768, P=14, R=16, stride=16))))
    code, _, err = cli("map", str(p), "--budget", "3000", "--workers", "1",
                       "--out", str(tmp_path / "r"))
    assert code == 2 and "no legal mapping" in err and "capacity" in err


def test_interrupt_keeps_the_finished_layers(cli, tmp_path, monkeypatch):
    import accelmap.search.network as mapper

    real = mapper.map_layer
    calls = []

    def stop_at_third(*args):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third layer is searched
        return real(*args)

    monkeypatch.setattr(mapper, "map_layer", stop_at_third)
    out = tmp_path / "run"
    code, text, _ = cli("map", "resnet18", "--budget", "3000", "--workers", "1", "--out", str(out))
    s = json.loads((out / "summary.json").read_text())
    assert code == 130 and "interrupted: 2 of 12 layers" in text
    assert not s["complete"] and s["totals"]["layers"] == 2 and len(list((out / "mappings").glob("*.yaml"))) == 2
    # the totals line and the report say the run covers 2 of the network's 12 unique layers
    assert "(2 of 12 unique layers searched)" in " ".join(text.split())
    code, _, err = cli("report", str(out))
    assert code == 0, err
    page = (out / "report.html").read_text()
    assert "2 / 12" in page and "10 more not searched" in page  # said "2 / 2" and "Unmapped layers: none"


def test_map_device_cuda_without_cuda_is_a_clear_error(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code, out, err = cli("map", "resnet18", "--device", "cuda", "--budget", "100")
    assert code == 2 and "CUDA" in err and "Traceback" not in err


@pytest.mark.gpu
def test_map_on_cuda_matches_cpu(tmp_path):
    """A search with the cost model on the GPU reports what the CPU model says of its mappings,
    and finds mappings as good as the CPU search (the two may part ways on rounding)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from accelmap.arch.architecture import preset_constraints
    from accelmap.arch.load import preset
    from accelmap.mapspace.constraints import read_constraints
    from accelmap.model.objective import Objective
    from accelmap.search.network import map_layers
    from accelmap.workload.zoo import get_network

    layers = list(get_network("resnet18").unique_layers())[:3]
    arch = preset("eyeriss_like")
    cons = read_constraints(preset_constraints("eyeriss_like"))
    runs = [map_layers(layers, arch, cons, Objective.parse("edp"), budget=3000, device=d) for d in ("cpu", "cuda")]
    from accelmap.mapping.mapping import parse_mapping
    from accelmap.model.evaluation import evaluate_mapping

    for layer, a, b in zip(layers, *runs):
        ev = evaluate_mapping(layer.workload, arch, parse_mapping(b.mapping_yaml, arch.level_names))
        assert ev.to_dict()["energy_pJ"] == pytest.approx(b.energy_pJ, rel=1e-9)
        assert ev.to_dict()["cycles"] == b.cycles
        assert b.edp <= 1.05 * a.edp
