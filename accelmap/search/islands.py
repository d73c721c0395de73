"""The portfolio's per-step island updates as compiled loops (numba).

:class:`~accelmap.search.portfolio.Portfolio` holds its islands as tensors [island, member,
genome]. Stepping them with tensor operations costs mostly dispatch (some 70 small operations a
step); these functions do the same updates in a few calls. The caller keeps every random draw and
every sort in torch (torch's sort orders ties its own way), so a seed gives the same search as the
tensor code; ``tests/search/test_default_search.py`` checks one against the other.
"""

from __future__ import annotations

import math

_JITTED = False


def _parents(gen_g, order, pick, pa, pb):
    """Both parents of every child: island i's child j takes the genetic members of ranks
    pick[i, 0, j] and pick[i, 1, j] (``order``: each population's ranking)."""
    k, g, G = gen_g.shape
    for i in range(k):
        for j in range(g):
            a, b = order[i, pick[i, 0, j]], order[i, pick[i, 1, j]]
            for c in range(G):
                pa[i * g + j, c] = gen_g[i, a, c]
                pb[i * g + j, c] = gen_g[i, b, c]


def _assemble(ann_g, child, loc_g, mut, out, moved):
    """Each island's rows of the step, in order: its chains, its children, its walkers; ``moved``
    gets the flat indices of the rows that take a neighbour move (all but unmutated children).
    Returns how many."""
    k, a, G = ann_g.shape
    g, w = child.shape[1], loc_g.shape[1]
    m = 0
    for i in range(k):
        base = i * (a + g + w)
        for j in range(a):
            out[base + j, :] = ann_g[i, j, :]
            moved[m] = base + j
            m += 1
        for j in range(g):
            out[base + a + j, :] = child[i, j, :]
            if mut[i, j]:
                moved[m] = base + a + j
                m += 1
        for j in range(w):
            out[base + a + g + j, :] = loc_g[i, j, :]
            moved[m] = base + a + g + j
            m += 1
    return m


def _accept(ga, sa, u, p, ann_g, ann_s, ann_best_g, ann_best_s):
    """Metropolis acceptance of the chains' proposals (p: acceptance probability of a worse one),
    then each island's chain best."""
    k, a, _ = ga.shape
    for i in range(k):
        for j in range(a):
            s = sa[i, j]
            if math.isfinite(s) and (s <= ann_s[i, j] or u[i, j] < p[i, j]):
                ann_s[i, j] = s
                ann_g[i, j, :] = ga[i, j, :]
        mi = 0
        for j in range(1, a):
            if ann_s[i, j] < ann_s[i, mi]:
                mi = j
        if ann_s[i, mi] < ann_best_s[i]:
            ann_best_s[i] = ann_s[i, mi]
            ann_best_g[i, :] = ann_g[i, mi, :]


def _restart_elite(worst, ann_g, ann_s, ann_best_g, ann_best_s, gen_g, gen_s, order, gc, sc, cg, cs):
    """Restart the ``worst`` chains of each island at its chain best; gather the genetic elite
    (the first ranks of ``order``) and this step's children as the candidates cg, cs."""
    k, r = worst.shape
    ne = cg.shape[1] - gc.shape[1]
    for i in range(k):
        for j in range(r):
            ann_g[i, worst[i, j], :] = ann_best_g[i, :]
            ann_s[i, worst[i, j]] = ann_best_s[i]
        for j in range(ne):
            cg[i, j, :] = gen_g[i, order[i, j], :]
            cs[i, j] = gen_s[i, order[i, j]]
        for j in range(gc.shape[1]):
            cg[i, ne + j, :] = gc[i, j, :]
            cs[i, ne + j] = sc[i, j]


def _survive(cg, cs, keep, gen_g, gen_s, gl, sl, loc_g, loc_s, gk, sk, best_g, best_s):
    """The candidates of ranks ``keep`` become the genetic populations; greedy walkers; a new
    island best restarts the island's even walkers there and, while better than every genetic
    member, replaces the worst one."""
    k, g = keep.shape
    w = gl.shape[1]
    for i in range(k):
        for j in range(g):
            gen_g[i, j, :] = cg[i, keep[i, j], :]
            gen_s[i, j] = cs[i, keep[i, j]]
        for j in range(w):
            if sl[i, j] < loc_s[i, j]:
                loc_s[i, j] = sl[i, j]
                loc_g[i, j, :] = gl[i, j, :]
        mi = 0
        for j in range(1, sk.shape[1]):
            if sk[i, j] < sk[i, mi]:
                mi = j
        if sk[i, mi] < best_s[i]:
            best_s[i] = sk[i, mi]
            best_g[i, :] = gk[i, mi, :]
            for j in range(0, w, 2):
                loc_s[i, j] = best_s[i]
                loc_g[i, j, :] = best_g[i, :]
        lo, hi = 0, 0
        for j in range(1, g):
            if gen_s[i, j] < gen_s[i, lo]:
                lo = j
            if gen_s[i, j] > gen_s[i, hi]:
                hi = j
        if best_s[i] < gen_s[i, lo]:
            gen_g[i, hi, :] = best_g[i, :]
            gen_s[i, hi] = best_s[i]


_I3, _I2, _F2, _F1 = "int64[:, :, :]", "int64[:, :]", "float64[:, :]", "float64[:]"
SIGNATURES = {
    "_parents": f"void({_I3}, {_I2}, {_I3}, {_I2}, {_I2})",
    "_assemble": f"int64({_I3}, {_I3}, {_I3}, boolean[:, :], {_I2}, int64[:])",
    "_accept": f"void({_I3}, {_F2}, {_F2}, {_F2}, {_I3}, {_F2}, {_I2}, {_F1})",
    "_restart_elite": f"void({_I2}, {_I3}, {_F2}, {_I2}, {_F1}, {_I3}, {_F2}, {_I2}, {_I3}, {_F2}, {_I3}, {_F2})",
    "_survive": f"void({_I3}, {_F2}, {_I2}, {_I3}, {_F2}, {_I3}, {_F2}, {_I3}, {_F2}, {_I3}, {_F2}, {_I2}, {_F1})",
}
_WRAPPED = False


def _wrap() -> None:
    global _WRAPPED
    if _WRAPPED:
        return
    from numba import njit

    for name in SIGNATURES:
        globals()[name] = njit(cache=True)(globals()[name])
    _WRAPPED = True


def _jit() -> None:
    """Compile (or load from numba's cache) each function for its one signature, once per process."""
    global _JITTED
    if _JITTED:
        return
    _wrap()
    for name, sig in SIGNATURES.items():
        globals()[name].compile(sig)
        globals()[name].disable_compile()
    _JITTED = True


def is_compiled() -> bool:
    """Whether their machine code is in numba's on-disk cache (read as the kernel's is)."""
    from accelmap.model.kernel import in_cache

    _wrap()
    return in_cache(globals()[name] for name in SIGNATURES)


