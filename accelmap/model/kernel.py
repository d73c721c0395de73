"""The exact cost model as a compiled scalar kernel (numba), for bulk evaluation on the CPU.

The tensor model in :mod:`accelmap.model.cost_model` is the reference: batched, differentiable and
runnable on CUDA. Its hot path materialises, for every mapping, tensor x child-level x loop
work, most of it on loops of factor 1. This kernel computes the same counts per mapping
with plain loops that visit only the non-trivial loops, which is what a CPU does fastest.
``tests/test_kernel.py`` checks that both give identical counts on random batches and on
every Timeloop reference record.

Semantics are documented in :mod:`accelmap.model.cost_model`; the steps below follow it in order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import importlib.util

# numba is imported (and the kernel jitted) only where bulk evaluation needs it (see _jit): a
# process that evaluates a few mappings with the tensor model runs the same code as Python.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None  # without it only bulk CPU speed is lost
prange = range
_JITTED = False

from accelmap.model.status import BAD_CAPACITY, BAD_FACTORS, BAD_FANOUT, BAD_KEEP  # noqa: E402  (one copy)


def _blocks(words, blk):
    """Whole block accesses for a whole number of words (Accelergy charges per block)."""
    if blk == 1.0:
        return words
    return math.ceil(words / blk - 1e-9)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _tile_offsets(pk, off, n, lf, lk, k0, k1):
    """pk[off:off+n] = the tile offsets of n elements: a mixed-radix counter over loops k0..k1-1
    (ends lf, offset steps lk), the innermost (k0) fastest."""
    dig = np.zeros(k1, dtype=np.int64)
    key = 0.0
    for i in range(n):
        pk[off + i] = key
        for k in range(k0, k1):
            dig[k] += 1
            key += lk[k]
            if dig[k] < int(lf[k]):
                break
            key -= lf[k] * lk[k]
            dig[k] = 0


def _hash_table(n):
    """Empty slots and stamps of an open-addressing table for up to n keys (a power of two >= 2n)."""
    size = 1
    while size < 2 * n:
        size *= 2
    return np.empty(size), np.zeros(size, dtype=np.int64)


def _link_counts(lf, lk, K, nx, sep, H, tl, nt, out_l, out_s, pk, tmp):
    """Timeloop's link transfers at one fanout for one tensor, counted over the PEs.

    The K spatial loops of the fanout, innermost first (the X loops, then the Y loops):
    factors lf[:K], and lk[:K] the tensor's translation key of one step of each. PE i (mixed
    radix over the loops, innermost fastest) sits at column i % H, row i // H of a mesh H wide
    (H = max(the mesh's X, the X loops' product)); its tile is offset by key pk[i]. For each
    translation tl[q] (q < nt) of a step, a PE takes its delta over a link when a physical
    neighbour (left, right, up, down) held it one step before: pk[n] - pk[i] == tl[q]. Timeloop
    uses the links only where they cut the parent's accesses: the distinct tiles among the PEs
    left over are fewer than among all. Writes out_l[q], the PEs served over links, and
    out_s[q], the distinct tiles saved at the parent (both 0 where links are not used). Returns
    the distinct tiles among all PEs (0 for a single PE). The caller passes only translations
    that are some neighbour's offset. pk, tmp: scratch of at least N = prod(lf) entries.
    """
    for q in range(nt):
        out_l[q] = 0.0
        out_s[q] = 0.0
    N = 1
    for k in range(K):
        N *= int(lf[k])
    if N < 2 or N > pk.shape[0]:
        return 0.0
    nxp = 1
    for k in range(nx):
        nxp *= int(lf[k])
    nyp = N // nxp
    if sep and (H == nxp or nyp == 1) and nxp + nyp <= pk.shape[0]:
        # Rows hold the X loops exactly (or there is one row): PE (x, y) has neighbours x +- 1
        # and y +- 1, and its offset is kx[x] + ky[y]. Where no rank of the tensor mixes an X
        # and a Y loop (sep), distinct offsets over a product of X and Y sets multiply: the
        # count is over the row and the column, not over every PE.
        return _link_counts_sep(lf, lk, K, nx, nxp, nyp, tl, nt, out_l, out_s, pk, tmp)
    _tile_offsets(pk, 0, N, lf, lk, 0, K)  # of every PE
    slots, stamp = _hash_table(N)
    n_all = -1.0
    for q in range(nt):
        t = tl[q]
        linked = 0
        m = 0
        col = 0
        for i in range(N):
            x = pk[i]
            ok = ((col != H - 1 and i + 1 < N and pk[i + 1] - x == t) or (col != 0 and pk[i - 1] - x == t)
                  or (i + H < N and pk[i + H] - x == t) or (i >= H and pk[i - H] - x == t))
            if ok:
                linked += 1
            else:
                tmp[m] = x
                m += 1
            col += 1
            if col == H:
                col = 0
        if linked == 0:
            continue
        if n_all < 0.0:
            n_all = _distinct(pk, N, slots, stamp, 1)
        n_left = _distinct(tmp, m, slots, stamp, 2 + q)
        if n_left < n_all:
            out_l[q] = float(linked)
            out_s[q] = n_all - n_left
    if n_all < 0.0:
        n_all = _distinct(pk, N, slots, stamp, 1)
    return n_all


def _link_counts_sep(lf, lk, K, nx, nxp, nyp, tl, nt, out_l, out_s, pk, tmp):
    """_link_counts for a mesh whose rows hold the X loops and a tensor with no rank mixing an
    X and a Y loop: pk[:nxp] the X offsets, pk[nxp:nxp+nyp] the Y offsets."""
    for a in range(2):
        k0 = 0 if a == 0 else nx
        k1 = nx if a == 0 else K
        off = 0 if a == 0 else nxp
        _tile_offsets(pk, off, nxp if a == 0 else nyp, lf, lk, k0, k1)
    slots, stamp = _hash_table(nxp + nyp)
    dx = _distinct(pk, nxp, slots, stamp, 1)
    for i in range(nyp):
        tmp[i] = pk[nxp + i]
    dy = _distinct(tmp, nyp, slots, stamp, 2)
    n_all = dx * dy
    gen = 3
    for q in range(nt):
        t = tl[q]
        ux = 0
        for x in range(nxp):
            v = pk[x]
            if not ((x + 1 < nxp and pk[x + 1] - v == t) or (x >= 1 and pk[x - 1] - v == t)):
                tmp[ux] = v
                ux += 1
        lx = _distinct(tmp, ux, slots, stamp, gen)
        gen += 1
        uy = 0
        for y in range(nyp):
            v = pk[nxp + y]
            if not ((y + 1 < nyp and pk[nxp + y + 1] - v == t) or (y >= 1 and pk[nxp + y - 1] - v == t)):
                tmp[uy] = v
                uy += 1
        ly = _distinct(tmp, uy, slots, stamp, gen)
        gen += 1
        linked = nxp * nyp - ux * uy
        if linked == 0:
            continue
        n_left = lx * ly
        if n_left < n_all:
            out_l[q] = float(linked)
            out_s[q] = n_all - n_left
    return n_all


def _distinct(xs, n, slots, stamp, gen):
    """Distinct values among xs[:n] (whole numbers), by open addressing in slots (a power of 2
    long, at least 2n; stamp[j] == gen marks slot j used in this count)."""
    mask = slots.shape[0] - 1
    count = 0.0
    for i in range(n):
        x = xs[i]
        j = (int(x) * 40503) & mask
        while stamp[j] == gen and slots[j] != x:
            j = (j + 1) & mask
        if stamp[j] != gen:
            stamp[j] = gen
            slots[j] = x
            count += 1.0
    return count


class Plan(NamedTuple):
    """A cost model's constants for one workload on one hardware (built by CostModel.kernel_plan).
    T tensors, R ranks, D dims, L levels."""

    coef: np.ndarray  # [T, R, D] float64: projection coefficients
    rank_live: np.ndarray  # [T, R] bool
    key_coef: np.ndarray  # [T, R] float64
    d1: np.ndarray  # [T, R] int64: first dim of a two-dim rank (sliding windows)
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
    fanout: np.ndarray  # [L, 2] float64: mesh X, Y below each level
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
    """What the kernel writes (float64; reason int64); without detail, per-level arrays have
    one row, used as scratch."""

    energy: np.ndarray
    cycles: np.ndarray
    reason: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    tile: np.ndarray
    instances: np.ndarray
    level_cycles: np.ndarray
    energy_by_level: np.ndarray
    energy_by_level_tensor: np.ndarray
    compute_cycles: np.ndarray
    fanout_excess: np.ndarray
    factor_error: np.ndarray
    links: np.ndarray


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
    lpf_: np.ndarray
    lpd_: np.ndarray
    lpm_: np.ndarray
    lhd_: np.ndarray
    lpk_: np.ndarray
    lpx_: np.ndarray
    lph_: np.ndarray
    saved: np.ndarray
    tl_: np.ndarray
    tw_: np.ndarray
    tz_: np.ndarray
    ql_: np.ndarray
    qs_: np.ndarray
    lk_: np.ndarray
    vd_: np.ndarray
    pk_: np.ndarray
    tmp_: np.ndarray
    upf_: np.ndarray
    nxt: np.ndarray
    childof: np.ndarray
    pprod: np.ndarray
    par: np.ndarray
    pxl: np.ndarray
    pyl: np.ndarray
    lpl: np.ndarray


def _scratch(m, p):
    """One thread's :class:`Scratch` for mappings ``m`` under plan ``p``."""
    tf, coef, fanout = m.tf, p.coef, p.fanout
    L = tf.shape[1]
    D = tf.shape[2]
    T = coef.shape[0]
    R = coef.shape[1]
    J = L * D
    max_pe = 2  # scratch for _link_counts: the largest fanout (a mapping that exceeds it is invalid)
    for l in range(L):
        max_pe = max(max_pe, int(fanout[l, 0] * fanout[l, 1] + 0.5))
    slot = np.empty(D, dtype=np.int64)
    fs = np.empty((L, D))
    ext = np.empty((L + 1, D))
    box = np.empty((T, L + 1, R))
    full = np.empty((T, L + 1))
    n_ = np.empty(J)
    st_ = np.empty(J)
    dim_ = np.empty(J, dtype=np.int64)
    lv_ = np.empty(J, dtype=np.int64)
    cj_ = np.empty(J)
    kap = np.empty(J)
    kcum = np.empty(J)
    g = np.empty(J)
    deltas = np.zeros((T, L + 1))
    peer = np.zeros((T, L + 1))
    content_b = np.zeros((T, L + 1))
    distinct = np.zeros((T, L + 1))
    part = np.empty((T, L))
    spc = np.empty((L + 1, D))
    lastsp = np.empty((L + 1, D), dtype=np.int64)
    cnt_ = np.empty(L + 1, dtype=np.int64)
    nsp_ = np.zeros(L + 1, dtype=np.int64)
    hasp_ = np.zeros(L, dtype=np.bool_)
    lpf_ = np.ones((L, 2 * D))
    lpd_ = np.zeros((L, 2 * D), dtype=np.int64)
    lpm_ = np.ones((L, 2 * D))
    lhd_ = np.zeros((L, 2 * D), dtype=np.int64)
    lpk_ = np.zeros(L, dtype=np.int64)
    lpx_ = np.zeros(L, dtype=np.int64)
    lph_ = np.ones(L, dtype=np.int64)
    saved = np.zeros((T, L + 1))
    tl_ = np.empty(J + 1)
    tw_ = np.empty(J + 1)
    tz_ = np.empty(J + 1)
    ql_ = np.empty(J + 1)
    qs_ = np.empty(J + 1)
    lk_ = np.empty(2 * D)
    vd_ = np.empty(J + 1)
    pk_ = np.empty(max_pe)
    tmp_ = np.empty(max_pe)
    upf_ = np.full((L + 1, L), -1.0)
    nxt = np.empty(T, dtype=np.int64)
    childof = np.empty((T, L), dtype=np.int64)
    pprod = np.empty(J + 1)
    par = np.empty(L + 1, dtype=np.int64)
    pxl = np.empty(L)
    pyl = np.empty(L)
    lpl = np.empty(L)
    return Scratch(slot, fs, ext, box, full, n_, st_, dim_, lv_, cj_, kap, kcum, g, deltas, peer, content_b, distinct, part, spc, lastsp, cnt_, nsp_, hasp_, lpf_, lpd_, lpm_, lhd_, lpk_, lpx_, lph_, saved, tl_, tw_, tz_, ql_, qs_, lk_, vd_, pk_, tmp_, upf_, nxt, childof, pprod, par, pxl, pyl, lpl)


