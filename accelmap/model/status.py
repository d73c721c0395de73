"""Why a mapping is invalid: the reason codes every evaluator (tensor model, kernel, mapping space) reports."""

from __future__ import annotations

# Reason codes of invalid mappings (0 = valid), checked in this order.
VALID, BAD_FACTORS, BAD_FANOUT, BAD_CAPACITY, BAD_KEEP = 0, 1, 2, 3, 4


REASONS = {VALID: "valid", BAD_FACTORS: "factors do not multiply to the bounds",
           BAD_FANOUT: "spatial factors exceed the mesh fanout", BAD_CAPACITY: "tiles exceed a level's capacity",
           BAD_KEEP: "the outermost level must keep every tensor"}
