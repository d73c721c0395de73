"""The ONNX graph reader: the multiply-accumulate layers of an ONNX model as a Network.

ONNX's own shape inference gives every tensor its static shape; each MAC-bearing node then
becomes one workload built with the same constructors as the zoo, so an imported
ResNet block or transformer encoder layer has the zoo's shapes and MAC counts:

- ``Conv`` (1-D and 2-D): :func:`conv2d` with P/Q the inferred OUTPUT width/height (padding
  is thereby accounted for), R/S the kernel width/height, strides, dilations and groups
  (``group == C`` is depthwise, other groups use the G dimension).
- ``Gemm`` and ``MatMul`` against a constant (an initializer, a ``Constant`` or something
  computed from constants only): :func:`linear` with tokens = the product of all the other
  output dimensions. ``MatMul`` of two activations with batch dimensions (attention's
  ``Q @ K^T`` and ``softmax @ V``): :func:`batched_matmul` with batch = the product of the
  broadcast leading dimensions (batch x heads).
- A packed projection (``nn.MultiheadAttention``'s ``in_proj``, timm's ``qkv``, GPT-2's
  ``c_attn``) whose output features are cut into n equal parts right after it (a ``Split``,
  ``Slice``s, or a ``Reshape`` to ``[..., n, features/n]`` followed by ``Gather``s or a
  ``Split`` on that axis; reshapes that only regroup the token axes, as around HF's
  ``Conv1D`` ``addmm``, are followed through) becomes n linears, as the zoo lists q, k and v
  separately.

Other ops that do MACs (``ConvTranspose``, ``LSTM``, ``Einsum``, 3-D convolutions, ...) are
not modelled: they are counted in :attr:`OnnxImport.skipped` so a caller can say once what
was left out. Ops without MACs (activations, normalisation, pooling, softmax, reshapes) are
ignored, as in the zoo.

Layer names come from the MAC op itself, never from a neighbour: its weight initializer
(``conv1.weight`` -> ``conv1``) when no other node uses it; else the torch module path that
``torch.onnx.export(dynamo=True)`` records on the node (``encoder.layer.0.attention.self.query``;
an op between activations adds its own name: ``...attention.self.matmul``); else its bias
initializer when only its own ``Add`` uses it; else the TorchScript scopes in the node name
(``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``),
the node name (without the dynamo exporter's ``node_`` prefix), or ``OpType_index``. An
initializer used by other nodes may be a deduplicated copy named after some other module.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from accelmap.errors import AccelmapError
from accelmap.workload.network import Layer, Network
from accelmap.workload.workload import Workload, batched_matmul, conv2d, linear

# Ops that do multiply-accumulates but have no workload model here (reported, not mapped).
UNSUPPORTED_MAC_OPS = frozenset({
    "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "MatMulInteger", "QLinearMatMul",
    "LSTM", "GRU", "RNN", "Einsum", "Attention", "MultiHeadAttention", "GroupQueryAttention",
    "QAttention", "FusedConv", "FusedGemm", "FusedMatMul", "QGemm", "DynamicQuantizeMatMul",
    "MatMulNBits",
})
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Elementwise ops a packed projection's output may pass through before it is cut into
# q, k, v (a bias, a scale: only with constant other operands).
_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Identity", "Cast"})


@dataclass(frozen=True)
class OnnxImport:
    """An imported network and the MAC-bearing ops left out: ``{op type: occurrences}``."""

    network: Network
    skipped: dict[str, int] = field(default_factory=dict)

    def warning(self) -> str | None:
        """One line naming the skipped ops, e.g. 'skipped 3 unsupported ops: ConvTranspose x2, LSTM x1'."""
        if not self.skipped:
            return None
        total = sum(self.skipped.values())
        ops = ", ".join(f"{op} x{n}" for op, n in self.skipped.items())
        return f"skipped {total} unsupported op{'s' if total > 1 else ''}: {ops}"


def read_onnx(path: str | Path) -> OnnxImport:
    """Read an ONNX file into a Network named after the file (weights are not loaded)."""
    import onnx
    from google.protobuf.message import DecodeError

    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise AccelmapError(f"{'is a directory' if p.is_dir() else 'no such file'}; expected an ONNX model (.onnx)",
                            file=src)
    try:
        model = onnx.load(src, load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise AccelmapError(f"not a readable ONNX model ({type(exc).__name__}: {exc}); "
                            "expected a file written by onnx.save or torch.onnx.export", file=src) from None
    return read_model(model, p.stem, src)


def read_model(model, name: str, src: str = "<onnx model>") -> OnnxImport:
    """Import an in-memory ``onnx.ModelProto``; ``src`` names it in error messages."""
    import onnx

    if not isinstance(model, onnx.ModelProto) or model.ir_version <= 0 or not model.opset_import:
        raise AccelmapError("not an ONNX model (no IR version or opset); expected a file written by "
                            "onnx.save or torch.onnx.export", file=src)
    if not model.graph.node:
        raise AccelmapError("the ONNX graph has no nodes; expected a model with layers", file=src)
    try:
        if model.functions:
            import onnx.inliner

            model = onnx.inliner.inline_local_functions(model)
        model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises several types (InferenceError, ValidationError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AccelmapError(f"ONNX shape inference failed: {first}; expected a valid model with static "
                            "input shapes", file=src) from None
    return _GraphReader(model.graph, src).read(name)


class _GraphReader:
    """Shapes, constants and users of one (shape-inferred) graph; turns its nodes into layers."""

    def __init__(self, graph, src: str):
        from onnx import numpy_helper

        self.src = src
        self.shapes: dict[str, tuple] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                             for d in t.shape.dim)
        self.values: dict[str, object] = {}  # small constant arrays (indices, axes, split sizes)
        self.initializers: set[str] = set()
        for init in graph.initializer:
            self.initializers.add(init.name)
            self.shapes[init.name] = tuple(init.dims)
            if init.data_location != init.EXTERNAL and math.prod(init.dims) <= 64:
                self.values[init.name] = numpy_helper.to_array(init)
        self.constant: set[str] = set(self.initializers)
        self.users: dict[str, list] = {}
        for node in graph.node:
            for i in node.input:
                if i:
                    self.users.setdefault(i, []).append(node)
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        self.values[node.output[0]] = numpy_helper.to_array(a.t)
                        self.shapes[node.output[0]] = tuple(a.t.dims)
                self.constant.update(node.output)
            elif node.input and all(i in self.constant for i in node.input if i):
                self.constant.update(node.output)  # folded weights, e.g. Transpose(W)
        self.nodes = list(graph.node)

    # ---- shapes --------------------------------------------------------------------------
    def static_shape(self, value: str, node, index: int) -> tuple[int, ...]:
        """The inferred shape of ``value`` (an input or output of ``node``), all sizes fixed."""
        shape = self.shapes.get(value)
        what = f"{node.op_type} '{node.name or f'{node.op_type}_{index}'}'"
        if shape is None:
            raise AccelmapError(f"{what}: shape inference could not determine the shape of '{value}'; expected "
                                "static shapes (export the model with a fixed input size)", file=self.src,
                                field=f"graph.node[{index}]")
        if not all(isinstance(d, int) and d > 0 for d in shape):
            dims = ", ".join(str(d) if d is not None else "?" for d in shape)
            raise AccelmapError(f"{what}: tensor '{value}' has a dynamic shape [{dims}]; expected fixed sizes "
                                "(export the model with a fixed input size, e.g. batch 1)", file=self.src,
                                field=f"graph.node[{index}]")
        return shape

    def _known(self, value: str) -> tuple[int, ...] | None:
        s = self.shapes.get(value)
        return s if s is not None and all(isinstance(d, int) for d in s) else None

    def _attr(self, node, name: str, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    # ---- the graph -----------------------------------------------------------------------
    def read(self, name: str) -> OnnxImport:
        layers: list[Layer] = []
        skipped: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        for index, node in enumerate(self.nodes):
            op = node.op_type
            if node.domain not in _DEFAULT_DOMAINS:
                if op in UNSUPPORTED_MAC_OPS or op in ("Conv", "Gemm", "MatMul"):
                    skipped[f"{node.domain}.{op}"] += 1
                continue
            if op in ("Conv", "Gemm", "MatMul"):
                lname = self._layer_name(node, index)
                seen[lname] += 1
                if seen[lname] > 1:  # the same module called again (weight sharing)
                    lname = f"{lname}_{seen[lname]}"
                workloads = getattr(self, f"_{op.lower()}")(node, index, lname)
                if workloads is None:
                    skipped[self._conv_kind(node)] += 1
                    continue
                layers.extend(Layer(w) for w in workloads)
            elif op in UNSUPPORTED_MAC_OPS or (op in ("If", "Loop", "Scan") and _has_macs(node)):
                skipped[op] += 1
        return OnnxImport(Network(name, tuple(layers)), dict(skipped))

    def _conv(self, node, index: int, name: str) -> list[Workload] | None:
        rank = self.shapes.get(node.input[0])
        if rank is not None and len(rank) not in (3, 4):  # 3-D convolutions are not modelled
            return None
        x = self.static_shape(node.input[0], node, index)
        nd = len(x) - 2
        w = self.static_shape(node.input[1], node, index)
        y = self.static_shape(node.output[0], node, index)
        groups = int(self._attr(node, "group", 1))
        strides = list(self._attr(node, "strides", [1] * nd))
        dilations = list(self._attr(node, "dilations", [1] * nd))
        if nd == 1:  # a 1-D convolution is a 2-D one of height 1
            kernel, out, strides, dilations = (w[2], 1), (y[2], 1), strides + [1], dilations + [1]
        else:  # ONNX orders spatial axes (height, width); P/R/stride[0] are the width
            kernel, out = (w[3], w[2]), (y[3], y[2])
            strides, dilations = strides[::-1], dilations[::-1]
        return [conv2d(name, C=x[1], K=y[1], P=out[0], Q=out[1], R=kernel[0], S=kernel[1], N=x[0],
                       stride=(strides[0], strides[1]), dilation=(dilations[0], dilations[1]), groups=groups)]

    def _conv_kind(self, node) -> str:
        return f"Conv ({len(self.shapes[node.input[0]]) - 2}-D)"

    def _gemm(self, node, index: int, name: str) -> list[Workload]:
        a = self.static_shape(node.input[0], node, index)
        b = self.static_shape(node.input[1], node, index)
        a = a[::-1] if self._attr(node, "transA", 0) else a
        b = b[::-1] if self._attr(node, "transB", 0) else b
        M, K, N = a[0], a[1], b[1]
        if node.input[0] in self.constant and node.input[1] not in self.constant:  # W @ X
            return [linear(name, in_features=K, out_features=M, tokens=N)]
        return self._linears(name, node.output[0], in_features=K, out_features=N, tokens=M)

    def _matmul(self, node, index: int, name: str) -> list[Workload]:
        import numpy as np

        a = self.static_shape(node.input[0], node, index)
        b = self.static_shape(node.input[1], node, index)
        a = (1,) + a if len(a) == 1 else a
        b = b + (1,) if len(b) == 1 else b
        if a[-1] != b[-2]:
            raise AccelmapError(f"MatMul '{name}': operands {list(a)} and {list(b)} do not agree on the inner "
                                "dimension", file=self.src, field=f"graph.node[{index}]")
        M, K, N = a[-2], a[-1], b[-1]
        batch = math.prod(np.broadcast_shapes(a[:-2], b[:-2]))
        a_const, b_const = node.input[0] in self.constant, node.input[1] in self.constant
        if a_const and not b_const and len(a) == 2:  # W @ X: tokens run along X's columns
            return [linear(name, in_features=K, out_features=M, tokens=batch * N)]
        if len(b) == 2:  # X @ W, or a right operand shared by the whole batch
            return self._linears(name, node.output[0], in_features=K, out_features=N, tokens=batch * M)
        return [batched_matmul(name, batch=batch, M=M, K=K, N=N)]

    def _linears(self, name: str, out: str, *, in_features: int, out_features: int, tokens: int) -> list[Workload]:
        n = self._chunks(out)
        if n == 1:
            return [linear(name, in_features=in_features, out_features=out_features, tokens=tokens)]
        return [linear(f"{name}.{i}", in_features=in_features, out_features=out_features // n, tokens=tokens)
                for i in range(n)]

    # ---- packed projections (q, k, v in one weight) --------------------------------------
    def _chunks(self, out: str) -> int:
        """Into how many equal parts the last axis of ``out`` is cut downstream (1: not cut).

        Follows a chain of shape ops, tracking the feature axis (``pos``), until a ``Split``
        (or ``Slice``s, ``Gather``s) cutting it into equal parts, or a ``Reshape`` to
        ``[..., n, features/n, ...]`` and then such a cut of the new axis of size n
        (``unbind``). Anything else means one linear.
        """
        shape = self._known(out)
        if not shape:
            return 1
        value, pos, n = out, len(shape) - 1, 1
        for _ in range(16):
            users = self.users.get(value, [])
            src = self._known(value)
            if src is None or not users:
                return 1
            if len(users) > 1 or users[0].op_type in ("Gather", "Slice"):  # unbind, select, slices
                k = self._parts(users, pos, src)
                return 1 if k is None or k < 2 else (n if n > 1 else k)
            u = users[0]
            nxt = u.output[0]
            dst = self._known(nxt)
            if dst is None:
                return 1
            if u.op_type == "Split":
                axis = int(self._attr(u, "axis", 0)) % len(src)
                parts = [self._known(o) for o in u.output]
                if axis != pos or any(p is None or p[axis] != parts[0][axis] for p in parts):
                    return 1
                return n if n > 1 else len(u.output)
            if u.op_type in _ELEMENTWISE:
                if any(i != value and i and i not in self.constant for i in u.input):
                    return 1
                pos += len(dst) - len(src)
            elif u.op_type == "Transpose":
                perm = list(self._attr(u, "perm", list(range(len(src)))[::-1]))
                pos = perm.index(pos)
            elif u.op_type in ("Unsqueeze", "Squeeze"):
                axes = self._axes(u, len(dst) if u.op_type == "Unsqueeze" else len(src))
                if u.op_type == "Unsqueeze":
                    if axes is None:
                        return 1
                    pos = [i for i in range(len(dst)) if i not in axes][pos]
                else:
                    if axes is None:
                        axes = {i for i, d in enumerate(src) if d == 1}
                    if pos in axes:
                        return 1
                    pos -= sum(a < pos for a in axes)
            elif u.op_type == "Reshape" and n == 1 and pos == len(src) - 1 and dst[-1] == src[-1] \
                    and math.prod(dst) == math.prod(src):
                # [tokens, F] -> [batch, seq, F] (HF's Conv1D flattens around its addmm):
                # the features stay the last axis
                pos = len(dst) - 1
            elif u.op_type == "Reshape" and n == 1 and pos == len(src) - 1:
                # [..., F] -> [..., n, F/n, ...]: the leading axes kept, the features cut
                if len(dst) < pos + 2 or dst[:pos] != src[:pos] or math.prod(dst[pos:]) != src[pos]:
                    return 1
                n = dst[pos]
                if n < 2:
                    return 1
            else:
                return 1
            value = nxt
        return 1

    def _parts(self, users, pos: int, shape: tuple[int, ...]) -> int | None:
        """How many equal pieces the ``Gather``s and ``Slice``s in ``users`` cut axis ``pos``
        of a tensor of ``shape`` into, if together they take all of it once; else None."""
        rank, length = len(shape), shape[pos]
        pieces = []
        for u in users:
            if u.op_type == "Gather":
                v = self.values.get(u.input[1])
                if v is None or v.ndim != 0 or int(self._attr(u, "axis", 0)) % rank != pos:
                    return None
                pieces.append((int(v) % length, int(v) % length + 1))
            elif u.op_type == "Slice" and len(u.input) >= 4:
                starts, ends, axes = (self.values.get(i) for i in u.input[1:4])
                steps = self.values.get(u.input[4]) if len(u.input) > 4 and u.input[4] else None
                if any(v is None or v.size != 1 for v in (starts, ends, axes)) \
                        or int(axes.reshape(-1)[0]) % rank != pos or (steps is not None and steps.reshape(-1)[0] != 1):
                    return None
                b, e = (int(v.reshape(-1)[0]) for v in (starts, ends))
                b, e = (min(max(v + length if v < 0 else v, 0), length) for v in (b, e))
                pieces.append((b, e))
            else:
                return None
        pieces.sort()
        tiled = pieces[0][0] == 0 and pieces[-1][1] == length and all(
            a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
        return len(pieces) if tiled and len({e - b for b, e in pieces}) == 1 else None

    def _axes(self, node, rank: int) -> set[int] | None:
        axes = self._attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            v = self.values.get(node.input[1])
            axes = None if v is None else v.reshape(-1).tolist()
        return None if axes is None else {int(a) % rank for a in axes}

    # ---- names ---------------------------------------------------------------------------
    def _layer_name(self, node, index: int) -> str:
        """The name of the module or weight whose op this is, never of an unrelated node.

        Exporters deduplicate equal initializers (torch's drops every all-zero bias of a
        freshly built BERT but the first, ``embeddings.LayerNorm.bias``), so an initializer's
        name is trusted only where that initializer belongs to this op alone: a weight used
        by this MAC node only, or a bias used by this node's own ``Add`` only. In between,
        the module path torch.export records on the node (``pkg.torch.onnx.name_scopes``).
        """
        weights = [i for i in node.input if i in self.initializers]
        for w in weights:
            if len(self.users.get(w, [])) == 1 and (m := _param_owner(w)):
                return m
        scoped = self._scope_name(node)
        if scoped:
            return scoped
        for u in self.users.get(node.output[0], []):
            if u.op_type != "Add":
                continue
            for b in u.input:
                if b in self.initializers and len(self.users.get(b, [])) == 1 and (m := _param_owner(b)):
                    return m
        if node.name.startswith("/"):  # TorchScript scopes: /layer1/layer1.0/conv1/Conv
            return self._torchscript_name(node)
        # a weight shared by several MAC ops of this kind (a module called twice)
        for w in weights:
            if all(u.op_type == node.op_type for u in self.users[w]) and (m := _param_owner(w)):
                return m
        name = node.name
        if name.startswith("node_") and len(name) > 5:  # torch's dynamo exporter prefixes every node
            name = name[5:]
        return name or f"{node.op_type}_{index}"

    def _torchscript_name(self, node) -> str:
        """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``: the module path from the scopes
        (a scope that repeats its parent's name, ``layer1`` then ``layer1.0``, replaces it); an op
        between activations keeps its own name (``/encoder/layer.0/attention/self/MatMul_1`` ->
        ``encoder.layer.0.attention.self.MatMul_1``)."""
        *scopes, last = [p for p in node.name.split("/") if p]
        path: list[str] = []
        for part in scopes:
            if path and part.startswith(path[-1] + "."):
                path[-1] = part
            else:
                path.append(part)
        module = ".".join(path)
        weighted = any(i in self.constant for i in node.input if i)
        if module and weighted and re.fullmatch(rf"{node.op_type}(_\d+)?", last):
            return module
        return f"{module}.{last}" if module else last

    def _scope_name(self, node) -> str | None:
        """The innermost torch module path that torch.export recorded for ``node``: the module
        itself for an op with a constant operand (its weight: ``encoder.layer.0.attention.self.query``),
        the module plus the op for one between activations (``...attention.self.matmul``)."""
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if not scopes:
            return None
        try:
            scopes = ast.literal_eval(scopes)
        except (ValueError, SyntaxError):
            return None
        if not isinstance(scopes, list) or len(scopes) < 2 or not all(isinstance(x, str) for x in scopes):
            return None
        module, op = scopes[-2], re.sub(r"_\d+$", "", scopes[-1])
        if not module:  # the exported module's own forward
            return None
        if any(i in self.constant for i in node.input if i):
            return module
        return f"{module}.{op}" if op else module

def _param_owner(name: str) -> str | None:
    """``conv1`` for a parameter named ``conv1.weight`` (``self_attn.in_proj`` for
    ``self_attn.in_proj_weight``); None for a generated name such as ``val_12``."""
    m = re.fullmatch(r"(.+?)[._](weight|bias)", name)
    return m.group(1) if m else None


def _has_macs(node) -> bool:
    """Whether a control-flow node's subgraphs contain MAC-bearing ops."""
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for n in g.node:
                if n.op_type in UNSUPPORTED_MAC_OPS or n.op_type in ("Conv", "Gemm", "MatMul") or _has_macs(n):
                    return True
    return False
