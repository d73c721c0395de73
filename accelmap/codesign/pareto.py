"""Pareto fronts between two metrics that are both minimised (e.g. energy and latency).

Points are arrays of shape [N, 2]: column 0 is the first metric, column 1 the second.
Rows with an inf or nan in either column stand for failed or infeasible evaluations: they
are never on a front, never dominate anything and never widen a reference point.

Fronts found by different methods (an epsilon-constraint sweep against a weighted-sum
sweep) are compared by hypervolume only in one common reference point, taken from
:func:`reference_point` over all of them; the hypervolume depends on that reference, so
the caller must report it next to the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Relative slack in missed_by: the two sweeps evaluate the same mapping through different
# float paths, so a point found by both may differ in the last bits.
_REL_TOL = 1e-9


def _as_points(points, what: str) -> np.ndarray:
    """``points`` as a float array [N, 2]; an empty input becomes [0, 2]."""
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return np.zeros((0, 2))
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{what} must have shape [N, 2], got {p.shape}")
    return p


def _finite_rows(p: np.ndarray) -> np.ndarray:
    """[N] bool: rows whose both coordinates are finite."""
    return np.isfinite(p).all(axis=1)


def non_dominated(points) -> np.ndarray:
    """[N] bool mask of the points on the Pareto front of ``points`` [N, 2], both minimised.

    True where no other point is <= in both coordinates and < in one. Of exact duplicates
    only the first occurrence is kept, so the front has no repeated points. Rows with
    inf/nan are never on the front and do not dominate others.
    """
    p = _as_points(points, "points")
    mask = np.zeros(len(p), dtype=bool)
    idx = np.flatnonzero(_finite_rows(p))
    if idx.size == 0:
        return mask
    # Sorted by (x, y, original index), every point that could dominate a point (or be an
    # earlier duplicate of it) comes before it, and none after it does. So a point is on the
    # front exactly when its y is strictly below every y seen before it: one O(N log N) sweep.
    order = idx[np.lexsort((idx, p[idx, 1], p[idx, 0]))]
    best_y = np.inf
    for i in order:
        if p[i, 1] < best_y:
            mask[i] = True
            best_y = p[i, 1]
    return mask


def hypervolume_2d(points, reference) -> float:
    """Area dominated by the front of ``points`` [N, 2] and bounded by ``reference`` (x, y).

    Both coordinates are minimised. Points not strictly better than the reference in both
    coordinates add nothing (they bound no area). No points (or none inside) gives 0.0.
    """
    p = _as_points(points, "points")
    rx, ry = (float(v) for v in reference)
    if not (np.isfinite(rx) and np.isfinite(ry)):
        raise ValueError(f"reference must be finite, got ({rx}, {ry})")
    p = p[_finite_rows(p)]
    p = p[(p[:, 0] < rx) & (p[:, 1] < ry)]
    if len(p) == 0:
        return 0.0
    front = p[non_dominated(p)]
    front = front[np.argsort(front[:, 0])]  # x ascending, hence y descending on a front
    # Each front point owns the slab from its own x to the next point's x (the last one to
    # the reference), of height from its y up to the reference.
    next_x = np.append(front[1:, 0], rx)
    return float(np.sum((next_x - front[:, 0]) * (ry - front[:, 1])))


def reference_point(*point_sets, margin: float = 0.1) -> tuple[float, float]:
    """A common hypervolume reference for comparing fronts: per coordinate, the max over
    the finite points of all ``point_sets`` (each [N_i, 2]) times ``(1 + margin)``.

    The margin keeps the worst point of each coordinate inside the reference, so extreme
    points still add area. Fronts must be compared in the same reference, and the caller
    must report it: hypervolumes in different references are not comparable. Metrics must
    be positive (scaling a non-positive max would not move it outward).
    """
    rows = [p[_finite_rows(p)] for p in (_as_points(s, "point set") for s in point_sets)]
    finite = np.concatenate(rows) if rows else np.zeros((0, 2))
    if len(finite) == 0:
        raise ValueError("reference_point needs at least one finite point")
    hi = finite.max(axis=0)
    if np.any(hi <= 0):
        raise ValueError(f"reference_point needs positive metrics, got max {tuple(hi)}")
    return float(hi[0] * (1 + margin)), float(hi[1] * (1 + margin))


def missed_by(front, other) -> np.ndarray:
    """[N] bool: for each point of ``front`` [N, 2], True when no point of ``other`` [M, 2]
    weakly dominates it (other <= point in both coordinates, relative tolerance 1e-9).

    Shows the points one sweep (epsilon-constraint) finds that another (weighted sum)
    misses. Non-finite rows of ``front`` are False (there is nothing to show); non-finite
    rows of ``other`` dominate nothing.
    """
    f = _as_points(front, "front")
    o = _as_points(other, "other")
    o = o[_finite_rows(o)]
    ok = _finite_rows(f)
    if len(o) == 0:
        return ok
    slack = f + _REL_TOL * np.abs(f)  # [N, 2]
    covered = (o[None, :, :] <= slack[:, None, :]).all(axis=2).any(axis=1)  # [N, M] -> [N]
    return ok & ~covered


def _sorted_front(points) -> np.ndarray:
    """The front of ``points`` as [K, 2], x ascending (the order a step line needs)."""
    p = _as_points(points, "points")
    f = p[non_dominated(p)]
    return f[np.argsort(f[:, 0])]


def plot_fronts(epsilon_points, weighted_points, names: tuple[str, str], path,
                title: str = "") -> Path:
    """Save a log-log PNG of an epsilon-constraint front against a weighted-sum front.

    ``epsilon_points`` [N, 2] and ``weighted_points`` [M, 2] may hold dominated or failed
    points; only their fronts are drawn. Points of the epsilon front missed by the
    weighted-sum front are circled in red. The legend gives each front's hypervolume in
    one common :func:`reference_point` taken over the two fronts (so dominated outliers do
    not stretch it), and names that reference. ``names`` are the (x, y) axis labels; both
    metrics must be positive (log axes). Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on the machines that run sweeps
    import matplotlib.pyplot as plt

    path = Path(path)
    eps = _sorted_front(epsilon_points)
    ws = _sorted_front(weighted_points)
    ref = reference_point(eps, ws)
    missed = eps[missed_by(eps, ws)]

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if len(eps):
        # where="post": a minimised front attains y_i for all x from x_i up to x_{i+1}.
        ax.step(eps[:, 0], eps[:, 1], where="post", marker="o", ms=5, lw=1.2,
                label=f"epsilon constraint (HV={hypervolume_2d(eps, ref):.4g})")
    if len(ws):
        ax.plot(ws[:, 0], ws[:, 1], ls="none", marker="x", ms=7, mew=1.5,
                label=f"weighted sum (HV={hypervolume_2d(ws, ref):.4g})")
    if len(missed):
        ax.scatter(missed[:, 0], missed[:, 1], s=160, facecolors="none", edgecolors="red",
                   linewidths=1.5, zorder=3, label="missed by weighted sum")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, title=f"HV reference ({ref[0]:.4g}, {ref[1]:.4g})", title_fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