def _evaluate_range(first, last, detail, costs, m, p, o, s):
    """Evaluate mappings ``first`` to ``last`` of ``m`` (:class:`Mappings`) with the constants
    ``p`` (:class:`Plan`) into ``o`` (:class:`Outputs`), using the scratch arrays ``s`` (one
    set per thread, :class:`Scratch`). ``costs``: 2 every mapping's costs; 1 only valid ones'
    (an invalid mapping gets its reason and +inf energy and cycles, nothing else); 0 none
    (validity and reasons only; a valid mapping's energy and cycles are NaN)."""
    tf, sp, order, sorder, keep = m.tf, m.sp, m.order, m.sorder, m.keep
    coef, rank_live, key_coef, d1, d2, c1 = p.coef, p.rank_live, p.key_coef, p.d1, p.d2, p.c1
    c2, read_write, bounds, act, capacity, block = p.c2, p.read_write, p.bounds, p.act, p.capacity, p.block
    rbw, wbw, er, ew, fanout, mac_energy = p.rbw, p.wbw, p.er, p.ew, p.fanout, p.mac_energy
    macs, leak_e, n_clu = p.macs, p.leak, p.n_clusters
    out_energy, out_cycles, out_reason, out_reads, out_fills, out_updates = o.energy, o.cycles, o.reason, o.reads, o.fills, o.updates
    out_tile, out_inst, out_lc, out_elevel, out_elt, out_cc = o.tile, o.instances, o.level_cycles, o.energy_by_level, o.energy_by_level_tensor, o.compute_cycles
    out_fan, out_ferr, out_links = o.fanout_excess, o.factor_error, o.links
    slot, fs, ext, box, full, n_ = s.slot, s.fs, s.ext, s.box, s.full, s.n_
    st_, dim_, lv_, cj_, kap, kcum = s.st_, s.dim_, s.lv_, s.cj_, s.kap, s.kcum
    g, deltas, peer, content_b, distinct, part = s.g, s.deltas, s.peer, s.content_b, s.distinct, s.part
    spc, lastsp, cnt_, nsp_, hasp_, lpf_ = s.spc, s.lastsp, s.cnt_, s.nsp_, s.hasp_, s.lpf_
    lpd_, lpm_, lhd_, lpk_, lpx_, lph_ = s.lpd_, s.lpm_, s.lhd_, s.lpk_, s.lpx_, s.lph_
    saved, tl_, tw_, tz_, ql_, qs_ = s.saved, s.tl_, s.tw_, s.tz_, s.ql_, s.qs_
    lk_, vd_, pk_, tmp_, upf_, nxt = s.lk_, s.vd_, s.pk_, s.tmp_, s.upf_, s.nxt
    childof, pprod, par, pxl, pyl, lpl = s.childof, s.pprod, s.par, s.pxl, s.pyl, s.lpl
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
        if costs < 2:
            # A search needs no costs of an invalid mapping (it scores it +inf), a legality
            # check none at all: the validity checks of the end, on the same extents and tiles,
            # end the evaluation here.
            bad_fact = False
            for d in range(D):
                if abs(ext[0, d] - bounds[d]) > 1e-6 * bounds[d]:
                    bad_fact = True
            bad_fan = False
            bad_cap = False
            for l in range(L):
                if pxl[l] > fanout[l, 0] * (1.0 + 1e-6) or pyl[l] > fanout[l, 1] * (1.0 + 1e-6):
                    bad_fan = True
                used = 0.0
                for t in range(T):
                    if keep[i, l, t]:
                        used += full[t, l]
                if used > capacity[l] + 0.5:
                    bad_cap = True
            bad_keep = False
            for t in range(T):
                if not keep[i, 0, t]:
                    bad_keep = True
            if bad_fact or bad_fan or bad_cap or bad_keep:
                out_reason[i] = (BAD_FACTORS if bad_fact else BAD_FANOUT if bad_fan else BAD_CAPACITY if bad_cap
                                 else BAD_KEEP)
                out_energy[i] = math.inf
                out_cycles[i] = math.inf
                out_cc[i] = math.inf
                continue
            if costs == 0:
                out_energy[i] = math.nan
                out_cycles[i] = math.nan
                out_cc[i] = math.nan
                continue
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
                # the spatial loops, innermost first: X loops (the PE index's fastest digits),
                # then Y loops, each axis in its loop order (see _link_counts)
                K0 = 0
                px = 1
                for ax in range(2):
                    first = K0
                    for d in range(D):
                        if sp[i, l, d, ax] > 1:  # insertion by loop order, innermost first
                            k = K0
                            while k > first and sorder[i, l, lpd_[l, k - 1]] < sorder[i, l, d]:
                                lpd_[l, k] = lpd_[l, k - 1]
                                lpf_[l, k] = lpf_[l, k - 1]
                                lpm_[l, k] = lpm_[l, k - 1]
                                k -= 1
                            lpd_[l, k] = d
                            lpf_[l, k] = float(sp[i, l, d, ax])
                            # (a dim spread on both axes: its Y loop steps over its X loop)
                            lpm_[l, k] = float(sp[i, l, d, 0]) if ax == 1 else 1.0
                            K0 += 1
                            if ax == 0:
                                px *= sp[i, l, d, ax]
                    if ax == 0:
                        lpx_[l] = K0
                lpk_[l] = K0
                lph_[l] = max(int(fanout[l, 0] + 0.5), px)
                rem = lph_[l]
                for k in range(K0):  # the row length's digits in the loops' mixed radix
                    lhd_[l, k] = rem % int(lpf_[l, k])
                    rem //= int(lpf_[l, k])
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
                # MAC operands: every MAC takes its operand at every step (a point is never
                # differenced); what it reuses comes over links from its neighbours.
                # 4. link transfers: at the fanout right above b, among b's tiles; at a fanout
                # further up (between p and b), among the tiles of the level right below it,
                # where they change only the multicast factor (see the cost model). Level c's
                # deltas first (c = b, then c = lf + 1 for each fanout lf further up).
                p = par[b]
                saved[t, b] = 0.0
                for lf in range(max(p, 0), b - 1):
                    upf_[b, lf] = -1.0  # -1: the plain count of distinct child tiles
                lf = b - 1
                while lf >= 0:
                    c = lf + 1
                    if c < b and (lf < p or not hasp_[lf]):
                        if lf < p:
                            break
                        lf -= 1
                        continue
                    mac_c = c == L
                    cnt = cnt_[c]
                    if c == b:
                        fb = full[t, b]
                    else:
                        fb = 1.0
                        for r in range(R):
                            fb *= 1.0 + c1[t, r] * (ext[c, d1[t, r]] - 1.0) + c2[t, r] * (ext[c, d2[t, r]] - 1.0)
                    if cnt == 0:
                        if c == b:
                            deltas[t, b] = total_iters if mac_c else fb
                        break  # no steps above c: no links here nor further up
                    m = cnt - 1
                    h = g[m]
                    se = 0.0
                    for j in range(m + 1):
                        if g[j] == h:
                            se += cj_[j]
                    ov = 1.0
                    dm = dim_[m]
                    for r in range(R):
                        tm = abs(((c1[t, r] if d1[t, r] == dm else 0.0) + (c2[t, r] if d2[t, r] == dm else 0.0))
                                 * st_[m])
                        bx = 1.0 + c1[t, r] * (ext[c, d1[t, r]] - 1.0) + c2[t, r] * (ext[c, d2[t, r]] - 1.0)
                        x = (1.0 if mac_c else bx) - tm
                        ov *= x if x > 0.0 else 0.0
                    delta_m = fb - ov
                    dc = total_iters if mac_c else fb * (pprod[cnt] - se) + delta_m * se
                    if c == b:
                        deltas[t, b] = dc
                    if p < 0 or not hasp_[lf]:
                        lf -= 1
                        continue
                    K0 = lpk_[lf]
                    npe = 1.0
                    span = 0.0
                    for k in range(K0):
                        lk_[k] = key_coef[t, lpd_[lf, k]] * ext[lf + 1, lpd_[lf, k]] * lpm_[lf, k]
                        npe *= lpf_[lf, k]
                        span += (lpf_[lf, k] - 1.0) * abs(lk_[k])
                    # The steps whose deltas may come over links, as (translation, weight, delta
                    # size): MACs every step, its translation its own; a child buffer the steps
                    # that difference like m's (after m's step or an equal one; the first leaf
                    # too when m's delta is the whole tile), and, when m's delta is the whole
                    # tile, the other steps with the whole tile. A neighbour's tile is offset by
                    # at most the span of the spatial loops: farther steps are left out.
                    kc = kcum[m]
                    nt = 0
                    cm = cj_[m]
                    tm0 = g[m] - kc
                    if mac_c or delta_m > 0.0:
                        full_m = mac_c or delta_m >= fb
                        if abs(tm0) <= span:
                            tl_[0] = tm0
                            tw_[0] = se if mac_c else (cm if full_m else (n_[m] - 1.0) * (se - cm)) + (se - cm)
                            tz_[0] = 1.0 if mac_c else delta_m
                            nt = 1
                        if full_m:
                            for j in range(m + 1):
                                if g[j] != h and cj_[j] > 0.0 and abs(g[j] - kc) <= span:
                                    tl_[nt] = g[j] - kc
                                    tw_[nt] = cj_[j]
                                    tz_[nt] = 1.0 if mac_c else fb
                                    nt += 1
                    if nt == 0:
                        lf -= 1
                        continue
                    # Keep the steps whose translation is a neighbour's offset: +-1 moves the
                    # innermost loop, carrying into outer ones; +-H (the mesh's row) adds H's
                    # digits in the loops' mixed radix, with every carry pattern the digits allow.
                    nc = 0
                    npend = 0
                    for q in range(nt):
                        tq = tl_[q]
                        found = False
                        back = 0.0
                        for k in range(K0):
                            dv = lk_[k] - back
                            if dv == tq or -dv == tq:
                                found = True
                                break
                            back += (lpf_[lf, k] - 1.0) * lk_[k]
                        if found:
                            tl_[nc] = tq
                            tw_[nc] = tw_[q]
                            tz_[nc] = tz_[q]
                            nc += 1
                        else:
                            ql_[npend] = tq  # (ql_, qs_ hold the pending steps until counted)
                            qs_[npend] = tw_[q]
                            vd_[npend] = tz_[q]
                            npend += 1
                    hrow = lph_[lf]
                    if npend > 0 and hrow < npe and npe <= tmp_.shape[0]:
                        # the +-H offsets, one per carry pattern the digits allow (each pattern
                        # is some PE's, so there are at most N of them)
                        nvd = 0
                        for pat in range(1 << (K0 - 1)):
                            carry = 0
                            dv = 0.0
                            feasible = True
                            for k in range(K0):
                                f = int(lpf_[lf, k])
                                sdig = lhd_[lf, k] + carry
                                cout = (pat >> k) & 1
                                if (cout == 1 and sdig < 1) or (cout == 0 and sdig > f - 1):
                                    feasible = False
                                    break
                                dv += (sdig - f * cout) * lk_[k]
                                carry = cout
                            if feasible and nvd < tmp_.shape[0]:
                                tmp_[nvd] = dv
                                nvd += 1
                        for q in range(npend):
                            tq = ql_[q]
                            for k in range(nvd):
                                if tmp_[k] == tq or -tmp_[k] == tq:
                                    tl_[nc] = tq
                                    tw_[nc] = qs_[q]
                                    tz_[nc] = vd_[q]
                                    nc += 1
                                    break
                    n_all = 0.0
                    pe = 0.0
                    sv = 0.0
                    if nc > 0 and npe <= pk_.shape[0]:
                        # separable: no rank of t takes a dim of an X loop and one of a Y loop
                        nxl = lpx_[lf]
                        sep = True
                        for r in range(R):
                            if c1[t, r] > 0.0 and c2[t, r] > 0.0:
                                ax1 = -1
                                ax2 = -1
                                for k in range(K0):
                                    if lpd_[lf, k] == d1[t, r]:
                                        ax1 = 0 if k < nxl else 1
                                    if lpd_[lf, k] == d2[t, r]:
                                        ax2 = 0 if k < nxl else 1
                                if ax1 >= 0 and ax2 >= 0 and ax1 != ax2:
                                    sep = False
                        for k in range(nxl):
                            for k2 in range(nxl, K0):
                                if lpd_[lf, k] == lpd_[lf, k2]:
                                    sep = False
                        n_all = _link_counts(lpf_[lf], lk_, K0, nxl, sep, lph_[lf], tl_, nc, ql_, qs_, pk_, tmp_)
                        for q in range(nc):
                            pe += tw_[q] * tz_[q] * ql_[q]
                            sv += tw_[q] * tz_[q] * qs_[q]
                        if n_all > 0.0:
                            if c == b:
                                peer[t, b] = pe / npe  # words per child taken over links
                                saved[t, b] = sv  # parent accesses saved per parent instance
                            elif pe > 0.0:
                                # Timeloop scales the accesses by N x (distinct) / (children served
                                # by the parent) over the whole run, with the links taken
                                upf_[b, lf] = npe * (n_all * dc - sv) / (npe * dc - pe)
                    lf -= 1
            # 5. distinct children per parent (multicast only of identical deltas): the product
            # over the fanout levels between them of each level's distinct child tiles
            for b in range(1, L + 1):
                if b < L and not keep[i, b, t]:
                    continue
                p = max(par[b], 0)
                dist = 1.0
                dlow = 1.0  # the fanout directly above b, where its link transfers are counted
                up = 1.0
                for lf in range(p, b):
                    if not hasp_[lf]:
                        continue
                    dl = 1.0
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
                            dl *= fa * fb2 - max(0.0, fa - qq) * max(0.0, fb2 - pp)
                        else:
                            dl *= fa * fb2
                    dist *= dl
                    if lf == b - 1:
                        dlow = dl
                    elif upf_[b, lf] >= 0.0:
                        up *= upf_[b, lf]
                    else:
                        up *= dl
                distinct[t, b] = dist
                # link terms, for the tensor model (which takes them from here)
                out_links[o, 0, t, b - 1] = peer[t, b]
                out_links[o, 1, t, b - 1] = saved[t, b]
                out_links[o, 2, t, b - 1] = up / (dist / dlow)
                # the accesses at the fanout right above b (less those its links save), multicast
                # through the fanouts further up
                content_b[t, b] = (deltas[t, b] * dlow - saved[t, b]) * up
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
                # Timeloop rounds the (possibly averaged) access counts to whole accesses, except a
                # read-only tensor's fills, which it truncates (see the cost model).
                reads = math.floor(reads + 0.5)
                fil = math.floor(fil + 0.5) if read_write[t] else math.floor(fil + 1e-6)
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


