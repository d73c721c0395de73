"""The ``accelmap`` command line. User mistakes print one line and exit with code 2."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from accelmap.errors import AccelmapError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Map DNN layers onto spatial accelerators and co-design the hardware.")
zoo_app = typer.Typer(help="Built-in networks.", invoke_without_command=True)
app.add_typer(zoo_app, name="zoo")
console = Console(width=None if sys.stdout.isatty() else 150)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


@app.command()
def evaluate(
    arch: str = typer.Option("eyeriss_like", help="Preset name or Timeloop architecture YAML."),
    problem: Optional[str] = typer.Option(None, help="Timeloop problem YAML (default: resnet18 conv1)."),
    mapping: Optional[str] = typer.Option(None, help="Timeloop mapping YAML (default: a built-in example)."),
    ert: Optional[str] = typer.Option(None, help="Accelergy ERT YAML (energy per action)."),
    art: Optional[str] = typer.Option(None, help="Accelergy ART YAML (area)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Evaluate one mapping: energy, cycles, EDP, utilization, area, per-level accesses."""
    from accelmap.evaluation import evaluate_files

    ev = evaluate_files(arch, problem, mapping, ert, art, _device(device))
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


@app.command()
def presets() -> None:
    """List the built-in architecture presets."""
    from accelmap.architecture import preset

    from accelmap.architecture import list_presets

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
    from accelmap.zoo import DESCRIPTIONS, get_network, list_networks

    table = Table("network", "layers", "unique", "GMACs", "description")
    for name in list_networks():
        net = get_network(name)
        table.add_row(name, str(sum(layer.count for layer in net.layers)), str(len(net.unique_layers())),
                      f"{net.total_macs / 1e9:.2f}", DESCRIPTIONS.get(name, ""))
    console.print(table)


@zoo_app.command("show")
def zoo_show(name: str = typer.Argument(..., help="Network name, e.g. resnet18.")) -> None:
    """Print each unique layer with its dims, count, MACs and tensor sizes."""
    from accelmap.zoo import get_network

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


def _device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise AccelmapError(f"unknown device '{device}'; expected cpu or cuda", field="--device")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AccelmapError("CUDA was asked for but no CUDA device is available", field="--device")
    return device


def main() -> None:
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
