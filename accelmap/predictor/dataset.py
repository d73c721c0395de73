"""DCP training data: legal mappings of zoo layers on a family of hardware points, with their
true costs from the batched model.

Each (layer, hardware) pair contributes random legal mappings (the space as a whole) and the
mappings a short parallel local search visits from the best of them (the good region, which
random samples almost never reach and a search-oriented predictor must rank well). Targets are
log(cycles / cycle bound) and log(energy / energy bound) with the bounds of
:func:`accelmap.mapspace.bounds.lower_bound` (``box=True``: whole tensor boxes, the normalization the packaged predictor was trained with), so the predictor learns mapping efficiency rather than
layer size. Stored as one ``.npz`` plus a JSON manifest (seed, layers, hardware, counts).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from accelmap.arch.space import HardwareSpace
from accelmap.errors import AccelmapError
from accelmap.mapspace.bounds import lower_bound
from accelmap.mapspace.constraints import Constraints
from accelmap.mapspace.space import MappingSpace
from accelmap.predictor.codes import CodeLayout, dataflow_code, hardware_code, layer_code
from accelmap.workload.network import Layer

# A hardware point kept out of training for zero/few-shot transfer (eyeriss_edge names).
HELDOUT_HARDWARE = {"pe_x": 16, "pe_y": 16, "shared_glb.capacity": 32768, "ifmap_spad.capacity": 16,
                    "weights_spad.capacity": 96, "psum_spad.capacity": 24}
NETWORKS = ("resnet18", "resnet50", "mobilenet_v2", "vit_b16", "vgg16", "bert_base")


@dataclass(frozen=True)
class PairData:
    codes: torch.Tensor  # [N, C_m] dataflow codes
    genomes: torch.Tensor  # [N, G]
    log_cycles: torch.Tensor  # [N] log(cycles / bound)
    log_energy: torch.Tensor  # [N]


def pair_samples(space: MappingSpace, layout: CodeLayout, constraints: Constraints, random: int, walk: int,
                 gen: torch.Generator) -> PairData | None:
    """``random`` legal samples plus up to ``walk`` legal points of a local search from the best
    of them; None when the pair has no legal mapping."""
    try:
        g = space.sample_legal(random, gen, max_draws=200_000)
    except AccelmapError:
        return None
    c = space.evaluate(g)
    edp = c.energy * c.cycles
    pool = g[torch.argsort(edp)[:32]]
    seen = [g]
    steps = max(1, walk // (len(pool) * 8))
    for _ in range(steps):
        nb = space.neighbours(pool.repeat(8, 1), gen)
        cn = space.evaluate(nb)
        ok = cn.valid
        seen.append(nb[ok])
        s = torch.where(ok, cn.energy * cn.cycles, torch.full_like(cn.energy, math.inf)).view(8, len(pool))
        best, arg = s.min(0)
        cur = space.evaluate(pool)
        better = best < cur.energy * cur.cycles
        pick = nb.view(8, len(pool), -1)[arg, torch.arange(len(pool))]
        pool = torch.where(better[:, None], pick, pool)
    genomes = torch.unique(torch.cat(seen), dim=0)
    c = space.evaluate(genomes)
    b = lower_bound(space.workload, space.arch, constraints, box=True)
    return PairData(dataflow_code(space, genomes, layout), genomes, torch.log(c.cycles / b.cycles).float(),
                    torch.log(c.energy / b.energy_pJ).float())


def generate(layers: list[Layer], hw_space: HardwareSpace, constraints: Constraints, hardware: int, per_layer: int,
             random: int, walk: int, seed: int, progress: Callable[[int, int], None] | None = None) -> dict:
    """Arrays for training: each layer on the base hardware and ``per_layer - 1`` points drawn
    from ``hardware`` random points of the space (the held-out point excluded)."""
    gen = torch.Generator().manual_seed(seed)
    names = hw_space.names
    lo = torch.tensor([p.low for p in hw_space.parameters], dtype=torch.float64)
    hi = torch.tensor([p.high for p in hw_space.parameters], dtype=torch.float64)
    pts = [hw_space.base_values()]
    held = torch.tensor([HELDOUT_HARDWARE.get(n, float("nan")) for n in names], dtype=torch.float64)
    while len(pts) < hardware:
        u = torch.rand(len(names), generator=gen, dtype=torch.float64)
        v = torch.exp(torch.log(lo) + u * (torch.log(hi) - torch.log(lo)))
        v = torch.where(torch.tensor([p.integer for p in hw_space.parameters]), torch.round(v), v)
        if not torch.allclose(v, held):
            pts.append(v)
    archs = [hw_space.architecture(v) for v in pts]
    probe = MappingSpace(layers[0].workload, archs[0], constraints)
    layout = CodeLayout.of(probe)
    hw_codes = torch.stack([hardware_code(hw_space.hardware(v)) for v in pts])
    layer_codes = torch.stack([layer_code(layer.workload, layout) for layer in layers])
    rows_code, rows_y, rows_pair, pairs = [], [], [], []
    total = len(layers) * per_layer
    for li, layer in enumerate(layers):
        choice = [0] + (torch.randperm(len(pts) - 1, generator=gen)[: per_layer - 1] + 1).tolist()
        for hi_ in choice:
            space = MappingSpace(layer.workload, archs[hi_], constraints)
            d = pair_samples(space, layout, constraints, random, walk, gen)
            if d is not None:
                rows_code.append(d.codes.half())
                rows_y.append(torch.stack([d.log_cycles, d.log_energy], 1))
                rows_pair.append(torch.full((len(d.codes),), len(pairs), dtype=torch.int32))
                pairs.append((li, hi_))
            if progress:
                progress(li * per_layer + choice.index(hi_) + 1, total)
    return {"layout": layout, "layer_codes": layer_codes, "hw_codes": hw_codes,
            "pairs": torch.tensor(pairs, dtype=torch.int32), "row_pair": torch.cat(rows_pair),
            "codes": torch.cat(rows_code), "y": torch.cat(rows_y),
            "layers": [{"name": layer.workload.name, "kind": layer.workload.kind,
                        "bounds": dict(zip(layer.workload.dims, layer.workload.bounds))} for layer in layers],
            "hardware": [dict(zip(names, v.tolist())) for v in pts]}


def save(data: dict, path: Path, manifest: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, layer_codes=data["layer_codes"].numpy(), hw_codes=data["hw_codes"].numpy(),
                        pairs=data["pairs"].numpy(), row_pair=data["row_pair"].numpy(), codes=data["codes"].numpy(),
                        y=data["y"].numpy())
    manifest = dict(manifest, layout=data["layout"].to_dict(), layers=data["layers"], hardware=data["hardware"],
                    rows=int(len(data["y"])), pairs=int(len(data["pairs"])), file=path.name)
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=1))


def load(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise AccelmapError("dataset not found", file=str(path))
    try:
        z = np.load(path, allow_pickle=False)
        manifest = json.loads(path.with_suffix(".json").read_text())
        out = {k: torch.from_numpy(z[k]) for k in ("layer_codes", "hw_codes", "pairs", "row_pair", "codes", "y")}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise AccelmapError(f"not a DCP dataset (.npz with its .json manifest): {exc}", file=str(path)) from None
    out["layout"] = CodeLayout.from_dict(manifest["layout"])
    out["manifest"] = manifest
    return out


def few_shot(layers: list[Layer], arch, constraints: Constraints, model, samples: int, seed: int) -> dict:
    """At most ``samples`` true evaluations on new hardware ``arch`` for fine-tuning, spread over
    as many of ``layers`` as the budget allows (shape coverage helps more than depth: one sample
    on each of 62 layers beat five on each of 20), on each the mappings the current predictor
    ranks best among legal random samples (the region a search will visit). Also returns
    unlabelled anchor codes."""
    from accelmap.arch.hardware import Hardware

    gen = torch.Generator().manual_seed(seed)
    layout = model.layout
    hc = hardware_code(Hardware.from_arch(arch))
    per = max(1, samples // max(1, len(layers)))
    picks = torch.randperm(len(layers), generator=gen)[: max(1, samples // per)].tolist()
    L, C, Y, AL, AC = [], [], [], [], []
    for li in picks:
        w = layers[li].workload
        space = MappingSpace(w, arch, constraints)
        try:
            g = space.sample_legal(2048, gen, max_draws=200_000)
        except AccelmapError:
            continue
        codes = dataflow_code(space, g, layout)
        lc = layer_code(w, layout)
        with torch.no_grad():
            pred = model(lc, hc, codes).sum(1)
        top = torch.argsort(pred)[:per]
        c = space.evaluate(g[top])
        b = lower_bound(w, arch, constraints, box=True)
        L.append(lc.expand(len(top), -1))
        C.append(codes[top])
        Y.append(torch.stack([torch.log(c.cycles / b.cycles), torch.log(c.energy / b.energy_pJ)], 1).float())
        AL.append(lc.expand(256, -1))
        AC.append(codes[torch.randperm(len(codes), generator=gen)[:256]])
    n = sum(len(x) for x in Y)
    return {"hw": hc, "layer": torch.cat(L)[:samples], "codes": torch.cat(C)[:samples], "y": torch.cat(Y)[:samples],
            "anchor_layer": torch.cat(AL), "anchor_codes": torch.cat(AC), "evaluations": min(n, samples)}
