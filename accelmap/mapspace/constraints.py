"""Mapping constraints: what the hardware's dataflow fixes (factors, loop orders, bypass).

Read from Timeloop constraint YAML (``architecture_constraints: targets: [...]``, or a bare
``targets``/``constraints`` list) or built in Python. A factor of 0 means "all of this
dimension" (Timeloop's convention for the remainder); a partial permutation fixes the listed
dims as the innermost loops of that level, innermost first.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from accelmap.arch.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.workload.workload import Workload
from accelmap.yamlio import load_yaml


@dataclass(frozen=True)
class LevelConstraint:
    level: str
    temporal: tuple[tuple[str, int], ...] = ()
    permutation: str | None = None
    spatial: tuple[tuple[str, int], ...] = ()
    spatial_permutation: str | None = None
    spatial_split: int | None = None
    keep: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()
    source: str = ""  # where it came from, for error messages
    # Timeloop's factor bounds ('C<=16', 'K>=2', as DOSA writes them): (kind, dim, op, value),
    # kind 'temporal' or 'spatial', op '<=' or '>='.
    bounds: tuple[tuple[str, str, str, int], ...] = ()
    # Timeloop's 'remainders: N' on a temporal / spatial target: the ruby mapspace may give this
    # level's loops residual ends up to N (without it, ruby's loops there are perfect). Mappings
    # write residuals in their factors ('P=8,5'); constraints' factors have none.
    remainders: int | None = None
    spatial_remainders: int | None = None

    def within(self, kind: str, dim: str, factor: int) -> bool:
        return all(factor <= v if op == "<=" else factor >= v for k, d, op, v in self.bounds
                   if k == kind and d == dim)


@dataclass(frozen=True)
class Constraints:
    levels: tuple[LevelConstraint, ...] = ()
    source: str = "<constraints>"

    def at(self, level: str) -> LevelConstraint:
        merged = LevelConstraint(level)
        for c in self.levels:
            if c.level != level:
                continue
            merged = LevelConstraint(
                level,
                merged.temporal + c.temporal,
                c.permutation or merged.permutation,
                merged.spatial + c.spatial,
                c.spatial_permutation or merged.spatial_permutation,
                c.spatial_split if c.spatial_split is not None else merged.spatial_split,
                merged.keep + c.keep,
                merged.bypass + c.bypass,
                c.source or merged.source,
                merged.bounds + c.bounds,
                c.remainders if c.remainders is not None else merged.remainders,
                c.spatial_remainders if c.spatial_remainders is not None else merged.spatial_remainders,
            )
        return merged

    # ---- Timeloop YAML ------------------------------------------------------------------
    def to_timeloop(self) -> dict:
        """Timeloop constraint YAML (``architecture_constraints: targets: [...]``), readable back
        by :func:`read_constraints`: one target per kind (bypass, temporal, spatial) per entry."""
        targets = []
        for c in self.levels:
            if c.keep or c.bypass:
                targets.append({"target": c.level, "type": "bypass", "keep": list(c.keep), "bypass": list(c.bypass)})
            if c.temporal or c.permutation or _bound_text(c, "temporal") or c.remainders is not None:
                t = {"target": c.level, "type": "temporal"}
                if c.temporal or _bound_text(c, "temporal"):
                    t["factors"] = " ".join([f"{d}={f}" for d, f in c.temporal] + _bound_text(c, "temporal"))
                if c.permutation:
                    t["permutation"] = c.permutation
                if c.remainders is not None:
                    t["remainders"] = c.remainders
                targets.append(t)
            if (c.spatial or c.spatial_permutation or c.spatial_split is not None or _bound_text(c, "spatial")
                    or c.spatial_remainders is not None):
                t = {"target": c.level, "type": "spatial"}
                if c.spatial or _bound_text(c, "spatial"):
                    t["factors"] = " ".join([f"{d}={f}" for d, f in c.spatial] + _bound_text(c, "spatial"))
                if c.spatial_permutation:
                    t["permutation"] = c.spatial_permutation
                if c.spatial_split is not None:
                    t["split"] = c.spatial_split
                if c.spatial_remainders is not None:
                    t["remainders"] = c.spatial_remainders
                targets.append(t)
        return {"architecture_constraints": {"targets": targets}}

    def to_yaml(self) -> str:
        from accelmap.yamlio import dump_yaml

        return dump_yaml(self.to_timeloop())

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    def check(self, workload: Workload, arch: Architecture, divisible: bool = True) -> None:
        """Raise naming the constraint when it refers to a missing level, dim or tensor, or
        (with ``divisible``: perfect factors) when its fixed factors cannot multiply to a
        dimension's bound. Imperfect factors (``divisible=False``) cover any bound with residual
        ends, so fixed ends need not divide it."""
        dims = set(workload.dims)
        tnames = {t.name for t in workload.tensors}
        for c in self.levels:
            where = c.source or f"level {c.level}"
            if c.level not in arch.level_names:
                raise AccelmapError(f"constraint names level '{c.level}' that the architecture lacks; expected one "
                                    f"of {list(arch.level_names)}", file=self.source, field=where)
            for d, f in c.temporal + c.spatial + tuple((b[1], b[3]) for b in c.bounds):
                if d not in dims:
                    raise AccelmapError(f"constraint names dimension '{d}'; expected one of {list(workload.dims)}",
                                        file=self.source, field=where)
                if f < 0:
                    raise AccelmapError(f"factor {d}={f}; expected a positive integer or 0 (the rest)",
                                        file=self.source, field=where)
            for p in (c.permutation or "") + (c.spatial_permutation or ""):
                if p not in dims:
                    raise AccelmapError(f"permutation names dimension '{p}'; expected one of {list(workload.dims)}",
                                        file=self.source, field=where)
            for t in c.keep + c.bypass:
                if t not in tnames:
                    raise AccelmapError(f"constraint names tensor '{t}'; expected one of {sorted(tnames)}",
                                        file=self.source, field=where)
            if set(c.keep) & set(c.bypass):
                raise AccelmapError(f"tensors {sorted(set(c.keep) & set(c.bypass))} are both kept and bypassed",
                                    file=self.source, field=where)
            if c.spatial and arch.fanout(arch.level_index(c.level)) == (1, 1):
                if any(f > 1 for _, f in c.spatial):
                    raise AccelmapError(f"spatial factors at {c.level}, which has no fanout", file=self.source,
                                        field=where)
        for d, bound in zip(workload.dims, workload.bounds):
            if not divisible:
                break
            fixed = [(c, f) for c in self.levels for dd, f in c.temporal + c.spatial if dd == d and f > 0]
            prod = math.prod(f for _, f in fixed)
            if bound % prod:
                c = fixed[-1][0]
                raise AccelmapError(f"fixed factors of {d} multiply to {prod}, which does not divide its bound "
                                    f"{bound}; no legal mapping", file=self.source, field=c.source or c.level)


_BOUND = re.compile(r"([A-Za-z]+)\s*(<=|>=)\s*([0-9]+)")


def _bound_text(c: LevelConstraint, kind: str) -> list[str]:
    return [f"{d}{op}{v}" for k, d, op, v in c.bounds if k == kind]


def _bounds(text, kind: str, src: str, where: str) -> tuple[tuple[str, str, str, int], ...]:
    """Timeloop's 'DIM<=N' / 'DIM>=N' factor bounds in a factors string."""
    if not isinstance(text, str):
        return ()
    out = []
    for d, op, v in _BOUND.findall(text.split("#", 1)[0]):
        if int(v) <= 0:
            raise AccelmapError(f"factor bound {d}{op}{v}; expected a positive integer", file=src, field=where)
        out.append((kind, d, op, int(v)))
    return tuple(out)


