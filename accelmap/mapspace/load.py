"""Constraints from what --constraints names: a Timeloop file, 'none', or the preset's own dataflow constraints."""

from __future__ import annotations

from accelmap.mapspace.constraints import Constraints, read_constraints


def load_constraints(spec: str | None, preset: str | None = None) -> Constraints:
    """What ``--constraints`` names: a Timeloop constraint YAML, ``none`` (no constraints), or,
    when not given (None), the dataflow constraints shipped with the preset ``preset`` (none for
    an architecture file or a preset without them)."""
    from accelmap.arch.architecture import preset_constraints

    if spec is None:
        from accelmap.spec import looks_like_v4

        if preset is not None and looks_like_v4(preset):  # a v0.4 architecture carries its own constraints
            from accelmap.mapspace.timeloop_v4 import v4_architecture_constraints

            return v4_architecture_constraints(preset)
        is_file = preset is None or preset.endswith((".yaml", ".yml")) or "/" in preset
        path = None if is_file else preset_constraints(preset)
        return read_constraints(path) if path else Constraints()
    if spec.lower() == "none":
        return Constraints()
    return read_constraints(spec)
