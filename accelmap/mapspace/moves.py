"""The mapping space's neighbourhood moves and mesh-axis repair as compiled scalar loops (numba).

:meth:`MappingSpace.neighbours` and :meth:`MappingSpace._repair_axes` are written as batched
tensor code. On the batches a search asks (a few hundred genomes per step) that code is dominated
by per-operation dispatch: neighbours and repair took about 40% of the default search's time,
against 17% for the cost kernel. These functions do the same work per genome with plain loops.

They are *bit-identical* to the tensor code: the caller draws every random number with the same
torch calls, in the same order and the same shapes, and passes them in; these functions only
apply the deterministic rest (the same argmax tie rule: the first index wins). So a seed gives
the same search as before, and ``tests/mapspace/test_moves.py`` compares the two paths on random
batches of constrained, unconstrained and imperfect spaces.

They edit the genome's parts in place: factors [N, D, S], order [N, L, D], axis [N, F, D] (int64
views of :meth:`Layout.split`); ``rows`` are the genomes a move applies to.
"""

from __future__ import annotations

import importlib.util

import numpy as np

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
_JITTED = False


def _argmax_masked(mask, r, n):
    """The index of the largest r[i] over i < n with mask[i] (-1 elsewhere), first index on ties:
    torch's ``where(mask, r, -1).argmax()``."""
    best, bi = -2.0, 0
    for i in range(n):
        v = r[i] if mask[i] else -1.0
        if v > best:
            best, bi = v, i
    return bi


def _repair(fac, axis, L, fan, axis_fixed):
    """Where a genome's X (or Y) spatial product overflows its mesh, reassign that fan level's
    axes greedily, largest factor first. fac [N, D, S], axis [N, F, D]."""
    N, D, _ = fac.shape
    F = axis.shape[1]
    val = np.empty(D, dtype=np.int64)
    idx = np.empty(D, dtype=np.int64)
    for n in range(N):
        for f in range(F):
            fx, fy = fan[f, 0], fan[f, 1]
            px, py = 1, 1
            for d in range(D):
                v = fac[n, d, L + f]
                val[d] = v
                if axis[n, f, d] == 0:
                    px *= v
                else:
                    py *= v
            if px <= fx and py <= fy:
                continue
            # a stable sort by decreasing factor (ties in dim order)
            for d in range(D):
                idx[d] = d
            for i in range(1, D):
                j = i
                while j > 0 and val[idx[j - 1]] < val[idx[j]]:
                    idx[j - 1], idx[j] = idx[j], idx[j - 1]
                    j -= 1
            cx = 1
            for j in range(D):
                d = idx[j]
                fv = val[d]
                fixed = axis_fixed[f, d]
                if fixed >= 0:
                    to_x = fixed == 0
                else:
                    to_x = cx * fv <= fx
                axis[n, f, d] = 0 if to_x else 1
                if to_x:
                    cx *= fv


def _move_factor(fac, rows, free_slots, n_free, spf, lpf, r0, r, r2, big):
    """Move the smallest (or, where ``big``, the largest) prime factor of one slot of a random
    movable dim to another free slot of that dim."""
    D, S = fac.shape[1], fac.shape[2]
    movable = np.empty(D, dtype=np.bool_)
    src_ok = np.empty(S, dtype=np.bool_)
    for k in range(rows.shape[0]):
        n = rows[k]
        for d in range(D):
            m = False
            if n_free[d] >= 2:
                for s in range(S):
                    if free_slots[d, s] and fac[n, d, s] > 1:
                        m = True
                        break
            movable[d] = m
        d = _argmax_masked(movable, r0[k], D)
        any_src = False
        for s in range(S):
            src_ok[s] = free_slots[d, s] and fac[n, d, s] > 1
            any_src = any_src or src_ok[s]
        src = _argmax_masked(src_ok, r[k], S)
        best, dst = -2.0, 0
        for s in range(S):
            v = -1.0 if (s == src or not free_slots[d, s]) else r2[k, s]
            if v > best:
                best, dst = v, s
        fs = fac[n, d, src]
        if not (any_src and n_free[d] >= 2 and fs > 1):
            continue
        p = lpf[fs] if big[k] else spf[fs]
        fac[n, d, src] //= p
        fac[n, d, dst] *= p


