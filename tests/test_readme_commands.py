"""Every command of the README's command table runs once, through the real CLI, with a tiny
budget: exit 0 and no traceback. The table is read from README.md, so a new row without a run
here fails the coverage test."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = str(REPO / "accelmap" / "data" / "examples" / "resnet18_conv1.yaml")


def readme_commands() -> set[str]:
    """'map', 'zoo show', 'dcp search', ... as the README's command table names them."""
    names = set()
    for line in (REPO / "README.md").read_text().splitlines():
        for m in re.finditer(r"`accelmap ([a-z]+)((?: [a-z]+(?:\\\|[a-z]+)*)?)", line if line.startswith("| `") else ""):
            head, tail = m.group(1), m.group(2).strip()
            if head in ("dcp", "export", "zoo") and tail:
                names.update(f"{head} {t}" for t in tail.split("\\|"))
            else:
                names.add(head)
    return names


def _runs(tmp: Path) -> list[tuple[str, list[str]]]:
    """(README command, argument list) in an order where later runs can read earlier outputs."""
    return [
        ("evaluate", ["evaluate"]),
        ("map", ["map", LAYER, "--budget", "300", "--patience", "0", "--workers", "1", "--out", str(tmp / "map")]),
        ("report", ["report", str(tmp / "map"), "--out", str(tmp / "report.html")]),
        ("optimizers", ["optimizers"]),
        ("zoo", ["zoo"]),
        ("zoo show", ["zoo", "show", "resnet18"]),
        ("presets", ["presets"]),
        ("codesign", ["codesign", LAYER, "--designs", "2", "--out", str(tmp / "codesign")]),
        ("sweep", ["sweep", LAYER, "--points", "2", "--budget", "300", "--workers", "1", "--out", str(tmp / "sweep")]),
        ("export timeloop", ["export", "timeloop", "--run", str(tmp / "map"), "--out", str(tmp / "tl")]),
        ("dcp dataset", ["dcp", "dataset", "--networks", "resnet18", "--hardware", "2", "--per-layer", "1",
                         "--random", "8", "--walk", "8", "--out", str(tmp / "dcp" / "data.npz")]),
        ("dcp train", ["dcp", "train", str(tmp / "dcp" / "data.npz"), "--epochs", "1", "--out",
                       str(tmp / "dcp" / "p.pt")]),
        ("dcp search", ["dcp", "search", LAYER, "--budget", "20", "--workers", "1", "--out", str(tmp / "dcps")]),
        ("dcp finetune", ["dcp", "finetune", "--arch", "eyeriss_like", "--networks", "resnet18", "--samples", "2",
                          "--out", str(tmp / "dcp" / "ft.pt")]),
        ("tune", ["tune", str(_vta_layer(tmp)), "--measurements", "16", "--batch-size", "8", "--out",
                  str(tmp / "tune")]),
    ]


def _vta_layer(tmp: Path) -> Path:
    """A small conv whose channels fit VTA's 16-wide blocks (resnet18's conv1, C=3, does not)."""
    from accelmap.workload.workload import conv2d, problem_to_dict
    from accelmap.yamlio import dump_yaml

    p = tmp / "vta_layer.yaml"
    p.write_text(dump_yaml(problem_to_dict(conv2d("small", C=16, K=16, P=8))))
    return p


def test_every_readme_command_is_run_here(tmp_path):
    assert readme_commands() == {name for name, _ in _runs(tmp_path)}


@pytest.mark.slow
def test_every_readme_command_runs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs without --out land here, not in the checkout
    for name, args in _runs(tmp_path):
        code, out, err = cli(*args)
        assert code == 0, f"accelmap {' '.join(args)} exited {code}: {err[-800:]}"
        assert "Traceback" not in out + err, name


def _subprocess(*args):
    return subprocess.run([sys.executable, "-m", "accelmap.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_help_and_usage_errors_from_the_real_entry_point():
    r = _subprocess("--help")
    assert r.returncode == 0 and "map" in r.stdout and "codesign" in r.stdout
    r = _subprocess("map", "resnet18", "--budget", "-5")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: field '--budget': budget must be a positive number of "
                                             "evaluations, got -5"]


def test_usage_errors_import_no_heavy_library():
    """--help and a bad number are answered before torch/numba are imported (fast start)."""
    code = ("import sys, runpy\n"
            "sys.argv = ['accelmap', 'map', 'resnet18', '--budget', '0']\n"
            "try:\n    runpy.run_module('accelmap.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 2, e.code\n"
            "heavy = sorted(m for m in ('torch', 'numba', 'xgboost', 'onnx', 'ray', 'matplotlib') if m in sys.modules)\n"
            "print(','.join(heavy))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def python_api_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):text.index("\n## ", text.index("## Python API") + 5)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_python_examples_run(tmp_path):
    """The README's Python API section, block by block, as a user pastes it (in an empty folder)."""
    blocks = python_api_blocks()
    assert len(blocks) >= 2
    for i, code in enumerate(blocks):
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, f"block {i}:\n{code}\n{r.stderr[-3000:]}"
        assert r.stdout.strip(), f"block {i} printed nothing"
    assert (tmp_path / "runs" / "r18" / "summary.json").exists()


def test_importing_the_package_loads_no_heavy_library():
    code = ("import sys, accelmap; accelmap.__all__; "
            "heavy = [m for m in ('torch', 'numba', 'xgboost', 'onnx', 'ray') if m in sys.modules]; "
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
