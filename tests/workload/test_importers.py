"""Network importers: ONNX files and torch modules give the zoo's layer shapes and MAC counts.

The blocks are built here with torchvision's / PyTorch's module names and the zoo's sizes
(ResNet-18 layer2.0, MobileNetV2 features.4, one ViT-B/16 encoder layer); the zoo, written
from the published architectures, is the ground truth. Small graphs built with onnx.helper
check the conventions (transposes, broadcasting, grouping, 1-D, strides) against hand counts.
"""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from accelmap.errors import AccelmapError
from accelmap.workload.load import load_network, network_from_torch
from accelmap.workload.network import Network
from accelmap.workload.onnx_reader import read_onnx
from accelmap.workload.workload import batched_matmul, conv2d, linear
from accelmap.workload.zoo import get_network

# ---- blocks built as torchvision builds them ------------------------------------------------

class BasicBlock(nn.Module):
    """ResNet-18 layer2.0: 64 -> 128 channels, stride 2, on a 56x56 input."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(128)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(128, 128, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(128)
        self.downsample = nn.Sequential(nn.Conv2d(64, 128, 1, stride=2, bias=False), nn.BatchNorm2d(128))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.downsample(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 features.4: 24 -> 144 (expand 6) -> depthwise 3x3 stride 2 -> 32, 56x56 input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(24, 144, 1, bias=False), nn.BatchNorm2d(144), nn.ReLU6()),
            nn.Sequential(nn.Conv2d(144, 144, 3, stride=2, padding=1, groups=144, bias=False),
                          nn.BatchNorm2d(144), nn.ReLU6()),
            nn.Conv2d(144, 32, 1, bias=False), nn.BatchNorm2d(32))

    def forward(self, x):
        return self.conv(x)


def encoder_layer():
    """One ViT-B/16 encoder layer: 768 hidden, 12 heads, MLP 3072, 197 tokens."""
    return nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, batch_first=True)


MODELS = {
    "resnet_block": (BasicBlock, (1, 64, 56, 56)),
    "mbv2_block": (InvertedResidual, (1, 24, 56, 56)),
    "encoder_layer": (encoder_layer, (1, 197, 768)),
}


def zoo_equivalent(model: str) -> dict[str, object]:
    """The zoo's workloads for a block, by name."""
    if model == "resnet_block":
        net, prefix = get_network("resnet18"), "layer2.0."
    elif model == "mbv2_block":
        net, prefix = get_network("mobilenet_v2"), "features.4.conv."
    else:
        net, prefix = get_network("vit_b16"), "encoder.layers.0-11."
    found = {layer.workload.name: layer.workload for layer in net.layers if layer.workload.name.startswith(prefix)}
    assert found, prefix
    return found


def signatures(workloads) -> Counter:
    return Counter(w.signature() for w in workloads)


def check_against_zoo(model: str, net: Network) -> None:
    zoo = zoo_equivalent(model)
    got = [layer.workload for layer in net.layers]
    assert all(layer.count == 1 for layer in net.layers)
    assert signatures(got) == signatures(zoo.values())  # dims, bounds, strides, tensors
    assert net.total_macs == sum(w.macs for w in zoo.values())
    if model == "resnet_block":  # module names come through (conv1, downsample.0, ...)
        assert {w.name for w in got} == {"conv1", "conv2", "downsample.0"}
        for w in got:
            assert w.signature() == zoo[f"layer2.0.{w.name}"].signature()
        assert net.total_macs == 64 * 128 * 9 * 28 * 28 + 128 * 128 * 9 * 28 * 28 + 64 * 128 * 28 * 28
    if model == "mbv2_block":
        kinds = {w.name: w.kind for w in got}
        assert kinds == {"conv.0.0": "conv", "conv.1.0": "depthwise", "conv.2": "conv"}
        assert net.total_macs == 24 * 144 * 56 * 56 + 144 * 9 * 28 * 28 + 144 * 32 * 28 * 28
    if model == "encoder_layer":
        assert Counter(w.kind for w in got) == {"matmul": 6, "bmm": 2}
        assert net.total_macs == 4 * 197 * 768 * 768 + 2 * 12 * 197 * 197 * 64 + 2 * 197 * 768 * 3072


