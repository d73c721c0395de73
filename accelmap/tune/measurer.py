"""Measurers: a batch of configurations in, one :class:`MeasureResult` per configuration out.

An invalid configuration is data, not an exception (autotvm's ``MeasureErrorNo``): its result
carries an error code and no runtime, and the batch goes on. Exceptions are for a broken
measurement setup (a missing command, a malformed reply), raised as
:class:`~accelmap.errors.AccelmapError` before anything of the batch reaches the log.

Backends, registered by name:

* ``model``: the analytical model of the target. For a VTA-like target the VTA model of
  :mod:`accelmap.tune.vta` (cycles); for any other architecture the accelmap cost model on the
  mapping the configuration encodes (cycles). Validity is revealed by measuring, as on a board.
* ``command:CMD``: runs a user executable (a board's driver, a simulator) with a JSON batch on
  stdin, ``{"target": NAME, "layer": {...}, "configs": [{knob: value}, ...], "indices": [...]}``,
  and reads ``{"results": [{"runtime": SECONDS} | {"error": "CODE"}, ...]}`` from stdout, one
  entry per configuration, in order. A batch gets ``timeout`` seconds per configuration; when
  it runs over, its configurations are measured one at a time, each with ``timeout`` seconds, so
  only the ones that hang are recorded as ``"timeout"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from accelmap.errors import AccelmapError
from accelmap.registry import Registry
from accelmap.tune.knobs import KnobSpace

# Error codes a measurement may carry; a command may also report its own (lower-case words).
ERRORS = ("buffer_overflow", "uop_overflow", "fanout_overflow", "unsupported_split", "compile_error",
          "runtime_error", "wrong_answer", "timeout")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class MeasureResult:
    """``runtime`` (in the measurer's unit) for a valid configuration, else ``error``."""

    runtime: float | None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.runtime is None) == (self.error is None):
            raise ValueError("a MeasureResult has exactly one of runtime and error")

    @property
    def valid(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class TuneTask:
    """One layer to tune on one target: its knob space and what a measurer needs to know."""

    layer: object  # accelmap.workload.workload.Workload
    arch: object  # accelmap.arch.architecture.Architecture
    space: KnobSpace

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def template(self) -> str:
        return self.space.meta["template"]

    def layer_dict(self) -> dict:
        w = self.layer
        d = {"name": w.name, "kind": w.kind, "dims": dict(zip(w.dims, w.bounds)), "coefficients": dict(w.coefficients)}
        if self.template == "vta_conv2d":
            d["packed"] = self.space.meta["conv"].to_dict()
        return d


MEASURERS: Registry[type[Measurer]] = Registry("measurer", "--measurer")
register = MEASURERS.register


class Measurer:
    name: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def measure(self, task: TuneTask, points: np.ndarray) -> list[MeasureResult]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


def make_measurer(spec: str, timeout: float = 10.0) -> Measurer:
    """``model`` or ``command:CMD`` (CMD split like a shell would, no shell involved)."""
    name, _, arg = spec.partition(":")
    if name not in MEASURERS:
        raise AccelmapError(f"unknown measurer '{spec}'; expected one of "
                            f"{', '.join(n + (':CMD' if n == 'command' else '') for n in sorted(MEASURERS))}",
                            field="--measurer")
    if name == "command":
        return CommandMeasurer(arg, timeout)
    if arg:
        raise AccelmapError(f"measurer '{name}' takes no argument, got '{spec}'", field="--measurer")
    return MEASURERS[name]()


@register
class ModelMeasurer(Measurer):
    name = "model"
    unit = "cycles"
    summary = "the target's analytical model (VTA model for vta-like targets, else the accelmap cost model)"

    MAPPING_ERRORS = {1: "unsupported_split", 2: "fanout_overflow", 3: "buffer_overflow", 4: "unsupported_split"}

    def measure(self, task: TuneTask, points: np.ndarray) -> list[MeasureResult]:
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(task.space.knobs))
        if task.template == "vta_conv2d":
            from accelmap.tune.vta import ERROR_CODES, VTAConfig, simulate

            r = simulate(task.space.meta["conv"], points, task.space, VTAConfig.from_arch(task.arch))
            return [MeasureResult(float(c)) if e == 0 else MeasureResult(None, ERROR_CODES[int(e)])
                    for c, e in zip(r["cycles"], r["error"])]
        from accelmap.tune.knobs import mapping_genomes

        c = task.space.meta["mapping_space"].evaluate(mapping_genomes(task.space, points))
        return [MeasureResult(float(cy)) if int(rs) == 0 else MeasureResult(None, self.MAPPING_ERRORS.get(int(rs), "compile_error"))
                for cy, rs in zip(c.cycles.tolist(), c.reason.tolist())]


