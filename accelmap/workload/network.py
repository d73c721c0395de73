"""Networks: ordered layers with repeat counts, and merging of repeated shapes.

Plain data: :mod:`accelmap.workload.load` builds networks from what a user names (a zoo
network, Timeloop problem files, an ONNX file, a PyTorch module).
"""

from __future__ import annotations

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


