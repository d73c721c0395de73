"""``accelmap report RUN_DIR``: one self-contained HTML page for a run directory.

The page has no external resources: CSS is inline and every plot is a base64 PNG, so it can
be mailed or attached as a single file. It recognizes four kinds of directory:

- a map run (``accelmap map``): settings, network totals, a per-layer table with the gaps to
  the lower bounds, energy by level and by tensor (each layer's mapping file re-evaluated with
  the cost model on the run's architecture), cycles against the compute bound, utilization,
  search traces from ``trials.jsonl`` and each layer's mapping as a Timeloop-style loop nest;
- a co-design run (``accelmap codesign``): the chosen hardware against the base, budgets and
  whether they hold, totals, the convergence trace, and the per-layer view on the design's
  architecture (``design/``);
- a co-design front (``accelmap codesign --pareto``; its summary is ``front.json``): the
  epsilon-constraint and weighted-sum points, hypervolumes, and each point's hardware;
- a tune run (``accelmap tune``): ``summary.json`` with ``"kind": "tune"`` and
  ``records.jsonl``, one measurement per line with ``layer``, ``tuner``, ``index``, ``config``,
  ``runtime`` (null when it failed) and ``error`` (null or a code).

The page comes from one Jinja template (``data/templates/report.html.j2``); this module turns a
directory into sections of plain blocks (cards, key/value rows, tables, figures, loop nests).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path

from accelmap.errors import AccelmapError
from accelmap.mapping.loop_nest import format_map_txt

TUNE_BATCH = 64  # measurements per batch when counting invalid shares
TUNE_FIELDS = ("layer", "tuner", "index")
EXPECTED = ("expected a run directory of accelmap map, codesign or tune (with summary.json) "
            "or a codesign --pareto front directory (with front.json)")


# ---- entry point -----------------------------------------------------------------------------

def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) for a map, codesign, front or tune directory;
    return its path. Raises :class:`AccelmapError` for a directory of none of these kinds."""
    run = Path(run_dir)
    kind = detect_kind(run)
    build = {"map": _map_page, "codesign": _codesign_page, "sweep": _sweep_page, "tune": _tune_page}[kind]
    page = build(run)
    page.setdefault("subtitle", "")
    page["subtitle"] = " · ".join(x for x in (page["subtitle"], str(run.resolve()),
                                               "generated " + time.strftime("%Y-%m-%d %H:%M")) if x)
    page["footer"] = "accelmap report · self-contained page: plots are embedded PNGs, no external resources"
    dest = Path(out) if out else run / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render(page), encoding="utf-8")
    return dest


def detect_kind(run: Path) -> str:
    """'map', 'codesign', 'sweep' (a --pareto front) or 'tune'."""
    if not run.is_dir():
        raise AccelmapError(f"not a directory; {EXPECTED}", file=str(run))
    summary = run / "summary.json"
    if not summary.is_file():
        if (run / "front.json").is_file():
            return "sweep"
        raise AccelmapError(f"no summary.json; {EXPECTED}", file=str(run))
    s = _load_json(summary)
    if not isinstance(s, dict):
        raise AccelmapError("expected a JSON object", file=str(summary))
    if s.get("kind") in ("map", "codesign", "tune"):  # what every writer records now
        return s["kind"]
    if s.get("kind") == "sweep" or isinstance(s.get("points"), list):
        raise AccelmapError("a hardware sweep (accelmap sweep) has no report page yet; its points.csv and "
                            "scatter.png hold the results; expected a run of accelmap map, codesign or tune",
                            file=str(summary))
    # runs written before summaries recorded their kind
    settings = s.get("settings") if isinstance(s.get("settings"), dict) else {}
    if "hardware" in s or ("arch_space" in settings and "trace" in s):
        return "codesign"
    if "arch" in settings and isinstance(s.get("layers"), list):
        return "map"
    if isinstance(s.get("points"), list):
        raise AccelmapError("a hardware sweep (accelmap sweep) has no report page yet; its points.csv and "
                            "scatter.png hold the results; expected a run of accelmap map, codesign or tune",
                            file=str(summary))
    raise AccelmapError("not a summary of accelmap map (settings.arch and layers), codesign (settings.arch_space) "
                        "or tune (\"kind\": \"tune\")", file=str(summary), field="settings")