def _fill_mesh(fac, axis, rows, L, fan, free_slots, axis_fixed, divisors,
               f_draw, r_drop, u_drop, rt_a, r_fill, ax_draw, rt_b):
    """Half the time drop one dim's spatial factor into one of its temporal slots, then fill that
    mesh axis with the largest divisor of another dim's temporal factor that fits (see
    :meth:`MappingSpace._fill_mesh`). ``rt_a`` and ``rt_b`` come with the own-level bonus added."""
    D, F = fac.shape[1], axis.shape[1]
    can_drop = np.empty(D, dtype=np.bool_)
    tmask = np.empty(L, dtype=np.bool_)
    can_fill = np.empty(D, dtype=np.bool_)
    sp = np.empty(D, dtype=np.int64)
    fanmax = 1
    for f in range(F):
        fanmax = max(fanmax, fan[f, 0], fan[f, 1])
    for k in range(rows.shape[0]):
        n = rows[k]
        f = f_draw[k]
        s = L + f
        any_drop = False
        for d in range(D):
            sp[d] = fac[n, d, s]
            tany = False
            for li in range(L):
                tany = tany or free_slots[d, li]
            can_drop[d] = sp[d] > 1 and free_slots[d, s] and tany
            any_drop = any_drop or can_drop[d]
        a = _argmax_masked(can_drop, r_drop[k], D)
        drop = any_drop and u_drop[k]
        for li in range(L):
            tmask[li] = free_slots[a, li]
        ta = _argmax_masked(tmask, rt_a[k], L)
        if drop:
            va = sp[a]
            fac[n, a, ta] *= va
            fac[n, a, s] = 1
            sp[a] = 1
        ax = axis[n, f, a] if drop else ax_draw[k]
        if fan[f, 1] == 1:
            ax = 0
        elif fan[f, 0] == 1:
            ax = 1
        used = 1
        for d in range(D):
            if axis[n, f, d] == ax:
                used *= sp[d]
        cap = fan[f, ax] // used
        any_fill = False
        for d in range(D):
            fixed = axis_fixed[f, d]
            t_gt1 = False
            for li in range(L):
                if free_slots[d, li] and fac[n, d, li] > 1:
                    t_gt1 = True
            c = (free_slots[d, s] and (fixed < 0 or fixed == ax)
                 and (sp[d] == 1 or axis[n, f, d] == ax) and t_gt1)
            if drop and d == a:
                c = False
            can_fill[d] = c
            any_fill = any_fill or c
        b = _argmax_masked(can_fill, r_fill[k], D)
        for li in range(L):
            tmask[li] = free_slots[b, li] and fac[n, b, li] > 1
        tb = _argmax_masked(tmask, rt_b[k], L)
        v = fac[n, b, tb]
        q = divisors[v, min(max(cap, 1), fanmax)]
        if any_fill and q > 1:
            fac[n, b, tb] //= q
            fac[n, b, s] *= q
            axis[n, f, b] = ax


def _swap_loops(fac, order, rows, free_dim, r0, r):
    """Swap the positions of two loops of factor > 1 in a random level that has two."""
    L, D = order.shape[1], order.shape[2]
    sw = np.empty(D, dtype=np.bool_)
    lmask = np.empty(L, dtype=np.bool_)
    for k in range(rows.shape[0]):
        n = rows[k]
        for li in range(L):
            c = 0
            for d in range(D):
                if free_dim[li, d] and fac[n, d, li] > 1:
                    c += 1
            lmask[li] = c >= 2
        lvl = _argmax_masked(lmask, r0[k], L)
        c = 0
        for d in range(D):
            sw[d] = free_dim[lvl, d] and fac[n, d, lvl] > 1
            if sw[d]:
                c += 1
        a = _argmax_masked(sw, r[k], D)
        best, b = -2.0, 0
        for d in range(D):
            v = -1.0 if (d == a or not sw[d]) else r[k, d]
            if v > best:
                best, b = v, d
        if c >= 2:
            order[n, lvl, a], order[n, lvl, b] = order[n, lvl, b], order[n, lvl, a]


