"""Timeloop v0.4 constraints: those written inside architecture nodes and the spec's constraint targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from accelmap.arch.architecture import Architecture
from accelmap.arch.timeloop_v4 import _KNOWN_CONSTRAINT_KEYS, V4Nodes, is_dummy, read_v4_nodes
from accelmap.errors import AccelmapError
from accelmap.mapping.timeloop_v4 import _factors, _permutation, _target
from accelmap.mapspace.constraints import Constraints, LevelConstraint


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


def _node_constraints(level: str, cons: dict, src: str, field: str) -> list[LevelConstraint]:
    """A node's constraints (their keys already checked by the architecture reader)."""
    out = []
    for kind, body in cons.items():
        where = f"{field}.{kind}"
        if kind not in _KNOWN_CONSTRAINT_KEYS:
            continue
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


def from_nodes(v: V4Nodes) -> V4Architecture:
    levels = tuple(c for lvl, cons, field in v.node_constraints for c in _node_constraints(lvl, cons, v.source, field))
    return V4Architecture(v.arch, Constraints(levels, v.source), v.containers)


def read_v4_architecture(path: str | Path, ert: str | Path | None = None, art: str | Path | None = None,
                         name: str | None = None, warn: Callable[[str], None] | None = None,
                         variables: dict | None = None) -> V4Architecture:
    return from_nodes(read_v4_nodes(path, ert, art, name, warn, variables))


def v4_architecture_constraints(path: str | Path) -> Constraints:
    """The constraints a v0.4 architecture file's nodes carry, and at its fanout levels the
    bypass of every tensor those constraints name (the tensor names are the workload's, which a
    file of its own does not know; a tensor no constraint names is left to the search there,
    where the level's zero capacity rules keeping it out)."""
    v = read_v4_architecture(path)
    names = dict.fromkeys(t for c in v.constraints.levels for t in c.keep + c.bypass)
    return v.constraints_for(tuple(names))


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
