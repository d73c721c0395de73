"""The built-in energy/area table against the Accelergy 0.4 reference (45 nm).

Tolerances: every reference component's energy and area must be within ``TOLERANCE`` = 1.25x
of the Accelergy value (the acceptance bound is ``ACCEPTANCE`` = 3x, same order of magnitude);
the calibration set (eyeriss_like) within 1.05x; the hold-out set (simple_pe16x16) within 1.15x.
The file comparisons skip when shared/reference/timeloop/inputs/ert is absent; the rest run
everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accelmap.arch import energy_table as et

TOLERANCE = 1.25
ACCEPTANCE = 3.0
CALIBRATION_TOL = 1.05
HOLDOUT_TOL = 1.15

REPO = Path(__file__).resolve().parents[2]
ARCHS = ("eyeriss_like", "simple_pe16x16")


def _reference_inputs() -> Path | None:
    env = os.environ.get("ACCELMAP_REFERENCE_DIR")
    if env:  # an explicit location is the only one looked at
        cands = [Path(env)]
    else:
        cands = [REPO.parent / "shared" / "reference" / "timeloop", REPO / "shared" / "reference" / "timeloop"]
    for c in cands:
        if (c / "inputs" / "ert").is_dir() and (c / "inputs" / "arch").is_dir():
            return c / "inputs"
    return None


@pytest.fixture(scope="module")
def inputs() -> Path:
    d = _reference_inputs()
    if d is None:
        pytest.skip("Accelergy reference tables (shared/reference/timeloop/inputs/ert) not found")
    return d


def _yaml(path: Path):
    yaml = pytest.importorskip("yaml")
    with open(path) as f:
        return yaml.safe_load(f)


def _components(arch_doc) -> list[tuple[str, str, dict]]:
    """(short name, class, attributes with inherited ones) for every component of a v0.3 subtree."""
    out = []

    def walk(nodes, inherited):
        for node in nodes or []:
            attrs = {**inherited, **(node.get("attributes") or {})}
            for comp in node.get("local") or []:
                name = comp["name"].split("[")[0]
                out.append((name, comp.get("subclass", comp["class"]), {**attrs, **(comp.get("attributes") or {})}))
            walk(node.get("subtree"), attrs)

    walk(arch_doc["architecture"]["subtree"], {})
    return out


def _rows_from_files(inputs: Path) -> list[dict]:
    rows = []
    roles = {"eyeriss_like": "calibration", "simple_pe16x16": "holdout"}
    for arch in ARCHS:
        tables = et.accelergy_tables(inputs / "ert" / f"{arch}.ERT.yaml", inputs / "ert" / f"{arch}.ART.yaml")
        for name, cls, attrs in _components(_yaml(inputs / "arch" / f"{arch}.yaml")):
            ref = tables[name]
            model = et.estimate_component(cls, attrs)
            for q in ("read", "write", "mac_random", "area"):
                if q not in model:
                    continue
                rows.append({"arch": arch, "component": name, "quantity": q, "reference": ref[q],
                             "model": float(model[q]), "role": roles[arch]})
    return rows


def _factor(model: float, ref: float) -> float:
    return max(model / ref, ref / model)


# ---- against the reference files -----------------------------------------------------------

def test_every_reference_component_within_factor(inputs):
    rows = _rows_from_files(inputs)
    names = {(r["arch"], r["component"]) for r in rows}
    assert names == {("eyeriss_like", n) for n in ("DRAM", "shared_glb", "ifmap_spad", "weights_spad",
                                                   "psum_spad", "mac")} | \
        {("simple_pe16x16", n) for n in ("DRAM", "GlobalBuffer", "RegFile", "mac")}
    lines = []
    for r in rows:
        if r["reference"] == 0.0:  # DRAM area
            assert r["model"] == 0.0
            continue
        f = _factor(r["model"], r["reference"])
        lines.append(f"{r['arch']:15} {r['component']:13} {r['quantity']:10} {r['reference']:>12.6g} "
                     f"{r['model']:>12.6g} {r['model'] / r['reference']:7.3f}")
        assert f <= ACCEPTANCE, r
        assert f <= TOLERANCE, r
        assert f <= (CALIBRATION_TOL if r["role"] == "calibration" else HOLDOUT_TOL), r
    print("\n" + "\n".join(lines))


def test_embedded_reference_points_are_the_file_values(inputs):
    """REFERENCE_POINTS (used by fit_constants) hold exactly what the ERT/ART files say."""
    for arch in ARCHS:
        tables = et.accelergy_tables(inputs / "ert" / f"{arch}.ERT.yaml", inputs / "ert" / f"{arch}.ART.yaml")
        comps = {n: (c, a) for n, c, a in _components(_yaml(inputs / "arch" / f"{arch}.yaml"))}
        for p in (p for p in et.REFERENCE_POINTS if p.arch == arch):
            for action, e in p.energies.items():
                assert tables[p.name][action] == pytest.approx(e, rel=1e-9), (arch, p.name, action)
            assert tables[p.name]["area"] == pytest.approx(p.area_um2, rel=1e-9)
            cls, attrs = comps[p.name]
            assert cls == p.cls
            for k, v in p.attrs.items():
                assert attrs[k] == v, (arch, p.name, k)


def test_reference_max_variant_structure(inputs):
    """The SRAM max variant is CACTI's full energy + the all-zero floor; the RF data part is constant."""
    ert = _yaml(inputs / "ert" / "eyeriss_like.ERT.yaml")["ERT"]["tables"]
    by = {t["name"].split(".")[-1]: t["actions"] for t in ert}
    glb_read = [a for a in by["shared_glb"] if a["name"] == "read"]
    floor = min(a["energy"] for a in glb_read)
    assert floor == pytest.approx(et.SRAM_AG_PJ)
    for spad in ("ifmap_spad", "weights_spad", "psum_spad"):
        v = {(a["arguments"]["data_delta"], a["arguments"]["address_delta"]): a["energy"]
             for a in by[spad] if a["name"] == "read"}
        assert v[(1, 0)] - v[(0, 0)] == pytest.approx(16 * et.RF_E_PJ_PER_BIT, rel=1e-6)


