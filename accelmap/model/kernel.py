"""The exact cost model as a compiled scalar kernel (numba), for bulk evaluation on the CPU.

The tensor model in :mod:`accelmap.model.cost_model` is the reference: batched, differentiable and
runnable on CUDA. Its hot path materialises, for every mapping, tensor x child-level x loop
work, most of it on loops of factor 1. This kernel computes the same counts per mapping
with plain loops that visit only the non-trivial loops, which is what a CPU does fastest.
``tests/model/test_kernel.py`` checks that both give identical counts on random batches and on
every Timeloop reference record.

Semantics are documented in :mod:`accelmap.model.cost_model`; the steps below follow it in order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

try:
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # the torch model still works; only bulk CPU speed is lost
    HAVE_NUMBA = False

BAD_FACTORS, BAD_FANOUT, BAD_CAPACITY, BAD_KEEP = 1, 2, 3, 4


def _blocks(words, blk):
    """Whole block accesses for a whole number of words (Accelergy charges per block)."""
    if blk == 1.0:
        return words
    return math.ceil(words / blk - 1e-9)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class Plan(NamedTuple):
    """A cost model's constants for one workload on one hardware (see CostModel.kernel_plan).
    T tensors, R ranks, D dims, L levels, DA dims a rank's projection may touch."""

    coef: np.ndarray  # [T, R, D] float64: projection coefficients
    rank_live: np.ndarray  # [T, R] bool
    key_coef: np.ndarray  # [T, R] float64
    d1: np.ndarray  # [T, R] int64: the first dim of a two-dim rank (sliding windows)
    d2: np.ndarray  # [T, R] int64
    c1: np.ndarray  # [T, R] float64
    c2: np.ndarray  # [T, R] float64
    read_write: np.ndarray  # [T] bool: the tensor is updated (outputs)
    bounds: np.ndarray  # [D] float64
    act: np.ndarray  # [DA] int64: dims that are loops
    capacity: np.ndarray  # [L] float64 words (inf: unlimited)
    block: np.ndarray  # [L] float64 words
    rbw: np.ndarray  # [L] float64 words per cycle (inf: unlimited)
    wbw: np.ndarray  # [L] float64
    er: np.ndarray  # [L] float64 pJ per block read
    ew: np.ndarray  # [L] float64 pJ per block write
    fanout: np.ndarray  # [L, 2] float64 mesh X, Y below each level
    mac_energy: float
    macs: float
    mac_instances: float
    leak: np.ndarray  # [L] float64 pJ per utilized instance per cycle
    n_clusters: np.ndarray  # [L] float64 (inf: clusters of one)


class Mappings(NamedTuple):
    """B mappings, in the dtypes the kernel is compiled for (see :func:`_batch_args`)."""

    tf: np.ndarray  # [B, L, D] int32 temporal factors
    sp: np.ndarray  # [B, L, D, 2] int32 spatial factors (X, Y)
    order: np.ndarray  # [B, L, D] int8 temporal loop order
    sorder: np.ndarray  # [B, L, D] int8 spatial loop order
    keep: np.ndarray  # [B, L, T] bool


class Outputs(NamedTuple):
    """What the kernel writes; per-level arrays have one row only without detail (scratch)."""

    energy: np.ndarray  # [B]
    cycles: np.ndarray  # [B]
    reason: np.ndarray  # [B] int64
    reads: np.ndarray  # [B, L, T]
    fills: np.ndarray  # [B, L, T]
    updates: np.ndarray  # [B, L, T]
    tile: np.ndarray  # [B, L, T]
    instances: np.ndarray  # [B, L]
    level_cycles: np.ndarray  # [B, L]
    energy_by_level: np.ndarray  # [B, L + 1]
    energy_by_level_tensor: np.ndarray  # [B, L, T]
    compute_cycles: np.ndarray  # [B]
    fanout_excess: np.ndarray  # [B, L, 2]
    factor_error: np.ndarray  # [B, D]


