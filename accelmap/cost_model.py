"""The batched, differentiable analytical cost model, faithful to Timeloop v3 + Accelergy.

One call evaluates a :class:`~accelmap.mapping.MappingBatch` of B mappings. Everything that
depends only on the workload and the architecture (projection coefficients, energies,
capacities, fanouts) is turned into tensors once, in :class:`CostModel.__init__`; the call is
pure tensor math over the batch with small static loops over levels.

How counts follow Timeloop (see shared/reference/timeloop/README.md and Timeloop's nest
analysis; the numbers below are re-derived, not copied):

* A level's tile of a tensor is the axis-aligned box spanned by all loops at and inside the
  level (its own temporal and spatial loops included).
* Fills come from differencing consecutive tiles. Timeloop extrapolates every loop from its
  first two iterations (#0 with weight 1, #1 with weight n-1), and it discards the previous
  tile whenever the tile's translation differs from the previous translation. For the
  innermost non-trivial loop m above a level this gives: a transition of m costs the
  sliding-window delta of m's translation; a transition of an outer loop j costs that same
  delta if j's translation (j advances, loops inside it go back from index 1 to 0) equals
  m's, and the whole tile otherwise.
* A parent's reads (and, for outputs, its updates) are the union of its children's deltas
  at each step: data that several children need is read once (multicast), partial sums of
  children that differ only in reduction dims are reduced on the way (spatial reduction).
* Outputs: updates = content accesses, reads = updates - partition size (first writes need
  no read), fills = deltas - partition size.
* Energy: per level and tensor, instances x (ceil(reads/B)*E_read + ceil(fills/B)*E_write +
  ceil(updates/B)*E_write), plus MACs x E_mac. Cycles: max over levels of compute cycles and
  accesses / bandwidth.

Shapes: B batch, L storage levels (0 = outermost), D loop dims, T tensors, R ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from accelmap.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.mapping import MappingBatch
from accelmap.workload import Workload

# Reason codes of invalid mappings (0 = valid), checked in this order.
VALID, BAD_FACTORS, BAD_FANOUT, BAD_CAPACITY, BAD_KEEP = 0, 1, 2, 3, 4
REASONS = {VALID: "valid", BAD_FACTORS: "factors do not multiply to the bounds",
           BAD_FANOUT: "spatial factors exceed the mesh fanout", BAD_CAPACITY: "tiles exceed a level's capacity",
           BAD_KEEP: "the outermost level must keep every tensor"}


@dataclass(frozen=True)
class Hardware:
    """The architecture's numbers as tensors; co-design passes differentiable ones.

    capacity, read_bw, write_bw: [L] words (inf = unlimited); block: [L] words;
    read_energy, write_energy: [L] pJ per block access; area: [L] um^2 per instance;
    instances: [L] hardware instances; fanout: [L, 2] mesh fanout below each level (X, Y);
    mac_energy, mac_area: [] pJ and um^2; mac_instances: []; clock_ghz: [].
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
        )

    @property
    def total_area(self) -> torch.Tensor:
        return (self.area * self.instances).sum(-1) + self.mac_area * self.mac_instances


@dataclass(frozen=True)
class Costs:
    """Results for a batch. Per-mapping fields are [B]; breakdowns are [B, L, T] per instance.

    energy: pJ; cycles; edp: pJ x cycles; power: mW at the architecture's clock; area: um^2.
    energy_by_level: [B, L+1] pJ, the last column is the MACs. reason: [B] int (0 = valid).
    reads/fills/updates: [B, L, T] scalar accesses per instance; tile: [B, L, T] words kept.
    instances: [B, L] utilized instances; capacity_excess: [B, L] words over capacity (<= 0 ok);
    fanout_excess: [B, L, 2] log of spatial product over fanout (<= 0 ok);
    factor_error: [B, D] log of factor product over bound (0 ok).
    """

    energy: torch.Tensor
    cycles: torch.Tensor
    edp: torch.Tensor
    utilization: torch.Tensor
    power: torch.Tensor
    area: torch.Tensor
    valid: torch.Tensor
    reason: torch.Tensor
    energy_by_level: torch.Tensor
    energy_by_level_tensor: torch.Tensor
    reads: torch.Tensor
    fills: torch.Tensor
    updates: torch.Tensor
    tile: torch.Tensor
    instances: torch.Tensor
    compute_cycles: torch.Tensor
    level_cycles: torch.Tensor
    capacity_excess: torch.Tensor
    fanout_excess: torch.Tensor
    factor_error: torch.Tensor

    def __getitem__(self, idx) -> "Costs":
        return Costs(*(getattr(self, f.name)[idx] for f in fields(self)))


