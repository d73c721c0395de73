"""A model of VTA running AutoTVM's ``conv2d_packed`` schedule: what the compiler rejects, what
the runtime rejects, and how many cycles a valid schedule takes.

It plays the hardware for the ``model`` measurer: a configuration's validity is only known
by "measuring" it, as on a board. The rule-based validity model (:mod:`accelmap.tune.validity`)
re-derives the same rules from the architecture description independently.

**The schedule** (TVM ``vta/python/vta/top/vta_conv2d.py``). Output loops, outermost first:
``b0, h0, co0, w0 | co1, h1, w1`` with the inner extents given by ``tile_b`` (batch),
``tile_h`` (output rows), ``tile_co`` (output-channel blocks) and ``tile_w`` (output columns).
Each output tile is computed in the accumulator; its reduction over input-channel blocks is split
by ``tile_ci``: for each of the ``C/16/tile_ci`` reduction steps (a *region*) the load module
copies an input tile and a weight tile into their buffers, then the compute module runs one
GEMM instruction over the region's loops ``b1, ci1, w1, kw, kh, co1, h1`` (outermost first),
each iteration one 1x16x16 int8 GEMM micro-op per cycle. After the reduction the accumulator tile
is requantized (shift, clip, clip: three ALU passes) and the store module writes it back as int8.
``oc_nthread``/``h_nthread`` = 2 split the outer ``co0``/``h0`` loop over virtual threads:
the threads interleave so one loads while the other computes (latency hiding), and each thread
owns a copy of every on-chip tile.

**What makes a configuration invalid**, in the order the tool flow finds it:

* ``unsupported_split`` (compile time): a virtual-thread split that does not divide the outer
  loop it splits (``K/16/tile_co`` by ``oc_nthread``, ``H/tile_h`` by ``h_nthread``): TVM would
  guard the partial thread with a condition the VTA lowering cannot express. Or an
  accumulator read-after-write hazard: the GEMM pipeline reads an accumulator entry one cycle
  after writing it, so the micro-op stream must never touch the same entry in consecutive
  cycles; that happens exactly when the innermost loop of the region with more than one
  iteration is a reduction loop (``ci1``, ``kw`` or ``kh``).
* ``buffer_overflow`` (compile time): a tile, times the number of virtual threads, exceeds its
  buffer. Input tile ``tile_b * tile_ci * ((tile_h-1)*sh + kh) * ((tile_w-1)*sw + kw)`` entries of
  16 bytes (32 KiB: 2048 entries); weight tile ``tile_co * tile_ci * kh * kw`` entries of 256 bytes
  (256 KiB: 1024); accumulator tile ``tile_b * tile_co * tile_h * tile_w`` entries of 64 bytes
  (128 KiB: 2048).
* ``uop_overflow`` (run time): the micro-op kernels of one region do not fit the micro-op
  buffer (8192 micro-ops). A GEMM instruction folds the two outermost non-trivial loops of its
  nest into its two hardware loop counters (TVM's FoldUopLoop); every iteration of the loops
  left inside is one micro-op. Kernels: the GEMM, the accumulator reset (loops
  ``b1, w1, co1, h1``) and each of the three ALU passes (loops ``b1, co1, h1, w1``), one set
  per virtual thread.

**Cycles** of a valid configuration (deterministic; constants in :class:`VTAConfig` are the
hardware's, not fitted to layers). Per region: input load = one 2-D DMA per (batch, channel
block) with a setup cost, a cost per row burst (a tile as wide as the padded input is one
contiguous burst) and bytes / DRAM bandwidth; weight load = one 2-D DMA (one burst per output
block unless the tile spans all input channels); GEMM = setup + one cycle per micro-op
iteration. Per tile: reset + three ALU passes, and a store of ``tile_b * tile_co`` 2-D DMAs.
With one thread the modules wait for each other: ``tiles * (load + compute + store)``. With
virtual threads they overlap: ``tiles * max(load, compute, store)`` plus one region and one
tile of pipeline fill. Both are bounded below by total DRAM traffic / bandwidth; micro-op
kernels are loaded once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelmap.errors import AccelmapError
from accelmap.tune.knobs import VTA_KNOBS, KnobSpace, PackedConv

# error codes, in check order (0 = valid)
VALID, UNSUPPORTED_SPLIT, BUFFER_OVERFLOW, UOP_OVERFLOW = 0, 1, 2, 3
ERROR_CODES = {UNSUPPORTED_SPLIT: "unsupported_split", BUFFER_OVERFLOW: "buffer_overflow",
               UOP_OVERFLOW: "uop_overflow"}

VTA_LEVELS = ("InputBuffer", "WeightBuffer", "AccBuffer")


@dataclass(frozen=True)
class VTAConfig:
    """VTA's parameters (the default Pynq configuration). Buffer sizes in bytes; times in cycles."""

    batch: int = 1
    block_in: int = 16
    block_out: int = 16
    inp_buffer: int = 32 * 1024
    wgt_buffer: int = 256 * 1024
    acc_buffer: int = 128 * 1024
    uop_buffer: int = 32 * 1024
    inp_bits: int = 8
    wgt_bits: int = 8
    acc_bits: int = 32
    out_bits: int = 8
    uop_bytes: int = 4
    insn_bytes: int = 16
    dram_bytes_per_cycle: float = 8.0  # one 64-bit AXI port
    dma_setup: int = 64  # per DMA instruction: descriptor, DRAM latency
    burst_overhead: int = 8  # per extra row burst of a 2-D DMA
    gemm_setup: int = 8  # per GEMM / reset instruction: pipeline fill
    alu_setup: int = 8
    alu_cycles_per_op: int = 2  # read-modify-write of one accumulator entry
    alu_ops: int = 3  # requantization after the conv: shift right, clip min, clip max
    acc_dep_distance: int = 3  # cycles between two writes of one accumulator entry, at least
    clock_mhz: float = 100.0

    @property
    def inp_entry(self) -> int:
        return self.batch * self.block_in * self.inp_bits // 8

    @property
    def wgt_entry(self) -> int:
        return self.block_out * self.block_in * self.wgt_bits // 8

    @property
    def acc_entry(self) -> int:
        return self.batch * self.block_out * self.acc_bits // 8

    @property
    def out_entry(self) -> int:
        return self.batch * self.block_out * self.out_bits // 8

    @property
    def uop_capacity(self) -> int:
        return self.uop_buffer // self.uop_bytes

    @staticmethod
    def from_arch(arch) -> "VTAConfig":
        """Buffer sizes, DRAM bandwidth and GEMM shape from a VTA-like architecture (levels
        InputBuffer, WeightBuffer, AccBuffer; a 16 x 16 MAC mesh)."""
        names = arch.level_names
        missing = [n for n in VTA_LEVELS if n not in names]
        if missing:
            raise AccelmapError(f"architecture '{arch.name}' is not VTA-like: it lacks {missing}; the VTA conv2d "
                                f"template needs levels {list(VTA_LEVELS)}", field="--target")
        lv = {n: arch.levels[arch.level_index(n)] for n in VTA_LEVELS}
        dram = arch.levels[0]
        bw = (dram.read_bw or 8.0) * dram.word_bits / 8
        return VTAConfig(
            block_in=arch.compute.mesh_x, block_out=arch.compute.mesh_y,
            inp_buffer=lv["InputBuffer"].capacity * lv["InputBuffer"].word_bits // 8,
            wgt_buffer=lv["WeightBuffer"].capacity * lv["WeightBuffer"].word_bits // 8,
            acc_buffer=lv["AccBuffer"].capacity * lv["AccBuffer"].word_bits // 8,
            inp_bits=lv["InputBuffer"].word_bits, wgt_bits=lv["WeightBuffer"].word_bits,
            acc_bits=lv["AccBuffer"].word_bits, dram_bytes_per_cycle=bw)


