"""Built-in networks, built in code (nothing is downloaded).

Batch 1; CNNs take ImageNet 224x224 inputs. Convolution P/Q are the OUTPUT sizes the
real network produces with its usual padding (Timeloop models no padding, so the input
extent is ``(P-1)*stride + R``; MAC counts are unaffected). Layer names follow the
torchvision / Hugging Face module names; a block repeated identically is one entry with a
count and a range in its name (``layer3.1-5.conv1``, ``encoder.layer.0-11...``).
Only convolutions, linears and attention matmuls are listed: pooling, normalisation,
activations, softmax and embedding look-ups do no multiply-accumulates in this model.
"""

from __future__ import annotations

from typing import Callable

from accelmap.errors import AccelmapError
from accelmap.workload.network import Layer, Network
from accelmap.workload.workload import Workload, batched_matmul, conv2d, linear


def _blocks(prefix: str, first: int, last: int) -> str:
    return f"{prefix}.{first}" if first == last else f"{prefix}.{first}-{last}"


# ---- ResNets -----------------------------------------------------------------------------

def _resnet(name: str, bottleneck: bool, blocks: tuple[int, int, int, int]) -> Network:
    layers: list[Layer] = [Layer(conv2d("conv1", C=3, K=64, P=112, R=7, stride=2))]
    in_ch, size = 64, 56  # after the 3x3 stride-2 max pool
    expansion = 4 if bottleneck else 1
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        stride = 1 if stage == 1 else 2
        out_size = size // stride
        out_ch = planes * expansion
        for first, count in ((0, 1), (1, n - 1)):
            if count == 0:
                continue
            p = _blocks(f"layer{stage}", first, first + count - 1)
            s = stride if first == 0 else 1
            cin = in_ch if first == 0 else out_ch
            if bottleneck:  # torchvision v1.5: the stride sits on the 3x3 conv
                convs = [conv2d(f"{p}.conv1", C=cin, K=planes, P=size if first == 0 else out_size, R=1),
                         conv2d(f"{p}.conv2", C=planes, K=planes, P=out_size, R=3, stride=s),
                         conv2d(f"{p}.conv3", C=planes, K=out_ch, P=out_size, R=1)]
            else:
                convs = [conv2d(f"{p}.conv1", C=cin, K=planes, P=out_size, R=3, stride=s),
                         conv2d(f"{p}.conv2", C=planes, K=planes, P=out_size, R=3)]
            if first == 0 and (s != 1 or cin != out_ch):
                convs.append(conv2d(f"{p}.downsample.0", C=cin, K=out_ch, P=out_size, R=1, stride=s))
            layers.extend(Layer(w, count) for w in convs)
        in_ch, size = out_ch, out_size
    layers.append(Layer(linear("fc", in_features=512 * expansion, out_features=1000)))
    return Network(name, tuple(layers))


def resnet18() -> Network:
    return _resnet("resnet18", bottleneck=False, blocks=(2, 2, 2, 2))


def resnet50() -> Network:
    return _resnet("resnet50", bottleneck=True, blocks=(3, 4, 6, 3))


# ---- MobileNetV2 -------------------------------------------------------------------------

# (expansion t, output channels c, blocks n, first stride s), from the paper's Table 2.
_MBV2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2() -> Network:
    layers: list[Layer] = [Layer(conv2d("features.0.0", C=3, K=32, P=112, R=3, stride=2))]
    in_ch, size, idx = 32, 112, 1
    for t, c, n, s in _MBV2:
        out_size = size // s
        for first, count in ((0, 1), (1, n - 1)):
            if count == 0:
                continue
            p = _blocks("features", idx + first, idx + first + count - 1) + ".conv"
            cin, stride, isize = (in_ch, s, size) if first == 0 else (c, 1, out_size)
            hidden = cin * t
            convs: list[Workload] = []
            if t != 1:
                convs.append(conv2d(f"{p}.0.0", C=cin, K=hidden, P=isize, R=1))
            j = 1 if t != 1 else 0
            convs.append(conv2d(f"{p}.{j}.0", C=hidden, K=hidden, P=out_size, R=3, stride=stride, groups=hidden))
            convs.append(conv2d(f"{p}.{j + 1}", C=hidden, K=c, P=out_size, R=1))
            layers.extend(Layer(w, count) for w in convs)
        in_ch, size, idx = c, out_size, idx + n
    layers.append(Layer(conv2d(f"features.{idx}.0", C=in_ch, K=1280, P=size, R=1)))
    layers.append(Layer(linear("classifier.1", in_features=1280, out_features=1000)))
    return Network("mobilenet_v2", tuple(layers))


