"""The ``accelmap`` command line. User mistakes print one line and exit with code 2."""

from __future__ import annotations

import json
import sys
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from accelmap.errors import AccelmapError
from accelmap.options import check_device, require_positive

_IMPORTED = time.time()  # start-up's origin where /proc is missing (see _process_start)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Map DNN layers onto spatial accelerators and co-design the hardware.")
zoo_app = typer.Typer(help="Built-in networks.", invoke_without_command=True)
app.add_typer(zoo_app, name="zoo")
dcp_app = typer.Typer(help="Dataflow Code Propagation: dataset, predictor training, search, few-shot transfer.",
                      no_args_is_help=True)
app.add_typer(dcp_app, name="dcp")
export_app = typer.Typer(help="Write accelmap inputs and results in other tools' formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")
console = Console(width=None if sys.stdout.isatty() else 150)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def _warn(message: str) -> None:
    console.print(f"warning: {message}", style="yellow", markup=False)


@app.command()
def evaluate(
    arch: str = typer.Option("eyeriss_like", help="Preset name or Timeloop architecture YAML."),
    problem: Optional[str] = typer.Option(None, help="Timeloop problem YAML (default: resnet18 conv1)."),
    mapping: Optional[str] = typer.Option(None, help="Timeloop mapping YAML or timeloop-mapper.map.txt (default: a "
                                                     "built-in example)."),
    ert: Optional[str] = typer.Option(None, help="Accelergy ERT YAML (energy per action)."),
    art: Optional[str] = typer.Option(None, help="Accelergy ART YAML (area)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    spec: list[str] = typer.Option([], "--spec", help="Timeloop v0.4 spec files (jinja2 templates too) giving the "
                                                      "architecture, problem and mapping, and NAME=VALUE jinja2 "
                                                      "variables; --problem/--mapping replace the spec's."),
) -> None:
    """Evaluate one mapping: energy, cycles, EDP, utilization, area, per-level accesses."""
    from accelmap.model.evaluation import evaluate_files
    from accelmap.runs.spec import evaluate_spec

    device = check_device(device)
    ev = (evaluate_spec(spec, problem, mapping, ert, art, device, _warn) if spec
          else evaluate_files(arch, problem, mapping, ert, art, device))
    d = ev.to_dict()
    if json_out:
        print(json.dumps(d, indent=1))
        return
    console.print(f"[bold]{d['layer']}[/] on [bold]{d['arch']}[/]: {ev.workload.describe()}  "
                  f"({d['macs']:,} MACs)")
    table = Table(show_header=True, header_style="bold")
    for col in ("level", "tensor", "tile (words)", "reads", "fills", "updates", "energy (pJ)"):
        table.add_column(col, justify="right" if col not in ("level", "tensor") else "left")
    for lv in d["levels"]:
        for tname, s in lv["tensors"].items():
            table.add_row(lv["name"], tname, _fmt(s["tile"]), _fmt(s["reads"]), _fmt(s["fills"]),
                          _fmt(s["updates"]), _fmt(s["energy_pJ"]))
    table.add_row(ev.arch.compute.name, "-", "-", "-", "-", "-", _fmt(d["energy_pJ_by_component"][ev.arch.compute.name]))
    console.print(table)
    console.print("accesses are per instance; energy is over all instances")
    status = "valid" if d["valid"] else f"INVALID ({d['reason']})"
    console.print(f"energy {d['energy_pJ'] / 1e6:,.2f} uJ ({d['pJ_per_mac']:.2f} pJ/MAC)   cycles {d['cycles']:,.0f}   "
                  f"EDP {d['edp_J_cycle']:.4g} J*cycle   utilization {d['utilization']:.3f}   "
                  f"area {d['area_um2'] / 1e6:.3f} mm^2   {status}")