# ---- calibration is global and reproducible -------------------------------------------------

def test_fit_constants_reproduces_module_constants():
    fitted = et.fit_constants()
    for k, v in fitted.items():
        if k == "DRAM_LPDDR4_PJ_PER_BIT":
            assert et.DRAM_PJ_PER_BIT["LPDDR4"] == v
            continue
        assert getattr(et, k) == pytest.approx(v, rel=2e-4), k


def test_embedded_report_tolerances():
    rows = et.calibration_report(include_external=False)
    assert len(rows) == 26
    for r in rows:
        tol = CALIBRATION_TOL if r["role"] == "calibration" else HOLDOUT_TOL
        assert _factor(r["model"], r["reference"]) <= tol, r
    # the 40 nm exercise points (beta source; their area a check) stay within 1.2x
    for r in et.calibration_report():
        assert _factor(r["model"], r["reference"]) <= 1.2, r
    assert "GlobalBuffer" in et.format_report(rows)


# ---- shape of the model ----------------------------------------------------------------------

CAPS = [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576]


@pytest.mark.parametrize("word_bits,block", [(8, 1), (16, 4), (16, 8), (32, 2)])
def test_sram_monotone_in_capacity(word_bits, block):
    reads, writes, areas = [], [], []
    for c in CAPS:
        r, w = et.sram_energy(c, word_bits, block)
        reads.append(r)
        writes.append(w)
        areas.append(et.sram_area(c, word_bits))
    for seq in (reads, writes, areas):
        assert all(b > a for a, b in zip(seq, seq[1:])), seq
    assert all(w >= r for r, w in zip(reads, writes))


