"""Timeloop v0.4 designs as accelmap objects: architectures, problems, mappings, constraints.

v0.4 architectures list ``nodes`` from the outside in. A ``!Container`` passes its attributes
to every node after it and may spread them over a mesh (``spatial: {meshX, meshY}``); Timeloop
models such a fanout point as a storage level that keeps nothing, named
``inter_<container>_spatial``, and its mappings and reports name it so. accelmap does the same:
the level has capacity 0 (it can hold no tile), zero energy and area, class ``dummy_storage``,
and every tensor bypasses it. ``!Parallel`` branches become consecutive levels in the order
written (as Timeloop orders them); ``!Nothing`` only tells Timeloop which data spaces pass a
parallel group and is skipped. Constraints written inside nodes become accelmap constraints on
that level (on the fanout level for a container).

Attribute values may be expressions over ``variables:`` and the node's other (and inherited)
attributes, e.g. ``depth: 2 ** 14`` or ``width: datawidth * 8``; they are evaluated with a small
arithmetic evaluator, never ``eval``.

What accelmap does not model is refused with one line naming the key: sparse optimizations,
``densities`` below 1, compute-in-memory components.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from accelmap.arch.architecture import read_art, read_ert
from accelmap.arch.timeloop_v4 import DUMMY_CLASS, _design_name, architecture_from_v4, dummy_level_name, is_dummy
from accelmap.errors import AccelmapError
from accelmap.mapping.loop_nest import looks_like_map_txt, read_map_txt
from accelmap.mapping.mapping import Mapping
from accelmap.mapping.timeloop_v4 import complete_mapping, mapping_from_v4
from accelmap.mapspace.constraints import Constraints, LevelConstraint
from accelmap.mapspace.timeloop_v4 import (
    V4Architecture,
    check_constraint_levels,
    constraints_from_v4_targets,
    from_nodes,
    read_v4_architecture,
)
from accelmap.model.evaluation import Evaluation, evaluate_mapping
from accelmap.spec import evaluate_expression, load_spec_files, looks_like_v4
from accelmap.workload.load import read_problem_yaml
from accelmap.workload.timeloop_v4 import problem_from_v4, read_v4_problem
from accelmap.workload.workload import Workload

# ---- expressions ---------------------------------------------------------------------------


# ---- architecture -------------------------------------------------------------------------


# ---- problems -----------------------------------------------------------------------------


# ---- mappings and constraints -------------------------------------------------------------


# ---- a whole spec -------------------------------------------------------------------------

@dataclass(frozen=True)
class V4Spec:
    """What a set of v0.4 files describes; each part is None where the files do not give it."""

    arch: V4Architecture | None
    workload: Workload | None
    mapping: Mapping | None
    constraints: Constraints
    mapper: dict | None
    files: tuple[str, ...]

    def constraints_for(self, tensor_names) -> Constraints:
        base = self.arch.constraints_for(tensor_names) if self.arch else Constraints()
        return Constraints(base.levels + self.constraints.levels, base.source)


_TOP_KEYS = {"architecture", "problem", "mapping", "mapper", "variables", "constraints", "mapspace",
             "extra_mapping_constraints", "globals", "components", "compound_components", "sparse_optimizations",
             "mapspace_constraints", "architecture_constraints"}


def read_spec(files: list[str], variables: dict | None = None, ert: str | None = None, art: str | None = None,
              warn: Callable[[str], None] | None = None) -> V4Spec:
    """Read ``files`` (jinja2 templates or plain YAML, v0.4 or v0.3 parts) as one spec."""
    warn = warn or (lambda m: None)
    doc, origin = load_spec_files(files, variables)
    for k in doc:
        if k not in _TOP_KEYS and "ignore" not in k:
            warn(f"{origin[k]}: unknown top-level key '{k}' ignored")
    if "sparse_optimizations" in doc:
        raise AccelmapError("sparse optimizations are not modelled; accelmap evaluates dense mappings only",
                            file=origin["sparse_optimizations"], field="sparse_optimizations")
    if ("components" in doc or "compound_components" in doc) and ert is None:
        key = "components" if "components" in doc else "compound_components"
        warn(f"{origin[key]}: '{key}' (Accelergy compound components) are not evaluated; without --ert/--art "
             f"energies and areas come from accelmap's built-in tables")
    v4a = None
    if "architecture" in doc:
        src = origin["architecture"]
        a = doc["architecture"]
        if isinstance(a, dict) and "subtree" in a:  # a v0.3 architecture inside a spec
            from accelmap.arch.architecture import architecture_from_dict

            v3 = architecture_from_dict({"architecture": a}, src, Path(src).stem, read_ert(ert), read_art(art))
            v4a = V4Architecture(v3, Constraints(), ())
        else:
            # a top template names its design through a variable (architecture=eyeriss_like)
            given = (variables or {}).get("architecture")
            name = Path(str(given)).name if given else _design_name(src)
            v4a = from_nodes(architecture_from_v4(doc, src, name, read_ert(ert), read_art(art), None, warn))
    w = None
    if "problem" in doc:
        src = origin["problem"]
        w = problem_from_v4(doc, src, Path(src).name.split(".")[0], warn)
    containers = dict(v4a.containers) if v4a else {}
    extra: list[LevelConstraint] = []
    for key in ("constraints", "extra_mapping_constraints", "architecture_constraints", "mapspace_constraints"):
        if key in doc and doc[key]:
            if v4a is None:
                raise AccelmapError("constraints need an architecture in the spec", file=origin[key], field=key)
            extra += constraints_from_v4_targets(doc[key], origin[key], f"{key}.targets", v4a.arch, containers, warn)
    m = None
    if "mapping" in doc:
        if v4a is None:
            raise AccelmapError("a mapping needs an architecture in the spec", file=origin["mapping"], field="mapping")
        m = mapping_from_v4(doc, origin["mapping"], v4a.arch, containers)
    cons = Constraints(tuple(extra), files[0])
    if v4a is not None:
        check_constraint_levels(v4a.constraints, v4a.arch)
    mapper = doc.get("mapper") if isinstance(doc.get("mapper"), dict) else None
    return V4Spec(v4a, w, m, cons, mapper, tuple(files))


def mapper_settings(mapper: dict | None) -> dict:
    """accelmap map options from v0.4 mapper settings: the objective (edp, energy, delay/cycles)
    and a budget from ``search_size`` / ``victory_condition`` where given."""
    if not mapper:
        return {}
    out: dict[str, Any] = {}
    metrics = mapper.get("optimization_metrics") or mapper.get("optimization-metrics")
    if metrics:
        first = [str(x) for x in (metrics if isinstance(metrics, list) else [metrics])]
        table = {"edp": "edp", "energy": "energy", "delay": "cycles", "cycles": "cycles",
                 "last_level_accesses": "energy"}
        if first[0] in table:
            out["objective"] = table[first[0]] if len(first) == 1 else "lex:" + ",".join(
                table.get(x, x) for x in first)
    return out


__all__ = ["V4Architecture", "V4Spec", "architecture_from_v4", "read_v4_architecture", "problem_from_v4",
           "read_v4_problem", "mapping_from_v4", "complete_mapping", "read_spec", "looks_like_v4",
           "evaluate_expression", "dummy_level_name", "is_dummy", "mapper_settings", "DUMMY_CLASS"]


def spec_map_files(spec: list[str], ert: str | None = None, art: str | None = None,
                   warn: Callable[[str], None] | None = None) -> tuple[str, str, str, str | None]:
    """``accelmap map --spec``: read the spec and write its architecture (v0.4, node constraints
    and the spec's extra constraints included, energies in ERT/ART tables) and its problem as
    plain files in a new folder (``accelmap-spec-*`` in the temporary directory), so the run
    records files it can be re-evaluated from. Returns (arch, ERT, ART, problem or None)."""
    import tempfile

    from accelmap.runs.timeloop import architecture_to_v4, dump_v4_yaml, problem_to_v4
    from accelmap.spec import split_spec_args

    files, variables = split_spec_args(spec)
    s = read_spec(files, variables, ert, art, warn)
    if s.arch is None:
        raise AccelmapError("the spec has no 'architecture'", file=files[0], field="architecture")
    names = dict.fromkeys(t for c in s.arch.constraints.levels + s.constraints.levels for t in c.keep + c.bypass)
    if s.workload is not None:
        names.update(dict.fromkeys(t.name for t in s.workload.tensors))
    cons = Constraints(s.arch.constraints.levels + s.constraints.levels, s.arch.constraints.source)
    d = Path(tempfile.mkdtemp(prefix="accelmap-spec-"))
    doc, ert_doc, art_doc = architecture_to_v4(s.arch.arch, cons)
    arch_path = d / f"{s.arch.arch.name}.yaml"
    arch_path.write_text(dump_v4_yaml(doc))
    (d / "arch.ERT.yaml").write_text(dump_v4_yaml(ert_doc))
    (d / "arch.ART.yaml").write_text(dump_v4_yaml(art_doc))
    problem = None
    if s.workload is not None:
        problem = str(d / f"{s.workload.name}.yaml")
        Path(problem).write_text(dump_v4_yaml(problem_to_v4(s.workload)))
    return str(arch_path), str(d / "arch.ERT.yaml"), str(d / "arch.ART.yaml"), problem


def evaluate_spec(spec: list[str], problem: str | None = None, mapping: str | None = None, ert: str | None = None,
                  art: str | None = None, device: str = "cpu", warn=None) -> Evaluation:
    """Evaluate what Timeloop v0.4 files describe (``--spec FILE... [NAME=VALUE...]``): their
    architecture, problem and mapping; ``problem``/``mapping`` files replace the spec's own."""
    from accelmap.errors import AccelmapError
    from accelmap.mapping.timeloop_v4 import complete_mapping, read_v4_mapping
    from accelmap.runs.spec import read_spec
    from accelmap.spec import split_spec_args

    files, variables = split_spec_args(spec)
    s = read_spec(files, variables, ert, art, warn)
    if s.arch is None:
        raise AccelmapError("the spec has no 'architecture'", file=files[0], field="architecture")
    a = s.arch.arch
    w = read_problem_yaml(problem) if problem else s.workload
    if w is None:
        raise AccelmapError("the spec has no 'problem'; give one in the spec or with --problem", file=files[0],
                            field="problem")
    src = mapping or files[0]
    if mapping:
        mp = read_map_txt(Path(mapping), a, w) if looks_like_map_txt(Path(mapping)) else read_v4_mapping(mapping, a, w)
    elif s.mapping is not None:
        mp = complete_mapping(s.mapping, w, a)
    else:
        raise AccelmapError("the spec has no 'mapping'; give one in the spec or with --mapping (e.g. the "
                            "mapper's timeloop-mapper.map.yaml)", file=files[0], field="mapping")
    cons = s.constraints_for([t.name for t in w.tensors])
    cons.check(w, a)
    return evaluate_mapping(w, a, mp, device, str(src))
