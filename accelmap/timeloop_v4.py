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

import ast
import math
import operator
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from accelmap.architecture import Architecture, ComputeUnit, StorageLevel, cluster_and_block, read_art, read_ert
from accelmap.constraints import Constraints, LevelConstraint
from accelmap.errors import AccelmapError
from accelmap.mapping import LevelMapping, Mapping, mapping_from_timeloop
from accelmap.spec import Node, load_spec_files, load_v4_file, looks_like_v4
from accelmap.workload import Workload, problem_from_dict

DUMMY_CLASS = "dummy_storage"
_COMPUTE = ("intmac", "fpmac", "mac", "compute", "bitwise", "adder", "multiplier")
# Names of compute-in-memory and analog parts (the CiM exercises); accelmap has no model for them.
_CIM = re.compile(r"cim|adc|dac|crossbar|memory_cell|row_driver|column_driver|analog|reram|sram_cell", re.I)
# Instance keys that only describe the input image and its padding (Timeloop ignores them too).
_DESCRIPTIVE = {"H", "W", "Hpad", "Wpad", "Hin", "Win"}


def dummy_level_name(container: str) -> str:
    return f"inter_{container}_spatial"


def is_dummy(level: StorageLevel) -> bool:
    return level.cls == DUMMY_CLASS


# ---- expressions ---------------------------------------------------------------------------

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_FUNCS: dict[str, Callable] = {"ceil": math.ceil, "floor": math.floor, "log2": math.log2, "log": math.log,
                               "sqrt": math.sqrt, "min": min, "max": max, "abs": abs, "round": round,
                               "int": int, "float": float}
_NAME = re.compile(r"[A-Za-z_]\w*")


def evaluate_expression(text: str, names: dict[str, Any], src: str, field: str) -> Any:
    """Arithmetic over numbers, names, + - * / // % **, comparisons, ``a if c else b`` and a
    few math functions. Strings that are not expressions (``"LPDDR4"``, ``"45nm"``) are returned
    unchanged; an expression naming something undefined is an error naming the field."""
    s = text.strip()
    try:
        tree = ast.parse(s, mode="eval")
    except SyntaxError:
        return text
    if isinstance(tree.body, ast.Name) and tree.body.id not in names:
        return text  # a bare word is a string value (type: LPDDR4)

    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float, str, bool)):
            return n.value
        if isinstance(n, ast.Name):
            if n.id in names:
                v = names[n.id]
                return v
            if n.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[n.id]
            raise AccelmapError(f"'{s}' names '{n.id}', which is not a variable or attribute", file=src,
                                field=field)
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
            return _BIN[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd, ast.Not)):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else (+v if isinstance(n.op, ast.UAdd) else not v)
        if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in _CMP:
            return _CMP[type(n.ops[0])](ev(n.left), ev(n.comparators[0]))
        if isinstance(n, ast.IfExp):
            return ev(n.body) if ev(n.test) else ev(n.orelse)
        if isinstance(n, ast.BoolOp):
            vals = [ev(v) for v in n.values]
            return all(vals) if isinstance(n.op, ast.And) else any(vals)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCS and not n.keywords:
            return _FUNCS[n.func.id](*[ev(a) for a in n.args])
        raise AccelmapError(f"unsupported expression '{s}'; expected arithmetic over numbers and variables",
                            file=src, field=field)

    try:
        v = ev(tree.body)
    except AccelmapError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise AccelmapError(f"cannot evaluate '{s}': {exc}", file=src, field=field) from None
    if isinstance(v, float) and v.is_integer() and not isinstance(v, bool):
        return int(v)
    return v


def resolve_values(raw: dict, scope: dict[str, Any], src: str, where: str) -> dict[str, Any]:
    """Evaluate a mapping of values whose expressions may name ``scope`` and each other (in any
    order); returns the mapping with numbers in place of expressions."""
    out: dict[str, Any] = {}
    pending = dict(raw)
    for _ in range(len(pending) + 1):
        progressed = False
        for k in list(pending):
            v = pending[k]
            if not isinstance(v, str):
                out[k] = v
                del pending[k]
                progressed = True
                continue
            deps = set(_NAME.findall(v)) & set(pending) - {k}
            if deps:
                continue
            out[k] = evaluate_expression(v, {**scope, **out}, src, f"{where}.{k}")
            del pending[k]
            progressed = True
        if not pending or not progressed:
            break
    for k, v in pending.items():  # a cycle: evaluate in the order written, naming what is missing
        out[k] = evaluate_expression(v, {**scope, **out}, src, f"{where}.{k}")
    return out


