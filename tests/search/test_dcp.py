"""DCP: codes, the packaged predictor's ranking on a held-out layer, the optimizer's budget,
few-shot fitting, datasets, and clear errors for foreign or broken checkpoints."""

import math
import warnings

import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.predictor.codes import CodeLayout, dataflow_code, layer_code, to_space_code
from accelmap.predictor.model import CostPredictor, default_checkpoint, spearman
from accelmap.search.loop import optimize
from accelmap.workload.workload import batched_matmul, conv2d
from accelmap.workload.zoo import get_network

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
    from accelmap.arch.hardware import Hardware
    from accelmap.predictor.codes import hardware_code

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
    from accelmap.predictor.dataset import few_shot
    from accelmap.predictor.model import finetune
    from accelmap.workload.network import Layer

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
    from accelmap.arch.space import read_hardware_space, resolve_space
    from accelmap.predictor.dataset import generate, load, save
    from accelmap.workload.network import Layer

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


# ---- DCP as the command line runs it: budgets, the predictor's loading, the checkpoint argument ----

def _drive(opt, space):
    """optimize()'s loop without a budget cap of its own: what the optimizer alone decides."""
    evals = 0
    while not opt.finished and evals < 100_000:
        g = opt.ask()
        if len(g):
            s = space.evaluate(g).edp.log()
            s = torch.where(torch.isfinite(s), s, torch.full_like(s, math.inf))
            opt.tell(g, s)
            evals += len(g)
    return evals


def test_dcp_stops_after_its_verification_budget():
    from accelmap.search.dcp import DCP

    sp = MappingSpace(conv2d("c", C=32, K=64, P=14, R=3), EYE, EYE_C)
    # map's 100,000-evaluation default does not become 100,000 evaluations
    res = optimize(sp, "edp", "dcp", 100_000, seed=0, patience=10_000)
    assert res.evaluations == 200
    # a smaller budget caps verification first, then polishing
    opt = DCP(sp, torch.Generator().manual_seed(0), 120, polish=50)
    assert (opt.verify_budget, opt.polish_budget) == (120, 0)
    opt = DCP(sp, torch.Generator().manual_seed(0), 230, polish=50)
    assert (opt.verify_budget, opt.polish_budget) == (200, 30)
    # polishing is asked for and counted apart
    opt = DCP(sp, torch.Generator().manual_seed(0), 100_000, verify=100, polish=300)
    assert _drive(opt, sp) == 400 and (opt.verified_evaluations, opt.polish_evaluations) == (100, 300)
    assert opt.counts()["polish"] == 300 and opt.counts()["verified"] == 100
    # and never sends one mapping to the true model twice
    g = torch.cat([x for x, _ in opt.verified])
    assert len(set(map(tuple, g.tolist()))) == len(g)
    with pytest.raises(AccelmapError, match="verify"):
        DCP(sp, torch.Generator().manual_seed(0), 100, verify=0)


def test_predictor_is_loaded_once_per_process_and_the_checkpoint_is_an_argument(monkeypatch, tmp_path):
    import shutil

    import accelmap.search.dcp as dcp
    from accelmap.search.dcp import DCP

    loads = []
    real = CostPredictor.load
    monkeypatch.setattr(dcp, "_CACHE", {})
    monkeypatch.setattr(CostPredictor, "load", staticmethod(lambda p=None: loads.append(str(p)) or real(p)))
    # no environment variable is read: one naming a broken file changes nothing
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("ACCELMAP_DCP_CHECKPOINT", str(bad))
    spaces = [MappingSpace(conv2d(f"c{k}", C=16 * k, K=32, P=14, R=3), EYE, EYE_C) for k in (1, 2, 3)]
    for sp in spaces:
        DCP(sp, torch.Generator().manual_seed(0), 10)
    assert loads == [str(default_checkpoint())]
    # another checkpoint, passed as an option, is loaded (once) and used
    other = tmp_path / "other.pt"
    shutil.copy(default_checkpoint(), other)
    for sp in spaces:
        opt = DCP(sp, torch.Generator().manual_seed(0), 10, checkpoint=str(other))
        assert opt.model.source == str(other.resolve())
    assert loads == [str(default_checkpoint()), str(other.resolve())]
    res = optimize(spaces[0], "edp", "dcp", 30, seed=0, options={"checkpoint": str(other)})
    assert res.evaluations <= 30 and len(loads) == 2
    with pytest.raises(AccelmapError, match="bad.pt"):
        optimize(spaces[0], "edp", "dcp", 30, seed=0, options={"checkpoint": str(bad)})