# ---- VGG-16 ------------------------------------------------------------------------------

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16() -> Network:
    layers: list[Layer] = []
    in_ch, size, idx = 3, 224, 0
    for v in _VGG16:
        if v == "M":
            size //= 2
            idx += 1
            continue
        layers.append(Layer(conv2d(f"features.{idx}", C=in_ch, K=v, P=size, R=3)))
        in_ch, idx = v, idx + 2  # conv, relu
    for i, (cin, cout) in zip((0, 3, 6), ((512 * 7 * 7, 4096), (4096, 4096), (4096, 1000))):
        layers.append(Layer(linear(f"classifier.{i}", in_features=cin, out_features=cout)))
    return Network("vgg16", tuple(layers))


# ---- Transformers ------------------------------------------------------------------------

def _encoder(p: str, names: dict[str, str], tokens: int, hidden: int, heads: int, mlp: int,
             depth: int) -> list[Layer]:
    """One pre/post-norm encoder layer's MAC-bearing ops, each repeated ``depth`` times."""
    hd = hidden // heads
    ops = [
        linear(f"{p}.{names['q']}", in_features=hidden, out_features=hidden, tokens=tokens),
        linear(f"{p}.{names['k']}", in_features=hidden, out_features=hidden, tokens=tokens),
        linear(f"{p}.{names['v']}", in_features=hidden, out_features=hidden, tokens=tokens),
        batched_matmul(f"{p}.{names['scores']}", batch=heads, M=tokens, K=hd, N=tokens),  # Q @ K^T
        batched_matmul(f"{p}.{names['context']}", batch=heads, M=tokens, K=tokens, N=hd),  # softmax @ V
        linear(f"{p}.{names['out']}", in_features=hidden, out_features=hidden, tokens=tokens),
        linear(f"{p}.{names['fc1']}", in_features=hidden, out_features=mlp, tokens=tokens),
        linear(f"{p}.{names['fc2']}", in_features=mlp, out_features=hidden, tokens=tokens),
    ]
    return [Layer(w, depth) for w in ops]


def vit_b16() -> Network:
    names = {"q": "self_attention.q_proj", "k": "self_attention.k_proj", "v": "self_attention.v_proj",
             "scores": "self_attention.scores", "context": "self_attention.context",
             "out": "self_attention.out_proj", "fc1": "mlp.0", "fc2": "mlp.3"}
    layers = [Layer(conv2d("conv_proj", C=3, K=768, P=14, R=16, stride=16))]
    layers += _encoder("encoder.layers.0-11", names, tokens=197, hidden=768, heads=12, mlp=3072, depth=12)
    layers.append(Layer(linear("heads.head", in_features=768, out_features=1000)))  # class token only
    return Network("vit_b16", tuple(layers))


def bert_base() -> Network:
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "scores": "attention.self.scores", "context": "attention.self.context",
             "out": "attention.output.dense", "fc1": "intermediate.dense", "fc2": "output.dense"}
    layers = _encoder("encoder.layer.0-11", names, tokens=128, hidden=768, heads=12, mlp=3072, depth=12)
    layers.append(Layer(linear("pooler.dense", in_features=768, out_features=768)))  # [CLS] token only
    return Network("bert_base", tuple(layers))


# ---- registry ----------------------------------------------------------------------------

NETWORKS: dict[str, Callable[[], Network]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "vgg16": vgg16,
    "vit_b16": vit_b16,
    "bert_base": bert_base,
}

DESCRIPTIONS: dict[str, str] = {
    "resnet18": "ResNet-18, ImageNet 224x224, batch 1 (~1.81 GMACs)",
    "resnet50": "ResNet-50 v1.5 (torchvision), ImageNet 224x224, batch 1 (~4.09 GMACs)",
    "mobilenet_v2": "MobileNetV2 1.0, depthwise-separable, ImageNet 224x224, batch 1 (~0.30 GMACs)",
    "vgg16": "VGG-16 (no batch norm), ImageNet 224x224, batch 1 (~15.5 GMACs)",
    "vit_b16": "ViT-B/16, 224x224 -> 197 tokens, 12 layers, 768 hidden, 12 heads (~17.6 GMACs)",
    "bert_base": "BERT-base encoder, 128 tokens, 12 layers, 768 hidden, 12 heads (~11.2 GMACs)",
}


def list_networks() -> list[str]:
    return list(NETWORKS)


def get_network(name: str) -> Network:
    key = name.strip().lower().replace("-", "_")
    if key not in NETWORKS:
        raise AccelmapError(f"unknown network '{name}'; expected one of {', '.join(NETWORKS)}")
    return NETWORKS[key]()
