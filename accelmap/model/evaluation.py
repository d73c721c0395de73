"""Evaluate one mapping from files: the Python API behind ``accelmap evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from accelmap.arch.architecture import Architecture
from accelmap.arch.load import load_architecture
from accelmap.mapping.loop_nest import looks_like_map_txt, read_map_txt
from accelmap.mapping.mapping import Mapping, MappingBatch, read_mapping
from accelmap.model.cost_model import CostModel, Costs
from accelmap.model.status import REASONS
from accelmap.workload.load import read_problem_yaml
from accelmap.workload.workload import Workload


def example_path(name: str) -> Path:
    return Path(str(resources.files("accelmap") / "data" / "examples" / name))


DEFAULT_PROBLEM = "resnet18_conv1.yaml"
DEFAULT_MAPPING = "resnet18_conv1.eyeriss_like.mapping.yaml"


@dataclass(frozen=True)
class Evaluation:
    """One mapping's costs with the names needed to print them."""

    workload: Workload
    arch: Architecture
    mapping: Mapping
    costs: Costs  # batch of one

    def to_dict(self) -> dict:
        c = self.costs
        names = list(self.arch.level_names)
        e_lvl = c.energy_by_level[0].tolist()
        by_comp = {n: e for n, e in zip(names, e_lvl[:-1])}
        by_comp[self.arch.compute.name] = e_lvl[-1]
        keep = MappingBatch.from_mappings([self.mapping], self.workload, self.arch).keep[0]
        levels = []
        for li, name in enumerate(names):
            tensors = {}
            for ti, t in enumerate(self.workload.tensors):
                if not keep[li, ti]:
                    continue
                tensors[t.name] = {
                    "tile": int(c.tile[0, li, ti]),
                    "reads": float(c.reads[0, li, ti]),
                    "fills": float(c.fills[0, li, ti]),
                    "updates": float(c.updates[0, li, ti]),
                    "energy_pJ": float(c.energy_by_level_tensor[0, li, ti]),
                }
            levels.append({"name": name, "instances": int(c.instances[0, li]), "cycles": float(c.level_cycles[0, li]),
                           "tensors": tensors})
        return {
            "layer": self.workload.name,
            "arch": self.arch.name,
            "valid": bool(c.valid[0]),
            "reason": REASONS[int(c.reason[0])],
            "energy_pJ": float(c.energy[0]),
            "cycles": float(c.cycles[0]),
            "utilization": float(c.utilization[0]),
            "edp": float(c.edp[0]),
            "edp_J_cycle": float(c.edp[0]) * 1e-12,
            "power_mW": float(c.power[0]),
            "area_um2": float(c.area[0]),
            "macs": self.workload.macs,
            "pJ_per_mac": float(c.energy[0]) / self.workload.macs,
            "energy_pJ_by_component": by_comp,
            "levels": levels,
        }


def evaluate_mapping(workload: Workload, arch: Architecture, mapping: Mapping, device: str = "cpu",
                     source: str = "<mapping>") -> Evaluation:
    mapping.check(workload, arch, source)
    # one mapping: the tensor model, which needs no compiled kernel (numba is not even imported)
    model = CostModel(workload, arch, torch.float64, device, backend="torch")
    costs = model(MappingBatch.from_mappings([mapping], workload, arch))
    return Evaluation(workload, arch, mapping, costs)


def evaluate_files(arch: str = "eyeriss_like", problem: str | None = None, mapping: str | None = None,
                   ert: str | None = None, art: str | None = None, device: str = "cpu") -> Evaluation:
    """Read an architecture (preset name or YAML), a problem YAML and a mapping (Timeloop mapping
    YAML, or the loop nest Timeloop's mapper prints to ``timeloop-mapper.map.txt``); evaluate.

    With no problem and mapping, evaluates the built-in default: resnet18's first layer with
    Timeloop's best mapping on eyeriss_like.
    """
    a = load_architecture(arch, ert, art)
    p = Path(problem) if problem else example_path(DEFAULT_PROBLEM)
    m = Path(mapping) if mapping else example_path(DEFAULT_MAPPING)
    w = read_problem_yaml(p)
    if looks_like_map_txt(m):  # Timeloop's printed loop nest (timeloop-mapper.map.txt)
        mp = read_map_txt(m, a, w)
    else:
        from accelmap.mapping.timeloop_v4 import is_v4_mapping, read_v4_mapping

        mp = read_v4_mapping(m, a, w) if is_v4_mapping(m, a) else read_mapping(m, a.level_names)
    return evaluate_mapping(w, a, mp, device, str(m))


