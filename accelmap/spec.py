"""Timeloop v0.4 input files: the jinja2 layer, the tagged YAML and the deep-merge key.

A v0.4 design is one or more files (``top.yaml.jinja2``, ``arch.yaml``, problem files) that are
first rendered with jinja2 and then read as YAML. Rendering offers the helpers the published
designs use:

* ``include(path, key)`` / ``include_all(glob, key)``: the object at ``key`` (dotted) of another
  file (or of every file a glob matches), placed where the call stands;
* ``include_text(path)``: another file's raw text, so YAML anchors it defines reach this file;
* ``path_exists(path)``, ``cwd()`` (the rendered file's folder) and ``add_to_path(folder)``
  (one more folder where relative paths are looked up).

The YAML is read with a safe loader that knows the node tags ``!Container``, ``!Component``,
``!Parallel``, ``!Hierarchical`` and ``!Nothing``; any other tag is an error naming it. A
mapping key ``<<<`` deep-merges its value (a mapping or a list of them) under the mapping's own
keys, recursively, next to YAML's shallow ``<<``.

Nothing here imports torch: the CLI reads specs on its start path.
"""

from __future__ import annotations

import ast
import glob as globlib
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from accelmap.errors import AccelmapError
from accelmap.yamlio import syntax_error

NODE_TAGS = ("Container", "Component", "Parallel", "Hierarchical", "Nothing")
_INCLUDE_TAG = "!accelmap-include"  # placeholder the include helpers leave in the rendered text
_V4_MARK = re.compile(r"(^|\n)\s*version\s*:\s*['\"]?0\.4|!(Container|Component|Parallel|Hierarchical)\b"
                      r"|\{\{|\{%")


@dataclass(frozen=True)
class Node:
    """A tagged architecture node: ``tag`` is one of :data:`NODE_TAGS`, ``body`` its mapping
    (for ``!Parallel``/``!Hierarchical`` a mapping with ``nodes``), ``line`` 1-based."""

    tag: str
    body: dict
    line: int = 0


