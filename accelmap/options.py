"""Checks of command-line values shared by the CLI and the Python API. Light on purpose: a bad
option is reported before torch or numba is imported."""

from __future__ import annotations

from accelmap.errors import AccelmapError


def require_positive(value: float, option: str, expected: str) -> None:
    if value <= 0:
        raise AccelmapError(f"{option.lstrip('-')} must be {expected}, got {value}", field=option)


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N'; CUDA must be available (that check imports torch)."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise AccelmapError(f"unknown device '{device}'; expected cpu or cuda", field="--device")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AccelmapError("CUDA was asked for but no CUDA device is available", field="--device")
    return device
