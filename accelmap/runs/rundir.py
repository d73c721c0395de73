"""Output locations, checked before any long work starts, so no result is lost to a bad ``--out``."""

from __future__ import annotations

import os
from pathlib import Path

from accelmap.errors import AccelmapError


def prepare_run_dir(out: str | Path | None, default: Path, option: str = "--out") -> Path:
    """The run directory ``out`` (or ``default``), created now and proven writable.

    An existing directory is reused (its files are overwritten); an existing file, or a place
    that cannot be created or written, is a user error raised before the search starts."""
    p = Path(out) if out else default
    if p.exists() and not p.is_dir():
        raise AccelmapError("exists and is not a directory; expected a directory for the run's files",
                            file=str(p), field=option)
    probe = p / f".accelmap-write-check-{os.getpid()}"
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise AccelmapError(f"cannot write here: {exc.strerror or exc}", file=str(p), field=option) from None
    return p


def check_output_file(out: str | Path, option: str = "--out") -> Path:
    """A file about to be written: its folder must exist (or be creatable) and be writable, and
    the path itself must not be a directory."""
    p = Path(out)
    if p.is_dir():
        raise AccelmapError("is a directory; expected a file name", file=str(p), field=option)
    prepare_run_dir(p.parent if str(p.parent) else Path("."), Path("."), option)
    return p
