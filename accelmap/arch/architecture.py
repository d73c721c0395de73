"""Architectures: storage levels from DRAM inward, a PE mesh, and a compute unit.

Read from Timeloop v0.3 ``subtree`` YAML with the Accelergy ERT (energy per action) and ART
(area) tables. Without an ERT/ART, energies and areas come from
:mod:`accelmap.arch.energy_table`, which scales with capacity, width and technology node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from accelmap.errors import AccelmapError
from accelmap.yamlio import load_yaml

_COMPUTE_CLASSES = ("intmac", "fpmac", "mac", "compute", "bitwise", "adder")
_INSTANCES = re.compile(r"^(?P<base>.*)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")


@dataclass(frozen=True)
class StorageLevel:
    """One storage level. Capacities in words, bandwidths in words/cycle per instance.

    ``read_energy``/``write_energy`` are pJ per access of one block (``block_size`` words);
    ``area`` is um^2 per instance. ``None`` capacity or bandwidth means unlimited.
    ``leak_energy``: pJ per utilized instance per cycle (the ERT's ``leak`` action; Timeloop v4
    charges it, v3 has no leakage, so only the v0.4 reader sets it). ``cluster_size``: instances
    that share one physical row (Timeloop's cluster): each access's energy is spread over the
    utilized instances of a cluster, i.e. charged once per utilized cluster.
    """

    name: str
    cls: str
    capacity: int | None
    word_bits: int
    block_size: int
    instances: int
    mesh_x: int
    read_bw: float | None
    write_bw: float | None
    read_energy: float
    write_energy: float
    area: float
    path: str = ""
    energy_source: str = "ERT"
    leak_energy: float = 0.0
    cluster_size: int = 1

    @property
    def mesh_y(self) -> int:
        return self.instances // self.mesh_x


@dataclass(frozen=True)
class ComputeUnit:
    name: str
    cls: str
    instances: int
    mesh_x: int
    energy: float  # pJ per MAC (Accelergy mac_random)
    area: float  # um^2 per instance
    word_bits: int = 16
    path: str = ""

    @property
    def mesh_y(self) -> int:
        return self.instances // self.mesh_x


@dataclass(frozen=True)
class Architecture:
    name: str
    levels: tuple[StorageLevel, ...]  # outermost (DRAM) first
    compute: ComputeUnit
    technology_nm: float = 45.0
    clock_ghz: float = 1.0

    def level_index(self, name: str) -> int:
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        raise AccelmapError(f"unknown storage level '{name}'; expected one of {[lv.name for lv in self.levels]}")

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels)

    def fanout(self, i: int) -> tuple[int, int]:
        """(X, Y) fanout from level ``i`` to the next level in (or to the compute units)."""
        inner = self.levels[i + 1] if i + 1 < len(self.levels) else self.compute
        outer = self.levels[i]
        fx = max(1, inner.mesh_x // max(1, outer.mesh_x))
        fy = max(1, inner.mesh_y // max(1, outer.mesh_y))
        return fx, fy

    @property
    def area_um2(self) -> float:
        return sum(lv.area * lv.instances for lv in self.levels) + self.compute.area * self.compute.instances

    def with_level(self, name: str, **changes: Any) -> "Architecture":
        i = self.level_index(name)
        levels = list(self.levels)
        levels[i] = replace(levels[i], **changes)
        return replace(self, levels=tuple(levels))


# ---- Accelergy tables --------------------------------------------------------------------

def _table():
    # Imported on first use: architectures with full ERT/ART tables never need it.
    from accelmap.arch import energy_table

    return energy_table


def _table_key(path: str) -> str:
    return path.split(".")[-1]


def read_ert(path: str | Path | None) -> dict[str, dict[str, float]]:
    """Component path -> action -> energy (pJ), the max over argument variants."""
    if path is None:
        return {}
    src = str(path)
    doc = load_yaml(path)
    ert = doc.get("ERT") if isinstance(doc, dict) else None
    if not isinstance(ert, dict) or not isinstance(ert.get("tables"), list):
        raise AccelmapError("expected an 'ERT' mapping with a 'tables' list", file=src, field="ERT.tables")
    out: dict[str, dict[str, float]] = {}
    for i, table in enumerate(ert["tables"]):
        name = table.get("name")
        if not name:
            raise AccelmapError("missing component name", file=src, field=f"ERT.tables[{i}].name")
        acts: dict[str, float] = {}
        for a in table.get("actions", []) or []:
            e = float(a.get("energy", 0.0))
            acts[a["name"]] = max(acts.get(a["name"], e), e)
        out[name] = acts
    return out


def read_art(path: str | Path | None) -> dict[str, float]:
    if path is None:
        return {}
    src = str(path)
    doc = load_yaml(path)
    art = doc.get("ART") if isinstance(doc, dict) else None
    if not isinstance(art, dict) or not isinstance(art.get("tables"), list):
        raise AccelmapError("expected an 'ART' mapping with a 'tables' list", file=src, field="ART.tables")
    return {t["name"]: float(t.get("area", 0.0)) for t in art["tables"]}


def _lookup(table: dict, path: str):
    if path in table:
        return table[path]
    key = _table_key(path)
    for name, v in table.items():
        if _table_key(name) == key:
            return v
    return None


# ---- Timeloop v0.3 subtree YAML --------------------------------------------------------------

def _first(attrs: dict, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that ``attrs`` gives (Timeloop's alternative spellings)."""
    for n in names:
        if attrs.get(n) is not None:
            return attrs[n]
    return default


# Attributes accelmap reads; any other is named in one warning line per file.
_KNOWN_ATTRIBUTES = frozenset((
    "technology", "meshX", "meshY", "word-bits", "word_width", "word_bits", "datawidth", "block-size", "block_size",
    "n_words", "width", "memory_width", "data_storage_width", "memory_depth", "depth", "data_storage_depth",
    "entries", "size", "sizeKB", "read_bandwidth", "write_bandwidth", "type", "n_banks", "cluster-size"))


def _positive_int(value: Any, src: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise AccelmapError(f"expected a positive integer, got {value!r}", file=src, field=field)
    return int(value)


def cluster_and_block(width: Any, word_bits: int, block: Any, cluster: Any, src: str, afield: str,
                      cluster_key: str, block_key: str = "block-size") -> tuple[int, int]:
    """(block size, cluster size) as Timeloop derives them: a row of ``width`` bits holds
    block x cluster words; whichever of the two is not given follows from the width (block
    alone: cluster = width / (word bits x block); cluster alone: block = width / (word bits x
    cluster); neither: the row is one block). Without a width both default to 1."""
    if cluster is not None:
        cluster = _positive_int(cluster, src, f"{afield}.{cluster_key}")
    if block is not None:
        block = _positive_int(block, src, f"{afield}.{block_key}")
    if width is None:
        return block or 1, cluster or 1
    width = _positive_int(width, src, f"{afield}.width")
    if block is not None and cluster is not None:
        if block * word_bits * cluster != width:
            raise AccelmapError(f"block size {block} x word bits {word_bits} x cluster size {cluster} is not the "
                                f"width {width}", file=src, field=f"{afield}.{cluster_key}")
        return block, cluster
    if cluster is not None:
        return max(1, width // (word_bits * cluster)), cluster
    if block is not None:
        return block, max(1, width // (word_bits * block))
    return max(1, width // word_bits), 1


def architecture_from_dict(doc: Any, src: str, name: str, ert: dict | None = None,
                           art: dict | None = None) -> Architecture:
    ert = ert or {}
    art = art or {}
    arch = doc.get("architecture") if isinstance(doc, dict) else None
    if not isinstance(arch, dict):
        raise AccelmapError("missing required field; expected an 'architecture' mapping", file=src,
                            field="architecture")
    if "subtree" not in arch:
        raise AccelmapError("missing required field; expected a Timeloop v0.3 'subtree' list", file=src,
                            field="architecture.subtree")
    flat: list[tuple[str, dict, int, dict, str, str]] = []  # name, component, instances, attrs, path, field
    unused: set[str] = set()
    from_table: list[str] = []  # components whose energies come from the built-in table

    def walk(nodes: Any, prefix: str, mult: int, inherited: dict, fpath: str) -> None:
        if not isinstance(nodes, list):
            raise AccelmapError("expected a list of subtree nodes", file=src, field=fpath)
        for i, node in enumerate(nodes):
            npath = f"{fpath}[{i}]"
            if not isinstance(node, dict) or "name" not in node:
                raise AccelmapError("missing required field; expected a node name", file=src, field=f"{npath}.name")
            nname = str(node["name"])
            m = _INSTANCES.match(nname)
            count = int(m["hi"]) - int(m["lo"]) + 1 if m else 1
            attrs = dict(inherited)
            attrs.update(node.get("attributes", {}) or {})
            unused.update(k for k in (node.get("attributes", {}) or {}) if k not in _KNOWN_ATTRIBUTES)
            here = f"{prefix}.{nname}" if prefix else nname
            for j, comp in enumerate(node.get("local", []) or []):
                cpath = f"{npath}.local[{j}]"
                if not isinstance(comp, dict) or "name" not in comp:
                    raise AccelmapError("missing required field; expected a component name", file=src,
                                        field=f"{cpath}.name")
                if "class" not in comp:
                    raise AccelmapError("missing required field; expected a component class", file=src,
                                        field=f"{cpath}.class")
                cm = _INSTANCES.match(str(comp["name"]))
                ccount = int(cm["hi"]) - int(cm["lo"]) + 1 if cm else 1
                cattrs = dict(attrs)
                cattrs.update(comp.get("attributes", {}) or {})
                unused.update(k for k in (comp.get("attributes", {}) or {}) if k not in _KNOWN_ATTRIBUTES)
                flat.append((cm["base"] if cm else str(comp["name"]), comp, mult * count * ccount, cattrs,
                             f"{here}.{comp['name']}", cpath))
            walk(node.get("subtree", []) or [], here, mult * count, attrs, f"{npath}.subtree")

    walk(arch["subtree"], "", 1, {}, "architecture.subtree")
    if unused:
        import warnings

        warnings.warn(f"{src}: attributes accelmap does not use: {', '.join(sorted(unused))}", stacklevel=3)

    levels: list[StorageLevel] = []
    compute: ComputeUnit | None = None
    tech = 45.0
    for cname, comp, inst, attrs, path, cpath in flat:
        cls = str(comp["class"])
        t = attrs.get("technology", "45nm")
        tech_nm = _table().parse_technology(t, src, f"{cpath}.attributes.technology") if t is not None else 45.0
        tech = tech_nm
        mesh_x = attrs.get("meshX")
        mesh_x = _positive_int(mesh_x, src, f"{cpath}.attributes.meshX") if mesh_x is not None else inst
        if inst % mesh_x:
            raise AccelmapError(f"meshX={mesh_x} does not divide the {inst} instances", file=src,
                                field=f"{cpath}.attributes.meshX")
        actions = _lookup(ert, path) or {}
        area = _lookup(art, path)
        if any(k in cls.lower() for k in _COMPUTE_CLASSES):
            bits = _positive_int(_first(attrs, "datawidth", "word-bits", "word_width", "word_bits", default=16), src,
                                 f"{cpath}.attributes.datawidth")
            energy = actions.get("mac_random", actions.get("compute", actions.get("mac")))
            if energy is None:
                energy = float(_table().mac_energy(bits, tech_nm))
                from_table.append(cname)
            if area is None:
                area = float(_table().mac_area(bits, tech_nm))
            compute = ComputeUnit(cname, cls, inst, mesh_x, float(energy), float(area), bits, path)
            continue
        # Storage listed after the compute unit is simply a further inner level (Timeloop keeps
        # the arithmetic innermost whatever the listing order), as in the exercises' simple
        # weight- and output-stationary designs. Attribute spellings as Timeloop v3 reads them
        # (plus v0.4's word_bits): word bits, then block size, else width / word bits.
        word_bits = _positive_int(_first(attrs, "word-bits", "word_width", "word_bits", "datawidth", default=16), src,
                                  f"{cpath}.attributes.word-bits")
        width_attr = _first(attrs, "width", "memory_width", "data_storage_width")
        block = _first(attrs, "block-size", "block_size", "n_words")
        block, cluster = cluster_and_block(width_attr, word_bits, block, attrs.get("cluster-size"), src,
                                           f"{cpath}.attributes", "cluster-size")
        is_dram = cls.upper() == "DRAM" or "dram" in cls.lower()
        capacity: int | None = None
        if not is_dram:
            depth = _first(attrs, "memory_depth", "depth", "data_storage_depth")
            if depth is None and attrs.get("sizeKB") is not None and _first(attrs, "entries", "size") is None:
                kb = attrs["sizeKB"]
                if isinstance(kb, bool) or not isinstance(kb, (int, float)) or kb <= 0:
                    raise AccelmapError(f"expected a positive size in KB, got {kb!r}", file=src,
                                        field=f"{cpath}.attributes.sizeKB")
                capacity = int(kb * 1024 * 8) // word_bits
            elif depth is None:
                entries = attrs.get("entries", attrs.get("size"))
                if entries is None:
                    raise AccelmapError("missing required field; expected memory_depth (rows) for a storage level",
                                        file=src, field=f"{cpath}.attributes.memory_depth")
                capacity = _positive_int(entries, src, f"{cpath}.attributes.entries")
            else:
                # Timeloop: a row holds one block (the rest of a wider row is cluster width).
                # Depth 0 is a level that holds nothing, only a fanout point (Timeloop v4's
                # containers written as v0.3); its tensors must all be bypassed.
                capacity = (0 if depth == 0 and not isinstance(depth, bool) else
                            _positive_int(depth, src, f"{cpath}.attributes.memory_depth")) * block
        rbw = attrs.get("read_bandwidth")
        wbw = attrs.get("write_bandwidth")
        for label, v in (("read_bandwidth", rbw), ("write_bandwidth", wbw)):
            if v is not None and (not isinstance(v, (int, float)) or v <= 0):
                raise AccelmapError(f"expected a positive number of words/cycle, got {v!r}", file=src,
                                    field=f"{cpath}.attributes.{label}")
        source = "ERT"
        et = _table() if ("read" not in actions or area is None) else None
        if "read" in actions:
            r_e = actions["read"]
            w_e = actions.get("write", r_e)
        else:
            source = "table"
            from_table.append(cname)
            if is_dram:
                r_e, w_e = et.dram_energy(word_bits, block, str(attrs.get("type", "LPDDR4")))
            elif capacity is not None and capacity <= 512 and "sram" not in cls.lower():
                r_e, w_e = et.regfile_energy(capacity, word_bits, block, tech_nm)
            else:
                r_e, w_e = et.sram_energy(capacity, word_bits, block, tech_nm, int(attrs.get("n_banks", 1)))
        if area is None:
            if is_dram:
                area = 0.0
            elif capacity is not None and capacity <= 512 and "sram" not in cls.lower():
                area = et.regfile_area(capacity, word_bits, tech_nm)
            else:
                area = et.sram_area(capacity, word_bits, tech_nm, int(attrs.get("n_banks", 1)))
        if inst % cluster:
            raise AccelmapError(f"cluster size {cluster} does not divide the {inst} instances", file=src,
                                field=f"{cpath}.attributes.cluster-size")
        # no leak_energy: Timeloop v3 has no leakage (it ignores an ERT's 'leak' action)
        levels.append(StorageLevel(cname, cls, capacity, word_bits, block, inst, mesh_x,
                                   float(rbw) if rbw is not None else None,
                                   float(wbw) if wbw is not None else None,
                                   float(r_e), float(w_e), float(area), path, source, cluster_size=cluster))
    if compute is None:
        raise AccelmapError("no compute unit; expected a component of class intmac (or another MAC class)",
                            file=src, field="architecture.subtree")
    if not levels:
        raise AccelmapError("no storage level; expected at least a DRAM level", file=src,
                            field="architecture.subtree")
    for i in range(len(levels)):
        outer = levels[i]
        inner = levels[i + 1] if i + 1 < len(levels) else compute
        if inner.instances % outer.instances:
            raise AccelmapError(f"{inner.name} has {inner.instances} instances, not a multiple of "
                                f"{outer.name}'s {outer.instances}", file=src, field="architecture.subtree")
    if from_table:
        import warnings

        warnings.warn(f"{src}: no ERT energies for {', '.join(from_table)}; they come from accelmap's built-in "
                      f"table (give the Accelergy ERT with --ert for Timeloop's numbers)", stacklevel=3)
    return Architecture(name, tuple(levels), compute, tech)


# ---- presets ------------------------------------------------------------------------------

def _preset_dir():
    return resources.files("accelmap") / "data" / "presets"


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_dir().iterdir()
                  if p.name.endswith(".yaml") and p.name.count(".") == 1)


def preset_files(name: str) -> tuple[Path, Path | None, Path | None]:
    d = _preset_dir()
    arch = d / f"{name}.yaml"
    if not arch.is_file():
        raise AccelmapError(f"unknown architecture preset '{name}'; expected one of {list_presets()} "
                            f"or a path to an architecture YAML file", field="arch")
    ert = d / f"{name}.ERT.yaml"
    art = d / f"{name}.ART.yaml"
    return Path(str(arch)), Path(str(ert)) if ert.is_file() else None, Path(str(art)) if art.is_file() else None


def preset_constraints(name: str) -> Path | None:
    p = _preset_dir() / f"{name}.constraints.yaml"
    return Path(str(p)) if p.is_file() else None


# ---- writing Timeloop / Accelergy files ---------------------------------------------------

def architecture_to_timeloop(arch: Architecture) -> tuple[dict, dict, dict]:
    """(architecture YAML, ERT YAML, ART YAML) as dicts, readable back by read_architecture.

    Levels with the same instance count share a subtree node; each step in instances opens a
    nested node ``PE[0..n-1]`` (or ``L<i>[0..n-1]``) whose multiplicity is the fanout.
    """
    tech = f"{arch.technology_nm:g}nm"
    root: dict = {"name": "system", "attributes": {"technology": tech}, "local": []}
    node, inst, path = root, 1, "system"
    ert_tables, art_tables = [], []
    comps = list(arch.levels) + [arch.compute]
    for i, c in enumerate(comps):
        if c.instances != inst:
            mult = c.instances // inst
            name = f"PE[0..{mult - 1}]" if c is arch.compute or i == len(arch.levels) - 1 or \
                all(x.instances == c.instances for x in comps[i:]) else f"L{i}[0..{mult - 1}]"
            child = {"name": name, "local": []}
            node.setdefault("subtree", []).append(child)
            node, inst, path = child, c.instances, f"{path}.{name}"
        attrs: dict = {}
        if isinstance(c, StorageLevel):
            attrs["word-bits"] = c.word_bits
            attrs["block-size"] = c.block_size
            if c.capacity is not None:
                if c.capacity % c.block_size == 0:
                    attrs["memory_depth"] = c.capacity // c.block_size
                    attrs["memory_width"] = c.word_bits * c.block_size * c.cluster_size
                    if c.cluster_size > 1:
                        attrs["cluster-size"] = c.cluster_size
                else:
                    attrs["memory_depth"] = c.capacity
                    attrs["memory_width"] = c.word_bits
            elif c.cluster_size > 1:
                attrs["cluster-size"] = c.cluster_size
            if c.read_bw is not None:
                attrs["read_bandwidth"] = c.read_bw
            if c.write_bw is not None:
                attrs["write_bandwidth"] = c.write_bw
            actions = [{"name": "read", "arguments": {}, "energy": c.read_energy},
                       {"name": "write", "arguments": {}, "energy": c.write_energy}]
        else:
            attrs["datawidth"] = c.word_bits
            actions = [{"name": "mac_random", "arguments": {}, "energy": c.energy}]
        if c.instances > 1:
            attrs["meshX"] = c.mesh_x
        node["local"].append({"name": c.name, "class": c.cls, "attributes": attrs})
        full = f"{path}.{c.name}"
        ert_tables.append({"name": full, "actions": actions})
        art_tables.append({"name": full, "area": c.area})
    doc = {"architecture": {"version": 0.3, "subtree": [root]}}
    return doc, {"ERT": {"version": "0.4", "tables": ert_tables}}, {"ART": {"version": "0.4", "tables": art_tables}}


def write_architecture(arch: Architecture, directory: str | Path, stem: str | None = None) -> tuple[Path, Path, Path]:
    """Write ``STEM.yaml``, ``STEM.ERT.yaml`` and ``STEM.ART.yaml`` into ``directory``."""
    from accelmap.yamlio import dump_yaml

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = stem or arch.name
    paths = (d / f"{stem}.yaml", d / f"{stem}.ERT.yaml", d / f"{stem}.ART.yaml")
    for p, doc in zip(paths, architecture_to_timeloop(arch)):
        p.write_text(dump_yaml(doc))
    return paths