def export(model: str, path, dynamo: bool) -> None:
    make, shape = MODELS[model]
    torch.manual_seed(0)
    module = make().eval()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(shape),), str(path), dynamo=dynamo, verbose=False)


# ---- ONNX files and torch modules against the zoo ---------------------------------------------

# The CNN blocks through the TorchScript exporter (batch norm folded, names like /conv1/Conv);
# the encoder layer needs torch.export (the TorchScript exporter fails on it), as from_torch uses.
@pytest.mark.parametrize("model, dynamo", [("resnet_block", False), ("mbv2_block", False),
                                           ("encoder_layer", True)])
def test_onnx_file_matches_zoo(tmp_path, model, dynamo):
    f = tmp_path / f"{model}.onnx"
    export(model, f, dynamo)
    result = read_onnx(f)
    assert result.skipped == {} and result.warning() is None
    assert result.network.name == model
    check_against_zoo(model, result.network)


@pytest.mark.parametrize("model", list(MODELS))
def test_from_torch_matches_zoo(model):
    make, shape = MODELS[model]
    module = make().train()
    net = network_from_torch(module, torch.randn(shape), name=model)
    assert net.name == model and module.training  # the module's mode is restored
    check_against_zoo(model, net)


def test_multihead_attention_torchscript_export(tmp_path):
    """The TorchScript exporter writes q, k, v as three MatMuls; the same layers come out."""
    import warnings

    mha = nn.MultiheadAttention(768, 12, batch_first=True).eval()
    x = torch.randn(1, 197, 768)
    f = tmp_path / "mha.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mha, (x, x, x), str(f), dynamo=False)
    zoo = zoo_equivalent("encoder_layer")
    attention = [w for n, w in zoo.items() if "mlp" not in n]
    assert signatures(layer.workload for layer in read_onnx(f).network.layers) == signatures(attention)


# ---- conventions on hand-built graphs ----------------------------------------------------------

