"""Timeloop v0.4 mappings (the mapper's map.yaml) as accelmap Mappings."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from accelmap.arch.architecture import Architecture
from accelmap.arch.timeloop_v4 import is_dummy
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import LevelMapping, Mapping, mapping_from_timeloop
from accelmap.spec import load_v4_file, looks_like_v4
from accelmap.workload.workload import Workload


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