def _evaluate_range(first, last, detail, m, p, o, s):
    """Evaluate mappings ``first`` to ``last`` of ``m`` (:class:`Mappings`) with the constants
    ``p`` (:class:`Plan`) into ``o`` (:class:`Outputs`), using the scratch arrays ``s`` (one
    set per thread, see :func:`_scratch`)."""
    tf, sp, order, sorder, keep = m.tf, m.sp, m.order, m.sorder, m.keep
    coef, rank_live, key_coef, d1, d2, c1, c2 = p.coef, p.rank_live, p.key_coef, p.d1, p.d2, p.c1, p.c2
    read_write, bounds, act, capacity, block, rbw, wbw = p.read_write, p.bounds, p.act, p.capacity, p.block, p.rbw, p.wbw
    er, ew, fanout, mac_energy, macs, mac_instances = p.er, p.ew, p.fanout, p.mac_energy, p.macs, p.mac_instances
    leak_e, n_clu = p.leak, p.n_clusters
    out_energy, out_cycles, out_reason, out_reads, out_fills = o.energy, o.cycles, o.reason, o.reads, o.fills
    out_updates, out_tile, out_inst, out_lc, out_elevel = o.updates, o.tile, o.instances, o.level_cycles, o.energy_by_level
    out_elt, out_cc, out_fan, out_ferr = o.energy_by_level_tensor, o.compute_cycles, o.fanout_excess, o.factor_error
    slot, fs, ext, box, full, n_, st_, dim_, lv_ = s.slot, s.fs, s.ext, s.box, s.full, s.n_, s.st_, s.dim_, s.lv_
    cj_, kap, kcum, g, deltas, peer, content_b = s.cj_, s.kap, s.kcum, s.g, s.deltas, s.peer, s.content_b
    distinct, part, spc, lastsp, cnt_, nsp_, hasp_ = s.distinct, s.part, s.spc, s.lastsp, s.cnt_, s.nsp_, s.hasp_
    d0_, dk_, rk_, nxt, childof, pprod, par, pxl, pyl, lpl = (s.d0_, s.dk_, s.rk_, s.nxt, s.childof, s.pprod, s.par,
                                                              s.pxl, s.pyl, s.lpl)
    L = tf.shape[1]
    D = tf.shape[2]
    T = coef.shape[0]
    R = coef.shape[1]
    DA = act.shape[0]
    # One call per chunk of mappings: calling per mapping would pass ~50 arrays each time.
    for i in range(first, last):
        o = i if detail else 0  # without detail, per-level outputs go to a scratch row
        out_reason[i] = 0
        # 1. extents and tiles
        for l in range(L):
            qx = 1
            qy = 1
            for d in range(D):
                sx = sp[i, l, d, 0]
                sy = sp[i, l, d, 1]
                fs[l, d] = float(sx * sy)
                qx *= sx
                qy *= sy
            pxl[l] = float(qx)  # mesh X and Y products, for the fanout check
            pyl[l] = float(qy)
            lpl[l] = float(qx * qy)  # instances below this level
        for d in range(D):
            ext[L, d] = 1.0
        for l in range(L - 1, -1, -1):
            for d in range(D):
                ext[l, d] = ext[l + 1, d] * float(tf[i, l, d]) * fs[l, d]
        for t in range(T):
            for l in range(L + 1):
                if l < L and not keep[i, l, t]:
                    continue  # only kept tiles (and the MAC's) are ever used
                prod = 1.0
                for r in range(R):
                    # a rank is c1 * dim1 + c2 * dim2 (c2 = 0 for single-dim ranks)
                    s = 1.0 + c1[t, r] * (ext[l, d1[t, r]] - 1.0) + c2[t, r] * (ext[l, d2[t, r]] - 1.0)
                    box[t, l, r] = s
                    prod *= s
                full[t, l] = prod
        # 2. non-trivial temporal loops, outermost first (levels outer to inner, then loop order)
        nb = 0
        for l in range(L):
            for pos in range(D):
                slot[pos] = -1
            for a in range(DA):
                d = act[a]
                if tf[i, l, d] > 1:
                    slot[order[i, l, d]] = d
            for pos in range(D):
                d = slot[pos]
                if d >= 0:
                    n_[nb] = float(tf[i, l, d])
                    st_[nb] = fs[l, d] * ext[l + 1, d]
                    dim_[nb] = d
                    lv_[nb] = l
                    nb += 1
        nprod = 1.0
        pprod[0] = 1.0
        for j in range(nb):
            cj_[j] = (n_[j] - 1.0) * nprod
            nprod *= n_[j]
            pprod[j + 1] = nprod  # product of the first j+1 loops
        total_iters = nprod
        # per level: loops above it, spatial prefix products, and the mesh-neighbour loops
        k = 0
        for b in range(L + 1):
            while k < nb and lv_[k] < b:
                k += 1
            cnt_[b] = k
        for d in range(D):
            spc[0, d] = 1.0
            lastsp[0, d] = -1
        for l in range(L):
            anysp = False
            for d in range(D):
                spc[l + 1, d] = spc[l, d] * fs[l, d]
                if fs[l, d] > 1.5:
                    lastsp[l + 1, d] = l
                    anysp = True
                else:
                    lastsp[l + 1, d] = lastsp[l, d]
            nsp_[l + 1] = nsp_[l] + (1 if anysp else 0)
            hasp_[l] = anysp
            if anysp:
                d0 = -1
                best = -1
                for d in range(D):
                    if fs[l, d] > 1.5 and sorder[i, l, d] > best:
                        best = sorder[i, l, d]
                        d0 = d
                hx = fanout[l, 0]
                dk = -1
                rk = 1.0
                nlive = 0
                for d in range(D):
                    if fs[l, d] > 1.5:
                        slot[nlive] = d
                        nlive += 1
                for a in range(nlive):
                    d = slot[a]
                    ip = 1.0
                    for e2 in range(nlive):
                        e = slot[e2]
                        if sorder[i, l, e] > sorder[i, l, d]:
                            ip *= fs[l, e]
                    # (a row of one PE makes the next row d0's own +-1 neighbour: counted once)
                    if ip <= hx and ip * fs[l, d] > hx and (hx - ip * math.floor(hx / ip)) == 0.0 and dk < 0 \
                            and not (d == d0 and ip == hx):
                        dk = d
                        rk = hx / ip
                d0_[l] = d0
                dk_[l] = dk
                rk_[l] = rk
        # 3. per tensor, deltas of each child keeper b = 1..L-1 (MAC: every iteration)
        for t in range(T):
            last = -1
            for b in range(L + 1):
                par[b] = last  # the nearest keeper above b
                if b < L and keep[i, b, t]:
                    last = b
            acc = 0.0
            for j in range(nb):
                kap[j] = st_[j] * key_coef[t, dim_[j]]
                acc += kap[j]
                kcum[j] = acc
                g[j] = kap[j] + acc
            for b in range(1, L + 1):
                peer[t, b] = 0.0
                if b < L and not keep[i, b, t]:
                    continue  # only keepers (and the MAC) receive data
                if b == L:
                    # MAC operands: read at every step, unless the innermost level fans out to
                    # the MACs and, on mesh X or Y, its innermost spatial loop leaves tensor t
                    # unindexed (the MACs keep an unchanged operand; see the cost model).
                    reuse = False
                    for ax in range(2):
                        dax = -1
                        best = -1
                        for d in range(D):
                            if sp[i, L - 1, d, ax] > 1 and sorder[i, L - 1, d] > best:
                                best = sorder[i, L - 1, d]
                                dax = d
                        if dax >= 0:
                            unindexed = True
                            for r in range(R):
                                if coef[t, r, dax] != 0.0:
                                    unindexed = False
                            if unindexed:
                                reuse = True
                else:
                    reuse = True
                cnt = cnt_[b]
                nbp = pprod[cnt]
                if cnt == 0:
                    deltas[t, b] = full[t, b] if reuse else total_iters
                    continue
                m = cnt - 1
                h = g[m]
                se = 0.0
                for j in range(m + 1):
                    if g[j] == h:
                        se += cj_[j]
                ov = 1.0
                dm = dim_[m]
                for r in range(R):
                    tm = abs(((c1[t, r] if d1[t, r] == dm else 0.0) + (c2[t, r] if d2[t, r] == dm else 0.0)) * st_[m])
                    x = box[t, b, r] - tm
                    ov *= x if x > 0.0 else 0.0
                delta_m = full[t, b] - ov
                deltas[t, b] = full[t, b] * (nbp - se) + delta_m * se if reuse else total_iters
                # 4. link transfers (one fanout level between the parent keeper and b; MACs too)
                p = par[b]
                if p < 0:
                    continue
                if nsp_[b] - nsp_[p] != 1 or not hasp_[b - 1]:
                    continue  # one fanout, directly above b (see the cost model's link transfers)
                l0 = b - 1
                while not hasp_[l0]:
                    l0 -= 1
                d0 = d0_[l0]
                dk = dk_[l0]
                rk = rk_[l0]
                f0 = fs[l0, d0]
                ka0 = key_coef[t, d0] * ext[l0 + 1, d0]
                x0 = 0.0
                if f0 > 1.5:
                    if ka0 == 0.0:
                        x0 = max(0.0, min(f0, 2.0 * (f0 - 1.0))) / f0
                    else:
                        x0 = max(0.0, f0 - 1.0) / f0
                kak = 0.0
                xk = 0.0
                if dk >= 0:
                    fk = fs[l0, dk]
                    kak = key_coef[t, dk] * ext[l0 + 1, dk] * rk
                    if kak == 0.0:
                        xk = max(0.0, min(fk, 2.0 * (fk - rk))) / fk
                    else:
                        xk = max(0.0, fk - rk) / fk
                kc_b = kcum[m]
                kap_m = abs(g[m] - kc_b)
                a_m = 1.0 if kap_m == abs(ka0) else 0.0
                b_m = 1.0 if (dk >= 0 and kap_m == abs(kak)) else 0.0
                mf_m = x0 * a_m + xk * b_m - x0 * xk * a_m * b_m
                fb = full[t, b]
                cm = cj_[m]
                w_m = 0.0
                if delta_m >= fb and delta_m > 0.0:
                    w_m = cm
                elif delta_m > 0.0:
                    w_m = (n_[m] - 1.0) * (se - cm)
                in_e = delta_m * mf_m * (w_m + ((se - cm) if delta_m > 0.0 else 0.0))
                out_e = 0.0
                if delta_m >= fb and delta_m > 0.0:
                    sa = 0.0
                    sb = 0.0
                    for j in range(m + 1):
                        if g[j] != h:
                            tk = abs(g[j] - kc_b)
                            if tk == abs(ka0):
                                sa += cj_[j]
                            if dk >= 0 and tk == abs(kak):
                                sb += cj_[j]
                    sab = sa if (dk >= 0 and abs(ka0) == abs(kak)) else 0.0
                    out_e = fb * (x0 * sa + xk * sb - x0 * xk * sab)
                peer[t, b] = in_e + out_e
            # 5. distinct children per parent (multicast only of identical deltas): the product
            # over the fanout levels between them of each level's distinct child tiles
            for b in range(1, L + 1):
                if b < L and not keep[i, b, t]:
                    continue
                p = max(par[b], 0)
                dist = 1.0
                for lf in range(p, b):
                    if not hasp_[lf]:
                        continue
                    for r in range(R):
                        if not rank_live[t, r]:
                            continue
                        fa = 1.0
                        fb2 = 1.0
                        ia = 1
                        ib = 1
                        for k in range(2):
                            d = d1[t, r] if k == 0 else d2[t, r]
                            c = c1[t, r] if k == 0 else c2[t, r]
                            if c <= 0.0:
                                continue
                            f = fs[lf, d]
                            alpha = 1
                            if f > 1.5:
                                alpha = int(ext[lf + 1, d] * c + 0.5)
                                if alpha < 1:
                                    alpha = 1
                            if k == 0:
                                fa = f
                                ia = alpha
                            else:
                                fb2 = f
                                ib = alpha
                        if fa > 1.5 and fb2 > 1.5:  # two spatial dims on one rank: offsets may coincide
                            gg = _gcd(ia, ib)
                            pp = ia // gg
                            qq = ib // gg
                            dist *= fa * fb2 - max(0.0, fa - qq) * max(0.0, fb2 - pp)
                        else:
                            dist *= fa * fb2
                distinct[t, b] = dist
                content_b[t, b] = (deltas[t, b] - peer[t, b]) * dist
        # 6. per level accesses
        for t in range(T):
            if not read_write[t]:  # only read-write tensors use the partition size
                continue
            for l in range(L):
                if not keep[i, l, t]:
                    continue
                prod = 1.0
                for r in range(R):
                    da, db = d1[t, r], d2[t, r]
                    ea = bounds[da] if spc[l, da] == 1.0 else bounds[da] / spc[l, da]
                    eb = bounds[db] if spc[l, db] == 1.0 else bounds[db] / spc[l, db]
                    prod *= 1.0 + c1[t, r] * (ea - 1.0) + c2[t, r] * (eb - 1.0)
                part[t, l] = prod
        inst = 1.0
        inst_up = 1.0  # instances of the level above (link transfers are shared over them)
        energy = macs * mac_energy
        cc = total_iters
        bad_cap = False
        bad_fan = False
        cycles = cc
        for t in range(T):
            nxt[t] = L  # the nearest keeper strictly below the current level, walking outwards
        for l in range(L - 1, -1, -1):
            for t in range(T):
                childof[t, l] = nxt[t]
                if keep[i, l, t]:
                    nxt[t] = l
        for l in range(L):
            out_inst[o, l] = inst
            rsum = 0.0
            wsum = 0.0
            e_lvl = 0.0
            used = 0.0
            for t in range(T):
                if not keep[i, l, t]:
                    out_reads[o, l, t] = 0.0
                    out_fills[o, l, t] = 0.0
                    out_updates[o, l, t] = 0.0
                    out_tile[o, l, t] = 0.0
                    out_elt[o, l, t] = 0.0
                    continue
                content = content_b[t, childof[t, l]]
                # link transfers: a child takes them from a neighbour instead of its parent, and
                # Timeloop charges them (a read and a fill) spread over all instances of the
                # level above rather than per child (see the cost model)
                own_peer = peer[t, l] / inst_up if l > 0 else 0.0
                own = deltas[t, l] - peer[t, l] + own_peer if l > 0 else 0.0
                if read_write[t]:
                    reads = content - part[t, l] + own_peer
                    upd = content
                    fil = own - part[t, l] if l > 0 else 0.0
                    if fil < 0.0:
                        fil = 0.0
                else:
                    reads = content + own_peer
                    upd = 0.0
                    fil = own if l > 0 else 0.0
                # Timeloop rounds the (possibly averaged) access counts to whole accesses.
                reads = math.floor(reads + 0.5)
                fil = math.floor(fil + 0.5)
                upd = math.floor(upd + 0.5)
                out_reads[o, l, t] = reads
                out_fills[o, l, t] = fil
                out_updates[o, l, t] = upd
                out_tile[o, l, t] = full[t, l]
                used += full[t, l]
                blk = block[l]
                # charged once per utilized cluster of instances sharing a row (n_clu inf: each)
                e = min(inst, n_clu[l]) * (_blocks(reads, blk) * er[l]
                                           + (_blocks(fil, blk) + _blocks(upd, blk)) * ew[l])
                out_elt[o, l, t] = e
                e_lvl += e
                rsum += reads / cc
                wsum += (fil + upd) / cc
            out_elevel[o, l] = e_lvl
            energy += e_lvl
            # Timeloop's throttling in its own float steps (so its ceil rounds as ours does):
            # demand = sum over tensors of accesses / compute cycles, slowdown = bandwidth /
            # demand where demand exceeds it, cycles = ceil(compute cycles / slowdown).
            slow = 1.0
            if rbw[l] < rsum:
                slow = min(slow, rbw[l] / rsum)
            if wbw[l] < wsum:
                slow = min(slow, wbw[l] / wsum)
            lc = math.ceil(cc / slow)
            out_lc[o, l] = lc
            if lc > cycles:
                cycles = lc
            if used > capacity[l] + 0.5:
                bad_cap = True
            px = pxl[l]
            py = pyl[l]
            if px > fanout[l, 0] * (1.0 + 1e-6) or py > fanout[l, 1] * (1.0 + 1e-6):
                bad_fan = True
            if detail:
                out_fan[o, l, 0] = math.log(px) - math.log(fanout[l, 0])
                out_fan[o, l, 1] = math.log(py) - math.log(fanout[l, 1])
            inst_up = inst
            inst *= lpl[l]
        out_elevel[o, L] = macs * mac_energy
        # leakage (Timeloop v4): per utilized instance and cycle; split equally among the tensors
        inst = 1.0
        for l in range(L):
            if leak_e[l] != 0.0:  # (no 0 x inf = nan where cycles are inf)
                lk = leak_e[l] * inst * cycles
                energy += lk
                out_elevel[o, l] += lk
                for t in range(T):
                    out_elt[o, l, t] += lk / T
            inst *= lpl[l]
        bad_keep = False
        for t in range(T):
            if not keep[i, 0, t]:
                bad_keep = True
        bad_fact = False
        for d in range(D):
            if detail:
                out_ferr[o, d] = math.log(ext[0, d]) - math.log(bounds[d])
            if abs(ext[0, d] - bounds[d]) > 1e-6 * bounds[d]:
                bad_fact = True
        # one reason per mapping, in priority order
        out_reason[i] = (BAD_FACTORS if bad_fact else BAD_FANOUT if bad_fan else BAD_CAPACITY if bad_cap
                         else BAD_KEEP if bad_keep else 0)
        out_energy[i] = energy
        out_cycles[i] = cycles
        out_cc[i] = cc