def _factors(text, src: str, where: str) -> tuple[tuple[str, int], ...]:
    if text is None:
        return ()
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        # bounds ('C<=16') are read by _bounds; '#' starts a comment, as in Timeloop
        for tok in _BOUND.sub(" ", str(text).split("#", 1)[0]).split():
            if "=" not in tok:
                raise AccelmapError(f"bad factor '{tok}'; expected NAME=INTEGER", file=src, field=where)
            k, v = tok.split("=", 1)
            items.append((k, v))
    out = []
    for k, v in items:
        if isinstance(v, str) and re.fullmatch(r"\s*\d+\s*,\s*\d+\s*", v):
            # A mapping's 'P=8,5' (end 8, residual end 5). Timeloop's constraint parser has no
            # residual ends: it reads this as P=8 and drops the ',5', so say so instead.
            raise AccelmapError(f"factor {k}={v.strip()}: a residual end in a constraint; expected NAME=INTEGER "
                                f"(Timeloop's constraints take no residual ends; they belong in a mapping)",
                                file=src, field=where)
        try:
            out.append((str(k), int(v)))
        except (TypeError, ValueError):
            raise AccelmapError(f"factor {k}={v!r}; expected an integer", file=src, field=where) from None
    return tuple(out)


def _remainders(value, src: str, where: str) -> int | None:
    """Timeloop's 'remainders: N' (the largest residual end ruby may give the level's loops)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AccelmapError(f"remainders: {value!r}; expected a positive integer (the largest residual end the "
                            f"level's loops may have)", file=src, field=f"{where}.remainders")
    return value


_SECTIONS = ("architecture_constraints", "mapspace_constraints")


def _permutation(value) -> str | None:
    """A permutation as Timeloop reads it: whitespace skipped ('NPQR SCM', as every pre-v0.4
    Eyeriss constraint file writes it) and '#' starting a comment."""
    if value is None:
        return None
    text = "".join(str(value).split("#", 1)[0].split())
    return text or None


def _names(value, src: str, where: str) -> tuple[str, ...]:
    """A keep/bypass list: tensor names (Timeloop also accepts one name as a plain string)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise AccelmapError(f"expected a list of tensor names such as [Weights, Inputs], got {value!r}", file=src,
                            field=where)
    return tuple(items)


