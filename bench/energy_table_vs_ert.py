"""accelmap's built-in energy/area table against every Accelergy ERT/ART found in public designs.

For each component of each design whose reference outputs ship an Accelergy ERT beside the
flattened architecture Accelergy wrote (Timeloop's exercises: the v4 example designs, the pre-v4
baseline designs and the 2020/2021 tutorial exercises), the table is evaluated on the very
attributes Accelergy saw (class, depth, width, word bits, block size, banks, technology,
datawidth) and compared per action: storage read and write, MAC compute, and area where an ART
is beside the ERT. A component that appears in several designs with the same attributes and
energies counts once. Energies are Timeloop's: the largest over an action's argument variants.

    python bench/energy_table_vs_ert.py --repo /path/to/timeloop-accelergy-exercises

(``--repo``: a git clone of Accelergy-Project/timeloop-accelergy-exercises; the commits read
are listed in ``COMMITS``). Writes ``bench/results/energy_table_vs_ert.json`` (every compared
component and the per-class summary) and prints the table: per class, the median and range of
table / ERT.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "energy_table_vs_ert.json"
DEFAULT_CLONE = Path("/work/.mirror/Accelergy-Project+timeloop-accelergy-exercises/repo")
# 778460f: the last pre-v4 tree (2022-09, v0.3 designs and the 2020/2021 tutorials);
# 2d55108: the v4 tree (2025-04; its four dense designs are also in tests/data/exercises)
COMMITS = ("778460f", "2d55108")


def _git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True, check=True).stdout


def _base(name: str) -> str:
    """'system.eyeriss.PE[0..167].ifmap_spad' and 'system_top_level.ifmap_spad[1..168]' -> 'ifmap_spad'."""
    return re.sub(r"\[[^\]]*\]", "", name).split(".")[-1]


_NO_MODEL = ("metadata", "noc", "multicast", "memcell", "dummy", "fifo", "_md")


def _table_class(cls: str, attrs: dict) -> str | None:
    """The class accelmap's reader would give the component without an ERT (DRAM, MAC, or by
    capacity: a register file up to 512 words unless the class says SRAM, else SRAM; REG is a
    one-word register, which the reader also prices with the register-file model), None where
    the table has no model (metadata buffers, networks, PIM cells, FIFOs)."""
    c = cls.lower()
    if c == "dram":
        return "DRAM"
    if any(k in c for k in _NO_MODEL):
        return None
    if "mac" in c:
        return "MAC"
    depth = attrs.get("memory_depth", attrs.get("depth"))
    width = attrs.get("memory_width", attrs.get("width"))
    wb = attrs.get("word-bits", attrs.get("datawidth", width))
    if depth is None or width is None or not wb:
        return None
    words = int(depth) * int(width) / int(wb)
    if words <= 0:
        return None
    if words <= 1:
        return "REG"
    return "RF" if words <= 512 and "sram" not in c else "SRAM"


def _designs(clone: Path):
    """(source label, ERT doc, ART doc or None, flattened arch doc) for every ERT beside a
    flattened architecture, at every commit in COMMITS."""
    for commit in COMMITS:
        files = _git(clone, "ls-tree", "-r", "--name-only", commit).split()
        for f in files:
            # reference outputs only: 'output(s)/' folders hold users' runs (one made with a dummy
            # estimator: every action 3 pJ)
            if not f.endswith("ERT.yaml") or "/output/" in f or "/outputs/" in f:
                continue
            d = f.rsplit("/", 1)[0]
            flat = [x for x in files if x.startswith(d + "/") and x.count("/") == f.count("/")
                    and "flattened_architecture" in x]
            if not flat:
                continue
            art = f[: -len("ERT.yaml")] + "ART.yaml"
            yield (f"{commit}:{f}", yaml.safe_load(_git(clone, "show", f"{commit}:{f}")),
                   yaml.safe_load(_git(clone, "show", f"{commit}:{art}")) if art in files else None,
                   yaml.safe_load(_git(clone, "show", f"{commit}:{flat[0]}")))


def _components(flat: dict) -> dict[str, tuple[str, dict]]:
    arch = flat.get("architecture", {}) or {}
    out = {}
    for comp in arch.get("local", []) or []:
        cls = comp.get("class", "")
        if cls in ("storage", "compute") and comp.get("subclass"):
            cls = comp["subclass"]
        out[_base(comp["name"])] = (cls, dict(comp.get("attributes", {}) or {}))
    return out


def _table_attrs(cls: str, attrs: dict) -> dict:
    """The attributes the table reads, normalised from v0.3 / v0.4 spellings."""
    a = {}
    depth = attrs.get("memory_depth", attrs.get("depth"))
    width = attrs.get("memory_width", attrs.get("width"))
    wb = attrs.get("word-bits", attrs.get("word_bits", attrs.get("datawidth")))
    if depth is not None:
        a["memory_depth"] = depth
    if width is not None:
        a["memory_width"] = width
    if wb is not None:
        a["word-bits"] = wb
    if "block-size" in attrs or "block_size" in attrs:
        a["block-size"] = attrs.get("block-size", attrs.get("block_size"))
    for k in ("n_banks", "type", "datawidth"):
        if k in attrs:
            a[k] = attrs[k]
    if cls == "DRAM" and width is not None:
        a["width"] = width
    if cls == "MAC":
        a["datawidth"] = attrs.get("datawidth", attrs.get("multiplier_width", attrs.get("width", 16)))
    tech = str(attrs.get("technology", ""))
    if cls != "DRAM":
        a["technology"] = tech
    return a


def compare(clone: Path) -> tuple[list[dict], list[dict]]:
    from accelmap.arch.energy_table import REFERENCE_POINTS, estimate_component

    # the components the table's constants were fitted on (eyeriss_like at 45 nm), by energy
    calib = {round(e, 3) for p in REFERENCE_POINTS if p.role == "calibration" for e in p.energies.values()}
    rows, skipped, seen = [], [], set()
    for src, ert, art, flat in _designs(clone):
        comps = _components(flat)
        areas = {_base(t["name"]): t.get("area") for t in ((art or {}).get("ART", {}) or {}).get("tables", []) or []}
        for t in (ert.get("ERT", {}) or {}).get("tables", []) or []:
            name = _base(t["name"])
            acts: dict[str, float] = {}
            for a in t.get("actions", []) or []:
                acts[a["name"]] = max(acts.get(a["name"], float(a["energy"])), float(a["energy"]))
            cls, attrs = comps.get(name, ("?", {}))
            tc = _table_class(cls, attrs)
            if tc is None:
                skipped.append({"source": src, "component": name, "class": cls})
                continue
            ta = _table_attrs(tc, attrs)
            if tc not in ("DRAM",) and not re.match(r"^\d+(\.\d+)?\s*nm$", ta.get("technology", "")):
                skipped.append({"source": src, "component": name, "class": cls, "why": f"technology {ta.get('technology')!r}"})
                continue
            try:
                est = estimate_component({"SRAM": "SRAM", "RF": "regfile", "REG": "regfile", "DRAM": "DRAM", "MAC": "intmac"}[tc], ta)
            except (ValueError, KeyError) as exc:
                skipped.append({"source": src, "component": name, "class": cls, "why": str(exc)})
                continue
            if tc == "MAC":
                ert_e = {"compute": acts.get("mac_random", acts.get("compute"))}
                tab_e = {"compute": est["mac_random"]}
            else:
                ert_e = {"read": acts.get("read", acts.get("access")), "write": acts.get("write", acts.get("access"))}
                tab_e = {"read": est["read"], "write": est["write"]}
            ert_e = {k: v for k, v in ert_e.items() if v}
            key = (tc, cls, json.dumps(ta, sort_keys=True), json.dumps({k: round(v, 4) for k, v in ert_e.items()}))
            if key in seen or not ert_e:
                continue
            seen.add(key)
            row = {"source": src, "component": name, "accelergy_class": cls, "class": tc, "attributes": ta,
                   "ert_pJ": ert_e, "table_pJ": {k: tab_e[k] for k in ert_e},
                   "ratio": {k: tab_e[k] / ert_e[k] for k in ert_e},
                   "calibration": tc != "DRAM" and all(round(v, 3) in calib for v in ert_e.values())}
            area = areas.get(name)
            if area and tc != "DRAM":
                row["art_um2"], row["table_um2"] = float(area), est["area"]
                row["ratio"]["area"] = est["area"] / float(area)
            rows.append(row)
    return rows, skipped


def _set(r: dict) -> str:
    if r["calibration"]:
        return "calibration"
    return "pre-v4" if r["source"].startswith(COMMITS[0]) else "v4"


def summarize(rows: list[dict]) -> list[dict]:
    """Per class and set (calibration: the components the table was fitted on; pre-v4: the
    2019-2022 reference outputs; v4: the 2024 regenerated ones), median and range of table/ERT."""
    out = []
    for tc in ("SRAM", "RF", "REG", "DRAM", "MAC"):
        for st in ("calibration", "pre-v4", "v4"):
            rs = [r for r in rows if r["class"] == tc and _set(r) == st]
            for key in ("read", "write", "compute", "area"):
                v = sorted(r["ratio"][key] for r in rs if key in r["ratio"])
                if v:
                    out.append({"class": tc, "set": st, "quantity": key, "n": len(v),
                                "median": statistics.median(v), "min": v[0], "max": v[-1]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", type=Path, default=DEFAULT_CLONE,
                    help="git clone of Accelergy-Project/timeloop-accelergy-exercises")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not (args.repo / "HEAD").exists() and not (args.repo / ".git").exists():
        print(f"no git clone at {args.repo}", file=sys.stderr)
        return 2
    rows, skipped = compare(args.repo)
    summ = summarize(rows)
    print(f"{'class':<6}{'set':<13}{'quantity':<9}{'n':>4}{'median':>9}{'min':>9}{'max':>9}   (built-in table / Accelergy)")
    for s in summ:
        print(f"{s['class']:<6}{s['set']:<13}{s['quantity']:<9}{s['n']:>4}{s['median']:>9.3f}{s['min']:>9.3f}{s['max']:>9.3f}")
    print(f"{len(rows)} distinct components compared; {len(skipped)} ERT entries with no table model "
          f"(classes: {', '.join(sorted({s['class'] for s in skipped}))})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python bench/energy_table_vs_ert.py " + " ".join(argv or sys.argv[1:]),
                                    "commits": COMMITS, "summary": summ, "components": rows, "skipped": skipped},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
