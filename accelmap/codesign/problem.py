"""Network-level co-design: one shared hardware from a :class:`HardwareSpace` and a mapping per
unique layer, judged by network totals (weighted by layer counts) under area, power and
latency budgets.

:class:`CoDesignProblem` owns everything the algorithms share: per-layer mapping spaces and cost
models, rounding of hardware values, exact network totals, and the scores that compare
designs. Co-design algorithms are registered by name (``CODESIGNERS``); each turns a problem,
a wall-time budget and a seed into a :class:`CoDesignResult` with a trace of its best design
over time, so different algorithms can be compared at equal wall time.

Network totals: latency = sum of count x cycles (layers run one after another), energy = sum of
count x energy, power = energy / latency x clock (mW), area = the hardware's area (mm^2).

Every run evaluates the base architecture first, so even a run cut short by its deadline returns
a design, and a design on which some layer has no legal mapping ranks below every design that
maps all layers (it is never a result: its totals would leave those layers out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from accelmap.arch.architecture import Architecture
from accelmap.arch.hardware import Hardware
from accelmap.arch.space import HardwareSpace
from accelmap.errors import AccelmapError
from accelmap.mapspace.constraints import Constraints
from accelmap.mapspace.sampling import prime_factors
from accelmap.mapspace.space import MappingSpace
from accelmap.model.cost_model import CostModel, Costs
from accelmap.model.objective import Objective
from accelmap.workload.network import Layer

TOTALS_KEY = {"area": "area_mm2", "power": "power_mW", "latency": "latency_cycles", "energy": "energy_pJ"}
PENALTY = 100.0  # weight of log budget violations against the log objective (violations dominate)
INVALID = 10.0  # penalty per layer without a legal mapping on the hardware


@dataclass(frozen=True)
class Budgets:
    """Upper bounds on the design; None = unconstrained."""

    area_mm2: float | None = None
    power_mw: float | None = None
    latency_cycles: float | None = None
    energy_pj: float | None = None

    def items(self) -> list[tuple[str, float]]:
        return [(k, v) for k, v in (("area", self.area_mm2), ("power", self.power_mw),
                                    ("latency", self.latency_cycles), ("energy", self.energy_pj)) if v is not None]


@dataclass(frozen=True)
class Totals:
    """Network totals of N designs, each field [N]."""

    energy: torch.Tensor  # pJ
    cycles: torch.Tensor
    area: torch.Tensor  # mm^2
    power: torch.Tensor  # mW
    invalid: torch.Tensor  # layers without a legal mapping

    @property
    def edp(self) -> torch.Tensor:
        return self.energy * self.cycles

    def metric(self, name: str) -> torch.Tensor:
        return {"energy": self.energy, "cycles": self.cycles, "latency": self.cycles, "edp": self.edp,
                "power": self.power, "area": self.area}[name]


@dataclass
class Design:
    """One rounded hardware point with a mapping per layer and its exact totals.

    ``totals`` sum the layers with a legal mapping only (``unmapped_layers`` counts the others);
    ``pools`` keeps a few good genomes per layer so neighbouring hardware can start from them.
    """

    values: torch.Tensor  # [P] rounded parameter values
    genomes: list[torch.Tensor]  # per layer [G], the chosen mapping
    energy: list[float]  # per layer, one occurrence
    cycles: list[float]
    totals: dict
    score: float  # penalized (lower is better)
    violation: float  # 0 when every budget holds and every layer is mapped
    pools: list[torch.Tensor] = field(default_factory=list, repr=False)
    valid: list[bool] = field(default_factory=list)  # per layer: its mapping is legal on this hardware

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0

    @property
    def unmapped(self) -> int:
        """Layers without a legal mapping on this hardware."""
        return int(self.totals["unmapped_layers"])

    @property
    def rank(self) -> tuple[int, float, float]:
        """Sort key, lower is better: every layer mapped first (whatever the budgets' overshoot),
        then the budgets' violation, then the score."""
        return (self.unmapped, self.violation, self.score)


@dataclass(frozen=True)
class CoDesignResult:
    method: str
    best: Design | None
    seconds: float
    designs_evaluated: int
    # (seconds, score, feasible) whenever the best improved
    trace: tuple[tuple[float, float, bool], ...] = ()
    interrupted: bool = False  # Ctrl-C: the best design so far is the result


class CoDesignProblem:
    """Layers x hardware space x dataflow constraints x objective x budgets."""

    def __init__(self, layers: list[Layer] | tuple[Layer, ...], hw_space: HardwareSpace, constraints: Constraints,
                 objective: str = "latency", budgets: Budgets = Budgets()):
        self.layers = list(layers)
        self.hw_space = hw_space
        self.constraints = constraints
        self.objective = Objective.parse(objective)
        if self.objective.lexicographic:
            raise AccelmapError("co-design objectives are weighted sums of logs (e.g. 'latency', "
                                "'0.5*latency+0.5*power'), not lexicographic", field="--objective")
        for m, _ in self.objective.terms:
            if m == "utilization":
                raise AccelmapError("utilization is not a co-design objective; use latency, energy, edp, power "
                                    "or area", field="--objective")
        self.budgets = budgets
        for name, v in budgets.items():
            if not v > 0:
                raise AccelmapError(f"the {name} budget must be positive, got {v}", field=f"--{name}-budget")
        self.counts = torch.tensor([layer.count for layer in self.layers], dtype=torch.float64)
        params = hw_space.parameters
        self.low = torch.tensor([p.low for p in params], dtype=torch.float64)
        self.high = torch.tensor([p.high for p in params], dtype=torch.float64)
        self.integer = torch.tensor([p.integer for p in params])
        self._set_pe_grids(params, hw_space.base_values())
        # Genomes live in the space of the widest PE array, so one genome layout serves every
        # hardware point; fanout and capacity legality is judged on each point's own numbers.
        widest = self.round(torch.where(self._is_pe(), self.high, hw_space.base_values()))
        self.widest = hw_space.architecture(widest, name=f"{hw_space.base.name}_widest")
        for layer in self.layers:
            constraints.check(layer.workload, hw_space.base)
        self.spaces = [MappingSpace(layer.workload, self.widest, constraints) for layer in self.layers]
        self.models = [CostModel(layer.workload, hw_space.base) for layer in self.layers]
        self.torch_models = [CostModel(layer.workload, hw_space.base, backend="torch") for layer in self.layers]
        self.clock = float(hw_space.base.clock_ghz)

    def _set_pe_grids(self, params, base: torch.Tensor) -> None:
        # PE-array sides worth trying: sizes whose prime factors all divide some layer bound
        # (other sizes leave PEs idle on every layer), and the base architecture's own
        primes = sorted({q for layer in self.layers for b in layer.workload.bounds for q in prime_factors(b)})
        self.pe_grids: dict[int, torch.Tensor] = {}
        for i, prm in enumerate(params):
            if prm.name in ("pe_x", "pe_y"):
                grid = [n for n in range(math.ceil(prm.low), math.floor(prm.high) + 1)
                        if _smooth(n, primes) or n == int(base[i])]
                self.pe_grids[i] = torch.tensor(grid, dtype=torch.float64)

    # ---- hardware values -----------------------------------------------------------------------
    def _is_pe(self) -> torch.Tensor:
        return torch.tensor([p.name in ("pe_x", "pe_y") for p in self.hw_space.parameters])

    def round(self, values: torch.Tensor) -> torch.Tensor:
        """[..., P] values clamped into their ranges, integers where the parameter is integral."""
        v = torch.minimum(torch.maximum(values.double(), self.low), self.high)
        r = torch.where(self.integer, torch.round(v), v)
        # rounding may leave the range when a bound is fractional
        r = torch.where(self.integer & (r < self.low), torch.ceil(v),
                        torch.where(self.integer & (r > self.high), torch.floor(v), r))
        for i, grid in getattr(self, "pe_grids", {}).items():  # PE sides: the nearest useful size
            if len(grid):
                near = (torch.log(v[..., i, None]) - torch.log(grid)).abs().argmin(-1)
                r[..., i] = grid[near]
        return r

    def base_values(self) -> torch.Tensor:
        return self.round(self.hw_space.base_values())

    def sample_values(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """[n, P] hardware points log-uniform in the ranges, rounded."""
        u = torch.rand(n, len(self.low), generator=gen, dtype=torch.float64)
        return self.round(torch.exp(torch.log(self.low) + u * (torch.log(self.high) - torch.log(self.low))))

    def hardware(self, values: torch.Tensor) -> Hardware:
        return self.hw_space.hardware(values.double())

    def architecture(self, values: torch.Tensor, name: str | None = None) -> Architecture:
        return self.hw_space.architecture(values, name=name)

    # ---- scores --------------------------------------------------------------------------------
    def log_objective(self, energy, cycles, area) -> torch.Tensor:
        """The objective as a weighted sum of logs (differentiable)."""
        le, lc, la = torch.log(energy), torch.log(cycles), torch.log(area)
        parts = {"energy": le, "cycles": lc, "latency": lc, "edp": le + lc, "power": le - lc, "area": la}
        return sum(w * parts[m] for m, w in self.objective.terms)

    def violation(self, energy, cycles, area) -> torch.Tensor:
        """Sum of log budget overshoots (0 when every budget holds), differentiable."""
        v = torch.zeros_like(torch.as_tensor(cycles, dtype=torch.float64))
        power = energy / cycles * self.clock
        for name, bound in self.budgets.items():
            x = {"area": area, "power": power, "latency": cycles, "energy": energy}[name]
            v = v + torch.relu(torch.log(x / bound))
        return v

    def layer_weights(self, energy_total: float, cycles_total: float) -> tuple[float, float]:
        """Per-layer scalarization at fixed hardware: minimize wE*E + wC*C per layer.

        The network objective linearized at the current totals (d log E_tot = dE / E_tot) gives
        the weights; a negative weight (power = E/C rewards slow mappings) is floored, and a
        power or latency budget adds weight to the quantity it bounds.
        """
        a = sum(w * {"energy": 1, "edp": 1, "power": 1}.get(m, 0) for m, w in self.objective.terms)
        b = sum(w * {"cycles": 1, "latency": 1, "edp": 1, "power": -1}.get(m, 0) for m, w in self.objective.terms)
        a = max(a, 0.0) + (1.0 if self.budgets.power_mw is not None or self.budgets.energy_pj is not None else 0.0)
        b = max(b, 0.0) + (1.0 if self.budgets.latency_cycles is not None else 0.0)
        if a == 0 and b == 0:  # area alone: any good mapping; balance both
            a = b = 1.0
        return max(a, 0.01) / energy_total, max(b, 0.01) / cycles_total

    def totals(self, values: torch.Tensor, energy: torch.Tensor, cycles: torch.Tensor,
               invalid: torch.Tensor) -> Totals:
        """Totals of N designs: values [N, P]; per-layer energy, cycles, invalid [N, layers]."""
        hw = self.hardware(values)
        area = hw.total_area / 1e6
        e = (energy * self.counts).sum(-1)
        c = (cycles * self.counts).sum(-1)
        return Totals(e, c, area.expand_as(e), e / c * self.clock, invalid.sum(-1).double())

    def scores(self, t: Totals) -> tuple[torch.Tensor, torch.Tensor]:
        """(penalized score, violation) [N]; feasible designs have violation 0."""
        v = self.violation(t.energy, t.cycles, t.area) + INVALID * t.invalid
        return self.log_objective(t.energy, t.cycles, t.area) + PENALTY * v, v

    def unmapped_names(self, d: Design) -> list[str]:
        return [layer.workload.name for layer, ok in zip(self.layers, d.valid) if not ok]

    def describe_violation(self, d: Design) -> str:
        """Which layers have no legal mapping on the design, which budget it misses and by how
        much (for errors and summaries)."""
        parts = []
        if d.unmapped:
            names = self.unmapped_names(d)
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            parts.append(f"{d.unmapped} layer(s) have no legal mapping ({shown})")
        for name, bound in self.budgets.items():
            key = TOTALS_KEY[name]
            x = d.totals[key]
            if x > bound * (1 + 1e-12):
                parts.append(f"{name} {x:.4g} exceeds the budget {bound:.4g} by {100 * (x / bound - 1):.1f}%")
        return "; ".join(parts)

    # ---- exact evaluation of designs ---------------------------------------------------------------
    def evaluate_layer(self, li: int, genomes: torch.Tensor, hw: Hardware) -> Costs:
        """Exact costs of genomes [N, G] of layer li on one hardware point (the kernel)."""
        return self.models[li](self.spaces[li].decode(genomes), hw=hw, detail=False)

    def layer_scores(self, c: Costs, weights: tuple[float, float]) -> torch.Tensor:
        s = weights[0] * c.energy + weights[1] * c.cycles
        return torch.where(c.valid, s, torch.full_like(s, math.inf))

    def polish(self, li: int, pool: torch.Tensor, hw: Hardware, weights: tuple[float, float],
               gen: torch.Generator, steps: int, per: int = 32, patience: int = 3,
               stop: Callable[[], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Parallel local search of one layer's mappings at fixed hardware.

        Every step evaluates ``per`` random neighbours of every incumbent in one batch and keeps,
        per incumbent, its best neighbour if it improves; it ends early when ``stop()`` says so
        (a deadline). Returns (pool [K, G], scores [K]), best first.
        """
        sp = self.spaces[li]
        s = self.layer_scores(self.evaluate_layer(li, pool, hw), weights)
        idle = 0
        for _ in range(steps):
            if stop is not None and stop():
                break
            K = len(pool)
            nb = sp.neighbours(pool.repeat(per, 1), gen)
            ns = self.layer_scores(self.evaluate_layer(li, nb, hw), weights).view(per, K)
            best, arg = ns.min(0)
            better = best < s
            if not better.any():
                idle += 1
                if idle >= patience:
                    break
                continue
            idle = 0
            pick = nb.view(per, K, -1)[arg, torch.arange(K)]
            pool = torch.where(better[:, None], pick, pool)
            s = torch.where(better, best, s)
        order = torch.argsort(s)
        return pool[order], s[order]

    def design(self, values: torch.Tensor, pools: list[torch.Tensor], gen: torch.Generator, steps: int,
               keep: int = 16, weights: tuple[float, float] | None = None,
               stop: Callable[[], bool] | None = None) -> Design:
        """Map every layer on hardware ``values`` starting from ``pools`` (per layer [K, G]),
        polish, and return the design with exact totals. Once ``stop()`` is true the remaining
        polish steps are skipped, but every layer is still evaluated, so the design is whole."""
        values = self.round(values)
        hw = self.hardware(values)
        if weights is None:
            # normalize by the totals of the pools' current best (by a balanced score)
            first = [self.evaluate_layer(li, p, hw) for li, p in enumerate(pools)]
            e0 = sum(float(c.energy[c.valid].min() if c.valid.any() else c.energy.min()) * n
                     for c, n in zip(first, self.counts.tolist()))
            c0 = sum(float(c.cycles[c.valid].min() if c.valid.any() else c.cycles.min()) * n
                     for c, n in zip(first, self.counts.tolist()))
            weights = self.layer_weights(e0, c0)
        genomes, energy, cycles, invalid, new_pools = [], [], [], [], []
        for li, pool in enumerate(pools):
            pool = torch.unique(pool, dim=0)
            pool, s = self.polish(li, pool, hw, weights, gen, steps, stop=stop)
            c = self.evaluate_layer(li, pool[:1], hw)
            genomes.append(pool[0])
            energy.append(float(c.energy[0]))
            cycles.append(float(c.cycles[0]))
            invalid.append(not bool(c.valid[0]))
            new_pools.append(pool[:keep])
        return self.make_design(values, genomes, energy, cycles, invalid, new_pools)

    def make_design(self, values, genomes, energy, cycles, invalid, pools) -> Design:
        """A design from per-layer results (one occurrence each), with totals and scores.

        The score counts every layer (an illegal mapping's costs plus the INVALID penalty keep
        the search's gradient of improvement); the reported totals count mapped layers only."""
        bad = torch.tensor([invalid], dtype=torch.bool)
        e = torch.tensor([energy], dtype=torch.float64)
        c = torch.tensor([cycles], dtype=torch.float64)
        score, viol = self.scores(self.totals(values[None], e, c, bad))
        t = self.totals(values[None], torch.where(bad, 0.0, e), torch.where(bad, 0.0, c), bad)
        totals = {"latency_cycles": float(t.cycles[0]), "energy_pJ": float(t.energy[0]),
                  "power_mW": float(t.power[0]) if float(t.cycles[0]) > 0 else 0.0,
                  "area_mm2": float(t.area[0]), "edp": float(t.edp[0]), "unmapped_layers": int(t.invalid[0])}
        return Design(values, genomes, energy, cycles, totals, float(score[0]), float(viol[0]), pools,
                      [not x for x in invalid])

    def seed_pools(self, k: int, gen: torch.Generator, values: torch.Tensor | None = None,
                   draws: int = 1) -> list[torch.Tensor]:
        """Per layer, the k best of a few thousand random mappings on hardware ``values``
        (default: the base point), legal ones first; up to ``draws`` batches are drawn while a
        layer has no legal one yet."""
        hw = self.hardware(self.base_values() if values is None else self.round(values))
        pools = []
        for li, sp in enumerate(self.spaces):
            for _ in range(draws):
                g = sp.sample(4096, gen)
                c = self.evaluate_layer(li, g, hw)
                if bool(c.valid.any()):
                    break
            s = torch.where(c.valid, torch.log(c.energy) + torch.log(c.cycles), torch.full_like(c.energy, math.inf))
            pools.append(g[torch.argsort(s, stable=True)[:k]])
        return pools

    def base_design(self, gen: torch.Generator, stop: Callable[[], bool] | None = None) -> Design:
        """The base architecture with the best mappings a short search finds on it: every run's
        first design and its fallback (it maps every layer whenever the base can)."""
        return self.design(self.base_values(), self.seed_pools(16, gen, draws=8), gen, 10, stop=stop)

    def warm_up(self) -> None:
        """One evaluation of one layer on the kernel, so that a one-off compile (or cache load)
        happens before a run's clock starts rather than inside its time budget."""
        g = self.spaces[0].sample(1, torch.Generator().manual_seed(0))
        self.evaluate_layer(0, g, self.hardware(self.base_values()))


def _smooth(n: int, primes: list[int]) -> bool:
    for q in primes:
        while n % q == 0:
            n //= q
    return n == 1