@pytest.mark.parametrize("word_bits,block", [(8, 1), (16, 1), (16, 2), (32, 1)])
def test_regfile_monotone_in_capacity(word_bits, block):
    caps = [2, 4, 8, 12, 16, 32, 64, 192, 256, 512]
    energies = [et.regfile_energy(c, word_bits, block)[0] for c in caps]
    areas = [et.regfile_area(c, word_bits, block_size=block) for c in caps]
    for seq in (energies, areas):
        assert all(b > a for a, b in zip(seq, seq[1:])), seq


def test_wider_words_and_mac_bits_cost_more():
    assert et.sram_energy(65536, 16, 8)[0] > et.sram_energy(65536, 16, 4)[0]
    assert et.regfile_energy(64, 32)[0] > et.regfile_energy(64, 16)[0]
    assert et.regfile_area(64, 32) > et.regfile_area(64, 16)
    assert et.mac_energy(8) < et.mac_energy(16) < et.mac_energy(32)
    assert et.mac_area(8) < et.mac_area(16) < et.mac_area(32)
    # per-bit SRAM energy grows with capacity (CACTI-like), sub-linearly
    e1 = et.sram_energy(16384, 16, 4)[0]
    e4 = et.sram_energy(65536, 16, 4)[0]
    assert 1.0 < e4 / e1 < 4.0


def test_tech_scaling_direction():
    assert et.energy_scale(45) == pytest.approx(1.0)
    assert et.area_scale(45) == pytest.approx(1.0)
    nodes = [130, 90, 65, 45, 40, 32, 28, 22, 20, 16, 14, 10, 7]
    es = [et.energy_scale(n) for n in nodes]
    as_ = [et.area_scale(n) for n in nodes]
    assert all(b < a for a, b in zip(es, es[1:])), es
    assert all(b < a for a, b in zip(as_, as_[1:])), as_
    for n in (65, 40, 28, 22, 16, 7):
        s_e, s_a = et.energy_scale(n), et.area_scale(n)
        assert et.sram_energy(65536, 16, 4, tech_nm=n)[0] == pytest.approx(s_e * et.sram_energy(65536, 16, 4)[0])
        assert et.sram_energy(65536, 16, 4, tech_nm=n)[1] == pytest.approx(s_e * et.sram_energy(65536, 16, 4)[1])
        assert et.regfile_energy(64, 16, 1, n)[0] == pytest.approx(s_e * et.regfile_energy(64, 16)[0])
        assert et.mac_energy(16, n) == pytest.approx(s_e * et.mac_energy(16))
        assert et.sram_area(65536, 16, n) == pytest.approx(s_a * et.sram_area(65536, 16))
        assert et.regfile_area(64, 16, n) == pytest.approx(s_a * et.regfile_area(64, 16))
        assert et.mac_area(16, n) == pytest.approx(s_a * et.mac_area(16))
    # DRAM is off-chip: no node dependence, and the reference value is exact
    assert et.dram_energy(16, 4, "LPDDR4") == (512.0, 512.0)
    # a lower supply lowers energy at a node
    assert et.energy_scale(16, vdd=0.7) < et.energy_scale(16)
    with pytest.raises(ValueError):
        et.energy_scale(3)


def test_dram_types():
    per_word = {t: et.dram_energy(16, 1, t)[0] for t in et.dram_types()}
    assert per_word["LPDDR4"] == 128.0
    assert per_word["HBM2"] < per_word["LPDDR4"] < per_word["GDDR5"] <= per_word["DDR4"] < per_word["DDR3"]
    assert et.dram_energy(16, 4, "hbm2")[0] == pytest.approx(3.9 * 64)
    with pytest.raises(ValueError):
        et.dram_energy(16, 4, "SDR")