class Scratch(NamedTuple):
    """Working arrays of one thread (allocated once per chunk of mappings, not per mapping)."""

    slot: np.ndarray
    fs: np.ndarray
    ext: np.ndarray
    box: np.ndarray
    full: np.ndarray
    n_: np.ndarray
    st_: np.ndarray
    dim_: np.ndarray
    lv_: np.ndarray
    cj_: np.ndarray
    kap: np.ndarray
    kcum: np.ndarray
    g: np.ndarray
    deltas: np.ndarray
    peer: np.ndarray
    content_b: np.ndarray
    distinct: np.ndarray
    part: np.ndarray
    spc: np.ndarray
    lastsp: np.ndarray
    cnt_: np.ndarray
    nsp_: np.ndarray
    hasp_: np.ndarray
    d0_: np.ndarray
    dk_: np.ndarray
    rk_: np.ndarray
    nxt: np.ndarray
    childof: np.ndarray
    pprod: np.ndarray
    par: np.ndarray
    pxl: np.ndarray
    pyl: np.ndarray
    lpl: np.ndarray


def _scratch(L, D, T, R):
    J = L * D
    return Scratch(
        np.empty(D, dtype=np.int64), np.empty((L, D)), np.empty((L + 1, D)), np.empty((T, L + 1, R)),
        np.empty((T, L + 1)), np.empty(J), np.empty(J), np.empty(J, dtype=np.int64), np.empty(J, dtype=np.int64),
        np.empty(J), np.empty(J), np.empty(J), np.empty(J), np.zeros((T, L + 1)), np.zeros((T, L + 1)),
        np.zeros((T, L + 1)), np.zeros((T, L + 1)), np.empty((T, L)), np.empty((L + 1, D)),
        np.empty((L + 1, D), dtype=np.int64), np.empty(L + 1, dtype=np.int64), np.zeros(L + 1, dtype=np.int64),
        np.zeros(L, dtype=np.bool_), np.zeros(L, dtype=np.int64), np.zeros(L, dtype=np.int64), np.ones(L),
        np.empty(T, dtype=np.int64), np.empty((T, L), dtype=np.int64), np.empty(J + 1), np.empty(L + 1, dtype=np.int64),
        np.empty(L), np.empty(L), np.empty(L))


