"""Built-in energy and area table for accelerator components (no Accelergy needed).

Use it when an architecture has no Accelergy ERT/ART, or when buffer sizes change during
hardware co-design. Every function takes Python numbers **or torch tensors** for the sizes
(capacity, PE count) and uses only differentiable operations (``x ** a``, a ``log2`` that
goes to ``torch.log2`` for tensors), so ``torch.autograd`` can differentiate energy and area
with respect to capacity. Python numbers in give a ``float`` out.

Units: energy in **pJ per action** (per access of one block of ``block_size`` words for
storage, per MAC for compute), area in **um^2 per instance**, capacities in **words**,
widths in **bits**. Reference node: **45 nm**, the node of the Accelergy reference data.

What it models
--------------
Each storage function returns the energy Accelergy 0.4 reports for the compound classes of
the Timeloop/Accelergy exercises, taking the **max over argument variants** (data_delta = 1,
address_delta = max), address generators included, which is the value Timeloop uses.

==================  ==========================================================================
function            model (45 nm; ``W`` = block_size x word_bits, ``D`` = capacity / block_size)
==================  ==========================================================================
``sram_energy``     E = E_ag + K x (W / 64) x (C_bits / 2^20) ^ beta, where K is the cost of a
                    64-bit access of a 1 Mibit (128 KiB) SRAM, beta = 0.736, E_ag = 0.0488 pJ.
                    Form: CACTI dynamic energy per access (what Accelergy's CACTI plug-in
                    returns); the per-bit cost grows as a power of capacity (CACTI-style
                    sqrt-like growth, with an exponent taken from Accelergy's own CACTI outputs).
``sram_area``       A = a_bit x C_bits (area linear in capacity).
``regfile_energy``  E = e_ag + e_bit x W + e_dec x D x log2(D): Accelergy's Aladdin-table
                    regfile model (one register read of W bits + an address comparator of
                    log2(D) bits per entry), with ceil(log2 D) replaced by a smooth log2 D.
``regfile_area``    A = a_ag + a_bit x W + a_dec x D x log2(D) (same structure).
``mac_energy``      E = e_add x (b/16) + e_mul x (b/16)^2 (Aladdin: adder linear, multiplier
                    quadratic in bit width).
``mac_area``        same structure for area.
``dram_energy``     E = pJ/bit x word_bits x block_size, per memory type (no node scaling).
==================  ==========================================================================

Sources (see ``SOURCES`` for the full list with values and units)
----------------------------------------------------------------------
* **Accelergy 0.4 reference tables** (45 nm, CACTI + Aladdin plug-ins), in
  ``shared/reference/timeloop/inputs/ert/*.ERT.yaml`` / ``*.ART.yaml``: eyeriss_like
  shared_glb, ifmap/weights/psum spads and mac (the calibration set); simple_pe16x16
  GlobalBuffer and RegFile (the hold-out set).
* **Accelergy exercise outputs** (timeloop-accelergy-exercises, ``exercises/accelergy/
  04_eyeriss_like/ref-output``, 40 nm): weights_glb (8 KiB) and shared_glb (100 KiB). These two
  SRAMs of one node give the SRAM capacity exponent beta as a ratio at a fixed node.
* **Accelergy plug-in structure** (accelergy-cacti-plug-in, accelergy-aladdin-plug-in): the
  CACTI wrapper splits an access into 30 % address decoding and 70 % cell access, so the max
  variant equals CACTI's full dynamic energy; the Aladdin regfile is a register of ``width``
  bits plus one log2(depth)-bit comparator per entry; the Aladdin MAC is an adder (linear in
  bits) plus a multiplier (quadratic in bits), and ``mac_reused`` = adder + 0.85 x multiplier;
  the DRAM energies per bit (LPDDR4 8, HBM2 3.9, GDDR5 14, DDR3 70, LPDDR 40 pJ/bit) are the
  CACTI plug-in's table. Only numbers and model structure are used, not code.
* **Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014**, 45 nm:
  16-bit add 0.05 pJ, 32-bit multiply 3.1 pJ, 64-bit SRAM read 10 / 20 / 100 pJ at
  8 KB / 32 KB / 1 MB, DRAM 1.3-2.6 nJ per 64 bits; areas 32-bit add 137 um^2, 32-bit
  multiply 3495 um^2. Used for the adder/multiplier area split and as cross-checks.
* **Chen, Emer, Sze, "Eyeriss", ISCA 2016**: normalized energy per access RF 1x, PE array 2x,
  global buffer 6x, DRAM 200x (relative to a MAC). Cross-check only (see ``SOURCES``).
* **Stillmaker & Baas, "Scaling equations for the accurate prediction of CMOS device
  performance from 180 nm to 7 nm", Integration 58 (2017)**: energy vs. node (``energy_scale``).
  Area scales as (node / 45 nm)^2 (``area_scale``), the classical rule.

Calibration (done once, globally; ``fit_constants()`` reproduces every constant)
-------------------------------------------------------------------------------------
* SRAM: K (read, write) and E_ag from the eyeriss shared_glb alone (128 KiB, 64-bit); beta
  from the 40 nm exercise pair (8 KiB vs 100 KiB, same node, same tool); the area per bit from
  the eyeriss shared_glb. Checked on simple_pe16x16 GlobalBuffer (same capacity, 128-bit
  access, 16 banks).
* Regfile: a two-parameter relative least-squares fit (constant + D log2 D) on the three
  eyeriss spads (12, 16, 192 words), for energy and area separately. The constant is split
  into a width part and a fixed part using the eyeriss ERT's data-only variant (energy) and
  the Aladdin 5.98 um^2/bit register (area). Checked on simple_pe16x16 RegFile (64 words).
* MAC: the 16-bit reference (identical in both architectures, so not an independent check).
* DRAM: LPDDR4 matches the reference exactly (512 pJ per 64-bit access).

``calibration_report()`` gives reference, model and ratio for every reference component;
``python -m accelmap.arch.energy_table`` prints it.

Limits
------
* Word width and bank count of SRAMs are not separately validated: both reference SRAMs are
  128 KiB, so only the width/bank combination (64 b, 32 banks) -> (128 b, 16 banks) is checked
  (model 11 % high on read). ``banks`` is accepted and validated but does not change the result.
* One power law for SRAM capacity: near Horowitz at 8-32 KB but about 3.4x above his 1 MB
  figure; outside roughly 4 KiB .. 1 MiB it is an extrapolation.
* The regfile model follows Accelergy's (energy and area grow as D log D); it is meant for
  small scratchpads (up to a few hundred entries), not for large arrays. Conversely the SRAM
  power law has no fixed floor and is too cheap for tiny arrays. For 16-bit words and 1-word
  access the regfile model exceeds the SRAM model at every depth (0.23 vs 0.08 pJ at 12
  words, 21.7 vs 1.5 pJ at 2048 words), so switching between the two by size makes a jump.
* The technology factors are for dynamic energy at each node's nominal supply; leakage and
  idle energy are not modelled.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "REFERENCE_TECH_NM", "SOURCES", "Source", "ReferencePoint", "REFERENCE_POINTS", "EXTERNAL_POINTS",
    "energy_scale", "area_scale",
    "sram_energy", "sram_area", "regfile_energy", "regfile_area", "dram_energy", "dram_types",
    "mac_energy", "mac_area", "pe_array_area", "estimate_component",
    "fit_constants", "calibration_report", "format_report",
]

REFERENCE_TECH_NM = 45.0

# ---------------------------------------------------------------------------------------------
# Calibrated constants (45 nm). fit_constants() recomputes them from the reference points below;
# tests/arch/test_energy_table.py checks that they agree.
# ---------------------------------------------------------------------------------------------

#: SRAM: address-generator (+ idle) floor of the smartbuffer_SRAM compound, pJ per access.
SRAM_AG_PJ = 0.0488
#: SRAM: CACTI dynamic energy of one 64-bit access to a 1 Mibit SRAM, read / write, pJ.
SRAM_READ_PJ_64B_1MIB = 74.0954
SRAM_WRITE_PJ_64B_1MIB = 75.1660
#: SRAM: exponent of the per-bit energy against capacity.
SRAM_CAPACITY_EXPONENT = 0.7363
#: SRAM: area per bit of capacity, um^2.
SRAM_AREA_UM2_PER_BIT = 1.108693
SRAM_REF_BITS = 2 ** 20
SRAM_REF_WIDTH_BITS = 64

#: Regfile energy, pJ: fixed (address generators), per bit of access width, per entry x log2(entries).
RF_E_FIXED_PJ = 0.054567
RF_E_PJ_PER_BIT = 0.00863
RF_E_DECODE_PJ = 0.00095524
#: Regfile area, um^2: fixed (address generators), per bit of width, per entry x log2(entries).
RF_A_FIXED_UM2 = 178.98
RF_A_UM2_PER_BIT = 5.98
RF_A_DECODE_UM2 = 2.30151

#: MAC (16-bit reference): adder and multiplier shares of energy (pJ) and area (um^2).
MAC_E_ADD16_PJ = 0.04285
MAC_E_MUL16_PJ = 2.15750
MAC_A_ADD16_UM2 = 90.11
MAC_A_MUL16_UM2 = 1149.39

#: DRAM energy per bit transferred, pJ/bit (read = write).
DRAM_PJ_PER_BIT = {
    "LPDDR4": 8.0,
    "HBM2": 3.9,
    "GDDR5": 14.0,
    "DDR4": 15.0,
    "DDR3": 70.0,
    "LPDDR": 40.0,
}

# ---------------------------------------------------------------------------------------------
# Technology scaling
# ---------------------------------------------------------------------------------------------

#: Stillmaker & Baas (2017) energy polynomial a*V^2 + b*V + c per node (nm -> (a, b, c)), as
#: transcribed in the Accelergy project's hwcomponents scaling module (the 65 nm row also
#: appears in the authors' published erratum). Ratios of these give energy scaling.
_STILLMAKER_ENERGY_POLY = {
    130: (7.171, -6.709, 2.904),
    90: (4.762, -4.781, 2.092),
    65: (3.755, -4.398, 1.975),
    45: (1.103, -0.362, 0.2767),
    32: (0.9559, -0.7823, 0.471),
    20: (0.373, -0.1582, 0.04104),
    16: (0.2958, -0.1241, 0.03024),
    14: (0.2363, -0.09675, 0.02239),
    10: (0.2068, -0.09311, 0.02375),
    7: (0.1776, -0.09097, 0.02447),
}
#: Nominal core supply assumed at each node (V); pass ``vdd=`` to energy_scale to override.
NOMINAL_VDD = {130: 1.3, 90: 1.2, 65: 1.1, 45: 1.0, 32: 0.9, 20: 0.9, 16: 0.8, 14: 0.8, 10: 0.75, 7: 0.7}


def _poly(node: int, vdd: float) -> float:
    a, b, c = _STILLMAKER_ENERGY_POLY[node]
    return a * vdd * vdd + b * vdd + c


def energy_scale(tech_nm: float, vdd: float | None = None) -> float:
    """Dynamic-energy factor from 45 nm (at 1.0 V) to ``tech_nm``: 1.0 at 45 nm.

    At table nodes (130, 90, 65, 45, 32, 20, 16, 14, 10, 7 nm) it is the ratio of the
    Stillmaker-Baas energy polynomials, each at ``vdd`` or else at the node's nominal supply
    (``NOMINAL_VDD``). Between table nodes it is interpolated linearly in log(node) vs.
    log(factor); e.g. 40 nm -> 0.80, 28 nm -> 0.40, 22 nm -> 0.24, 7 nm -> 0.047.
    """
    t = float(tech_nm)
    nodes = sorted(_STILLMAKER_ENERGY_POLY)
    if not nodes[0] <= t <= nodes[-1]:
        raise ValueError(f"technology node {tech_nm} nm outside the scaling table ({nodes[0]}..{nodes[-1]} nm)")
    ref = _poly(45, NOMINAL_VDD[45])

    def at(node: int) -> float:
        return _poly(node, NOMINAL_VDD[node] if vdd is None else float(vdd)) / ref

    if t in _STILLMAKER_ENERGY_POLY:
        return at(int(t))
    hi = min(n for n in nodes if n > t)
    lo = max(n for n in nodes if n < t)
    w = math.log(t / lo) / math.log(hi / lo)
    return math.exp((1 - w) * math.log(at(lo)) + w * math.log(at(hi)))


def area_scale(tech_nm: float) -> float:
    """Area factor from 45 nm to ``tech_nm``: (tech_nm / 45)^2, the classical rule.

    It understates area at FinFET nodes, whose names shrink faster than real density
    (e.g. 7 nm gives 0.024 here, while published density tables give about 0.06).
    """
    t = float(tech_nm)
    if t <= 0:
        raise ValueError(f"technology node must be positive, got {tech_nm}")
    return (t / REFERENCE_TECH_NM) ** 2


# ---------------------------------------------------------------------------------------------
# Math that works on floats, numpy arrays and torch tensors
# ---------------------------------------------------------------------------------------------

def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_array(x: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _num(x: Any):
    if _is_tensor(x) or _is_array(x):
        return x
    return float(x)


def _log2(x: Any):
    if _is_tensor(x):
        return sys.modules["torch"].log2(x)
    if _is_array(x):
        return sys.modules["numpy"].log2(x)
    return math.log2(x)


def _clamp_min(x: Any, lo: float):
    if _is_tensor(x):
        return x.clamp(min=lo)
    if _is_array(x):
        return sys.modules["numpy"].maximum(x, lo)
    return max(x, lo)


def _check_positive(name: str, x: Any) -> None:
    # Tensors and arrays are not checked (no host synchronisation in a training loop).
    if not (_is_tensor(x) or _is_array(x)) and not x > 0:
        raise ValueError(f"{name} must be positive, got {x!r}")


def _check_int_positive(name: str, x: Any) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0:
        raise ValueError(f"{name} must be a positive number, got {x!r}")


# ---------------------------------------------------------------------------------------------
# Component models
# ---------------------------------------------------------------------------------------------

def sram_energy(capacity_words, word_bits: int, block_size: int, tech_nm: float = 45, banks: int = 1):
    """(read, write) pJ per access of one block of ``block_size`` words, SRAM global buffer.

    As Accelergy's ``smartbuffer_SRAM`` reports it (CACTI storage + address generators, max
    over argument variants). ``capacity_words`` may be a tensor. ``banks`` is validated but
    does not change the result (see the module notes).
    """
    _check_positive("capacity_words", capacity_words)
    _check_int_positive("word_bits", word_bits)
    _check_int_positive("block_size", block_size)
    _check_int_positive("banks", banks)
    cap = _num(capacity_words)
    s = energy_scale(tech_nm)
    rel = (cap * word_bits / SRAM_REF_BITS) ** SRAM_CAPACITY_EXPONENT * (block_size * word_bits / SRAM_REF_WIDTH_BITS)
    read = s * (SRAM_AG_PJ + SRAM_READ_PJ_64B_1MIB * rel)
    write = s * (SRAM_AG_PJ + SRAM_WRITE_PJ_64B_1MIB * rel)
    return read, write


def sram_area(capacity_words, word_bits: int, tech_nm: float = 45, banks: int = 1):
    """Area of an SRAM, um^2: linear in capacity bits (calibrated at 128 KiB, 45 nm)."""
    _check_positive("capacity_words", capacity_words)
    _check_int_positive("word_bits", word_bits)
    _check_int_positive("banks", banks)
    return area_scale(tech_nm) * SRAM_AREA_UM2_PER_BIT * _num(capacity_words) * word_bits


def regfile_energy(capacity_words, word_bits: int, block_size: int = 1, tech_nm: float = 45):
    """(read, write) pJ per access of one block, small register file / scratchpad.

    As Accelergy's ``smartbuffer_RF`` reports it (Aladdin regfile + address generators, max over
    argument variants). Read and write cost the same, as in the reference.
    """
    _check_positive("capacity_words", capacity_words)
    _check_int_positive("word_bits", word_bits)
    _check_int_positive("block_size", block_size)
    depth = _clamp_min(_num(capacity_words) / block_size, 1.0)
    width = block_size * word_bits
    e = energy_scale(tech_nm) * (RF_E_FIXED_PJ + RF_E_PJ_PER_BIT * width + RF_E_DECODE_PJ * depth * _log2(depth))
    return e, e


def regfile_area(capacity_words, word_bits: int, tech_nm: float = 45, block_size: int = 1):
    """Area of a register file / scratchpad (with its address generators), um^2."""
    _check_positive("capacity_words", capacity_words)
    _check_int_positive("word_bits", word_bits)
    _check_int_positive("block_size", block_size)
    depth = _clamp_min(_num(capacity_words) / block_size, 1.0)
    width = block_size * word_bits
    return area_scale(tech_nm) * (RF_A_FIXED_UM2 + RF_A_UM2_PER_BIT * width + RF_A_DECODE_UM2 * depth * _log2(depth))


def dram_types() -> list[str]:
    return sorted(DRAM_PJ_PER_BIT)


def dram_energy(word_bits, block_size, dram_type: str = "LPDDR4"):
    """(read, write) pJ per access of one block (``block_size`` words of ``word_bits``).

    Off-chip energy per bit (``DRAM_PJ_PER_BIT``), independent of the logic node.
    """
    key = str(dram_type).upper()
    if key not in DRAM_PJ_PER_BIT:
        raise ValueError(f"unknown DRAM type {dram_type!r}; expected one of {dram_types()}")
    e = DRAM_PJ_PER_BIT[key] * _num(word_bits) * _num(block_size)
    return e, e


def mac_energy(bits: int = 16, tech_nm: float = 45):
    """Energy of one integer multiply-accumulate (Accelergy ``intmac`` ``mac_random``), pJ."""
    _check_positive("bits", bits)
    r = _num(bits) / 16.0
    return energy_scale(tech_nm) * (MAC_E_ADD16_PJ * r + MAC_E_MUL16_PJ * r * r)


def mac_area(bits: int = 16, tech_nm: float = 45):
    """Area of one integer MAC unit, um^2."""
    _check_positive("bits", bits)
    r = _num(bits) / 16.0
    return area_scale(tech_nm) * (MAC_A_ADD16_UM2 * r + MAC_A_MUL16_UM2 * r * r)


def pe_array_area(num_pes, rf_capacity_words, word_bits: int = 16, mac_bits: int = 16, tech_nm: float = 45):
    """Area of ``num_pes`` PEs, each one MAC and one register file, um^2.

    Differentiable in both ``num_pes`` and ``rf_capacity_words`` (either may be a tensor).
    """
    return _num(num_pes) * (mac_area(mac_bits, tech_nm) + regfile_area(rf_capacity_words, word_bits, tech_nm))


# ---------------------------------------------------------------------------------------------
# Accelergy-style component attributes -> energies and area
# ---------------------------------------------------------------------------------------------

_SRAM_CLASSES = ("smartbuffer_sram", "sram", "buffer")
_RF_CLASSES = ("smartbuffer_rf", "regfile", "rf", "reg_storage")
_MAC_CLASSES = ("intmac", "mac")


def parse_technology(value: Any, src: str | None = None, field: str | None = None) -> float:
    """A technology node in nm from Accelergy's spellings ('45nm', '45 nm', 45); anything else
    (a template's 'SET ME') is a user error naming the field."""
    from accelmap.errors import AccelmapError

    try:
        nm = float(str(value).strip().lower().removesuffix("nm").strip())
    except ValueError:
        nm = math.nan
    if not (nm > 0 and math.isfinite(nm)):
        raise AccelmapError(f"expected a technology node such as '45nm' or 40, got {value!r}", file=src, field=field)
    return nm


def _tech_from_attrs(attrs: dict, tech_nm: float | None) -> float:
    if tech_nm is not None:
        return float(tech_nm)
    t = attrs.get("technology")
    return parse_technology(t) if t is not None else REFERENCE_TECH_NM


def estimate_component(cls: str, attrs: dict, tech_nm: float | None = None) -> dict[str, float]:
    """Energies (pJ per action) and area (um^2) for an Accelergy-style component.

    ``cls`` is the Accelergy class (``smartbuffer_SRAM``, ``SRAM``, ``smartbuffer_RF``,
    ``regfile``, ``DRAM``, ``intmac``); ``attrs`` its attributes (``memory_depth`` /
    ``memory_width`` or ``depth`` / ``width``, ``word-bits``, ``block-size``, ``n_banks``,
    ``type``, ``datawidth``, ``technology``). Returns ``{"read", "write", "area"}`` for storage
    and ``{"mac_random", "area"}`` for a MAC.
    """
    c = cls.lower()
    tech = _tech_from_attrs(attrs, tech_nm)
    if c == "dram":
        word_bits = int(attrs.get("word-bits", attrs.get("datawidth", 16)))
        width = attrs.get("width")
        block = int(attrs.get("block-size", 1)) if width is None else float(width) / word_bits
        r, w = dram_energy(word_bits, block, str(attrs.get("type", "LPDDR4")))
        return {"read": r, "write": w, "area": 0.0}
    if c in _MAC_CLASSES:
        bits = int(attrs.get("datawidth", attrs.get("width", 16)))
        return {"mac_random": mac_energy(bits, tech), "area": mac_area(bits, tech)}
    depth = attrs.get("memory_depth", attrs.get("depth"))
    width = attrs.get("memory_width", attrs.get("width"))
    word_bits = int(attrs.get("word-bits", attrs.get("datawidth", width or 16)))
    if depth is None or width is None:
        raise ValueError(f"{cls}: expected memory_depth and memory_width attributes")
    capacity = int(depth) * int(width) / word_bits
    block = int(attrs.get("block-size", max(1, int(width) // word_bits)))
    if c in _SRAM_CLASSES:
        banks = int(attrs.get("n_banks", 1))
        r, w = sram_energy(capacity, word_bits, block, tech, banks)
        return {"read": r, "write": w, "area": sram_area(capacity, word_bits, tech, banks)}
    if c in _RF_CLASSES:
        r, w = regfile_energy(capacity, word_bits, block, tech)
        return {"read": r, "write": w, "area": regfile_area(capacity, word_bits, tech, block)}
    raise ValueError(f"unsupported component class {cls!r}")


# ---------------------------------------------------------------------------------------------
# Reference points, sources, calibration
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    key: str
    what: str
    value: str
    units: str
    citation: str
    note: str = ""


@dataclass(frozen=True)
class ReferencePoint:
    """An Accelergy-reported component: attributes, max-variant energies and area."""

    arch: str
    name: str
    cls: str
    attrs: dict
    energies: dict  # action -> pJ (max over argument variants)
    area_um2: float | None
    role: str  # "calibration" | "holdout" | "holdout (same as calibration)"


_EYE = {"technology": "45nm"}

#: The Accelergy 0.4 reference at 45 nm (shared/reference/timeloop/inputs/ert), eyeriss_like
#: = calibration set, simple_pe16x16 = hold-out set.
REFERENCE_POINTS: tuple[ReferencePoint, ...] = (
    ReferencePoint("eyeriss_like", "shared_glb", "smartbuffer_SRAM",
                   {**_EYE, "memory_depth": 16384, "memory_width": 64, "n_banks": 32, "block-size": 4, "word-bits": 16},
                   {"read": 74.1442, "write": 75.2148}, 1162549.0, "calibration"),
    ReferencePoint("eyeriss_like", "ifmap_spad", "smartbuffer_RF",
                   {**_EYE, "memory_depth": 12, "memory_width": 16, "block-size": 1, "word-bits": 16},
                   {"read": 0.236322, "write": 0.236322}, 379.68, "calibration"),
    ReferencePoint("eyeriss_like", "weights_spad", "smartbuffer_RF",
                   {**_EYE, "memory_depth": 192, "memory_width": 16, "block-size": 1, "word-bits": 16},
                   {"read": 1.58552, "write": 1.58552}, 3634.68, "calibration"),
    ReferencePoint("eyeriss_like", "psum_spad", "smartbuffer_RF",
                   {**_EYE, "memory_depth": 16, "memory_width": 16, "block-size": 1, "word-bits": 16},
                   {"read": 0.25083, "write": 0.25083}, 414.68, "calibration"),
    ReferencePoint("eyeriss_like", "mac", "intmac", {**_EYE, "datawidth": 16},
                   {"mac_random": 2.20035, "mac_reused": 1.876725}, 1239.5, "calibration"),
    ReferencePoint("eyeriss_like", "DRAM", "DRAM",
                   {"type": "LPDDR4", "width": 64, "block-size": 4, "word-bits": 16},
                   {"read": 512.0, "write": 512.0}, 0.0, "calibration"),
    ReferencePoint("simple_pe16x16", "GlobalBuffer", "smartbuffer_SRAM",
                   {**_EYE, "memory_depth": 8192, "memory_width": 128, "n_banks": 16, "block-size": 8, "word-bits": 16},
                   {"read": 133.8468, "write": 141.6938}, 1233979.0, "holdout"),
    ReferencePoint("simple_pe16x16", "RegFile", "smartbuffer_RF",
                   {**_EYE, "memory_depth": 64, "memory_width": 16, "block-size": 1, "word-bits": 16},
                   {"read": 0.54098, "write": 0.54098}, 1114.68, "holdout"),
    ReferencePoint("simple_pe16x16", "mac", "intmac", {**_EYE, "datawidth": 16},
                   {"mac_random": 2.20035}, 1239.5, "holdout (same as calibration)"),
    ReferencePoint("simple_pe16x16", "DRAM", "DRAM",
                   {"type": "LPDDR4", "width": 64, "block-size": 4, "word-bits": 16},
                   {"read": 512.0, "write": 512.0}, 0.0, "holdout (same as calibration)"),
)

#: Data-only variant of the eyeriss spads (data_delta=1, address_delta=0 minus the all-zero
#: variant) = the register read of 16 bits: 0.192982 - 0.054902 pJ (ifmap_spad ERT).
_RF_DATA_PART_16B_PJ = 0.192982 - 0.054902
#: All-zero variant of the eyeriss shared_glb (address generators + idle), pJ.
_GLB_FLOOR_PJ = 0.0488
#: Aladdin register area per bit, um^2 (accelergy-aladdin-plug-in data/reg.csv, 40/45 nm).
_ALADDIN_REG_UM2_PER_BIT = 5.98
#: Horowitz ISSCC 2014 45 nm areas used to split the MAC area: 32-bit add, 32-bit multiply.
_HOROWITZ_ADD32_UM2 = 137.0
_HOROWITZ_MUL32_UM2 = 3495.0

#: Accelergy exercise outputs used for the SRAM capacity exponent and as extra area checks
#: (timeloop-accelergy-exercises, exercises/accelergy/04_eyeriss_like/ref-output, commit
#: bfda6af; 40 nm; ERT_summary max energies, rounded to 3 decimals there). min = all-zero variant.
EXTERNAL_POINTS: tuple[dict, ...] = (
    {"name": "exercise weights_glb (8 KiB, 40 nm)", "tech_nm": 40, "memory_depth": 1024, "memory_width": 64,
     "n_banks": 2, "word-bits": 16, "block-size": 4, "read": 8.422, "write": 9.244, "min": 0.049, "area": 60965.6},
    {"name": "exercise shared_glb (100 KiB, 40 nm)", "tech_nm": 40, "memory_depth": 12800, "memory_width": 64,
     "n_banks": 25, "word-bits": 16, "block-size": 4, "read": 56.092, "write": 56.716, "min": 0.056,
     "area": 774388.0},
)

SOURCES: dict[str, Source] = {s.key: s for s in (
    Source("accelergy_ref", "Accelergy 0.4 ERT/ART at 45 nm for eyeriss_like and simple_pe16x16",
           "see REFERENCE_POINTS", "pJ per action (max over variants), um^2",
           "shared/reference/timeloop/inputs/ert/*.ERT.yaml, *.ART.yaml (Timeloop v3.0.3 + Accelergy 0.4, "
           "CACTI and Aladdin plug-ins)", "calibration: eyeriss_like; hold-out: simple_pe16x16"),
    Source("accelergy_exercise_sram", "CACTI SRAM energies/areas at two capacities, one node",
           "8 KiB: 8.422/9.244 pJ, 60966 um^2; 100 KiB: 56.092/56.716 pJ, 774388 um^2", "pJ per 64-bit access, um^2",
           "Accelergy-Project/timeloop-accelergy-exercises, exercises/accelergy/04_eyeriss_like/ref-output "
           "(40 nm)", "gives SRAM_CAPACITY_EXPONENT = mean of read and write log-slopes"),
    Source("cacti_plugin_split", "CACTI plug-in: address decoding 30 %, cell access 70 % of the dynamic energy; "
           "address part scaled by address_delta/n_banks", "max variant = full CACTI energy", "-",
           "Accelergy-Project/accelergy-cacti-plug-in, cacti_wrapper.py", "explains why the max variant is used"),
    Source("aladdin_regfile", "Aladdin-table regfile = register of `width` bits + one ceil(log2 depth)-bit "
           "comparator per entry; register area 5.98 um^2/bit", "5.98", "um^2/bit",
           "Accelergy-Project/accelergy-aladdin-plug-in (Shao et al., Aladdin, ISCA 2014 tables)",
           "structure of regfile_energy/regfile_area; log2 made smooth"),
    Source("aladdin_mac", "Aladdin intmac = adder (linear in bits) + multiplier (quadratic in bits); "
           "mac_reused = adder + 0.85 x multiplier", "16-bit: add 0.04285 pJ, mul 2.1575 pJ", "pJ",
           "accelergy-aladdin-plug-in; split from the reference ERT (mac_random 2.20035, mac_reused 1.876725)",
           "matches Horowitz's 0.05 pJ 16-bit add; multiplier is 2.8x Horowitz's"),
    Source("horowitz2014", "45 nm energies and areas", "add 8/16/32 b: 0.03/0.05/0.1 pJ; mult 8/32 b: 0.2/3.1 pJ; "
           "SRAM 64-bit read 8 KB/32 KB/1 MB: 10/20/100 pJ; DRAM 1.3-2.6 nJ/64 b; area add 32 b 137 um^2, "
           "mult 32 b 3495 um^2", "pJ, um^2",
           "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014",
           "MAC area split and cross-checks"),
    Source("eyeriss2016", "normalized energy per access relative to one MAC", "RF 1x, PE array 2x, GLB 6x, DRAM 200x",
           "x MAC", "Y.-H. Chen, J. Emer, V. Sze, 'Eyeriss: a spatial architecture for energy-efficient dataflow "
           "for CNNs', ISCA 2016", "cross-check only; the Accelergy 45 nm numbers give RF 0.1-0.7x, "
           "GLB 8.4x per word, DRAM 58x per word"),
    Source("cacti_sqrt", "CACTI-style growth of SRAM access energy with capacity (bit/word lines and H-tree "
           "wires grow as sqrt(area))", f"exponent {SRAM_CAPACITY_EXPONENT}", "-",
           "CACTI (Muralimanohar, Balasubramonian, Jouppi); exponent from the Accelergy exercise pair",
           "Horowitz's 8 KB->1 MB gives 0.47; Accelergy's CACTI outputs give 0.72-0.75"),
    Source("dram_lpddr4", "LPDDR4 energy", "8", "pJ/bit", "Accelergy CACTI plug-in table ('public data'); reference "
           "ERT: 512 pJ per 64-bit access", "exact at the reference"),
    Source("dram_hbm2_gddr5", "HBM2 and GDDR5 energy", "HBM2 3.9, GDDR5 14", "pJ/bit",
           "O'Connor, Chatterjee et al., 'Fine-grained DRAM', MICRO 2017 (cited as 'Chatterjee et al., MICRO'17' "
           "by the Accelergy CACTI plug-in)"),
    Source("dram_ddr3_lpddr", "DDR3 and LPDDR energy", "DDR3 70, LPDDR 40", "pJ/bit",
           "Malladi et al., 'Towards energy-proportional datacenter memory with mobile DRAM', ISCA 2012 "
           "(via the Accelergy CACTI plug-in)"),
    Source("dram_ddr4", "DDR4 energy", "15", "pJ/bit", "approximate: commonly quoted 10-20 pJ/bit for DDR4 "
           "(device + interface); no primary source checked", "treat as +-50 %"),
    Source("stillmaker2017", "energy vs. technology node (polynomials in Vdd per node)",
           "45->65 nm x1.65, ->40 x0.80, ->32 x0.53, ->28 x0.40, ->22 x0.24, ->16 x0.12, ->7 x0.047", "-",
           "A. Stillmaker, B. Baas, 'Scaling equations for the accurate prediction of CMOS device performance "
           "from 180 nm to 7 nm', Integration 58 (2017) 74-81; coefficients as transcribed in "
           "Accelergy-Project hwcomponents", "nominal Vdd per node is this module's assumption (NOMINAL_VDD)"),
    Source("area_node2", "area vs. technology node", "(node/45)^2", "-", "classical scaling",
           "understates FinFET-node area"),
)}


def _rel_lstsq_2(xs: Iterable[float], ys: Iterable[float]) -> tuple[float, float]:
    """(c0, c1) minimising sum(((c0 + c1*x) / y - 1)^2): a least-squares fit of relative error."""
    rows = [(1.0 / y, x / y) for x, y in zip(xs, ys)]
    s00 = sum(a * a for a, _ in rows)
    s01 = sum(a * b for a, b in rows)
    s11 = sum(b * b for _, b in rows)
    t0 = sum(a for a, _ in rows)
    t1 = sum(b for _, b in rows)
    det = s00 * s11 - s01 * s01
    return (t0 * s11 - t1 * s01) / det, (s00 * t1 - s01 * t0) / det


def fit_constants() -> dict[str, float]:
    """Recompute every calibrated constant from the calibration points (no hold-out data used)."""
    by = {(p.arch, p.name): p for p in REFERENCE_POINTS}
    glb = by[("eyeriss_like", "shared_glb")]
    glb_bits = glb.attrs["memory_depth"] * glb.attrs["memory_width"]
    glb_width = glb.attrs["memory_width"]
    # SRAM capacity exponent: same-node ratio of the two exercise SRAMs, read and write averaged.
    small, large = EXTERNAL_POINTS
    ratio_bits = (large["memory_depth"] * large["memory_width"]) / (small["memory_depth"] * small["memory_width"])
    slopes = [math.log((large[a] - large["min"]) / (small[a] - small["min"])) / math.log(ratio_bits)
              for a in ("read", "write")]
    beta = sum(slopes) / 2
    k_scale = (glb_bits / SRAM_REF_BITS) ** beta * (glb_width / SRAM_REF_WIDTH_BITS)
    out = {
        "SRAM_AG_PJ": _GLB_FLOOR_PJ,
        "SRAM_CAPACITY_EXPONENT": beta,
        "SRAM_READ_PJ_64B_1MIB": (glb.energies["read"] - _GLB_FLOOR_PJ) / k_scale,
        "SRAM_WRITE_PJ_64B_1MIB": (glb.energies["write"] - _GLB_FLOOR_PJ) / k_scale,
        "SRAM_AREA_UM2_PER_BIT": glb.area_um2 / glb_bits,
    }
    spads = [by[("eyeriss_like", n)] for n in ("ifmap_spad", "weights_spad", "psum_spad")]
    x = [p.attrs["memory_depth"] * math.log2(p.attrs["memory_depth"]) for p in spads]
    e0, e1 = _rel_lstsq_2(x, [p.energies["read"] for p in spads])
    a0, a1 = _rel_lstsq_2(x, [p.area_um2 for p in spads])
    out.update({
        "RF_E_PJ_PER_BIT": _RF_DATA_PART_16B_PJ / 16,
        "RF_E_FIXED_PJ": e0 - _RF_DATA_PART_16B_PJ,
        "RF_E_DECODE_PJ": e1,
        "RF_A_UM2_PER_BIT": _ALADDIN_REG_UM2_PER_BIT,
        "RF_A_FIXED_UM2": a0 - 16 * _ALADDIN_REG_UM2_PER_BIT,
        "RF_A_DECODE_UM2": a1,
    })
    mac = by[("eyeriss_like", "mac")]
    mul = (mac.energies["mac_random"] - mac.energies["mac_reused"]) / 0.15
    add_share = (_HOROWITZ_ADD32_UM2 / 2) / (_HOROWITZ_ADD32_UM2 / 2 + _HOROWITZ_MUL32_UM2 / 4)
    out.update({
        "MAC_E_MUL16_PJ": mul,
        "MAC_E_ADD16_PJ": mac.energies["mac_random"] - mul,
        "MAC_A_ADD16_UM2": add_share * mac.area_um2,
        "MAC_A_MUL16_UM2": (1 - add_share) * mac.area_um2,
    })
    dram = by[("eyeriss_like", "DRAM")]
    out["DRAM_LPDDR4_PJ_PER_BIT"] = dram.energies["read"] / dram.attrs["width"]
    return out


def calibration_report(points: Iterable[ReferencePoint] | None = None,
                       include_external: bool = True) -> list[dict[str, Any]]:
    """One row per (component, quantity): reference, model, ratio = model / reference, role."""
    rows: list[dict[str, Any]] = []
    for p in (REFERENCE_POINTS if points is None else points):
        model = estimate_component(p.cls, p.attrs)
        quantities = [(a, p.energies[a]) for a in ("read", "write", "mac_random") if a in p.energies]
        if p.area_um2:
            quantities.append(("area", p.area_um2))
        for q, ref in quantities:
            m = float(model[q])
            rows.append({"arch": p.arch, "component": p.name, "quantity": q,
                         "units": "um^2" if q == "area" else "pJ", "reference": ref, "model": m,
                         "ratio": m / ref, "role": p.role})
    if include_external:
        for x in EXTERNAL_POINTS:
            attrs = {k: x[k] for k in ("memory_depth", "memory_width", "n_banks", "word-bits", "block-size")}
            model = estimate_component("smartbuffer_SRAM", attrs, x["tech_nm"])
            for q, role in (("read", "exponent (beta) source"), ("write", "exponent (beta) source"),
                            ("area", "check (40 nm)")):
                m = float(model[q])
                rows.append({"arch": "accelergy exercise", "component": x["name"], "quantity": q,
                             "units": "um^2" if q == "area" else "pJ", "reference": x[q], "model": m,
                             "ratio": m / x[q], "role": role})
    return rows


def format_report(rows: list[dict[str, Any]] | None = None) -> str:
    rows = calibration_report() if rows is None else rows
    head = f"{'arch':<20} {'component':<38} {'qty':<10} {'reference':>12} {'model':>12} {'ratio':>7}  role"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['arch']:<20} {r['component']:<38} {r['quantity']:<10} {r['reference']:>12.6g} "
                     f"{r['model']:>12.6g} {r['ratio']:>7.3f}  {r['role']}")
    return "\n".join(lines)


def _load_yaml(path: Path):
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def accelergy_tables(ert_path: str | Path, art_path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Short component name -> {action: max energy over argument variants, 'area': um^2}."""
    out: dict[str, dict[str, float]] = {}
    for t in _load_yaml(Path(ert_path))["ERT"]["tables"]:
        acts = out.setdefault(t["name"].split(".")[-1], {})
        for a in t.get("actions", []) or []:
            e = float(a["energy"])
            acts[a["name"]] = max(acts.get(a["name"], e), e)
    if art_path is not None:
        for t in _load_yaml(Path(art_path))["ART"]["tables"]:
            out.setdefault(t["name"].split(".")[-1], {})["area"] = float(t["area"])
    return out


if __name__ == "__main__":  # pragma: no cover
    print(format_report())
