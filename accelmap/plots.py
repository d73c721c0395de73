"""PNG plots of a mapping run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_energy_by_level(outcomes, path: Path) -> None:
    """Stacked bars: each layer's energy (one occurrence) split by storage level and MACs."""
    ok = [o for o in outcomes if o.found]
    if not ok:
        return
    levels = list(ok[0].energy_by_level)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(ok) + 2), 4.5))
    bottom = [0.0] * len(ok)
    for lv in levels:
        vals = [o.energy_by_level[lv] / 1e6 for o in ok]
        ax.bar(range(len(ok)), vals, bottom=bottom, label=lv)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels([o.name for o in ok], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("energy per occurrence (uJ)")
    ax.set_title("energy by level")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_convergence(outcomes, path: Path) -> None:
    """Best EDP found (relative to the final best) against evaluations, one line per layer."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