@app.command("map")
def map_cmd(
    network: Optional[str] = typer.Argument(None, help="A zoo network (accelmap zoo), a Timeloop problem YAML, a "
                                                       "folder of problem files or an ONNX model (.onnx); default "
                                                       "resnet18, or the --spec problem."),
    arch: str = typer.Option("eyeriss_like", help="Preset name or Timeloop architecture YAML."),
    ert: Optional[str] = typer.Option(None, help="Accelergy ERT YAML."),
    art: Optional[str] = typer.Option(None, help="Accelergy ART YAML."),
    constraints: Optional[str] = typer.Option(
        None, help="Timeloop constraint YAML; default: the preset's dataflow constraints; 'none' for none."),
    objective: str = typer.Option("edp", help="edp, energy, cycles, power, area, '0.7*energy+0.3*cycles', "
                                              "'lex:cycles,energy'."),
    require: list[str] = typer.Option([], help="Constraints on results, e.g. 'utilization>=0.5', 'power<=150'."),
    optimizer: str = typer.Option("portfolio", help="A registered optimizer (accelmap optimizers)."),
    budget: int = typer.Option(100_000, help="Model evaluations per layer (at most)."),
    patience: int = typer.Option(10_000, help="Stop a layer after this many legal evaluations without "
                                              "improvement, as Timeloop's victory condition (0: use the whole budget)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same mappings."),
    workers: int = typer.Option(2, help="Layers searched in parallel (processes)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Search the layers on a Ray cluster instead: 'auto' "
                                                          "(the running one, else a local one) or its address."),
    out: Optional[str] = typer.Option(None, help="Run directory (default: runs/NETWORK_ARCH_TIME)."),
    device: str = typer.Option("cpu", help="Where the cost model runs: cpu, or cuda (layers then run one after "
                                           "another in this process, sharing the GPU)."),
    spec: list[str] = typer.Option([], "--spec", help="Timeloop v0.4 spec files (and NAME=VALUE jinja2 variables): "
                                                      "the architecture with its constraints, and the problem "
                                                      "when no NETWORK is given."),
    imperfect: bool = typer.Option(False, "--imperfect", help="Also search imperfect factors (ends that need not "
                                                              "divide, Timeloop's P=8,5): each layer's perfect "
                                                              "search, then the imperfect one seeded with it, "
                                                              "over the whole --budget; never worse, 4-15x the "
                                                              "search time."),
) -> None:
    """Find the best mapping of every unique layer of a network; write a run directory."""
    if spec:
        from accelmap.runs.spec import spec_map_files

        arch, ert, art, spec_problem = spec_map_files(spec, ert, art, _warn)
        network = network or spec_problem
    _run_map(network or "resnet18", arch, ert=ert, art=art, constraints=constraints, objective=objective,
             require=tuple(require), optimizer=optimizer, budget=budget, patience=patience, seed=seed, workers=workers, ray=ray,
             device=device, out=out, imperfect=imperfect)


