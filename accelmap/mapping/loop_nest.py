"""Timeloop's pretty-printed loop nest (``timeloop-mapper.map.txt``) read back as a Mapping.

The text lists the storage levels outermost first. Each level opens with a header naming the
dataspaces it keeps, with their tile sizes, then a dashed rule, then its loops outermost first:
temporal loops, then the spatial loops of the fan-out below it (Y loops enclose X loops)::

    shared_glb [ Inputs:2109 (2109) Outputs:1792 (1792) ]
    -----------------------------------------------------
    |       for C in [0:3)
    |             for K in [0:8) (Spatial-Y)
    |                 for S in [0:7) (Spatial-X)

A loop with a residual end (Timeloop v3's imperfect factors) prints it after its end:
``for P in [0:8,5)`` runs to 8, or to 5 on the last iteration of the loops over P outside it.
Loops of size 1 are not printed (a level without any prints ``for N in [0:1)``), so the dims
a level does not loop over keep factor 1 and go outside its printed loops; that leaves the
mapping's costs unchanged. A dataspace missing from a header is bypassed at that level.
:func:`format_map_txt` writes the same text from a Mapping (``accelmap report`` shows it).
"""

from __future__ import annotations

import re
from pathlib import Path

from accelmap.arch.architecture import Architecture
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import LevelMapping, Mapping, split_residuals
from accelmap.workload.workload import Workload

_HEADER = re.compile(r"^(?P<name>[^\s\[\]|]+) \[(?P<body>[^\[\]]*)\]\s*$")
_KEPT = re.compile(r"(\w+):(\d+)(?: \((\d+)\))?")  # older Timeloop prints 'Weights:96' alone
_LOOP = re.compile(r"^\|\s*for (?P<dim>\w+) in \[(?P<lo>-?\d+):(?P<hi>-?\d+)(?:,(?P<res>-?\d+))?\)"
                   r"(?: \(Spatial-(?P<axis>[XY])\))?\s*$")
_RULE = re.compile(r"^-+\s*$")
_COMPUTE = re.compile(r"^\|\s*<< Compute >>\s*$")  # Timeloop v4 closes the nest with the compute level


def looks_like_map_txt(path: str | Path) -> bool:
    """True when a mapping file is a printed loop nest rather than mapping YAML: by suffix
    (``.txt``), else by its first non-blank line being a level header."""
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        return False
    if p.suffix.lower() == ".txt":
        return True
    try:
        with open(p) as f:
            for line in f:
                if line.strip():
                    return bool(_HEADER.match(line.rstrip("\n")))
    except (OSError, UnicodeDecodeError):
        return False  # the YAML reader names the file and the problem
    return False


def read_map_txt(path: str | Path, arch: Architecture, workload: Workload) -> Mapping:
    p = Path(path)
    if not p.is_file():
        raise AccelmapError("file not found" if not p.exists() else "expected a file, got a directory", file=str(p))
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AccelmapError(f"cannot read: {exc}", file=str(p)) from None
    return parse_map_txt(text, arch, workload, str(p))


class _Level:
    def __init__(self, name: str, line: int, kept: list[str]):
        self.name = name
        self.line = line
        self.kept = kept
        self.temporal: list[tuple[str, int, int]] = []  # (dim, end, residual end), outermost first, ends > 1
        self.spatial: list[tuple[str, int, int, str]] = []  # (dim, end, residual end, axis), outermost first