def _uops(loops: list[np.ndarray]) -> np.ndarray:
    """Micro-ops of a kernel: fold the two outermost loops with more than one iteration into the
    instruction's loop counters; each iteration of the rest is one micro-op. loops: outermost
    first, each [n] extents."""
    ext = np.stack(loops, 1)  # [n, J]
    nontrivial = ext > 1
    rank = np.cumsum(nontrivial, 1)  # 1-based rank among non-trivial loops, outermost first
    kept = nontrivial & (rank > 2)
    return np.where(kept, ext, 1).prod(1)


def _hazard(loops: list[tuple[np.ndarray, bool]], distance: int) -> np.ndarray:
    """True where one accumulator entry is written twice less than ``distance`` cycles apart: the
    output loops inside the innermost reduction loop with more than one iteration span fewer
    than ``distance`` entries. loops: (extents [n], is_reduction), outermost first."""
    n = len(loops[0][0])
    period = np.ones(n, dtype=np.int64)
    out = np.zeros(n, dtype=bool)
    decided = np.zeros(n, dtype=bool)
    for ext, red in reversed(loops):
        if red:
            here = (ext > 1) & ~decided
            out |= here & (period < distance)
            decided |= here
        else:
            period = np.where(decided, period, period * ext)
    return out


def simulate(conv: PackedConv, points: np.ndarray, space: KnobSpace, cfg: VTAConfig = VTAConfig()) -> dict:
    """Run configurations (``[n, K]`` points of :func:`~accelmap.tune.knobs.vta_conv2d_space`).

    Returns ``cycles`` [n] float64 (nan when invalid), ``error`` [n] int (0 valid, else an
    ``ERROR_CODES`` key) and the intermediate counts (footprints in bytes, micro-ops, times)."""
    points = np.asarray(points, dtype=np.int64).reshape(-1, len(space.knobs))
    col = {k.name: np.array(k.options, dtype=np.int64)[points[:, c]] for c, k in enumerate(space.knobs)}
    for name in VTA_KNOBS:
        if name not in col:
            raise AccelmapError(f"knob space '{space.name}' lacks VTA knob '{name}'")
    tb, th, tw, tci, tco = col["tile_b"], col["tile_h"], col["tile_w"], col["tile_ci"], col["tile_co"]
    vo, vh = col["oc_nthread"], col["h_nthread"]
    n = len(points)
    one = np.ones(n, dtype=np.int64)
    kh, kw = one * conv.kh, one * conv.kw
    v = vo * vh
    n_b, n_h, n_w = conv.N // tb, conv.H // th, conv.W // tw
    n_ci, n_co = conv.cb // tci, conv.kb // tco

    # ---- compile: the schedule's splits, then on-chip allocation ---------------------------
    bad_split = (n_co % vo != 0) | (n_h % vh != 0)
    region = [(tb, False), (tci, True), (tw, False), (kw, True), (kh, True), (tco, False), (th, False)]
    bad_split |= _hazard(region, cfg.acc_dep_distance)
    rows_in = (th - 1) * conv.sh + conv.kh
    cols_in = (tw - 1) * conv.sw + conv.kw
    inp_bytes = tb * tci * rows_in * cols_in * cfg.inp_entry
    wgt_bytes = tco * tci * conv.kh * conv.kw * cfg.wgt_entry
    acc_bytes = tb * tco * th * tw * cfg.acc_entry
    overflow = (inp_bytes * v > cfg.inp_buffer) | (wgt_bytes * v > cfg.wgt_buffer) | (acc_bytes * v > cfg.acc_buffer)
    # ---- run: micro-op kernels must fit the micro-op buffer ---------------------------------
    uops_gemm = _uops([ext for ext, _ in region])
    uops_reset = _uops([tb, tw, tco, th])
    uops_alu = _uops([tb, tco, th, tw])
    uops = (uops_gemm + uops_reset + cfg.alu_ops * uops_alu) * v
    uop_bad = uops > cfg.uop_capacity
    error = np.where(bad_split, UNSUPPORTED_SPLIT,
                     np.where(overflow, BUFFER_OVERFLOW, np.where(uop_bad, UOP_OVERFLOW, VALID)))

    # ---- cycles ------------------------------------------------------------------------
    bw = cfg.dram_bytes_per_cycle
    inp_bursts = np.where(cols_in == conv.in_w, 1, rows_in)
    t_inp = tb * tci * (cfg.dma_setup + (inp_bursts - 1) * cfg.burst_overhead
                        + np.ceil(rows_in * cols_in * cfg.inp_entry / bw))
    wgt_bursts = np.where(tci == conv.cb, 1, tco)
    t_wgt = cfg.dma_setup + (wgt_bursts - 1) * cfg.burst_overhead + np.ceil(wgt_bytes / bw)
    t_gemm = cfg.gemm_setup + tb * tci * tw * kw * kh * tco * th
    acc_entries = tb * tco * th * tw
    t_reset = cfg.gemm_setup + acc_entries
    t_alu = cfg.alu_ops * (cfg.alu_setup + cfg.alu_cycles_per_op * acc_entries)
    out_bursts = np.where(tw == conv.W, 1, th)
    t_store = tb * tco * (cfg.dma_setup + (out_bursts - 1) * cfg.burst_overhead + np.ceil(th * tw * cfg.out_entry / bw))
    tiles = n_b * n_h * n_w * n_co
    load_t = n_ci * (t_inp + t_wgt)
    comp_t = n_ci * t_gemm + t_reset + t_alu
    serial = tiles * (load_t + comp_t + t_store)
    overlap = tiles * np.maximum(np.maximum(load_t, comp_t), t_store) + (t_inp + t_wgt + t_gemm + t_reset + t_alu + t_store)
    cycles = np.where(v > 1, overlap, serial).astype(np.float64)
    insns = tiles * (n_ci * (tb * tci + 2) + 2 + cfg.alu_ops + tb * tco)
    dram = tiles * (n_ci * (inp_bytes + wgt_bytes) + acc_entries * cfg.out_entry) + insns * cfg.insn_bytes
    uop_load = cfg.dma_setup + np.ceil(uops * cfg.uop_bytes / bw)
    cycles = np.maximum(cycles, np.ceil(dram / bw)) + uop_load
    cycles = np.where(error == VALID, cycles, np.nan)
    return {"cycles": cycles, "error": error, "inp_bytes": inp_bytes * v, "wgt_bytes": wgt_bytes * v,
            "acc_bytes": acc_bytes * v, "uops": uops, "virtual_threads": v, "dram_bytes": dram}
