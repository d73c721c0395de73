"""The mapping space of one (workload, architecture, constraints): factorization x permutation x
spatial x bypass. Legality lives here, once; every optimizer samples, mutates, crosses and
enumerates through it.

A mapping is a fixed-length integer **genome** [G]:

* ``factors`` [D, S]: the factor of each dim in each slot; slots are the temporal loops of
  the L levels, then the spatial loops of the F levels that have a fanout. Per dim the
  factors always multiply to the bound.
* ``order`` [L, D]: loop position of each dim within each level (0 = outermost).
* ``axis`` [F, D]: 0 puts a spatial dim on the mesh's X axis, 1 on Y.
* ``keep`` [L, T]: 1 if the level keeps the tensor.

``decode`` turns genomes into a :class:`~accelmap.mapping.mapping.MappingBatch`; capacity and fanout
legality are judged by the cost model's validity mask (``sample_legal``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from accelmap.arch.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import MappingBatch
from accelmap.mapspace.constraints import Constraints
from accelmap.mapspace.sampling import prime_factors
from accelmap.model.cost_model import CostModel
from accelmap.model.status import REASONS
from accelmap.workload.workload import Workload

ENUMERATION_LIMIT = 5_000_000  # points; above this `enumerate` refuses


def _compositions(e: int, k: int):
    """All ways to write e as an ordered sum of k non-negative integers."""
    if k == 1:
        yield (e,)
        return
    for first in range(e + 1):
        for rest in _compositions(e - first, k - 1):
            yield (first,) + rest


def ordered_factorizations(n: int, k: int) -> list[tuple[int, ...]]:
    """All k-tuples of positive integers whose product is n."""
    if k == 0:
        return [()] if n == 1 else []
    primes: dict[int, int] = {}
    for p in prime_factors(n):
        primes[p] = primes.get(p, 0) + 1
    out = [tuple([1] * k)]
    for p, e in primes.items():
        nxt = []
        for base in out:
            for comp in _compositions(e, k):
                nxt.append(tuple(b * p**c for b, c in zip(base, comp)))
        out = nxt
    return out


@dataclass(frozen=True)
class Layout:
    D: int
    S: int
    L: int
    F: int
    T: int

    @property
    def size(self) -> int:
        return self.D * self.S + self.L * self.D + self.F * self.D + self.L * self.T

    def split(self, g: torch.Tensor):
        """Views of a genome batch [N, G]: factors [N, D, S], order [N, L, D], axis [N, F, D], keep [N, L, T]."""
        N = g.shape[0]
        a = self.D * self.S
        b = a + self.L * self.D
        c = b + self.F * self.D
        return (g[:, :a].reshape(N, self.D, self.S), g[:, a:b].reshape(N, self.L, self.D),
                g[:, b:c].reshape(N, self.F, self.D), g[:, c:].reshape(N, self.L, self.T))


class MappingSpace:
    def __init__(self, workload: Workload, arch: Architecture, constraints: Constraints | None = None,
                 device: str = "cpu"):
        """``device``: where :meth:`evaluate` runs the cost model ("cuda": the tensor model on the
        GPU, costs brought back to the CPU); genomes and everything else stay on the CPU."""
        self.workload, self.arch = workload, arch
        self.device = device
        self.constraints = constraints or Constraints()
        self.constraints.check(workload, arch)
        dims, L = list(workload.dims), len(arch.levels)
        D, T = len(dims), len(workload.tensors)
        self.fan_levels = [l for l in range(L) if arch.fanout(l) != (1, 1)]
        F = len(self.fan_levels)
        S = L + F
        self.layout = Layout(D, S, L, F, T)
        tnames = [t.name for t in workload.tensors]

        # ---- factor tables per dim -------------------------------------------------------
        self.tables: list[torch.Tensor] = []
        self.free_slots = torch.zeros(D, S, dtype=torch.bool)
        for di, (d, bound) in enumerate(zip(dims, workload.bounds)):
            fixed: dict[int, int] = {}
            rest: list[int] = []
            for li, lv in enumerate(arch.levels):
                c = self.constraints.at(lv.name)
                for dd, f in c.temporal:
                    if dd == d:
                        (rest.append(li) if f == 0 else fixed.__setitem__(li, f))
                if li in self.fan_levels:
                    s = L + self.fan_levels.index(li)
                    for dd, f in c.spatial:
                        if dd == d:
                            (rest.append(s) if f == 0 else fixed.__setitem__(s, f))
            if len(rest) > 1:
                raise AccelmapError(f"dimension {d} is given 'all the rest' (factor 0) at {len(rest)} places",
                                    file=self.constraints.source, field=d)
            remaining = bound // math.prod(fixed.values()) if fixed else bound
            free = [s for s in range(S) if s not in fixed and s not in rest]
            if rest:
                rows = [[fixed.get(s, 1) for s in range(S)]]
                rows[0][rest[0]] = remaining
            else:
                caps = [math.prod(arch.fanout(self.fan_levels[s - L])) if s >= L else bound for s in free]
                rows = []
                # Timeloop's factor bounds ('C<=16') of each free slot
                ok = [(lambda f, c=self.constraints.at(arch.levels[s].name): c.within("temporal", d, f)) if s < L else
                      (lambda f, c=self.constraints.at(arch.levels[self.fan_levels[s - L]].name):
                       c.within("spatial", d, f)) for s in free]
                for combo in ordered_factorizations(remaining, len(free)):
                    if any(f > cap for f, cap in zip(combo, caps)) or not all(w(f) for w, f in zip(ok, combo)):
                        continue
                    row = [fixed.get(s, 1) for s in range(S)]
                    for s, f in zip(free, combo):
                        row[s] = f
                    rows.append(row)
                for s in free:
                    self.free_slots[di, s] = True
            if not rows:
                raise AccelmapError(f"no factorization of {d}={bound} satisfies the constraints",
                                    file=self.constraints.source, field=d)
            self.tables.append(torch.tensor(rows, dtype=torch.int64))

        # ---- loop orders: dims a permutation constraint fixes, innermost first ------------
        self.fixed_inner: list[list[int]] = []
        for lv in arch.levels:
            perm = self.constraints.at(lv.name).permutation or ""
            self.fixed_inner.append([dims.index(c) for c in perm if c in dims])
        # ---- mesh axes ---------------------------------------------------------------------
        self.axis_fixed = torch.full((F, D), -1, dtype=torch.int64)
        for f, li in enumerate(self.fan_levels):
            fx, fy = arch.fanout(li)
            c = self.constraints.at(arch.levels[li].name)
            if fy == 1:
                self.axis_fixed[f] = 0
            elif fx == 1:
                self.axis_fixed[f] = 1
            elif c.spatial_permutation and c.spatial_split is not None:
                for pos, ch in enumerate(c.spatial_permutation):
                    if ch in dims:
                        self.axis_fixed[f, dims.index(ch)] = 0 if pos < c.spatial_split else 1
        # ---- keep / bypass -----------------------------------------------------------------
        self.keep_fixed = torch.full((L, T), -1, dtype=torch.int64)
        self.keep_fixed[0] = 1  # the outermost level holds everything
        for li, lv in enumerate(arch.levels):
            c = self.constraints.at(lv.name)
            for t in c.keep:
                self.keep_fixed[li, tnames.index(t)] = 1
            for t in c.bypass:
                if li == 0:
                    raise AccelmapError(f"the outermost level {lv.name} cannot bypass {t}",
                                        file=self.constraints.source, field=c.source or lv.name)
                self.keep_fixed[li, tnames.index(t)] = 0
        self._model: CostModel | None = None
        max_v = max(workload.bounds) + 1
        spf = list(range(max_v))
        for i in range(2, int(max_v**0.5) + 1):
            if spf[i] == i:
                for j in range(i * i, max_v, i):
                    if spf[j] == j:
                        spf[j] = i
        self._spf = torch.tensor(spf, dtype=torch.int64)  # smallest prime factor
        lpf = [1] * max_v
        for v in range(2, max_v):
            lpf[v] = v if spf[v] == v else max(spf[v], lpf[v // spf[v]])
        self._lpf = torch.tensor(lpf, dtype=torch.int64)  # largest prime factor

    # ---- size, model --------------------------------------------------------------------
    @property
    def model(self) -> CostModel:
        if self._model is None:
            self._model = CostModel(self.workload, self.arch, device=self.device)
        return self._model

    def size(self) -> float:
        """Points in the (unpruned) space: factorizations x orders x axes x bypass choices."""
        lay = self.layout
        n = math.prod(len(t) for t in self.tables)
        for li in range(lay.L):
            n *= math.factorial(lay.D - len(self.fixed_inner[li]))
        n *= 2 ** int((self.axis_fixed < 0).sum()) * 2 ** int((self.keep_fixed < 0).sum())
        return float(n)

    # ---- genome <-> batch -------------------------------------------------------------
    def place(self, slots: torch.Tensor, axis: torch.Tensor, neutral: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-slot values [N, D, S] (factors, or log factors with ``neutral`` 0) to temporal
        [N, L, D] and spatial [N, L, D, 2] tensors, spatial values on their mesh axis."""
        lay = self.layout
        N = slots.shape[0]
        temporal = slots[:, :, : lay.L].transpose(1, 2)
        spatial = torch.full((N, lay.L, lay.D, 2), neutral, dtype=slots.dtype)
        for f, li in enumerate(self.fan_levels):
            val = slots[:, :, lay.L + f]
            other = torch.full_like(val, neutral)
            spatial[:, li, :, 0] = torch.where(axis[:, f] == 0, val, other)
            spatial[:, li, :, 1] = torch.where(axis[:, f] == 1, val, other)
        return temporal, spatial

    def log_split(self, genomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A relaxation for gradient search: (fixed_log [N, D, S], rest [N, D], logits [N, D, S])
        with :meth:`log_factors` exact per dim (each dim's free slots share the log of what the
        constrained slots leave, by a softmax of the logits), starting at the genomes' factors."""
        fac = self.layout.split(genomes)[0]
        logb = torch.log(torch.tensor(self.workload.bounds, dtype=torch.float64))
        free = self.free_slots
        fixed_log = torch.log(fac.double()) * (~free)[None]
        rest = logb[None, :] - fixed_log.sum(2)
        logits = torch.where(free[None], torch.log(fac.double()).clamp(min=1e-3), torch.full_like(fixed_log, -1e9))
        return fixed_log, rest, logits

    def log_factors(self, fixed_log: torch.Tensor, rest: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """[N, D, S] log factors of a :meth:`log_split` relaxation."""
        return fixed_log + torch.softmax(logits, dim=2) * self.free_slots[None] * rest[:, :, None]

    def decode(self, genomes: torch.Tensor) -> MappingBatch:
        fac, order, axis, keep = self.layout.split(genomes)
        temporal, spatial = self.place(fac, axis, 1)
        return MappingBatch(temporal, order, spatial, keep.bool())

    def encode(self, batch: MappingBatch) -> torch.Tensor:
        lay = self.layout
        N = len(batch)
        fac = torch.ones(N, lay.D, lay.S, dtype=torch.int64)
        fac[:, :, : lay.L] = batch.temporal.transpose(1, 2).long()
        axis = torch.zeros(N, lay.F, lay.D, dtype=torch.int64)
        for f, li in enumerate(self.fan_levels):
            sx, sy = batch.spatial[:, li, :, 0].long(), batch.spatial[:, li, :, 1].long()
            fac[:, :, lay.L + f] = sx * sy
            axis[:, f] = (sy > 1).long()
        return torch.cat([fac.flatten(1), batch.order.long().flatten(1), axis.flatten(1),
                          batch.keep.long().flatten(1)], 1)

    # ---- sampling -------------------------------------------------------------------------
    def _apply_fixed(self, order: torch.Tensor, axis: torch.Tensor, keep: torch.Tensor) -> None:
        """Force constrained loop orders, axes and bypass choices in place."""
        lay = self.layout
        for li, inner in enumerate(self.fixed_inner):
            if not inner:
                continue
            free = [d for d in range(lay.D) if d not in inner]
            # free dims keep their relative order in the outer positions
            sub = order[:, li, free]
            ranks = torch.argsort(torch.argsort(sub, dim=1), dim=1)
            order[:, li, free] = ranks
            for j, d in enumerate(inner):
                order[:, li, d] = lay.D - 1 - j
        fa = self.axis_fixed[None].expand_as(axis)
        axis.copy_(torch.where(fa >= 0, fa, axis))
        kf = self.keep_fixed[None].expand_as(keep)
        keep.copy_(torch.where(kf >= 0, kf, keep))

    def _repair_axes(self, fac: torch.Tensor, axis: torch.Tensor) -> None:
        """Where the X (or Y) product overflows the mesh, reassign axes greedily, largest first."""
        lay = self.layout
        for f, li in enumerate(self.fan_levels):
            fx, fy = self.arch.fanout(li)
            val = fac[:, :, lay.L + f]
            px = torch.where(axis[:, f] == 0, val, torch.ones_like(val)).prod(1)
            py = torch.where(axis[:, f] == 1, val, torch.ones_like(val)).prod(1)
            bad = (px > fx) | (py > fy)
            if not bad.any():
                continue
            idx = bad.nonzero().flatten()
            v = val[idx]
            ordd = torch.argsort(-v, dim=1)
            cx = torch.ones(len(idx), dtype=torch.int64)
            new = axis[idx, f].clone()
            for j in range(lay.D):
                d = ordd[:, j]
                fv = v.gather(1, d[:, None]).squeeze(1)
                fixed = self.axis_fixed[f][d]
                to_x = torch.where(fixed >= 0, fixed == 0, cx * fv <= fx)
                new.scatter_(1, d[:, None], (~to_x).long()[:, None])
                cx = torch.where(to_x, cx * fv, cx)
            axis[idx, f] = new

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n genomes uniform over factorizations, orders, axes and bypass (not yet checked
        for capacity)."""
        lay = self.layout
        fac = torch.stack([t[torch.randint(len(t), (n,), generator=generator)] for t in self.tables], 1)
        order = torch.argsort(torch.rand(n, lay.L, lay.D, generator=generator), dim=-1)
        order = torch.argsort(order, dim=-1)  # a random permutation's positions
        axis = torch.randint(0, 2, (n, lay.F, lay.D), generator=generator)
        keep = torch.randint(0, 2, (n, lay.L, lay.T), generator=generator)
        self._apply_fixed(order, axis, keep)
        self._repair_axes(fac, axis)
        return torch.cat([fac.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1)

    def evaluate(self, genomes: torch.Tensor, detail: bool = False):
        if self.device == "cpu":
            return self.model(self.decode(genomes), detail=detail)
        return self.model(self.decode(genomes).to(self.device), detail=detail).to("cpu")

    def sample_legal(self, n: int, generator: torch.Generator, max_draws: int = 2_000_000) -> torch.Tensor:
        """n legal genomes by rejection (uniform over the legal space); an error naming the
        commonest failure when no legal mapping turns up in ``max_draws`` samples."""
        got: list[torch.Tensor] = []
        have, drawn = 0, 0
        reasons = torch.zeros(len(REASONS), dtype=torch.int64)
        while have < n and drawn < max_draws:
            k = min(max(4 * (n - have), 1024), 65536)
            g = self.sample(k, generator)
            c = self.evaluate(g)
            drawn += k
            reasons += torch.bincount(c.reason, minlength=len(REASONS))
            ok = g[c.valid]
            if len(ok):
                got.append(ok[: n - have])
                have += len(got[-1])
        if have == 0:
            common = int(torch.argmax(reasons[1:])) + 1
            raise AccelmapError(f"the constraints leave no legal mapping for {self.workload.name} on "
                                f"{self.arch.name} in {drawn:,} samples: {REASONS[common]}",
                                file=self.constraints.source, field="architecture_constraints")
        return torch.cat(got)[:n]

    # ---- neighbours --------------------------------------------------------------------------
    def neighbours(self, genomes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random move per genome: move a prime factor between two slots (temporal or
        spatial) of a dim, swap two loops of a level, flip a spatial dim between X and Y, or
        toggle a free bypass."""
        lay = self.layout
        N = genomes.shape[0]
        out = genomes.clone()
        fac, order, axis, keep = lay.split(out)
        kind = torch.randint(0, 11, (N,), generator=generator)
        # 0-5: factor move (the most useful move), 6-7: swap, 8: axis, 9: keep, 10: refill the mesh
        self._move_factor(fac, kind <= 5, generator)
        self._fill_mesh(fac, axis, kind == 10, generator)
        self._swap_loops(fac, order, (kind == 6) | (kind == 7), generator)
        m = kind == 8
        if m.any() and lay.F:
            f = torch.randint(0, lay.F, (N,), generator=generator)
            d = torch.randint(0, lay.D, (N,), generator=generator)
            free = self.axis_fixed[f, d] < 0
            sel = m & free
            rows = sel.nonzero().flatten()
            axis[rows, f[rows], d[rows]] = 1 - axis[rows, f[rows], d[rows]]
        m = kind == 9
        free_keep = (self.keep_fixed < 0).nonzero()
        if m.any() and len(free_keep):
            pick = free_keep[torch.randint(0, len(free_keep), (N,), generator=generator)]
            rows = m.nonzero().flatten()
            keep[rows, pick[rows, 0], pick[rows, 1]] = 1 - keep[rows, pick[rows, 0], pick[rows, 1]]
        self._repair_axes(fac, axis)
        return out

    def _move_factor(self, fac: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> None:
        lay = self.layout
        rows = mask.nonzero().flatten()
        if not len(rows):
            return
        n = len(rows)
        # pick a dim that has a factor to move and somewhere to move it
        movable = ((self.free_slots[None] & (fac[rows] > 1)).any(2) & (self.free_slots.sum(1) >= 2)[None])
        r0 = torch.rand(n, lay.D, generator=generator)
        d = torch.where(movable, r0, torch.full_like(r0, -1.0)).argmax(1)
        f = fac[rows, d]  # [n, S]
        free = self.free_slots[d]  # [n, S]
        src_ok = free & (f > 1)
        dst_ok = free
        can = src_ok.any(1) & (dst_ok.sum(1) >= 2)
        r = torch.rand(n, lay.S, generator=generator)
        src = torch.where(src_ok, r, torch.full_like(r, -1.0)).argmax(1)
        r2 = torch.rand(n, lay.S, generator=generator)
        r2[torch.arange(n), src] = -1.0
        dst = torch.where(dst_ok, r2, torch.full_like(r2, -1.0)).argmax(1)
        fs = f.gather(1, src[:, None]).squeeze(1)
        p = self._spf[fs.clamp(min=1)]
        # sometimes move the largest prime instead of the smallest
        big = torch.rand(n, generator=generator) < 0.5
        p = torch.where(big, self._lpf[fs.clamp(min=1)], p)
        ok = can & (fs > 1)
        rr, dd = rows[ok], d[ok]
        fac[rr, dd, src[ok]] //= p[ok]
        fac[rr, dd, dst[ok]] *= p[ok]

    def _fill_mesh(self, fac: torch.Tensor, axis: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> None:
        """Half the time drop one dim's spatial factor back into one of its temporal slots, then
        fill that mesh axis with the largest divisor of another dim's temporal factor that fits.
        Prime moves alone reach a full mesh from e.g. Q=7 x K=2 on a 16-wide axis (7/8 used)
        only through far worse states (Q=1 first); this does it in one step (Q=1, K=16)."""
        lay = self.layout
        rows = mask.nonzero().flatten()
        if not len(rows) or not lay.F:
            return
        n, L = len(rows), lay.L
        ar = torch.arange(n)
        fan = torch.tensor([self.arch.fanout(li) for li in self.fan_levels], dtype=torch.int64)  # [F, 2]
        f = torch.randint(0, lay.F, (n,), generator=generator)
        s = L + f
        fr, ax_r = fac[rows], axis[rows, f]  # [n, D, S], [n, D]
        sp = fr[ar, :, s]  # [n, D] spatial factors at the chosen fan level
        tfree = self.free_slots[:, :L]  # [D, L]
        sfree = self.free_slots.t()[s]  # [n, D]
        # drop: a dim with a spatial factor > 1 and a free temporal slot to take it
        can_drop = (sp > 1) & sfree & tfree.any(1)[None]
        r = torch.rand(n, lay.D, generator=generator)
        a = torch.where(can_drop, r, torch.full_like(r, -1.0)).argmax(1)
        drop = can_drop.any(1) & (torch.rand(n, generator=generator) < 0.5)
        # half the time into (and below, out of) the fan level's own temporal loops: that level's
        # tile stays the same, so the move changes the mesh and little else
        own = torch.tensor(self.fan_levels, dtype=torch.int64)[f]
        rt = torch.rand(n, L, generator=generator)
        rt[ar, own] += (torch.rand(n, generator=generator) < 0.5).to(rt.dtype)
        ta = torch.where(tfree[a], rt, torch.full_like(rt, -1.0)).argmax(1)
        va = sp[ar, a]
        fr[ar[drop], a[drop], ta[drop]] *= va[drop]
        fr[ar[drop], a[drop], s[drop]] = 1
        sp = fr[ar, :, s]
        # the axis to fill: the dropped dim's, else a random one with room
        ax = torch.where(drop, ax_r[ar, a], torch.randint(0, 2, (n,), generator=generator))
        ax = torch.where(fan[f, 1] == 1, 0, torch.where(fan[f, 0] == 1, 1, ax))
        used = torch.where(ax_r == ax[:, None], sp, torch.ones_like(sp)).prod(1)
        cap = fan[f, ax] // used
        # fill: a dim free at this slot, allowed on this axis, not spread on the other one
        fixed = self.axis_fixed[f]  # [n, D]
        tf = fr[:, :, :L] * tfree[None]  # temporal factors on free slots, 0 elsewhere
        can_fill = (sfree & ((fixed < 0) | (fixed == ax[:, None])) & ((sp == 1) | (ax_r == ax[:, None]))
                    & (tf > 1).any(2))
        can_fill &= ~(drop[:, None] & (torch.arange(lay.D)[None] == a[:, None]))
        r = torch.rand(n, lay.D, generator=generator)
        b = torch.where(can_fill, r, torch.full_like(r, -1.0)).argmax(1)
        rt = torch.rand(n, L, generator=generator)
        rt[ar, own] += (torch.rand(n, generator=generator) < 0.5).to(rt.dtype)
        tb = torch.where(tf[ar, b] > 1, rt, torch.full_like(rt, -1.0)).argmax(1)
        v = fr[ar, b, tb]
        q = self._divisor_table(int(fan.max()))[v, cap.clamp(min=1, max=int(fan.max()))]
        ok = can_fill.any(1) & (q > 1)
        fr[ar[ok], b[ok], tb[ok]] //= q[ok]
        fr[ar[ok], b[ok], s[ok]] *= q[ok]
        ax_r[ar[ok], b[ok]] = ax[ok]
        fac[rows] = fr
        axis[rows, f] = ax_r

    def _divisor_table(self, cap: int) -> torch.Tensor:
        """[V, cap + 1]: the largest divisor of v that is at most c (V: the largest bound + 1)."""
        if getattr(self, "_divisors", None) is None or self._divisors.shape[1] < cap + 1:
            v = torch.arange(len(self._spf))[:, None]
            k = torch.arange(cap + 1)[None]
            fits = (k >= 1) & (v % k.clamp(min=1) == 0)
            self._divisors = torch.cummax(torch.where(fits, k, torch.ones_like(k)), dim=1).values
        return self._divisors

    def _swap_loops(self, fac: torch.Tensor, order: torch.Tensor, mask: torch.Tensor, generator) -> None:
        lay = self.layout
        rows = mask.nonzero().flatten()
        if not len(rows):
            return
        n = len(rows)
        free_dim = torch.ones(lay.L, lay.D, dtype=torch.bool)
        for li, inner in enumerate(self.fixed_inner):
            free_dim[li, inner] = False
        swappable = (fac[rows, :, : lay.L].transpose(1, 2) > 1) & free_dim[None]  # [n, L, D]
        r0 = torch.rand(n, lay.L, generator=generator)
        lvl = torch.where(swappable.sum(2) >= 2, r0, torch.full_like(r0, -1.0)).argmax(1)
        nontriv = swappable[torch.arange(n), lvl]  # [n, D]
        r = torch.rand(n, lay.D, generator=generator)
        a = torch.where(nontriv, r, torch.full_like(r, -1.0)).argmax(1)
        r[torch.arange(n), a] = -1.0
        b = torch.where(nontriv, r, torch.full_like(r, -1.0)).argmax(1)
        ok = nontriv.sum(1) >= 2
        rr, ll, aa, bb = rows[ok], lvl[ok], a[ok], b[ok]
        pa, pb = order[rr, ll, aa].clone(), order[rr, ll, bb].clone()
        order[rr, ll, aa] = pb
        order[rr, ll, bb] = pa

    # ---- GAMMA-style crossover ----------------------------------------------------------------
    def crossover(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Children taking each dim's tiling (all its slots) and each level's loop order from
        one parent or the other."""
        lay = self.layout
        n = a.shape[0]
        fa, oa, xa, ka = lay.split(a)
        fb, ob, xb, kb = lay.split(b)
        pick_d = torch.rand(n, lay.D, 1, generator=generator) < 0.5
        fac = torch.where(pick_d, fa, fb)
        pick_l = torch.rand(n, lay.L, 1, generator=generator) < 0.5
        order = torch.where(pick_l, oa, ob)
        axis = torch.where(pick_d.transpose(1, 2).expand(n, lay.F, lay.D), xa, xb)
        keep = torch.where(torch.rand(n, lay.L, 1, generator=generator) < 0.5, ka, kb)
        self._repair_axes(fac, axis)
        return torch.cat([fac.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1)

    # ---- continuous codes -------------------------------------------------------------------
    def to_code(self, genomes: torch.Tensor) -> torch.Tensor:
        """[N, C] floats: log factor shares per (dim, slot), loop positions in [0, 1], axes, keeps."""
        lay = self.layout
        fac, order, axis, keep = lay.split(genomes)
        logb = torch.log(torch.tensor(self.workload.bounds, dtype=torch.float64).clamp(min=2))[None, :, None]
        return torch.cat([(torch.log(fac.double()) / logb).flatten(1), order.double().flatten(1) / max(1, lay.D - 1),
                          axis.double().flatten(1), keep.double().flatten(1)], 1)

    def from_code(self, code: torch.Tensor) -> torch.Tensor:
        """Nearest genomes: per dim the factorization closest in log space, orders by rank,
        axes and keeps by rounding, then the constraints applied."""
        lay = self.layout
        N = code.shape[0]
        a = lay.D * lay.S
        b = a + lay.L * lay.D
        c = b + lay.F * lay.D
        shares = code[:, :a].reshape(N, lay.D, lay.S)
        logb = torch.log(torch.tensor(self.workload.bounds, dtype=torch.float64).clamp(min=2))
        fac = torch.empty(N, lay.D, lay.S, dtype=torch.int64)
        for d, table in enumerate(self.tables):
            tl = torch.log(table.double()) / logb[d]
            dist = torch.cdist(shares[:, d].double(), tl)
            fac[:, d] = table[dist.argmin(1)]
        order = torch.argsort(torch.argsort(code[:, a:b].reshape(N, lay.L, lay.D), dim=-1), dim=-1)
        axis = (code[:, b:c].reshape(N, lay.F, lay.D) > 0.5).long()
        keep = (code[:, c:].reshape(N, lay.L, lay.T) > 0.5).long()
        self._apply_fixed(order, axis, keep)
        self._repair_axes(fac, axis)
        return torch.cat([fac.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1)

    # ---- pruned enumeration -----------------------------------------------------------------
    def pruned_size(self) -> int:
        """Points `enumerate` visits: per factorization, the orders of the non-trivial loops of
        each level (trivial loops and constrained ones are not permuted), the axes of non-trivial
        spatial dims, and the free bypass choices."""
        lay = self.layout
        n_f = math.prod(len(t) for t in self.tables)
        if n_f > ENUMERATION_LIMIT:
            return n_f
        combos = torch.cartesian_prod(*[torch.arange(len(t)) for t in self.tables]) if lay.D > 1 else \
            torch.arange(len(self.tables[0]))[:, None]
        fac = torch.stack([self.tables[d][combos[:, d]] for d in range(lay.D)], 1)  # [n, D, S]
        total = torch.ones(len(combos), dtype=torch.float64)
        for li in range(lay.L):
            nt = fac[:, :, li] > 1
            if self.fixed_inner[li]:
                nt[:, self.fixed_inner[li]] = False
            k = nt.sum(1)
            total *= torch.tensor([math.factorial(int(x)) for x in range(lay.D + 1)], dtype=torch.float64)[k]
        for f in range(lay.F):
            free_ax = (fac[:, :, lay.L + f] > 1) & (self.axis_fixed[f] < 0)[None]
            total *= 2.0 ** free_ax.sum(1)
        total *= 2.0 ** int((self.keep_fixed < 0).sum())
        return int(total.sum())

    def enumerate(self, chunk: int = 65536):
        """Yield genome batches covering the pruned space; refuses spaces above the limit."""
        size = self.pruned_size()
        if size > ENUMERATION_LIMIT:
            raise AccelmapError(f"the pruned space of {self.workload.name} has {size:,} points, above the "
                                f"exhaustive limit of {ENUMERATION_LIMIT:,}; use another optimizer")
        lay = self.layout
        free_keep = (self.keep_fixed < 0).nonzero().tolist()
        buf: list[list[int]] = []
        for combo in itertools.product(*[range(len(t)) for t in self.tables]):
            fac = torch.stack([self.tables[d][i] for d, i in enumerate(combo)])  # [D, S]
            per_level = []
            for li in range(lay.L):
                inner = self.fixed_inner[li]
                nt = [d for d in range(lay.D) if fac[d, li] > 1 and d not in inner]
                rest = [d for d in range(lay.D) if d not in nt and d not in inner]
                opts = []
                for perm in itertools.permutations(nt):
                    pos = [0] * lay.D
                    seq = rest + list(perm) + list(reversed(inner))  # outermost first
                    for p, d in enumerate(seq):
                        pos[d] = p
                    opts.append(pos)
                per_level.append(opts)
            ax_free = [(f, d) for f in range(lay.F) for d in range(lay.D)
                       if fac[d, lay.L + f] > 1 and self.axis_fixed[f, d] < 0]
            base_axis = self.axis_fixed.clamp(min=0).clone()
            for orders in itertools.product(*per_level):
                for bits in itertools.product((0, 1), repeat=len(ax_free)):
                    axis = base_axis.clone()
                    for (f, d), v in zip(ax_free, bits):
                        axis[f, d] = v
                    for kb in itertools.product((0, 1), repeat=len(free_keep)):
                        keep = self.keep_fixed.clamp(min=0).clone()
                        for (li, ti), v in zip(free_keep, kb):
                            keep[li, ti] = v
                        buf.append(fac.flatten().tolist() + [x for o in orders for x in o] + axis.flatten().tolist()
                                   + keep.flatten().tolist())
                        if len(buf) >= chunk:
                            yield torch.tensor(buf, dtype=torch.int64)
                            buf = []
        if buf:
            yield torch.tensor(buf, dtype=torch.int64)