if HAVE_NUMBA:
    _gcd = njit(cache=True, inline="always")(_gcd)  # rebinding the globals: the kernel resolves them when compiled
    _blocks = njit(cache=True, error_model="numpy", inline="always")(_blocks)
    _evaluate_range_jit = njit(cache=True, error_model="numpy")(_evaluate_range)
    _scratch_jit = njit(cache=True)(_scratch)

    def _batch_py(m, p, o, detail, chunk):
        B = m.tf.shape[0]
        n_chunks = (B + chunk - 1) // chunk
        for c in prange(n_chunks):
            _evaluate_range_jit(c * chunk, min(B, (c + 1) * chunk), detail, m, p, o,
                                _scratch_jit(m.tf.shape[1], m.tf.shape[2], p.coef.shape[0], p.coef.shape[1]))


    def _renamed(fn, name: str):
        """The same Python function under another name: numba keys its on-disk cache by name, so
        the serial and the parallel compilation of one body get separate cache files."""
        import types

        g = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
        g.__qualname__ = name
        return g

    # The parallel kernel serves a process that evaluates large batches on all its cores; worker
    # processes run numba on one thread, where the serial compilation does the same work and
    # compiles in about half the time (prange is a plain range there).
    _evaluate_batch = njit(parallel=True, cache=True, error_model="numpy")(_renamed(_batch_py, "_evaluate_batch"))
    _evaluate_batch_serial = njit(cache=True, error_model="numpy")(_renamed(_batch_py, "_evaluate_batch_serial"))

