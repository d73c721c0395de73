"""Networks: ordered layers with repeat counts, and merging of repeated shapes.

:func:`load_network` turns what a user names on the command line (a zoo network, a
Timeloop problem YAML or an ONNX file) into a Network; :meth:`Network.from_torch` imports a
PyTorch module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from accelmap.errors import AccelmapError
from accelmap.workload import Workload


@dataclass(frozen=True)
class Layer:
    """A workload that occurs ``count`` times in a network."""

    workload: Workload
    count: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count <= 0:
            raise AccelmapError(f"layer '{self.workload.name}': count must be a positive integer, "
                                f"got {self.count!r}", field="count")

    @property
    def macs(self) -> int:
        """MACs of all ``count`` occurrences."""
        return self.workload.macs * self.count


@dataclass(frozen=True)
class Network:
    name: str
    layers: tuple[Layer, ...]

    def unique_layers(self) -> tuple[Layer, ...]:
        """Layers with identical shapes merged (counts summed), first-seen order and name."""
        merged: dict[tuple, Layer] = {}
        for layer in self.layers:
            key = layer.workload.signature()
            prev = merged.get(key)
            merged[key] = layer if prev is None else Layer(prev.workload, prev.count + layer.count)
        return tuple(merged.values())

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @classmethod
    def from_torch(cls, module, example_input, name: str | None = None) -> "Network":
        """The convolutions, linears and matmuls ``module(*example_input)`` runs, with their
        exact shapes (see :mod:`accelmap.torch_import`; MAC-bearing ops it cannot model are
        named in a warning). ``name`` defaults to the module's class name."""
        from accelmap.torch_import import import_module

        result = import_module(module, example_input, name)
        if result.warning():
            warnings.warn(result.warning(), stacklevel=2)
        return result.network


def load_network(spec: str, on_warning: Callable[[str], None] | None = None) -> Network:
    """A zoo network name, a Timeloop problem YAML (one layer; v0.3 or v0.4), a folder of problem
    files (one layer per file, in file-name order, named by the files) or an ONNX model (``.onnx``).

    ``on_warning`` receives one line naming the ops an ONNX model has that are not modelled
    (default: a Python warning).
    """
    if Path(spec).is_dir():  # a folder of problem files (Timeloop's layer_shapes): one layer per file
        from accelmap.timeloop_v4 import problem_folder_network

        return problem_folder_network(spec, on_warning or (lambda m: warnings.warn(m, stacklevel=3)))
    if spec.endswith((".yaml", ".yml")):
        from accelmap.spec import looks_like_v4
        from accelmap.workload import read_problem_yaml

        if looks_like_v4(spec):
            from accelmap.timeloop_v4 import read_v4_problem

            w = read_v4_problem(spec, warn=on_warning or (lambda m: warnings.warn(m, stacklevel=3)))
            return Network(Path(spec).stem, (Layer(w),))
        return Network(Path(spec).stem, (Layer(read_problem_yaml(spec)),))
    if spec.endswith(".onnx"):
        from accelmap.onnx_import import read_onnx

        result = read_onnx(spec)
        if not result.network.layers:
            raise AccelmapError("no convolution, Gemm or MatMul to map; expected a model with MAC layers"
                                + (f" ({result.warning()})" if result.skipped else ""), file=spec)
        if result.warning():
            (on_warning or (lambda m: warnings.warn(m, stacklevel=3)))(result.warning())
        return result.network
    from accelmap.zoo import NETWORKS, get_network

    try:
        return get_network(spec)
    except AccelmapError:
        raise AccelmapError(f"unknown network '{spec}'; expected one of {', '.join(NETWORKS)}, a Timeloop "
                            "problem YAML (.yaml) or an ONNX model (.onnx)") from None