def save_graph(path, nodes, inputs, initializers=(), opset=17):
    """An ONNX model: ``inputs`` {name: shape}, ``initializers`` {name: shape (zeros) or array}."""
    import onnx

    inits = [numpy_helper.from_array(v if isinstance(v, np.ndarray) else np.zeros(v, np.float32), n)
             for n, v in dict(initializers).items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def workloads(path):
    return [layer.workload for layer in read_onnx(path).network.layers]


def test_gemm_transposes_and_matmul_broadcasting(tmp_path):
    f = save_graph(tmp_path / "mm.onnx", [
        helper.make_node("Gemm", ["a", "w"], ["g"], name="fc", transA=1, transB=1),  # [64,8]^T @ [32,64]^T
        helper.make_node("MatMul", ["x", "w2"], ["l"], name="proj"),                 # [2,5,16] @ [16,24]
        helper.make_node("MatMul", ["q", "k"], ["s"], name="scores"),                # [2,3,5,16] @ [3,16,7]
        helper.make_node("MatMul", ["w3", "x2"], ["c"], name="left"),                # [6,16] @ [16,9]
    ], {"a": [64, 8], "x": [2, 5, 16], "q": [2, 3, 5, 16], "k": [3, 16, 7], "x2": [16, 9]},
        {"w": [32, 64], "w2": [16, 24], "w3": [6, 16]})
    got = {w.name: w for w in workloads(f)}
    assert got["fc"].signature() == linear("", in_features=64, out_features=32, tokens=8).signature()
    assert got["proj"].signature() == linear("", in_features=16, out_features=24, tokens=10).signature()
    assert got["scores"].signature() == batched_matmul("", batch=6, M=5, K=16, N=7).signature()
    assert got["left"].signature() == linear("", in_features=16, out_features=6, tokens=9).signature()
    assert [got[n].macs for n in ("fc", "proj", "scores", "left")] == [8 * 64 * 32, 10 * 16 * 24, 6 * 5 * 16 * 7,
                                                                       6 * 16 * 9]


def test_conv_strides_dilations_groups_and_1d(tmp_path):
    f = save_graph(tmp_path / "conv.onnx", [
        helper.make_node("Conv", ["x", "w"], ["y"], name="grouped", group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["z", "wz"], ["yz"], name="wide", strides=[1, 2]),          # (height, width)
        helper.make_node("Conv", ["s", "ws"], ["ys"], name="seq", strides=[2], dilations=[2]),
    ], {"x": [1, 32, 16, 16], "z": [2, 3, 20, 30], "s": [1, 8, 100]},
        {"w": [64, 8, 3, 3], "wz": [4, 3, 3, 5], "ws": [16, 8, 5]})
    got = {w.name: w for w in workloads(f)}
    assert got["grouped"].kind == "grouped" and got["grouped"].bound["G"] == 4
    assert got["grouped"].signature() == conv2d("", C=32, K=64, P=16, R=3, groups=4).signature()
    assert got["grouped"].macs == 64 * 8 * 9 * 16 * 16
    # output 18 high, (30 - 5) // 2 + 1 = 13 wide; P/R/Wstride are the width
    assert got["wide"].signature() == conv2d("", C=3, K=4, P=13, Q=18, R=5, S=3, N=2, stride=(2, 1)).signature()
    # (100 - 2 * (5 - 1) - 1) // 2 + 1 = 46 outputs
    assert got["seq"].signature() == conv2d("", C=8, K=16, P=46, Q=1, R=5, S=1, stride=(2, 1),
                                            dilation=(2, 1)).signature()


def test_packed_projection_split_into_equal_linears(tmp_path):
    f = save_graph(tmp_path / "qkv.onnx", [
        helper.make_node("MatMul", ["x", "qkv.weight"], ["h"], name="n0"),
        helper.make_node("Add", ["h", "qkv.bias"], ["hb"]),
        helper.make_node("Split", ["hb"], ["q", "k", "v"], axis=-1),
        helper.make_node("MatMul", ["x", "other"], ["o"], name="kept"),  # same weight shape, not cut
        helper.make_node("Split", ["o"], ["o1", "o2"], axis=1),          # cut along tokens: one linear
    ], {"x": [1, 10, 16]}, {"qkv.weight": [16, 48], "qkv.bias": [48], "other": [16, 48]})
    got = workloads(f)
    assert [w.name for w in got] == ["qkv.0", "qkv.1", "qkv.2", "kept"]
    one = linear("", in_features=16, out_features=16, tokens=10).signature()
    assert [w.signature() for w in got[:3]] == [one] * 3
    assert got[3].signature() == linear("", in_features=16, out_features=48, tokens=10).signature()


def test_packed_projection_unbound_after_reshape(tmp_path):
    """timm's qkv: reshape [B,N,3,heads,hd], permute(2,0,3,1,4), unbind(0) (as Slices)."""
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="qkv"),
             helper.make_node("Reshape", ["h", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 3, 1, 4])]
    inits = {"w": [16, 48], "shape": i64(1, 10, 3, 2, 8), "zero": i64(0)}
    for i in range(3):
        nodes.append(helper.make_node("Slice", ["t", f"s{i}", f"s{i + 1}", "zero"], [f"p{i}"]))
        inits[f"s{i}"] = i64(i)
    inits["s3"] = i64(3)
    f = save_graph(tmp_path / "unbind.onnx", nodes, {"x": [1, 10, 16]}, inits)
    one = linear("", in_features=16, out_features=16, tokens=10).signature()
    assert [w.signature() for w in workloads(f)] == [one] * 3
    f = save_graph(tmp_path / "partial.onnx", nodes[:-1], {"x": [1, 10, 16]}, inits)  # q and k only
    assert [w.signature() for w in workloads(f)] == [linear("", in_features=16, out_features=48,
                                                            tokens=10).signature()]