def test_row_keys_are_exact():
    from accelmap.search.dcp import row_keys

    g = torch.tensor([[1, 2, 3], [1, 2, 3], [3, 2, 1], [1, 2, 2 ** 40 + 3]])
    k = row_keys(g)
    assert k[0] == k[1] and len({k[0], k[2], k[3]}) == 3


def test_written_out_adam_step_matches_torch_optim():
    from accelmap.search.dcp import _adam_step

    gen = torch.Generator().manual_seed(0)
    target = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    x0 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    a = x0.clone().requires_grad_(True)
    ref = torch.optim.Adam([a], lr=0.1)
    b = x0.clone()
    m, v = torch.zeros_like(b), torch.zeros_like(b)
    for t in range(1, 21):
        loss = ((a - target) ** 3).abs().sum()
        ref.zero_grad()
        loss.backward()
        ref.step()
        bb = b.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(((bb - target) ** 3).abs().sum(), [bb])
        _adam_step(b, g, m, v, t, 0.1)
    assert torch.allclose(a.detach(), b, rtol=1e-12, atol=1e-12)


def test_search_does_not_construct_torch_optim(monkeypatch):
    # torch.optim's constructors import torch._dynamo: seconds in every worker process
    def refuse(*args, **kwargs):
        raise AssertionError("torch.optim used on DCP's search path")

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", refuse)
    sp = MappingSpace(conv2d("c", C=16, K=16, P=8, R=3), EYE, EYE_C)
    assert optimize(sp, "edp", "dcp", 100, seed=0).evaluations <= 100


def test_cli_dcp_budgets(cli, tmp_path):
    import json
    from pathlib import Path

    layer = str(Path(__file__).resolve().parents[2] / "accelmap" / "data" / "examples" / "resnet18_conv1.yaml")

    def evaluations(*args):
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        code, _, err = cli(*args, layer, "--workers", "1", "--out", str(out))
        assert code == 0, err
        s = json.loads((out / "summary.json").read_text())
        return s["layers"][0]["evaluations"], s["settings"]

    # map --optimizer dcp: the default 100,000-evaluation budget stops at DCP's 200 verifications
    n, _ = evaluations("map", "--optimizer", "dcp")
    assert n == 200
    # dcp search: --budget verifications, then --polish more true evaluations, recorded as options
    n, settings = evaluations("dcp", "search", "--budget", "40", "--polish", "30")
    assert n == 70 and settings["options"] == {"verify": 40, "polish": 30}
    code, _, err = cli("dcp", "search", layer, "--polish", "-1")
    assert code == 2 and "polish" in err and len(err.strip().splitlines()) == 1


def test_pool_workers_run_torch_on_one_thread():
    # two workers on two cores: a worker's own intra-op threads would only fight the other's
    from accelmap.search.executor import PoolExecutor

    got = PoolExecutor(2).run(torch.get_num_threads, [(), (), ()])
    assert sorted(got) == [0, 1, 2] and set(got.values()) == {1}


def test_folded_first_layer_predicts_as_the_model(model):
    from accelmap.search.dcp import DCP

    sp = MappingSpace(conv2d("c", C=32, K=64, P=14, R=3), EYE, EYE_C)
    opt = DCP(sp, torch.Generator().manual_seed(0), 10)
    df = dataflow_code(sp, sp.sample(256, torch.Generator().manual_seed(1)), opt.layout)
    with torch.no_grad():
        assert torch.allclose(opt._model(df), opt.model(opt.lc, opt.hc, df), rtol=1e-4, atol=1e-4)
