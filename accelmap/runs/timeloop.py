"""Export to Timeloop v0.3 inputs: what ``accelmap export timeloop`` writes.

An export directory holds ``arch.yaml`` with its Accelergy tables (``arch.ERT.yaml``,
``arch.ART.yaml``; Timeloop reads them instead of calling Accelergy), ``constraints.yaml``,
``problems/<layer>.yaml`` per unique layer, and for an ``accelmap map`` run directory also
``mappings/<layer>.yaml`` (the best mapping found), ``expected.json`` (accelmap's energy and
cycles for each) and ``mapper.yaml`` (the run's search settings in Timeloop's terms).
``README.txt`` lists the ``timeloop-model`` and ``timeloop-mapper`` commands to run there.
Everything written reads back with :func:`~accelmap.arch.load.read_architecture`,
:func:`~accelmap.workload.load.read_problem_yaml`, :func:`~accelmap.mapspace.constraints.read_constraints`
and :func:`~accelmap.mapping.mapping.read_mapping`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from accelmap.arch.architecture import Architecture, write_architecture
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import Mapping, read_mapping
from accelmap.mapspace.constraints import Constraints
from accelmap.model.evaluation import evaluate_mapping
from accelmap.model.objective import Objective
from accelmap.search.network import DEFAULT_BUDGET, DEFAULT_PATIENCE
from accelmap.workload.load import read_problem_yaml
from accelmap.workload.network import Layer
from accelmap.workload.workload import Workload, problem_to_dict
from accelmap.yamlio import dump_yaml

ARCH_STEM = "arch"
# accelmap metric -> Timeloop optimization metric (Timeloop compares a list lexicographically)
TIMELOOP_METRICS = {"edp": "edp", "energy": "energy", "cycles": "delay", "latency": "delay"}


@dataclass(frozen=True)
class ExportedLayer:
    name: str
    problem: str  # path relative to the export directory
    mapping: str | None = None
    energy_pJ: float | None = None  # accelmap's evaluation of the mapping
    cycles: float | None = None


@dataclass(frozen=True)
class RunLayer:
    """One layer of an ``accelmap map`` run directory: its workload and best mapping."""

    workload: Workload
    mapping: Mapping | None
    count: int


def _read_summary(run_dir: str | Path) -> dict:
    run = Path(run_dir)
    path = run / "summary.json"
    if not run.is_dir():
        raise AccelmapError("expected an accelmap map run directory (with summary.json)", file=str(run))
    if not path.is_file():
        raise AccelmapError("missing summary.json; expected an accelmap map run directory", file=str(run))
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AccelmapError(f"invalid JSON at line {exc.lineno}: {exc.msg}", file=str(path)) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("layers"), list):
        raise AccelmapError("missing required field; expected a 'layers' list", file=str(path), field="layers")
    return summary


def read_run_settings(run_dir: str | Path) -> dict:
    """The search settings an ``accelmap map`` run recorded (summary.json ``settings``)."""
    return _read_summary(run_dir).get("settings", {}) or {}


def run_arch(settings: dict) -> str:
    """The preset a run was mapped on; an error when it was an architecture file."""
    from accelmap.arch.architecture import list_presets

    name = settings.get("arch")
    if name not in list_presets() and settings.get("arch_file") and Path(settings["arch_file"]).is_file():
        return settings["arch_file"]  # the architecture file the run recorded
    if name not in list_presets():
        raise AccelmapError("missing --arch; expected a preset name or the architecture YAML the run used"
                            + (f" ('{name}')" if name else ""), field="--arch")
    return name


def export_constraints(spec: str | None, arch_spec: str, settings: dict) -> Constraints:
    """``spec`` (a constraint YAML or 'none'); else the run's constraints; else the preset's."""
    from accelmap.arch.architecture import preset_constraints
    from accelmap.mapspace.constraints import read_constraints

    if spec is not None:
        return Constraints() if spec.lower() == "none" else read_constraints(spec)
    if settings.get("constraints"):  # a run: the file it read, or none
        src = settings["constraints"]
        if src == Constraints().source:
            return Constraints()
        if not Path(src).is_file():
            raise AccelmapError(f"the run's constraint file {src} is not there; give --constraints FILE or none",
                                field="--constraints")
        from accelmap.spec import looks_like_v4

        if looks_like_v4(src):  # the constraints of a v0.4 architecture's nodes
            from accelmap.mapspace.timeloop_v4 import v4_architecture_constraints

            return v4_architecture_constraints(src)
        return read_constraints(src)
    from accelmap.spec import looks_like_v4

    if looks_like_v4(arch_spec):  # a v0.4 architecture carries its constraints in its nodes
        from accelmap.mapspace.timeloop_v4 import v4_architecture_constraints

        return v4_architecture_constraints(arch_spec)
    path = preset_constraints(arch_spec) if not arch_spec.endswith((".yaml", ".yml")) else None
    return read_constraints(path) if path else Constraints()


def read_run(run_dir: str | Path, arch: Architecture) -> tuple[dict, list[RunLayer]]:
    """(settings, layers) of an ``accelmap map`` run directory, mappings checked on ``arch``."""
    run = Path(run_dir)
    summary = _read_summary(run)
    path = run / "summary.json"
    settings = summary.get("settings", {}) or {}
    if settings.get("arch") and settings["arch"] != arch.name:
        raise AccelmapError(f"the run was mapped on '{settings['arch']}', not '{arch.name}'; give the run's "
                            f"architecture", field="--arch")
    out = []
    for i, entry in enumerate(summary["layers"]):
        if not isinstance(entry, dict) or "problem_file" not in entry:
            raise AccelmapError("missing required field; expected 'problem_file'", file=str(path),
                                field=f"layers[{i}].problem_file")
        w = read_problem_yaml(run / entry["problem_file"], name=entry.get("name"))
        m = None
        if entry.get("found", True) and entry.get("mapping_file") and (run / entry["mapping_file"]).is_file():
            mfile = run / entry["mapping_file"]
            m = read_mapping(mfile, arch.level_names)
            m.check(w, arch, str(mfile))
        out.append(RunLayer(w, m, int(entry.get("count", 1))))
    return settings, out


def mapper_settings(objective: str = "edp", budget: int | None = None, patience: int | None = None,
                    threads: int = 2, optimizer: str = "annealing",
                    require: tuple[str, ...] | list[str] = ()) -> tuple[dict, list[str]]:
    """Timeloop ``mapper:`` settings closest to an accelmap search, and notes on what differs.

    The objective becomes ``optimization-metrics`` (edp, energy, delay; a ``lex:`` objective
    keeps its order); the budget becomes ``search-size`` (Timeloop counts valid mappings over
    all threads, accelmap every evaluation) and ``timeout``; patience becomes
    ``victory-condition`` (per thread in Timeloop; 0 disables both there).
    """
    notes = [f"accelmap searched with the '{optimizer}' optimizer; Timeloop's closest is its random-pruned "
             f"search, which takes no seed"]
    obj = Objective.parse(objective, require)
    names = [m for m, _ in obj.terms]
    if (obj.lexicographic or len(names) == 1) and all(m in TIMELOOP_METRICS for m in names):
        metrics = [TIMELOOP_METRICS[m] for m in names]
    else:
        metrics = ["edp"]
        notes.append(f"objective '{obj.name}' has no Timeloop equivalent; optimizing edp instead")
    if obj.constraints:
        notes.append("result constraints (" + ", ".join(f"{m}{op}{v:g}" for m, op, v in obj.constraints)
                     + ") have no Timeloop equivalent and are left out")
    mapper = {"optimization-metrics": metrics, "live-status": False, "num-threads": max(1, int(threads)),
              "algorithm": "random-pruned"}
    if budget:
        mapper["search-size"] = int(budget)
        mapper["timeout"] = int(budget)
        notes.append(f"search-size {budget}: accelmap's budget counts every evaluation, Timeloop counts valid "
                     f"mappings")
    mapper["victory-condition"] = int(patience or 0)
    mapper["log-stats"] = False
    mapper["log-suboptimal"] = False
    return {"mapper": mapper}, notes


def _safe_stem(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "layer"
    base, k = stem, 1
    while stem in taken:
        k += 1
        stem = f"{base}_{k}"
    taken.add(stem)
    return stem


def export_timeloop(out: str | Path, arch: Architecture, constraints: Constraints,
                    layers: list[Layer] | None = None, run: str | Path | None = None,
                    fmt: str = "v3") -> list[ExportedLayer]:
    """Write the Timeloop inputs for ``arch`` (and ``layers``, or a map run's layers and
    mappings) into ``out``; return what was written per layer. ``fmt`` "v4" writes Timeloop
    v0.4 files (see :func:`export_timeloop_v4`); "v3" writes a v0.4 design's containers as
    storage levels of depth 0 that bypass every tensor, which Timeloop v3 evaluates exactly as
    v4 evaluates the containers (multicast analysed per fanout level), leakage aside."""
    if fmt not in ("v3", "v4"):
        raise AccelmapError(f"unknown format '{fmt}'; expected v3 or v4", field="--format")
    if layers is not None and run is not None:
        raise AccelmapError("give either a network or a run directory, not both", field="--run")
    settings: dict = {}
    if run is not None:
        settings, run_layers = read_run(run, arch)
    else:
        run_layers = [RunLayer(layer.workload, None, layer.count) for layer in layers or []]
    for rl in run_layers:  # everything is checked before anything is written
        constraints.check(rl.workload, arch)
    if fmt == "v4":
        export_timeloop_v4(out, arch, constraints, [Layer(rl.workload, rl.count) for rl in run_layers],
                           {rl.workload.name: rl.mapping for rl in run_layers if rl.mapping is not None})
        return [ExportedLayer(rl.workload.name, f"problems/{rl.workload.name}.yaml") for rl in run_layers]
    arch = v3_storage_classes(arch)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    write_architecture(arch, d, ARCH_STEM)
    constraints.write(d / "constraints.yaml")
    mapper, notes = mapper_settings(settings.get("objective", "edp"), settings.get("budget", DEFAULT_BUDGET),
                                    settings.get("patience", DEFAULT_PATIENCE), settings.get("workers", 2),
                                    settings.get("optimizer", "annealing"), settings.get("require", ()))
    header = "".join(f"# {n}\n" for n in ["accelmap search settings translated to Timeloop's mapper:"] + notes)
    (d / "mapper.yaml").write_text(header + dump_yaml(mapper))

    exported: list[ExportedLayer] = []
    taken: set[str] = set()
    if run_layers:
        (d / "problems").mkdir(exist_ok=True)
    if any(rl.mapping is not None for rl in run_layers):
        (d / "mappings").mkdir(exist_ok=True)
    for rl in run_layers:
        stem = _safe_stem(rl.workload.name, taken)
        prob = f"problems/{stem}.yaml"
        (d / prob).write_text(dump_yaml(problem_to_dict(rl.workload)))
        if rl.mapping is None:
            exported.append(ExportedLayer(rl.workload.name, prob))
            continue
        mfile = f"mappings/{stem}.yaml"
        rl.mapping.write(d / mfile)
        c = evaluate_mapping(rl.workload, arch, rl.mapping).costs
        exported.append(ExportedLayer(rl.workload.name, prob, mfile, float(c.energy[0]), float(c.cycles[0])))
    if any(e.mapping for e in exported):
        (d / "expected.json").write_text(json.dumps(
            {"arch": arch.name, "note": "accelmap's evaluation of each exported mapping on arch.yaml",
             "layers": [e.__dict__ for e in exported]}, indent=1))
    (d / "README.txt").write_text(_readme(arch, exported, run))
    return exported


def _readme(arch: Architecture, exported: list[ExportedLayer], run) -> str:
    tables = f"{ARCH_STEM}.yaml {ARCH_STEM}.ERT.yaml {ARCH_STEM}.ART.yaml"
    lines = [f"Timeloop v0.3 inputs exported by accelmap for {arch.name}"
             + (f" from the run {run}" if run else "") + ".",
             f"{tables}: the architecture with its Accelergy energy (ERT) and area (ART) tables; Timeloop",
             "uses the tables instead of calling Accelergy. constraints.yaml: the dataflow constraints.",
             "mapper.yaml: the search settings (see its comments). Run the commands in this directory;",
             "timeloop-model/-mapper write timeloop-model.* / timeloop-mapper.* into the -o directory.", ""]
    with_map = [e for e in exported if e.mapping]
    if with_map:
        lines.append("Evaluate accelmap's mappings (expected.json has accelmap's energy and cycles for each):")
        for e in with_map:
            o = f"out/{Path(e.problem).stem}"
            lines.append(f"mkdir -p {o} && timeloop-model {tables} {e.problem} {e.mapping} -o {o}")
        lines.append("")
    if exported:
        lines.append("Search with Timeloop's mapper:")
        for e in exported:
            o = f"out/{Path(e.problem).stem}.mapper"
            lines.append(f"mkdir -p {o} && timeloop-mapper {tables} {e.problem} constraints.yaml mapper.yaml -o {o}")
        lines.append("")
        lines.append("Read a mapper result back: accelmap evaluate --arch arch.yaml --ert arch.ERT.yaml --art "
                     "arch.ART.yaml --problem problems/LAYER.yaml --mapping out/LAYER.mapper/timeloop-mapper.map.txt")
    else:
        lines.append("No layers exported; give --network or --run for problem (and mapping) files.")
    return "\n".join(lines) + "\n"


# ---- Timeloop v0.4 --------------------------------------------------------------------------
# v0.4 writes the same design as nodes: levels that share an instance count follow each other,
# and each step in instances is a !Container with its mesh (meshX/meshY). accelmap's fanout
# levels (class dummy_storage, read from v0.4 containers) are written back as those containers,
# under their own names, so mappings can keep targeting ``inter_<name>_spatial``.

def _v4_factors(items) -> str:
    return " ".join(f"{d}={f}" for d, f in items)


def _v4_node_constraints(constraints: Constraints | None, level: str, container: bool) -> dict:
    if constraints is None:
        return {}
    c = constraints.at(level)
    out: dict = {}
    if (c.keep or c.bypass) and not container:
        ds = {}
        if c.keep:
            ds["keep"] = list(dict.fromkeys(c.keep))
        if c.bypass:
            ds["bypass"] = list(dict.fromkeys(c.bypass))
        out["dataspace"] = ds
    if (c.temporal or c.permutation) and not container:
        t: dict = {}
        if c.temporal:
            t["factors"] = _v4_factors(c.temporal)
        if c.permutation:
            t["permutation"] = list(c.permutation)
        out["temporal"] = t
    if c.spatial or c.spatial_permutation or c.spatial_split is not None:
        s: dict = {}
        if c.spatial:
            s["factors"] = _v4_factors(c.spatial)
        if c.spatial_permutation:
            s["permutation"] = list(c.spatial_permutation)
        if c.spatial_split is not None:
            s["split"] = c.spatial_split
        out["spatial"] = s
    return out


def architecture_to_v4(arch: Architecture, constraints: Constraints | None = None) -> tuple[dict, dict, dict]:
    """(v0.4 architecture document with :class:`~accelmap.spec.Node` values, ERT, ART) for ``arch``;
    node constraints from ``constraints`` (fanout levels' bypasses are implied, not written)."""
    from accelmap.arch.architecture import StorageLevel
    from accelmap.arch.timeloop_v4 import DUMMY_CLASS
    from accelmap.spec import Node

    nodes: list = [Node("Container", {"name": "system", "attributes": {"technology": f"{arch.technology_nm:g}nm"}})]
    ert, art = [], []
    inst, mesh_x = 1, 1
    comps = list(arch.levels) + [arch.compute]
    k = 0
    for i, c in enumerate(comps):
        is_dummy = isinstance(c, StorageLevel) and c.cls == DUMMY_CLASS
        nxt = comps[i + 1] if i + 1 < len(comps) else None
        if is_dummy:
            if c.instances != inst:
                raise AccelmapError(f"fanout level {c.name} has {c.instances} instances, expected {inst}",
                                    field=c.name)
            cname = c.name[len("inter_"):-len("_spatial")] if c.name.startswith("inter_") and \
                c.name.endswith("_spatial") else c.name
            mx, my = nxt.mesh_x // max(1, mesh_x), (nxt.instances // nxt.mesh_x) // max(1, inst // mesh_x)
            body: dict = {"name": cname, "spatial": {"meshX": mx, "meshY": my}}
            cons = _v4_node_constraints(constraints, c.name, True)
            if cons:
                body["constraints"] = cons
            nodes.append(Node("Container", body))
            inst, mesh_x = nxt.instances, nxt.mesh_x
            continue
        if c.instances != inst:  # a fanout right above this level, without a named container
            mx = c.mesh_x // max(1, mesh_x)
            my = (c.instances // c.mesh_x) // max(1, inst // mesh_x)
            k += 1
            nodes.append(Node("Container", {"name": f"fanout{k}", "spatial": {"meshX": mx, "meshY": my}}))
            inst, mesh_x = c.instances, c.mesh_x
        full = f"system_top_level.{c.name}[1..{c.instances}]"
        if isinstance(c, StorageLevel):
            attrs: dict = {"datawidth": c.word_bits, "width": c.word_bits * c.block_size * c.cluster_size}
            if c.cluster_size > 1:
                attrs.update(cluster_size=c.cluster_size, block_size=c.block_size)
            if c.capacity is not None:
                if c.capacity % c.block_size:
                    attrs.update(width=c.word_bits * c.cluster_size, depth=c.capacity, block_size=1)
                else:
                    attrs["depth"] = c.capacity // c.block_size
            if c.read_bw is not None:
                attrs["read_bandwidth"] = c.read_bw
            if c.write_bw is not None:
                attrs["write_bandwidth"] = c.write_bw
            body = {"name": c.name, "class": c.cls, "attributes": attrs}
            cons = _v4_node_constraints(constraints, c.name, False)
            if cons:
                body["constraints"] = cons
            actions = [{"name": "read", "arguments": {}, "energy": c.read_energy},
                       {"name": "write", "arguments": {}, "energy": c.write_energy},
                       {"name": "update", "arguments": {}, "energy": c.write_energy},
                       {"name": "leak", "arguments": {}, "energy": c.leak_energy}]
        else:
            body = {"name": c.name, "class": c.cls, "attributes": {"datawidth": c.word_bits}}
            actions = [{"name": "compute", "arguments": {}, "energy": c.energy},
                       {"name": "leak", "arguments": {}, "energy": 0.0}]
        nodes.append(Node("Component", body))
        ert.append({"name": full, "actions": actions})
        art.append({"name": full, "area": c.area})
    doc = {"architecture": {"version": 0.4, "nodes": nodes}}
    return doc, {"ERT": {"version": "0.4", "tables": ert}}, {"ART": {"version": "0.4", "tables": art}}


def dump_v4_yaml(data) -> str:
    """YAML with the v0.4 node tags (a SafeDumper subclass; readable by accelmap.spec)."""
    import yaml

    from accelmap.spec import Node

    class _Dumper(yaml.SafeDumper):
        pass

    def rep(dumper, node):
        return dumper.represent_mapping(f"!{node.tag}", node.body)

    _Dumper.add_representer(Node, rep)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def problem_to_v4(w: Workload) -> dict:
    doc = problem_to_dict(w)
    p = doc["problem"]
    shape = dict(p["shape"])
    shape["data_spaces"] = [{("read_write" if k == "read-write" else k): v for k, v in ds.items()}
                            for ds in shape.pop("data-spaces")]
    return {"problem": {"version": 0.4, "shape": shape, "instance": p["instance"]}}


def mapping_to_v4(m: Mapping) -> dict:
    """The mapper's map.yaml layout; fanout levels are written with their ``inter_*_spatial`` names."""
    return m.to_timeloop()


_V3_STORAGE = ("dram", "sram", "regfile", "smartbuffer", "storage", "buffer")


def v3_storage_classes(arch: Architecture) -> Architecture:
    """Timeloop v0.3 knows a storage level by its class (DRAM, SRAM, regfile, smartbuffer...);
    v0.4 designs name Accelergy classes it does not know (aladdin_register): those are written
    as regfile (SRAM above 512 words). Energies and areas come from the ERT/ART either way."""
    from dataclasses import replace as dc_replace

    levels = tuple(lv if any(k in lv.cls.lower() for k in _V3_STORAGE)
                   else dc_replace(lv, cls="regfile" if (lv.capacity or 0) <= 512 else "SRAM") for lv in arch.levels)
    return dc_replace(arch, levels=levels)


def v4_mapper_settings(objective: str = "edp") -> dict:
    metrics = {"edp": "edp", "energy": "energy", "cycles": "delay", "latency": "delay"}
    return {"mapper": {"version": 0.4, "optimization_metrics": [metrics.get(objective, "edp")],
                       "live_status": False, "num_threads": 2, "algorithm": "random_pruned"}}


def export_timeloop_v4(out: str | Path, arch: Architecture, constraints: Constraints,
                       layers: list[Layer] | None = None, mappings: dict[str, Mapping] | None = None) -> list[Path]:
    """Write ``arch.yaml`` (v0.4 nodes with their constraints), ``arch.ERT.yaml``/``arch.ART.yaml``,
    ``problems/<layer>.yaml`` (v0.4) and ``mappings/<layer>.yaml`` (map.yaml layout) and
    ``mapper.yaml`` into ``out``; return the files written."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    doc, ert, art = architecture_to_v4(arch, constraints)
    written = []
    for name, data in ((f"{ARCH_STEM}.yaml", doc), (f"{ARCH_STEM}.ERT.yaml", ert), (f"{ARCH_STEM}.ART.yaml", art),
                       ("mapper.yaml", v4_mapper_settings())):
        (d / name).write_text(dump_v4_yaml(data))
        written.append(d / name)
    taken: set[str] = set()
    for layer in layers or []:
        w = layer.workload
        stem = _safe_stem(w.name, taken)
        (d / "problems").mkdir(exist_ok=True)
        (d / "problems" / f"{stem}.yaml").write_text(dump_v4_yaml(problem_to_v4(w)))
        written.append(d / "problems" / f"{stem}.yaml")
        if mappings and w.name in mappings:
            (d / "mappings").mkdir(exist_ok=True)
            (d / "mappings" / f"{stem}.yaml").write_text(dump_v4_yaml(mapping_to_v4(mappings[w.name])))
            written.append(d / "mappings" / f"{stem}.yaml")
    return written
