"""An architecture's numbers as (optionally batched, differentiable) tensors: what the cost model and co-design read."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from accelmap.arch.architecture import Architecture


@dataclass(frozen=True)
class Hardware:
    """The architecture's numbers as tensors; co-design passes differentiable ones.

    capacity, read_bw, write_bw: [L] words (inf = unlimited); block: [L] words;
    read_energy, write_energy: [L] pJ per block access; area: [L] um^2 per instance;
    instances: [L] hardware instances; fanout: [L, 2] mesh fanout below each level (X, Y);
    mac_energy, mac_area: [] pJ and um^2; mac_instances: []; clock_ghz: [].
    leak_energy: [L] pJ per utilized instance per cycle (Timeloop v4's leakage; zeros when not
    given); cluster_size: [L] instances sharing one row (ones when not given), whose accesses
    are charged once per utilized cluster.

    Co-design evaluates many hardware points at once: any field may carry a leading batch
    dimension ([B, L], [B, L, 2], [B]) that pairs row b of a mapping batch with hardware b.
    """

    capacity: torch.Tensor
    block: torch.Tensor
    read_bw: torch.Tensor
    write_bw: torch.Tensor
    read_energy: torch.Tensor
    write_energy: torch.Tensor
    area: torch.Tensor
    instances: torch.Tensor
    fanout: torch.Tensor
    mac_energy: torch.Tensor
    mac_area: torch.Tensor
    mac_instances: torch.Tensor
    clock_ghz: torch.Tensor
    leak_energy: torch.Tensor | None = None
    cluster_size: torch.Tensor | None = None

    def __post_init__(self):
        # leakage and clusters are optional at construction (co-design builds hardware without them)
        for name, fill in (("leak_energy", 0.0), ("cluster_size", 1.0)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, torch.full_like(self.read_energy, fill))

    @staticmethod
    def from_arch(arch: Architecture, dtype=torch.float64, device="cpu") -> "Hardware":
        inf = math.inf
        t = lambda xs: torch.tensor(xs, dtype=dtype, device=device)  # noqa: E731
        lv = arch.levels
        return Hardware(
            capacity=t([x.capacity if x.capacity is not None else inf for x in lv]),
            block=t([x.block_size for x in lv]),
            read_bw=t([x.read_bw if x.read_bw is not None else inf for x in lv]),
            write_bw=t([x.write_bw if x.write_bw is not None else inf for x in lv]),
            read_energy=t([x.read_energy for x in lv]),
            write_energy=t([x.write_energy for x in lv]),
            area=t([x.area for x in lv]),
            instances=t([x.instances for x in lv]),
            fanout=t([list(arch.fanout(i)) for i in range(len(lv))]),
            mac_energy=t(arch.compute.energy),
            mac_area=t(arch.compute.area),
            mac_instances=t(arch.compute.instances),
            clock_ghz=t(arch.clock_ghz),
            leak_energy=t([x.leak_energy for x in lv]),
            cluster_size=t([x.cluster_size for x in lv]),
        )

    @property
    def total_area(self) -> torch.Tensor:
        return (self.area * self.instances).sum(-1) + self.mac_area * self.mac_instances

    @property
    def batched(self) -> bool:
        return any(getattr(self, f.name).dim() > _BASE_DIMS[f.name] for f in fields(self))

    def take(self, index: torch.Tensor) -> "Hardware":
        """Rows ``index`` of a batched hardware (fields without a batch dimension are shared)."""
        return Hardware(*(getattr(self, f.name)[index] if getattr(self, f.name).dim() > _BASE_DIMS[f.name]
                          else getattr(self, f.name) for f in fields(self)))

    def detach(self) -> "Hardware":
        return Hardware(*(getattr(self, f.name).detach() for f in fields(self)))


_BASE_DIMS = {"capacity": 1, "block": 1, "read_bw": 1, "write_bw": 1, "read_energy": 1, "write_energy": 1,
              "area": 1, "instances": 1, "fanout": 2, "mac_energy": 0, "mac_area": 0, "mac_instances": 0,
              "clock_ghz": 0, "leak_energy": 1, "cluster_size": 1}
