"""accelmap: fast, Timeloop-faithful mapping search and hardware co-design for DNN accelerators.

The public API, imported lazily (``import accelmap`` loads neither torch nor numba)::

    import accelmap
    ev = accelmap.evaluate_files("eyeriss_like")                  # Timeloop's example, evaluated
    net = accelmap.load_network("resnet18")                        # zoo name, ONNX or Timeloop files
    res = accelmap.map_network("resnet18", "eyeriss_like", budget=2000, out="runs/r18")
    accelmap.OPTIMIZERS.names()                                    # registered mapping optimizers

Layout (imports point down this list only): ``runs`` (run directories, reports, Timeloop
files) -> ``codesign`` -> ``search`` -> ``predictor`` / ``tune`` -> ``mapspace`` -> ``model``
-> ``mapping`` -> ``arch`` / ``workload``; ``errors``, ``registry``, ``yamlio``, ``spec`` and
``options`` are shared by all, and ``cli`` sits on top.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "AccelmapError": "accelmap.errors",
    "Registry": "accelmap.registry",
    "Workload": "accelmap.workload.workload",
    "Network": "accelmap.workload.network",
    "Layer": "accelmap.workload.network",
    "load_network": "accelmap.workload.load",
    "network_from_torch": "accelmap.workload.load",
    "read_problem_yaml": "accelmap.workload.load",
    "Architecture": "accelmap.arch.architecture",
    "load_architecture": "accelmap.arch.load",
    "Mapping": "accelmap.mapping.mapping",
    "MappingBatch": "accelmap.mapping.mapping",
    "CostModel": "accelmap.model.cost_model",
    "Costs": "accelmap.model.cost_model",
    "Objective": "accelmap.model.objective",
    "evaluate_files": "accelmap.model.evaluation",
    "evaluate_mapping": "accelmap.model.evaluation",
    "Constraints": "accelmap.mapspace.constraints",
    "load_constraints": "accelmap.mapspace.load",
    "MappingSpace": "accelmap.mapspace.space",
    "optimize": "accelmap.search.loop",
    "OPTIMIZERS": "accelmap.search",
    "map_layers": "accelmap.search.network",
    "map_network": "accelmap.runs.map",
    "plan_map": "accelmap.runs.map",
    "run_map": "accelmap.runs.map",
    "CODESIGNERS": "accelmap.codesign",
    "CoDesignProblem": "accelmap.codesign.problem",
    "Budgets": "accelmap.codesign.problem",
    "codesign": "accelmap.runs.codesign",
    "TUNERS": "accelmap.tune.tuners",
    "MEASURERS": "accelmap.tune.measurer",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'accelmap' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
