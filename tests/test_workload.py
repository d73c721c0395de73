import json

import pytest

from accelmap.errors import AccelmapError
from accelmap.workload import batched_matmul, conv2d, linear, read_problem_yaml


def test_reference_problems_read_with_their_mac_counts(ref):
    index = json.loads((ref / "inputs/problems/layers_index.json").read_text())
    assert len(index) == 12
    for layer in index:
        w = read_problem_yaml(ref / "inputs/problems" / f"{layer['name']}.yaml")
        assert w.macs == layer["macs"]
        for d in "RSPQCKN":
            assert w.bound[d] == layer[d]


def test_conv2d_constructor_equals_timeloop_shape(ref):
    w_yaml = read_problem_yaml(ref / "inputs/problems/resnet18_conv1.yaml")
    w = conv2d("conv1", C=3, K=64, P=112, R=7, stride=2)
    assert w.signature() == w_yaml.signature()
    # No padding: input width is (P-1)*stride + R = 229.
    assert w.tensor_size("Inputs") == 3 * 229 * 229


def test_depthwise_constructor_equals_custom_shape(ref):
    w_yaml = read_problem_yaml(ref / "inputs/problems/mbv2_b2_dw3x3.yaml")
    w = conv2d("dw", C=144, K=144, P=56, R=3, groups=144)
    assert w.signature() == w_yaml.signature()
    assert w.kind == "depthwise" and w.tensor_size("Outputs") == 144 * 56 * 56


def test_grouped_linear_and_bmm_sizes():
    g = conv2d("g", C=64, K=128, P=8, R=3, groups=4)
    assert g.macs == 128 * 16 * 64 * 9  # K * (C/groups) * P*Q * R*S
    assert g.tensor_size("Weights") == 128 * 16 * 9
    lin = linear("fc", in_features=512, out_features=1000)
    assert lin.macs == 512_000 and lin.tensor_size("Weights") == 512_000
    att = batched_matmul("qk", batch=12, M=197, K=64, N=197)
    assert att.macs == 12 * 197 * 197 * 64
    assert att.tensor_size("Weights") == 12 * 64 * 197  # B operand, per head
    assert att.tensor_size("Outputs") == 12 * 197 * 197


@pytest.mark.parametrize("kw", [dict(C=0), dict(K=-1), dict(P=0), dict(stride=0)])
def test_bad_sizes_are_user_errors(kw):
    args = dict(C=3, K=8, P=4, R=3)
    args.update(kw)
    with pytest.raises(AccelmapError):
        conv2d("bad", **args)
