"""Lower bounds on a layer's energy and cycles, whatever its mapping."""

from __future__ import annotations

import math
from dataclasses import dataclass

from accelmap.arch.architecture import Architecture
from accelmap.mapspace.constraints import Constraints
from accelmap.workload.workload import Workload

LOWER_BOUND_NOTE = ("cycles >= MACs / MAC units. energy >= MACs x E_mac + for each tensor, every word some MAC "
                    "uses once through DRAM (a read, or a write for outputs) and written once into every level "
                    "the constraints force to keep it (per-word energy = per-block energy / block size).")


@dataclass(frozen=True)
class Bound:
    """Lower bounds of one layer (see :func:`lower_bound`)."""

    energy_pJ: float
    cycles: float

    @property
    def edp(self) -> float:
        return self.energy_pJ * self.cycles


def lower_bound(workload: Workload, arch: Architecture, constraints: Constraints, box: bool = False) -> Bound:
    """cycles >= MACs / MAC units. energy >= MACs x E_mac + for each tensor, every word some MAC
    uses once through DRAM (a read, or a write for outputs) and written once into every level
    the constraints force to keep it (per-word energy = per-block energy / block size).
    ``box``: count each tensor's whole bounding box instead (stride holes included): not a
    bound for strided layers, kept as the DCP predictor's fixed normalization."""
    cycles = math.ceil(workload.macs / arch.compute.instances)
    energy = workload.macs * arch.compute.energy
    dram = arch.levels[0]
    for t in workload.tensors:
        size = workload.tensor_size(t.name) if box else workload.touched_size(t.name)
        e_dram = (dram.write_energy if t.read_write else dram.read_energy) / dram.block_size
        energy += size * e_dram
        for lv in arch.levels[1:]:
            if t.name in constraints.at(lv.name).keep:
                energy += size * lv.write_energy / lv.block_size
    return Bound(energy, float(cycles))
