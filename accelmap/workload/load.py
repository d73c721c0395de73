"""Load a network from anything a user names: a zoo name, a Timeloop problem file or folder, an ONNX file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

from accelmap.errors import AccelmapError
from accelmap.spec import load_v4_file
from accelmap.workload.network import Layer, Network
from accelmap.workload.timeloop_v4 import problem_from_v4
from accelmap.workload.workload import Workload, problem_from_dict
from accelmap.yamlio import load_yaml


def load_network(spec: str, on_warning: Callable[[str], None] | None = None) -> Network:
    """A zoo network name, a Timeloop problem YAML (one layer; v0.3 or v0.4), a folder of problem
    files (one layer per file, in file-name order, named by the files) or an ONNX model (``.onnx``).

    ``on_warning`` receives one line naming the ops an ONNX model has that are not modelled
    (default: a Python warning).
    """
    if Path(spec).is_dir():  # a folder of problem files (Timeloop's layer_shapes): one layer per file
        from accelmap.workload.load import problem_folder_network

        return problem_folder_network(spec, on_warning or (lambda m: warnings.warn(m, stacklevel=3)))
    if spec.endswith((".yaml", ".yml")):
        from accelmap.spec import looks_like_v4
        from accelmap.workload.load import read_problem_yaml

        if looks_like_v4(spec):
            from accelmap.workload.timeloop_v4 import read_v4_problem

            w = read_v4_problem(spec, warn=on_warning or (lambda m: warnings.warn(m, stacklevel=3)))
            return Network(Path(spec).stem, (Layer(w),))
        return Network(Path(spec).stem, (Layer(read_problem_yaml(spec)),))
    if spec.endswith(".onnx"):
        from accelmap.workload.onnx_reader import read_onnx

        result = read_onnx(spec)
        if not result.network.layers:
            raise AccelmapError("no convolution, Gemm or MatMul to map; expected a model with MAC layers"
                                + (f" ({result.warning()})" if result.skipped else ""), file=spec)
        if result.warning():
            (on_warning or (lambda m: warnings.warn(m, stacklevel=3)))(result.warning())
        return result.network
    from accelmap.workload.zoo import NETWORKS, get_network

    try:
        return get_network(spec)
    except AccelmapError:
        raise AccelmapError(f"unknown network '{spec}'; expected one of {', '.join(NETWORKS)}, a Timeloop "
                            "problem YAML (.yaml) or an ONNX model (.onnx)") from None


def problem_folder_network(folder: str | Path, warn: Callable[[str], None] | None = None):
    """Every ``*.yaml``/``*.yml`` problem file of ``folder`` as one layer, in file-name order,
    named by the file (identical shapes are merged later, by :meth:`Network.unique_layers`).
    Files without a ``problem`` key (shared bases such as ``problem_base.yaml``) are named in a
    warning and skipped."""
    from accelmap.workload.network import Layer, Network

    warn = warn or (lambda m: None)
    d = Path(folder)
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not files:
        subs = sorted(p.name for p in d.iterdir() if p.is_dir())
        raise AccelmapError("no problem files (*.yaml) in the folder" +
                            (f"; it has sub-folders: {', '.join(subs[:8])}" if subs else ""), file=str(d))
    layers = []
    for p in files:
        doc = load_v4_file(p)
        if not isinstance(doc, dict) or "problem" not in doc:
            warn(f"{p}: no 'problem' key; skipped")
            continue
        layers.append(Layer(problem_from_v4(doc, str(p), p.stem, warn)))
    if not layers:
        raise AccelmapError("no file of the folder has a 'problem' key", file=str(d), field="problem")
    return Network(d.name, tuple(layers))


def read_problem_yaml(path: str | Path, name: str | None = None) -> Workload:
    """Read a Timeloop v0.3/v0.4 problem file (``problem: {shape, instance}``)."""
    from accelmap.spec import looks_like_v4

    if looks_like_v4(path):  # Timeloop v0.4 (data_spaces, jinja2, <<<): accelmap.runs.spec
        import warnings

        from accelmap.workload.timeloop_v4 import read_v4_problem

        return read_v4_problem(path, name, warn=lambda m: warnings.warn(m, stacklevel=3))
    src = str(path)
    doc = load_yaml(path)
    return problem_from_dict(doc, src, name or Path(path).stem)


def network_from_torch(module, example_input, name: str | None = None) -> Network:
    """The convolutions, linears and matmuls ``module(*example_input)`` runs, with their exact
    shapes (see :mod:`accelmap.workload.torch_reader`; MAC-bearing ops it cannot model are
    named in a warning). ``name`` defaults to the module's class name."""
    from accelmap.workload.torch_reader import import_module

    result = import_module(module, example_input, name)
    if result.warning():
        warnings.warn(result.warning(), stacklevel=2)
    return result.network
