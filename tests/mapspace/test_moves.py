"""The compiled neighbourhood moves are the tensor code's moves, draw for draw."""

import pytest
import torch

from accelmap.arch.architecture import preset_constraints
from accelmap.arch.load import preset
from accelmap.mapspace import moves
from accelmap.mapspace.constraints import Constraints, read_constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.workload.workload import conv2d, linear

pytestmark = pytest.mark.skipif(not moves.HAVE_NUMBA, reason="numba is not installed")


def _spaces():
    conv = conv2d("c", C=64, K=96, P=28, R=3, stride=2)
    dw = conv2d("dw", C=32, K=32, P=56, R=3, groups=32)
    lin = linear("l", in_features=192, out_features=320, tokens=197)  # (197 tokens: prime, residual ends)
    for name in ("eyeriss_like", "simple_pe16x16", "simba_like", "tpu_like", "gemmini_like"):
        arch = preset(name)
        for w in (conv, dw, lin):
            for cons in (Constraints(), read_constraints(preset_constraints(name))):
                for imperfect in (False, True):
                    try:
                        yield f"{name}-{w.name}-{imperfect}", MappingSpace(w, arch, cons, imperfect=imperfect)
                    except Exception:  # noqa: BLE001 - a layer a preset's dataflow cannot take
                        continue


SPACES = dict(_spaces())


def _both(monkeypatch, fn):
    """fn() with the compiled moves, then with the tensor code; both from the same seed."""
    fast = fn()
    monkeypatch.setattr(moves, "HAVE_NUMBA", False)
    slow = fn()
    monkeypatch.setattr(moves, "HAVE_NUMBA", True)
    return fast, slow


@pytest.mark.parametrize("key", sorted(SPACES))
def test_compiled_moves_equal_tensor_moves(key, monkeypatch):
    space = SPACES[key]
    g = space.sample(600, torch.Generator().manual_seed(1))

    def walk():
        gen = torch.Generator().manual_seed(7)
        x, outs = g, []
        for _ in range(6):  # chains of moves reach states a single move from a draw does not
            x = space.neighbours(x, gen)
            outs.append(x)
        outs.append(space.crossover(x, g, gen))
        outs.append(space.refill_meshes(g, gen))
        return torch.cat(outs)

    fast, slow = _both(monkeypatch, walk)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast[: len(g)], g)  # the moves moved something


def test_compiled_axis_repair_equals_tensor_repair(monkeypatch):
    """Overflowing meshes with ties between factors, on fixed and free axes."""
    space = SPACES[next(k for k in SPACES if k.startswith("simba_like") and k.endswith("False"))]
    lay = space.layout
    gen = torch.Generator().manual_seed(3)
    g = space.sample(4000, gen)
    fac, _, axis, _ = lay.split(g)
    for f in range(lay.F):  # random spatial factors, many of them over the mesh
        fac[:, :, lay.L + f] = torch.tensor([1, 2, 2, 4, 8])[torch.randint(0, 5, (len(g), lay.D), generator=gen)]
    axis.copy_(torch.randint(0, 2, axis.shape, generator=gen))

    def repair():
        out = g.clone()
        f, _, a, _ = lay.split(out)
        space._repair_axes(f, a)
        return out

    fast, slow = _both(monkeypatch, repair)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, g)


@pytest.mark.parametrize("key", [k for k in sorted(SPACES) if k.endswith("False")])
def test_compiled_decode_equals_tensor_decode(key, monkeypatch):
    space = SPACES[key]
    g = space.sample(300, torch.Generator().manual_seed(2))
    fast, slow = _both(monkeypatch, lambda: space.decode(g))
    for name in ("temporal", "spatial", "order", "keep", "spatial_order"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name


def test_compiled_ranks_are_torchs_double_argsort():
    """With ties (integer keys), as torch's stable sort of short rows orders them."""
    x = torch.randint(0, 4, (500, 5, 7), generator=torch.Generator().manual_seed(4)).float()
    out = torch.empty(500, 5, 7, dtype=torch.int64)
    moves.use()
    moves._ranks(x.numpy(), out.numpy())
    assert torch.equal(out, torch.argsort(torch.argsort(x, dim=-1), dim=-1))


@pytest.mark.parametrize("key", sorted(SPACES)[::3])
def test_compiled_outward_seeding_equals_tensor_seeding(key, monkeypatch):
    from accelmap.search.base import outward_sample

    space = SPACES[key]
    fast, slow = _both(monkeypatch, lambda: outward_sample(space, 500, torch.Generator().manual_seed(5)))
    assert torch.equal(fast, slow)
