"""Hardware/mapping co-design under budgets: the problem, the method interface and registry
(:data:`CODESIGNERS`), the analytical method and its baselines, Pareto fronts and sweeps.

Importing this package registers every built-in method."""

from accelmap.codesign import baselines, genetic, gradient  # noqa: F401  (registers)
from accelmap.codesign.base import CODESIGNERS, CoDesigner

__all__ = ["CODESIGNERS", "CoDesigner"]