def _decode(fac, order, axis, keep, fan_levels, temporal, spatial, order8, sorder, keep_b):
    """A perfect genome's mapping arrays in the cost model's dtypes (what ``MappingSpace.place``
    and ``MappingBatch`` make of it): temporal [N, L, D] and spatial [N, L, D, 2] int32, order and
    the default spatial order [N, L, D] int8, keep [N, L, T] bool, written into the given arrays."""
    N, D, _ = fac.shape
    L, F, T = order.shape[1], axis.shape[1], keep.shape[2]
    for n in range(N):
        for li in range(L):
            for d in range(D):
                temporal[n, li, d] = fac[n, d, li]
                order8[n, li, d] = order[n, li, d]
                spatial[n, li, d, 0] = 1
                spatial[n, li, d, 1] = 1
            for t in range(T):
                keep_b[n, li, t] = keep[n, li, t] != 0
        for f in range(F):
            li = fan_levels[f]
            for d in range(D):
                spatial[n, li, d, 0 if axis[n, f, d] == 0 else 1] = fac[n, d, L + f]
        for li in range(L):
            for d in range(D):
                sorder[n, li, d] = d + D * (spatial[n, li, d, 0] > 1)


def _neighbours(fac, order, axis, keep, L, fan, free_slots, n_free, spf, lpf, axis_fixed, divisors, free_dim,
                free_keep, rows1, r0, r1, r2, big, rows2, f_draw, r_drop, u_drop, rt_a, r_fill, ax_draw, rt_b,
                rows3, s0, s1, flip_rows, f8, d8, keep_rows, pick):
    """Every move of one neighbours step in one call (the draws made by the caller, in the tensor
    code's order): prime-factor moves, mesh refills, loop swaps, axis flips, bypass toggles, then
    the axis repair of every genome."""
    _move_factor(fac, rows1, free_slots, n_free, spf, lpf, r0, r1, r2, big)
    _fill_mesh(fac, axis, rows2, L, fan, free_slots, axis_fixed, divisors, f_draw, r_drop, u_drop, rt_a, r_fill,
               ax_draw, rt_b)
    _swap_loops(fac, order, rows3, free_dim, s0, s1)
    for k in range(flip_rows.shape[0]):
        n = flip_rows[k]
        f, d = f8[n], d8[n]
        if axis_fixed[f, d] < 0:
            axis[n, f, d] = 1 - axis[n, f, d]
    for k in range(keep_rows.shape[0]):
        n = keep_rows[k]
        li, t = free_keep[pick[n], 0], free_keep[pick[n], 1]
        keep[n, li, t] = 1 - keep[n, li, t]
    _repair(fac, axis, L, fan, axis_fixed)


def _crossover(a, b, D, S, L, F, T, pick_d, pick_l, pick_k, child):
    """Children [n, G] taking each dim's slots and axes, each level's loop order and each level's
    bypass from parent a where the pick is true, else from b (the mesh repair comes after)."""
    o, x, k = D * S, D * S + L * D, D * S + L * D + F * D
    for n in range(a.shape[0]):
        for d in range(D):
            src = a if pick_d[n, d] else b
            for s in range(S):
                child[n, d * S + s] = src[n, d * S + s]
            for f in range(F):
                child[n, x + f * D + d] = src[n, x + f * D + d]
        for li in range(L):
            src = a if pick_l[n, li] else b
            for d in range(D):
                child[n, o + li * D + d] = src[n, o + li * D + d]
            src = a if pick_k[n, li] else b
            for t in range(T):
                child[n, k + li * T + t] = src[n, k + li * T + t]


def _ranks(x, out):
    """The position of each entry of x [N, L, D] in its row's ascending order, ties in index
    order: torch's ``argsort(argsort(x))`` for rows of at most 16 (which torch sorts stably)."""
    N, L, D = x.shape
    idx = np.empty(D, dtype=np.int64)
    v = np.empty(D, dtype=np.float32)
    for n in range(N):
        for li in range(L):
            for i in range(D):  # a stable insertion sort of the row's indices
                v[i] = x[n, li, i]
                j = i
                while j > 0 and v[idx[j - 1]] > v[i]:
                    idx[j] = idx[j - 1]
                    j -= 1
                idx[j] = i
            for p in range(D):
                out[n, li, idx[p]] = p