def render(page: dict) -> str:
    """The HTML text of ``page`` (title, subtitle, footer, sections of blocks)."""
    import jinja2

    text = (resources.files("accelmap") / "data" / "templates" / "report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(text).render(**page)


# ---- blocks (plain data for the template) ---------------------------------------------------

def _section(sid: str, title: str, *blocks) -> dict:
    return {"id": sid, "title": title, "blocks": [b for b in blocks if b]}


def _note(text: str, warn: bool = False) -> dict:
    return {"type": "note", "text": text, "warn": warn}


def _cards(items) -> dict:
    return {"type": "cards", "entries": list(items)}


def _kv(rows, title: str = "") -> dict:
    return {"type": "kv", "rows": list(rows), "title": title}


def _table(columns, rows, numeric, title: str = "", caption: str = "", compact: bool = False) -> dict:
    """``compact``: as wide as its content (for tables of a few short columns)."""
    return {"type": "table", "columns": list(columns), "rows": [list(r) for r in rows], "numeric": list(numeric),
            "title": title, "caption": caption, "compact": compact}


def _figure(png: bytes, caption: str, alt: str = "plot") -> dict:
    return {"type": "figure", "png": base64.b64encode(png).decode("ascii"), "caption": caption, "alt": alt}


BOUND_CAVEAT = ("Some gaps are below ×1.00: the energy bound charges every word of a tensor's full extent, which for "
                "a strided layer includes input words the layer never reads, so there it is not a true bound.")


def _nests(items, open_first: bool = False) -> dict:
    return {"type": "nests", "entries": list(items), "open": open_first}


def _nw(text: str) -> dict:
    """A table cell that does not wrap."""
    return {"text": text, "cls": "nw"}


def _mark(text: str, ok: bool | None) -> dict:
    return {"text": text, "cls": "" if ok is None else ("ok" if ok else "bad")}


# ---- number formatting -----------------------------------------------------------------------

def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x, digits: int = 4) -> str:
    """Integers and large values with thousands separators, small ones to ``digits`` figures."""
    if not _finite(x):
        return "–"
    if abs(x) >= 1e4 or (float(x).is_integer() and abs(x) >= 1):
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _sci(x) -> str:
    return f"{x:.4g}" if _finite(x) else "–"


def _uj(pj) -> str:
    return f"{pj / 1e6:,.2f}" if _finite(pj) else "–"


def _secs(x) -> str:
    return f"{x:,.2f}" if _finite(x) else "–"


def _gap(x) -> str:
    return f"×{x:.2f}" if _finite(x) else "–"


