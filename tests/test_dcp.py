"""DCP: codes, the packaged predictor's ranking on a held-out layer, the optimizer's budget,
few-shot fitting, datasets, and clear errors for foreign or broken checkpoints."""

import math
import warnings

import pytest
import torch

from accelmap.architecture import preset, preset_constraints
from accelmap.codes import CodeLayout, dataflow_code, layer_code, to_space_code
from accelmap.constraints import read_constraints
from accelmap.errors import AccelmapError
from accelmap.predictor import CostPredictor, default_checkpoint, spearman
from accelmap.search import optimize
from accelmap.space import MappingSpace
from accelmap.workload import batched_matmul, conv2d
from accelmap.zoo import get_network

EYE = preset("eyeriss_like")
EYE_C = read_constraints(preset_constraints("eyeriss_like"))


@pytest.fixture(scope="module")
def model():
    return CostPredictor.load(default_checkpoint())


def test_layer_code_by_hand():
    w = conv2d("c1", C=3, K=64, P=112, R=7, stride=2)
    layout = CodeLayout(tuple(EYE.level_names), (1,))
    code = layer_code(w, layout).tolist()
    # R S P Q C K N G, then Wstride Hstride Wdilation Hdilation, then kind one-hot (conv first)
    assert code[:8] == pytest.approx([math.log2(7), math.log2(7), math.log2(112), math.log2(112), math.log2(3), 6, 0, 0])
    assert code[8:12] == [1, 1, 0, 0] and code[12:] == [1, 0, 0, 0, 0]


@pytest.mark.parametrize("w", [conv2d("c", C=32, K=64, P=14, R=3), batched_matmul("b", batch=12, M=197, K=64, N=197)])
def test_dataflow_codes_place_and_unplace(w):
    sp = MappingSpace(w, EYE, EYE_C)
    layout = CodeLayout.of(sp)
    g = sp.sample(64, torch.Generator().manual_seed(0))
    code = dataflow_code(sp, g, layout)
    assert code.shape == (64, layout.dataflow_size)
    back = to_space_code(sp, code, layout)
    assert torch.allclose(back, sp.to_code(g).double(), atol=1e-6)
    assert torch.equal(sp.from_code(back), sp.from_code(sp.to_code(g)))


def test_packaged_predictor_ranks_a_held_out_layer(model):
    held = [(v["kind"], tuple(sorted(v["bounds"].items()))) for v in model.meta["val_layers"]]
    layer = next(layer for n in ("resnet50", "mobilenet_v2", "resnet18") for layer in get_network(n).unique_layers()
                 if (layer.workload.kind, tuple(sorted(zip(layer.workload.dims, layer.workload.bounds)))) in held)
    sp = MappingSpace(layer.workload, EYE, EYE_C)
    g = sp.sample_legal(600, torch.Generator().manual_seed(1))
    c = sp.evaluate(g)
    from accelmap.codes import hardware_code
    from accelmap.cost_model import Hardware

    with torch.no_grad():
        p = model(layer_code(layer.workload, model.layout), hardware_code(Hardware.from_arch(EYE)),
                  dataflow_code(sp, g, model.layout)).sum(1)
    assert spearman(p, torch.log(c.energy * c.cycles)) >= 0.85


def test_dcp_spends_at_most_its_budget_and_beats_random(model):
    sp = MappingSpace(conv2d("c", C=64, K=128, P=28, R=3), EYE, EYE_C)
    d = optimize(sp, "edp", "dcp", 200, seed=0)
    assert d.evaluations <= 200 and bool(d.costs.valid[0])
    r = optimize(sp, "edp", "random", 200, seed=0)
    assert d.score < r.score


def test_other_code_layout_is_refused(model):
    sp = MappingSpace(conv2d("c", C=16, K=16, P=8, R=3), preset("simple_pe16x16"))
    with pytest.raises(AccelmapError, match="trained for levels"):
        optimize(sp, "edp", "dcp", 50, seed=0)


def test_hardware_outside_training_ranges_warns(model):
    big = EYE.with_level("shared_glb", capacity=4 * 1024 * 1024)
    sp = MappingSpace(conv2d("c", C=16, K=16, P=8, R=3), big, EYE_C)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        optimize(sp, "edp", "dcp", 50, seed=0)
    assert any("outside the predictor's training ranges" in str(x.message) for x in w)


def test_broken_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(AccelmapError, match="not a readable predictor checkpoint"):
        CostPredictor.load(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(AccelmapError, match="not an accelmap DCP predictor"):
        CostPredictor.load(foreign)


def test_cli_search_with_a_broken_checkpoint_is_one_line(cli, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    code, out, err = cli("dcp", "search", "resnet18", "--checkpoint", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "bad.pt" in err


def test_finetune_fits_the_few_shot_samples(model):
    from accelmap.dcp_data import few_shot
    from accelmap.network import Layer
    from accelmap.predictor import finetune

    arch = EYE.with_level("shared_glb", capacity=16384)
    layers = [Layer(conv2d(f"c{k}", C=32 * k, K=64, P=14, R=3)) for k in (1, 2, 4, 8)]
    fs = few_shot(layers, arch, EYE_C, model, 20, seed=0)
    assert fs["evaluations"] <= 20 and len(fs["y"]) == fs["evaluations"]
    before = (model(fs["layer"], fs["hw"], fs["codes"]) - fs["y"]).abs().mean()
    new = finetune(model, fs["layer"], fs["hw"], fs["codes"], fs["y"], fs["anchor_layer"], fs["anchor_codes"],
                   steps=100)
    after = (new(fs["layer"], fs["hw"], fs["codes"]) - fs["y"]).abs().mean()
    assert after < before


def test_dataset_round_trip_and_tiny_training(tmp_path, cli):
    from accelmap.dcp_data import generate, load, save
    from accelmap.hardware_space import read_hardware_space, resolve_space
    from accelmap.network import Layer

    hs = read_hardware_space(resolve_space("eyeriss_edge"))
    layers = [Layer(conv2d("a", C=32, K=64, P=14, R=3)), Layer(conv2d("b", C=64, K=32, P=7, R=1)),
              Layer(conv2d("c", C=16, K=16, P=28, R=3))]
    d = generate(layers, hs, EYE_C, hardware=3, per_layer=2, random=256, walk=256, seed=0)
    save(d, tmp_path / "d.npz", {"seed": 0})
    back = load(tmp_path / "d.npz")
    assert back["manifest"]["rows"] == len(d["y"]) == len(back["codes"]) and back["layout"] == d["layout"]
    assert (back["y"] >= -1e-6).all()  # costs never beat their lower bounds
    code, out, err = cli("dcp", "train", str(tmp_path / "d.npz"), "--epochs", "1", "--val-frac", "0.34",
                         "--out", str(tmp_path / "p.pt"))
    assert code == 0, err
    m = CostPredictor.load(tmp_path / "p.pt")
    assert m.layout == d["layout"] and "report" in m.meta
    (tmp_path / "broken.npz").write_bytes(b"xx")
    (tmp_path / "broken.json").write_text("{}")
    code, out, err = cli("dcp", "train", str(tmp_path / "broken.npz"))
    assert code == 2 and "broken.npz" in err
