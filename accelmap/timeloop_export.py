"""Export to Timeloop v0.3 inputs: what ``accelmap export timeloop`` writes.

An export directory holds ``arch.yaml`` with its Accelergy tables (``arch.ERT.yaml``,
``arch.ART.yaml``; Timeloop reads them instead of calling Accelergy), ``constraints.yaml``,
``problems/<layer>.yaml`` per unique layer, and for an ``accelmap map`` run directory also
``mappings/<layer>.yaml`` (the best mapping found), ``expected.json`` (accelmap's energy and
cycles for each) and ``mapper.yaml`` (the run's search settings in Timeloop's terms).
``README.txt`` lists the ``timeloop-model`` and ``timeloop-mapper`` commands to run there.
Everything written reads back with :func:`~accelmap.architecture.read_architecture`,
:func:`~accelmap.workload.read_problem_yaml`, :func:`~accelmap.constraints.read_constraints`
and :func:`~accelmap.mapping.read_mapping`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from accelmap.architecture import Architecture, write_architecture
from accelmap.constraints import Constraints
from accelmap.errors import AccelmapError
from accelmap.evaluation import evaluate_mapping
from accelmap.mapper import DEFAULT_BUDGET, DEFAULT_PATIENCE
from accelmap.mapping import Mapping, read_mapping
from accelmap.network import Layer
from accelmap.objective import Objective
from accelmap.workload import Workload, problem_to_dict, read_problem_yaml
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
    from accelmap.architecture import list_presets

    name = settings.get("arch")
    if name not in list_presets():
        raise AccelmapError("missing --arch; expected a preset name or the architecture YAML the run used"
                            + (f" ('{name}')" if name else ""), field="--arch")
    return name


def export_constraints(spec: str | None, arch_spec: str, settings: dict) -> Constraints:
    """``spec`` (a constraint YAML or 'none'); else the run's constraints; else the preset's."""
    from accelmap.architecture import preset_constraints
    from accelmap.constraints import read_constraints

    if spec is not None:
        return Constraints() if spec.lower() == "none" else read_constraints(spec)
    if settings.get("constraints"):  # a run: the file it read, or none
        src = settings["constraints"]
        if src == Constraints().source:
            return Constraints()
        if not Path(src).is_file():
            raise AccelmapError(f"the run's constraint file {src} is not there; give --constraints FILE or none",
                                field="--constraints")
        return read_constraints(src)
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
                    layers: list[Layer] | None = None, run: str | Path | None = None) -> list[ExportedLayer]:
    """Write the Timeloop inputs for ``arch`` (and ``layers``, or a map run's layers and
    mappings) into ``out``; return what was written per layer."""
    if layers is not None and run is not None:
        raise AccelmapError("give either a network or a run directory, not both", field="--run")
    settings: dict = {}
    if run is not None:
        settings, run_layers = read_run(run, arch)
    else:
        run_layers = [RunLayer(layer.workload, None, layer.count) for layer in layers or []]
    for rl in run_layers:  # everything is checked before anything is written
        constraints.check(rl.workload, arch)
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
