"""Objectives and constraints on costs: what a search minimises.

``Objective.parse("edp")``, ``"energy"``, ``"0.7*energy+0.3*cycles"`` (a weighted sum of logs,
so units do not matter) or ``"lex:cycles,energy"`` (minimise cycles, then energy); constraints
such as ``"utilization>=0.5"`` or ``"power<=150"`` (mW) make violating mappings infeasible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from accelmap.errors import AccelmapError
from accelmap.model.cost_model import Costs

METRICS = {"energy": "energy", "cycles": "cycles", "latency": "cycles", "edp": "edp", "power": "power",
           "area": "area", "utilization": "utilization"}
_LEX_EPS = 1e-6  # weight of the secondary key: breaks ties of the primary to ~1e-6 relative


def metric(costs: Costs, name: str) -> torch.Tensor:
    return getattr(costs, METRICS[name])


@dataclass(frozen=True)
class Objective:
    terms: tuple[tuple[str, float], ...] = (("edp", 1.0),)
    lexicographic: bool = False
    constraints: tuple[tuple[str, str, float], ...] = ()

    @property
    def name(self) -> str:
        if self.lexicographic:
            return "lex:" + ",".join(m for m, _ in self.terms)
        if len(self.terms) == 1:
            return self.terms[0][0]
        return "+".join(f"{w:g}*{m}" for m, w in self.terms)

    def score(self, costs: Costs) -> torch.Tensor:
        """[B] scores, lower is better; invalid or constraint-violating mappings score +inf."""
        if self.lexicographic:
            s = torch.zeros_like(costs.energy)
            for i, (m, _) in enumerate(self.terms):
                s = s + (_LEX_EPS**i) * torch.log(metric(costs, m))
        else:
            s = sum(w * torch.log(metric(costs, m)) for m, w in self.terms)
        ok = costs.valid.clone()
        for m, op, v in self.constraints:
            x = metric(costs, m)
            ok &= (x >= v) if op == ">=" else (x <= v)
        return torch.where(ok, s, torch.full_like(s, float("inf")))

    @staticmethod
    def parse(spec: str, constraints: tuple[str, ...] | list[str] = ()) -> "Objective":
        spec = spec.strip().lower().replace(" ", "")
        lex = spec.startswith("lex:")
        terms = []
        if lex:
            for m in spec[4:].split(","):
                terms.append((_metric_name(m), 1.0))
        else:
            for part in spec.split("+"):
                w, _, m = part.rpartition("*")
                try:
                    weight = float(w) if w else 1.0
                except ValueError:
                    raise AccelmapError(f"bad objective term '{part}'; expected WEIGHT*METRIC", field="--objective") from None
                terms.append((_metric_name(m), weight))
        cons = []
        for c in constraints:
            mt = re.fullmatch(r"\s*(\w+)\s*(<=|>=)\s*([0-9.eE+-]+)\s*", c)
            if not mt:
                raise AccelmapError(f"bad constraint '{c}'; expected e.g. 'utilization>=0.5' or 'power<=100'",
                                    field="--require")
            cons.append((_metric_name(mt[1]), mt[2], float(mt[3])))
        return Objective(tuple(terms), lex, tuple(cons))


def _metric_name(m: str) -> str:
    if m not in METRICS:
        raise AccelmapError(f"unknown metric '{m}'; expected one of {sorted(METRICS)}", field="--objective")
    return m
