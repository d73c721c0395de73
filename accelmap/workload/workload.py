"""Workloads: loop dimensions with bounds and tensors that are affine projections of them.

This is Timeloop's problem shape. A tensor has ranks; each rank is a sum of
``coefficient * dimension`` terms, e.g. the input width of a convolution is
``Wstride * P + Wdilation * R``. Bounds, coefficients and projections are resolved to
integers when the workload is built, so the cost model can turn them into tensors once.

Constructors cover conv2d (stride, dilation, groups, depthwise), linear/matmul and batched
matmul. :func:`read_problem_yaml` reads Timeloop problem files, custom shapes included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from accelmap.errors import AccelmapError
from accelmap.yamlio import require

CNN_DIMS = ("R", "S", "P", "Q", "C", "K", "N")
GROUPED_DIMS = ("R", "S", "P", "Q", "C", "K", "N", "G")


@dataclass(frozen=True)
class Tensor:
    """A data space: ``ranks[r]`` is a tuple of ``(dim, coefficient)`` terms."""

    name: str
    ranks: tuple[tuple[tuple[str, int], ...], ...]
    read_write: bool = False

    def dims(self) -> frozenset[str]:
        return frozenset(d for rank in self.ranks for d, _ in rank)


@dataclass(frozen=True)
class Workload:
    """One layer: named dims with bounds and the tensors projected from them.

    ``coefficients`` keeps the symbolic coefficients (Wstride, ...) for writing the shape
    back as Timeloop YAML; ``shape_ranks`` keeps the symbolic projection likewise.
    """

    name: str
    dims: tuple[str, ...]
    bounds: tuple[int, ...]
    tensors: tuple[Tensor, ...]
    shape_name: str = "custom"
    coefficients: tuple[tuple[str, int], ...] = ()
    shape_ranks: tuple[tuple[tuple[tuple[str, str | None], ...], ...], ...] = field(
        default=(), compare=False, repr=False
    )
    kind: str = "custom"  # conv, depthwise, grouped, matmul, bmm, custom

    def __post_init__(self) -> None:
        if len(self.dims) != len(self.bounds):
            raise AccelmapError(f"workload '{self.name}': {len(self.dims)} dims but {len(self.bounds)} bounds")
        for d, b in zip(self.dims, self.bounds):
            if not isinstance(b, int) or b <= 0:
                raise AccelmapError(
                    f"workload '{self.name}': bound of dimension {d} must be a positive integer, got {b!r}",
                    field=d,
                )
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise AccelmapError(f"workload '{self.name}': duplicate tensor names {names}")
        for t in self.tensors:
            for d in t.dims():
                if d not in self.dims:
                    raise AccelmapError(
                        f"tensor {t.name} uses unknown dimension {d}; expected one of {list(self.dims)}",
                        field=t.name,
                    )

    # ---- queries -------------------------------------------------------------------------
    @property
    def bound(self) -> dict[str, int]:
        return dict(zip(self.dims, self.bounds))

    @property
    def macs(self) -> int:
        return math.prod(self.bounds)

    def tensor(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise AccelmapError(f"unknown tensor {name}; expected one of {[t.name for t in self.tensors]}")

    def tensor_index(self, name: str) -> int:
        return [t.name for t in self.tensors].index(self.tensor(name).name)

    def rank_extent(self, rank: Sequence[tuple[str, int]], extents: Mapping[str, int]) -> int:
        return sum(c * (extents[d] - 1) for d, c in rank) + 1

    def tensor_size(self, name: str, extents: Mapping[str, int] | None = None) -> int:
        """Points in the axis-aligned box the tensor spans for the given dim extents."""
        ext = extents or self.bound
        return math.prod(self.rank_extent(rank, ext) for rank in self.tensor(name).ranks)

    def touched_size(self, name: str) -> int:
        """Points of the tensor some MAC actually reads or writes: per rank, the distinct values
        of its affine index (a stride larger than the kernel leaves holes the box counts).
        Ranks sharing a dim fall back to the box, which is then only an estimate."""
        ranks = self.tensor(name).ranks
        dims = [d for rank in ranks for d, _ in rank]
        if len(dims) != len(set(dims)):
            return self.tensor_size(name)
        n = 1
        for rank in ranks:
            vals = {0}
            for d, c in rank:
                vals = {v + c * i for v in vals for i in range(self.bound[d])}
            n *= len(vals)
        return n

    def signature(self) -> tuple:
        """Identity of the layer's shape, ignoring its name (to map repeated layers once)."""
        return (self.dims, self.bounds, self.tensors)

    def describe(self) -> str:
        return " ".join(f"{d}={b}" for d, b in zip(self.dims, self.bounds))

    def renamed(self, name: str) -> "Workload":
        return Workload(name, self.dims, self.bounds, self.tensors, self.shape_name,
                        self.coefficients, self.shape_ranks, self.kind)


