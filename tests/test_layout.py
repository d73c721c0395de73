"""The package's layout: every import (at module level or inside a function) points down the
order of subpackages, and no two subpackages import each other."""

import ast
from pathlib import Path

import accelmap

PACKAGE = Path(accelmap.__file__).parent

# lower rank = lower layer; a module may import its own subpackage and any lower rank
RANK = {
    "errors": 0, "yamlio": 0.1, "registry": 0.2, "options": 0.2, "spec": 0.3,  # shared by all
    "workload": 1, "arch": 2, "mapping": 3, "model": 4, "mapspace": 5,
    "predictor": 6, "tune": 6, "search": 7, "codesign": 8, "runs": 9, "testing": 9.5, "cli": 10,
}


def _part(module: str) -> str:
    """accelmap.search.loop -> search; accelmap.errors -> errors."""
    return module.split(".")[1] if module.count(".") else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("accelmap"):
            if node.module == "accelmap":  # from accelmap import x: x is a module of the package
                out += [(node.lineno, f"accelmap.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("accelmap.")]
    return out


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        yield name, path


def test_every_module_belongs_to_a_ranked_part():
    unranked = {name for name, _ in _modules() if name != "accelmap" and _part(name) not in RANK}
    assert not unranked


def test_imports_point_down_only():
    upward = []
    for name, path in _modules():
        if name == "accelmap":
            continue  # the public API names everything, lazily
        mine = _part(name)
        for line, target in _imports(path):
            theirs = _part(target)
            if theirs == mine or not theirs:
                continue
            if RANK[theirs] >= RANK[mine]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {name} -> {target}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_public_api_names_resolve():
    for name in accelmap.__all__:
        assert getattr(accelmap, name) is not None, name
    # the registries are filled by importing their subpackage
    assert {"annealing", "genetic", "gradient", "portfolio", "random", "exhaustive", "dcp"} <= set(
        accelmap.OPTIMIZERS.names())
    assert {"gradient", "genetic", "random"} <= set(accelmap.CODESIGNERS.names())


def test_no_import_circle():
    """Between modules too (a lazy import inside a function counts): the loaders that dispatch on
    a file's format sit in each subpackage's ``load`` module, above the readers they call."""
    modules = dict(_modules())
    graph = {name: {t for _, t in _imports(path) if t in modules and t != name} for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            circle = visit(name, [])
            assert circle is None, " -> ".join(circle)
