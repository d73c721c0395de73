"""Mapping search: the ask/tell optimizer interface and its registry (:data:`OPTIMIZERS`), the one
optimize() loop, the built-in optimizers, DCP, and mapping every layer of a network.

Importing this package registers every built-in optimizer."""

from accelmap.search import annealing, dcp, exhaustive, genetic, gradient, portfolio, random  # noqa: F401  (registers)
from accelmap.search.base import OPTIMIZERS, Optimizer

__all__ = ["OPTIMIZERS", "Optimizer"]
