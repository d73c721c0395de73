import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path | None:
    env = os.environ.get("ACCELMAP_REFERENCE_DIR")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared" / "reference" / "timeloop", REPO / "shared" / "reference" / "timeloop"]
    for c in cands:
        if (c / "records").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def ref() -> Path:
    d = reference_dir()
    if d is None:
        if os.environ.get("CI"):
            pytest.fail("Timeloop reference data (shared/reference/timeloop) not found beside the checkout")
        pytest.skip("Timeloop reference data not found; set ACCELMAP_REFERENCE_DIR")
    return d


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the accelmap CLI in-process: cli(*args) -> (exit code, stdout, stderr)."""
    import sys

    from accelmap.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["accelmap", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