@register
class CommandMeasurer(Measurer):
    name = "command"
    unit = "seconds"
    summary = "a user executable: JSON batch on stdin, JSON results on stdout, with a timeout"

    def __init__(self, command: str, timeout: float = 10.0):
        if not command.strip():
            raise AccelmapError("the command measurer needs a command: --measurer 'command:CMD'", field="--measurer")
        if not timeout > 0:
            raise AccelmapError(f"timeout must be positive seconds, got {timeout}", field="--timeout")
        try:
            self.args = shlex.split(command)
        except ValueError as exc:
            raise AccelmapError(f"cannot split measurer command '{command}': {exc}", field="--measurer") from None
        self.command, self.timeout = command, float(timeout)
        exe = self.args[0]
        path = exe if os.sep in exe else shutil.which(exe)
        if path is None or not os.path.isfile(path):
            raise AccelmapError(f"measurer command '{command}': '{exe}' is not found (expected an executable file "
                                f"or a program on PATH)", field="--measurer")
        if not os.access(path, os.X_OK):
            raise AccelmapError(f"measurer command '{command}': '{exe}' is not executable (chmod +x it, or run it "
                                f"through its interpreter, e.g. 'command:python3 {exe}')", field="--measurer")

    def describe(self) -> str:
        return f"command:{self.command}"

    def measure(self, task: TuneTask, points: np.ndarray) -> list[MeasureResult]:
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(task.space.knobs))
        if not len(points):
            return []
        out = self._run(task, points, self.timeout * len(points))
        if out is not None:
            return out
        if len(points) == 1:
            return [MeasureResult(None, "timeout")]
        results = []
        for p in points:  # the batch ran over: one at a time, so only the hanging ones time out
            r = self._run(task, p[None], self.timeout)
            results.extend(r if r is not None else [MeasureResult(None, "timeout")])
        return results

    def _run(self, task: TuneTask, points: np.ndarray, timeout: float) -> list[MeasureResult] | None:
        """The command's results for ``points``, or None when it ran over ``timeout``."""
        payload = json.dumps({"target": task.arch.name, "layer": task.layer_dict(),
                              "configs": task.space.configs(points), "indices": task.space.indices(points)})
        try:
            proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, text=True)
        except OSError as exc:
            raise AccelmapError(f"measurer command '{self.command}' cannot be started: {exc.strerror or exc}",
                                field="--measurer") from None
        try:
            stdout, stderr = proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            return None
        except BaseException:
            self._kill(proc)
            raise
        if proc.returncode != 0:
            tail = (stderr or "").strip().splitlines()[-1:] or ["no error output"]
            raise AccelmapError(f"measurer command '{self.command}' exited with code {proc.returncode} "
                                f"({tail[0][:200]}); it must report per-configuration failures in its reply, "
                                f"as {{\"error\": \"CODE\"}}", field="--measurer")
        return self._parse(stdout, len(points))

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.communicate()

    def _parse(self, stdout: str, n: int) -> list[MeasureResult]:
        expect = (f'expected one JSON object {{"results": [...]}} with {n} entries, each {{"runtime": seconds}} '
                  f'or {{"error": "code"}}')
        where = f"measurer command '{self.command}'"
        try:
            reply = json.loads(stdout)
        except ValueError:
            head = stdout.strip()[:80] or "nothing"
            raise AccelmapError(f"{where} replied {head!r}, which is not JSON; {expect}", field="--measurer") from None
        results = reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(results, list):
            raise AccelmapError(f"{where} replied without a 'results' list; {expect}", field="--measurer")
        if len(results) != n:
            raise AccelmapError(f"{where} replied with {len(results)} results for {n} configurations; {expect}",
                                field="--measurer")
        out = []
        for i, r in enumerate(results):
            if isinstance(r, dict) and set(r) == {"runtime"}:
                v = r["runtime"]
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
                    out.append(MeasureResult(float(v)))
                    continue
            elif isinstance(r, dict) and set(r) == {"error"} and isinstance(r["error"], str) and _CODE.match(r["error"]):
                out.append(MeasureResult(None, r["error"]))
                continue
            raise AccelmapError(f"{where}: result {i} is {json.dumps(r)[:80]}; {expect} (a runtime is a positive "
                                f"finite number, an error code a lower-case word such as {', '.join(ERRORS[:3])})",
                                field="--measurer")
        return out