def _value(v) -> str:
    """A settings value as short text."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) or "–"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items()) or "–"
    return str(v)


def _dims(dims: dict) -> str:
    return " ".join(f"{d}{b}" for d, b in dims.items() if b > 1) or "–"


# ---- files -----------------------------------------------------------------------------------

def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AccelmapError(f"not valid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
    except OSError as exc:
        raise AccelmapError(f"cannot read: {exc.strerror}", file=str(path)) from None


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AccelmapError(f"not valid JSON ({exc.msg})", file=str(path), field=f"line {n}") from None
        if not isinstance(rec, dict):
            raise AccelmapError("expected one JSON object per line", file=str(path), field=f"line {n}")
        out.append(rec)
    return out


def _png_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ---- layers: re-evaluation and loop nests -----------------------------------------------------

def _load_arch(spec: str, ert: str | None = None, art: str | None = None, base: Path | None = None):
    """(architecture or None, why not)."""
    from accelmap.arch.load import load_architecture

    cands = [spec]
    if base is not None and not Path(spec).is_absolute():
        cands.append(str(base / spec))
    err = ""
    for c in cands:
        try:
            return load_architecture(c, ert, art), ""
        except AccelmapError as exc:
            err = str(exc)
        except Exception as exc:  # a preset name that is not one, an unreadable table
            err = f"{type(exc).__name__}: {exc}"
    return None, err


def _layer_views(run: Path, records: list[dict], arch) -> list[dict]:
    """Per layer record (name, count, macs, mapping_file, problem_file, ...): the cost model's
    breakdown of its mapping on ``arch`` (None: no architecture) and its loop nest."""
    from accelmap.mapping.mapping import read_mapping
    from accelmap.model.evaluation import evaluate_mapping
    from accelmap.workload.load import read_problem_yaml

    views = []
    for i, rec in enumerate(records):
        v = {"index": rec.get("index", i), "name": rec.get("name", f"layer {i}"), "count": rec.get("count", 1),
             "macs": rec.get("macs"), "dims": rec.get("dims") or {}, "eval": None, "nest": "", "problem": "",
             "workload": None}
        mfile = run / rec["mapping_file"] if rec.get("mapping_file") else None
        pfile = run / rec["problem_file"] if rec.get("problem_file") else None
        if mfile is None or not mfile.is_file() or pfile is None or not pfile.is_file():
            v["problem"] = "no mapping file" + (f" ({rec['note']})" if rec.get("note") else "")
            views.append(v)
            continue
        try:
            w = read_problem_yaml(pfile)
            v["workload"] = w
            v["dims"] = v["dims"] or dict(zip(w.dims, w.bounds))
            v["macs"] = v["macs"] if v["macs"] is not None else w.macs
            m = read_mapping(mfile, arch.level_names if arch is not None else None)
            if arch is None:
                v["nest"] = format_map_txt(m, list(w.dims))
            else:
                ev = evaluate_mapping(w, arch, m, source=str(mfile))
                d = ev.to_dict()
                by_tensor: dict[str, float] = {}
                for lv in d["levels"]:
                    for t, s in lv["tensors"].items():
                        by_tensor[t] = by_tensor.get(t, 0.0) + s["energy_pJ"]
                by_tensor[arch.compute.name] = d["energy_pJ_by_component"][arch.compute.name]
                d["energy_pJ_by_tensor"] = by_tensor
                v["eval"] = d
                tiles = {lv["name"]: {t: s["tile"] for t, s in lv["tensors"].items()} for lv in d["levels"]}
                v["nest"] = format_map_txt(m, list(w.dims), tiles)
            v["mapping_file"] = str(mfile.relative_to(run))
        except AccelmapError as exc:
            v["problem"] = str(exc)
        views.append(v)
    return views


def _per_layer_plots(views: list[dict], arch, by_level_fallback: dict | None = None) -> list[dict]:
    """Energy by level and tensor, cycles vs the compute bound, utilization."""
    from accelmap.runs.plots import cycles_utilization_png, energy_breakdown_png

    ev = [v for v in views if v["eval"] is not None and v["eval"]["valid"]]
    blocks = []
    if ev:
        labels = [v["name"] for v in ev]
        comps = list(ev[0]["eval"]["energy_pJ_by_component"])
        tensors = list(ev[0]["eval"]["energy_pJ_by_tensor"])
        by_level = {c: [v["eval"]["energy_pJ_by_component"].get(c, 0.0) for v in ev] for c in comps}
        by_tensor = {t: [v["eval"]["energy_pJ_by_tensor"].get(t, 0.0) for v in ev] for t in tensors}
        blocks.append(_figure(energy_breakdown_png(labels, by_level, by_tensor, arch.compute.name),
                              "Energy of one occurrence of each layer, by component (storage levels, then the MAC "
                              "units) and by tensor; the MAC units' share is grey in both. Each layer's mapping file "
                              f"re-evaluated with the cost model on {arch.name}.", "energy breakdown"))
        bound = [math.ceil(v["macs"] / arch.compute.instances) for v in ev]
        blocks.append(_figure(cycles_utilization_png(labels, [v["eval"]["cycles"] for v in ev], bound,
                                                     [v["eval"]["utilization"] for v in ev]),
                              f"Cycles of one occurrence against the compute bound MACs / {arch.compute.instances:,} "
                              "MAC units (red tick), and the share of MAC units busy.", "cycles and utilization"))
    elif by_level_fallback:
        labels = list(by_level_fallback)
        comps = list(next(iter(by_level_fallback.values())))
        by_level = {c: [by_level_fallback[n].get(c, 0.0) for n in labels] for c in comps}
        blocks.append(_figure(energy_breakdown_png(labels, by_level, {}, comps[-1]),
                              "Energy of one occurrence of each layer by component, from summary.json (the "
                              "architecture could not be loaded, so there is no split by tensor).", "energy"))
    return blocks


def _nest_items(views: list[dict]) -> list[dict]:
    items = []
    for v in views:
        meta = f"{_dims(v['dims'])}"
        if v["eval"] is not None:
            meta += f" · {_uj(v['eval']['energy_pJ'])} uJ · {_num(v['eval']['cycles'])} cycles"
        if v.get("mapping_file"):
            meta += f" · {v['mapping_file']}"
        items.append({"title": f"{v['index']:02d} {v['name']}" if isinstance(v["index"], int) else v["name"],
                      "meta": meta, "text": v["nest"].strip("\n") or v["problem"]})
    return items


# ---- map runs --------------------------------------------------------------------------------

def _map_page(run: Path) -> dict:
    s = _load_json(run / "summary.json")
    st = s["settings"]
    layers = s["layers"]
    tot = s.get("totals") or {}
    arch, why = _load_arch(str(st.get("arch_file") or st["arch"]), st.get("ert"), st.get("art"), base=run)
    views = _layer_views(run, layers, arch)

    settings = _section("settings", "Settings", _kv((k, _value(v)) for k, v in st.items()),
                        None if s.get("complete", True) else
                        _note("The run was interrupted: only the layers that finished are here.", warn=True))
    # the network's unique layers, not only those that finished before an interruption
    n_unique = st.get("unique_layers") or tot.get("layers", len(layers))
    not_run = max(0, n_unique - len(layers))
    cards = [("layers mapped", f"{tot.get('mapped', '–')} / {n_unique}"),
             ("GMACs", f"{tot['macs'] / 1e9:.3f}" if _finite(tot.get("macs")) else "–"),
             ("energy (uJ)", _uj(tot.get("energy_pJ"))), ("cycles", _num(tot.get("cycles"))),
             ("EDP (J·cycle)", _sci(tot["edp"] * 1e-12) if _finite(tot.get("edp")) else "–"),
             ("energy / lower bound", _gap(tot.get("gap_energy"))),
             ("cycles / lower bound", _gap(tot.get("gap_cycles"))),
             ("search (s, all layers)", _num(tot.get("search_seconds"), 3)),
             ("wall (s)", _num(st.get("wall_seconds"), 3))]
    partial = None
    if tot.get("unmapped") or not_run:
        partial = _note(f"Partial totals: they leave out {len(tot.get('unmapped') or [])} layer(s) with no legal "
                        f"mapping ({_num(tot.get('unmapped_macs'))} MACs)"
                        + (f" and {not_run} layer(s) not searched before the interruption" if not_run else "")
                        + ".", warn=True)
    totals = _section("totals", "Network totals", partial, _cards(cards),
                      _note("Totals weight each unique layer by its count. " + (s.get("lower_bound") or "")))

    rows = []
    for rec in layers:
        found = rec.get("found", True)
        head = [rec.get("index", ""), _nw(rec["name"]), _nw(_dims(rec.get("dims") or {})), rec.get("count", 1),
                _num(rec.get("macs"))]
        if not found:
            rows.append(head + [_mark("no legal mapping", False)] + ["–"] * 7 + [_secs(rec.get("seconds"))])
            continue
        rows.append(head + [_uj(rec["energy_pJ"]), _num(rec["cycles"]), _sci(rec["edp"] * 1e-12),
                            f"{rec['utilization']:.2f}", _gap(rec.get("gap_energy")), _gap(rec.get("gap_cycles")),
                            _gap(rec.get("gap_edp")), _num(rec.get("evaluations")), _secs(rec.get("seconds"))])
    cols = ["#", "layer", "dims", "count", "MACs", "energy (uJ)", "cycles", "EDP (J·cycle)", "util",
            "gap E", "gap cyc", "gap EDP", "evals", "search s"]
    num = [True, False, False] + [True] * 11
    below = any(_finite(r.get(k)) and r[k] < 1 - 1e-9 for r in layers for k in ("gap_energy", "gap_cycles"))
    table = _section("layers", "Layers", _note(BOUND_CAVEAT) if below else None, _table(cols, rows, num, caption=(
        "One occurrence of each unique layer. util: share of MAC units busy. Gaps: energy, cycles and EDP as "
        "ratios to their lower bounds (×1.00 = at the bound). evals: model evaluations; search s: seconds. "
        "Unmapped layers: " + ("; ".join(f"{r['name']}: {r.get('note', '')}" for r in layers
                                         if not r.get("found", True)) or "none")
        + (f"; {not_run} more not searched (the run was interrupted)" if not_run else "") + ".")))

    arch_note = None if arch is not None else _note(
        f"The architecture '{st['arch']}' could not be loaded ({why}); the breakdown by tensor and the tile sizes "
        "are left out.", warn=True)
    fallback = {r["name"]: r["energy_by_level"] for r in layers if r.get("found", True) and r.get("energy_by_level")}
    breakdown = _section("breakdown", "Energy, cycles, utilization", arch_note,
                         *_per_layer_plots(views, arch, fallback))
    search = _section("search", "Search traces", *_map_traces(run, layers, st))
    nests = _section("mappings", "Mappings (loop nests)",
                     _note("Each layer's chosen mapping as Timeloop's mapper prints it (map.txt; accelmap evaluate "
                           "--mapping reads it back): outermost level first, per level the tensors it keeps with "
                           "their tile sizes in words per instance, its temporal loops, then the spatial loops under "
                           "it. Loops of factor 1 are left out. Click a layer to open it."),
                     _nests(_nest_items(views), open_first=True))
    return {"title": f"accelmap map: {st.get('network', '?')} on {st['arch']}",
            "subtitle": f"objective {st.get('objective', '?')}, optimizer {st.get('optimizer', '?')}",
            "sections": [settings, totals, table, breakdown, search, nests]}


def _map_traces(run: Path, layers: list[dict], st: dict) -> list[dict]:
    from accelmap.runs.plots import small_multiples_png

    path = run / "trials.jsonl"
    if not path.is_file():
        return [_note("No trials.jsonl in this run.")]
    panels: dict[str, dict[str, tuple[list, list]]] = {r["name"]: {} for r in layers}
    for rec in _read_jsonl(path):
        if not (_finite(rec.get("evaluations")) and _finite(rec.get("best_score"))):
            continue
        opt = str(rec.get("optimizer", st.get("optimizer", "search")))
        xs, ys = panels.setdefault(str(rec.get("layer", "?")), {}).setdefault(opt, ([], []))
        xs.append(rec["evaluations"])
        ys.append(rec["best_score"])
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return [_note("trials.jsonl holds no finite scores.")]
    allx = [x for p in panels.values() for xs, _ in p.values() for x in xs]
    logx = min(allx) > 0 and max(allx) / min(allx) > 20
    opts = sorted({o for p in panels.values() for o in p})
    return [_figure(small_multiples_png(panels, "evaluations" + (" (log)" if logx else ""),
                                        f"best score ({st.get('objective', 'objective')}, log)", logx=logx),
                    f"Best score found (the log of the objective, lower is better) against model evaluations, one "
                    f"panel per layer, one line per optimizer ({', '.join(opts)}). A point is logged each time the "
                    "search reports progress.", "search traces")]


# ---- codesign runs ---------------------------------------------------------------------------

BUDGET_KEYS = (("area", "area_mm2", "area_mm2", "mm²"), ("power", "power_mw", "power_mW", "mW"),
               ("latency", "latency_cycles", "latency_cycles", "cycles"), ("energy", "energy_pj", "energy_pJ", "pJ"))


def _codesign_page(run: Path) -> dict:
    s = _load_json(run / "summary.json")
    st = s.get("settings") or {}
    budgets = st.get("budgets") or {}
    tot = s.get("totals") or {}
    sections = [_section("settings", "Settings", _kv((k, _value(v)) for k, v in st.items()),
                         _kv([("seconds", _num(s.get("seconds"), 3)),
                              ("designs evaluated", _num(s.get("designs_evaluated"))),
                              ("feasible", _mark("yes" if s.get("feasible") else "no", bool(s.get("feasible")))
                               if "feasible" in s else "–"),
                              ("score", _sci(s.get("score")))], title="Search"))]
    if "hardware" not in s:
        sections.append(_section("design", "Design", _note("No design was evaluated in this run.", warn=True)))
        return {"title": f"accelmap codesign: {st.get('network', '?')}", "sections": sections}

    base = s.get("base_hardware") or {}
    hw_rows = []
    for k, v in s["hardware"].items():
        b = base.get(k)
        ratio = v / b if _finite(b) and b and _finite(v) else None
        hw_rows.append([k, _num(b), _num(v), f"{ratio:.3g}×" if ratio is not None else "–"])
    b_rows = []
    for name, bkey, tkey, unit in BUDGET_KEYS:
        got = tot.get(tkey)
        lim = budgets.get(bkey)
        shown = _uj(got) + " uJ" if tkey == "energy_pJ" else f"{_num(got)} {unit}"
        if lim is None:
            b_rows.append([name, "none", shown, "–"])
        else:
            met = _finite(got) and got <= lim * (1 + 1e-9)
            b_rows.append([name, f"≤ {_num(lim)} {unit}", shown, _mark("met" if met else "NOT met", met)])
    infeasible = _note(f"Infeasible: {s['infeasible']}", warn=True) if s.get("infeasible") else None
    unmapped = [r.get("name", "?") for r in s.get("layers") or [] if r.get("found", True) is False]
    partial = _note(f"Not a result: {len(unmapped)} layer(s) have no legal mapping on this design "
                    f"({', '.join(unmapped)}); the totals leave them out.", warn=True) if unmapped else None
    sections.append(_section(
        "design", "Design",
        _cards([("latency (cycles)", _num(tot.get("latency_cycles"))), ("energy (uJ)", _uj(tot.get("energy_pJ"))),
                ("power (mW)", _num(tot.get("power_mW"))), ("area (mm²)", _num(tot.get("area_mm2"), 4)),
                ("EDP (J·cycle)", _sci(tot["edp"] * 1e-12) if _finite(tot.get("edp")) else "–"),
                ("layers without a mapping", _num(tot.get("unmapped_layers")))]),
        partial, infeasible,
        _table(["parameter", "base", "design", "design / base"], hw_rows, [False, True, True, True],
               title="Hardware", compact=True),
        _table(["metric", "budget", "design", "status"], b_rows, [False, True, True, False], title="Budgets",
               compact=True),
        _note(f"Objective: {st.get('objective', '?')}. Network totals weight each layer by its count; latency is "
              "the sum of the layers' cycles.")))

    tr = s.get("trace") or []
    if tr:
        from accelmap.runs.plots import score_trace_png

        png = score_trace_png([t["seconds"] for t in tr], [t["score"] for t in tr],
                              [bool(t.get("feasible")) for t in tr], f"co-design convergence ({s.get('method', '?')})",
                              end=s.get("seconds"))
        sections.append(_section("convergence", "Convergence", _figure(
            png, "Best score (log objective plus penalties for budget overshoot; lower is better) each time it "
                 "improved, against wall time.", "convergence")))
    else:
        sections.append(_section("convergence", "Convergence", _note("No trace in summary.json.")))

    arch_file = s.get("architecture")
    arch, why = (None, "summary.json names no architecture") if not arch_file else _load_arch(
        str(run / arch_file), str(run / s["ert"]) if s.get("ert") else None,
        str(run / s["art"]) if s.get("art") else None)
    layers = s.get("layers") or []
    views = _layer_views(run, layers, arch)
    bounds = _bounds(views, arch, st.get("constraints"))
    rows, below = [], False
    for v, rec, bd in zip(views, layers, bounds):
        d = v["eval"]
        if rec.get("found", True) is False or (d is not None and not d.get("valid", True)):
            # a layer the design cannot map, or a written mapping that evaluates illegal: no costs shown
            what = "no legal mapping" if rec.get("found", True) is False else "INVALID mapping"
            rows.append([v["index"], _nw(v["name"]), _nw(_dims(v["dims"])), v["count"], _num(v["macs"]),
                         _mark(what, False)] + ["–"] * 5)
            continue
        e = d["energy_pJ"] if d else rec.get("energy_pJ")
        c = d["cycles"] if d else rec.get("cycles")
        below |= bool(bd) and _finite(e) and _finite(c) and (e < bd[0] * (1 - 1e-9) or c < bd[1] * (1 - 1e-9))
        rows.append([v["index"], _nw(v["name"]), _nw(_dims(v["dims"])), v["count"], _num(v["macs"]), _uj(e), _num(c),
                     _sci(e * c * 1e-12) if _finite(e) and _finite(c) else "–",
                     f"{d['utilization']:.2f}" if d else "–",
                     _gap(e / bd[0]) if bd and _finite(e) else "–", _gap(c / bd[1]) if bd and _finite(c) else "–"])
    cols = ["#", "layer", "dims", "count", "MACs", "energy (uJ)", "cycles", "EDP (J·cycle)", "util",
            "gap E", "gap cyc"]
    arch_note = None if arch is not None else _note(f"The design's architecture could not be loaded ({why}).", True)
    sections.append(_section("layers", "Layers", arch_note, _note(BOUND_CAVEAT) if below else None, _table(
        cols, rows, [True, False, False] + [True] * 8,
        caption="One occurrence of each unique layer on the design; each mapping re-evaluated on the design's "
                "architecture (" + (arch_file or "?") + "). Gaps are ratios to the lower bounds of accelmap map "
                "on this hardware (cycles >= MACs / MAC units; energy: every word once through DRAM and into "
                "each level the constraints force to keep it).")))
    sections.append(_section("breakdown", "Energy, cycles, utilization", *_per_layer_plots(views, arch)))
    sections.append(_section("mappings", "Mappings (loop nests)",
                             _note("Each layer's mapping on the design as Timeloop's mapper prints it (map.txt), "
                                   "outermost level first; tile sizes in words per instance; loops of factor 1 left "
                                   "out."),
                             _nests(_nest_items(views), open_first=True)))
    return {"title": f"accelmap codesign: {st.get('network', '?')} ({s.get('method', '?')})",
            "subtitle": f"objective {st.get('objective', '?')}", "sections": sections}


def _bounds(views: list[dict], arch, constraints: str | None) -> list[tuple[float, float] | None]:
    """Per view: (energy, cycles) lower bounds on ``arch`` under the run's constraints."""
    if arch is None:
        return [None] * len(views)
    from accelmap.mapspace.bounds import lower_bound
    from accelmap.mapspace.constraints import Constraints, read_constraints

    cons = Constraints()
    if constraints and Path(constraints).is_file():
        try:
            cons = read_constraints(constraints)
        except AccelmapError:
            pass
    out = []
    for v in views:
        b = lower_bound(v["workload"], arch, cons) if v["eval"] is not None else None
        out.append((b.energy_pJ, b.cycles) if b else None)
    return out