def test_unsupported_ops_are_counted_once(tmp_path):
    f = save_graph(tmp_path / "mixed.onnx", [
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["y", "wt"], ["u"], strides=[2, 2]),
        helper.make_node("ConvTranspose", ["u", "wt2"], ["u2"], strides=[2, 2]),
        helper.make_node("Relu", ["u2"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "ax"], ["r5"]),
        helper.make_node("Conv", ["r5", "w3"], ["v"], name="conv3d"),
    ], {"x": [1, 16, 14, 14]}, {"w": [32, 16, 3, 3], "wt": [32, 8, 2, 2], "wt2": [8, 8, 2, 2],
                                "ax": np.array([1], np.int64), "w3": [4, 1, 8, 3, 3]})
    result = read_onnx(f)
    assert result.skipped == {"ConvTranspose": 2, "Conv (3-D)": 1}
    assert result.warning() == "skipped 3 unsupported ops: ConvTranspose x2, Conv (3-D) x1"
    assert [layer.workload.name for layer in result.network.layers] == ["conv"]


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_onnx_files_name_the_file(tmp_path):
    with pytest.raises(AccelmapError, match="no such file") as e:
        read_onnx(tmp_path / "missing.onnx")
    assert e.value.file.endswith("missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not an onnx model at all \xff\xfe")
    with pytest.raises(AccelmapError) as e:
        read_onnx(junk)
    assert e.value.file == str(junk) and "ONNX" in str(e.value)
    dyn = save_graph(tmp_path / "dyn.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                     {"x": ["batch", 3, 8, 8]}, {"w": [4, 3, 3, 3]})
    with pytest.raises(AccelmapError, match=r"dynamic shape \[batch, 3, 8, 8\]") as e:
        read_onnx(dyn)
    assert e.value.file == str(dyn) and e.value.field == "graph.node[0]" and "Conv 'c'" in str(e.value)


def test_load_network_kinds(tmp_path):
    from accelmap.workload.workload import problem_to_dict
    from accelmap.yamlio import dump_yaml

    assert load_network("resnet18").name == "resnet18"
    p = tmp_path / "small.yaml"
    p.write_text(dump_yaml(problem_to_dict(conv2d("small", C=16, K=32, P=14))))
    net = load_network(str(p))
    assert net.name == "small" and net.total_macs == 16 * 32 * 9 * 14 * 14
    with pytest.raises(AccelmapError, match=r"unknown network 'model\.pt'.*\.onnx"):
        load_network("model.pt")


# ---- the command line --------------------------------------------------------------------------

def test_map_onnx_maps_the_rest_and_says_what_it_skipped(cli, tmp_path):
    f = save_graph(tmp_path / "mixed.onnx", [
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["y", "wt"], ["u"], strides=[2, 2]),
        helper.make_node("ConvTranspose", ["u", "wt2"], ["u2"], strides=[2, 2]),
        helper.make_node("Relu", ["u2"], ["r"]),
    ], {"x": [1, 16, 14, 14]}, {"w": [32, 16, 3, 3], "wt": [32, 8, 2, 2], "wt2": [8, 8, 2, 2]})
    out = tmp_path / "run"
    code, text, err = cli("map", str(f), "--arch", "eyeriss_like", "--budget", "2000", "--workers", "1",
                          "--out", str(out))
    assert code == 0, err
    assert text.count("warning: skipped 2 unsupported ops: ConvTranspose x2") == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["network"] == "mixed" and s["totals"]["mapped"] == 1
    assert [(x["name"], x["macs"]) for x in s["layers"]] == [("conv", 16 * 32 * 9 * 14 * 14)]