def _outward(fac, table, off, depth, cand, drawn):
    """Each genome's factorization of dim d: of its drawn candidate rows cand[d, n, :] (the first
    k, ``drawn``), the one of least depth (first on ties). ``table``/``depth``: every dim's rows
    one after another, dim d's from off[d]."""
    D, N, K = cand.shape
    S = fac.shape[2]
    for d in range(D):
        for n in range(N):
            best, bj = np.inf, 0
            for j in range(K):
                v = depth[off[d] + cand[d, n, j]] if drawn[n, j] else np.inf
                if v < best:
                    best, bj = v, j
            row = off[d] + cand[d, n, bj]
            for s in range(S):
                fac[n, d, s] = table[row, s]


# One signature per function, arrays of any layout ('A'): genome views are strided, but a batch of
# one genome is contiguous to numba, and each layout would otherwise compile once more mid-search.
_I3, _F2 = "int64[:, :, :]", "float32[:, :]"
SIGNATURES = {  # callees before their callers (each is cached once, as its own entry point)
    "_repair": f"void({_I3}, {_I3}, int64, int64[:, :], int64[:, :])",
    "_fill_mesh": (f"void({_I3}, {_I3}, int64[:], int64, int64[:, :], boolean[:, :], int64[:, :], int64[:, :], "
                   f"int64[:], {_F2}, boolean[:], {_F2}, {_F2}, int64[:], {_F2})"),
    "_neighbours": (f"void({_I3}, {_I3}, {_I3}, {_I3}, int64, int64[:, :], boolean[:, :], int64[:], int64[:], int64[:], "
                    f"int64[:, :], int64[:, :], boolean[:, :], int64[:, :], int64[:], {_F2}, {_F2}, {_F2}, boolean[:], "
                    f"int64[:], int64[:], {_F2}, boolean[:], {_F2}, {_F2}, int64[:], {_F2}, int64[:], {_F2}, {_F2}, "
                    "int64[:], int64[:], int64[:], int64[:], int64[:])"),
    "_crossover": ("void(int64[:, :], int64[:, :], int64, int64, int64, int64, int64, boolean[:, :], boolean[:, :], "
                   "boolean[:, :], int64[:, :])"),
    "_ranks": "void(float32[:, :, :], int64[:, :, :])",
    "_outward": f"void({_I3}, int64[:, :], int64[:], float64[:], {_I3}, boolean[:, :])",
    "_decode": (f"void({_I3}, {_I3}, {_I3}, {_I3}, int64[:], int32[:, :, :], int32[:, :, :, :], int8[:, :, :], "
                "int8[:, :, :], boolean[:, :, :])"),
}
_WRAPPED = False


def _wrap() -> None:
    """Wrap the moves as (not yet compiled) numba functions, once per process."""
    global _WRAPPED, _argmax_masked
    if _WRAPPED:
        return
    from numba import njit

    _argmax_masked = njit(cache=True, inline="always")(_argmax_masked)
    for name in ("_move_factor", "_swap_loops") + tuple(SIGNATURES):  # the first two: inside _neighbours only
        globals()[name] = njit(cache=True)(globals()[name])
    _WRAPPED = True


def _jit() -> None:
    """Compile the moves (or load them from numba's cache) for their one signature each, once per
    process; any other argument types are then an error, not a compilation in the middle of a search."""
    global _JITTED
    if _JITTED or not HAVE_NUMBA:
        return
    _wrap()
    for name, sig in SIGNATURES.items():
        f = globals()[name]
        f.compile(sig)
        f.disable_compile()
    _JITTED = True


def use() -> bool:
    """Whether the compiled moves serve this process (numba installed); compiles on first call."""
    if not HAVE_NUMBA:
        return False
    _jit()
    return True


def is_compiled() -> bool:
    """Whether the moves' machine code is in numba's on-disk cache (or loaded), read through
    numba's private cache index as :func:`accelmap.model.kernel.is_compiled` does."""
    if not HAVE_NUMBA:
        return True
    from accelmap.model.kernel import in_cache

    _wrap()
    return in_cache(globals()[name] for name in SIGNATURES)


def compile_here() -> None:
    """Compile the moves into numba's on-disk cache (the search's one-off compile step)."""
    _jit()