def _run_map(network: str, arch: str, **kwargs) -> None:
    """Plan (every input checked), compile the kernel once if due, search with a progress bar,
    print the table; shared by ``map`` and ``dcp search`` through the API, not each other."""
    # the cheap checks first: a mistyped number is reported before torch is imported
    require_positive(kwargs["budget"], "--budget", "a positive number of evaluations")
    require_positive(kwargs["workers"], "--workers", "at least 1")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from accelmap.runs.map import in_process, plan_executor, plan_map, run_map
    from accelmap.search.compile import compile_search, needs_compile

    plan = plan_map(network, arch, on_warning=_warn, **kwargs)
    parallel = in_process(plan)
    _compile_step(needs_compile(plan.device, parallel), lambda: compile_search(parallel))
    executor = plan_executor(plan)
    if plan.ray:
        console.print(f"mapping on {executor.describe()}")
    with Progress(TextColumn("[bold]mapping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=len(plan.layers))
        res = run_map(plan, on_done=lambda o: bar.update(task, advance=1, description=o.name), executor=executor,
                      started=_process_start())
    _print_map_table(res.outcomes, res.totals, plan.arch, plan.objective, res.wall_seconds, len(plan.layers),
                     res.startup_seconds)
    console.print(f"run directory: {res.run_dir}")
    if res.unmapped and len(res.unmapped) == len(res.outcomes):
        raise AccelmapError(res.unmapped[0].note or "no legal mapping")
    for o in res.unmapped:
        console.print(f"[yellow]warning: {o.name} was not mapped: {o.note}[/]")
    if not res.complete:
        console.print(f"[yellow]interrupted: {len(res.outcomes)} of {len(plan.layers)} layers finished and were "
                      f"saved[/]")
        raise typer.Exit(130)


def _process_start() -> float:
    """When this process started, on the time.time() scale: from /proc (Linux), so interpreter
    start-up and imports count as start-up; elsewhere when this module was imported."""
    import os

    try:
        with open("/proc/self/stat") as f:  # field 22, after the parenthesised command name
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED


def _compile_step(needed: bool, compile_fn) -> None:
    """The one-off compilation (cost kernel, search moves) as its own step on screen, not charged
    to any layer."""
    if not needed:
        return
    try:
        with console.status("compiling the cost kernel and search moves, once after install (about 15-35 s on 2 idle cores)"):
            seconds = compile_fn()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted while compiling: nothing was searched yet[/]")
        raise typer.Exit(130) from None
    console.print(f"compiled the cost kernel and search moves in {seconds:.0f} s (cached for later runs)")


def _print_map_table(outcomes, tot, arch, obj, wall, n_layers: int, startup: float = 0.0) -> None:
    table = Table(title=f"{arch.name}, objective {obj.name}", header_style="bold")
    for col in ("layer", "dims", "count", "MACs", "energy (uJ)", "cycles", "EDP (J*cyc)", "util",
                "gap E", "gap cyc", "search (s)"):
        table.add_column(col, justify="left" if col in ("layer", "dims") else "right")
    for o in outcomes:
        dims = " ".join(f"{d}{b}" for d, b in o.dims.items() if b > 1)
        if not o.found:
            table.add_row(o.name, dims, str(o.count), f"{o.macs:,}", "no legal mapping", "", "", "", "", "",
                          f"{o.seconds:.2f}")
            continue
        table.add_row(o.name, dims, str(o.count), f"{o.macs:,}", f"{o.energy_pJ / 1e6:,.2f}", f"{o.cycles:,.0f}",
                      f"{o.edp * 1e-12:.4g}", f"{o.utilization:.2f}", f"{o.gap_energy:.2f}", f"{o.gap_cycles:.2f}",
                      f"{o.seconds:.2f}")
    console.print(table)
    if tot.get("partial"):
        all_macs = tot["macs"] + tot["unmapped_macs"]
        console.print(f"[yellow]partial totals: {len(tot['unmapped'])} layer(s) have no legal mapping and are left "
                      f"out ({', '.join(tot['unmapped'])}: {tot['unmapped_macs'] / 1e9:.3f} GMACs); the totals below "
                      f"cover {tot['macs'] / 1e9:.3f} of {all_macs / 1e9:.3f} GMACs[/]")
    scope = f" ({len(outcomes)} of {n_layers} unique layers searched)" if len(outcomes) < n_layers else ""
    console.print(f"network{' (partial)' if tot.get('partial') or scope else ''}{scope}: {tot['macs'] / 1e9:.3f} GMACs, energy {tot['energy_pJ'] / 1e6:,.1f} uJ, "
                  f"cycles {tot['cycles']:,.0f}, EDP {tot['edp'] * 1e-12:.4g} J*cycle, gaps to the lower bound "
                  f"E x{tot['gap_energy'] or float('nan'):.2f} cycles x{tot['gap_cycles'] or float('nan'):.2f}; "
                  f"search {wall:.1f} s (start-up before it: {startup:.1f} s)")


@app.command()
def codesign(
    network: str = typer.Argument("resnet18", help="A zoo network (accelmap zoo), a Timeloop problem YAML or "
                                                   "an ONNX model (.onnx)."),
    arch_space: str = typer.Option("eyeriss_edge", help="Hardware space YAML (base architecture + parameter "
                                                        "ranges) or a built-in space name."),
    constraints: Optional[str] = typer.Option(
        None, help="Timeloop constraint YAML; default: the base preset's dataflow constraints; 'none' for none."),
    objective: str = typer.Option("latency", help="latency, energy, edp, power, area or a weighted sum of logs "
                                                  "such as '0.5*latency+0.5*power'."),
    area_budget: Optional[float] = typer.Option(None, help="Upper bound on area (mm^2)."),
    power_budget: Optional[float] = typer.Option(None, help="Upper bound on power (mW)."),
    latency_budget: Optional[float] = typer.Option(None, help="Upper bound on network latency (cycles)."),
    method: str = typer.Option("gradient", help="gradient (analytical co-optimization), genetic (DiGamma-style) "
                                                "or random."),
    seconds: float = typer.Option(120.0, help="Wall time per co-design run (at most)."),
    designs: Optional[int] = typer.Option(None, help="Stop after this many evaluated designs; a run that ends "
                                                     "this way is reproducible from --seed."),
    pareto: Optional[str] = typer.Option(None, help="Trace a trade-off front instead, e.g. 'latency,power', "
                                                    "'latency,area', 'energy,latency'."),
    points: int = typer.Option(5, help="Runs per front (--pareto), anchors included."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same search."),
    out: Optional[str] = typer.Option(None, help="Run directory (default: runs/codesign_NETWORK_TIME)."),
) -> None:
    """Co-design the hardware and every layer's mapping under area/power/latency budgets."""
    from pathlib import Path

    from accelmap.codesign.base import get_codesigner
    from accelmap.codesign.problem import Budgets
    from accelmap.runs.codesign import FRONT_METRICS, load_inputs, run, sweep, write_codesign_run, write_sweep

    get_codesigner(method)
    if seconds <= 0:
        raise AccelmapError(f"seconds must be positive, got {seconds}", field="--seconds")
    if designs is not None and designs <= 0:
        raise AccelmapError(f"designs must be positive, got {designs}", field="--designs")
    inputs = load_inputs(network, arch_space, constraints, on_warning=_warn)
    space, cons, net_name = inputs.space, inputs.constraints, inputs.network
    budgets = Budgets(area_budget, power_budget, latency_budget)
    run_dir = Path(out) if out else Path("runs") / f"codesign_{net_name}_{time.strftime('%Y%m%d-%H%M%S')}"
    settings = {"network": net_name, "arch_space": space.source, "constraints": cons.source, "objective": objective,
                "budgets": {k: v for k, v in budgets.__dict__.items() if v is not None}, "method": method,
                "seconds": seconds, "designs": designs, "seed": seed}
    make = inputs.problem
    from accelmap.search.compile import compile_search, needs_compile

    _compile_step(needs_compile("cpu", True), lambda: compile_search(True))  # not search time
    if pareto:
        names = tuple(x.strip() for x in pareto.split(","))
        if len(names) != 2 or any(n not in FRONT_METRICS for n in names) or names[0] == names[1]:
            raise AccelmapError(f"expected two different metrics from {', '.join(FRONT_METRICS)}, got '{pareto}'",
                                field="--pareto")
        if points < 2:
            raise AccelmapError(f"a front needs at least 2 points, got {points}", field="--points")
        problem = make(objective, budgets)
        with console.status("tracing the front") as st:
            front = sweep(make, names, budgets, points, method, seconds, seed,
                          on_point=lambda k, i, d: st.update(f"{k} point {i + 1} done"), designs=designs)
        write_sweep(run_dir, problem, front)
        table = Table(title=f"{net_name}: {names[0]} vs {names[1]}", header_style="bold")
        for col in ("sweep", "objective", names[0], names[1], "on front"):
            table.add_column(col)
        for kind in ("epsilon", "weighted"):
            for p in front[kind]:
                table.add_row(kind, p["objective"] + "".join(f" {k}<={v:.4g}" for k, v in p["budgets"].items()),
                              f"{p['point'][0]:.4g}", f"{p['point'][1]:.4g}", "yes" if p["on_front"] else "")
        console.print(table)
        console.print(f"hypervolume (reference {front['reference'][0]:.4g}, {front['reference'][1]:.4g}): "
                      f"epsilon-constraint {front['hypervolume_epsilon']:.4g}, "
                      f"weighted sum {front['hypervolume_weighted']:.4g}; "
                      f"{len(front['missed_by_weighted'])} epsilon point(s) missed by the weighted sum")
        console.print(f"run directory: {run_dir}")
        if not front["complete"]:
            console.print("[yellow]interrupted: the finished points were saved[/]")
            raise typer.Exit(130)
        return
    problem = make(objective, budgets)

    def show(t, d):
        tot = d.totals
        st.update(f"{t:5.1f}s  latency {tot['latency_cycles']:,.0f} cyc  power {tot['power_mW']:,.1f} mW  "
                  f"area {tot['area_mm2']:.3f} mm^2" + ("" if d.feasible else f"  ({d.unmapped} layer(s) unmapped)"
                                                        if d.unmapped else "  (over budget)"))

    with console.status("co-designing") as st:
        result = run(problem, method, seconds, seed, show, designs)
    summary = write_codesign_run(run_dir, problem, result, settings)
    d = result.best
    if d is None:
        if result.interrupted:
            raise typer.Exit(130)
        raise AccelmapError("no design was evaluated; give more --seconds")
    table = Table(title=f"{net_name} on {space.base.name} ({method}, {result.seconds:.0f} s, "
                        f"{result.designs_evaluated:,} designs)", header_style="bold")
    table.add_column("parameter")
    table.add_column("base", justify="right")
    table.add_column("design", justify="right")
    for name, b, v in zip(space.names, problem.base_values().tolist(), d.values.tolist()):
        table.add_row(name, f"{b:g}", f"{v:g}")
    console.print(table)
    t = d.totals
    if not d.unmapped:  # a design that leaves layers unmapped has no network totals to report
        console.print(f"latency {t['latency_cycles']:,.0f} cycles, energy {t['energy_pJ'] / 1e6:,.1f} uJ, "
                      f"power {t['power_mW']:,.1f} mW, area {t['area_mm2']:.3f} mm^2")
    console.print(f"run directory: {run_dir} (design: {summary['architecture']})")
    if result.interrupted:
        console.print("[yellow]interrupted: the best design so far was saved[/]")
        raise typer.Exit(130)
    if d.unmapped:  # the base design was evaluated too, so it leaves layers unmapped as well
        raise AccelmapError("no design found on which every layer has a legal mapping, the base architecture "
                            f"included; at the best point found: {problem.describe_violation(d)}",
                            field="--arch-space")
    if not d.feasible:
        raise AccelmapError(f"no design found meets the budgets; at the best point found: "
                            f"{problem.describe_violation(d)}", field="budgets")


@app.command("sweep")
def sweep_cmd(
    network: str = typer.Argument("resnet18", help="A zoo network (accelmap zoo), a Timeloop problem YAML or "
                                                   "an ONNX model (.onnx)."),
    arch_space: str = typer.Option("eyeriss_edge", help="Hardware space YAML (base architecture + parameter "
                                                        "ranges) or a built-in space name."),
    points: int = typer.Option(8, help="Hardware points sampled from the space."),
    constraints: Optional[str] = typer.Option(
        None, help="Timeloop constraint YAML; default: the base preset's dataflow constraints; 'none' for none."),
    objective: str = typer.Option("edp", help="What each layer's mapping search minimises (as in accelmap map)."),
    optimizer: str = typer.Option("portfolio", help="A registered optimizer (accelmap optimizers)."),
    budget: int = typer.Option(100_000, help="Model evaluations per layer and point (at most)."),
    patience: int = typer.Option(10_000, help="Stop a layer after this many legal evaluations without "
                                              "improvement, as Timeloop's victory condition (0: use the whole budget)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same points and mappings."),
    workers: int = typer.Option(2, help="(point, layer) tasks searched in parallel (processes)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run the tasks on a Ray cluster instead: 'auto' (the "
                                                          "running one, else a local one) or its address."),
    out: Optional[str] = typer.Option(None, help="Output directory (default: runs/sweep_NETWORK_TIME)."),
) -> None:
    """Sample hardware points, map every unique layer on each: per-point energy, latency, EDP, area."""
    from pathlib import Path

    require_positive(points, "--points", "at least 1")
    require_positive(budget, "--budget", "a positive number of evaluations")
    require_positive(workers, "--workers", "at least 1")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from accelmap.arch.space import read_hardware_space, resolve_space
    from accelmap.codesign.sweep import run_sweep, write_sweep_run
    from accelmap.mapspace.load import load_constraints
    from accelmap.model.objective import Objective
    from accelmap.runs.rundir import prepare_run_dir
    from accelmap.search.base import get_optimizer
    from accelmap.search.compile import compile_search, needs_compile
    from accelmap.search.executor import make_executor
    from accelmap.workload.load import load_network

    get_optimizer(optimizer)
    obj = Objective.parse(objective)
    space = read_hardware_space(resolve_space(arch_space))
    net = load_network(network, on_warning=_warn)
    layers, net_name = list(net.unique_layers()), net.name
    cons = load_constraints(constraints, space.base.name)
    run_dir = prepare_run_dir(out, Path("runs") / f"sweep_{net_name}_{time.strftime('%Y%m%d-%H%M%S')}")
    one = workers == 1 or points * len(layers) == 1  # tasks in this process: the kernel runs multi-threaded
    _compile_step(needs_compile("cpu", one) and not ray, lambda: compile_search(one))
    settings = {"network": net_name, "arch_space": space.source, "points": points, "constraints": cons.source,
                "objective": obj.name, "optimizer": optimizer, "budget": budget, "patience": patience, "seed": seed,
                "workers": workers, "ray": ray}
    executor = make_executor(min(workers, points * len(layers)), ray)
    if ray:
        console.print(f"sweeping on {executor.describe()}")
    t0 = time.perf_counter()
    with executor, Progress(TextColumn("[bold]sweeping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=points * len(layers))
        result = run_sweep(layers, space, cons, obj, points, executor, seed, optimizer, budget, patience or None,
                           on_done=lambda k, o: bar.update(task, advance=1, description=f"point {k}: {o.name}"))
    settings["wall_seconds"] = time.perf_counter() - t0
    summary = write_sweep_run(run_dir, result, settings)
    table = Table(title=f"{net_name} on {len(result.points)} points of {space.base.name}", header_style="bold")
    for col in ("point", *space.names, "energy (uJ)", "latency (cycles)", "EDP (J*cyc)", "area (mm^2)", "mapped"):
        table.add_column(col, justify="right")
    for r in summary["points"]:
        table.add_row(str(r["point"]), *(f"{r['values'][k]:g}" for k in space.names), f"{r['energy_pJ'] / 1e6:,.1f}",
                      f"{r['cycles']:,.0f}", f"{r['edp'] * 1e-12:.4g}", f"{r['area_mm2']:.3f}",
                      f"{r['mapped_layers']}/{len(layers)}")
    console.print(table)
    console.print(f"wall {settings['wall_seconds']:.1f} s; output: {run_dir} (summary.json, points.csv, scatter.png, "
                  f"archs/)")
    if not result.complete:
        console.print("[yellow]interrupted: the finished (point, layer) tasks were saved[/]")
        raise typer.Exit(130)


@export_app.command("timeloop")
def export_timeloop_cmd(
    arch: Optional[str] = typer.Option(None, help="Preset name or Timeloop architecture YAML (default: the "
                                                  "run's preset with --run)."),
    ert: Optional[str] = typer.Option(None, help="Accelergy ERT YAML."),
    art: Optional[str] = typer.Option(None, help="Accelergy ART YAML."),
    network: Optional[str] = typer.Option(None, help="A zoo network, a Timeloop problem YAML or an ONNX model: one "
                                                     "problem file per unique layer."),
    run: Optional[str] = typer.Option(None, help="An accelmap map run directory: its problems, best mappings and "
                                                 "search settings."),
    constraints: Optional[str] = typer.Option(
        None, help="Timeloop constraint YAML; default: the run's, else the preset's; 'none' for none."),
    out: str = typer.Option(..., help="Directory to write (arch.yaml, constraints.yaml, problems/, mappings/, "
                                      "mapper.yaml, README.txt)."),
    fmt: str = typer.Option("v3", "--format", help="v3 (Timeloop v0.3 files) or v4 (v0.4: nodes, containers)."),
) -> None:
    """Write Timeloop v0.3 inputs: architecture + ERT/ART, constraints, problems, mappings, mapper settings."""
    from accelmap.arch.load import load_architecture
    from accelmap.runs.timeloop import export_constraints, export_timeloop, read_run_settings, run_arch
    from accelmap.workload.load import load_network

    if network and run:
        raise AccelmapError("give --network or --run, not both (a run names its own layers)", field="--network")
    settings = read_run_settings(run) if run else {}
    arch = arch or run_arch(settings)
    a = load_architecture(arch, ert, art)
    cons = export_constraints(constraints, arch, settings)
    layers = list(load_network(network, on_warning=_warn).unique_layers()) if network else None
    exported = export_timeloop(out, a, cons, layers, run, fmt)
    n_maps = sum(1 for e in exported if e.mapping)
    console.print(f"wrote Timeloop inputs for {a.name} to {out}: arch.yaml (+ ERT/ART), constraints.yaml, "
                  f"mapper.yaml, {len(exported)} problem(s), {n_maps} mapping(s); commands in {out}/README.txt")


@app.command()
def report(
    run_dir: str = typer.Argument(..., help="A run directory of accelmap map, codesign (or a --pareto front) or tune."),
    out: Optional[str] = typer.Option(None, help="HTML file to write (default: RUN_DIR/report.html)."),
) -> None:
    """Write one self-contained HTML page (tables, plots, loop nests) for a run directory."""
    from accelmap.runs.report import write_report
    from accelmap.runs.rundir import check_output_file

    if out:
        check_output_file(out)

    print(write_report(run_dir, out))


@app.command()
def tune(
    layer: str = typer.Argument(..., help="A Timeloop problem YAML or a zoo network (every unique layer)."),
    target: str = typer.Option("vta_like", help="Preset name or Timeloop architecture YAML; a VTA-like target "
                                                "uses VTA's conv2d template, any other its mapping space."),
    tuner: str = typer.Option("xgb-validity", help="random, grid, xgb, xgb-validity or xgb-validity-learned."),
    measurements: int = typer.Option(1000, help="Measurements per layer (logged ones included on --resume)."),
    measurer: str = typer.Option("model", help="model (the target's analytical model) or 'command:CMD' (JSON "
                                               "batch on stdin, JSON results on stdout)."),
    timeout: float = typer.Option(10.0, help="Seconds per configuration for a command measurer."),
    batch_size: int = typer.Option(64, help="Configurations per measurement batch (AutoTVM's plan size)."),
    log: Optional[str] = typer.Option(None, help="The measurement log, JSON lines (default: OUT/records.jsonl)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the log of an interrupted run: measured "
                                                        "configurations are replayed, not measured again."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same measurements."),
    out: Optional[str] = typer.Option(None, help="Run directory (default: runs/tune_LAYER_TARGET_TIME)."),
) -> None:
    """Auto-tune schedule knobs with measurements in the loop (validity-aware AutoTVM)."""

    require_positive(measurements, "--measurements", "a positive number")
    require_positive(batch_size, "--batch-size", "a positive number")
    require_positive(timeout, "--timeout", "a positive number of seconds")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from accelmap.runs.tune import plan_tune, run_tune

    plan = plan_tune(layer, target, tuner=tuner, measurements=measurements, measurer=measurer, timeout=timeout,
                     batch_size=batch_size, log=log, resume=resume, seed=seed, out=out,
                     command="accelmap tune " + " ".join(sys.argv[2:]))
    m, name, log_path, run_dir = plan.measurer, plan.network, plan.log_path, plan.run_dir
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[best]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:

        def on_task(task):
            pid = bar.add_task(task.name, total=measurements, best="")

            def show(r):
                best = f"best {r.best_runtime:,.6g} {m.unit}" if r.best_runtime is not None else "no valid yet"
                bar.update(pid, completed=min(r.measurements, measurements), best=f"{best}, {r.invalid} invalid")
                if r.stopped:  # the bar ends full, at the measurements there were to take
                    bar.update(pid, total=r.measurements, completed=r.measurements)
            return show

        run = run_tune(plan, on_task)
    results, complete = run.results, run.complete
    if not complete:
        console.print("[yellow]interrupted: the finished measurements are in the log; continue with --resume[/]")
    table = Table(title=f"{name} on {plan.target} ({tuner}, {m.describe()})", header_style="bold")
    for col in ("layer", "space", "measured", "new", "invalid", f"best ({m.unit})", "at", "best configuration"):
        table.add_column(col, justify="left" if col in ("layer", "best configuration") else "right")
    for r in results:
        cfg = " ".join(f"{k}={v}" for k, v in (r.best_config or {}).items())
        table.add_row(r.name, f"{r.space_size:,}", str(r.measurements), str(r.new_measurements), str(r.invalid),
                      f"{r.best_runtime:,.6g}" if r.best_runtime is not None else "-",
                      str(r.best_index or "-"), cfg or "no valid configuration")
    console.print(table)
    for r in results:
        if r.stopped:
            console.print(f"{r.name}: stopped at {r.measurements} of {measurements} measurements: {r.stopped}",
                          markup=False)
        elif not r.complete:
            console.print(f"{r.name}: interrupted at {r.measurements} of {measurements} measurements", markup=False)
    for s in plan.skipped:
        console.print(f"skipped {s['name']}: {s['reason']}", markup=False)
    console.print(f"run directory: {run_dir} (log: {log_path})")
    if not complete:
        raise typer.Exit(130)
    missing = [r.name for r in results if r.best_runtime is None]
    if missing:
        raise AccelmapError(f"no valid configuration found for {', '.join(missing)} in {measurements} measurements "
                            f"(see the error codes in {log_path})")


@app.command()
def optimizers() -> None:
    """List the registered mapping optimizers."""
    from accelmap.search.base import OPTIMIZERS

    table = Table("optimizer", "what it does")
    for name, cls in sorted(OPTIMIZERS.items()):
        table.add_row(name, cls.summary)
    console.print(table)


@app.command()
def presets() -> None:
    """List the built-in architecture presets."""
    from accelmap.arch.architecture import list_presets
    from accelmap.arch.load import preset

    table = Table("preset", "levels (outer -> inner)", "PEs", "area (mm^2)")
    for name in list_presets():
        a = preset(name)
        table.add_row(name, " -> ".join(f"{lv.name}" for lv in a.levels) + f" -> {a.compute.name}",
                      str(a.compute.instances), f"{a.area_um2 / 1e6:.3f}")
    console.print(table)


@zoo_app.callback()
def zoo(ctx: typer.Context) -> None:
    """List the built-in networks (``accelmap zoo show NAME`` for layers)."""
    if ctx.invoked_subcommand is not None:
        return
    from accelmap.workload.zoo import DESCRIPTIONS, get_network, list_networks

    table = Table("network", "layers", "unique", "GMACs", "description")
    for name in list_networks():
        net = get_network(name)
        table.add_row(name, str(sum(layer.count for layer in net.layers)), str(len(net.unique_layers())),
                      f"{net.total_macs / 1e9:.2f}", DESCRIPTIONS.get(name, ""))
    console.print(table)


@zoo_app.command("show")
def zoo_show(name: str = typer.Argument(..., help="Network name, e.g. resnet18.")) -> None:
    """Print each unique layer with its dims, count, MACs and tensor sizes."""
    from accelmap.workload.zoo import get_network

    net = get_network(name)
    table = Table("layer", "kind", "dims", "count", "MACs", "tensor sizes (words)")
    for layer in net.unique_layers():
        w = layer.workload
        dims = " ".join(f"{d}={b}" for d, b in zip(w.dims, w.bounds) if b > 1) or "-"
        sizes = " ".join(f"{t.name}={w.tensor_size(t.name):,}" for t in w.tensors)
        table.add_row(w.name, w.kind, dims, str(layer.count), f"{w.macs:,}", sizes)
    console.print(table)
    console.print(f"{net.name}: {len(net.unique_layers())} unique layers, "
                  f"{sum(layer.count for layer in net.layers)} layers, {net.total_macs / 1e9:.3f} GMACs")


def _zoo_layers(networks: str) -> list:
    from accelmap.workload.zoo import get_network

    seen: dict = {}
    for n in networks.split(","):
        for layer in get_network(n.strip()).unique_layers():
            seen.setdefault(layer.workload.signature(), layer)
    return list(seen.values())


@dcp_app.command("dataset")
def dcp_dataset(
    out: str = typer.Option("dcp_data/data.npz", help="Output .npz (a .json manifest is written beside it)."),
    networks: str = typer.Option(",".join(("resnet18", "resnet50", "mobilenet_v2", "vit_b16", "vgg16", "bert_base")),
                                 help="Zoo networks whose unique layers are sampled."),
    arch_space: str = typer.Option("eyeriss_edge", help="Hardware family: a hardware space (YAML or built-in)."),
    # many hardware points with fewer samples each: zero-shot transfer needs the predictor to see
    # how costs move with the hardware more than it needs more mappings of one pair
    hardware: int = typer.Option(96, help="Hardware points drawn from the family (the base included)."),
    per_layer: int = typer.Option(12, help="Hardware points each layer is sampled on."),
    random: int = typer.Option(512, help="Random legal mappings per (layer, hardware) pair."),
    walk: int = typer.Option(1024, help="Local-search points per pair (the good region)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Sample legal mappings of zoo layers on a hardware family and store their true costs."""
    from accelmap.arch.space import read_hardware_space, resolve_space
    from accelmap.mapspace.load import load_constraints
    from accelmap.predictor.dataset import generate, save
    from accelmap.runs.rundir import check_output_file

    check_output_file(out)
    space = read_hardware_space(resolve_space(arch_space))
    cons = load_constraints(None, space.base.name)
    layers = _zoo_layers(networks)
    t0 = time.perf_counter()
    with console.status("sampling") as st:
        data = generate(layers, space, cons, hardware, per_layer, random, walk, seed,
                        progress=lambda i, n: st.update(f"pair {i}/{n}"))
    manifest = {"seed": seed, "networks": networks.split(","), "arch_space": space.source, "hardware_points": hardware,
                "per_layer": per_layer, "random": random, "walk": walk, "seconds": time.perf_counter() - t0,
                "command": "accelmap dcp dataset " + " ".join(sys.argv[3:])}
    save(data, out, manifest)
    console.print(f"{len(data['y']):,} samples from {len(data['pairs'])} (layer, hardware) pairs of {len(layers)} "
                  f"layers in {manifest['seconds']:.0f} s -> {out}")


@dcp_app.command("train")
def dcp_train(
    data: str = typer.Argument(..., help="Dataset .npz from accelmap dcp dataset."),
    out: str = typer.Option("dcp_data/predictor.pt", help="Checkpoint to write."),
    epochs: int = typer.Option(16, help="Passes over the training rows."),
    val_frac: float = typer.Option(0.15, help="Share of layers held out for validation."),
    seed: int = typer.Option(0, help="Random seed (layer split, initialization, batches)."),
) -> None:
    """Train the cost predictor; report rank correlation and error on held-out layers."""
    import torch

    from accelmap.predictor.dataset import load
    from accelmap.predictor.model import train
    from accelmap.runs.rundir import check_output_file

    check_output_file(out)
    d = load(data)
    n = len(d["layer_codes"])
    g = torch.Generator().manual_seed(seed)
    val = set(torch.randperm(n, generator=g)[: max(1, round(n * val_frac))].tolist())
    with console.status("training") as st:
        model, rep = train(d, val, epochs, seed, progress=lambda e, loss: st.update(f"epoch {e}/{epochs} loss {loss:.4f}"))
    meta = {"dataset": d["manifest"], "val_layers": [d["manifest"]["layers"][i] for i in sorted(val)],
            "report": rep.__dict__, "command": "accelmap dcp train " + " ".join(sys.argv[3:])}
    meta["dataset"] = {k: v for k, v in d["manifest"].items() if k not in ("layers", "hardware")}
    model.save(out, meta)
    console.print(f"held-out layers ({len(val)}): Spearman {rep.spearman_edp:.3f} (per layer and hardware, EDP), "
                  f"Kendall {rep.kendall_edp:.3f}, pooled Spearman {rep.spearman_pooled:.3f}, MAE log cycles "
                  f"{rep.val_mae[0]:.3f} log energy {rep.val_mae[1]:.3f}; {rep.train_rows:,} training rows, "
                  f"{rep.seconds:.0f} s -> {out}")


@dcp_app.command("search")
def dcp_search(
    network: str = typer.Argument("mobilenet_v2", help="A zoo network or a Timeloop problem YAML."),
    arch: str = typer.Option("eyeriss_like", help="Preset name or Timeloop architecture YAML."),
    checkpoint: Optional[str] = typer.Option(None, help="Predictor checkpoint (default: the packaged one)."),
    objective: str = typer.Option("edp", help="edp, energy, cycles or a weighted sum of logs."),
    budget: int = typer.Option(200, help="True-model evaluations per layer that verify the predictor's best "
                                         "candidates (predictor calls are free); the layer's search stops there."),
    polish: int = typer.Option(0, help="Further true-model evaluations per layer of plain local search after "
                                       "verification, counted apart (0: none)."),
    seed: int = typer.Option(0, help="Random seed."),
    workers: int = typer.Option(2, help="Layers searched in parallel (processes)."),
    out: Optional[str] = typer.Option(None, help="Run directory (default: runs/NETWORK_ARCH_TIME)."),
) -> None:
    """Map every unique layer with DCP (accelmap map --optimizer dcp with a predictor)."""
    from accelmap.search.dcp import predictor_for

    require_positive(budget, "--budget", "a positive number of evaluations")
    if polish < 0:
        raise AccelmapError(f"polish must be 0 (none) or a positive number of evaluations, got {polish}",
                            field="--polish")
    predictor_for(checkpoint)  # a bad checkpoint fails here, once, with a clear message
    options = {"verify": budget, "polish": polish} | ({"checkpoint": checkpoint} if checkpoint else {})
    _run_map(network, arch, constraints=None, objective=objective, optimizer="dcp", options=options,
             budget=budget + polish, patience=0, seed=seed, workers=workers, out=out)


@dcp_app.command("finetune")
def dcp_finetune(
    arch: str = typer.Option(..., help="The new hardware: preset name or Timeloop architecture YAML."),
    ert: Optional[str] = typer.Option(None, help="Accelergy ERT YAML."),
    art: Optional[str] = typer.Option(None, help="Accelergy ART YAML."),
    constraints: Optional[str] = typer.Option(None, help="Timeloop constraint YAML (default: the preset's)."),
    checkpoint: Optional[str] = typer.Option(None, help="Predictor to adapt (default: the packaged one)."),
    networks: str = typer.Option("mobilenet_v2,resnet50,vit_b16", help="Zoo networks whose layers are sampled."),
    samples: int = typer.Option(100, help="True evaluations on the new hardware (at most)."),
    out: str = typer.Option("dcp_data/finetuned.pt", help="Checkpoint to write."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Few-shot transfer: adapt the predictor to new hardware with <= SAMPLES true evaluations."""
    from accelmap.arch.load import load_architecture
    from accelmap.mapspace.load import load_constraints
    from accelmap.predictor.dataset import few_shot
    from accelmap.predictor.model import finetune
    from accelmap.runs.rundir import check_output_file
    from accelmap.search.dcp import predictor_for

    if not 1 <= samples <= 100_000:
        raise AccelmapError(f"samples must be between 1 and 100000, got {samples}", field="--samples")
    model = predictor_for(checkpoint)
    a = load_architecture(arch, ert, art)
    check_output_file(out)
    cons = load_constraints(constraints, arch)
    fs = few_shot(_zoo_layers(networks), a, cons, model, samples, seed)
    new = finetune(model, fs["layer"], fs["hw"], fs["codes"], fs["y"], fs["anchor_layer"], fs["anchor_codes"], seed=seed)
    new.save(out, dict(new.meta, finetune={"arch": a.name, "evaluations": fs["evaluations"], "seed": seed}))
    console.print(f"fine-tuned on {fs['evaluations']} true evaluations on {a.name} -> {out}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # warnings from the readers (unused attributes, skipped ops) as one plain line each, not
    # Python's "file:line: UserWarning:" form
    print(f"warning: {message}", file=sys.stderr)


def main() -> None:
    import warnings

    warnings.showwarning = _show_warning
    try:
        app()  # standalone: typer reports its own usage errors with exit code 2
    except AccelmapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
