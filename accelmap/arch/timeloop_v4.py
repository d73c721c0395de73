"""Timeloop v0.4 architectures (nodes, containers, attributes as expressions) as accelmap Architectures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from accelmap.arch.architecture import Architecture, ComputeUnit, StorageLevel, cluster_and_block, read_art, read_ert
from accelmap.errors import AccelmapError
from accelmap.spec import Node, load_v4_file, resolve_values

DUMMY_CLASS = "dummy_storage"


_COMPUTE = ("intmac", "fpmac", "mac", "compute", "bitwise", "adder", "multiplier")


# Names of compute-in-memory and analog parts (the CiM exercises); accelmap has no model for them.
_CIM = re.compile(r"cim|adc|dac|crossbar|memory_cell|row_driver|column_driver|analog|reram|sram_cell", re.I)


def dummy_level_name(container: str) -> str:
    return f"inter_{container}_spatial"


def is_dummy(level: StorageLevel) -> bool:
    return level.cls == DUMMY_CLASS


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


_KNOWN_CONSTRAINT_KEYS = {"dataspace": {"keep", "bypass", "no_coalesce"},
                          "temporal": {"factors", "permutation", "no_reuse", "no_iteration_over_dataspaces"},
                          "spatial": {"factors", "permutation", "split", "no_reuse", "no_iteration_over_dataspaces"}}


_MAPPER_HINTS = ("utilization", "max_overbooked_proportion", "min_utilization")  # they do not restrict the space

_COMPONENT_KEYS = {"name", "class", "subclass", "attributes", "constraints", "spatial", "required_actions",
                   "enabled", "area_scale", "energy_scale", "sparse_optimizations"}


_CONTAINER_KEYS = {"name", "attributes", "constraints", "spatial", "sparse_optimizations", "networks"}


@dataclass(frozen=True)
class V4Nodes:
    """An architecture read from v0.4, with the constraints its nodes carry as written (they
    become accelmap constraints in :mod:`accelmap.mapspace.timeloop_v4`, above this layer)."""

    arch: Architecture
    node_constraints: tuple[tuple[str, Any, str], ...]  # (level name, the node's constraints, field)
    containers: tuple[tuple[str, str], ...]  # (container name, its fanout level name)
    source: str


def check_constraint_keys(cons: Any, src: str, field: str, warn: Callable[[str], None]) -> None:
    """Name in a warning every key of a node's constraints that accelmap does not model."""
    if not cons:
        return
    if not isinstance(cons, dict):
        raise AccelmapError("expected a mapping with dataspace, temporal or spatial", file=src, field=field)
    for kind, body in cons.items():
        where = f"{field}.{kind}"
        if kind not in _KNOWN_CONSTRAINT_KEYS:
            if kind not in _MAPPER_HINTS:
                warn(f"{src}: unknown constraint key '{where}' ignored")
            continue
        if not isinstance(body, dict):
            raise AccelmapError(f"expected a mapping under '{kind}'", file=src, field=where)
        for k in body:
            if k not in _KNOWN_CONSTRAINT_KEYS[kind]:
                warn(f"{src}: constraint key '{where}.{k}' is not modelled and was ignored")


def read_v4_nodes(path: str | Path, ert: str | Path | None = None, art: str | Path | None = None,
                  name: str | None = None, warn: Callable[[str], None] | None = None,
                  variables: dict | None = None) -> V4Nodes:
    doc = load_v4_file(path, variables)
    return architecture_from_v4(doc, str(path), name or _design_name(str(path)), read_ert(ert), read_art(art), None,
                                warn)


def architecture_from_v4(doc: dict, src: str, name: str, ert: dict | None = None, art: dict | None = None,
                         variables: dict | None = None, warn: Callable[[str], None] | None = None) -> V4Nodes:
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
    cons: list[tuple[str, Any, str]] = []
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
            from accelmap.arch.architecture import _table

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
        check_constraint_keys(body.get("constraints"), src, f"{field}.constraints", warn)
        cons.append((cname, body.get("constraints"), f"{field}.constraints"))

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
            check_constraint_keys(body.get("constraints"), src, f"{field}.constraints", warn)
            cons.append((lname, body.get("constraints"), f"{field}.constraints"))
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
    return V4Nodes(out, tuple(c for c in cons if c[1]), tuple(containers), src)


def _storage(cname: str, cls: str, sub: str, attrs: dict, acts: dict, area: float | None, inst: int, mesh_x: int,
             tech: float, src: str, field: str) -> StorageLevel:
    from accelmap.arch.architecture import _table

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


def _design_name(src: str) -> str:
    p = Path(src)
    stem = p.name.split(".")[0]
    return p.parent.name if stem in ("arch", "architecture", "top") else stem
