"""Mappings: per storage level, temporal factors and loop order, spatial factors split over
the mesh's X and Y axes, and which tensors the level keeps.

:class:`Mapping` is the readable value that round-trips to Timeloop mapping YAML;
:class:`MappingBatch` holds B mappings as tensors for the cost model.

Imperfect factors (Timeloop v3's ``factors: P=8,5``): a loop has an end ``f`` (its factor) and
a residual end ``r`` (1 <= r <= f) that it runs to instead of ``f`` when every loop over the
same dimension outside it is on its own last iteration. A dimension's loops, outermost first,
must cover its bound as ``bound = (...((r_n - 1) * f_{n-1} + (r_{n-1} - 1)) * ... ) * f_0 + r_0``
(:func:`covered_bound`); with every ``r == f`` that is the product of the factors. A perfect
mapping carries no residuals at all, so it behaves and serializes exactly as before.
See /work/notes/imperfect_semantics.md for what Timeloop counts on such loops.
"""

from __future__ import annotations

import math
import re
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
    # Residual ends of the loops that have one different from their factor (Timeloop's
    # 'P=8,5' is ('P', 5) here, beside ('P', 8) in temporal); a dim not listed runs its factor
    # on every iteration. Perfect mappings leave both empty.
    temporal_residual: tuple[tuple[str, int], ...] = ()
    spatial_residual: tuple[tuple[str, int], ...] = ()

    def temporal_factor(self, dim: str) -> int:
        return dict(self.temporal).get(dim, 1)

    def spatial_factor(self, dim: str) -> int:
        return dict(self.spatial or ()).get(dim, 1)

    def temporal_residual_end(self, dim: str) -> int:
        """The temporal loop's residual end (its factor when it has none)."""
        return dict(self.temporal_residual).get(dim, self.temporal_factor(dim))

    def spatial_residual_end(self, dim: str) -> int:
        return dict(self.spatial_residual).get(dim, self.spatial_factor(dim))

    @property
    def is_imperfect(self) -> bool:
        return any(r != self.temporal_factor(d) for d, r in self.temporal_residual) or any(
            r != self.spatial_factor(d) for d, r in self.spatial_residual)

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

    @property
    def is_imperfect(self) -> bool:
        """Some loop has a residual end different from its factor."""
        return any(lv.is_imperfect for lv in self.levels)

    # ---- Timeloop YAML ------------------------------------------------------------------
    def to_timeloop(self) -> dict:
        out = []
        for lv in self.levels:
            out.append({"target": lv.name, "type": "datatype", "keep": list(lv.keep), "bypass": list(lv.bypass)})
            out.append({"target": lv.name, "type": "temporal",
                        "factors": format_factors(lv.temporal, lv.temporal_residual),
                        "permutation": lv.permutation})
            if lv.spatial is not None:
                entry = {"target": lv.name, "type": "spatial",
                         "factors": format_factors(lv.spatial, lv.spatial_residual),
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
            for kind, factor_of, res in (("temporal", lv.temporal_factor, lv.temporal_residual),
                                         ("spatial", lv.spatial_factor, lv.spatial_residual)):
                for d, r in res:
                    if d not in dims:
                        raise AccelmapError(f"unknown dimension '{d}' in a residual at level {lv.name}; expected "
                                            f"one of {list(workload.dims)}", file=source, field=f"{lv.name}.factors")
                    if not 1 <= r <= factor_of(d):
                        # Timeloop's parser lets r > f through, then counts more iterations than the
                        # loop has (utilization above 1); its ruby mapspace never makes one.
                        raise AccelmapError(f"{kind} factor {d}={factor_of(d)},{r} at level {lv.name}; expected "
                                            f"a residual end between 1 and the factor {factor_of(d)}", file=source,
                                            field=f"{lv.name}.factors")
        for d, b in zip(workload.dims, workload.bounds):
            if not self.is_imperfect:
                prod = math.prod(lv.temporal_factor(d) * lv.spatial_factor(d) for lv in self.levels)
                if prod != b:
                    raise AccelmapError(f"factors of {d} multiply to {prod}, expected the bound {b}",
                                        file=source, field=f"factors.{d}")
                continue
            loops = self.loops(d)
            covered = covered_bound([(f, r) for _, _, f, r in loops])
            if covered != b:
                used = [(name, kind, f, r) for name, kind, f, r in loops if f > 1]
                shown = ", ".join(f"{name} {kind} {d}={f}" + (f",{r}" if r != f else "") for name, kind, f, r in used)
                expr = ""
                for _, _, f, r in used:
                    expr = f"({expr})*{f} + {r - 1}" if expr else f"{r - 1}"
                raise AccelmapError(f"factors of {d} ({shown or 'none'}) cover {covered} = {expr or '0'} + 1 "
                                    f"(Timeloop's rule for residual ends, loops outermost first: "
                                    f"(((r3-1)*f2 + r2-1)*f1 + r1-1)*f0 + r0), expected the bound {b}",
                                    file=source, field=f"factors.{d}")

    def loops(self, dim: str) -> list[tuple[str, str, int, int]]:
        """The loops over ``dim``, outermost first, as (level, 'temporal'|'spatial', end,
        residual end): each level's temporal loop, then the spatial loop of the fan-out below
        it (Timeloop's tiling levels)."""
        out = []
        for lv in self.levels:
            out.append((lv.name, "temporal", lv.temporal_factor(dim), lv.temporal_residual_end(dim)))
            if lv.spatial is not None:
                out.append((lv.name, "spatial", lv.spatial_factor(dim), lv.spatial_residual_end(dim)))
        return out


def covered_bound(loops: Sequence[tuple[int, int]]) -> int:
    """How many indices loops (end, residual end), outermost first, cover (Timeloop v3's check
    in its mapping parser): ``(((r3-1)*f2 + (r2-1))*f1 + (r1-1))*f0 + r0``. The outermost
    loop's end does not count (it always runs to its residual end); with r == f it is the
    product of the ends."""
    acc = 0
    for f, r in loops:
        acc = acc * f + r - 1
    return acc + 1


def format_factors(factors: Sequence[tuple[str, int]], residual: Sequence[tuple[str, int]] = ()) -> str:
    """Timeloop's factor string: 'R=1 S=3 P=8,5' (',r' only where the residual differs)."""
    res = dict(residual)
    return " ".join(f"{d}={f}" + (f",{res[d]}" if res.get(d, f) != f else "") for d, f in factors)


def split_residuals(items: Sequence[tuple[str, int, int]]) -> tuple[tuple[tuple[str, int], ...],
                                                                     tuple[tuple[str, int], ...]]:
    """(dim, end, residual end) triples as (factors, residuals), residuals only where r != f."""
    return tuple((d, f) for d, f, _ in items), tuple((d, r) for d, f, r in items if r != f)


def parse_factor_value(k, v, source: str, field_path: str) -> tuple[int, int]:
    """A factor's value: 'F' or Timeloop's 'F,R' (end F, residual end R) as (F, R)."""
    text = str(v).strip()
    parts = text.split(",") if isinstance(v, str) else [text]
    try:
        if len(parts) > 2:
            raise ValueError
        f = int(parts[0])
        r = int(parts[1]) if len(parts) == 2 else f
    except (TypeError, ValueError):
        raise AccelmapError(f"factor {k}={v!r}; expected an integer, or END,RESIDUAL such as 8,5", file=source,
                            field=field_path) from None
    if len(parts) == 2 and r <= 0:
        raise AccelmapError(f"factor {k}={v!r}; expected a positive residual end", file=source, field=field_path)
    return f, r


def _parse_factors(text, source: str, field_path: str) -> tuple[tuple[str, int, int], ...]:
    """(dim, end, residual end) per factor; 'P=8' has residual end 8, 'P=8,5' has 5."""
    if isinstance(text, dict):
        items = list(text.items())
    elif isinstance(text, str):
        items = []
        for tok in text.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
            else:  # 'R1 S1 P7,3': the form timeloop-mapper writes into its map.yaml
                m = re.fullmatch(r"([A-Za-z_]+?)(\d+(?:,\d+)?)", tok)
                if not m:
                    raise AccelmapError(f"bad factor '{tok}'; expected NAME=INTEGER or NAME=END,RESIDUAL (or "
                                        f"Timeloop's NAMEINTEGER)", file=source, field=field_path)
                k, v = m[1], m[2]
            items.append((k, v))
    else:
        raise AccelmapError("expected factors as 'R=1 S=3 ...'", file=source, field=field_path)
    return tuple((str(k),) + parse_factor_value(k, v, source, field_path) for k, v in items)


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
            slot["temporal"], slot["temporal_residual"] = split_residuals(
                _parse_factors(e.get("factors", ""), source, f"{fp}.factors"))
            slot["permutation"] = str(e.get("permutation", ""))
        elif typ == "spatial":
            slot["spatial"], slot["spatial_residual"] = split_residuals(
                _parse_factors(e.get("factors", ""), source, f"{fp}.factors"))
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
                                   s.get("bypass", ()), s.get("temporal_residual", ()),
                                   s.get("spatial_residual", ())))
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
    temporal_residual: [B, L, D] int32 or None — residual end of each temporal loop (Timeloop's
              'P=8,5' puts 8 in temporal and 5 here); None: every loop is perfect (== temporal)
    spatial_residual: [B, L, D, 2] int32 or None — likewise for spatial, on the factor's axis
              (1 on the other); None: == spatial

    A batch without residuals (both None) is exactly today's batch: search spaces make those,
    and they cost no extra memory. A batch with residuals goes to the cost model's residual path.
    """

    temporal: torch.Tensor
    order: torch.Tensor
    spatial: torch.Tensor
    keep: torch.Tensor
    spatial_order: torch.Tensor | None = None
    temporal_residual: torch.Tensor | None = None
    spatial_residual: torch.Tensor | None = None

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
        for name, like in (("temporal_residual", self.temporal), ("spatial_residual", self.spatial)):
            res = getattr(self, name)
            if res is not None:
                if res.shape != like.shape:
                    raise ValueError(f"{name} has shape {tuple(res.shape)}, expected {tuple(like.shape)}")
                if res.dtype != self.FACTOR_DTYPE:
                    object.__setattr__(self, name, res.to(self.FACTOR_DTYPE))

    @property
    def has_residuals(self) -> bool:
        """Some loop of some mapping has a residual end different from its factor."""
        return bool(self.imperfect.any()) if (self.temporal_residual is not None
                                              or self.spatial_residual is not None) else False

    @property
    def imperfect(self) -> torch.Tensor:
        """[B] bool — mapping b has a loop whose residual end differs from its factor."""
        out = torch.zeros(len(self), dtype=torch.bool, device=self.temporal.device)
        if self.temporal_residual is not None:
            out |= (self.temporal_residual != self.temporal).flatten(1).any(1)
        if self.spatial_residual is not None:
            out |= (self.spatial_residual != self.spatial).flatten(1).any(1)
        return out

    def residual_ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(temporal [B, L, D], spatial [B, L, D, 2]) residual ends, the factors where none."""
        return (self.temporal if self.temporal_residual is None else self.temporal_residual,
                self.spatial if self.spatial_residual is None else self.spatial_residual)

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
        opt = [None if x is None else x.to(device) for x in (self.temporal_residual, self.spatial_residual)]
        return MappingBatch(self.temporal.to(device), self.order.to(device), self.spatial.to(device),
                            self.keep.to(device), self.spatial_order.to(device), *opt)

    def __getitem__(self, idx) -> "MappingBatch":
        opt = [None if x is None else x[idx] for x in (self.temporal_residual, self.spatial_residual)]
        return MappingBatch(self.temporal[idx], self.order[idx], self.spatial[idx], self.keep[idx],
                            self.spatial_order[idx], *opt)

    @staticmethod
    def cat(batches: Iterable["MappingBatch"]) -> "MappingBatch":
        bs = list(batches)
        # residuals stay None unless some part has them; the others' then equal their factors
        tres = (torch.cat([b.residual_ends()[0] for b in bs])
                if any(b.temporal_residual is not None for b in bs) else None)
        sres = (torch.cat([b.residual_ends()[1] for b in bs])
                if any(b.spatial_residual is not None for b in bs) else None)
        return MappingBatch(torch.cat([b.temporal for b in bs]), torch.cat([b.order for b in bs]),
                            torch.cat([b.spatial for b in bs]), torch.cat([b.keep for b in bs]),
                            torch.cat([b.spatial_order for b in bs]), tres, sres)

    @staticmethod
    def from_mappings(mappings: Sequence[Mapping], workload: Workload, arch: Architecture) -> "MappingBatch":
        """The batch of ``mappings`` (residual ends carried when any mapping has one)."""
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
        imperfect = any(m.is_imperfect for m in mappings)
        tres = np.ones((B, L, D), dtype=np.int64) if imperfect else None
        sres = np.ones((B, L, D, 2), dtype=np.int64) if imperfect else None
        for b, m in enumerate(mappings):
            for lv in m.levels:
                li = arch.level_index(lv.name)
                for d, f in lv.temporal:
                    if d not in dims:
                        raise AccelmapError(f"unknown dimension '{d}' at level {lv.name}; expected one of {dims}",
                                            field=f"{lv.name}.factors")
                    temporal[b, li, dims.index(d)] = f
                    if tres is not None:
                        tres[b, li, dims.index(d)] = lv.temporal_residual_end(d)
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
                    if sres is not None:
                        sres[b, li, dims.index(d), lv.spatial_axis(d)] = lv.spatial_residual_end(d)
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
        batch = MappingBatch(*(torch.from_numpy(x) for x in (temporal, order, spatial, keep, sorder)))
        if imperfect:
            batch = MappingBatch(batch.temporal, batch.order, batch.spatial, batch.keep, batch.spatial_order,
                                 torch.from_numpy(tres), torch.from_numpy(sres))
        return batch

    def to_mappings(self, workload: Workload, arch: Architecture) -> list[Mapping]:
        dims = list(workload.dims)
        tnames = [t.name for t in workload.tensors]
        out = []
        tem = self.temporal.cpu().tolist()
        ordr = self.order.cpu().tolist()
        spa = self.spatial.cpu().tolist()
        kp = self.keep.cpu().tolist()
        so = self.spatial_order.cpu().tolist()
        tres, sres = (x.cpu().tolist() for x in self.residual_ends())
        for b in range(len(self)):
            levels = []
            for li, lvl in enumerate(arch.levels):
                perm = "".join(sorted(dims, key=lambda d: -ordr[b][li][dims.index(d)]))
                fan = arch.fanout(li)
                spatial = None
                sperm = None
                split = None
                sres_l: tuple[tuple[str, int], ...] = ()
                if fan[0] * fan[1] > 1:
                    sp_perm = sorted(dims, key=lambda d: -so[b][li][dims.index(d)])
                    xs = [d for d in sp_perm if spa[b][li][dims.index(d)][0] > 1]
                    ys = [d for d in sp_perm if spa[b][li][dims.index(d)][1] > 1]
                    rest = [d for d in sp_perm if d not in xs and d not in ys]
                    sperm = "".join(xs + ys + rest)
                    split = len(xs)
                    spatial = tuple((d, spa[b][li][dims.index(d)][0] * spa[b][li][dims.index(d)][1]) for d in dims)
                    sres_l = tuple((d, sres[b][li][i][0] * sres[b][li][i][1]) for i, d in enumerate(dims)
                                   if sres[b][li][i] != spa[b][li][i])
                keep = tuple(t for ti, t in enumerate(tnames) if kp[b][li][ti])
                byp = tuple(t for ti, t in enumerate(tnames) if not kp[b][li][ti])
                tres_l = tuple((d, tres[b][li][i]) for i, d in enumerate(dims) if tres[b][li][i] != tem[b][li][i])
                levels.append(LevelMapping(lvl.name, tuple((d, tem[b][li][i]) for i, d in enumerate(dims)), perm,
                                           spatial, sperm, split, keep, byp, tres_l, sres_l))
            out.append(Mapping(tuple(levels)))
        return out