def _batch_args(plan: Plan, temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray, sorder: np.ndarray,
                keep: np.ndarray, detail: bool, chunk: int) -> tuple[Outputs, tuple]:
    """The output arrays of a batch and the whole argument tuple of :func:`_evaluate_batch`.
    Mapping arrays are cast to one set of dtypes, so numba compiles one signature only, whatever
    integer widths the caller's batch uses."""
    m = Mappings(np.ascontiguousarray(temporal, dtype=np.int32), np.ascontiguousarray(spatial, dtype=np.int32),
                 np.ascontiguousarray(order, dtype=np.int8), np.ascontiguousarray(sorder, dtype=np.int8),
                 np.ascontiguousarray(keep, dtype=np.bool_))
    B, L, D = m.tf.shape
    T = plan.coef.shape[0]
    rows = B if detail else 1  # without detail, per-level arrays are scratch (one row)
    out = Outputs(
        energy=np.empty(B), cycles=np.empty(B), reason=np.zeros(B, dtype=np.int64),
        reads=np.empty((rows, L, T)), fills=np.empty((rows, L, T)), updates=np.empty((rows, L, T)),
        tile=np.empty((rows, L, T)), instances=np.empty((rows, L)), level_cycles=np.empty((rows, L)),
        energy_by_level=np.empty((rows, L + 1)), energy_by_level_tensor=np.empty((rows, L, T)),
        compute_cycles=np.empty(B), fanout_excess=np.empty((rows, L, 2)), factor_error=np.empty((rows, D)))
    return out, (m, plan, out, detail, chunk)