def test_literature_cross_checks():
    # Horowitz ISSCC 2014, 45 nm, 64-bit SRAM read: 8 KB 10 pJ, 32 KB 20 pJ (1 MB 100 pJ: see docs)
    e8k = et.sram_energy(8 * 1024 // 2, 16, 4)[0]
    e32k = et.sram_energy(32 * 1024 // 2, 16, 4)[0]
    assert _factor(e8k, 10.0) < 1.5 and _factor(e32k, 20.0) < 1.5
    # Horowitz 16-bit add 0.05 pJ vs the adder share of the 16-bit MAC
    assert _factor(et.MAC_E_ADD16_PJ, 0.05) < 1.5
    # order of the memory hierarchy per 16-bit word: RF < GLB < DRAM (Eyeriss ISCA 2016 ordering)
    rf = et.regfile_energy(192, 16)[0]
    glb = et.sram_energy(65536, 16, 4)[0] / 4
    dram = et.dram_energy(16, 4)[0] / 4
    assert rf < et.mac_energy(16) < glb < dram


def test_sources_documented():
    for key in ("accelergy_ref", "horowitz2014", "eyeriss2016", "cacti_sqrt", "stillmaker2017",
                "dram_lpddr4", "dram_hbm2_gddr5", "dram_ddr4"):
        s = et.SOURCES[key]
        assert s.citation and s.value and s.units
    assert "Horowitz" in et.__doc__ and "Stillmaker" in et.__doc__ and "Eyeriss" in et.__doc__


# ---- numbers and tensors -----------------------------------------------------------------------

def test_floats_in_floats_out_and_arrays():
    np = pytest.importorskip("numpy")
    assert isinstance(et.sram_energy(65536, 16, 4)[0], float)
    assert isinstance(et.regfile_area(12, 16), float)
    assert isinstance(et.mac_energy(16), float)
    caps = np.array([1024.0, 65536.0])
    r, _ = et.sram_energy(caps, 16, 4)
    assert r.shape == (2,) and r[1] == pytest.approx(et.sram_energy(65536, 16, 4)[0])
    e, _ = et.regfile_energy(np.array([12.0, 192.0]), 16)
    assert e[1] == pytest.approx(et.regfile_energy(192, 16)[0])
    with pytest.raises(ValueError):
        et.sram_energy(0, 16, 4)
    with pytest.raises(ValueError):
        et.regfile_energy(64, 16, 0)


def test_autograd_sram_capacity():
    torch = pytest.importorskip("torch")
    cap = torch.tensor(65536.0, dtype=torch.float64, requires_grad=True)
    read, write = et.sram_energy(cap, 16, 4)
    assert float(read.detach()) == pytest.approx(74.1442, rel=1e-6)
    (g,) = torch.autograd.grad(read, cap)
    assert torch.isfinite(g) and g > 0
    (gw,) = torch.autograd.grad(et.sram_energy(cap, 16, 4)[1], cap)
    assert torch.isfinite(gw) and gw > 0
    # matches a finite difference
    h = 1.0
    fd = (et.sram_energy(65536 + h, 16, 4)[0] - et.sram_energy(65536 - h, 16, 4)[0]) / (2 * h)
    assert float(g) == pytest.approx(fd, rel=1e-5)
    (ga,) = torch.autograd.grad(et.sram_area(cap, 16), cap)
    assert torch.isfinite(ga) and ga > 0


def test_autograd_regfile_and_pe_array():
    torch = pytest.importorskip("torch")
    caps = torch.tensor([12.0, 64.0, 192.0], requires_grad=True)
    e, _ = et.regfile_energy(caps, 16)
    (g,) = torch.autograd.grad(e.sum(), caps)
    assert torch.all(torch.isfinite(g)) and torch.all(g > 0)
    n_pe = torch.tensor(168.0, requires_grad=True)
    rf = torch.tensor(192.0, requires_grad=True)
    area = et.pe_array_area(n_pe, rf)
    gn, gr = torch.autograd.grad(area, (n_pe, rf))
    assert float(gn) == pytest.approx(et.mac_area(16) + et.regfile_area(192, 16), rel=1e-5)
    assert torch.isfinite(gr) and gr > 0
    # a batch of co-design points in one call
    batch = torch.linspace(8192, 262144, 5, requires_grad=True)
    r, _ = et.sram_energy(batch, 16, 4, tech_nm=22)
    (gb,) = torch.autograd.grad(r.sum(), batch)
    assert torch.all(gb > 0)