_evaluate_range_jit = _evaluate_range  # plain Python until _jit() rebinds them
_scratch_jit = _scratch
_evaluate_batch = _evaluate_batch_serial = None


def _batch_py(m, p, o, detail, costs, chunk):
    B = m.tf.shape[0]
    n_chunks = (B + chunk - 1) // chunk
    for c in prange(n_chunks):
        _evaluate_range_jit(c * chunk, min(B, (c + 1) * chunk), detail, costs, m, p, o, _scratch_jit(m, p))


def _renamed(fn, name: str):
    """The same Python function under another name: numba keys its on-disk cache by name, so
    the serial and the parallel compilation of one body get separate cache files."""
    import types

    g = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    return g


def _jit() -> None:
    """Import numba and wrap the kernel's functions, once per process: rebinding the module's
    globals, which the kernel resolves when numba compiles it (compiling itself happens on first
    call, or from numba's on-disk cache)."""
    global _JITTED, prange, _distinct, _link_counts_sep, _link_counts, _gcd, _blocks, _tile_offsets, _hash_table
    global _evaluate_range_jit, _scratch_jit, _evaluate_batch, _evaluate_batch_serial
    if _JITTED or not HAVE_NUMBA:
        return
    from numba import njit
    from numba import prange as numba_prange

    prange = numba_prange
    _distinct = njit(cache=True, error_model="numpy")(_distinct)
    _link_counts_sep = njit(cache=True, error_model="numpy")(_link_counts_sep)
    _link_counts = njit(cache=True, error_model="numpy")(_link_counts)
    _gcd = njit(cache=True, inline="always")(_gcd)
    _tile_offsets = njit(cache=True, error_model="numpy")(_tile_offsets)
    _hash_table = njit(cache=True)(_hash_table)
    _blocks = njit(cache=True, error_model="numpy", inline="always")(_blocks)
    _evaluate_range_jit = njit(cache=True, error_model="numpy")(_evaluate_range)
    _scratch_jit = njit(cache=True, error_model="numpy")(_scratch)
    # The parallel kernel serves a process that evaluates large batches on all its cores; worker
    # processes run numba on one thread, where the serial compilation does the same work and
    # compiles in about half the time (prange is a plain range there).
    _evaluate_batch = njit(parallel=True, cache=True, error_model="numpy")(_renamed(_batch_py, "_evaluate_batch"))
    _evaluate_batch_serial = njit(cache=True, error_model="numpy")(_renamed(_batch_py, "_evaluate_batch_serial"))
    _JITTED = True