# ---- constructors ------------------------------------------------------------------------

_CNN_SHAPE = {
    "Weights": ((("C", None),), (("K", None),), (("R", None),), (("S", None),)),
    "Inputs": ((("N", None),), (("C", None),), (("R", "Wdilation"), ("P", "Wstride")),
               (("S", "Hdilation"), ("Q", "Hstride"))),
    "Outputs": ((("N", None),), (("K", None),), (("Q", None),), (("P", None),)),
}
_DEPTHWISE_SHAPE = dict(_CNN_SHAPE, Outputs=((("N", None),), (("C", None),), (("K", None),),
                                             (("Q", None),), (("P", None),)))
_GROUPED_SHAPE = {
    "Weights": ((("G", None),), (("C", None),), (("K", None),), (("R", None),), (("S", None),)),
    "Inputs": ((("N", None),), (("G", None),), (("C", None),), (("R", "Wdilation"), ("P", "Wstride")),
               (("S", "Hdilation"), ("Q", "Hstride"))),
    "Outputs": ((("N", None),), (("G", None),), (("K", None),), (("Q", None),), (("P", None),)),
}


def from_shape(
    name: str,
    shape_name: str,
    dims: Sequence[str],
    shape: Mapping[str, tuple],
    instance: Mapping[str, int],
    coefficients: Mapping[str, int],
    read_write: Sequence[str] = ("Outputs",),
    kind: str = "custom",
) -> Workload:
    """Resolve a symbolic shape (projection terms name coefficients) into a Workload."""
    tensors = []
    for tname, ranks in shape.items():
        resolved = tuple(
            tuple((d, int(coefficients[c]) if c is not None else 1) for d, c in rank) for rank in ranks
        )
        tensors.append(Tensor(tname, resolved, tname in read_write))
    bounds = tuple(int(instance[d]) for d in dims)
    return Workload(name, tuple(dims), bounds, tuple(tensors), shape_name,
                    tuple(coefficients.items()), tuple(shape.values()), kind)


