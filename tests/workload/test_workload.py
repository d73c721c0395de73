import json

import pytest

from accelmap.errors import AccelmapError
from accelmap.workload.load import read_problem_yaml
from accelmap.workload.workload import batched_matmul, conv2d, linear


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


def test_touched_size_skips_stride_holes():
    # 1x1 stride 2: every other input row and column is never read (hand count: P*Q*C)
    w = conv2d("ds", C=64, K=128, P=28, R=1, stride=2)
    assert w.tensor_size("Inputs") == 64 * 55 * 55 and w.touched_size("Inputs") == 64 * 28 * 28
    # stride 3, 2-wide kernel, 4 outputs: columns {0,1,3,4,6,7,9,10} = 8 of the box's 11
    w = conv2d("s3", C=1, K=1, P=4, Q=1, R=2, S=1, stride=3)
    assert w.tensor_size("Inputs") == 11 and w.touched_size("Inputs") == 8
    # overlapping windows leave no holes: touched equals the box
    w = conv2d("c1", C=3, K=64, P=112, R=7, stride=2)
    assert w.touched_size("Inputs") == w.tensor_size("Inputs") == 3 * 229 * 229


def test_lower_bound_holds_for_every_reference_mapping(ref):
    """Energy and cycles of every Timeloop record are at least the bounds (strided layers included)."""
    import json

    from accelmap.arch.load import read_architecture
    from accelmap.mapspace.bounds import lower_bound
    from accelmap.mapspace.constraints import read_constraints

    for arch_name in ("eyeriss_like", "simple_pe16x16"):
        arch = read_architecture(ref / f"inputs/arch/{arch_name}.yaml", ref / f"inputs/ert/{arch_name}.ERT.yaml",
                                 ref / f"inputs/ert/{arch_name}.ART.yaml")
        cons = read_constraints(ref / f"inputs/mapper/{arch_name}.constraints.yaml")
        for line in (ref / f"records/{arch_name}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            w = read_problem_yaml(ref / f"inputs/problems/{rec['layer']['name']}.yaml")
            b = lower_bound(w, arch, cons)
            assert rec["summary"]["energy_pJ"] >= b.energy_pJ * (1 - 1e-9), (arch_name, rec["layer"]["name"])
            assert rec["summary"]["cycles_exact"] >= b.cycles