class CostModel:
    """Evaluate mappings of ``workload`` on ``arch``. ``dtype`` float64 keeps counts exact."""

    def __init__(self, workload: Workload, arch: Architecture, dtype=torch.float64, device="cpu"):
        self.workload = workload
        self.arch = arch
        self.dtype = dtype
        self.device = torch.device(device)
        D, T, L = len(workload.dims), len(workload.tensors), len(arch.levels)
        R = max(len(t.ranks) for t in workload.tensors)
        self.D, self.T, self.L, self.R = D, T, L, R
        coef = torch.zeros(T, R, D, dtype=dtype)
        d1 = torch.zeros(T, R, dtype=torch.int64)
        d2 = torch.zeros(T, R, dtype=torch.int64)
        c1 = torch.zeros(T, R, dtype=dtype)
        c2 = torch.zeros(T, R, dtype=dtype)
        for ti, t in enumerate(workload.tensors):
            for ri, rank in enumerate(t.ranks):
                if len(rank) > 2:
                    raise AccelmapError(f"tensor {t.name}: a rank with more than two dimensions is not supported")
                for k, (d, c) in enumerate(rank):
                    di = workload.dims.index(d)
                    coef[ti, ri, di] += c
                    (d1 if k == 0 else d2)[ti, ri] = di
                    (c1 if k == 0 else c2)[ti, ri] = c
        dev = self.device
        self.coef = coef.to(dev)
        self.rank_d1, self.rank_d2 = d1.to(dev), d2.to(dev)
        self.rank_c1, self.rank_c2 = c1.to(dev), c2.to(dev)
        self.read_write = torch.tensor([t.read_write for t in workload.tensors], device=dev)
        self.bounds = torch.tensor(workload.bounds, dtype=dtype, device=dev)
        self.macs = float(workload.macs)
        self.hw = Hardware.from_arch(arch, dtype, dev)

    # ---- public entry points ------------------------------------------------------------------
    def __call__(self, batch: MappingBatch, hw: Hardware | None = None) -> Costs:
        b = batch.to(self.device)
        ft = b.temporal.to(self.dtype)
        fs = b.spatial.to(self.dtype)
        return self._evaluate(ft, fs, b.order, b.keep, hw or self.hw, exact=True, spatial_order=b.spatial_order)

    def relaxed(self, log_temporal: torch.Tensor, log_spatial: torch.Tensor, order: torch.Tensor,
                keep: torch.Tensor, hw: Hardware | None = None) -> Costs:
        """Continuous entry point: log-space factors [B, L, D] and [B, L, D, 2].

        Differentiable in the factors and in every tensor of ``hw`` (capacities, energies,
        fanouts, areas). No rounding to blocks or cycles, so objectives are smooth.
        """
        return self._evaluate(log_temporal.exp(), log_spatial.exp(), order.to(self.device), keep.to(self.device),
                              hw or self.hw, exact=False)

    # ---- the model -----------------------------------------------------------------------------
    def _evaluate(self, ft: torch.Tensor, fs2: torch.Tensor, order: torch.Tensor, keep: torch.Tensor,
                  hw: Hardware, exact: bool, spatial_order: torch.Tensor | None = None) -> Costs:
        B, L, D = ft.shape
        T, R = self.T, self.R
        dt = ft.dtype
        dev = ft.device
        coef = self.coef.to(dt)
        fs = fs2[..., 0] * fs2[..., 1]  # [B, L, D]
        f = ft * fs
        # ext[l, d]: extent of dim d spanned by levels >= l; ext[L] = 1 (a single MAC).
        ext = torch.flip(torch.cumprod(torch.flip(f, [1]), 1), [1])
        extp = torch.cat([ext, torch.ones(B, 1, D, dtype=dt, device=dev)], 1)  # [B, L+1, D]
        step_t = fs * extp[:, 1:]  # stride (in dim units) of the temporal loop of d at level l
        step_s = extp[:, 1:]  # stride of the spatial loop of d below level l

        # Tile boxes per level (and the MAC): E[b, t, l, r] = sum_d coef (ext - 1) + 1.
        box = torch.einsum("trd,bld->btlr", coef, extp - 1) + (coef.abs().sum(-1) > 0).to(dt)[None, :, None, :]
        box = torch.where((coef.abs().sum(-1) > 0)[None, :, None, :], box, torch.ones_like(box))
        full = box.prod(-1)  # [B, T, L+1]

        # Flattened temporal loops, outermost first: J = L * D.
        pos = torch.argsort(order, dim=-1)  # dims of level l from outermost to innermost
        n = torch.gather(ft, 2, pos).reshape(B, L * D)
        st = torch.gather(step_t, 2, pos).reshape(B, L * D)
        dimj = pos.reshape(B, L * D)
        J = L * D
        coefj = coef[:, :, dimj].permute(2, 0, 3, 1)  # [B, T, J, R]
        u = coefj * st[:, None, :, None]  # translation when loop j advances by one
        big = n > 1.5 if exact else n > 1.0 + 1e-9
        um = u * big[:, None, :, None].to(dt)
        ucum = torch.cumsum(um, 2)  # [B, T, J, R] inclusive
        # weights: c_j = (n_j - 1) * prod_{i<j} n_i ; N_b = prod_{j < bD} n_j
        nprod = torch.cumprod(n, 1)
        nexcl = torch.cat([torch.ones(B, 1, dtype=dt, device=dev), nprod[:, :-1]], 1)
        cj = (n - 1) * nexcl  # [B, J]
        jidx = torch.arange(J, device=dev)
        lastbig = torch.cummax(torch.where(big, jidx, torch.full_like(jidx, -1).expand(B, J)), 1).values  # [B, J]

        # For every keeper level b = 1..L (b = L is the MAC), loops above it are j < b*D.
        ends = torch.arange(1, L + 1, device=dev) * D - 1  # [Lb]
        cu_b = ucum[:, :, ends]  # [B, T, Lb, R]
        tj = u[:, :, None] - (cu_b[:, :, :, None] - ucum[:, :, None])  # [B, T, Lb, J, R]
        m_b = lastbig[:, ends]  # [B, Lb]
        has_m = m_b >= 0
        m_idx = m_b.clamp(min=0)
        tm = torch.gather(u, 2, m_idx[:, None, :, None].expand(B, T, L, R))  # [B, T, Lb, R]
        above = jidx[None, :] <= ends[:, None]  # [Lb, J]
        same = (tj == tm[:, :, :, None]).all(-1) & above[None, None] & big[:, None, None, :]
        se = (same.to(dt) * cj[:, None, None, :]).sum(-1)  # [B, T, Lb]
        se = torch.where(has_m[:, None, :], se, torch.zeros_like(se))
        n_b = nprod[:, ends]  # [B, Lb] (temporal iterations above b)

        box_b = box[:, :, 1:]  # [B, T, Lb, R]
        full_b = full[:, :, 1:]
        overlap = (box_b - tm.abs()).clamp(min=0).prod(-1)
        delta_m = full_b - overlap
        is_mac = torch.arange(1, L + 1, device=dev) == L
        se = torch.where(is_mac[None, None], torch.zeros_like(se), se)
        deltas = full_b * (n_b[:, None] - se) + delta_m * se  # [B, T, Lb] per instance

        # Parent keeper of each level b: the nearest outer level that keeps the tensor.
        keepf = keep.permute(0, 2, 1)  # [B, T, L]
        lvl = torch.arange(L, device=dev)
        kept_idx = torch.where(keepf, lvl, torch.full_like(lvl, -1).expand(B, T, L))
        kept_prefix = torch.cummax(kept_idx, 2).values  # last keeper at or above l
        parent = kept_prefix  # [B, T, Lb]: the last keeper among levels < b is kept_prefix[b - 1]
        between = (lvl[None, None, None, :] >= parent[..., None]) & (lvl[None, None, None, :] < (lvl + 1)[None, None, :, None])
        fsb = fs[:, None, None]  # [B, 1, 1, L, D]
        sp_f = torch.where(between[..., None], fsb, torch.ones_like(fsb)).prod(3)  # [B, T, Lb, D]
        inf = torch.tensor(math.inf, dtype=dt, device=dev)
        has_sp = between[..., None] & (fsb > 1.0 + 1e-9)
        alpha = torch.where(has_sp, step_s[:, None, None], inf).amin(3)  # [B, T, Lb, D]
        alpha = torch.where(torch.isinf(alpha), torch.zeros_like(alpha), alpha)

        # Timeloop multicasts only *identical* deltas: children whose tiles partially overlap
        # (halos) are each sent their own copy. Per rank, the children's offsets are
        # i*a1 + j*a2 (two dims project onto one rank, e.g. P and R); the number of distinct
        # offsets is F1*F2 minus the pairs that coincide with a shifted pair.
        def rank_gen(didx, cvec):
            a = torch.gather(alpha, 3, didx[None, :, None, :].expand(B, T, L, R)) * cvec[None, :, None, :]
            fct = torch.gather(sp_f, 3, didx[None, :, None, :].expand(B, T, L, R))
            fct = torch.where(cvec[None, :, None, :] > 0, fct, torch.ones_like(fct))
            return a, fct

        a1, f1 = rank_gen(self.rank_d1, self.rank_c1.to(dt))
        a2, f2 = rank_gen(self.rank_d2, self.rank_c2.to(dt))
        with torch.no_grad():
            i1 = torch.round(a1).clamp(min=1).to(torch.int64)
            i2 = torch.round(a2).clamp(min=1).to(torch.int64)
            g = torch.gcd(i1, i2)
            p = (i1 // g).to(dt)
            q = (i2 // g).to(dt)
        distinct = (f1 * f2 - (f1 - q).clamp(min=0) * (f2 - p).clamp(min=0)).prod(-1)  # [B, T, Lb]
        unions = deltas * distinct  # [B, T, Lb] accesses per parent instance
        peer = torch.zeros_like(unions)
        if spatial_order is not None:
            saved, peer = self._link_transfers(
                B, T, L, R, dt, dev, coef, fs, step_s, spatial_order, between, hw, tj, tm, same, above, big, cj,
                n, m_b, has_m, se, delta_m, full_b, distinct, sp_f)
            unions = unions - saved

        # Child keeper of each level l: the nearest inner level keeping t (or the MAC, index L).
        kept_in = torch.where(keepf, lvl, torch.full_like(lvl, L).expand(B, T, L))
        nxt = torch.flip(torch.cummin(torch.flip(kept_in, [2]), 2).values, [2])  # first keeper at or below l
        child = torch.cat([nxt[:, :, 1:], torch.full((B, T, 1), L, device=dev, dtype=torch.int64)], 2)  # [B, T, L]
        content = torch.gather(unions, 2, child - 1)  # [B, T, L] accesses from the child side

        # Partition size (distinct points one instance ever holds), needed for outputs.
        sp_cum = torch.cumprod(fs, 1)
        sp_above = torch.cat([torch.ones(B, 1, D, dtype=dt, device=dev), sp_cum[:, :-1]], 1)  # [B, L, D]
        pext = self.bounds.to(dt) / sp_above
        pbox = torch.einsum("trd,bld->btlr", coef, pext - 1) + 1
        pbox = torch.where((coef.abs().sum(-1) > 0)[None, :, None, :], pbox, torch.ones_like(pbox))
        part = pbox.prod(-1)  # [B, T, L]

        rw = self.read_write[None, :, None]
        lvl_fill = torch.cat([torch.zeros(B, T, 1, dtype=dt, device=dev), deltas[:, :, : L - 1]], 2)
        keepd = keepf.to(dt)
        # A child that got data from a neighbour reads it again to forward it (peer accesses).
        peer_lvl = torch.cat([torch.zeros(B, T, 1, dtype=dt, device=dev), peer[:, :, : L - 1]], 2)
        reads = (torch.where(rw, content - part, content) + peer_lvl) * keepd
        updates = torch.where(rw, content, torch.zeros_like(content)) * keepd
        fills = torch.where(rw, (lvl_fill - part).clamp(min=0), lvl_fill)
        fills = torch.where(lvl[None, None] == 0, torch.zeros_like(fills), fills) * keepd
        tile = full[:, :, :L] * keepd

        inst_cum = torch.cumprod(fs.prod(-1), 1)
        inst = torch.cat([torch.ones(B, 1, dtype=dt, device=dev), inst_cum[:, :-1]], 1)  # [B, L]

        blk = hw.block.to(dt)[None, None, :]
        if exact:
            acc = lambda x: torch.ceil(x / blk - 1e-9)  # noqa: E731
        else:
            acc = lambda x: x / blk  # noqa: E731
        e_lt = inst[:, None, :] * (acc(reads) * hw.read_energy[None, None, :]
                                   + (acc(fills) + acc(updates)) * hw.write_energy[None, None, :])  # [B, T, L]
        mac_e = self.macs * hw.mac_energy
        e_level = e_lt.sum(1)  # [B, L]
        energy = e_level.sum(1) + mac_e
        energy_by_level = torch.cat([e_level, mac_e.expand(B, 1) if mac_e.dim() == 0 else mac_e[:, None]], 1)

        cc = nprod[:, -1]  # compute cycles = product of all temporal factors
        rd = reads.sum(1)  # [B, L]
        wr = (fills + updates).sum(1)
        lc = torch.maximum(torch.maximum(cc[:, None], rd / hw.read_bw[None]), wr / hw.write_bw[None])
        if exact:
            lc = torch.ceil(lc - 1e-9)
        cycles = lc.amax(1)
        util = self.macs / (cycles * hw.mac_instances)
        edp = energy * cycles
        power = energy / cycles * hw.clock_ghz  # pJ/ns = mW
        area = hw.total_area.expand(B) if hw.total_area.dim() == 0 else hw.total_area

        # Validity.
        logf = torch.log(f).sum(1)  # [B, D]
        factor_error = logf - torch.log(self.bounds.to(dt))
        sx = torch.log(fs2[..., 0]).sum(2)  # [B, L]
        sy = torch.log(fs2[..., 1]).sum(2)
        fan = torch.log(hw.fanout.to(dt))
        fanout_excess = torch.stack([sx - fan[None, :, 0], sy - fan[None, :, 1]], -1)
        used = tile.sum(1)  # [B, L]
        cap_excess = used - hw.capacity[None]
        bad_f = (factor_error.abs() > 1e-6).any(1)
        bad_fan = (fanout_excess > 1e-6).any(-1).any(-1)
        bad_cap = (cap_excess > 0.5 if exact else cap_excess > 0).any(1)
        bad_keep = ~keep[:, 0, :].all(-1)
        reason = torch.zeros(B, dtype=torch.int64, device=dev)
        for code, bad in ((BAD_KEEP, bad_keep), (BAD_CAPACITY, bad_cap), (BAD_FANOUT, bad_fan),
                          (BAD_FACTORS, bad_f)):
            reason = torch.where(bad, torch.full_like(reason, code), reason)
        valid = reason == VALID
        return Costs(energy=energy, cycles=cycles, edp=edp, utilization=util, power=power, area=area,
                     valid=valid, reason=reason, energy_by_level=energy_by_level,
                     energy_by_level_tensor=e_lt.permute(0, 2, 1), reads=reads.permute(0, 2, 1),
                     fills=fills.permute(0, 2, 1), updates=updates.permute(0, 2, 1), tile=tile.permute(0, 2, 1),
                     instances=inst, compute_cycles=cc, level_cycles=lc, capacity_excess=cap_excess,
                     fanout_excess=fanout_excess, factor_error=factor_error)

    @staticmethod
    def _link_transfers(B, T, L, R, dt, dev, coef, fs, step_s, spatial_order, between, hw, tj, tm, same, above,
                        big, cj, n, m_b, has_m, se, delta_m, full_b, distinct, sp_f):
        """Deltas a PE can take from a mesh neighbour instead of the parent (Timeloop's link
        transfers): a child's delta now equals a neighbour's previous delta when the step's
        translation equals the offset between the two PEs. Neighbours are +-1 along the
        innermost spatial loop and +-1 along the loop whose inner loops fill a mesh row.

        Returns (parent accesses saved [B, T, Lb], peer reads per child instance [B, T, Lb]).
        Handled for a single fanout level between parent and child (the common case).
        """
        lvl = torch.arange(L, device=dev)
        has_sp = (fs > 1.5).any(-1)  # [B, L]
        cand = between & has_sp[:, None, None, :]  # [B, T, Lb, L]
        l0 = torch.where(cand, lvl, torch.full_like(lvl, -1)).amax(-1)  # [B, T, Lb]
        single = cand.sum(-1) == 1
        l0c = l0.clamp(min=0)
        D = fs.shape[-1]
        idx = l0c[..., None].expand(B, T, L, D)
        fs0 = torch.gather(fs[:, None].expand(B, T, L, D), 2, idx)  # [B, T, Lb, D] factors at l0
        so0 = torch.gather(spatial_order[:, None].expand(B, T, L, D), 2, idx)
        st0 = torch.gather(step_s[:, None].expand(B, T, L, D), 2, idx)
        live = fs0 > 1.5
        key = torch.where(live, so0, torch.full_like(so0, -1))
        d0 = key.argmax(-1)  # innermost spatial loop
        vec = coef.permute(0, 2, 1)[None, :, None]  # [1, T, 1, D, R]
        a_all = vec * st0[..., None]  # [B, T, Lb, D, R]
        pick = lambda d: torch.gather(a_all, 3, d[..., None, None].expand(B, T, L, 1, R)).squeeze(3)  # noqa: E731
        a0 = pick(d0)
        f0 = torch.gather(fs0, 3, d0[..., None]).squeeze(-1)
        # Product of the factors of the spatial loops inside each loop: the linear PE index is
        # mixed radix over the spatial loops, cut into rows of the mesh's X size.
        inner_prod = torch.where(live[..., None, :] & (so0[..., None, :] > so0[..., :, None]),
                                 fs0[..., None, :], torch.ones_like(fs0[..., None, :])).prod(-1)  # [B, T, Lb, D]
        hx = torch.gather(hw.fanout[:, 0].to(dt)[None, None].expand(B, T, L), 2, l0c)
        # The vertical neighbour (+- one row) moves the loop whose span first exceeds a row by
        # r = row / (its inner product) steps, when that is a whole number.
        spans_row = live & (inner_prod <= hx[..., None]) & (inner_prod * fs0 > hx[..., None])
        r_k = hx[..., None] / inner_prod
        row = spans_row & (torch.remainder(hx[..., None], inner_prod) == 0)
        has_k = row.any(-1)
        dk = row.to(torch.int64).argmax(-1)
        ak = pick(dk)
        fk = torch.gather(fs0, 3, dk[..., None]).squeeze(-1)
        rk = torch.gather(r_k, 3, dk[..., None]).squeeze(-1)

        def frac(a, f, r, ok):
            """Share of PEs whose neighbour r steps along a loop held this step's delta last step."""
            plus = (tj == (r[..., None] * a)[:, :, :, None]).all(-1) & ok[..., None]
            minus = (tj == (-r[..., None] * a)[:, :, :, None]).all(-1) & ok[..., None]
            one = ((f - r).clamp(min=0) / f)[..., None]
            both = (torch.minimum(f, 2 * (f - r)).clamp(min=0) / f)[..., None]
            return torch.where(plus & minus, both, torch.where(plus | minus, one, torch.zeros_like(one)))

        ones = torch.ones_like(f0)
        mf = 1 - (1 - frac(a0, f0, ones, f0 > 1.5)) * (1 - frac(ak, fk, rk, has_k))
        # Which steps can use links, with their delta size.
        jidx = torch.arange(tj.shape[3], device=dev)
        is_m = (jidx[None, None, :] == m_b[:, :, None])[:, None] & has_m[:, None, :, None]  # [B, 1, Lb, J]
        nm = torch.gather(n, 1, m_b.clamp(min=0))  # [B, Lb]
        cm = torch.gather(cj, 1, m_b.clamp(min=0))
        full_m = (delta_m >= full_b) & (delta_m > 0)
        strip_m = (delta_m > 0) & (delta_m < full_b)
        w_m = torch.where(full_m, cm[:, None], torch.where(strip_m, (nm[:, None] - 1) * (se - cm[:, None]),
                                                           torch.zeros_like(se)))
        cjb = cj[:, None, None, :]
        w_other = torch.where(same, torch.where((delta_m > 0)[..., None], cjb, torch.zeros_like(cjb)),
                              torch.where(full_m[..., None], cjb, torch.zeros_like(cjb)))
        w = torch.where(is_m, w_m[..., None], w_other) * (above[None, None] & big[:, None, None, :]).to(dt)
        size = torch.where(same | is_m, delta_m[..., None], full_b[..., None])
        per_child = (w * size * mf).sum(-1)  # peer reads per child instance
        ok = single & (l0 >= 0) & (torch.arange(1, L + 1, device=dev) < L)[None, None, :]
        per_child = torch.where(ok, per_child, torch.zeros_like(per_child))
        return per_child * distinct, per_child