# ---- codesign fronts (--pareto) ------------------------------------------------------------

def _sweep_page(run: Path) -> dict:
    import tempfile

    import numpy as np

    from accelmap.codesign.pareto import plot_fronts

    f = _load_json(run / "front.json")
    if not isinstance(f, dict) or "metrics" not in f:
        raise AccelmapError("expected a front summary with 'metrics', 'epsilon' and 'weighted'",
                            file=str(run / "front.json"), field="metrics")
    m1, m2 = f["metrics"]
    eps, ws = f.get("epsilon") or [], f.get("weighted") or []
    hv_e, hv_w = f.get("hypervolume_epsilon"), f.get("hypervolume_weighted")
    ref = f.get("reference") or [None, None]
    cards = [("hypervolume, epsilon-constraint", _sci(hv_e)), ("hypervolume, weighted sum", _sci(hv_w)),
             ("epsilon / weighted", f"{hv_e / hv_w:.3f}" if _finite(hv_e) and _finite(hv_w) and hv_w else "–"),
             ("epsilon points missed by the weighted sum", str(len(f.get("missed_by_weighted") or []))),
             ("points per sweep", f"{len(eps)} / {len(ws)}")]
    sections = [_section("front", "Trade-off front", _cards(cards),
                         None if f.get("complete", True) else _note("The sweep was interrupted.", warn=True),
                         _note(f"{m1} against {m2}, both minimized. Hypervolumes in the common reference point "
                               f"({_sci(ref[0])}, {_sci(ref[1])}), from front.json."))]
    pts_e = np.array([p["point"] for p in eps], dtype=float).reshape(-1, 2)
    pts_w = np.array([p["point"] for p in ws], dtype=float).reshape(-1, 2)
    if not np.isfinite(np.concatenate([pts_e, pts_w])).all(axis=1).any():
        sections[0]["blocks"].append(_note("No run of either sweep found a feasible design, so there is no front; "
                                           "give each run more --seconds.", warn=True))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            png = _png_file(plot_fronts(pts_e, pts_w, (m1, m2), Path(tmp) / "front.png",
                                        title="epsilon-constraint vs weighted-sum"))
        sections[0]["blocks"].append(_figure(png, "Fronts of the two sweeps (log axes); points of the "
                                                  "epsilon-constraint front that no weighted-sum point reaches are "
                                                  "circled.", "front"))
    rows = []
    hw_rows = []
    for kind, pts in (("epsilon", eps), ("weighted", ws)):
        for i, p in enumerate(pts):
            x, y = p["point"]
            bud = ", ".join(f"{k} ≤ {_num(v)}" for k, v in (p.get("budgets") or {}).items()) or "–"
            d = run / kind / f"{i:02d}"
            rows.append([kind, i, p.get("objective", "?"), bud, _num(x), _num(y),
                         _mark("yes", True) if p.get("on_front") else "", f"{kind}/{i:02d}" if d.is_dir() else "–"])
            hw = _point_hardware(d, f"{kind}_{i:02d}")
            if hw:
                hw_rows.append([kind, i] + hw)
    sections.append(_section("points", "Points", _table(
        ["sweep", "#", "objective", "budgets", m1, m2, "on front", "design"], rows,
        [False, True, False, False, True, True, False, False],
        caption="The first two points of each sweep are the shared anchors (each metric alone); every infeasible "
                "run shows as –.")))
    if hw_rows:
        names = _point_hardware_columns(run, eps, ws)
        sections.append(_section("hardware", "Hardware of the front points", _table(
            ["sweep", "#"] + names, hw_rows, [False] + [True] * (len(names) + 1),
            caption="From each point's design/ architecture (Timeloop YAML with its ERT and ART).")))
    return {"title": f"accelmap codesign front: {m1} vs {m2}", "subtitle": "epsilon-constraint and weighted-sum sweeps",
            "sections": sections}


