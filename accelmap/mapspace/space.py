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

**Imperfect factors** (``MappingSpace(..., imperfect=True)``, Timeloop's ``P=8,5`` and its ruby
mapspace): ``factors`` then holds loop *ends*, which need not divide. The genome layout is the
same; per dim the top slot (the 'rest' slot, else the outermost free slot in Timeloop's tiling
order) takes ceil(bound / product of the other ends), the other free ends are clamped to what the
bound leaves inside them, and the residual ends are the mixed-radix digits of bound - 1
(innermost first), so every decoded mapping satisfies the bound rule
(:func:`~accelmap.mapping.mapping.covered_bound`) and the outermost loop that iterates has its end
equal to its residual end. ``remainders: N`` in the constraints (ruby's knob) allows residual
ends only at the levels that carry it, up to N; without any, every level may take them. Every
perfect factorization is a point of the imperfect space, and ``imperfect=False`` is exactly the
perfect space (same genomes, same draws for the same seed). An imperfect space's ``tables`` hold
its perfect factorizations first, then a fixed draw of canonical imperfect ones.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from accelmap.arch.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import MappingBatch
from accelmap.mapspace import moves
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
                 device: str = "cpu", imperfect: bool = False, seeds: torch.Tensor | None = None):
        """``device``: where :meth:`evaluate` runs the cost model ("cuda": the tensor model on the
        GPU, costs brought back to the CPU); genomes and everything else stay on the CPU.

        ``imperfect``: loops may take ends that do not divide (Timeloop's ``P=8,5``, ruby's
        factor space; see the module docstring); False gives exactly the perfect space.
        ``seeds`` [K, G]: genomes :meth:`sample` returns first in every batch (e.g. the perfect
        search's best, so that an imperfect search starts from it)."""
        self.workload, self.arch = workload, arch
        self.device = device
        self.imperfect = bool(imperfect)
        self.constraints = constraints or Constraints()
        # fixed ends need not divide a bound in an imperfect space (residual ends cover it); whether
        # they still leave a covering is settled when the space builds its rows
        self.constraints.check(workload, arch, divisible=not self.imperfect)
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
        self._fixed_ends: list[dict[int, int]] = []  # per dim: slot -> end a constraint fixes
        self._rest_slot: list[int] = []  # per dim: the slot given 'all the rest' (factor 0), or -1
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
            self._fixed_ends.append(dict(fixed))
            self._rest_slot.append(rest[0] if rest else -1)
            if self.imperfect and bound % math.prod(fixed.values() or [1]):
                rows = []  # no perfect factorization: the imperfect space's own rows (_setup_imperfect)
                for s in ([] if rest else free):
                    self.free_slots[di, s] = True
            elif rest:
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
            if not rows and not self.imperfect:
                raise AccelmapError(f"no factorization of {d}={bound} satisfies the constraints",
                                    file=self.constraints.source, field=d)
            self.tables.append(torch.tensor(rows, dtype=torch.int64).reshape(len(rows), S))

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
        self._fan_t = torch.tensor([arch.fanout(li) for li in self.fan_levels], dtype=torch.int64).reshape(F, 2)
        self._fan = self._fan_t.numpy()
        self._fan_levels_t = torch.tensor(self.fan_levels, dtype=torch.int64)
        self._n_free = self.free_slots.sum(1).numpy()
        self._free_keep = (self.keep_fixed < 0).nonzero()  # [K, 2] (level, tensor) of each free bypass choice
        free_dim = torch.ones(L, D, dtype=torch.bool)  # loops a permutation constraint does not pin
        for li, inner in enumerate(self.fixed_inner):
            free_dim[li, inner] = False
        self._free_dim = free_dim.numpy()
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
        self.seeds = None if seeds is None else seeds.reshape(-1, self.layout.size).long().clone()
        self._enum: list[torch.Tensor] | None = None
        if self.imperfect:
            self._setup_imperfect()
        # every dim's table rows one after another (the outward seeding's compiled pick reads them)
        self._table_off = torch.tensor([0] + [len(t) for t in self.tables]).cumsum(0)
        self._table_cat = torch.cat(self.tables)

    # ---- size, model --------------------------------------------------------------------
    @property
    def model(self) -> CostModel:
        if self._model is None:
            self._model = CostModel(self.workload, self.arch, device=self.device)
        return self._model

    def size(self) -> float:
        """Points in the (unpruned) space: factorizations x orders x axes x bypass choices."""
        lay = self.layout
        n = self._factor_choices()
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
        """The mappings of genomes [N, G]. In an imperfect space the ends are made canonical and
        the residual ends derived from the bound rule; the batch carries them only when some
        loop's residual end differs from its end (None otherwise, as in a perfect space)."""
        fac, order, axis, keep = self.layout.split(genomes)
        if self.imperfect:
            fac = fac.clone()
            self._canon(fac)
            res = self._residuals(fac)
            if not torch.equal(res, fac):
                temporal, spatial = self.place(fac, axis, 1)
                t_res, s_res = self.place(res, axis, 1)
                return MappingBatch(temporal, order, spatial, keep.bool(), temporal_residual=t_res,
                                    spatial_residual=s_res)
        if moves.use():  # the same arrays, in one compiled pass (decoding is in every search step)
            N, (L, D), T = len(genomes), (self.layout.L, self.layout.D), self.layout.T
            temporal = torch.empty(N, L, D, dtype=MappingBatch.FACTOR_DTYPE)
            spatial = torch.empty(N, L, D, 2, dtype=MappingBatch.FACTOR_DTYPE)
            order8 = torch.empty(N, L, D, dtype=MappingBatch.ORDER_DTYPE)
            sorder = torch.empty(N, L, D, dtype=MappingBatch.ORDER_DTYPE)
            keep_b = torch.empty(N, L, T, dtype=torch.bool)
            moves._decode(fac.numpy(), order.numpy(), axis.numpy(), keep.numpy(), self._fan_levels_t.numpy(),
                          temporal.numpy(), spatial.numpy(), order8.numpy(), sorder.numpy(), keep_b.numpy())
            return MappingBatch(temporal, order8, spatial, keep_b, sorder)
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
        if not lay.F or not len(fac):
            return
        if moves.use():
            moves._repair(fac.numpy(), axis.numpy(), lay.L, self._fan, self.axis_fixed.numpy())
            return
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
        for capacity). In an imperfect space about half the dims take imperfect ends instead of
        their perfect draw. The space's ``seeds`` come first."""
        lay = self.layout
        tables = self._perfect_tables if self.imperfect else self.tables
        fac = torch.stack([t[torch.randint(len(t), (n,), generator=generator)] for t in tables], 1)
        keys = torch.rand(n, lay.L, lay.D, generator=generator)
        if lay.D <= 16 and moves.use():  # the same positions (torch sorts rows of <= 16 stably), compiled
            order = torch.empty(n, lay.L, lay.D, dtype=torch.int64)
            moves._ranks(keys.numpy(), order.numpy())
        else:
            order = torch.argsort(torch.argsort(keys, dim=-1), dim=-1)  # a random permutation's positions
        axis = torch.randint(0, 2, (n, lay.F, lay.D), generator=generator)
        keep = torch.randint(0, 2, (n, lay.L, lay.T), generator=generator)
        if self.imperfect:  # after every draw of the perfect space, which it leaves as they are
            self._imperfect_sample(fac, generator)
        self._apply_fixed(order, axis, keep)
        self._repair_axes(fac, axis)
        out = torch.cat([fac.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1)
        if self.seeds is not None:
            k = min(n, len(self.seeds))
            out[:k] = self.seeds[:k]
        return out

    def evaluate(self, genomes: torch.Tensor, detail: bool = False, invalid_costs: bool = True):
        """The exact costs of genomes [N, G] (Timeloop's numbers, residual ends included);
        ``invalid_costs=False``: an invalid genome's energy and cycles may be +inf (see CostModel)."""
        if self.device == "cpu":
            return self.model(self.decode(genomes), detail=detail, invalid_costs=invalid_costs)
        return self.model(self.decode(genomes).to(self.device), detail=detail).to("cpu")

    def screen(self, genomes: torch.Tensor, invalid_costs: bool = True):
        """Costs of genomes [N, G] for ranking in a search: exact in a perfect space; in an
        imperfect one the cost model's fast estimate of residual mappings (exact validity,
        compute cycles and MACs; see ``CostModel.screen``), which searches verify with
        :meth:`evaluate` before they report. ``invalid_costs=False``: a search that scores
        invalid genomes +inf may get +inf energy and cycles for them (cheaper)."""
        if not self.imperfect:
            return self.evaluate(genomes, invalid_costs=invalid_costs)
        if self.device == "cpu":
            return self.model.screen(self.decode(genomes))
        return self.model.screen(self.decode(genomes).to(self.device)).to("cpu")

    def reasons(self, genomes: torch.Tensor) -> torch.Tensor:
        """[N] int64: why each genome is illegal (``accelmap.model.status`` codes; 0: legal), the
        cost model's validity alone (the compiled kernel stops there, on the CPU)."""
        if self.imperfect:
            return self.screen(genomes).reason  # (validity is exact in the screen)
        if self.device == "cpu":
            return self.model(self.decode(genomes), detail=False, validity_only=True).reason
        return self.evaluate(genomes).reason

    def sample_legal(self, n: int, generator: torch.Generator, max_draws: int = 2_000_000) -> torch.Tensor:
        """n legal genomes by rejection (uniform over the legal space); an error naming the
        commonest failure when no legal mapping turns up in ``max_draws`` samples."""
        got: list[torch.Tensor] = []
        have, drawn = 0, 0
        reasons = torch.zeros(len(REASONS), dtype=torch.int64)
        while have < n and drawn < max_draws:
            k = min(max(4 * (n - have), 1024), 65536)
            g = self.sample(k, generator)
            why = self.reasons(g)
            drawn += k
            reasons += torch.bincount(why, minlength=len(REASONS))
            ok = g[why == 0]
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
        if self.imperfect:  # the moves below read ends up to the bound (canonical ends)
            genomes = self.canonical(genomes)
        out = genomes.clone()
        fac, order, axis, keep = lay.split(out)
        kind = torch.randint(0, 11, (N,), generator=generator)
        # 0-5: factor move (the most useful move), 6-7: swap, 8: axis, 9: keep, 10: refill the mesh
        if moves.use():
            self._compiled_moves(kind, fac, order, axis, keep, generator)
            if self.imperfect:
                self._imperfect_neighbours(genomes, out, generator)
            return out
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
        if self.imperfect:  # ends that need not divide: drawn after every perfect move's draws
            self._imperfect_neighbours(genomes, out, generator)
        return out

    def _compiled_moves(self, kind: torch.Tensor, fac, order, axis, keep, generator: torch.Generator) -> None:
        """:meth:`neighbours`' moves in one compiled call, from the same draws in the same order."""
        lay = self.layout
        N, L, D, S = len(kind), lay.L, lay.D, lay.S
        f32 = lambda *shape: torch.empty(shape, dtype=torch.float32)  # noqa: E731 - a move not drawn this step
        i64 = lambda n=0: torch.empty(n, dtype=torch.int64)  # noqa: E731
        no = torch.empty(0, dtype=torch.bool)
        rows1 = (kind <= 5).nonzero().flatten()
        n = len(rows1)
        if n:
            r0, r1, r2 = (torch.rand(n, D, generator=generator), torch.rand(n, S, generator=generator),
                          torch.rand(n, S, generator=generator))
            big = torch.rand(n, generator=generator) < 0.5
        else:
            r0, r1, r2, big = f32(0, D), f32(0, S), f32(0, S), no
        rows2 = (kind == 10).nonzero().flatten()
        n = len(rows2)
        if n and lay.F:
            f, r_drop, u_drop, rt_a, ax_draw, r_fill, rt_b = self._fill_draws(n, generator)
        else:
            rows2, f, r_drop, u_drop, rt_a, ax_draw, r_fill, rt_b = i64(), i64(), f32(0, D), no, f32(0, L), i64(), f32(0, D), f32(0, L)
        rows3 = ((kind == 6) | (kind == 7)).nonzero().flatten()
        n = len(rows3)
        s0, s1 = (torch.rand(n, L, generator=generator), torch.rand(n, D, generator=generator)) if n else (f32(0, L), f32(0, D))
        m = kind == 8
        if m.any() and lay.F:
            f8, d8 = torch.randint(0, lay.F, (N,), generator=generator), torch.randint(0, D, (N,), generator=generator)
            flip_rows = m.nonzero().flatten()
        else:
            f8, d8, flip_rows = i64(), i64(), i64()
        m = kind == 9
        if m.any() and len(self._free_keep):
            pick = torch.randint(0, len(self._free_keep), (N,), generator=generator)
            keep_rows = m.nonzero().flatten()
        else:
            pick, keep_rows = i64(), i64()
        moves._neighbours(fac.numpy(), order.numpy(), axis.numpy(), keep.numpy(), L, self._fan, self.free_slots.numpy(),
                          self._n_free, self._spf.numpy(), self._lpf.numpy(), self.axis_fixed.numpy(),
                          self._divisor_table(int(self._fan_t.max()) if lay.F else 1).numpy(), self._free_dim,
                          self._free_keep.numpy(), rows1.numpy(), r0.numpy(), r1.numpy(), r2.numpy(), big.numpy(),
                          rows2.numpy(), f.numpy(), r_drop.numpy(), u_drop.numpy(), rt_a.numpy(), r_fill.numpy(),
                          ax_draw.numpy(), rt_b.numpy(), rows3.numpy(), s0.numpy(), s1.numpy(), flip_rows.numpy(),
                          f8.numpy(), d8.numpy(), keep_rows.numpy(), pick.numpy())

    def refill_meshes(self, genomes: torch.Tensor, generator: torch.Generator, moves: int = 2) -> torch.Tensor:
        """Copies of genomes [N, G] after ``moves`` mesh refills each (the neighbourhood's refill
        move: one dim's spatial factor back to a temporal slot, an axis filled with the largest
        fitting divisor of another dim): random factorizations seldom use the whole PE array, and
        a pool screened by a predictor needs such mappings to offer them."""
        out = genomes.clone()
        fac, _, axis, _ = self.layout.split(out)
        for _ in range(moves):
            self._fill_mesh(fac, axis, torch.ones(len(out), dtype=torch.bool), generator)
            self._repair_axes(fac, axis)
        if self.imperfect:  # ends made canonical; a row whose ends turn illegal stays as it was
            self._canon(fac)
            bad = ~self._dims_ok(fac, self._residuals(fac)).all(1)
            out[bad] = genomes[bad]
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

    def _fill_draws(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The draws of n mesh refills, in the tensor code's order (:meth:`_fill_mesh`), for the
        compiled refill: fan level, drop choice and coin, temporal slot (own-level bonus added),
        axis, fill choice, temporal slot."""
        ar = torch.arange(n)
        f = torch.randint(0, self.layout.F, (n,), generator=generator)
        own = self._fan_levels_t[f]
        r_drop = torch.rand(n, self.layout.D, generator=generator)
        u_drop = torch.rand(n, generator=generator) < 0.5
        rt_a = torch.rand(n, self.layout.L, generator=generator)
        rt_a[ar, own] += (torch.rand(n, generator=generator) < 0.5).to(rt_a.dtype)
        ax_draw = torch.randint(0, 2, (n,), generator=generator)
        r_fill = torch.rand(n, self.layout.D, generator=generator)
        rt_b = torch.rand(n, self.layout.L, generator=generator)
        rt_b[ar, own] += (torch.rand(n, generator=generator) < 0.5).to(rt_b.dtype)
        return f, r_drop, u_drop, rt_a, ax_draw, r_fill, rt_b

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
        fan = self._fan_t
        if moves.use():  # the same draws, the rest compiled (mesh refills outside neighbours: DCP's pools)
            f, r_drop, u_drop, rt_a, ax_draw, r_fill, rt_b = self._fill_draws(n, generator)
            moves._fill_mesh(fac.numpy(), axis.numpy(), rows.numpy(), L, self._fan, self.free_slots.numpy(),
                             self.axis_fixed.numpy(), self._divisor_table(int(fan.max())).numpy(), f.numpy(),
                             r_drop.numpy(), u_drop.numpy(), rt_a.numpy(), r_fill.numpy(), ax_draw.numpy(), rt_b.numpy())
            return
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
        """[V, cap + 1]: the largest divisor of v that is at most c (V: the largest bound + 1,
        times the widest mesh axis in an imperfect space)."""
        if getattr(self, "_divisors", None) is None or self._divisors.shape[1] < cap + 1:
            # imperfect ends are at most the bound, but a mesh refill called on its own (not through
            # neighbours, which makes ends canonical) may first drop a spatial end onto a temporal one
            most = len(self._spf) if not self.imperfect else len(self._spf) * max(
                [max(self.arch.fanout(li)) for li in self.fan_levels] or [1])
            v = torch.arange(most)[:, None]
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
        free_dim = torch.from_numpy(self._free_dim)
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
        if moves.use():  # the same draws, the rest compiled
            pick_d = torch.rand(n, lay.D, generator=generator) < 0.5
            pick_l = torch.rand(n, lay.L, generator=generator) < 0.5
            pick_k = torch.rand(n, lay.L, generator=generator) < 0.5
            child = torch.empty(n, lay.size, dtype=torch.int64)
            moves._crossover(a.contiguous().numpy(), b.contiguous().numpy(), lay.D, lay.S, lay.L, lay.F, lay.T,
                             pick_d.numpy(), pick_l.numpy(), pick_k.numpy(), child.numpy())
            fac, _, axis, _ = lay.split(child)
            self._repair_axes(fac, axis)
            return child
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
        """Nearest genomes: per dim the factorization closest in log space (in an imperfect
        space: each free end rounded to the nearest integer, the rest from the bound rule), orders
        by rank, axes and keeps by rounding, then the constraints applied."""
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
        if self.imperfect:
            # each end rounded to an integer, the top and the residual ends from the bound rule;
            # a dim whose rounded ends are illegal keeps its nearest table row
            ends = self._round_ends(shares)
            ok = self._dims_ok(ends, self._residuals(ends))
            fac = torch.where(ok[:, :, None], ends, fac)
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
        tables = self._enum_tables()
        n_f = self._factor_choices()
        if n_f > ENUMERATION_LIMIT or tables is None:
            return n_f
        combos = torch.cartesian_prod(*[torch.arange(len(t)) for t in tables]) if lay.D > 1 else \
            torch.arange(len(tables[0]))[:, None]
        fac = torch.stack([tables[d][combos[:, d]] for d in range(lay.D)], 1)  # [n, D, S]
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
        tables = self._enum_tables()
        buf: list[list[int]] = []
        for combo in itertools.product(*[range(len(t)) for t in tables]):
            fac = torch.stack([tables[d][i] for d, i in enumerate(combo)])  # [D, S]
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

    # ---- imperfect factors (``imperfect=True``) -----------------------------------------------
    # A genome's factors are then loop *ends*; the residual ends follow from the bound rule. Per
    # dim, the "top" slot (the 'rest' slot, else the outermost free slot in Timeloop's order of
    # tiling levels) takes ceil(bound / product of the other ends), and every other free slot is
    # clamped, innermost first, to ceil(bound / product of the ends inside it): a loop never runs
    # more iterations than its dimension has left, so the outermost loop that iterates has its
    # end equal to its residual end (a larger end only adds cycles, imperfect_semantics.md §4).
    # The residual ends are then the mixed-radix digits of bound - 1 (innermost first), which
    # satisfy the bound rule exactly; a perfect factorization is left as it is (every r == f).

    def _setup_imperfect(self) -> None:
        lay = self.layout
        D, S, L = lay.D, lay.S, lay.L
        arch, cons = self.arch, self.constraints
        tiling = []  # slots outermost first: each level's temporal loop, then its fan-out's spatial loop
        for li in range(L):
            tiling.append(li)
            if li in self.fan_levels:
                tiling.append(L + self.fan_levels.index(li))
        self._tiling = tiling
        any_rem = any(c.remainders is not None or c.spatial_remainders is not None for c in cons.levels)
        big = max(self.workload.bounds) + 1
        self._fixed_t = torch.zeros(D, S, dtype=torch.int64)  # a constraint's end, 0 where none
        self._lo = torch.ones(D, S, dtype=torch.int64)
        self._hi = torch.zeros(D, S, dtype=torch.int64)  # largest legal end (the perfect tables' caps)
        self._draw_hi = torch.zeros(D, S, dtype=torch.int64)  # largest end worth drawing
        self._res_cap = torch.full((D, S), big, dtype=torch.int64)  # largest residual end where r != f
        self._top = torch.full((D,), -1, dtype=torch.int64)
        for d, (dim, bound) in enumerate(zip(self.workload.dims, self.workload.bounds)):
            for s in range(S):
                li = s if s < L else self.fan_levels[s - L]
                c = cons.at(arch.levels[li].name)
                kind = "temporal" if s < L else "spatial"
                hi = bound if s < L else min(bound, math.prod(arch.fanout(li)))
                for k, dd, op, v in c.bounds:
                    if k == kind and dd == dim:
                        if op == "<=":
                            hi = min(hi, v)
                        else:
                            self._lo[d, s] = max(int(self._lo[d, s]), v)
                self._hi[d, s] = hi
                self._draw_hi[d, s] = hi if s < L else min(hi, max(arch.fanout(li)))
                if any_rem:  # ruby's rule: residual ends only at levels with 'remainders: N'
                    self._res_cap[d, s] = (c.remainders if s < L else c.spatial_remainders) or 0
                if s in self._fixed_ends[d]:
                    self._fixed_t[d, s] = self._fixed_ends[d][s]
            rest = self._rest_slot[d]
            if rest >= 0:
                self._top[d] = rest
            else:
                free = [s for s in tiling if bool(self.free_slots[d, s])]
                self._top[d] = free[0] if free else -1
        self._free_nt = self.free_slots.clone()  # free slots other than the top
        for d in range(D):
            if self._top[d] >= 0:
                self._free_nt[d, self._top[d]] = False
        # a dim without a perfect factorization starts from imperfect rows
        for d, t in enumerate(self.tables):
            if len(t):
                continue
            rows, _ = self._dim_rows(d, 4096)
            if not len(rows):
                dim, bound = self.workload.dims[d], self.workload.bounds[d]
                raise AccelmapError(f"no factorization of {dim}={bound}, perfect or imperfect, satisfies the "
                                    f"constraints", file=self.constraints.source, field=dim)
            self.tables[d] = rows
        # The perfect rows (sampling's first draw, the move back to a perfect factorization), and
        # the tables extended by canonical imperfect rows: optimizers that draw factorizations
        # from the tables themselves (the portfolio's outward seeding) then draw imperfect ends too.
        # The extra rows come from a fixed generator, so a space is the same every time it is built.
        self._perfect_tables = list(self.tables)
        n = 1024
        gen = torch.Generator().manual_seed(16)
        base = torch.stack([t[torch.randint(len(t), (n,), generator=gen)] for t in self.tables], 1)
        extra = base.clone()
        self._imperfect_sample(extra, gen, share=1.0)
        for d, t in enumerate(self.tables):
            new = extra[:, d][(extra[:, d] != base[:, d]).any(1)]
            if len(new):
                keys = {tuple(r) for r in t.tolist()}
                # about as many imperfect rows as perfect ones (at least 64): a draw from the
                # table lands on either kind about equally often
                rows = [r for r in dict.fromkeys(map(tuple, new.tolist())) if r not in keys][: max(len(t), 64)]
                if rows:
                    self.tables[d] = torch.cat([t, torch.tensor(rows, dtype=torch.int64)])

    def _canon(self, fac: torch.Tensor) -> None:
        """Canonical ends in place, [N, D, S] (see the section comment)."""
        for d, bound in enumerate(self.workload.bounds):
            top = int(self._top[d])
            if top < 0:
                continue
            P = torch.ones(fac.shape[0], dtype=torch.int64)
            for s in reversed(self._tiling):
                if s == top:
                    continue
                e = fac[:, d, s]
                if self._free_nt[d, s]:
                    e = torch.minimum(e.clamp(min=1), -(-bound // P))
                    fac[:, d, s] = e
                P = torch.minimum(P * e, torch.tensor(bound))  # only ceil(bound / P) matters
            fac[:, d, top] = -(-bound // P)

    def _residuals(self, fac: torch.Tensor) -> torch.Tensor:
        """[N, D, S] residual ends of canonical ends [N, D, S]: the mixed-radix digits of
        bound - 1, innermost loop first; the outermost loop's residual end is what is left + 1."""
        res = fac.clone()
        inner_first = list(reversed(self._tiling))
        for d, bound in enumerate(self.workload.bounds):
            x = torch.full((fac.shape[0],), bound - 1, dtype=torch.int64)
            for s in inner_first[:-1]:
                f = fac[:, d, s].clamp(min=1)
                res[:, d, s] = x % f + 1
                x = x // f
            res[:, d, inner_first[-1]] = x + 1
        return res

    def _dims_ok(self, fac: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        """[N, D] whether each dim's canonical ends and residual ends are legal: covered (the
        outermost residual end within its end), factor bounds and caps on free slots, and
        'remainders' (residual ends only where allowed, up to N)."""
        s0 = self._tiling[0]
        ok = res[:, :, s0] <= fac[:, :, s0]
        free = self.free_slots.clone()  # bounds bind free slots and a top that is not the 'rest' slot
        for d in range(self.layout.D):
            if self._top[d] >= 0 and self._rest_slot[d] < 0:
                free[d, self._top[d]] = True
        inb = (fac >= self._lo[None]) & (fac <= self._hi[None])
        ok &= (inb | ~free[None]).all(2)
        ok &= ((res == fac) | (res <= self._res_cap[None])).all(2)
        return ok

    def canonical(self, genomes: torch.Tensor) -> torch.Tensor:
        """Genomes [N, G] with canonical ends (the form decode reads); unchanged in a perfect space."""
        out = genomes.clone()
        if self.imperfect:
            self._canon(self.layout.split(out)[0])
        return out

    def _loguniform(self, hi: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Integers in [1, hi] with P(k) proportional to log((k + 1) / k)."""
        u = torch.rand(hi.shape, generator=generator, dtype=torch.float64)
        return torch.floor(torch.exp(u * torch.log(hi.double() + 1))).long().clamp(min=1).minimum(hi.clamp(min=1))

    def _imperfect_sample(self, fac: torch.Tensor, generator: torch.Generator, share: float = 0.5) -> None:
        """Replace a ``share`` of the dims of ``fac`` [n, D, S] (perfect rows) by imperfect ends
        in place: the free slots in a random order each draw an end log-uniformly up to what is
        left of the bound (ceil(left / end) after it), the top takes the rest; a dim whose draw is
        illegal keeps its row."""
        n, D, S = fac.shape
        pick = torch.rand(n, D, generator=generator) < share
        slot_order = torch.argsort(torch.rand(n, S, generator=generator), dim=1)
        new = fac.clone()
        for d, bound in enumerate(self.workload.bounds):
            if not bool(self._free_nt[d].any()):
                continue
            fixed = int(self._fixed_t[d].clamp(min=1).prod())
            left = torch.full((n,), -(-bound // fixed), dtype=torch.int64)
            for j in range(S):
                s = slot_order[:, j]
                on = self._free_nt[d][s]
                e = self._loguniform(torch.minimum(self._draw_hi[d][s], left), generator)
                new[:, d] = torch.where(on[:, None] & (torch.arange(S)[None] == s[:, None]), e[:, None], new[:, d])
                left = torch.where(on, -(-left // e), left)
        self._canon(new)
        ok = self._dims_ok(new, self._residuals(new)) & pick
        fac.copy_(torch.where(ok[:, :, None], new, fac))

    def _imperfect_move(self, fac: torch.Tensor, axis: torch.Tensor, mask: torch.Tensor,
                        generator: torch.Generator) -> None:
        """One end move per masked row, in place: nudge an end (+-1, or a log-uniform draw),
        fill a mesh axis with one dim's end (all the room left on the axis, or part of it), or
        reset a dim to a perfect factorization."""
        lay = self.layout
        rows = mask.nonzero().flatten()
        if not len(rows):
            return
        n, D, S, L = len(rows), lay.D, lay.S, lay.L
        ar = torch.arange(n)
        kind = torch.randint(0, 3, (n,), generator=generator)
        fr, axr = fac[rows], axis[rows]  # [n, D, S], [n, F, D]
        # 0: nudge one free end
        cand = self._free_nt.flatten()
        r = torch.rand(n, D * S, generator=generator)
        pick = torch.where(cand[None], r, torch.full_like(r, -1.0)).argmax(1)
        d, s = pick // S, pick % S
        cur = fr[ar, d, s]
        step = torch.where(torch.rand(n, generator=generator) < 0.5, 1, -1)
        draw = self._loguniform(self._draw_hi[d, s], generator)
        val = torch.where(torch.rand(n, generator=generator) < 0.5, cur + step, draw)
        val = val.clamp(min=1).minimum(self._draw_hi[d, s].clamp(min=1))
        m = (kind == 0) & bool(cand.any())
        fr[ar[m], d[m], s[m]] = val[m]
        # 1: fill a mesh axis
        if lay.F:
            fan = torch.tensor([self.arch.fanout(li) for li in self.fan_levels], dtype=torch.int64)  # [F, 2]
            f = torch.randint(0, lay.F, (n,), generator=generator)
            sf = L + f
            ok_d = self._free_nt.t()[sf]  # [n, D]
            r = torch.rand(n, D, generator=generator)
            d1 = torch.where(ok_d, r, torch.full_like(r, -1.0)).argmax(1)
            fixed = self.axis_fixed[f, d1]
            ax = torch.where(fixed >= 0, fixed, axr[ar, f, d1])
            sp = fr[ar, :, sf]  # [n, D]
            on_ax = (axr[ar, f] == ax[:, None]) & (torch.arange(D)[None] != d1[:, None])
            used = torch.where(on_ax, sp, torch.ones_like(sp)).prod(1)
            room = (fan[f, ax] // used).clamp(min=1)
            part = 1 + (torch.rand(n, generator=generator) * room).long().minimum(room - 1)
            val = torch.where(torch.rand(n, generator=generator) < 0.5, room, part)
            m = (kind == 1) & ok_d.any(1)
            fr[ar[m], d1[m], sf[m]] = val[m]
            axr[ar[m], f[m], d1[m]] = ax[m]
        # 2: one dim back to a perfect factorization
        d2 = torch.randint(0, D, (n,), generator=generator)
        u = torch.rand(n, generator=generator)
        for dd, t in enumerate(self._perfect_tables):
            m = (kind == 2) & (d2 == dd)
            if m.any() and len(t):
                fr[ar[m], dd] = t[(u[m] * len(t)).long().clamp(max=len(t) - 1)]
        fac[rows], axis[rows] = fr, axr

    def _imperfect_neighbours(self, before: torch.Tensor, out: torch.Tensor, generator: torch.Generator) -> None:
        """After the perfect moves: an end move on about a third of the rows, then canonical ends;
        a row whose ends turn illegal goes back to ``before``."""
        lay = self.layout
        fac, _, axis, _ = lay.split(out)
        mask = torch.rand(len(out), generator=generator) < 0.35
        self._imperfect_move(fac, axis, mask, generator)
        self._canon(fac)
        bad = ~self._dims_ok(fac, self._residuals(fac)).all(1)
        out[bad] = before[bad]
        self._repair_axes(fac, axis)

    def _round_ends(self, shares: torch.Tensor) -> torch.Tensor:
        """[N, D, S] ends nearest to code shares (log end / log bound), canonical: each free
        slot's end rounded to an integer, fixed slots as fixed, the top from the bound rule."""
        logb = torch.log(torch.tensor(self.workload.bounds, dtype=torch.float64).clamp(min=2))
        e = torch.round(torch.exp(shares.double() * logb[None, :, None])).long()
        e = e.clamp(min=1).minimum(self._hi[None].clamp(min=1))
        fac = torch.where(self._free_nt[None], e, self._fixed_t.clamp(min=1)[None].expand_as(e)).clone()
        self._canon(fac)
        return fac

    def _dim_rows(self, d: int, limit: int) -> tuple[torch.Tensor, bool]:
        """Canonical legal ends [R, S] of dim d (every choice of the free slots' ends, innermost
        first, each within what the bound leaves); at most ``limit`` rows, and whether complete."""
        S = self.layout.S
        bound = self.workload.bounds[d]
        top = int(self._top[d])
        slots = [s for s in reversed(self._tiling) if s != top]
        out: list[list[int]] = []
        row = [1] * S
        done = [True]

        def rec(i: int, left: int) -> None:
            if len(out) >= limit:
                done[0] = False
                return
            if i == len(slots):
                r = list(row)
                if top >= 0:
                    r[top] = left
                out.append(r)
                return
            s = slots[i]
            if self._fixed_t[d, s] > 0:
                row[s] = int(self._fixed_t[d, s])
                rec(i + 1, -(-left // row[s]))
            elif not self._free_nt[d, s]:
                row[s] = 1
                rec(i + 1, left)
            else:
                for e in range(int(self._lo[d, s]), min(int(self._hi[d, s]), left) + 1):
                    row[s] = e
                    rec(i + 1, -(-left // e))
            row[s] = 1

        rec(0, bound)
        fac = torch.tensor(out, dtype=torch.int64).reshape(len(out), S)
        if not len(fac):
            return fac, done[0]
        full = torch.ones(len(fac), self.layout.D, S, dtype=torch.int64)
        full[:, d] = fac
        ok = self._dims_ok(full, self._residuals(full))[:, d]
        return fac[ok], done[0]

    def _dim_count(self, d: int) -> int:
        """How many end choices :meth:`_dim_rows` walks for dim d (before the legality filter)."""
        bound = self.workload.bounds[d]
        top = int(self._top[d])
        slots = [s for s in reversed(self._tiling) if s != top]
        memo: dict[tuple[int, int], int] = {}

        def count(i: int, left: int) -> int:
            if i == len(slots):
                return 1
            key = (i, left)
            if key not in memo:
                s = slots[i]
                if self._fixed_t[d, s] > 0:
                    memo[key] = count(i + 1, -(-left // int(self._fixed_t[d, s])))
                elif not self._free_nt[d, s]:
                    memo[key] = count(i + 1, left)
                else:
                    memo[key] = sum(count(i + 1, -(-left // e))
                                    for e in range(int(self._lo[d, s]), min(int(self._hi[d, s]), left) + 1))
            return memo[key]

        return count(0, bound)

    def _enum_tables(self) -> list[torch.Tensor] | None:
        """Per dim, the factorizations enumeration walks: the perfect tables, or in an imperfect
        space every canonical legal choice of ends (None when their product is above the limit)."""
        if not self.imperfect:
            return self.tables
        if self._enum is None:
            counts = [self._dim_count(d) for d in range(self.layout.D)]
            if math.prod(counts) > ENUMERATION_LIMIT:
                return None
            self._enum = [self._dim_rows(d, ENUMERATION_LIMIT)[0] for d in range(self.layout.D)]
        return self._enum

    def _factor_choices(self) -> int:
        """Factorizations in the space (in an imperfect space: end choices before legality)."""
        if not self.imperfect:
            return math.prod(len(t) for t in self.tables)
        tables = self._enum_tables()
        if tables is not None:
            return math.prod(len(t) for t in tables)
        return math.prod(self._dim_count(d) for d in range(self.layout.D))
