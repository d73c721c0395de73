"""Random mappings as tensors: prime factors of each bound dealt to random (level, temporal or
spatial) slots, random loop orders. Used to feed the model in bulk (benchmarks, tests); the
legal-space sampler with constraints is :mod:`accelmap.mapspace.space`.
"""

from __future__ import annotations

import torch

from accelmap.arch.architecture import Architecture
from accelmap.mapping.mapping import MappingBatch
from accelmap.workload.workload import Workload


def prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def random_batch(workload: Workload, arch: Architecture, size: int, generator: torch.Generator | None = None,
                 device="cpu", keep: torch.Tensor | None = None) -> MappingBatch:
    """``size`` random mappings; factors always multiply to the bounds; ``keep`` [L, T]
    (default: every level keeps everything).

    Spatial slots exist only below levels with a fanout; capacity and fanout limits are not
    enforced (the model's validity mask reports them).
    """
    g = generator or torch.Generator().manual_seed(0)
    L, D = len(arch.levels), len(workload.dims)
    fan = [arch.fanout(i) for i in range(L)]
    slots = [(l, 0) for l in range(L)] + [(l, 1 + ax) for l in range(L) for ax in (0, 1) if fan[l][ax] > 1]
    n_slots = len(slots)
    temporal = torch.ones(size, L, D, dtype=torch.int64)
    spatial = torch.ones(size, L, D, 2, dtype=torch.int64)
    for d, bound in enumerate(workload.bounds):
        for p in prime_factors(bound):
            pick = torch.randint(0, n_slots, (size,), generator=g)
            for s, (l, kind) in enumerate(slots):
                hit = pick == s
                if kind == 0:
                    temporal[hit, l, d] *= p
                else:
                    spatial[hit, l, d, kind - 1] *= p
    order = torch.argsort(torch.rand(size, L, D, generator=g), dim=-1)
    keep_b = (torch.ones(L, len(workload.tensors), dtype=torch.bool) if keep is None else keep).expand(size, -1, -1)
    return MappingBatch(temporal, order, spatial, keep_b.contiguous()).to(device)