def constraints_from_dict(doc, src: str = "<constraints>") -> Constraints:
    """Targets from ``architecture_constraints`` and ``mapspace_constraints`` (Timeloop applies
    both), or from a ``constraints`` section or a bare list."""
    sections: list[tuple[str, object]] = []
    if isinstance(doc, dict) and any(k in doc for k in _SECTIONS):
        sections = [(k, doc[k]) for k in _SECTIONS if k in doc]
    elif isinstance(doc, dict):
        sections = [("constraints" if "constraints" in doc else "architecture_constraints",
                     doc.get("constraints", doc))]
    else:
        sections = [("architecture_constraints", doc)]
    entries = []
    for key, body in sections:
        targets = body.get("targets") if isinstance(body, dict) else body
        if not isinstance(targets, list):
            raise AccelmapError(f"expected '{key}: targets:' with a list of constraints", file=src,
                                field=f"{key}.targets")
        entries += [(f"{key}.targets[{i}]", t) for i, t in enumerate(targets)]
    out = []
    for where, t in entries:
        if not isinstance(t, dict) or "target" not in t or "type" not in t:
            raise AccelmapError("missing required field; expected 'target' and 'type'", file=src, field=where)
        typ = str(t["type"])
        lvl = str(t["target"])
        if typ in ("bypass", "datatype", "dataspace"):
            out.append(LevelConstraint(lvl, keep=_names(t.get("keep"), src, f"{where}.keep"),
                                       bypass=_names(t.get("bypass"), src, f"{where}.bypass"), source=where))
        elif typ == "temporal":
            out.append(LevelConstraint(lvl, temporal=_factors(t.get("factors"), src, where),
                                       permutation=_permutation(t.get("permutation")), source=where,
                                       bounds=_bounds(t.get("factors"), "temporal", src, where),
                                       remainders=_remainders(t.get("remainders"), src, where)))
        elif typ == "spatial":
            out.append(LevelConstraint(lvl, spatial=_factors(t.get("factors"), src, where),
                                       spatial_permutation=_permutation(t.get("permutation")),
                                       spatial_split=t.get("split"),
                                       source=where, bounds=_bounds(t.get("factors"), "spatial", src, where),
                                       spatial_remainders=_remainders(t.get("remainders"), src, where)))
        elif typ in ("utilization", "max_overbooked_proportion"):
            continue  # mapper hints that do not restrict the space
        else:
            raise AccelmapError(f"unknown constraint type '{typ}'; expected temporal, spatial or bypass", file=src,
                                field=f"{where}.type")
    return Constraints(tuple(out), src)


def read_constraints(path: str | Path) -> Constraints:
    return constraints_from_dict(load_yaml(path), str(path))