def _batch_args(plan: Plan, temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray, sorder: np.ndarray,
                keep: np.ndarray, detail: bool, chunk: int, costs: int = 2) -> tuple[Outputs, tuple]:
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
        energy=np.empty(B),
        cycles=np.empty(B),
        reason=np.zeros(B, dtype=np.int64),
        reads=np.empty((rows, L, T)),
        fills=np.empty((rows, L, T)),
        updates=np.empty((rows, L, T)),
        tile=np.empty((rows, L, T)),
        instances=np.empty((rows, L)),
        level_cycles=np.empty((rows, L)),
        energy_by_level=np.empty((rows, L + 1)),
        energy_by_level_tensor=np.empty((rows, L, T)),
        compute_cycles=np.empty(B),
        fanout_excess=np.empty((rows, L, 2)),
        factor_error=np.empty((rows, D)),
        links=np.zeros((rows, 3, T, L)))
    out.links[:, 2] = 1.0
    return out, (m, plan, out, detail, int(costs), chunk)


def evaluate(plan: Plan, temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray, sorder: np.ndarray,
             keep: np.ndarray, detail: bool = True, chunk: int = 256, costs: int = 2) -> dict:
    """Evaluate a batch: temporal int64 [B, L, D], spatial int64 [B, L, D, 2], order and sorder
    int64 [B, L, D], keep bool [B, L, T]. ``plan`` holds the model's constants (see
    CostModel.kernel_plan). Returns float64 arrays (int64 for ``reason``). ``costs``: 2 all;
    1 valid mappings' only (invalid ones: reason, +inf energy and cycles); 0 reasons only."""
    if not HAVE_NUMBA:
        raise RuntimeError("numba is not installed")
    _jit()
    out, args = _batch_args(plan, temporal, spatial, order, sorder, keep, detail, chunk, costs)
    (_evaluate_batch_serial if len(temporal) <= chunk or _one_thread() else _evaluate_batch)(*args)
    return out._asdict()


