"""Timeloop v0.4 problems (data_spaces, read_write, expressions) as accelmap Workloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from accelmap.errors import AccelmapError
from accelmap.spec import evaluate_expression, load_v4_file
from accelmap.workload.workload import Workload, problem_from_dict

# Instance keys that only describe the input image and its padding (Timeloop ignores them too).
_DESCRIPTIVE = {"H", "W", "Hpad", "Wpad", "Hin", "Win"}


def problem_from_v4(doc: Any, src: str, name: str, warn: Callable[[str], None] | None = None) -> Workload:
    """A v0.4 problem (``data_spaces``, ``read_write``) through the v0.3 builder. Instance keys
    that only describe the input (H, W, Hpad, Wpad) are dropped; other unknown keys are named
    in a warning and dropped, as Timeloop ignores them; densities below 1 are refused."""
    warn = warn or (lambda m: None)
    prob = doc.get("problem") if isinstance(doc, dict) else None
    if not isinstance(prob, dict):
        raise AccelmapError("missing required field; expected a 'problem' mapping with 'shape' and 'instance'",
                            file=src, field="problem")
    shape = dict(prob.get("shape") or {})
    if "data_spaces" in shape:
        shape["data-spaces"] = [
            {("read-write" if k == "read_write" else k): v for k, v in ds.items()} if isinstance(ds, dict) else ds
            for ds in shape.pop("data_spaces")]
    inst = prob.get("instance")
    if not isinstance(inst, dict):
        raise AccelmapError("missing required field; expected a mapping from dimension name to bound", file=src,
                            field="problem.instance")
    dims = shape.get("dimensions") or []
    coefs = [c.get("name") for c in shape.get("coefficients") or [] if isinstance(c, dict)]
    kept = {}
    for k, v in inst.items():
        if k == "densities":
            _check_densities(v, src)
            continue
        if k in dims or k in coefs:
            if isinstance(v, str):
                v = evaluate_expression(v, {}, src, f"problem.instance.{k}")
            kept[k] = v
        elif k not in _DESCRIPTIVE:
            near = [d for d in list(dims) + coefs if d.lower() == str(k).lower()]
            hint = f" (did you mean {near[0]}?)" if near else ""
            warn(f"{src}: instance key 'problem.instance.{k}' is not a dimension or coefficient and was "
                 f"ignored{hint}")
    for k, v in kept.items():
        if k in coefs and (isinstance(v, bool) or not isinstance(v, int)):
            raise AccelmapError(f"expected an integer, got {v!r}", file=src, field=f"problem.instance.{k}")
    v3 = {"problem": {"shape": shape, "instance": kept}}
    # kind stays "custom": v0.4 shapes name their dims freely (M for output channels, G for groups),
    # and code that takes "conv" layers expects accelmap's own dim names
    return problem_from_dict(v3, src, name)


def _check_densities(v: Any, src: str) -> None:
    if not isinstance(v, dict):
        return
    for t, d in v.items():
        dens = d.get("density", 1.0) if isinstance(d, dict) else d
        try:
            dens = float(dens)
        except (TypeError, ValueError):
            dens = 0.0
        if dens < 1.0:
            raise AccelmapError(f"densities below 1 (sparse tensors) are not modelled: {t} has density {dens:g}",
                                file=src, field=f"problem.instance.densities.{t}")


def read_v4_problem(path: str | Path, name: str | None = None, warn: Callable[[str], None] | None = None,
                    variables: dict | None = None) -> Workload:
    return problem_from_v4(load_v4_file(path, variables), str(path), name or Path(path).stem, warn)