def conv2d(
    name: str,
    *,
    C: int,
    K: int,
    P: int,
    Q: int | None = None,
    R: int = 3,
    S: int | None = None,
    N: int = 1,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Workload:
    """A 2-D convolution with output size P x Q (Timeloop models no padding).

    ``C`` and ``K`` are the layer's total input and output channels. ``groups == C`` with
    ``K`` a multiple of ``C`` is depthwise (Timeloop's Depthwise-CNN-Layer shape with K as
    the channel multiplier); other ``groups > 1`` use a shape with a group dimension G.
    """
    Q = P if Q is None else Q
    S = R if S is None else S
    ws, hs = (stride, stride) if isinstance(stride, int) else stride
    wd, hd = (dilation, dilation) if isinstance(dilation, int) else dilation
    coefs = {"Wstride": ws, "Hstride": hs, "Wdilation": wd, "Hdilation": hd}
    for label, v in (("C", C), ("K", K), ("P", P), ("Q", Q), ("R", R), ("S", S), ("N", N),
                     ("stride", min(ws, hs)), ("dilation", min(wd, hd)), ("groups", groups)):
        if not isinstance(v, int) or v <= 0:
            raise AccelmapError(f"conv2d '{name}': {label} must be a positive integer, got {v!r}", field=label)
    if groups == 1:
        inst = dict(R=R, S=S, P=P, Q=Q, C=C, K=K, N=N)
        return from_shape(name, "CNN-Layer", CNN_DIMS, _CNN_SHAPE, inst, coefs, kind="conv")
    if C % groups or K % groups:
        raise AccelmapError(f"conv2d '{name}': groups={groups} must divide C={C} and K={K}", field="groups")
    if groups == C:
        inst = dict(R=R, S=S, P=P, Q=Q, C=C, K=K // C, N=N)
        return from_shape(name, "Depthwise-CNN-Layer", CNN_DIMS, _DEPTHWISE_SHAPE, inst, coefs, kind="depthwise")
    inst = dict(R=R, S=S, P=P, Q=Q, C=C // groups, K=K // groups, N=N, G=groups)
    return from_shape(name, "Grouped-CNN-Layer", GROUPED_DIMS, _GROUPED_SHAPE, inst, coefs, kind="grouped")


def linear(name: str, *, in_features: int, out_features: int, tokens: int = 1, batch: int = 1) -> Workload:
    """A fully connected layer over ``tokens`` rows: Outputs[n,k,p] += W[k,c] * I[n,c,p].

    Tokens go on P (not N) so that dataflow constraints written for convolutions, which
    usually pin N, still leave the token loop free to be tiled and spread.
    """
    w = conv2d(name, C=in_features, K=out_features, P=tokens, Q=1, R=1, S=1, N=batch)
    return Workload(w.name, w.dims, w.bounds, w.tensors, w.shape_name, w.coefficients, w.shape_ranks, "matmul")


def matmul(name: str, *, M: int, K: int, N: int) -> Workload:
    """``C[M,N] = A[M,K] @ B[K,N]``, as a linear layer with M tokens and N outputs."""
    return linear(name, in_features=K, out_features=N, tokens=M)


def batched_matmul(name: str, *, batch: int, M: int, K: int, N: int) -> Workload:
    """``C[b,M,N] = A[b,M,K] @ B[b,K,N]`` (e.g. attention scores per head), batch on G."""
    coefs = {"Wstride": 1, "Hstride": 1, "Wdilation": 1, "Hdilation": 1}
    inst = dict(R=1, S=1, P=M, Q=1, C=K, K=N, N=1, G=batch)
    return from_shape(name, "Grouped-CNN-Layer", GROUPED_DIMS, _GROUPED_SHAPE, inst, coefs, kind="bmm")


# ---- Timeloop problem YAML ---------------------------------------------------------------


def problem_from_dict(doc: dict, src: str, name: str) -> Workload:
    prob = require(doc, "problem", src, "", "a 'problem' mapping with 'shape' and 'instance'")
    if not isinstance(prob, dict):
        raise AccelmapError("expected a mapping with 'shape' and 'instance'", file=src, field="problem")
    # As Timeloop v3: 'shape' may name a built-in shape (CoSA and DOSA write 'shape: cnn-layer'),
    # and without an 'instance' mapping the bounds sit beside it (the older layout).
    shape = prob.get("shape")
    if shape is None:
        import warnings

        warnings.warn(f"{src}: no problem shape; assuming cnn-layer, as Timeloop does", stacklevel=3)
        shape = "cnn-layer"
    if isinstance(shape, str):
        if shape.lower() not in _BUILTIN_SHAPES:
            raise AccelmapError(f"unknown problem shape '{shape}'; expected a shape mapping or one of "
                                f"{sorted(_BUILTIN_SHAPES)}", file=src, field="problem.shape")
        shape = problem_to_dict(_BUILTIN_SHAPES[shape.lower()]())["problem"]["shape"]
    inst = prob["instance"] if "instance" in prob else {k: v for k, v in prob.items() if k != "shape"}
    dims = require(shape, "dimensions", src, "problem.shape", "a list of dimension names")
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        raise AccelmapError("expected a list of dimension names", file=src, field="problem.shape.dimensions")
    if not isinstance(inst, dict):
        raise AccelmapError("expected a mapping from dimension name to bound", file=src, field="problem.instance")
    coefs: dict[str, int] = {}
    for c in shape.get("coefficients", []) or []:
        cname = require(c, "name", src, "problem.shape.coefficients", "a coefficient name")
        coefs[cname] = int(inst.get(cname, c.get("default", 1)))
    for d in dims:
        if d not in inst:
            raise AccelmapError(f"missing bound for dimension {d}; expected a positive integer",
                                file=src, field=f"problem.instance.{d}")
        v = inst[d]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise AccelmapError(f"expected a positive integer, got {v!r}", file=src, field=f"problem.instance.{d}")
    if "densities" in inst:
        check_dense(inst["densities"], src, "problem.instance.densities")
    for k in inst:
        if k not in dims and k not in coefs and k not in ("densities",):
            raise AccelmapError(f"unknown dimension or coefficient {k}; expected one of {dims + list(coefs)}",
                                file=src, field=f"problem.instance.{k}")
    if "data-spaces" not in shape and "data_spaces" in shape:  # both spellings, as Timeloop
        shape = dict(shape, **{"data-spaces": shape["data_spaces"]})
    spaces = require(shape, "data-spaces", src, "problem.shape", "a list of data spaces")
    sym: dict[str, tuple] = {}
    rw: list[str] = []
    for i, ds in enumerate(spaces):
        fpath = f"problem.shape.data-spaces[{i}]"
        dname = require(ds, "name", src, fpath, "a data-space name")
        proj = require(ds, "projection", src, fpath, "a projection (list of ranks)")
        ranks = []
        for rank in proj:
            # A rank is a list of terms; a term is [dim] or [dim, coefficient].
            terms = rank if isinstance(rank[0], list) else [rank]
            rterms = []
            for term in terms:
                d = term[0]
                if d not in dims:
                    raise AccelmapError(f"unknown dimension {d}; expected one of {dims}", file=src,
                                        field=f"{fpath}.projection")
                c = term[1] if len(term) > 1 else None
                if c is not None and c not in coefs:
                    raise AccelmapError(f"unknown coefficient {c}; expected one of {list(coefs)}", file=src,
                                        field=f"{fpath}.projection")
                rterms.append((d, c))
            ranks.append(tuple(rterms))
        sym[dname] = tuple(ranks)
        if ds.get("read-write", ds.get("read_write", False)):
            rw.append(dname)
    shape_name = shape.get("name", "custom")
    kind = {"CNN-Layer": "conv", "Depthwise-CNN-Layer": "depthwise"}.get(shape_name, "custom")
    return from_shape(name, shape_name, dims, sym, inst, coefs, rw, kind)


_BUILTIN_SHAPES = {"cnn-layer": lambda: conv2d("cnn-layer", C=1, K=1, P=1, R=1)}  # Timeloop's problem-shapes/


def problem_to_dict(w: Workload) -> dict:
    """The Timeloop problem YAML for a workload (inverse of :func:`problem_from_dict`)."""
    coefs = dict(w.coefficients)
    spaces = []
    for t, sym in zip(w.tensors, w.shape_ranks or [None] * len(w.tensors)):
        if sym is None:  # built without symbols: write literal coefficients as named constants
            sym = tuple(tuple((d, None) if c == 1 else (d, f"{t.name}_{d}_c") for d, c in r) for r in t.ranks)
            for r in t.ranks:
                for d, c in r:
                    if c != 1:
                        coefs[f"{t.name}_{d}_c"] = c
        proj = [[[d] if c is None else [d, c] for d, c in rank] for rank in sym]
        entry = {"name": t.name, "projection": proj}
        if t.read_write:
            entry["read-write"] = True
        spaces.append(entry)
    shape = {"name": w.shape_name, "dimensions": list(w.dims),
             "coefficients": [{"name": c, "default": 1} for c in coefs],
             "data-spaces": spaces}
    inst = dict(zip(w.dims, w.bounds))
    inst.update(coefs)
    return {"problem": {"shape": shape, "instance": inst}}


def check_dense(densities, src: str, field: str) -> None:
    """Timeloop's sparse extension gives tensors densities below 1; accelmap models dense tensors
    only, so anything but density 1 is refused rather than silently evaluated as dense."""
    items = densities.items() if isinstance(densities, dict) else [("", densities)]
    for name, d in items:
        value = d.get("density") if isinstance(d, dict) else d
        try:
            dense = float(value) == 1.0
        except (TypeError, ValueError):
            dense = False
        if not dense:
            raise AccelmapError(f"density {value!r} is not modelled: accelmap evaluates dense tensors only (sparse "
                                f"tensors and their optimizations are not supported); remove '{field.split('.')[-1]}' "
                                f"or set every density to 1", file=src, field=f"{field}.{name}" if name else field)