def evaluate(plan: Plan, temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray, sorder: np.ndarray,
             keep: np.ndarray, detail: bool = True, chunk: int = 256) -> dict:
    """Evaluate a batch: temporal int64 [B, L, D], spatial int64 [B, L, D, 2], order and sorder
    int64 [B, L, D], keep bool [B, L, T]. ``plan`` holds the model's constants (see
    CostModel.kernel_plan). Returns float64 arrays (int64 for ``reason``) by name."""
    if not HAVE_NUMBA:
        raise RuntimeError("numba is not installed")
    out, args = _batch_args(plan, temporal, spatial, order, sorder, keep, detail, chunk)
    (_evaluate_batch_serial if len(temporal) <= chunk or _one_thread() else _evaluate_batch)(*args)
    return out._asdict()


def _one_thread() -> bool:
    import numba

    return numba.get_num_threads() == 1


def _dispatchers(parallel: bool) -> tuple:
    return (_evaluate_range_jit, _evaluate_batch_serial) + ((_evaluate_batch,) if parallel else ())


def is_compiled(parallel: bool = False) -> bool:
    """Whether the kernel's machine code is in numba's on-disk cache (or already loaded), so the
    first evaluation only loads it: the serial kernel that single-threaded workers use, and with
    ``parallel`` the multi-threaded one too. Numba's cache index is read through its private API;
    if that changes, the answer is False and the caller merely shows a compile step that is quick."""
    if not HAVE_NUMBA:
        return True  # nothing to compile: the torch model is used
    try:
        return all(f.signatures or bool(f._cache._cache_file._load_index()) for f in _dispatchers(parallel))
    except Exception:  # noqa: BLE001 - numba internals moved: assume a compile is due
        return False


def compile_for(plan: Plan, temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray, sorder: np.ndarray,
                keep: np.ndarray, parallel: bool = False) -> None:
    """Compile (or load from the cache) the kernel for this batch's argument types without running
    it. Running its parallel loop would start numba's OpenMP threads in this process, after which
    worker processes can no longer be forked (see :mod:`accelmap.search.executor`); compiling does not."""
    if not HAVE_NUMBA:
        return
    from numba import typeof

    _, args = _batch_args(plan, temporal, spatial, order, sorder, keep, True, 256)
    sig = tuple(typeof(a) for a in args)
    for f in _dispatchers(parallel)[1:]:
        f.compile(sig)
