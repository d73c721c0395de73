"""Networks: ordered layers with repeat counts, and merging of repeated shapes.

:func:`load_network` turns what a user names on the command line (a zoo network, a
Timeloop problem YAML or an ONNX file) into a Network; :meth:`Network.from_torch` imports a
PyTorch module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from accelmap.errors import AccelmapError
from accelmap.workload.workload import Workload


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
        exact shapes (see :mod:`accelmap.workload.torch_reader`; MAC-bearing ops it cannot model are
        named in a warning). ``name`` defaults to the module's class name."""
        from accelmap.workload.torch_reader import import_module

        result = import_module(module, example_input, name)
        if result.warning():
            warnings.warn(result.warning(), stacklevel=2)
        return result.network