PYTHON_BATCH = 8  # link terms of at most this many mappings run as Python where numba is not loaded yet


def link_terms(plan: Plan, temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray, sorder: np.ndarray,
               keep: np.ndarray) -> np.ndarray:
    """The link-transfer terms [B, 3, T, L] the tensor model takes from here: per tensor and child
    level b (index b - 1), the words per child taken over links, the parent accesses they save at
    the fanout right above b, and the factor by which they change the multicast of the fanouts
    further up. Without numba, the same code runs as plain Python (slowly)."""
    out, args = _batch_args(plan, temporal, spatial, order, sorder, keep, True, 256)
    if HAVE_NUMBA and (_JITTED or len(temporal) > PYTHON_BATCH):
        _jit()
        # the serial compilation only: the tensor model is not the bulk path, and a process that
        # evaluates with it should not also compile the multi-threaded kernel
        _evaluate_batch_serial(*args)
    else:  # a few mappings (accelmap evaluate): plain Python is faster than loading numba
        _batch_py(*args)
    return out.links


def _one_thread() -> bool:
    import numba

    return numba.get_num_threads() == 1


def _dispatchers(parallel: bool) -> tuple:
    _jit()
    return (_evaluate_range_jit, _evaluate_batch_serial) + ((_evaluate_batch,) if parallel else ())


def is_compiled(parallel: bool = False) -> bool:
    """Whether the kernel's machine code is in numba's on-disk cache (or already loaded), so the
    first evaluation only loads it: the serial kernel that single-threaded workers use, and with
    ``parallel`` the multi-threaded one too. Numba's cache index is read through its private API;
    if that changes, the answer is False and the caller merely shows a compile step that is quick."""
    if not HAVE_NUMBA:
        return True  # nothing to compile: the torch model is used
    return in_cache(_dispatchers(parallel))


def in_cache(dispatchers) -> bool:
    """Whether every numba dispatcher has machine code loaded or in numba's on-disk cache (read
    through numba's private cache index; if that changes, False: a compile step that is quick)."""
    try:
        return all(f.signatures or bool(f._cache._cache_file._load_index()) for f in dispatchers)
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
