"""The PyTorch importer: a module's multiply-accumulate layers, via an in-memory ONNX export.

The module is exported with ``torch.onnx.export(..., dynamo=True)`` (``torch.export``
tracing) and the ONNX graph is read back by :mod:`accelmap.workload.onnx_reader`. Forward hooks on
``nn.Conv2d``/``nn.Linear`` would miss the attention matmuls, which happen inside
``F.scaled_dot_product_attention`` or functional code, and ``torch.fx`` symbolic tracing
fails on data-dependent control flow such as ``nn.TransformerEncoderLayer``'s fast-path
checks. The exported graph has every matmul with its exact static shapes (``torch.export``
traces the real forward with the example input), and one reader then serves ONNX files and
modules alike. The legacy TorchScript exporter is not used: it fails on
``nn.TransformerEncoderLayer`` in torch 2.13.

The module is exported in eval mode (dropout off, batch-norm statistics untouched) and put
back in the mode it was in; MAC counts do not depend on the mode.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

from accelmap.errors import AccelmapError
from accelmap.workload.onnx_reader import OnnxImport, read_model


def import_module(module, example_input, name: str | None = None) -> OnnxImport:
    """Trace ``module(*example_input)`` and import its MAC layers (and the ops left out).

    ``example_input``: a tensor, or a tuple of the forward's arguments, with the shapes to
    model (batch included).
    """
    import importlib.util

    import torch

    if not isinstance(module, torch.nn.Module):
        raise AccelmapError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if importlib.util.find_spec("onnxscript") is None:
        raise AccelmapError("importing a torch module exports it with torch.onnx.export(dynamo=True), which needs "
                            "the onnxscript package; expected it installed (pip install onnxscript)")
    args = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    name = name or type(module).__name__
    was_training = module.training
    module.eval()
    try:
        with _quiet_export():
            program = torch.onnx.export(module, args, dynamo=True, verbose=False)
    except Exception as exc:  # torch.export raises many types; the user's module is at fault
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise AccelmapError(f"torch.onnx.export could not trace module '{name}': {type(exc).__name__}: {first}; "
                            "expected a module that torch.export can trace with the example input") from None
    finally:
        module.train(was_training)
    return read_model(program.model_proto, name, f"<torch module {name}>")


@contextlib.contextmanager
def _quiet_export():
    """Silence the exporter's warnings and registration logs (e.g. 'torchvision is not installed')."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
