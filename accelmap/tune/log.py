"""The tuning log: append-only JSON lines, one record per measurement (like AutoTVM's records).

A record is written in one ``write`` of ``json + "\\n"``, then flushed and fsync'ed, so a run
killed at any moment leaves at most one incomplete last line. Reading treats a last line
without its newline as never written; opening for append first truncates it away, so the file
stays line-by-line parseable. An unparseable line before the last is a corrupt log: an error
naming the line, never a silent skip.

Record fields: ``layer``, ``tuner``, ``seed`` (the tuner's seed for the layer: ``--seed`` plus
the layer's position in the run), ``target``, ``measurer``, ``index`` (the
measurement number within the layer, from 1), ``config_index`` (the configuration's index in
the knob space), ``batch`` (from 1), ``config`` ({knob: value}), ``runtime`` (float in
``unit``; null when invalid), ``unit`` ("cycles" or "seconds"), ``error`` (null or a code such
as "buffer_overflow", "uop_overflow", "unsupported_split", "timeout", "runtime_error"),
``time`` (Unix seconds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from accelmap.errors import AccelmapError


def read_records(path: str | Path) -> list[dict]:
    """Every complete record of a log (an incomplete last line is ignored)."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    end = data.rfind(b"\n") + 1  # complete lines end at a newline
    records = []
    for i, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise AccelmapError(f"line {i} is not a JSON record; the log is corrupt (expected one JSON object per "
                                f"line)", file=str(p)) from None
        if not isinstance(rec, dict) or "layer" not in rec or "config_index" not in rec:
            raise AccelmapError(f"line {i} is not a tuning record (expected an object with 'layer' and "
                                f"'config_index')", file=str(p))
        records.append(rec)
    return records


class TuneLog:
    """Append-only writer. ``open()`` drops an incomplete last line left by a killed run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = None

    def open(self) -> "TuneLog":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
        self._f = open(self.path, "a", encoding="utf-8")
        return self

    def append(self, record: dict) -> None:
        if self._f is None:
            self.open()
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "TuneLog":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
