"""The one-off compilation a search needs, done before it starts: the cost model's kernel, the
mapping space's moves and the default search's island updates (numba, cached on disk after the
first run)."""

from __future__ import annotations

import time


def needs_compile(device: str = "cpu", parallel: bool = False) -> bool:
    """True when searching on ``device`` would first compile something (once after install): the
    CPU kernel (see :func:`accelmap.model.cost_model.kernel_needs_compile`; not on CUDA), or the
    moves and island updates, which run on the CPU whatever the device."""
    from accelmap.mapspace import moves
    from accelmap.model.cost_model import kernel_needs_compile
    from accelmap.search import islands

    return kernel_needs_compile(device, parallel) or not moves.is_compiled() or not islands.is_compiled()


def compile_search(parallel: bool = False) -> float:
    """Compile the kernel, and the moves and island updates, into numba's cache in two child
    processes side by side (children, because compiling the kernel's parallel loop starts threads
    after which this process could not fork its workers; see
    :func:`accelmap.model.cost_model.compile_kernel_in_child`). Returns seconds."""
    from accelmap.model.cost_model import run_children

    t0 = time.perf_counter()
    run_children([f"from accelmap.model.cost_model import _compile_kernel_here; _compile_kernel_here({bool(parallel)})",
                  "from accelmap.search.compile import _compile_search_parts; _compile_search_parts()"])
    return time.perf_counter() - t0


def _compile_search_parts() -> None:
    from accelmap.mapspace import moves
    from accelmap.search import islands

    moves.compile_here()
    islands._jit()
