"""Dataflow codes for DCP: a layer, a hardware point and a mapping as fixed-length float vectors.

* layer code [C_w]: log2 of each canonical dim's bound, strides and dilations, the kind
  (one-hot over conv, depthwise, grouped, matmul, bmm).
* hardware code [C_h]: per storage level log2 capacity, X and Y fanout below it, read and
  write bandwidth, and energy per word read and written; log2 MAC energy and MAC count.
  Unlimited capacities and bandwidths code as a fixed large value.
* dataflow code [C_m]: :meth:`MappingSpace.to_code` (per dim and slot the share of the dim's
  log bound, loop positions, mesh axes, keeps) placed into the canonical dim order, so layers
  with fewer dims (no G) share one layout; absent dims code as zeros.

A :class:`CodeLayout` (canonical dims, level names, fanout levels, tensor names) fixes the
sizes; predictors store it in their checkpoints and refuse codes of another layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from accelmap.arch.hardware import Hardware
from accelmap.errors import AccelmapError
from accelmap.mapspace.space import MappingSpace
from accelmap.workload.workload import Workload

DIMS = ("R", "S", "P", "Q", "C", "K", "N", "G")
KINDS = ("conv", "depthwise", "grouped", "matmul", "bmm")
_COEFS = ("Wstride", "Hstride", "Wdilation", "Hdilation")
_UNLIMITED = 40.0  # log2 code of an unlimited capacity or bandwidth


@dataclass(frozen=True)
class CodeLayout:
    levels: tuple[str, ...]
    fan_levels: tuple[int, ...]
    tensors: tuple[str, ...] = ("Weights", "Inputs", "Outputs")
    dims: tuple[str, ...] = DIMS

    @property
    def slots(self) -> int:
        return len(self.levels) + len(self.fan_levels)

    @property
    def layer_size(self) -> int:
        return len(self.dims) + len(_COEFS) + len(KINDS)

    @property
    def hardware_size(self) -> int:
        return 7 * len(self.levels) + 2

    @property
    def dataflow_size(self) -> int:
        D, L = len(self.dims), len(self.levels)
        return D * self.slots + L * D + len(self.fan_levels) * D + L * len(self.tensors)

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "fan_levels": list(self.fan_levels), "tensors": list(self.tensors),
                "dims": list(self.dims)}

    @staticmethod
    def from_dict(d: dict) -> "CodeLayout":
        return CodeLayout(tuple(d["levels"]), tuple(d["fan_levels"]), tuple(d["tensors"]), tuple(d["dims"]))

    @staticmethod
    def of(space: MappingSpace) -> "CodeLayout":
        return CodeLayout(tuple(space.arch.level_names), tuple(space.fan_levels),
                          tuple(t.name for t in space.workload.tensors))

    def check(self, space: MappingSpace, source: str = "<checkpoint>") -> None:
        other = CodeLayout.of(space)
        if (other.levels, other.fan_levels, other.tensors) != (self.levels, self.fan_levels, self.tensors):
            raise AccelmapError(f"the predictor was trained for levels {list(self.levels)} (fanout below "
                                f"{list(self.fan_levels)}), tensors {list(self.tensors)}; this space has levels "
                                f"{list(other.levels)} (fanout below {list(other.fan_levels)}), tensors "
                                f"{list(other.tensors)}", file=source, field="code_layout")
        extra = [d for d in space.workload.dims if d not in self.dims]
        if extra:
            raise AccelmapError(f"dims {extra} are not in the code layout {list(self.dims)}", file=source,
                                field="code_layout")


def layer_code(w: Workload, layout: CodeLayout) -> torch.Tensor:
    """[C_w] float32."""
    b = dict(zip(w.dims, w.bounds))
    coefs = dict(w.coefficients)
    v = [math.log2(b.get(d, 1)) for d in layout.dims]
    v += [math.log2(coefs.get(c, 1)) for c in _COEFS]
    v += [1.0 if w.kind == k else 0.0 for k in KINDS]
    return torch.tensor(v, dtype=torch.float32)


def hardware_code(hw: Hardware) -> torch.Tensor:
    """[C_h] float32 for one (unbatched) hardware point."""
    def lg(x):
        x = x.detach().double()
        return torch.where(torch.isfinite(x), torch.log2(x.clamp(min=1e-30)), torch.full_like(x, _UNLIMITED))

    blk = hw.block.double()
    parts = [lg(hw.capacity), lg(hw.fanout[:, 0]), lg(hw.fanout[:, 1]), lg(hw.read_bw), lg(hw.write_bw),
             lg(hw.read_energy / blk), lg(hw.write_energy / blk),
             lg(hw.mac_energy.reshape(1)), lg(hw.mac_instances.reshape(1))]
    return torch.cat(parts).float()


def dataflow_code(space: MappingSpace, genomes: torch.Tensor, layout: CodeLayout) -> torch.Tensor:
    """[N, C_m] float32: the space's own code placed into the canonical dim order."""
    lay = space.layout
    code = space.to_code(genomes)
    N, D, S, L, F = len(genomes), lay.D, lay.S, lay.L, lay.F
    idx = [layout.dims.index(d) for d in space.workload.dims]
    CD = len(layout.dims)
    a, b, c = D * S, D * S + L * D, D * S + L * D + F * D
    share = torch.zeros(N, CD, S, dtype=code.dtype)
    share[:, idx] = code[:, :a].reshape(N, D, S)
    pos = torch.zeros(N, L, CD, dtype=code.dtype)
    # positions are normalized by the space's own D; absent dims sit outermost (0)
    pos[:, :, idx] = code[:, a:b].reshape(N, L, D)
    axis = torch.zeros(N, F, CD, dtype=code.dtype)
    axis[:, :, idx] = code[:, b:c].reshape(N, F, D)
    return torch.cat([share.flatten(1), pos.flatten(1), axis.flatten(1), code[:, c:]], 1).float()


def to_space_code(space: MappingSpace, code: torch.Tensor, layout: CodeLayout) -> torch.Tensor:
    """The inverse placement: canonical codes [N, C_m] back to the space's own code layout."""
    lay = space.layout
    N, S, L, F = len(code), lay.S, lay.L, lay.F
    CD = len(layout.dims)
    idx = [layout.dims.index(d) for d in space.workload.dims]
    a, b, c = CD * S, CD * S + L * CD, CD * S + L * CD + F * CD
    share = code[:, :a].reshape(N, CD, S)[:, idx]
    pos = code[:, a:b].reshape(N, L, CD)[:, :, idx]
    axis = code[:, b:c].reshape(N, F, CD)[:, :, idx]
    return torch.cat([share.flatten(1), pos.flatten(1), axis.flatten(1), code[:, c:]], 1).double()
