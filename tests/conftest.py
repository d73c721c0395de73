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
