"""Timeloop reference records (``shared/reference/timeloop``): load them and evaluate each one
from its own YAML inputs with the accelmap model, for tests and the accuracy benchmark."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from accelmap.arch.architecture import Architecture
from accelmap.arch.load import read_architecture
from accelmap.mapping.mapping import MappingBatch, parse_mapping
from accelmap.model.cost_model import CostModel, Costs
from accelmap.workload.load import read_problem_yaml
from accelmap.workload.workload import Workload

COUNT_KEYS = {"reads": "Scalar reads (per-instance)", "fills": "Scalar fills (per-instance)",
              "updates": "Scalar updates (per-instance)", "tile": "Utilized capacity"}


@dataclass(frozen=True)
class Checked:
    arch: Architecture
    workload: Workload
    record: dict
    costs: Costs  # batch of one

    @property
    def energy_error(self) -> float:
        return float(self.costs.energy[0]) / self.record["summary"]["energy_pJ"] - 1

    @property
    def cycles_error(self) -> float:
        return float(self.costs.cycles[0]) / self.record["summary"]["cycles_exact"] - 1

    def count_mismatches(self) -> list[tuple]:
        """(level, tensor, count, Timeloop's, ours) for every per-instance count that differs."""
        out = []
        for lv in self.record["stats"]["levels"]:
            if lv["name"] == self.arch.compute.name:
                continue
            li = self.arch.level_index(lv["name"])
            for tname, ds in lv["dataspaces"].items():
                ti = self.workload.tensor_index(tname)
                for attr, key in COUNT_KEYS.items():
                    got = float(getattr(self.costs, attr)[0, li, ti])
                    if abs(got - ds[key]) > 0.5:
                        out.append((lv["name"], tname, attr, ds[key], got))
        return out


def load_arch(ref: Path, name: str) -> Architecture:
    return read_architecture(ref / "inputs/arch" / f"{name}.yaml", ref / "inputs/ert" / f"{name}.ERT.yaml",
                             ref / "inputs/ert" / f"{name}.ART.yaml", name=name)


def check_records(ref: str | Path, arch_name: str, backend: str = "auto", device: str = "cpu") -> list[Checked]:
    """Evaluate every record of one architecture (one batch per layer)."""
    ref = Path(ref)
    arch = load_arch(ref, arch_name)
    by_layer: dict[str, list[dict]] = defaultdict(list)
    for line in open(ref / "records" / f"{arch_name}.jsonl"):
        r = json.loads(line)
        by_layer[r["layer"]["name"]].append(r)
    out = []
    for layer, recs in by_layer.items():
        w = read_problem_yaml(ref / "inputs/problems" / f"{layer}.yaml")
        maps = [parse_mapping(r["mapping_yaml"], arch.level_names) for r in recs]
        costs = CostModel(w, arch, device=device, backend=backend)(MappingBatch.from_mappings(maps, w, arch))
        costs = costs.to("cpu")
        out.extend(Checked(arch, w, r, costs[i : i + 1]) for i, r in enumerate(recs))
    return out