def parse_map_txt(text: str, arch: Architecture, workload: Workload, source: str = "<map.txt>") -> Mapping:
    """The Mapping printed in ``text``. Raises AccelmapError naming ``source`` and the line."""
    dims = list(workload.dims)
    tnames = [t.name for t in workload.tensors]
    order = list(arch.level_names)
    levels: list[_Level] = []

    def fail(n: int, msg: str) -> AccelmapError:
        return AccelmapError(msg, file=source, field=f"line {n}")

    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or _RULE.match(line) or _COMPUTE.match(line):
            continue
        if line.startswith("|"):
            m = _LOOP.match(line)
            if not m:
                raise fail(n, f"bad loop line {line.strip()!r}; expected '| for DIM in [0:N)' or '[0:N,R)' with "
                              f"an optional '(Spatial-X)' or '(Spatial-Y)'")
            if not levels:
                raise fail(n, "loop before the first level header; expected 'LEVEL [ Tensor:size (size) ... ]'")
            lv = levels[-1]
            d, lo, hi, axis = m["dim"], int(m["lo"]), int(m["hi"]), m["axis"]
            res = int(m["res"]) if m["res"] is not None else hi
            if d not in dims:
                raise fail(n, f"unknown dimension '{d}'; expected one of {dims}")
            if lo != 0 or hi < 1:
                raise fail(n, f"loop range [{lo}:{hi}); expected [0:N) with N >= 1")
            if not 1 <= res <= hi:
                raise fail(n, f"loop range [{lo}:{hi},{res}); expected a residual end R with 1 <= R <= {hi}")
            if axis is None:
                if lv.spatial:
                    raise fail(n, f"temporal loop over {d} after a spatial loop at level {lv.name}; expected "
                                  f"the temporal loops first")
                if hi > 1:
                    if any(x == d for x, _, _ in lv.temporal):
                        raise fail(n, f"second temporal loop over {d} at level {lv.name}")
                    lv.temporal.append((d, hi, res))
            else:
                li = order.index(lv.name)
                if arch.fanout(li) == (1, 1):
                    raise fail(n, f"spatial loop at level {lv.name}, which has no fan-out below it")
                if hi > 1:
                    if any(x == d for x, _, _, _ in lv.spatial):
                        raise fail(n, f"second spatial loop over {d} at level {lv.name}")
                    lv.spatial.append((d, hi, res, axis))
            continue
        m = _HEADER.match(line)
        if not m:
            raise fail(n, f"unrecognized line {line.strip()!r}; expected a level header 'LEVEL [ Tensor:size "
                          f"(size) ... ]', a dashed rule or a loop '| for DIM in [0:N)'")
        name, body = m["name"], m["body"]
        if name not in order:
            raise fail(n, f"unknown storage level '{name}'; expected one of {order}")
        if re.sub(_KEPT, "", body).strip():
            raise fail(n, f"bad dataspace list [{body}]; expected entries like 'Inputs:2109 (2109)'")
        kept = [k for k, _, _ in _KEPT.findall(body)]
        for t in kept:
            if t not in tnames:
                raise fail(n, f"unknown dataspace '{t}'; expected one of {tnames}")
        expected = order[len(levels)] if len(levels) < len(order) else None
        if name != expected:
            seen = [lv.name for lv in levels]
            why = "repeated" if name in seen else "out of order"
            raise fail(n, f"level '{name}' is {why}; expected {expected or 'no further level'} (levels outermost "
                          f"first: {order})")
        levels.append(_Level(name, n, kept))
    if not levels:
        raise AccelmapError("no level header found; expected Timeloop's printed loop nest (timeloop-mapper.map.txt)",
                            file=source)
    if len(levels) < len(order):
        raise AccelmapError(f"levels {order[len(levels):]} are missing; expected every storage level of "
                            f"{arch.name}: {order}", file=source, field=f"line {len(text.splitlines())}")
    out = []
    for li, lv in enumerate(levels):
        tf = {d: (f, r) for d, f, r in lv.temporal}
        inner_first = [d for d, _, _ in reversed(lv.temporal)]
        perm = "".join(inner_first + [d for d in dims if d not in inner_first])
        spatial = sperm = split = None
        sres: tuple[tuple[str, int], ...] = ()
        if arch.fanout(li) != (1, 1):
            sf = {d: (f, r) for d, f, r, _ in lv.spatial}
            xs = [d for d, _, _, a in reversed(lv.spatial) if a == "X"]
            ys = [d for d, _, _, a in reversed(lv.spatial) if a == "Y"]
            spatial, sres = split_residuals([(d,) + sf.get(d, (1, 1)) for d in dims])
            sperm = "".join(xs + ys + [d for d in dims if d not in xs and d not in ys])
            split = len(xs)
        temporal, tres = split_residuals([(d,) + tf.get(d, (1, 1)) for d in dims])
        keep = tuple(lv.kept)
        bypass = tuple(t for t in tnames if t not in keep)
        out.append(LevelMapping(lv.name, temporal, perm, spatial, sperm, split, keep, bypass, tres, sres))
    mapping = Mapping(tuple(out))
    mapping.check(workload, arch, source)
    return mapping


def format_map_txt(mapping: Mapping, dims: list[str], tiles: dict | None = None) -> str:
    """A mapping as the loop nest Timeloop's mapper prints (``timeloop-mapper.map.txt``), so
    :func:`parse_map_txt` reads it back.

    Levels outermost first; each opens with the tensors it keeps and their tile sizes in words
    (``tiles``: level -> tensor -> words, per instance; without it, only the names of the
    mapping's keep lists, which the reader does not take),
    then its temporal loops outermost first (``for K in [0:4)``, ``for P in [0:8,5)`` with a
    residual end), then the spatial loops of
    the fan-out below it, Y loops enclosing X loops. Loops of factor 1 are left out; a level
    without a temporal loop prints one of size 1, as Timeloop does. On the 336 Timeloop reference
    records the text equals the mapper's own ``map.txt``.
    """
    lines: list[str] = [""]
    depth = 0

    def loop(d: str, f: int, r: int, tag: str = "") -> None:
        nonlocal depth
        lines.append("| " + "  " * depth + f"for {d} in [0:{f}" + (f",{r}" if r != f else "") + ")" + tag)
        depth += 1

    for lv in mapping.levels:
        kept = (tiles or {}).get(lv.name)
        if kept is not None:
            inside = " ".join(f"{t}:{n} ({n})" for t, n in kept.items())
        else:
            inside = " ".join(lv.keep) if (lv.keep or lv.bypass) else "all tensors"
        head = f"{lv.name} [ {inside} ]" if inside else f"{lv.name} [ ]"
        lines += [head + " ", "-" * len(head)]
        start = depth
        perm = [c for c in lv.permutation if c in dims]  # innermost first; omitted dims go outside
        for d in [d for d in dims if d not in perm] + perm[::-1]:
            if lv.temporal_factor(d) > 1:
                loop(d, lv.temporal_factor(d), lv.temporal_residual_end(d))
        if depth == start:  # no temporal loop: Timeloop prints one of size 1 over the last dimension
            loop(dims[-1], 1, 1)
        if lv.spatial:
            sperm = [c for c in (lv.spatial_permutation or "") if c in dims]
            order = [d for d in dims if d not in sperm] + sperm[::-1]
            order = sorted(order, key=lambda d: lv.spatial_axis(d) == 0)  # Y loops enclose X loops
            for d in order:
                if lv.spatial_factor(d) > 1:
                    loop(d, lv.spatial_factor(d), lv.spatial_residual_end(d),
                         " (Spatial-X)" if lv.spatial_axis(d) == 0 else " (Spatial-Y)")
        lines.append("")
    return "\n".join(lines) + "\n"