def looks_like_v4(path: str | Path) -> bool:
    """A v0.4 file: jinja2 markers, ``version: 0.4`` or a node tag (read without parsing, so a
    template that is not yet valid YAML is recognised)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(_V4_MARK.search(text)) or p.name.endswith((".jinja", ".jinja2"))


# ---- YAML ---------------------------------------------------------------------------------

# libyaml's parser where present (thousands of layer files), with the safe constructor either way
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):
    """The safe loader plus the v0.4 node tags and the include placeholder (per-render registry)."""

    includes: list = []  # replaced per document by a subclass (see parse_v4_yaml)
    source = "<string>"


def _node_constructor(tag: str):
    def construct(loader: _Loader, node: yaml.Node) -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            body = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):  # `!Parallel [a, b]` shorthand
            body = {"nodes": loader.construct_sequence(node, deep=True)}
        else:
            value = loader.construct_scalar(node)
            if value not in ("", None):
                raise AccelmapError(f"!{tag} at line {line} expects a mapping, got {value!r}", file=loader.source,
                                    field=f"!{tag}")
            body = {}
        return Node(tag, dict(body), line)
    return construct


def _unknown_tag(loader: _Loader, suffix: str, node: yaml.Node):
    line = node.start_mark.line + 1
    raise AccelmapError(f"unknown tag '!{suffix}' at line {line}; expected one of "
                        f"{', '.join('!' + t for t in NODE_TAGS)}", file=loader.source, field=f"!{suffix}")


def _include_constructor(loader: _Loader, node: yaml.Node):
    return loader.includes[int(loader.construct_scalar(node))]


for _t in NODE_TAGS:
    _Loader.add_constructor(f"!{_t}", _node_constructor(_t))
_Loader.add_constructor(_INCLUDE_TAG, _include_constructor)
_Loader.add_multi_constructor("!", _unknown_tag)


def parse_v4_yaml(text: str, source: str, includes: list | None = None) -> Any:
    """YAML text (already rendered) -> Python objects with :class:`Node` for tagged nodes and
    ``<<<`` merged. ``includes`` holds the objects the include placeholders stand for."""
    loader_cls = type("_DocLoader", (_Loader,), {"includes": list(includes or []), "source": source})
    try:
        data = yaml.load(text, Loader=loader_cls)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise syntax_error(exc, source) from None
    return deep_merge_keys(data)


def _merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


def deep_merge_keys(data: Any) -> Any:
    """Resolve every ``<<<`` key (inner ones first); returns new containers, so objects that
    YAML aliases share are never changed in place."""
    if isinstance(data, Node):
        return Node(data.tag, deep_merge_keys(data.body), data.line)
    if isinstance(data, list):
        return [deep_merge_keys(x) for x in data]
    if not isinstance(data, dict):
        return data
    own = {k: deep_merge_keys(v) for k, v in data.items() if k != "<<<"}
    if "<<<" not in data:
        return own
    bases = data["<<<"]
    merged: Any = {}
    for b in bases if isinstance(bases, list) else [bases]:
        b = deep_merge_keys(b)
        if not isinstance(b, dict):
            raise AccelmapError(f"'<<<' expects a mapping (or a list of mappings), got {type(b).__name__}",
                                field="<<<")
        merged = _merge(merged, b)
    return _merge(merged, own)


# ---- jinja2 --------------------------------------------------------------------------------

def _dig(obj: Any, key: str | None, src: str) -> Any:
    if not key:
        return obj
    cur = obj
    for part in key.split("."):
        if isinstance(cur, Node):
            cur = cur.body
        if not isinstance(cur, dict) or part not in cur:
            raise AccelmapError(f"included file has no key '{key}'", file=src, field=key)
        cur = cur[part]
    return cur


_ENV = []


def _environment():
    """One jinja2 environment for every render (its template cache makes folders of layer files fast)."""
    import jinja2

    if not _ENV:
        _ENV.append(jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True))
    return _ENV[0]


class _Renderer:
    """Renders one top file; included files are rendered with the same helpers and search path."""

    def __init__(self, variables: dict[str, Any]):
        self.variables = dict(variables)
        self.search: list[Path] = []
        self.includes: list[Any] = []

    def resolve(self, name: str, here: Path, src: str, what: str) -> Path:
        p = Path(name)
        candidates = [p] if p.is_absolute() else [here / p] + [d / p for d in self.search]
        for c in candidates:
            if c.exists():
                return c
        raise AccelmapError(f"{what} '{name}' does not exist (looked in {here}"
                            + (f" and {', '.join(map(str, self.search))}" if self.search else "") + ")",
                            file=src, field=f"{what}({name!r})")

    def render_file(self, path: Path) -> str:
        src = str(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise AccelmapError("file not found", file=src) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AccelmapError(f"cannot read: {exc}", file=src) from None
        return self.render_text(text, path.parent, src)

    def render_text(self, text: str, here: Path, src: str) -> str:
        import jinja2

        env = _environment()
        helpers = self._helpers(here.resolve(), src)
        try:
            return env.from_string(text).render(**{**self.variables, **helpers})
        except AccelmapError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise AccelmapError(f"jinja2 error at line {exc.lineno}: {exc.message}", file=src,
                                field="jinja2") from None
        except jinja2.UndefinedError as exc:
            hint = "; give it with --spec NAME=VALUE" if "is undefined" in str(exc) else ""
            raise AccelmapError(f"jinja2 error: {exc}{hint}", file=src, field="jinja2") from None
        except Exception as exc:  # errors raised by template expressions (bad filters, arithmetic)
            raise AccelmapError(f"jinja2 error: {type(exc).__name__}: {exc}", file=src, field="jinja2") from None

    def load(self, path: Path) -> Any:
        return parse_v4_yaml(self.render_file(path), str(path), self.includes)

    def _placeholder(self, obj: Any) -> str:
        self.includes.append(obj)
        # flow-safe: a tagged scalar may stand as a mapping value or a list item
        return f"{_INCLUDE_TAG} {len(self.includes) - 1}"

    def _helpers(self, here: Path, src: str) -> dict[str, Callable]:
        def include(name: str, key: str | None = None) -> str:
            p = self.resolve(name, here, src, "include")
            return self._placeholder(_dig(self.load(p), key, str(p)))

        def include_all(pattern: str, key: str | None = None) -> str:
            pat = pattern if Path(pattern).is_absolute() else str(here / pattern)
            items: list = []
            for p in sorted(globlib.glob(pat)):
                got = _dig(self.load(Path(p)), key, p)
                items.extend(got if isinstance(got, list) else [got])
            return self._placeholder(items)

        def include_text(name: str) -> str:
            p = self.resolve(name, here, src, "include_text")
            return p.read_text()

        def path_exists(name: str) -> bool:
            p = Path(name)
            return p.exists() if p.is_absolute() else any((d / p).exists() for d in [here] + self.search)

        def add_to_path(folder: str) -> str:
            d = Path(folder) if Path(folder).is_absolute() else here / folder
            if d not in self.search:
                self.search.append(d)
            return ""

        return {"include": include, "include_all": include_all, "include_text": include_text,
                "path_exists": path_exists, "cwd": lambda: str(here), "add_to_path": add_to_path}


def load_v4_file(path: str | Path, variables: dict[str, Any] | None = None) -> Any:
    """Render one file with jinja2 and read it as v0.4 YAML."""
    p = Path(path)
    if not p.exists():
        raise AccelmapError("file not found", file=str(p))
    if p.is_dir():
        raise AccelmapError("expected a YAML file, got a directory", file=str(p))
    data = _Renderer(variables or {}).load(p)
    if data is None:
        raise AccelmapError("the file is empty; expected a YAML mapping", file=str(p))
    return data


def split_spec_args(items: list[str]) -> tuple[list[str], dict[str, str]]:
    """``--spec`` values: files, and ``NAME=VALUE`` jinja2 variables (e.g. architecture=eyeriss_like)."""
    files, variables = [], {}
    for it in items:
        if "=" in it and not Path(it).exists():
            k, v = it.split("=", 1)
            variables[k.strip()] = v
        else:
            files.append(it)
    if not files:
        raise AccelmapError("--spec names no file; expected one or more YAML/jinja2 files", field="--spec")
    return files, variables


def load_spec_files(files: list[str], variables: dict[str, Any] | None = None) -> tuple[dict, dict[str, str]]:
    """Several files -> one top-level mapping (later files merge over earlier ones, mappings key
    by key) and, per top-level key, the file that gave it (for error messages)."""
    merged: dict = {}
    origin: dict[str, str] = {}
    for f in files:
        doc = load_v4_file(f, variables)
        if not isinstance(doc, dict):
            raise AccelmapError(f"expected a mapping of top-level keys, got {type(doc).__name__}", file=f)
        for k, v in doc.items():
            merged[k] = _merge(merged[k], v) if k in merged else v
            origin[k] = f
    return merged, origin


_FUNCS: dict[str, Callable] = {"ceil": math.ceil, "floor": math.floor, "log2": math.log2, "log": math.log,
                               "sqrt": math.sqrt, "min": min, "max": max, "abs": abs, "round": round,
                               "int": int, "float": float}

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}


_NAME = re.compile(r"[A-Za-z_]\w*")


def evaluate_expression(text: str, names: dict[str, Any], src: str, field: str) -> Any:
    """Arithmetic over numbers, names, + - * / // % **, comparisons, ``a if c else b`` and a
    few math functions. Strings that are not expressions (``"LPDDR4"``, ``"45nm"``) are returned
    unchanged; an expression naming something undefined is an error naming the field."""
    s = text.strip()
    try:
        tree = ast.parse(s, mode="eval")
    except SyntaxError:
        return text
    if isinstance(tree.body, ast.Name) and tree.body.id not in names:
        return text  # a bare word is a string value (type: LPDDR4)

    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float, str, bool)):
            return n.value
        if isinstance(n, ast.Name):
            if n.id in names:
                v = names[n.id]
                return v
            if n.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[n.id]
            raise AccelmapError(f"'{s}' names '{n.id}', which is not a variable or attribute", file=src,
                                field=field)
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
            return _BIN[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd, ast.Not)):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else (+v if isinstance(n.op, ast.UAdd) else not v)
        if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in _CMP:
            return _CMP[type(n.ops[0])](ev(n.left), ev(n.comparators[0]))
        if isinstance(n, ast.IfExp):
            return ev(n.body) if ev(n.test) else ev(n.orelse)
        if isinstance(n, ast.BoolOp):
            vals = [ev(v) for v in n.values]
            return all(vals) if isinstance(n.op, ast.And) else any(vals)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCS and not n.keywords:
            return _FUNCS[n.func.id](*[ev(a) for a in n.args])
        raise AccelmapError(f"unsupported expression '{s}'; expected arithmetic over numbers and variables",
                            file=src, field=field)

    try:
        v = ev(tree.body)
    except AccelmapError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise AccelmapError(f"cannot evaluate '{s}': {exc}", file=src, field=field) from None
    if isinstance(v, float) and v.is_integer() and not isinstance(v, bool):
        return int(v)
    return v


def resolve_values(raw: dict, scope: dict[str, Any], src: str, where: str) -> dict[str, Any]:
    """Evaluate a mapping of values whose expressions may name ``scope`` and each other (in any
    order); returns the mapping with numbers in place of expressions."""
    out: dict[str, Any] = {}
    pending = dict(raw)
    for _ in range(len(pending) + 1):
        progressed = False
        for k in list(pending):
            v = pending[k]
            if not isinstance(v, str):
                out[k] = v
                del pending[k]
                progressed = True
                continue
            deps = set(_NAME.findall(v)) & set(pending) - {k}
            if deps:
                continue
            out[k] = evaluate_expression(v, {**scope, **out}, src, f"{where}.{k}")
            del pending[k]
            progressed = True
        if not pending or not progressed:
            break
    for k, v in pending.items():  # a cycle: evaluate in the order written, naming what is missing
        out[k] = evaluate_expression(v, {**scope, **out}, src, f"{where}.{k}")
    return out
