"""PNG plots of a mapping run (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402


# The map command's two plots are drawn on plain Figures (no pyplot state) with margins set from
# the label sizes, not by tight_layout: its extra layout pass was a third of their drawing time,
# and they are drawn after every search, on the user's wait.

def _text_inches(texts: list[str], size: float) -> float:
    """The widest of ``texts`` at font ``size`` (points), in inches (the default font)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop, measure = FontProperties(size=size), TextToPath()
    return max((measure.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts), default=0.0) / 72


def energy_by_level_png(outcomes) -> bytes | None:
    """Stacked bars: each layer's energy (one occurrence) split by storage level and MACs; None
    when no layer was mapped."""
    import math

    from matplotlib.figure import Figure

    ok = [o for o in outcomes if o.found]
    if not ok:
        return None
    names = [o.name for o in ok]
    # rotated tick labels hang below the axes by their width times sin(70 degrees)
    below = _text_inches(names, 7) * math.sin(math.radians(70)) + 0.3
    width, height = max(6, 0.45 * len(ok) + 2), 3.6 + below
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.2 / width, bottom=below / height, top=1 - 0.4 / height)
    ax = fig.add_subplot()
    bottom = [0.0] * len(ok)
    for lv in ok[0].energy_by_level:
        vals = [o.energy_by_level[lv] / 1e6 for o in ok]
        ax.bar(range(len(ok)), vals, bottom=bottom, label=lv)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("energy per occurrence (uJ)")
    ax.set_title("energy by level")
    ax.legend(fontsize=7)
    return figure_png(fig, dpi=110, tight=False)


def convergence_png(outcomes) -> bytes:
    """Best EDP found (relative to the final best) against evaluations, one line per layer."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5))
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)
    ax = fig.add_subplot()
    for o in outcomes:
        if not o.trace or not o.found:
            continue
        ev = [t[0] for t in o.trace]
        edp = [t[2] / o.edp for t in o.trace]
        ax.plot(ev, edp, lw=1, label=o.name if len(outcomes) <= 12 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best EDP / final best EDP")
    ax.set_title("search convergence")
    if len(outcomes) <= 12:
        ax.legend(fontsize=6)
    return figure_png(fig, dpi=110, tight=False)


# ---- figures for accelmap report (returned as PNG bytes, embedded in the HTML page) ---------

def figure_png(fig, dpi: int = 100, tight: bool = True) -> bytes:
    """The figure as PNG bytes, cropped to its contents with ``tight``; closes it (a pyplot
    figure; a plain Figure needs no closing)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight", "pad_inches": 0.12} if tight else {}))
    plt.close(fig)
    return buf.getvalue()


def _layer_rows(n: int) -> float:
    """Figure height (inches) for n horizontal bars with readable labels."""
    return max(2.6, 0.32 * n + 1.3)


COMPUTE_COLOR = "#9a9a9a"  # the MAC units' share, the same grey in every breakdown


def _stacked_barh(ax, labels: list[str], parts: dict[str, list[float]], xlabel: str, title: str,
                  invert: bool = True, palette: str = "tab10", compute: str | None = None) -> None:
    """Horizontal bars, one per label (first label on top), stacked from ``parts``: name -> [n].
    ``invert``: flip the y axis (once per shared axis: flipping a shared axis twice undoes it).
    The part named ``compute`` is drawn in :data:`COMPUTE_COLOR`."""
    y = list(range(len(labels)))
    left = [0.0] * len(labels)
    colors = plt.get_cmap(palette).colors
    i = 0
    for name, vals in parts.items():
        color = COMPUTE_COLOR if name == compute else colors[i % len(colors)]
        i += name != compute
        ax.barh(y, vals, left=left, label=name, color=color, height=0.72)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9)
    if invert:
        ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    _legend_below(ax, ncol=min(4, len(parts)))


def _legend_below(ax, ncol: int) -> None:
    """A legend under the axes' x label, so it never covers bars."""
    from matplotlib.transforms import ScaledTranslation

    ax.legend(fontsize=8.5, loc="upper center", ncol=max(1, ncol), frameon=False, bbox_to_anchor=(0.5, 0),
              bbox_transform=ax.transAxes + ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans))