def _point_arch(d: Path, name: str):
    a = d / "design" / f"{name}.yaml"
    if not a.is_file():
        return None
    ert, art = d / "design" / f"{name}.ERT.yaml", d / "design" / f"{name}.ART.yaml"
    arch, _ = _load_arch(str(a), str(ert) if ert.is_file() else None, str(art) if art.is_file() else None)
    return arch


def _point_hardware(d: Path, name: str) -> list[str] | None:
    arch = _point_arch(d, name)
    if arch is None:
        return None
    caps = [_num(lv.capacity) if lv.capacity else "–" for lv in arch.levels[1:]]
    n, x = arch.compute.instances, max(1, arch.compute.mesh_x)
    return [_num(n), f"{x}×{n // x}"] + caps + [f"{arch.area_um2 / 1e6:.3f}"]


def _point_hardware_columns(run: Path, eps, ws) -> list[str]:
    for kind, pts in (("epsilon", eps), ("weighted", ws)):
        for i in range(len(pts)):
            arch = _point_arch(run / kind / f"{i:02d}", f"{kind}_{i:02d}")
            if arch is not None:
                return ["MAC units", "PE mesh"] + [f"{lv.name} (words)" for lv in arch.levels[1:]] + ["area (mm²)"]
    return []


# ---- tune runs -------------------------------------------------------------------------------