def test_map_corrupted_onnx_is_one_line(cli, tmp_path):
    f = save_graph(tmp_path / "cut.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                   {"x": [1, 3, 8, 8]}, {"w": [4, 3, 3, 3]})
    f.write_bytes(f.read_bytes()[:40])  # truncated mid-message
    code, _, err = cli("map", str(f), "--budget", "2000", "--workers", "1", "--out", str(tmp_path / "r"))
    assert code == 2 and str(f) in err and len(err.strip().splitlines()) == 1


# ---- transformer blocks written as HF writes them (transformers itself is not a dependency) ----

D, HEADS, TOKENS = 16, 2, 6  # hidden, heads, sequence: small so the exports take a second


class _SelfAttention(nn.Module):
    """BERT's BertSelfAttention: separate query/key/value linears, heads split by view."""

    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (m(x).view(b, t, HEADS, D // HEADS).transpose(1, 2) for m in (self.query, self.key, self.value))
        a = torch.softmax(q @ k.transpose(-1, -2) / (D // HEADS) ** 0.5, -1)
        return (a @ v).transpose(1, 2).reshape(b, t, D)


class _BertLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = _SelfAttention()
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(D, D)
        self.attention.output.LayerNorm = nn.LayerNorm(D)

    def forward(self, x):
        out = self.attention.output
        return out.LayerNorm(out.dense(self.attention.self(x)) + x)


class _Bert(nn.Module):
    """Embeddings + LayerNorm, then two layers. Every bias is zero, as a freshly built HF BERT's
    is: the exporter keeps one zero vector, named ``embeddings.LayerNorm.bias``, for all of them."""

    def __init__(self):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(30, D)
        self.embeddings.LayerNorm = nn.LayerNorm(D)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([_BertLayer(), _BertLayer()])
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids):
        x = self.embeddings.LayerNorm(self.embeddings.word_embeddings(ids))
        for layer in self.encoder.layer:
            x = layer(x)
        return x


class _Conv1D(nn.Module):
    """HF's GPT-2 Conv1D: weight [in, out], ``addmm(bias, x.view(-1, in), weight).view(..., out)``."""

    def __init__(self, nx, nf):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.randn(nf))
        self.nf = nf

    def forward(self, x):
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(*x.shape[:-1], self.nf)


class _GPT2Attention(nn.Module):
    """GPT-2's attention: one packed c_attn [D -> 3D] cut into q, k, v, then c_proj.

    ``conv1d``: HF's Conv1D (Gemm, reshapes around it) cut by slicing (Slice ops);
    otherwise nn.Linear cut by ``split`` (a Split op)."""

    def __init__(self, conv1d: bool):
        super().__init__()
        self.conv1d = conv1d
        self.c_attn = _Conv1D(D, 3 * D) if conv1d else nn.Linear(D, 3 * D)
        self.c_proj = _Conv1D(D, D) if conv1d else nn.Linear(D, D)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.c_attn(x)
        q, k, v = (h[:, :, :D], h[:, :, D:2 * D], h[:, :, 2 * D:]) if self.conv1d else h.split(D, dim=2)
        q, k, v = (y.reshape(b, t, HEADS, D // HEADS).transpose(1, 2) for y in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2), -1)
        return self.c_proj((a @ v).transpose(1, 2).reshape(b, t, D))


class _GPT2(nn.Module):
    def __init__(self, conv1d: bool):
        super().__init__()
        self.h = nn.ModuleList([nn.Module()])
        self.h[0].ln_1 = nn.LayerNorm(D)
        self.h[0].attn = _GPT2Attention(conv1d)

    def forward(self, x):
        return x + self.h[0].attn(self.h[0].ln_1(x))


def export_dynamo(module, args, path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=True, verbose=False)
    return path


def test_bert_linears_are_named_after_their_own_module(tmp_path):
    """Not after ``embeddings.LayerNorm``, whose (zero) bias the exporter shares with every linear."""
    import onnx

    torch.manual_seed(0)
    f = export_dynamo(_Bert(), (torch.randint(0, 30, (1, TOKENS)),), tmp_path / "bert.onnx")
    got = workloads(f)
    hd = D // HEADS
    one_linear = linear("", in_features=D, out_features=D, tokens=TOKENS).signature()
    scores = batched_matmul("", batch=HEADS, M=TOKENS, K=hd, N=TOKENS).signature()
    context = batched_matmul("", batch=HEADS, M=TOKENS, K=TOKENS, N=hd).signature()
    expected = []
    for i in range(2):
        p = f"encoder.layer.{i}.attention"
        expected += [(f"{p}.self.query", one_linear), (f"{p}.self.key", one_linear), (f"{p}.self.value", one_linear),
                     (f"{p}.self.matmul", scores), (f"{p}.self.matmul_2", context), (f"{p}.output.dense", one_linear)]
    assert [(w.name, w.signature()) for w in got] == expected
    assert sum(w.macs for w in got) == 2 * (4 * TOKENS * D * D + 2 * HEADS * TOKENS * TOKENS * hd)
    # Without torch's module scopes (an optimizer that drops node metadata) the shared bias
    # still names nothing: the linears keep their own node names, all different.
    model = onnx.load(str(f))
    for node in model.graph.node:
        del node.metadata_props[:]
    stripped = tmp_path / "stripped.onnx"
    onnx.save(model, str(stripped))
    names = [w.name for w in workloads(stripped)]
    assert len(names) == 12 and len(set(names)) == 12
    assert not any(n.startswith("embeddings") for n in names), names


@pytest.mark.parametrize("conv1d", [False, True], ids=["linear-split", "conv1d-slices"])
def test_gpt2_packed_c_attn_becomes_q_k_v(tmp_path, conv1d):
    torch.manual_seed(0)
    batch = 2
    f = export_dynamo(_GPT2(conv1d), (torch.randn(batch, TOKENS, D),), tmp_path / "gpt2.onnx")
    got = workloads(f)
    hd, tokens = D // HEADS, batch * TOKENS
    one_linear = linear("", in_features=D, out_features=D, tokens=tokens).signature()
    assert [(w.name, w.signature()) for w in got] == [
        ("h.0.attn.c_attn.0", one_linear), ("h.0.attn.c_attn.1", one_linear), ("h.0.attn.c_attn.2", one_linear),
        ("h.0.attn.matmul", batched_matmul("", batch=batch * HEADS, M=TOKENS, K=hd, N=TOKENS).signature()),
        ("h.0.attn.matmul_2", batched_matmul("", batch=batch * HEADS, M=TOKENS, K=TOKENS, N=hd).signature()),
        ("h.0.attn.c_proj", one_linear)]
    assert [w.macs for w in got] == [tokens * D * D] * 3 + [batch * HEADS * TOKENS * TOKENS * hd] * 2 + [
        tokens * D * D]


def test_packed_gemm_reshaped_before_the_split(tmp_path):
    """HF's Conv1D as an ONNX file writes it: Gemm on [tokens, F], Reshape to [batch, seq, F], Split."""
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    f = save_graph(tmp_path / "conv1d.onnx", [
        helper.make_node("Reshape", ["x", "flat"], ["xf"]),
        helper.make_node("Gemm", ["xf", "attn.c_attn.weight", "attn.c_attn.bias"], ["h"], name="Gemm_3"),
        helper.make_node("Reshape", ["h", "back"], ["hr"]),
        helper.make_node("Split", ["hr", "sizes"], ["q", "k", "v"], axis=2),
    ], {"x": [2, 5, 8]}, {"flat": i64(10, 8), "attn.c_attn.weight": [8, 24], "attn.c_attn.bias": [24],
                          "back": i64(2, 5, 24), "sizes": i64(8, 8, 8)})
    got = workloads(f)
    assert [w.name for w in got] == ["attn.c_attn.0", "attn.c_attn.1", "attn.c_attn.2"]
    assert {w.signature() for w in got} == {linear("", in_features=8, out_features=8, tokens=10).signature()}


def test_torchscript_names_and_a_deduplicated_bias(tmp_path):
    """As the TorchScript exporter writes BERT: transposed weights ``onnx::MatMul_N``, node names
    carrying the module scopes, and one zero bias (deduplicated by value) named after the
    embeddings' LayerNorm that also uses it: the names come from the scopes, not that bias."""
    ln, scope = "/embeddings/LayerNorm/LayerNormalization", "/encoder/layer.0/attention/self"
    f = save_graph(tmp_path / "ts.onnx", [
        helper.make_node("LayerNormalization", ["x", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"],
                         ["h"], name=ln, axis=-1),
        helper.make_node("MatMul", ["h", "onnx::MatMul_1"], ["q0"], name=f"{scope}/query/MatMul"),
        helper.make_node("Add", ["embeddings.LayerNorm.bias", "q0"], ["q"], name=f"{scope}/query/Add"),
        helper.make_node("MatMul", ["h", "onnx::MatMul_2"], ["k0"], name=f"{scope}/key/MatMul"),
        helper.make_node("Add", ["embeddings.LayerNorm.bias", "k0"], ["k"], name=f"{scope}/key/Add"),
        helper.make_node("Transpose", ["k"], ["kt"], name=f"{scope}/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name=f"{scope}/MatMul"),
        helper.make_node("Conv", ["img", "onnx::Conv_3"], ["y"], name="/layer1/layer1.0/conv1/Conv"),
    ], {"x": [1, 5, 8], "img": [1, 4, 6, 6]},
        {"embeddings.LayerNorm.weight": [8], "embeddings.LayerNorm.bias": [8], "onnx::MatMul_1": [8, 8],
         "onnx::MatMul_2": [8, 8], "onnx::Conv_3": [4, 4, 3, 3]})
    got = workloads(f)
    p = "encoder.layer.0.attention.self"
    assert [w.name for w in got] == [f"{p}.query", f"{p}.key", f"{p}.MatMul", "layer1.0.conv1"]
    assert [w.macs for w in got] == [5 * 8 * 8, 5 * 8 * 8, 5 * 8 * 5, 4 * 4 * 9 * 4 * 4]
