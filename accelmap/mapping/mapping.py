"""Mappings: per storage level, temporal factors and loop order, spatial factors split over
the mesh's X and Y axes, and which tensors the level keeps.

:class:`Mapping` is the readable value that round-trips to Timeloop mapping YAML;
:class:`MappingBatch` holds B mappings as tensors for the cost model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from accelmap.arch.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.workload.workload import Workload
from accelmap.yamlio import dump_yaml, load_yaml, parse_yaml


@dataclass(frozen=True)
class LevelMapping:
    """One storage level's share of the loop nest.

    ``permutation`` is Timeloop's string, innermost loop first. Spatial dims at index
    ``< spatial_split`` of ``spatial_permutation`` go to the X axis, the rest to Y.
    """

    name: str
    temporal: tuple[tuple[str, int], ...]
    permutation: str
    spatial: tuple[tuple[str, int], ...] | None = None
    spatial_permutation: str | None = None
    spatial_split: int | None = None
    keep: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()

    def temporal_factor(self, dim: str) -> int:
        return dict(self.temporal).get(dim, 1)

    def spatial_factor(self, dim: str) -> int:
        return dict(self.spatial or ()).get(dim, 1)

    def spatial_axis(self, dim: str) -> int:
        """0 for X (meshX), 1 for Y."""
        perm = self.spatial_permutation or ""
        split = self.spatial_split if self.spatial_split is not None else len(perm)
        return 0 if perm.find(dim) < split and dim in perm else (1 if dim in perm else 0)


@dataclass(frozen=True)
class Mapping:
    levels: tuple[LevelMapping, ...]  # outermost first

    def level(self, name: str) -> LevelMapping:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise AccelmapError(f"mapping has no level '{name}'")

    # ---- Timeloop YAML ------------------------------------------------------------------
    def to_timeloop(self) -> dict:
        out = []
        for lv in self.levels:
            out.append({"target": lv.name, "type": "datatype", "keep": list(lv.keep), "bypass": list(lv.bypass)})
            out.append({"target": lv.name, "type": "temporal",
                        "factors": " ".join(f"{d}={f}" for d, f in lv.temporal),
                        "permutation": lv.permutation})
            if lv.spatial is not None:
                entry = {"target": lv.name, "type": "spatial",
                         "factors": " ".join(f"{d}={f}" for d, f in lv.spatial),
                         "permutation": lv.spatial_permutation or "".join(d for d, _ in lv.spatial)}
                if lv.spatial_split is not None:
                    entry["split"] = lv.spatial_split
                out.append(entry)
        return {"mapping": out}

    def to_yaml(self) -> str:
        return dump_yaml(self.to_timeloop())

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    def check(self, workload: Workload, arch: Architecture, source: str = "<mapping>") -> None:
        """Raise a user error for names the workload/architecture lack or bad factor products."""
        dims = set(workload.dims)
        tnames = {t.name for t in workload.tensors}
        for lv in self.levels:
            if lv.name not in arch.level_names:
                raise AccelmapError(f"unknown level '{lv.name}'; expected one of {list(arch.level_names)}",
                                    file=source, field="mapping.target")
            for d, f in tuple(lv.temporal) + tuple(lv.spatial or ()):
                if d not in dims:
                    raise AccelmapError(f"unknown dimension '{d}' at level {lv.name}; expected one of "
                                        f"{list(workload.dims)}", file=source, field=f"{lv.name}.factors")
                if f <= 0:
                    raise AccelmapError(f"factor {d}={f} at level {lv.name}; expected a positive integer",
                                        file=source, field=f"{lv.name}.factors")
            for t in lv.keep + lv.bypass:
                if t not in tnames:
                    raise AccelmapError(f"unknown tensor '{t}' at level {lv.name}; expected one of {sorted(tnames)}",
                                        file=source, field=f"{lv.name}.keep")
        for d, b in zip(workload.dims, workload.bounds):
            prod = math.prod(lv.temporal_factor(d) * lv.spatial_factor(d) for lv in self.levels)
            if prod != b:
                raise AccelmapError(f"factors of {d} multiply to {prod}, expected the bound {b}",
                                    file=source, field=f"factors.{d}")


def _parse_factors(text, source: str, field_path: str) -> tuple[tuple[str, int], ...]:
    if isinstance(text, dict):
        items = list(text.items())
    elif isinstance(text, str):
        items = []
        for tok in text.split():
            if "=" not in tok:
                raise AccelmapError(f"bad factor '{tok}'; expected NAME=INTEGER", file=source, field=field_path)
            k, v = tok.split("=", 1)
            items.append((k, v))
    else:
        raise AccelmapError("expected factors as 'R=1 S=3 ...'", file=source, field=field_path)
    out = []
    for k, v in items:
        try:
            iv = int(v)
        except (TypeError, ValueError):
            raise AccelmapError(f"factor {k}={v!r}; expected an integer", file=source, field=field_path) from None
        out.append((str(k), iv))
    return tuple(out)


def mapping_from_timeloop(doc, source: str = "<mapping>", level_order: Sequence[str] | None = None) -> Mapping:
    """Parse Timeloop mapping YAML (a ``mapping:`` list of target/type directives)."""
    entries = doc.get("mapping") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise AccelmapError("missing required field; expected a 'mapping' list of directives", file=source,
                            field="mapping")
    by_level: dict[str, dict] = {}
    order: list[str] = []
    for i, e in enumerate(entries):
        fp = f"mapping[{i}]"
        if not isinstance(e, dict):
            raise AccelmapError("expected a directive mapping with target and type", file=source, field=fp)
        for key in ("target", "type"):
            if key not in e:
                raise AccelmapError(f"missing required field; expected '{key}'", file=source, field=f"{fp}.{key}")
        tgt, typ = str(e["target"]), str(e["type"])
        if tgt not in by_level:
            by_level[tgt] = {}
            order.append(tgt)
        slot = by_level[tgt]
        if typ in ("datatype", "bypass"):
            slot["keep"] = tuple(e.get("keep", []) or [])
            slot["bypass"] = tuple(e.get("bypass", []) or [])
        elif typ == "temporal":
            slot["temporal"] = _parse_factors(e.get("factors", ""), source, f"{fp}.factors")
            slot["permutation"] = str(e.get("permutation", ""))
        elif typ == "spatial":
            slot["spatial"] = _parse_factors(e.get("factors", ""), source, f"{fp}.factors")
            slot["spatial_permutation"] = str(e.get("permutation", "")) or None
            if "split" in e:
                slot["spatial_split"] = int(e["split"])
        else:
            raise AccelmapError(f"unknown directive type '{typ}'; expected temporal, spatial or datatype",
                                file=source, field=f"{fp}.type")
    if level_order is not None:
        order = [n for n in level_order if n in by_level] + [n for n in order if n not in level_order]
    levels = []
    for name in order:
        s = by_level[name]
        levels.append(LevelMapping(name, s.get("temporal", ()), s.get("permutation", ""), s.get("spatial"),
                                   s.get("spatial_permutation"), s.get("spatial_split"), s.get("keep", ()),
                                   s.get("bypass", ())))
    return Mapping(tuple(levels))


def read_mapping(path: str | Path, level_order: Sequence[str] | None = None) -> Mapping:
    return mapping_from_timeloop(load_yaml(path), str(path), level_order)


def parse_mapping(text: str, level_order: Sequence[str] | None = None) -> Mapping:
    return mapping_from_timeloop(parse_yaml(text), "<string>", level_order)


# ---- the batch ------------------------------------------------------------------------------

@dataclass(frozen=True)
class MappingBatch:
    """B mappings of one workload on one architecture, as tensors.

    temporal: [B, L, D] int32 — temporal factor of dim d at storage level l (outermost l=0)
    order:    [B, L, D] int8 — loop position of dim d within level l, 0 = outermost
    spatial:  [B, L, D, 2] int32 — spatial factor of dim d below level l on mesh X (0) and Y (1)
    keep:     [B, L, T] bool — level l keeps tensor t
    spatial_order: [B, L, D] int8 — position of dim d among level l's spatial loops, 0 =
              outermost (Y loops enclose X loops); it decides which PEs are mesh neighbours
    """

    temporal: torch.Tensor
    order: torch.Tensor
    spatial: torch.Tensor
    keep: torch.Tensor
    spatial_order: torch.Tensor | None = None

    # Compact integer types: bulk evaluation streams these from memory, and bytes are time.
    FACTOR_DTYPE = torch.int32
    ORDER_DTYPE = torch.int8

    def __post_init__(self) -> None:
        for name, dt in (("temporal", self.FACTOR_DTYPE), ("spatial", self.FACTOR_DTYPE), ("order", self.ORDER_DTYPE)):
            if getattr(self, name).dtype != dt:
                object.__setattr__(self, name, getattr(self, name).to(dt))
        if self.spatial_order is not None and self.spatial_order.dtype != self.ORDER_DTYPE:
            object.__setattr__(self, "spatial_order", self.spatial_order.to(self.ORDER_DTYPE))
        if self.spatial_order is None:
            object.__setattr__(self, "spatial_order", self.default_spatial_order(self.spatial[..., 0] > 1))

    @classmethod
    def default_spatial_order(cls, on_x: torch.Tensor) -> torch.Tensor:
        """[B, L, D] spatial loop positions when a mapping gives none: Y dims outside X dims,
        each in dim order. ``on_x``: [B, L, D] bool, the dim is spread over mesh X."""
        D = on_x.shape[-1]
        base = torch.arange(D, device=on_x.device).expand_as(on_x)
        return (base + D * on_x.to(base.dtype)).to(cls.ORDER_DTYPE)

    def __len__(self) -> int:
        return self.temporal.shape[0]

    def to(self, device) -> "MappingBatch":
        return MappingBatch(self.temporal.to(device), self.order.to(device), self.spatial.to(device),
                            self.keep.to(device), self.spatial_order.to(device))

    def __getitem__(self, idx) -> "MappingBatch":
        return MappingBatch(self.temporal[idx], self.order[idx], self.spatial[idx], self.keep[idx],
                            self.spatial_order[idx])

    @staticmethod
    def cat(batches: Iterable["MappingBatch"]) -> "MappingBatch":
        bs = list(batches)
        return MappingBatch(torch.cat([b.temporal for b in bs]), torch.cat([b.order for b in bs]),
                            torch.cat([b.spatial for b in bs]), torch.cat([b.keep for b in bs]),
                            torch.cat([b.spatial_order for b in bs]))

    @staticmethod
    def from_mappings(mappings: Sequence[Mapping], workload: Workload, arch: Architecture) -> "MappingBatch":
        dims = list(workload.dims)
        D = len(dims)
        L = len(arch.levels)
        T = len(workload.tensors)
        tnames = [t.name for t in workload.tensors]
        B = len(mappings)
        # Filled element by element in NumPy (torch's per-element indexing costs microseconds).
        temporal = np.ones((B, L, D), dtype=np.int64)
        order = np.tile(np.arange(D, dtype=np.int64), (B, L, 1))
        spatial = np.ones((B, L, D, 2), dtype=np.int64)
        keep = np.ones((B, L, T), dtype=np.bool_)
        sorder = np.tile(np.arange(D, dtype=np.int64), (B, L, 1))
        for b, m in enumerate(mappings):
            for lv in m.levels:
                li = arch.level_index(lv.name)
                for d, f in lv.temporal:
                    if d not in dims:
                        raise AccelmapError(f"unknown dimension '{d}' at level {lv.name}; expected one of {dims}",
                                            field=f"{lv.name}.factors")
                    temporal[b, li, dims.index(d)] = f
                # Timeloop permutations list the innermost loop first; dims it omits go outside.
                perm = [c for c in lv.permutation if c in dims]
                perm += [d for d in reversed(dims) if d not in perm]
                for pos_inner, d in enumerate(perm):
                    order[b, li, dims.index(d)] = D - 1 - pos_inner
                for d, f in lv.spatial or ():
                    if d not in dims:
                        raise AccelmapError(f"unknown dimension '{d}' at level {lv.name}; expected one of {dims}",
                                            field=f"{lv.name}.factors")
                    spatial[b, li, dims.index(d), lv.spatial_axis(d)] = f
                # The spatial permutation lists the innermost loop first (X dims, then Y).
                sperm = [c for c in (lv.spatial_permutation or "") if c in dims]
                sperm += [d for d in reversed(dims) if d not in sperm]
                for pos_inner, d in enumerate(sperm):
                    sorder[b, li, dims.index(d)] = D - 1 - pos_inner
                if lv.keep or lv.bypass:
                    for t in lv.keep + lv.bypass:
                        if t not in tnames:
                            raise AccelmapError(f"unknown tensor '{t}' at level {lv.name}; expected one of {tnames}",
                                                field=f"{lv.name}.keep")
                    for ti, t in enumerate(tnames):
                        keep[b, li, ti] = t not in lv.bypass
        return MappingBatch(*(torch.from_numpy(x) for x in (temporal, order, spatial, keep, sorder)))

    def to_mappings(self, workload: Workload, arch: Architecture) -> list[Mapping]:
        dims = list(workload.dims)
        tnames = [t.name for t in workload.tensors]
        out = []
        tem = self.temporal.cpu().tolist()
        ordr = self.order.cpu().tolist()
        spa = self.spatial.cpu().tolist()
        kp = self.keep.cpu().tolist()
        so = self.spatial_order.cpu().tolist()
        for b in range(len(self)):
            levels = []
            for li, lvl in enumerate(arch.levels):
                perm = "".join(sorted(dims, key=lambda d: -ordr[b][li][dims.index(d)]))
                fan = arch.fanout(li)
                spatial = None
                sperm = None
                split = None
                if fan[0] * fan[1] > 1:
                    sp_perm = sorted(dims, key=lambda d: -so[b][li][dims.index(d)])
                    xs = [d for d in sp_perm if spa[b][li][dims.index(d)][0] > 1]
                    ys = [d for d in sp_perm if spa[b][li][dims.index(d)][1] > 1]
                    rest = [d for d in sp_perm if d not in xs and d not in ys]
                    sperm = "".join(xs + ys + rest)
                    split = len(xs)
                    spatial = tuple((d, spa[b][li][dims.index(d)][0] * spa[b][li][dims.index(d)][1]) for d in dims)
                keep = tuple(t for ti, t in enumerate(tnames) if kp[b][li][ti])
                byp = tuple(t for ti, t in enumerate(tnames) if not kp[b][li][ti])
                levels.append(LevelMapping(lvl.name, tuple((d, tem[b][li][i]) for i, d in enumerate(dims)), perm,
                                           spatial, sperm, split, keep, byp))
            out.append(Mapping(tuple(levels)))
        return out