def energy_breakdown_png(labels: list[str], by_level: dict[str, list[float]],
                         by_tensor: dict[str, list[float]], compute: str | None = None) -> bytes:
    """Two panels of horizontal stacked bars, per layer: energy (uJ, one occurrence) split by
    component (storage levels and the MAC units, named ``compute``) and by tensor (the MAC
    energy as its own part, grey in both)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, _layer_rows(len(labels))), sharey=True)
    _stacked_barh(a, labels, {k: [v / 1e6 for v in vs] for k, vs in by_level.items()},
                  "energy per occurrence (uJ)", "by level", compute=compute)
    if by_tensor:
        _stacked_barh(b, labels, {k: [v / 1e6 for v in vs] for k, vs in by_tensor.items()},
                      "energy per occurrence (uJ)", "by tensor", invert=False, palette="Set2", compute=compute)
    else:
        b.axis("off")
    fig.tight_layout()
    return figure_png(fig)


def cycles_utilization_png(labels: list[str], cycles: list[float], bound: list[float],
                           utilization: list[float]) -> bytes:
    """Left: cycles per layer (log axis) with the compute bound (MACs / MAC units) as a tick.
    Right: utilization of the MAC units (0..1)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, _layer_rows(len(labels))), sharey=True,
                               gridspec_kw={"width_ratios": [1.6, 1]})
    y = list(range(len(labels)))
    a.barh(y, cycles, color="#4c72b0", height=0.72, label="cycles")
    a.scatter(bound, y, marker="|", s=260, linewidths=2.5, color="#c44e52", zorder=3,
              label="compute bound (MACs / MAC units)")
    a.set_xscale("log")
    a.set_yticks(y)
    a.set_yticklabels(labels, fontsize=9)
    a.invert_yaxis()
    a.set_xlabel("cycles per occurrence (log)")
    a.set_title("cycles vs the compute bound", fontsize=11)
    a.grid(axis="x", alpha=0.3)
    _legend_below(a, ncol=2)
    b.barh(y, utilization, color="#55a868", height=0.72)
    for yi, u in zip(y, utilization):
        b.text(min(u, 1.0) + 0.01, yi, f"{u:.2f}", va="center", fontsize=8)
    b.set_xlim(0, 1.12)
    b.set_xlabel("utilization of the MAC units")
    b.set_title("utilization", fontsize=11)
    b.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def _short(v: float, _pos=None) -> str:
    """Tick label: 20000 -> 20k, 1500000 -> 1.5M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def small_multiples_png(panels: dict[str, dict[str, tuple[list[float], list[float]]]], xlabel: str,
                        ylabel: str, logx: bool = False, logy: bool = False, step: bool = True,
                        cols: int = 4) -> bytes:
    """One small panel per key of ``panels`` (a layer), one line per series in it
    (series name -> (x, y)); a shared legend of series names when there are several."""
    import math

    n = max(1, len(panels))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 0.6, 2.3 * rows + 0.7), squeeze=False,
                             layout="constrained")
    colors = plt.get_cmap("tab10").colors
    series_names = sorted({s for p in panels.values() for s in p})
    color_of = {s: colors[i % len(colors)] for i, s in enumerate(series_names)}
    for ax, (title, series) in zip(axes.flat, panels.items()):
        for s, (x, yv) in series.items():
            marker = "o" if len(x) <= 3 else None
            if step:
                ax.step(x, yv, where="post", color=color_of[s], lw=1.4, marker=marker, ms=4, label=s)
            else:
                ax.plot(x, yv, color=color_of[s], lw=1.4, marker=marker, ms=4, label=s)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7.5)
        if logx:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(FuncFormatter(_short))
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(_short))
            ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.6g}"))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.supxlabel(xlabel, fontsize=10)
    fig.supylabel(ylabel, fontsize=10)
    if len(series_names) > 1:
        handles = [plt.Line2D([], [], color=color_of[s], lw=2) for s in series_names]
        fig.legend(handles, series_names, loc="outside upper center", ncol=min(6, len(series_names)), fontsize=9,
                   frameon=False)
    return figure_png(fig)


def score_trace_png(seconds: list[float], scores: list[float], feasible: list[bool], title: str,
                    end: float | None = None) -> bytes:
    """Best score against wall time: a step line through the feasible improvements (held to
    ``end``, the run's length), infeasible ones as hollow markers; the time axis starts at 0."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    fx = [(t, s) for t, s, f in zip(seconds, scores, feasible) if f]
    ix = [(t, s) for t, s, f in zip(seconds, scores, feasible) if not f]
    if fx:
        xs, ys = [t for t, _ in fx], [s for _, s in fx]
        if end is not None and end > xs[-1]:
            ax.plot([xs[-1], end], [ys[-1], ys[-1]], color="C0", lw=1.5, ls=":")
        ax.step(xs, ys, where="post", marker="o", ms=5, color="C0", label="feasible")
    if ix:
        ax.scatter([t for t, _ in ix], [s for _, s in ix], facecolors="none", edgecolors="#c44e52",
                   label="over budget")
    ax.set_xlim(left=0)
    if end:
        ax.set_xlim(right=end * 1.03)
    ax.set_xlabel("seconds")
    ax.set_ylabel("best score (log objective)")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    if fx or ix:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def invalid_share_png(shares: dict[str, list[float]], batch: int) -> bytes:
    """Share of invalid measurements per batch of ``batch``, one line per tuner."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for name, vals in sorted(shares.items()):
        ax.plot(range(1, len(vals) + 1), vals, marker="o", ms=4, lw=1.4, label=name)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"batch of {batch} measurements")
    ax.set_ylabel("invalid share")
    ax.set_title("invalid measurements per batch (all layers)", fontsize=11)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    _legend_below(ax, ncol=min(4, len(shares)))
    fig.tight_layout()
    return figure_png(fig)
