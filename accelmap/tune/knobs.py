"""Knob spaces in AutoTVM's shape: named knobs, each a list of options; a configuration picks
one option per knob.

A configuration has three equivalent forms:

* a **point** ``[K]`` int64: the option index of each knob (batches are ``[n, K]``);
* an **index**: one integer, mixed radix with the first knob varying fastest (AutoTVM's
  ``ConfigSpace.get(index)`` order);
* a **config**: ``{knob name: option value}``, JSON-friendly, what the tuning log records.

Two sources of spaces:

* :func:`vta_conv2d_space` is AutoTVM's VTA ``conv2d_packed`` template: two-way splits
  ``tile_b``, ``tile_h``, ``tile_w``, ``tile_ci``, ``tile_co`` over the divisors of each axis of
  the packed layout (channels in blocks of 16) and the virtual-thread knobs ``oc_nthread`` and
  ``h_nthread`` in {1, 2}. A split knob's value is the inner extent (the tile size); AutoTVM
  records the same split as ``[-1, value]``.
* :func:`knob_space_from_mapping_space` turns any :class:`~accelmap.mapspace.space.MappingSpace` into
  knobs: the factorization of each dim over the levels, the loop order of each level, the mesh
  axis of each free spatial dim and each free keep/bypass bit.

Features for the ranking model follow AutoTVM's ``knob`` features (``get_flatten_feature``):
each split contributes log2 of its outer and inner extents, every other knob its value (or
option index when the value is not a number). They say nothing about validity.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from accelmap.errors import AccelmapError

ENUMERATION_LIMIT = 2_000_000  # configurations; above this `enumerate` refuses


@dataclass(frozen=True)
class Knob:
    """One knob. ``kind``: "split" (options are inner extents of an axis of length ``extent``),
    "tiling" (options are tuples of factors), "order" (options are permutations), "other"."""

    name: str
    options: tuple
    kind: str = "other"
    extent: int = 0

    def __post_init__(self) -> None:
        if not self.options:
            raise AccelmapError(f"knob '{self.name}' has no options", field=self.name)

    def __len__(self) -> int:
        return len(self.options)

    def value(self, i: int) -> Any:
        v = self.options[i]
        return list(v) if isinstance(v, tuple) else v

    def feature_width(self) -> int:
        if self.kind == "split":
            return 2
        if self.kind in ("tiling", "order"):
            return len(self.options[0])
        return 1

    def feature_table(self) -> np.ndarray:
        """[len(options), feature_width] float32."""
        if self.kind == "split":
            inner = np.log2(np.array(self.options, dtype=np.float64))
            return np.stack([np.log2(self.extent) - inner, inner], 1).astype(np.float32)
        if self.kind == "tiling":
            return np.log2(np.array(self.options, dtype=np.float64)).astype(np.float32)
        if self.kind == "order":
            return np.array(self.options, dtype=np.float32)
        if all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in self.options):
            return np.array(self.options, dtype=np.float32)[:, None]
        return np.arange(len(self.options), dtype=np.float32)[:, None]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class KnobSpace:
    """The product of ``knobs``. ``meta`` carries what measurers and validity models need to
    interpret a configuration (the template name, the layer's packed shape, a mapping space)."""

    def __init__(self, name: str, knobs: Sequence[Knob], meta: dict | None = None):
        self.name = name
        self.knobs = tuple(knobs)
        names = [k.name for k in self.knobs]
        if len(set(names)) != len(names):
            raise AccelmapError(f"knob space '{name}': duplicate knob names {names}")
        self.meta = dict(meta or {})
        self.radix = np.array([len(k) for k in self.knobs], dtype=np.int64)
        self.size = math.prod(len(k) for k in self.knobs)
        strides, s = [], 1
        for k in self.knobs:
            strides.append(s)
            s *= len(k)
        self._strides_py = strides
        self._small = self.size < 2**62
        self.strides = np.array(strides, dtype=np.int64) if self._small else None
        self._tables = [k.feature_table() for k in self.knobs]
        self.n_features = sum(t.shape[1] for t in self._tables)

    def __len__(self) -> int:
        return self.size

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def knob(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise AccelmapError(f"unknown knob '{name}'; expected one of {list(self.names)}")

    # ---- forms of a configuration ---------------------------------------------------------
    def indices(self, points: np.ndarray) -> list[int]:
        """[n, K] points -> n indices (Python ints)."""
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(self.knobs))
        if self._small:
            return [int(x) for x in points @ self.strides]
        return [sum(int(p) * s for p, s in zip(row, self._strides_py)) for row in points]

    def keys(self, points: np.ndarray) -> np.ndarray:
        """[n] int64 keys equal to the indices when the space is small (dedup sets use them)."""
        points = np.asarray(points, dtype=np.int64)
        if self._small:
            return points @ self.strides
        return np.array(self.indices(points), dtype=object)

    def points(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """n indices -> [n, K] points."""
        idx = list(int(i) for i in np.asarray(indices, dtype=object).reshape(-1))
        for i in idx:
            if not 0 <= i < self.size:
                raise AccelmapError(f"configuration index {i} is outside the space of {self.size:,}")
        if self._small:
            a = np.array(idx, dtype=np.int64)
            return (a[:, None] // self.strides[None, :]) % self.radix[None, :]
        out = np.empty((len(idx), len(self.knobs)), dtype=np.int64)
        for r, i in enumerate(idx):
            for c, k in enumerate(self.knobs):
                out[r, c] = i % len(k)
                i //= len(k)
        return out

    def config(self, point: Sequence[int]) -> dict:
        """A point -> {knob: value}."""
        return {k.name: k.value(int(i)) for k, i in zip(self.knobs, point)}

    def configs(self, points: np.ndarray) -> list[dict]:
        return [self.config(p) for p in np.asarray(points)]

    def point_of(self, config: dict) -> np.ndarray:
        """{knob: value} -> point; a clear error for a missing knob or an unknown value."""
        if not isinstance(config, dict):
            raise AccelmapError(f"expected a configuration mapping knob names to values, got {config!r}")
        out = np.empty(len(self.knobs), dtype=np.int64)
        for c, k in enumerate(self.knobs):
            if k.name not in config:
                raise AccelmapError(f"configuration lacks knob '{k.name}'", field=k.name)
            v = config[k.name]
            v = tuple(v) if isinstance(v, list) else v
            try:
                out[c] = k.options.index(v)
            except ValueError:
                raise AccelmapError(f"value {config[k.name]!r} is not an option of knob '{k.name}'",
                                    field=k.name) from None
        return out

    # ---- sampling, enumeration, moves -----------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """[n, K] uniform points (with repetition)."""
        return (rng.random((n, len(self.knobs))) * self.radix[None, :]).astype(np.int64)

    def enumerate(self) -> np.ndarray:
        """[size, K] every point, in index order."""
        if self.size > ENUMERATION_LIMIT:
            raise AccelmapError(f"knob space '{self.name}' has {self.size:,} configurations, above the "
                                f"enumeration limit of {ENUMERATION_LIMIT:,}")
        return self.points(np.arange(self.size))

    def random_walk(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One move per point: a random knob (with more than one option) changes to another
        random option (AutoTVM's ``ConfigSpace.random_walk``)."""
        points = np.asarray(points, dtype=np.int64)
        n = len(points)
        movable = np.nonzero(self.radix > 1)[0]
        if not len(movable):
            return points.copy()
        which = movable[rng.integers(0, len(movable), n)]
        r = self.radix[which]
        step = 1 + (rng.random(n) * (r - 1)).astype(np.int64)
        out = points.copy()
        rows = np.arange(n)
        out[rows, which] = (out[rows, which] + step) % r
        return out

    def features(self, points: np.ndarray) -> np.ndarray:
        """[n, F] float32 knob features (see the module docstring)."""
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(self.knobs))
        return np.concatenate([t[points[:, c]] for c, t in enumerate(self._tables)], 1)

    def describe(self) -> str:
        return " x ".join(f"{k.name}[{len(k)}]" for k in self.knobs) + f" = {self.size:,}"


# ---- the VTA conv2d template --------------------------------------------------------------

@dataclass(frozen=True)
class PackedConv:
    """A conv2d in VTA's packed layout: N batch, C/K channels (multiples of BLOCK), H/W output
    rows/columns, kh/kw kernel, sh/sw strides. Channel axes count blocks of ``block``."""

    name: str
    N: int
    C: int
    K: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int
    sw: int
    block: int = 16

    @property
    def cb(self) -> int:
        return self.C // self.block

    @property
    def kb(self) -> int:
        return self.K // self.block

    @property
    def in_h(self) -> int:
        return (self.H - 1) * self.sh + self.kh

    @property
    def in_w(self) -> int:
        return (self.W - 1) * self.sw + self.kw

    @property
    def macs(self) -> int:
        return self.N * self.C * self.K * self.H * self.W * self.kh * self.kw

    def to_dict(self) -> dict:
        return {"name": self.name, "N": self.N, "C": self.C, "K": self.K, "H": self.H, "W": self.W,
                "kh": self.kh, "kw": self.kw, "sh": self.sh, "sw": self.sw}


def packed_conv(workload, block: int = 16) -> PackedConv:
    """A workload -> its packed conv, or an AccelmapError saying why VTA's template cannot take it.

    Timeloop's conv shape: P is the output width (with R, the kernel width), Q the height (with S).
    A linear/matmul layer is a 1x1 conv over its tokens."""
    if workload.kind not in ("conv", "matmul"):
        raise AccelmapError(f"layer '{workload.name}' is a {workload.kind} layer; the VTA conv2d template "
                            f"takes dense convolutions and matmuls only")
    b = workload.bound
    coef = dict(workload.coefficients)
    if coef.get("Wdilation", 1) != 1 or coef.get("Hdilation", 1) != 1:
        raise AccelmapError(f"layer '{workload.name}' is dilated; the VTA conv2d template has no dilation")
    for ch in ("C", "K"):
        if b[ch] % block:
            raise AccelmapError(f"layer '{workload.name}': {ch}={b[ch]} is not a multiple of VTA's "
                                f"{block}-channel block (VTA runs such layers on the CPU)", field=ch)
    return PackedConv(workload.name, b["N"], b["C"], b["K"], b["Q"], b["P"], b["S"], b["R"],
                      coef.get("Hstride", 1), coef.get("Wstride", 1), block)


VTA_KNOBS = ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread")


def vta_conv2d_space(layer, block: int = 16) -> KnobSpace:
    """AutoTVM's VTA ``conv2d_packed`` knobs for a workload (or a :class:`PackedConv`)."""
    conv = layer if isinstance(layer, PackedConv) else packed_conv(layer, block)
    knobs = [
        Knob("tile_b", tuple(divisors(conv.N)), "split", conv.N),
        Knob("tile_h", tuple(divisors(conv.H)), "split", conv.H),
        Knob("tile_w", tuple(divisors(conv.W)), "split", conv.W),
        Knob("tile_ci", tuple(divisors(conv.cb)), "split", conv.cb),
        Knob("tile_co", tuple(divisors(conv.kb)), "split", conv.kb),
        Knob("oc_nthread", (1, 2)),
        Knob("h_nthread", (1, 2)),
    ]
    return KnobSpace(f"vta_conv2d:{conv.name}", knobs, {"template": "vta_conv2d", "conv": conv})


# ---- any mapping space as knobs -------------------------------------------------------------

def knob_space_from_mapping_space(space, max_orders: int = 5040) -> KnobSpace:
    """Knobs of a :class:`~accelmap.mapspace.space.MappingSpace`: ``tile.D`` (the factor of dim D in every
    slot, from the space's factor tables), ``order.LEVEL`` (the permutation, outermost first, of
    the dims that may move at that level), ``axis.LEVEL.D`` and ``keep.LEVEL.TENSOR`` for free
    choices. :func:`mapping_genomes` turns points back into genomes."""
    lay = space.layout
    w, arch = space.workload, space.arch
    dims = list(w.dims)
    knobs: list[Knob] = []
    tile_dims = []
    for d, table in enumerate(space.tables):
        if len(table) > 1:
            knobs.append(Knob(f"tile.{dims[d]}", tuple(tuple(int(x) for x in row) for row in table.tolist()),
                              "tiling"))
            tile_dims.append(d)
    free_by_level = []
    for li, lv in enumerate(arch.levels):
        inner = space.fixed_inner[li]
        free = [d for d in range(lay.D) if d not in inner and w.bounds[d] > 1]
        free_by_level.append(free)
        if len(free) > 1:
            if math.factorial(len(free)) > max_orders:
                raise AccelmapError(f"level {lv.name} has {len(free)} free loops ({math.factorial(len(free)):,} "
                                    f"orders, limit {max_orders:,}); constrain its permutation")
            perms = tuple(tuple(p) for p in itertools.permutations(range(len(free))))
            knobs.append(Knob(f"order.{lv.name}", perms, "order"))
    axis_free = [(f, d) for f in range(lay.F) for d in range(lay.D)
                 if space.axis_fixed[f, d] < 0 and bool((space.tables[d][:, lay.L + f] > 1).any())]
    for f, d in axis_free:
        knobs.append(Knob(f"axis.{arch.levels[space.fan_levels[f]].name}.{dims[d]}", (0, 1)))
    keep_free = [(li, ti) for li, ti in (space.keep_fixed < 0).nonzero().tolist()]
    tnames = [t.name for t in w.tensors]
    for li, ti in keep_free:
        knobs.append(Knob(f"keep.{arch.levels[li].name}.{tnames[ti]}", (0, 1)))
    meta = {"template": "mapping", "mapping_space": space, "tile_dims": tile_dims, "free_by_level": free_by_level,
            "axis_free": axis_free, "keep_free": keep_free}
    if not knobs:
        knobs.append(Knob("fixed", (0,)))
    return KnobSpace(f"mapping:{w.name}@{arch.name}", knobs, meta)


def mapping_genomes(ks: KnobSpace, points: np.ndarray):
    """[n, K] points of a :func:`knob_space_from_mapping_space` space -> [n, G] genomes (torch)."""
    import torch

    space = ks.meta["mapping_space"]
    lay = space.layout
    points = np.asarray(points, dtype=np.int64).reshape(-1, len(ks.knobs))
    n = len(points)
    col = {k.name: c for c, k in enumerate(ks.knobs)}
    dims = list(space.workload.dims)
    fac = torch.stack([t[torch.zeros(n, dtype=torch.int64)] for t in space.tables], 1)  # [n, D, S]
    for d in ks.meta["tile_dims"]:
        fac[:, d] = space.tables[d][torch.from_numpy(points[:, col[f"tile.{dims[d]}"]])]
    order = torch.zeros(n, lay.L, lay.D, dtype=torch.int64)
    for li, lv in enumerate(space.arch.levels):
        free = ks.meta["free_by_level"][li]
        inner = space.fixed_inner[li]
        rest = [d for d in range(lay.D) if d not in free and d not in inner]
        name = f"order.{lv.name}"
        perms = np.array(ks.knob(name).options, dtype=np.int64)[points[:, col[name]]] if name in col else \
            np.zeros((n, len(free)), dtype=np.int64)
        for p, d in enumerate(rest):
            order[:, li, d] = p
        for j, d in enumerate(free):  # perms[:, j]: the position among the free dims of free dim j
            order[:, li, d] = len(rest) + torch.from_numpy(perms[:, j])
        for j, d in enumerate(inner):
            order[:, li, d] = lay.D - 1 - j
    axis = space.axis_fixed.clamp(min=0)[None].repeat(n, 1, 1)
    for f, d in ks.meta["axis_free"]:
        axis[:, f, d] = torch.from_numpy(points[:, col[f"axis.{space.arch.levels[space.fan_levels[f]].name}.{dims[d]}"]])
    keep = space.keep_fixed.clamp(min=0)[None].repeat(n, 1, 1)
    tnames = [t.name for t in space.workload.tensors]
    for li, ti in ks.meta["keep_free"]:
        keep[:, li, ti] = torch.from_numpy(points[:, col[f"keep.{space.arch.levels[li].name}.{tnames[ti]}"]])
    return torch.cat([fac.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1)