def _tune_page(run: Path) -> dict:
    from accelmap.runs.plots import invalid_share_png, small_multiples_png

    s = _load_json(run / "summary.json")
    path = run / "records.jsonl"
    if not path.is_file():
        raise AccelmapError("a tune run needs records.jsonl (one measurement per line)", file=str(run))
    recs = _read_jsonl(path)
    for n, r in enumerate(recs, 1):
        for k in TUNE_FIELDS:
            if k not in r:
                raise AccelmapError(f"missing required field; expected '{k}'", file=str(path), field=f"line {n}.{k}")
    unit = s.get("runtime_unit") or (s.get("settings") or {}).get("runtime_unit") or \
        next((str(r["unit"]) for r in recs if r.get("unit")), "")
    ulabel = f"runtime ({unit})" if unit else "runtime"

    def valid(r) -> bool:
        return r.get("error") is None and _finite(r.get("runtime"))

    # one series per tuner, or per tuner and seed where a tuner ran on one layer with several
    # seeds (a run seeds each layer differently: that alone does not split a tuner)
    seeds = defaultdict(set)
    for r in recs:
        seeds[(str(r["layer"]), str(r["tuner"]))].add(str(r.get("seed")))
    split = {t for (_, t), ss in seeds.items() if len(ss) > 1}

    def series(r) -> str:
        t = str(r["tuner"])
        return f"{t} seed {r.get('seed')}" if t in split else t

    # (layer, series) -> records in measurement order
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in recs:
        runs[(str(r["layer"]), series(r))].append(r)
    for v in runs.values():
        v.sort(key=lambda r: r["index"])
    layers = list(dict.fromkeys(str(r["layer"]) for r in recs))
    tuners = sorted({series(r) for r in recs})

    settings = s.get("settings") if isinstance(s.get("settings"), dict) else {}
    top = [(k, _value(v)) for k, v in s.items() if k not in ("settings", "kind") and not isinstance(v, (dict, list))]
    n_bad = sum(not valid(r) for r in recs)
    sections = [_section("settings", "Settings",
                         None if s.get("complete", True) else _note("The run did not complete" + (
                             f": {s['error']}" if s.get("error") else "") + "; the measurements logged are here.",
                                                                    warn=True),
                         _kv((k, _value(v)) for k, v in settings.items()) if settings else None,
                         _kv(top, title="Summary") if top else None),
                _section("overview", "Overview", _cards([
                    ("layers", str(len(layers))), ("tuners", ", ".join(tuners) or "–"),
                    ("measurements", _num(len(recs))),
                    ("invalid", f"{n_bad:,} ({n_bad / len(recs):.1%})" if recs else "–")]))]
    if not recs:
        sections.append(_section("records", "Measurements", _note("records.jsonl is empty.", warn=True)))
        return {"title": "accelmap tune", "sections": sections}

    rows, panels, best_of_layer = [], {}, {}
    for layer in layers:
        panels[layer] = {}
        for t in tuners:
            rs = runs.get((layer, t))
            if not rs:
                continue
            good = [r for r in rs if valid(r)]
            best = min(good, key=lambda r: r["runtime"]) if good else None
            xs, ys, cur = [], [], math.inf
            for r in rs:
                if valid(r) and r["runtime"] < cur:
                    cur = r["runtime"]
                    xs.append(r["index"])
                    ys.append(cur)
            if xs:  # carry the best to the last measurement
                xs.append(rs[-1]["index"])
                ys.append(cur)
                panels[layer][t] = (xs, ys)
            bad = len(rs) - len(good)
            rows.append([layer, t, _num(len(rs)), _num(len(good)), f"{bad / len(rs):.1%}",
                         _num(best["runtime"]) if best else _mark("no valid measurement", False),
                         _num(best["index"]) if best else "–"])
            if best and (layer not in best_of_layer or best["runtime"] < best_of_layer[layer][1]["runtime"]):
                best_of_layer[layer] = (t, best)
    sections.append(_section("tuners", "Tuners per layer", _table(
        ["layer", "tuner", "measurements", "valid", "invalid", f"best {ulabel}", "best at measurement"], rows,
        [False, False, True, True, True, True, True])))

    panels = {k: v for k, v in panels.items() if v}
    if panels:
        ally = [y for p in panels.values() for _, ys in p.values() for y in ys if y > 0]
        logy = bool(ally) and max(ally) / min(ally) > 20
        sections.append(_section("convergence", "Best runtime against measurements", _figure(
            small_multiples_png(panels, "measurement", f"best {ulabel}", logy=logy),
            "Best valid runtime measured so far, one panel per layer, one line per tuner (invalid measurements "
            "count as spent but never improve the best).", "best runtime")))

    shares: dict[str, list[float]] = {}
    codes: dict[str, dict[str, int]] = {t: defaultdict(int) for t in tuners}
    for t in tuners:
        per_batch: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # batch -> [invalid, total]
        for layer in layers:
            for pos, r in enumerate(runs.get((layer, t), [])):
                b = per_batch[pos // TUNE_BATCH]
                b[0] += not valid(r)
                b[1] += 1
                if not valid(r):
                    codes[t][str(r.get("error") or "no runtime")] += 1
        shares[t] = [per_batch[b][0] / per_batch[b][1] for b in sorted(per_batch)]
    code_rows = [[t, c, _num(n)] for t in tuners for c, n in sorted(codes[t].items(), key=lambda kv: -kv[1])]
    sections.append(_section("invalid", "Invalid measurements", _figure(
        invalid_share_png(shares, TUNE_BATCH),
        f"Share of invalid measurements (an error code or no runtime) in each batch of {TUNE_BATCH} consecutive "
        "measurements of a layer, pooled over the layers, one line per tuner.", "invalid share"),
        _table(["tuner", "error", "count"], code_rows, [False, False, True], title="Errors", compact=True)
        if code_rows else _note("No invalid measurements.")))

    brow = []
    for layer in layers:
        if layer not in best_of_layer:
            brow.append([layer, "–", _mark("no valid measurement", False), "–", "–"])
            continue
        t, r = best_of_layer[layer]
        cfg = r.get("config")
        cfg_text = " ".join(f"{k}={v if isinstance(v, (int, float, str)) else json.dumps(v)}" for k, v in cfg.items()) \
            if isinstance(cfg, dict) else json.dumps(cfg)
        brow.append([layer, t, _num(r["runtime"]), _num(r["index"]), {"text": cfg_text, "cls": "mono"}])
    sections.append(_section("best", "Best configuration per layer", _table(
        ["layer", "tuner", ulabel, "measurement", "configuration"], brow, [False, False, True, True, False])))
    return {"title": f"accelmap tune: {settings.get('network') or s.get('network') or run.name}",
            "subtitle": f"{len(recs):,} measurements", "sections": sections}