# ---- architecture -------------------------------------------------------------------------

@dataclass(frozen=True)
class V4Architecture:
    """An architecture read from v0.4 and the constraints its nodes carry.

    ``constraints`` name tensors only where the file does; :meth:`constraints_for` adds the
    bypass of every tensor at the fanout levels, which needs the workload's tensor names.
    """

    arch: Architecture
    constraints: Constraints
    containers: tuple[tuple[str, str], ...]  # (container name, its fanout level name)

    def constraints_for(self, tensor_names: list[str] | tuple[str, ...]) -> Constraints:
        extra = tuple(LevelConstraint(lv.name, bypass=tuple(tensor_names), source=f"{lv.name} (fanout point)")
                      for lv in self.arch.levels if is_dummy(lv))
        return Constraints(self.constraints.levels + extra, self.constraints.source)


def _component_of(table_name: str) -> str:
    """``system_top_level.PE[1..16].mac[1..168]`` -> ``mac``."""
    return re.sub(r"\[\d+\.\.\d+\]", "", table_name).split(".")[-1]


def _ert_by_name(ert: dict) -> dict[str, dict[str, float]]:
    """ERT tables keyed by component name: v0.4 names read ``system_top_level.mac[1..168]``."""
    out: dict[str, dict[str, float]] = {}
    for full, acts in ert.items():
        out[_component_of(full)] = acts
    return out


