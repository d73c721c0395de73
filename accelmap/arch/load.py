"""Architectures from what a user names: a preset, a Timeloop v0.3 or v0.4 file (with its ERT/ART)."""

from __future__ import annotations

from pathlib import Path

from accelmap.arch.architecture import Architecture, architecture_from_dict, preset_files, read_art, read_ert
from accelmap.yamlio import load_yaml


def read_architecture(path: str | Path, ert: str | Path | None = None, art: str | Path | None = None,
                      name: str | None = None) -> Architecture:
    from accelmap.spec import looks_like_v4

    if looks_like_v4(path):  # Timeloop v0.4 (nodes, tags, jinja2): accelmap.runs.spec
        from accelmap.arch.timeloop_v4 import read_v4_nodes

        return read_v4_nodes(path, ert, art, name).arch
    src = str(path)
    doc = load_yaml(path)
    return architecture_from_dict(doc, src, name or Path(path).stem, read_ert(ert), read_art(art))


def preset(name: str) -> Architecture:
    import warnings

    arch, ert, art = preset_files(name)
    with warnings.catch_warnings():
        # a preset keeps the attributes of the Timeloop file it reproduces (e.g. eyeriss's
        # update_fifo_depth); naming them would only confuse users, who did not write them
        warnings.simplefilter("ignore")
        return read_architecture(arch, ert, art, name=name)


def load_architecture(spec: str, ert: str | None = None, art: str | None = None) -> Architecture:
    """A preset name or a path to a Timeloop architecture YAML (with optional ERT/ART)."""
    if spec.endswith((".yaml", ".yml")) or "/" in spec or Path(spec).exists():
        return read_architecture(spec, ert, art)
    if ert or art:
        # A preset with a user-supplied table: use the preset's file with the given tables.
        a, _, _ = preset_files(spec)
        return read_architecture(a, ert, art, name=spec)
    return preset(spec)