def _as_number(v: Any, src: str, field: str, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise AccelmapError(f"expected a number, got {v!r}", file=src, field=field)
    if positive and v <= 0:
        raise AccelmapError(f"expected a positive number, got {v!r}", file=src, field=field)
    return v


def _as_int(v: Any, src: str, field: str) -> int:
    n = _as_number(v, src, field)
    if int(n) != n:
        raise AccelmapError(f"expected a positive integer, got {v!r}", file=src, field=field)
    return int(n)


def _tech_nm(v: Any) -> float | None:
    try:
        t = float(str(v).lower().replace("nm", ""))
    except ValueError:
        return None
    return t if t > 0 else None


def _check_unmodelled(body: dict, src: str, field: str) -> None:
    if "sparse_optimizations" in body:
        raise AccelmapError("sparse optimizations are not modelled; accelmap evaluates dense mappings only "
                            "(remove the key to evaluate the design dense)", file=src,
                            field=f"{field}.sparse_optimizations")
    cls = " ".join(str(body.get(k, "")) for k in ("class", "subclass"))
    if _CIM.search(cls):
        raise AccelmapError(f"compute-in-memory component class '{cls.strip()}' is not modelled", file=src,
                            field=f"{field}.class")


def _factor_ends(v: Any, src: str, field: str) -> tuple[tuple[str, int, int], ...]:
    """v0.4 factors as (dim, end, residual end): ``[N=1, C=1]``, ``"N=1 C=1"``, ``"C1 M8"`` (the
    mapper's output) or a mapping; ``P=8,5`` / ``P8,5`` give P an end of 8 and a residual end
    of 5 (Timeloop v3's imperfect factors; a comma right before a digit is a residual, any other
    comma separates factors)."""
    if v is None:
        return ()
    if isinstance(v, dict):
        items = [f"{k}={x}" for k, x in v.items()]
    elif isinstance(v, list):
        items = [str(x) for x in v]
    else:
        items = re.sub(r",(?!\d)", " ", str(v)).split()
    out = []
    for it in items:
        m = re.fullmatch(r"\s*([A-Za-z_]\w*?)\s*=?\s*(\d+)(?:,(\d+))?\s*", it)
        if not m:
            raise AccelmapError(f"factor '{it}'; expected DIM=INTEGER or DIM=END,RESIDUAL (bounds such as <= or >= "
                                f"are not supported)", file=src, field=field)
        out.append((m[1], int(m[2]), int(m[3]) if m[3] is not None else int(m[2])))
    return tuple(out)


def _factors(v: Any, src: str, field: str) -> tuple[tuple[str, int], ...]:
    """Constraint factors (as :func:`_factor_ends`, without residual ends)."""
    out = []
    for d, f, r in _factor_ends(v, src, field):
        if r != f:
            # Timeloop's constraint parser reads 'P=8,5' as P=8 and drops the ',5'
            raise AccelmapError(f"factor {d}={f},{r}: a residual end in a constraint; expected DIM=INTEGER "
                                f"(Timeloop's constraints take no residual ends)", file=src, field=field)
        out.append((d, f))
    return tuple(out)


def _permutation(v: Any) -> str | None:
    if v is None:
        return None
    return "".join(str(x) for x in v) if isinstance(v, list) else str(v).replace(" ", "").replace(",", "")


_KNOWN_CONSTRAINT_KEYS = {"dataspace": {"keep", "bypass", "no_coalesce"},
                          "temporal": {"factors", "permutation", "no_reuse", "no_iteration_over_dataspaces"},
                          "spatial": {"factors", "permutation", "split", "no_reuse", "no_iteration_over_dataspaces"}}


def _node_constraints(level: str, cons: Any, src: str, field: str, warn: Callable[[str], None],
                      spatial_only: bool = False) -> list[LevelConstraint]:
    if not cons:
        return []
    if not isinstance(cons, dict):
        raise AccelmapError("expected a mapping with dataspace, temporal or spatial", file=src, field=field)
    out = []
    for kind, body in cons.items():
        where = f"{field}.{kind}"
        if kind not in _KNOWN_CONSTRAINT_KEYS:
            if kind in ("utilization", "max_overbooked_proportion", "min_utilization"):
                continue  # mapper hints; they do not restrict the space
            warn(f"{src}: unknown constraint key '{where}' ignored")
            continue
        if not isinstance(body, dict):
            raise AccelmapError(f"expected a mapping under '{kind}'", file=src, field=where)
        for k in body:
            if k not in _KNOWN_CONSTRAINT_KEYS[kind]:
                warn(f"{src}: constraint key '{where}.{k}' is not modelled and was ignored")
        if kind == "dataspace":
            out.append(LevelConstraint(level, keep=tuple(body.get("keep") or ()),
                                       bypass=tuple(body.get("bypass") or ()), source=where))
        elif kind == "temporal":
            out.append(LevelConstraint(level, temporal=_factors(body.get("factors"), src, f"{where}.factors"),
                                       permutation=_permutation(body.get("permutation")), source=where))
        else:
            split = body.get("split")
            out.append(LevelConstraint(level, spatial=_factors(body.get("factors"), src, f"{where}.factors"),
                                       spatial_permutation=_permutation(body.get("permutation")),
                                       spatial_split=int(split) if split is not None else None, source=where))
    return out


_COMPONENT_KEYS = {"name", "class", "subclass", "attributes", "constraints", "spatial", "required_actions",
                   "enabled", "area_scale", "energy_scale", "sparse_optimizations"}
_CONTAINER_KEYS = {"name", "attributes", "constraints", "spatial", "sparse_optimizations", "networks"}


def architecture_from_v4(doc: dict, src: str, name: str, ert: dict | None = None, art: dict | None = None,
                         variables: dict | None = None, warn: Callable[[str], None] | None = None) -> V4Architecture:
    """``doc`` is the top-level mapping (with ``architecture``, optionally ``variables``)."""
    warn = warn or (lambda m: None)
    arch = doc.get("architecture") if isinstance(doc, dict) else None
    if not isinstance(arch, dict):
        raise AccelmapError("missing required field; expected an 'architecture' mapping", file=src,
                            field="architecture")
    if "nodes" not in arch:
        raise AccelmapError("missing required field; expected a v0.4 'nodes' list", file=src,
                            field="architecture.nodes")
    _check_unmodelled(doc, src, "")
    ert_n = _ert_by_name(ert or {})
    art_n = {_component_of(k): v for k, v in (art or {}).items()}
    scope: dict[str, Any] = {}
    for vs in (doc.get("variables"), arch.get("variables"), variables):
        if isinstance(vs, dict):
            scope.update(resolve_values({k: v for k, v in vs.items() if k != "version"}, scope, src, "variables"))

    levels: list[StorageLevel] = []
    compute: list[ComputeUnit] = []
    cons: list[LevelConstraint] = []
    containers: list[tuple[str, str]] = []
    state = {"inst": 1, "mesh_x": 1, "attrs": {}, "tech": 45.0}

    def spatial_of(body: dict, field: str) -> tuple[int, int]:
        sp = body.get("spatial") or {}
        if not isinstance(sp, dict):
            raise AccelmapError("expected a mapping with meshX and/or meshY", file=src, field=f"{field}.spatial")
        sp = resolve_values(sp, {**scope, **state["attrs"]}, src, f"{field}.spatial")
        for k in sp:
            if k not in ("meshX", "meshY"):
                warn(f"{src}: unknown key '{field}.spatial.{k}' ignored")
        return (_as_int(sp.get("meshX", 1), src, f"{field}.spatial.meshX"),
                _as_int(sp.get("meshY", 1), src, f"{field}.spatial.meshY"))

    def known_keys(body: dict, field: str, keys: set[str]) -> None:
        for k in body:
            if k not in keys:
                warn(f"{src}: unknown key '{field}.{k}' ignored; expected one of {sorted(keys)}")

    def component(body: dict, field: str) -> None:
        known_keys(body, field, _COMPONENT_KEYS)
        if "name" not in body:
            raise AccelmapError("missing required field; expected a component name", file=src, field=f"{field}.name")
        cname = str(body["name"])
        if "class" not in body:
            raise AccelmapError("missing required field; expected a component class", file=src, field=f"{field}.class")
        _check_unmodelled(body, src, field)
        if body.get("enabled") is False:
            return
        raw = body.get("attributes") or {}
        if not isinstance(raw, dict):
            raise AccelmapError("expected a mapping of attributes", file=src, field=f"{field}.attributes")
        attrs = dict(state["attrs"])
        attrs.update(resolve_values(raw, {**scope, **state["attrs"]}, src, f"{field}.attributes"))
        mx, my = spatial_of(body, field)
        if mx * my > 1:  # several copies of this component: a fanout right above it
            state["inst"] *= mx * my
            state["mesh_x"] *= mx
        cls = str(body["class"])
        sub = str(body.get("subclass", ""))
        tech = _tech_nm(attrs.get("technology"))
        if tech is not None:
            state["tech"] = tech
        tech = state["tech"]
        acts = ert_n.get(cname, {})
        area = art_n.get(cname)
        inst, mesh_x = state["inst"], state["mesh_x"]
        if cls.lower() in _COMPUTE or any(k in cls.lower() for k in ("mac", "compute")):
            from accelmap.architecture import _table

            bits = int(attrs.get("datawidth", attrs.get("multiplier_width", 16)))
            energy = acts.get("compute", acts.get("mac_random", acts.get("mac")))
            if energy is None:
                energy = float(_table().mac_energy(bits, tech))
            if area is None:
                area = float(_table().mac_area(bits, tech))
            compute.append(ComputeUnit(cname, cls, inst, mesh_x, float(energy), float(area), bits, cname))
            return
        if compute:
            raise AccelmapError("storage level below the compute unit; the compute unit must be innermost",
                                file=src, field=field)
        levels.append(_storage(cname, cls, sub, attrs, acts, area, inst, mesh_x, tech, src, field))
        cons.extend(_node_constraints(cname, body.get("constraints"), src, f"{field}.constraints", warn))

    def container(body: dict, field: str) -> None:
        known_keys(body, field, _CONTAINER_KEYS)
        cname = str(body.get("name", f"container{len(containers)}"))
        _check_unmodelled(body, src, field)
        raw = body.get("attributes") or {}
        if not isinstance(raw, dict):
            raise AccelmapError("expected a mapping of attributes", file=src, field=f"{field}.attributes")
        state["attrs"] = {**state["attrs"], **resolve_values(raw, {**scope, **state["attrs"]}, src,
                                                             f"{field}.attributes")}
        tech = _tech_nm(state["attrs"].get("technology"))
        if tech is not None:
            state["tech"] = tech
        mx, my = spatial_of(body, field)
        if mx * my > 1:
            lname = dummy_level_name(cname)
            levels.append(StorageLevel(lname, DUMMY_CLASS, 0, 1, 1, state["inst"], state["mesh_x"], None, None,
                                       0.0, 0.0, 0.0, lname, "none"))
            containers.append((cname, lname))
            cons.extend(_node_constraints(lname, body.get("constraints"), src, f"{field}.constraints", warn))
            state["inst"] *= mx * my
            state["mesh_x"] *= mx
        elif body.get("constraints"):
            warn(f"{src}: constraints of container '{cname}' ({field}.constraints) ignored: it has no spatial fanout")

    def walk(nodes: Any, field: str) -> None:
        if not isinstance(nodes, list):
            raise AccelmapError("expected a list of nodes", file=src, field=field)
        for i, n in enumerate(nodes):
            f = f"{field}[{i}]"
            if not isinstance(n, Node):
                raise AccelmapError("expected a tagged node (!Container, !Component, !Parallel, !Hierarchical)",
                                    file=src, field=f)
            if n.tag == "Component":
                component(n.body, f)
            elif n.tag == "Container":
                container(n.body, f)
            elif n.tag in ("Parallel", "Hierarchical"):
                # Timeloop orders parallel branches as consecutive levels, in the order written.
                walk(n.body.get("nodes") or [], f"{f}.nodes")
            # !Nothing: bookkeeping for data spaces that pass a parallel group

    walk(arch["nodes"], "architecture.nodes")
    if not compute:
        raise AccelmapError("no compute unit; expected a component of class intmac (or another MAC class)",
                            file=src, field="architecture.nodes")
    if not levels or is_dummy(levels[0]):
        raise AccelmapError("expected a storage level (DRAM) outside every other node", file=src,
                            field="architecture.nodes")
    for i in range(len(levels)):
        outer, inner = levels[i], levels[i + 1] if i + 1 < len(levels) else compute[0]
        if inner.instances % outer.instances:
            raise AccelmapError(f"{inner.name} has {inner.instances} instances, not a multiple of {outer.name}'s "
                                f"{outer.instances}", file=src, field="architecture.nodes")
    out = Architecture(name, tuple(levels), compute[-1], state["tech"])
    return V4Architecture(out, Constraints(tuple(cons), src), tuple(containers))


def _storage(cname: str, cls: str, sub: str, attrs: dict, acts: dict, area: float | None, inst: int, mesh_x: int,
             tech: float, src: str, field: str) -> StorageLevel:
    from accelmap.architecture import _table

    af = f"{field}.attributes"
    is_dram = "dram" in cls.lower() or "dram" in sub.lower()
    bits = _as_int(attrs.get("datawidth", attrs.get("word_bits", 16)), src, f"{af}.datawidth")
    width = attrs.get("width", attrs.get("memory_width"))
    # a row of `width` bits holds block_size words for each of `cluster_size` instances
    block, cluster = cluster_and_block(width, bits, attrs.get("block_size"), attrs.get("cluster_size"), src, af,
                                       "cluster_size", "block_size")
    if inst % cluster:
        raise AccelmapError(f"cluster_size {cluster} does not divide the {inst} instances", file=src,
                            field=f"{af}.cluster_size")
    capacity: int | None = None
    if not is_dram:
        depth = attrs.get("depth", attrs.get("memory_depth"))
        if depth is None:
            if "size" in attrs:
                capacity = _as_int(attrs["size"], src, f"{af}.size")
            else:
                raise AccelmapError("missing required field; expected depth (rows) for a storage level", file=src,
                                    field=f"{af}.depth")
        else:
            capacity = _as_int(depth, src, f"{af}.depth") * block
    bw = {}
    for k in ("read_bandwidth", "write_bandwidth", "shared_bandwidth"):
        v = attrs.get(k)
        bw[k] = float(_as_number(v, src, f"{af}.{k}")) if v is not None else None
    rbw = bw["read_bandwidth"] if bw["read_bandwidth"] is not None else bw["shared_bandwidth"]
    wbw = bw["write_bandwidth"] if bw["write_bandwidth"] is not None else bw["shared_bandwidth"]
    source = "ERT"
    if "read" in acts:
        r_e = acts["read"]
        w_e = acts.get("write", acts.get("update", r_e))
    else:
        source = "table"
        et = _table()
        if is_dram:
            r_e, w_e = et.dram_energy(bits, block, str(attrs.get("type", "LPDDR4")))
        elif capacity <= 512 and "sram" not in (cls + sub).lower():
            r_e, w_e = et.regfile_energy(capacity, bits, block, tech)
        else:
            r_e, w_e = et.sram_energy(capacity, bits, block, tech, int(attrs.get("n_banks", 1)))
    if area is None:
        et = _table()
        if is_dram:
            area = 0.0
        elif capacity <= 512 and "sram" not in (cls + sub).lower():
            area = et.regfile_area(capacity, bits, tech)
        else:
            area = et.sram_area(capacity, bits, tech, int(attrs.get("n_banks", 1)))
    # leakage per utilized instance and cycle (Timeloop v4 charges the ERT's 'leak' action)
    return StorageLevel(cname, sub or cls if cls == "storage" else cls, capacity, bits, block, inst, mesh_x,
                        rbw, wbw, float(r_e), float(w_e), float(area), cname, source,
                        float(acts.get("leak", 0.0)), cluster)


def read_v4_architecture(path: str | Path, ert: str | Path | None = None, art: str | Path | None = None,
                         name: str | None = None, warn: Callable[[str], None] | None = None,
                         variables: dict | None = None) -> V4Architecture:
    doc = load_v4_file(path, variables)
    return architecture_from_v4(doc, str(path), name or _design_name(str(path)), read_ert(ert), read_art(art), None,
                                warn)


def v4_architecture_constraints(path: str | Path) -> Constraints:
    """The constraints a v0.4 architecture file's nodes carry, and at its fanout levels the
    bypass of every tensor those constraints name (the tensor names are the workload's, which a
    file of its own does not know; a tensor no constraint names is left to the search there,
    where the level's zero capacity rules keeping it out)."""
    v = read_v4_architecture(path)
    names = dict.fromkeys(t for c in v.constraints.levels for t in c.keep + c.bypass)
    return v.constraints_for(tuple(names))


# ---- problems -----------------------------------------------------------------------------

def problem_from_v4(doc: Any, src: str, name: str, warn: Callable[[str], None] | None = None) -> Workload:
    """A v0.4 problem (``data_spaces``, ``read_write``) through the v0.3 builder. Instance keys
    that only describe the input (H, W, Hpad, Wpad) are dropped; other unknown keys are named
    in a warning and dropped, as Timeloop ignores them; densities below 1 are refused."""
    warn = warn or (lambda m: None)
    prob = doc.get("problem") if isinstance(doc, dict) else None
    if not isinstance(prob, dict):
        raise AccelmapError("missing required field; expected a 'problem' mapping with 'shape' and 'instance'",
                            file=src, field="problem")
    shape = dict(prob.get("shape") or {})
    if "data_spaces" in shape:
        shape["data-spaces"] = [
            {("read-write" if k == "read_write" else k): v for k, v in ds.items()} if isinstance(ds, dict) else ds
            for ds in shape.pop("data_spaces")]
    inst = prob.get("instance")
    if not isinstance(inst, dict):
        raise AccelmapError("missing required field; expected a mapping from dimension name to bound", file=src,
                            field="problem.instance")
    dims = shape.get("dimensions") or []
    coefs = [c.get("name") for c in shape.get("coefficients") or [] if isinstance(c, dict)]
    kept = {}
    for k, v in inst.items():
        if k == "densities":
            _check_densities(v, src)
            continue
        if k in dims or k in coefs:
            if isinstance(v, str):
                v = evaluate_expression(v, {}, src, f"problem.instance.{k}")
            kept[k] = v
        elif k not in _DESCRIPTIVE:
            near = [d for d in list(dims) + coefs if d.lower() == str(k).lower()]
            hint = f" (did you mean {near[0]}?)" if near else ""
            warn(f"{src}: instance key 'problem.instance.{k}' is not a dimension or coefficient and was "
                 f"ignored{hint}")
    for k, v in kept.items():
        if k in coefs and (isinstance(v, bool) or not isinstance(v, int)):
            raise AccelmapError(f"expected an integer, got {v!r}", file=src, field=f"problem.instance.{k}")
    v3 = {"problem": {"shape": shape, "instance": kept}}
    # kind stays "custom": v0.4 shapes name their dims freely (M for output channels, G for groups),
    # and code that takes "conv" layers expects accelmap's own dim names
    return problem_from_dict(v3, src, name)


def _check_densities(v: Any, src: str) -> None:
    if not isinstance(v, dict):
        return
    for t, d in v.items():
        dens = d.get("density", 1.0) if isinstance(d, dict) else d
        try:
            dens = float(dens)
        except (TypeError, ValueError):
            dens = 0.0
        if dens < 1.0:
            raise AccelmapError(f"densities below 1 (sparse tensors) are not modelled: {t} has density {dens:g}",
                                file=src, field=f"problem.instance.densities.{t}")


def read_v4_problem(path: str | Path, name: str | None = None, warn: Callable[[str], None] | None = None,
                    variables: dict | None = None) -> Workload:
    return problem_from_v4(load_v4_file(path, variables), str(path), name or Path(path).stem, warn)


def problem_folder_network(folder: str | Path, warn: Callable[[str], None] | None = None):
    """Every ``*.yaml``/``*.yml`` problem file of ``folder`` as one layer, in file-name order,
    named by the file (identical shapes are merged later, by :meth:`Network.unique_layers`).
    Files without a ``problem`` key (shared bases such as ``problem_base.yaml``) are named in a
    warning and skipped."""
    from accelmap.network import Layer, Network

    warn = warn or (lambda m: None)
    d = Path(folder)
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not files:
        subs = sorted(p.name for p in d.iterdir() if p.is_dir())
        raise AccelmapError("no problem files (*.yaml) in the folder" +
                            (f"; it has sub-folders: {', '.join(subs[:8])}" if subs else ""), file=str(d))
    layers = []
    for p in files:
        doc = load_v4_file(p)
        if not isinstance(doc, dict) or "problem" not in doc:
            warn(f"{p}: no 'problem' key; skipped")
            continue
        layers.append(Layer(problem_from_v4(doc, str(p), p.stem, warn)))
    if not layers:
        raise AccelmapError("no file of the folder has a 'problem' key", file=str(d), field="problem")
    return Network(d.name, tuple(layers))


# ---- mappings and constraints -------------------------------------------------------------

def _target(t: str, levels: tuple[str, ...], containers: dict[str, str]) -> str:
    """A container's name stands for its fanout level."""
    return containers.get(t, t) if t not in levels else t


def mapping_from_v4(doc: Any, src: str, arch: Architecture, containers: dict[str, str] | None = None) -> Mapping:
    """The mapper's ``map.yaml`` (factors ``C1 M8`` or ``C=1``, permutations as strings or lists)."""
    entries = doc.get("mapping") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise AccelmapError("missing required field; expected a 'mapping' list of directives", file=src,
                            field="mapping")
    containers = containers or {}
    names = arch.level_names
    norm = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise AccelmapError("expected a directive mapping with target and type", file=src, field=f"mapping[{i}]")
        e = dict(e)
        if "target" in e:
            e["target"] = _target(str(e["target"]), names, containers)
        if e.get("type") in ("dataspace",):
            e["type"] = "datatype"
        if e.get("type") in ("utilization", "max_overbooked_proportion"):
            continue
        if "factors" in e:
            e["factors"] = " ".join(f"{d}={f}" + (f",{r}" if r != f else "")
                                    for d, f, r in _factor_ends(e["factors"], src, f"mapping[{i}].factors"))
        if "permutation" in e:
            e["permutation"] = _permutation(e["permutation"])
        norm.append(e)
    m = mapping_from_timeloop({"mapping": norm}, src, names)
    # fanout levels keep nothing whatever the file says (Timeloop writes them as bypassing all)
    return Mapping(tuple(replace(lv, keep=(), bypass=tuple(dict.fromkeys(lv.bypass + lv.keep)))
                         if lv.name in names and is_dummy(arch.levels[arch.level_index(lv.name)]) else lv
                         for lv in m.levels))


def complete_mapping(m: Mapping, w: Workload, arch: Architecture) -> Mapping:
    """Fanout levels a mapping leaves out (or lists without a bypass) bypass every tensor."""
    present = {lv.name for lv in m.levels}
    out = []
    tn = tuple(t.name for t in w.tensors)
    for lv in arch.levels:
        if lv.name in present:
            cur = m.level(lv.name)
            out.append(replace(cur, keep=(), bypass=tn) if is_dummy(lv) else cur)
        elif is_dummy(lv):
            out.append(LevelMapping(lv.name, (), "", None, None, None, (), tn))
    out += [lv for lv in m.levels if lv.name not in arch.level_names]
    return Mapping(tuple(out))


def is_v4_mapping(path: str | Path, arch: Architecture) -> bool:
    """A mapping that needs this reader: for an architecture with fanout levels, in a v0.4 file, or
    with the mapper's factor style (``C1 M8``, no '=')."""
    if any(is_dummy(lv) for lv in arch.levels) or looks_like_v4(path):
        return True
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(re.search(r"factors:\s*['\"]?[A-Za-z_]+\d", text))


def read_v4_mapping(path: str | Path, arch: Architecture, workload: Workload) -> Mapping:
    containers = {lv.name[len("inter_"):-len("_spatial")]: lv.name for lv in arch.levels if is_dummy(lv)}
    doc = load_v4_file(path)
    return complete_mapping(mapping_from_v4(doc, str(path), arch, containers), workload, arch)


def constraints_from_v4_targets(targets: Any, src: str, field: str, arch: Architecture,
                                containers: dict[str, str], warn: Callable[[str], None]) -> list[LevelConstraint]:
    """Top-level ``constraints: {targets: [...]}`` (or ``extra_mapping_constraints``) entries."""
    if isinstance(targets, dict):
        targets = targets.get("targets", [])
    if not isinstance(targets, list):
        raise AccelmapError("expected a list of constraint targets", file=src, field=field)
    out = []
    names = arch.level_names
    for i, t in enumerate(targets):
        where = f"{field}[{i}]"
        if not isinstance(t, dict) or "target" not in t or "type" not in t:
            raise AccelmapError("missing required field; expected 'target' and 'type'", file=src, field=where)
        lvl = _target(str(t["target"]), names, containers)
        if lvl not in names:
            raise AccelmapError(f"constraint names level '{t['target']}' that the architecture lacks; expected one "
                                f"of {list(names) + list(containers)}", file=src, field=f"{where}.target")
        typ = str(t["type"])
        if typ in ("bypass", "datatype", "dataspace"):
            out.append(LevelConstraint(lvl, keep=tuple(t.get("keep") or ()), bypass=tuple(t.get("bypass") or ()),
                                       source=where))
        elif typ == "temporal":
            out.append(LevelConstraint(lvl, temporal=_factors(t.get("factors"), src, f"{where}.factors"),
                                       permutation=_permutation(t.get("permutation")), source=where))
        elif typ == "spatial":
            out.append(LevelConstraint(lvl, spatial=_factors(t.get("factors"), src, f"{where}.factors"),
                                       spatial_permutation=_permutation(t.get("permutation")),
                                       spatial_split=int(t["split"]) if t.get("split") is not None else None,
                                       source=where))
        elif typ in ("utilization", "max_overbooked_proportion"):
            continue
        else:
            raise AccelmapError(f"unknown constraint type '{typ}'; expected temporal, spatial or dataspace",
                                file=src, field=f"{where}.type")
    return out


def check_constraint_levels(cons: Constraints, arch: Architecture) -> None:
    for c in cons.levels:
        if c.level not in arch.level_names:
            raise AccelmapError(f"constraint names level '{c.level}' that the architecture lacks; expected one of "
                                f"{list(arch.level_names)}", file=cons.source, field=c.source or c.level)


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
            from accelmap.architecture import architecture_from_dict

            v3 = architecture_from_dict({"architecture": a}, src, Path(src).stem, read_ert(ert), read_art(art))
            v4a = V4Architecture(v3, Constraints(), ())
        else:
            # a top template names its design through a variable (architecture=eyeriss_like)
            given = (variables or {}).get("architecture")
            name = Path(str(given)).name if given else _design_name(src)
            v4a = architecture_from_v4(doc, src, name, read_ert(ert), read_art(art), None, warn)
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


def _design_name(src: str) -> str:
    p = Path(src)
    stem = p.name.split(".")[0]
    return p.parent.name if stem in ("arch", "architecture", "top") else stem


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

    from accelmap.spec import split_spec_args
    from accelmap.timeloop_export import architecture_to_v4, dump_v4_yaml, problem_to_v4

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
